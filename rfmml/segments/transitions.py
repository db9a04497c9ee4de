"""Segment transitions: who moved between segments from one snapshot date to the next."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import clone
from sklearn.exceptions import NotFittedError
from sklearn.utils.validation import check_is_fitted

from rfmml.errors import ConfigError, DataError
from rfmml.features import rfm_table

__all__ = ["NEW", "SegmentTransitions", "segment_transitions"]

#: Origin of customers whose first purchase falls after the previous snapshot.
NEW = "(new)"


@dataclass(frozen=True)
class SegmentTransitions:
    """Segments at several snapshot dates and the moves between consecutive ones.

    Attributes
    ----------
    snapshots : tuple of pandas.Timestamp
        The snapshot dates, increasing.
    labels : pandas.DataFrame
        One row per customer (index as ``rfm_table``), one column per snapshot,
        segment names; ``NaN`` where the customer had not bought yet.
    counts : pandas.DataFrame
        Migration counts for each consecutive pair of snapshots: index
        ``(snapshot, from_segment)`` where ``snapshot`` is the later date and
        ``from_segment`` includes ``"(new)"`` for customers acquired in between;
        columns ``to_segment``. Every segment appears, empty ones with zeros.
    rates : pandas.DataFrame
        ``counts`` divided by the row totals (share of each origin going to each
        destination; ``NaN`` for empty origins).
    moves : pandas.DataFrame
        One row per customer whose segment changed (new customers included):
        the customer key column(s), ``snapshot``, ``from_segment``, ``to_segment``.
    """

    snapshots: tuple[pd.Timestamp, ...]
    labels: pd.DataFrame
    counts: pd.DataFrame
    rates: pd.DataFrame
    moves: pd.DataFrame

    def _snapshot(self, snapshot: Any) -> pd.Timestamp:
        if snapshot is None:
            return self.snapshots[-1]
        stamp = pd.Timestamp(snapshot)
        if stamp not in self.snapshots[1:]:
            raise ConfigError(
                f"snapshot {stamp.date()} is not one of the later snapshots "
                f"{[s.date().isoformat() for s in self.snapshots[1:]]}."
            )
        return stamp

    def matrix(self, snapshot: Any = None, *, normalize: bool = False) -> pd.DataFrame:
        """Migration matrix into ``snapshot`` (default: the last) from the snapshot before.

        Parameters
        ----------
        snapshot : date-like, optional
            One of ``snapshots[1:]``.
        normalize : bool, default=False
            Return rates (rows sum to 1) instead of counts.

        Returns
        -------
        pandas.DataFrame
            Rows ``from_segment`` (``"(new)"`` first), columns ``to_segment``.
        """
        table = self.rates if normalize else self.counts
        return table.xs(self._snapshot(snapshot), level="snapshot")

    def _moved(self, snapshot: Any) -> pd.DataFrame:
        stamp = self._snapshot(snapshot)
        return self.moves[self.moves["snapshot"] == stamp]

    def _keys(self, rows: pd.DataFrame) -> pd.Index:
        names = list(self.labels.index.names)
        if len(names) == 1:
            return pd.Index(rows[names[0]].to_numpy(), name=names[0])
        return pd.MultiIndex.from_frame(rows[names])

    def entered(self, segment: str, snapshot: Any = None) -> pd.Index:
        """Customers in ``segment`` at ``snapshot`` who were not in it at the previous one.

        Parameters
        ----------
        segment : str
            Segment name.
        snapshot : date-like, optional
            One of ``snapshots[1:]`` (default: the last).

        Returns
        -------
        pandas.Index
            Customer keys (new customers included).
        """
        moved = self._moved(snapshot)
        return self._keys(moved[moved["to_segment"] == segment])

    def left(self, segment: str, snapshot: Any = None) -> pd.Index:
        """Customers in ``segment`` at the previous snapshot who are elsewhere at ``snapshot``.

        Parameters and the returned customer keys as in :meth:`entered`.
        """
        moved = self._moved(snapshot)
        return self._keys(moved[moved["from_segment"] == segment])


def segment_transitions(
    tx: pd.DataFrame,
    snapshots: Sequence[Any],
    segmenter: Any,
    *,
    group: str | None = None,
    refit: bool = False,
) -> SegmentTransitions:
    """Segment customers at each snapshot date and track their moves.

    Features at each date come from ``rfm_table(tx, observation_end=date,
    group=group)``, so only transactions up to that date count.

    Parameters
    ----------
    tx : pandas.DataFrame
        Canonical transactions (``customer_id``, ``timestamp``, ``amount``).
    snapshots : sequence of date-like
        Two or more strictly increasing dates.
    segmenter : RuleSegmenter or KMeansSegmenter
        If ``refit`` is False and it is already fitted, it is used as is; if it is
        not fitted, a clone is fitted on the first snapshot's features and reused,
        so a segment means the same thresholds at every date. With ``refit=True``
        a clone is fitted at every snapshot (segments relative to that date).
        Segments come from its ``predict`` (cluster names for ``KMeansSegmenter``).
    group : str, optional
        Group column of ``tx``; customers are then keyed by ``(customer_id, group)``.
    refit : bool, default=False
        Refit at every snapshot (see ``segmenter``).

    Returns
    -------
    SegmentTransitions
        Customers not yet acquired at a snapshot have no label there (``NaN`` in
        ``labels``) and enter the next matrix from the ``"(new)"`` origin.

    Raises
    ------
    ConfigError
        Fewer than two snapshots, or dates not strictly increasing.
    DataError
        No customer has bought by the first snapshot.
    """
    dates = [pd.Timestamp(s) for s in snapshots]
    if len(dates) < 2:
        raise ConfigError(f"segment_transitions needs two or more snapshots, got {len(dates)}.")
    if any(b <= a for a, b in zip(dates, dates[1:], strict=False)):
        raise ConfigError(
            f"snapshots must be strictly increasing, got {[d.isoformat() for d in dates]}."
        )
    fitted = None
    if not refit:
        try:
            check_is_fitted(segmenter)
            fitted = segmenter
        except NotFittedError:
            fitted = None
    columns: dict[pd.Timestamp, pd.Series] = {}
    order: list[str] = []
    for date in dates:
        features = rfm_table(tx, observation_end=date, group=group)
        if len(features) == 0:
            raise DataError(
                f"segment_transitions: no customer has bought by the snapshot {date.date()}; "
                f"start the snapshots after the first transaction."
            )
        model = fitted
        if model is None:
            model = clone(segmenter).fit(features)
            if not refit:
                fitted = model
        labels = model.predict(features)
        if isinstance(labels.dtype, pd.CategoricalDtype):
            names = [str(c) for c in labels.cat.categories]
        else:
            names = sorted(map(str, labels.unique()))
        order += [n for n in names if n not in order]
        columns[date] = labels.astype(str)

    table = pd.DataFrame(columns).sort_index()
    table.columns.name = "snapshot"
    m = len(order)
    origins = [NEW, *order]
    code = {name: i for i, name in enumerate(order)}
    blocks, rate_blocks, move_rows = [], [], []
    for prev, cur in zip(dates, dates[1:], strict=False):
        present = table[cur].notna().to_numpy()
        before = table.loc[present, prev]
        after = table.loc[present, cur]
        src = before.map(code).fillna(-1).to_numpy(dtype=np.int64) + 1  # 0 = (new)
        dst = after.map(code).to_numpy(dtype=np.int64)
        counts = np.bincount(src * m + dst, minlength=(m + 1) * m).reshape(m + 1, m)
        block = pd.DataFrame(
            counts,
            index=pd.MultiIndex.from_product([[cur], origins], names=["snapshot", "from_segment"]),
            columns=pd.Index(order, name="to_segment"),
        )
        blocks.append(block)
        totals = block.sum(axis=1).replace(0, np.nan)
        rate_blocks.append(block.div(totals, axis=0))
        changed = src - 1 != dst
        keys = before.index[changed].to_frame(index=False)
        keys["snapshot"] = cur
        keys["from_segment"] = np.asarray(origins, dtype=object)[src[changed]]
        keys["to_segment"] = np.asarray(order, dtype=object)[dst[changed]]
        move_rows.append(keys)
    moves = pd.concat(move_rows, ignore_index=True)
    for col in ("from_segment", "to_segment"):
        moves[col] = pd.Categorical(
            moves[col], categories=origins if col == "from_segment" else order
        )
    categorical = pd.DataFrame(
        {date: pd.Categorical(table[date], categories=order) for date in dates}, index=table.index
    )
    categorical.columns.name = "snapshot"
    return SegmentTransitions(
        snapshots=tuple(dates),
        labels=categorical,
        counts=pd.concat(blocks),
        rates=pd.concat(rate_blocks),
        moves=moves,
    )
