"""R, F and M scores from customer features, and linear value scores.

Quantile scores rank each customer against the customers seen in ``fit``:

    score = 1 + floor(n_scores * share of customers strictly worse on the metric)

"Worse" means a longer recency, fewer orders or a lower spend. The rule gives
equal-sized bins when values are distinct, always scores the worst customer 1,
never exceeds ``n_scores`` and lets tied customers share a score. With heavy ties
(most customers buy once) the tied block keeps the lowest score it reaches and the
scores it spans are skipped, so nothing fails and no bin is silently merged into
another: one-time buyers are all ``F = 1`` and the next score used is the one the
two-order customers reach.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from functools import lru_cache
from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.utils.validation import check_is_fitted

from rfmml.errors import ConfigError, DataError, require_columns
from rfmml.features._spark import is_spark

__all__ = ["RFMScorer", "linear_score"]

#: Days per unit for recency thresholds (a month is an average Gregorian month).
RECENCY_UNITS: dict[str, float] = {"days": 1.0, "weeks": 7.0, "months": 365.25 / 12.0}

_METRICS = ("R", "F", "M")


def _check_frame(X: object, columns: Sequence[str], *, where: str) -> pd.DataFrame:
    """Validate a customer-features frame: type, columns, emptiness, NaN, negatives."""
    if not isinstance(X, pd.DataFrame):
        raise TypeError(
            f"{where} expects a pandas DataFrame of customer features, got "
            f"{type(X).__name__}. Build one with rfmml.features.rfm_table(tx)."
        )
    require_columns(X, columns, where, "Point the *_col parameters at the right columns.")
    if len(X) == 0:
        raise DataError(f"{where}: the features frame is empty (0 customers).")
    for col in columns:
        column = X[col]
        if isinstance(column.dtype, np.dtype) and column.dtype.kind in "iuf":  # as it is
            values = column.to_numpy()
        else:
            values = pd.to_numeric(column, errors="coerce").to_numpy(dtype=float, na_value=np.nan)
        n_nan = int(np.count_nonzero(np.isnan(values))) if values.dtype.kind == "f" else 0
        if n_nan:
            raise DataError(
                f"{where}: column {col!r} has {n_nan} of {len(X)} missing or non-numeric "
                f"values. Drop or fill those customers first."
            )
        n_neg = int(np.count_nonzero(values < 0))
        if n_neg:
            raise DataError(
                f"{where}: column {col!r} has {n_neg} of {len(X)} negative values; "
                f"recency, order counts and spend must be >= 0."
            )
    return X


def _group_codes(index: pd.Index) -> tuple[np.ndarray, pd.Index] | None:
    """Codes and unique values of the group level, or None for a plain index."""
    if isinstance(index, pd.MultiIndex) and index.nlevels == 2:
        codes, uniques = pd.factorize(index.get_level_values(1), sort=True)
        return codes, pd.Index(uniques, name=index.names[1])
    return None


#: Relative slack of an edge when scoring: a value this close to an edge counts
#: as reaching it. Sums of the same amounts in another order (threads of the
#: engine, another engine) differ in their last bits; without the slack a customer
#: whose spend is an edge could change score from one run to the next.
EDGE_RTOL = 1e-12


def scoring_edges(edges: np.ndarray, metric: str) -> np.ndarray:
    """The fitted edges of ``metric`` widened by :data:`EDGE_RTOL` for scoring.

    F and M reach score ``k`` at ``value >= edge``, R at ``value <= edge``; each
    finite edge moves by ``EDGE_RTOL * |edge|`` towards the values it admits.
    """
    edges = np.asarray(edges, dtype=float)
    slack = np.where(np.isfinite(edges), np.abs(edges) * EDGE_RTOL, 0.0)
    return edges + slack if metric == "R" else edges - slack


def _quantile_edges(values: np.ndarray, n_scores: int) -> np.ndarray:
    """Lowest value reaching each score 2..n under the strictly-worse share rule.

    ``values`` are oriented so that larger is better. Score ``k`` needs at least
    ``ceil((k - 1) * N / n)`` customers strictly below; when that position falls
    inside a tie block the edge moves to the next distinct value, and to ``inf``
    when no value is left (the score is unreachable).
    """
    v = np.sort(values)
    n_obs = len(v)
    edges = np.empty(n_scores - 1)
    for k in range(2, n_scores + 1):
        need = -((-(k - 1) * n_obs) // n_scores)  # ceil without floats
        if need >= n_obs:
            edges[k - 2] = np.inf
            continue
        candidate = v[need]
        if np.searchsorted(v, candidate, side="left") < need:
            nxt = np.searchsorted(v, candidate, side="right")
            candidate = v[nxt] if nxt < n_obs else np.inf
        edges[k - 2] = candidate
    return edges


@lru_cache(maxsize=8)
def _rfm_labels(n_scores: int) -> pd.api.extensions.ExtensionArray:
    """Every ``RFM`` label, indexed by ``((R - 1) n + F - 1) n + M - 1`` (``n = n_scores``).

    The digits run together below 10 scores (``"345"``) and are separated by
    ``-`` from 10 on (``"10-3-7"``); gathered per customer with ``take``
    (one string column of the default string dtype, as ``astype(str)`` and
    concatenation would build, at a fraction of the cost).
    """
    sep = "" if n_scores < 10 else "-"
    scores = range(1, n_scores + 1)
    labels = [f"{r}{sep}{f}{sep}{m}" for r in scores for f in scores for m in scores]
    return pd.Series(labels, dtype=object).astype(str).array


@lru_cache(maxsize=8)
def _rfm_dtype(n_scores: int) -> pd.CategoricalDtype:
    """Every ``RFM`` label of :func:`_rfm_labels` as the categories of one dtype."""
    return pd.CategoricalDtype(pd.Index(_rfm_labels(n_scores)))


#: Up to this many edges a score counts the edges a value passes (else a binary search).
_COUNTED_EDGES = 16


class RFMScorer(TransformerMixin, BaseEstimator):
    """Score customers 1..``n_scores`` on recency, frequency and monetary value.

    Parameters
    ----------
    n_scores : int, default=5
        Number of score levels (2 to 9 give one-digit ``RFM`` codes; from 10 the
        code joins the scores with ``"-"``).
    method : {"quantile", "thresholds"}, default="quantile"
        ``"quantile"`` learns the edges from the customers given to ``fit`` (see
        the module docstring for the tie rule). ``"thresholds"`` uses ``thresholds``.
    thresholds : mapping of {"R", "F", "M"} to sequences, optional
        Required with ``method="thresholds"``: for each metric, ``n_scores - 1``
        strictly increasing cut points in business units. They apply to whichever
        column the scorer points at (orders or orders per year, spend or spend per
        year). For ``F`` and ``M`` a value at or above the ``j``-th cut point scores
        at least ``j + 1``. For ``R`` the cut points are recency limits in
        ``recency_unit``: a recency at or below the last cut point scores 2, at or
        below the first scores ``n_scores``, beyond the last scores 1.
    recency_col, frequency_col, monetary_col : str
        Feature columns scored as R, F and M. Defaults follow ``rfm_table``.
        Use ``"orders_per_year"`` or ``"spend_per_year"`` for rate-based scores.
    recency_unit : {"days", "weeks", "months"}, default="days"
        Unit of the ``R`` thresholds. The recency column itself is in days; a week
        is 7 days and a month 365.25 / 12 days.
    min_group_size : int, default=20
        Per group (quantile method only): a group with fewer customers than this
        is scored with the edges learned on all customers pooled instead of its
        own, because quantiles of a handful of customers mean little (a group of
        one would score ``111`` whatever the customer did). Those groups are
        listed in ``small_groups_`` and ``fit`` emits one ``UserWarning``. Use 1
        to give every group its own edges.

    Attributes
    ----------
    edges_ : pandas.DataFrame
        For each metric (rows ``R``, ``F``, ``M``; prefixed by the group when the
        features have a group) and each score ``k`` (columns 2..n), the value at
        which the score reaches ``k``, in the column's units. For ``F`` and ``M``
        it is the lowest value scoring ``k``; for ``R`` the longest recency (days)
        scoring ``k``. ``inf`` / ``-inf`` marks an unreachable score.
    groups_ : pandas.Index or None
        The groups the edges were learned for, or None without a group.
    small_groups_ : pandas.Index or None
        Groups smaller than ``min_group_size``, whose rows of ``edges_`` hold the
        pooled edges (empty when none); None without a group or with thresholds.
        Informational only: ``transform`` reads ``edges_``, and a scorer rebuilt by
        :func:`~rfmml.segments.load_segmenter` does not have it.
    n_features_in_ : int
        Number of columns of the frame seen in ``fit``.

    Notes
    -----
    Per group: when the index is a two-level MultiIndex ``(customer_id, group)``
    the quantile edges are learned, and applied, within each group, so a score of
    5 means "top fifth of this channel". ``transform`` then refuses groups it did
    not see in ``fit``. Groups with fewer than ``min_group_size`` customers get the
    edges learned on all customers pooled (see ``small_groups_``). Customers whose
    group is missing (NaN) are refused. Thresholds are the same for every group.

    ``FM`` is the mean of ``F`` and ``M`` rounded half up: ``(F + M + 1) // 2``
    (F=4, M=5 gives 5; F=1, M=2 gives 2).

    Examples
    --------
    >>> import pandas as pd
    >>> X = pd.DataFrame({"recency_days": [5.0, 40.0, 300.0],
    ...                   "n_orders": [9, 2, 1], "total_spend": [500.0, 60.0, 20.0]})
    >>> RFMScorer(n_scores=3).fit_transform(X)["RFM"].tolist()
    ['333', '222', '111']
    """

    def __init__(
        self,
        n_scores: int = 5,
        method: str = "quantile",
        thresholds: Mapping[str, Sequence[float]] | None = None,
        recency_col: str = "recency_days",
        frequency_col: str = "n_orders",
        monetary_col: str = "total_spend",
        recency_unit: str = "days",
        min_group_size: int = 20,
    ) -> None:
        self.n_scores = n_scores
        self.method = method
        self.thresholds = thresholds
        self.recency_col = recency_col
        self.frequency_col = frequency_col
        self.monetary_col = monetary_col
        self.recency_unit = recency_unit
        self.min_group_size = min_group_size

    # -- helpers -------------------------------------------------------------------
    @property
    def columns(self) -> dict[str, str]:
        """The feature column scored as each metric: ``{"R": ..., "F": ..., "M": ...}``."""
        return {"R": self.recency_col, "F": self.frequency_col, "M": self.monetary_col}

    def _check_params(self) -> None:
        n = self.n_scores
        if isinstance(n, bool) or not isinstance(n, int | np.integer) or n < 2:
            raise ConfigError(f"n_scores must be an integer >= 2, got {n!r}.")
        if self.method not in ("quantile", "thresholds"):
            raise ConfigError(f"method must be 'quantile' or 'thresholds', got {self.method!r}.")
        if self.recency_unit not in RECENCY_UNITS:
            raise ConfigError(
                f"recency_unit must be one of {sorted(RECENCY_UNITS)}, got {self.recency_unit!r}."
            )
        size = self.min_group_size
        if isinstance(size, bool) or not isinstance(size, int | np.integer) or size < 1:
            raise ConfigError(f"min_group_size must be an integer >= 1, got {size!r}.")
        if self.method == "quantile":
            if self.thresholds is not None:
                raise ConfigError(
                    "thresholds are only used with method='thresholds'; "
                    "pass method='thresholds' or drop thresholds."
                )
            return
        if not isinstance(self.thresholds, Mapping):
            raise ConfigError(
                "method='thresholds' needs thresholds={'R': [...], 'F': [...], 'M': [...]}."
            )
        unknown = sorted(set(self.thresholds) - set(_METRICS))
        missing = [m for m in _METRICS if m not in self.thresholds]
        if unknown or missing:
            raise ConfigError(
                f"thresholds keys must be exactly R, F and M; missing {missing}, unknown {unknown}."
            )
        for metric in _METRICS:
            cuts = np.asarray(self.thresholds[metric], dtype=float)
            if cuts.ndim != 1 or len(cuts) != n - 1:
                raise ConfigError(
                    f"thresholds[{metric!r}] needs n_scores - 1 = {n - 1} cut points, "
                    f"got {cuts.size}."
                )
            if not np.all(np.isfinite(cuts)) or np.any(np.diff(cuts) <= 0):
                raise ConfigError(
                    f"thresholds[{metric!r}] must be finite and strictly increasing, "
                    f"got {cuts.tolist()}."
                )

    def _threshold_edges(self) -> np.ndarray:
        days = RECENCY_UNITS[self.recency_unit]
        assert self.thresholds is not None
        r_cuts = np.asarray(self.thresholds["R"], dtype=float) * days
        # R edge for score k: the longest recency still scoring k (cut points reversed).
        rows = [r_cuts[::-1]]
        rows += [np.asarray(self.thresholds[m], dtype=float) for m in ("F", "M")]
        return np.vstack(rows)

    @staticmethod
    def _checked_group_codes(index: pd.Index, *, where: str) -> tuple[np.ndarray, pd.Index] | None:
        """Group codes as :func:`_group_codes`, refusing customers without a group."""
        grouped = _group_codes(index)
        if grouped is not None:
            n_missing = int((grouped[0] < 0).sum())
            if n_missing:
                name = index.names[1] if index.names[1] is not None else "group"
                raise DataError(
                    f"{where}: {n_missing} of {len(index)} customers have a missing "
                    f"{name!r} (the group level of the index); drop or fill them first."
                )
        return grouped

    def _learn_edges(self, X: pd.DataFrame) -> np.ndarray:
        r = X[self.recency_col].to_numpy(dtype=float)
        f = X[self.frequency_col].to_numpy(dtype=float)
        m = X[self.monetary_col].to_numpy(dtype=float)
        # Orient recency so that larger is better, then map the edges back to days.
        r_edges = -_quantile_edges(-r, self.n_scores)
        return np.vstack(
            [r_edges, _quantile_edges(f, self.n_scores), _quantile_edges(m, self.n_scores)]
        )

    # -- estimator API ---------------------------------------------------------------
    def fit(self, X: pd.DataFrame, y: object = None) -> RFMScorer:
        """Learn the score edges (quantile method) or check the thresholds.

        Parameters
        ----------
        X : pandas.DataFrame or pyspark.sql.DataFrame
            One row per customer with the recency, frequency and monetary columns.
            A Spark frame is validated and its exact edges computed inside Spark
            (equal to the pandas ones; see :mod:`rfmml.segments._spark`); its edges
            are pooled (no group index).
        y : ignored

        Returns
        -------
        self : RFMScorer

        Raises
        ------
        ConfigError
            Invalid ``n_scores``, ``method``, ``thresholds``, ``recency_unit`` or
            ``min_group_size``.
        DataError
            Missing columns, empty frame, NaN or negative values, or (per group,
            quantile method) customers whose group is missing.

        Warns
        -----
        UserWarning
            Per group, when some groups have fewer than ``min_group_size``
            customers and are scored with the pooled edges.
        """
        self._check_params()
        if is_spark(X):
            return self._fit_spark(X)
        X = _check_frame(X, list(self.columns.values()), where="RFMScorer.fit")
        scores = list(range(2, self.n_scores + 1))
        self.small_groups_ = None
        if self.method == "thresholds":
            edges = self._threshold_edges()
            self.groups_ = None  # thresholds are the same for every group
            self.edges_ = pd.DataFrame(
                edges, index=pd.Index(_METRICS, name="metric"), columns=scores
            )
            self.n_features_in_ = X.shape[1]
            return self
        grouped = self._checked_group_codes(X.index, where="RFMScorer.fit")
        if grouped is None:
            self.groups_ = None
            self.edges_ = pd.DataFrame(
                self._learn_edges(X), index=pd.Index(_METRICS, name="metric"), columns=scores
            )
        else:
            codes, groups = grouped
            sizes = np.bincount(codes, minlength=len(groups))
            small = sizes < self.min_group_size
            pooled = self._learn_edges(X) if small.any() else None
            blocks = [
                pooled if small[i] and pooled is not None else self._learn_edges(X[codes == i])
                for i in range(len(groups))
            ]
            self.groups_ = groups
            self.small_groups_ = groups[small]
            index = pd.MultiIndex.from_product([groups, _METRICS], names=[groups.name, "metric"])
            self.edges_ = pd.DataFrame(np.vstack(blocks), index=index, columns=scores)
            if small.any():
                shown = self.small_groups_[:5].tolist() + (["..."] if small.sum() > 5 else [])
                warnings.warn(
                    f"RFMScorer.fit: {int(small.sum())} of {len(groups)} group(s) have fewer "
                    f"than min_group_size={self.min_group_size} customers ({shown}); their "
                    f"{int(sizes[small].sum())} customer(s) are scored with the edges learned "
                    f"on all {len(X)} customers pooled. See small_groups_.",
                    UserWarning,
                    stacklevel=2,
                )
        self.n_features_in_ = X.shape[1]
        return self

    def _fit_spark(self, X: Any) -> RFMScorer:
        """Fit on a PySpark frame: exact edges computed in Spark, no customer collected.

        With a ``group`` recorded on the frame (the feature builders' ``group=``),
        the edges are learned within each group as the pandas fit does on a
        ``(customer_id, group)`` index, small groups pooled.
        """
        from rfmml.features._spark import frame_attrs
        from rfmml.segments._spark import check_spark_features, spark_quantile_edges_of

        n_obs = check_spark_features(X, list(self.columns.values()), where="RFMScorer.fit")
        self.small_groups_ = None
        self.groups_ = None  # without a group column the edges are pooled
        group = frame_attrs(X).get("group")
        scores = list(range(2, self.n_scores + 1))
        if self.method == "thresholds":
            edges = self._threshold_edges()
        else:
            orient = [(self.recency_col, True), (self.frequency_col, False),
                      (self.monetary_col, False)]  # fmt: skip
            recency, frequency, monetary = spark_quantile_edges_of(X, orient, self.n_scores, n_obs)
            edges = np.vstack([-recency, frequency, monetary])
            if group is not None and group in X.columns:
                self._fit_spark_groups(X, str(group), edges)
                self.n_features_in_ = len(X.columns)
                return self
        self.edges_ = pd.DataFrame(edges, index=pd.Index(_METRICS, name="metric"), columns=scores)
        self.n_features_in_ = len(X.columns)
        return self

    def _fit_spark_groups(self, X: Any, group: str, pooled: np.ndarray) -> None:
        """Per-group edges of a Spark frame (``pooled`` for the groups under ``min_group_size``)."""
        from rfmml.segments._spark import spark_group_quantile_edges, spark_group_sizes

        sizes = spark_group_sizes(X, group, where="RFMScorer.fit")
        per_metric = [
            (self.recency_col, True, -1.0),
            (self.frequency_col, False, 1.0),
            (self.monetary_col, False, 1.0),
        ]
        learned = [
            (sign, spark_group_quantile_edges(X, col, group, self.n_scores, negate=negate))
            for col, negate, sign in per_metric
        ]
        groups = pd.Index(sizes.index.to_numpy(), name=group)
        small = sizes.to_numpy() < self.min_group_size
        blocks = [
            pooled if small[i] else np.vstack([sign * by[g] for sign, by in learned])
            for i, g in enumerate(groups)
        ]
        self.groups_ = groups
        self.small_groups_ = groups[small]
        index = pd.MultiIndex.from_product([groups, _METRICS], names=[group, "metric"])
        self.edges_ = pd.DataFrame(
            np.vstack(blocks), index=index, columns=list(range(2, self.n_scores + 1))
        )
        if small.any():
            shown = self.small_groups_[:5].tolist() + (["..."] if small.sum() > 5 else [])
            warnings.warn(
                f"RFMScorer.fit: {int(small.sum())} of {len(groups)} group(s) have fewer "
                f"than min_group_size={self.min_group_size} customers ({shown}); their "
                f"{int(sizes.to_numpy()[small].sum())} customer(s) are scored with the edges "
                f"learned on all {int(sizes.sum())} customers pooled. See small_groups_.",
                UserWarning,
                stacklevel=3,
            )

    def _transform_spark(self, X: Any) -> Any:
        from rfmml.segments._spark import check_spark_features, spark_group_scores, spark_scores

        check_spark_features(X, list(self.columns.values()), where="RFMScorer.transform")
        if self.groups_ is not None:
            group = self.groups_.name
            if group is None or group not in X.columns:
                raise DataError(
                    f"RFMScorer.transform: the scorer was fitted per group ({group!r}), but the "
                    f"Spark frame has no such column (columns {list(X.columns)})."
                )
            return spark_group_scores(X, self.edges_, str(group), self.columns, self.n_scores)
        return spark_scores(X, self.edges_.to_numpy(), self.columns, self.n_scores)

    @staticmethod
    def _score(values: np.ndarray, edges: np.ndarray, metric: str) -> np.ndarray:
        edges = scoring_edges(edges, metric)
        if len(edges) <= _COUNTED_EDGES and not (np.isnan(edges).any() or np.isnan(values).any()):
            # the edges a value passes, counted: a score is 1 + that count, as the search
            # below gives it (sorted edges), in a few linear passes (5x faster at 4 edges)
            score = np.ones(len(values), dtype=np.int64)
            passes = np.less_equal if metric == "R" else np.greater_equal
            for edge in edges:
                np.add(score, passes(values, edge), out=score)
            return score
        if metric == "R":  # edges hold decreasing day limits; passing means x <= edge
            return 1 + np.searchsorted(-edges, -values, side="right")
        return 1 + np.searchsorted(edges, values, side="right")

    def transform(self, X: pd.DataFrame) -> pd.DataFrame:
        """Score customers with the edges learned in ``fit``.

        Parameters
        ----------
        X : pandas.DataFrame or pyspark.sql.DataFrame
            Customer features with the scored columns (new customers allowed).

        Returns
        -------
        pandas.DataFrame or pyspark.sql.DataFrame
            Columns ``R``, ``F``, ``M``, ``FM`` (int64) and ``RFM`` (str), same index as ``X``;
            for a Spark frame, ``customer_id`` and those columns, computed in Spark.

        Raises
        ------
        DataError
            Bad frame, a group not seen in ``fit``, or (per group) customers whose
            group is missing.
        """
        check_is_fitted(self)
        if is_spark(X):
            return self._transform_spark(X)
        columns = self._score_columns(X)
        columns["RFM"] = _rfm_labels(self.n_scores).take(self._rfm_codes(columns))
        return pd.DataFrame(columns, index=X.index, copy=False)

    def _transform_categories(self, X: pd.DataFrame) -> pd.DataFrame:
        """:meth:`transform` of a pandas frame with ``RFM`` as a categorical.

        The same labels, as codes into every label of ``n_scores`` (unused ones
        included) instead of one string per customer: for writers that store
        the labels once (a Parquet dictionary) rather than per customer.
        """
        check_is_fitted(self)
        columns: dict[str, Any] = self._score_columns(X)
        codes = self._rfm_codes(columns)  # stored as the smallest integers that hold them
        dtype = _rfm_dtype(self.n_scores)
        columns["RFM"] = pd.Categorical.from_codes(codes, dtype=dtype, validate=False)
        return pd.DataFrame(columns, index=X.index, copy=False)

    def _rfm_codes(self, columns: Mapping[str, np.ndarray]) -> np.ndarray:
        """Each customer's index into :func:`_rfm_labels` from its ``R``, ``F`` and ``M``."""
        n = self.n_scores
        return ((columns["R"] - 1) * n + columns["F"] - 1) * n + columns["M"] - 1

    def _score_columns(self, X: pd.DataFrame) -> dict[str, np.ndarray]:
        """``R``, ``F``, ``M`` and ``FM`` (int64) of a pandas frame, checked."""
        X = _check_frame(X, list(self.columns.values()), where="RFMScorer.transform")
        values = {m: X[c].to_numpy(dtype=float) for m, c in self.columns.items()}
        if self.groups_ is None:  # one set of edges for everyone: each score column at once
            edges = self.edges_.to_numpy()
            columns = {m: self._score(values[m], edges[j], m).astype(np.int64, copy=False)
                       for j, m in enumerate(_METRICS)}  # fmt: skip
            below = np.logical_or.reduce([columns[m] < 1 for m in _METRICS])
            unscored = int(np.count_nonzero(below))
        else:
            out = np.full((len(X), 3), -1, dtype=np.int64)  # -1: never a valid score
            grouped = self._checked_group_codes(X.index, where="RFMScorer.transform")
            if grouped is None:
                raise DataError(
                    "RFMScorer.transform: the scorer was fitted per group but X has no "
                    "(customer_id, group) MultiIndex."
                )
            codes, groups = grouped
            unseen = groups.difference(self.groups_)
            if len(unseen):
                n_rows = int(np.isin(X.index.get_level_values(1), unseen).sum())
                raise DataError(
                    f"RFMScorer.transform: {n_rows} customers belong to group(s) "
                    f"{list(unseen)[:5]} not seen in fit; fitted groups are "
                    f"{list(self.groups_)[:10]}."
                )
            for i, group in enumerate(groups):
                rows = codes == i
                edges = self.edges_.loc[group].to_numpy()
                for j, metric in enumerate(_METRICS):
                    out[rows, j] = self._score(values[metric][rows], edges[j], metric)
            unscored = int((out < 1).any(axis=1).sum())
            columns = {m: np.ascontiguousarray(out[:, j]) for j, m in enumerate(_METRICS)}
        if unscored:  # not an assert: must hold under python -O too
            raise RuntimeError(
                f"RFMScorer.transform: internal error, {unscored} of {len(X)} customers were "
                f"left without a score; please report this with the input's index."
            )
        columns["FM"] = (columns["F"] + columns["M"] + 1) // 2
        return columns

    def get_feature_names_out(self, input_features: object = None) -> np.ndarray:
        """Names of the output columns."""
        return np.array(["R", "F", "M", "FM", "RFM"], dtype=object)


def linear_score(
    frame: pd.DataFrame,
    weights: Mapping[str, float],
    *,
    standardize: bool = False,
) -> pd.Series:
    """Weighted sum of score or feature columns, for ranking customers.

    Parameters
    ----------
    frame : pandas.DataFrame
        Scores (``R``, ``F``, ``M`` from :class:`RFMScorer`) and/or feature columns,
        e.g. ``scores.join(features)``.
    weights : mapping of str to float
        Column name to weight, e.g. ``{"R": 0.5, "F": 0.3, "M": 0.2}``. Weights are
        used as given (not normalised); negative weights are allowed.
    standardize : bool, default=False
        If False, columns enter in their own units, which suits R/F/M scores that
        share a 1..n scale. If True, each column is z-scored first (mean 0,
        population standard deviation 1; a constant column becomes 0), within each
        group when ``frame`` has a ``(customer_id, group)`` MultiIndex, so features
        in days and dollars can be mixed.

    Returns
    -------
    pandas.Series
        Float score named ``"linear_score"``, aligned to ``frame.index``.

    Raises
    ------
    ConfigError
        Empty weights or non-finite weights.
    DataError
        A weighted column is missing, non-numeric or has NaN.

    Examples
    --------
    >>> import pandas as pd
    >>> s = pd.DataFrame({"R": [5, 1], "F": [4, 1], "M": [3, 2]})
    >>> linear_score(s, {"R": 0.5, "F": 0.25, "M": 0.25}).tolist()
    [4.25, 1.25]
    """
    if not weights:
        raise ConfigError("linear_score needs at least one weight, e.g. {'R': 1.0}.")
    bad = {k: w for k, w in weights.items() if not np.isfinite(float(w))}
    if bad:
        raise ConfigError(f"linear_score weights must be finite numbers, got {bad}.")
    if not isinstance(frame, pd.DataFrame):
        raise TypeError(f"linear_score expects a DataFrame, got {type(frame).__name__}.")
    missing = [c for c in weights if c not in frame.columns]
    if missing:
        raise DataError(
            f"linear_score: missing column(s) {missing}; available columns are "
            f"{list(map(str, frame.columns))}."
        )
    total = np.zeros(len(frame))
    grouped = _group_codes(frame.index) if standardize else None
    if grouped is not None and (grouped[0] < 0).any():
        level = frame.index.names[1] or "group"
        raise DataError(
            f"linear_score: {int((grouped[0] < 0).sum())} of {len(frame)} customers have a "
            f"missing {level!r} (the group level of the index); drop or fill them first."
        )
    for col, w in weights.items():
        values = pd.to_numeric(frame[col], errors="coerce").to_numpy(dtype=float)
        n_nan = int(np.isnan(values).sum())
        if n_nan:
            raise DataError(
                f"linear_score: column {col!r} has {n_nan} of {len(frame)} missing or "
                f"non-numeric values."
            )
        if standardize:
            keys = grouped[0] if grouped is not None else np.zeros(len(values), dtype=np.intp)
            s = pd.Series(values)
            by = s.groupby(keys)
            std = by.transform("std", ddof=0).to_numpy()
            centred = values - by.transform("mean").to_numpy()
            values = np.divide(centred, std, out=np.zeros_like(centred), where=std > 0)
        total += float(w) * values
    return pd.Series(total, index=frame.index, name="linear_score")
