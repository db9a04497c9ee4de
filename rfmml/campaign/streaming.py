"""Score the customers of a DuckDB features table chunk by chunk, writing as it goes.

:func:`score_features_table` is the job of ``rfmml predict`` (and of the final
scoring of ``rfmml run``) past what fits in pandas: the per-customer features stay
in DuckDB (:class:`~rfmml.features.combined.FeaturesTable`), and memory is bounded
by the chunk size, not by the number of customers:

1. what needs all customers is computed once, without the customer table in
   pandas: the purchase model's outputs on the distinct ``(frequency, recency,
   T)`` rows (``SELECT DISTINCT`` in DuckDB; a small fraction of the customers
   with whole-period summaries), the purchase part of the CLV included
   (:func:`~rfmml.campaign.scoring.clv_purchase_factor`), gathered back per chunk;
2. each chunk of customers (``chunk_rows``, in customer-id order, the order of
   :func:`~rfmml.features.customer_features`) is scored by the code of
   :func:`~rfmml.campaign.score_customers` and appended to ``predictions.parquet``
   (one row group per chunk) and ``predictions.csv``
   (:func:`~rfmml.campaign.exports.write_predictions_chunks`);
3. the totals the run reports (customers, P(alive), expected purchases and CLV,
   overall and per segment) are added up chunk by chunk.

The writing of the chunks (in a background thread) waits for the first one, so
that one is made with the work spread over threads (:func:`rfmml._threads.start`):
the outputs of step 1 are computed on the pool while the first chunk is read and
its segments and actions (:func:`~rfmml.campaign.scoring.segment_columns`, no
model output needed) are computed on the pool too; each value is computed by
the same calls as in one thread (``RFMML_THREADS=1`` runs them in order).

The files are the ones :func:`~rfmml.campaign.write_predictions` writes for the
whole table (same Parquet content, same CSV bytes; tests compare them on CDNOW,
Online Retail and a simulated log). :func:`fit_on_table` fits a model on the
distinct rows of the table with their counts, and :func:`fit_rule_segmenter` learns
the rule segments' quantile edges in DuckDB; both equal fits on the pandas tables.
:func:`fit_models_on_table` fits a pipeline's purchase model, Gamma-Gamma and rules
at once, the purchase model on a thread of its own.

What is not streamed, and falls back to one pandas table (the result is the same):
intervals (their totals per segment come from joint draws over all customers), and a
discounted BG/NBD CLV on a table whose ``(frequency, T)`` rows may not repeat when
the table is neither held in memory nor read in the order it was written (never
for :func:`~rfmml.features.combined.customer_features_table`'s tables). Otherwise
such a CLV is summed as the whole table's would be: from BG/NBD's table of the
discounted sum per frequency when an evenly strided sample of the table's rows,
read in its order, does not repeat (:func:`rfmml.models._grouping.rows_repeat`, the
test of :func:`rfmml.models.clv.discounted_purchases`), else row by row; an
undiscounted CLV is the expected purchases times the expected order value, with no
sum at all.
"""

from __future__ import annotations

import contextlib
import functools
import itertools
import math
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sklearn.utils.validation import check_is_fitted

from rfmml._threads import Started, start
from rfmml.campaign.exports import _predictions_file, write_predictions, write_predictions_chunks
from rfmml.campaign.pipeline_model import BTYD_COLUMNS, ScoringPipeline, scoring_frame
from rfmml.campaign.playbook import load_playbook
from rfmml.campaign.scoring import (
    TEXT_CATEGORIES,
    _score_customers,
    clv_purchase_factor,
    purchase_outputs,
    purchase_row_columns,
    segment_columns,
)
from rfmml.errors import DataError
from rfmml.features.combined import FeaturesTable
from rfmml.models import BetaGeoNBD, _grouping
from rfmml.segments import RuleSegmenter

__all__ = [
    "CHUNK_ROWS",
    "StreamedPredictions",
    "fit_models_on_table",
    "fit_on_table",
    "fit_rule_segmenter",
    "score_features_table",
]

#: Customers scored (and written) at a time.
CHUNK_ROWS = 1_000_000


def _q(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


@dataclass
class StreamedPredictions:
    """What :func:`score_features_table` wrote and the totals the run reports.

    Attributes
    ----------
    paths : dict of str to pathlib.Path
        ``"parquet"``, ``"csv"`` (those written) and ``"meta"``.
    n_rows : int
        Customers scored.
    attrs : dict
        The scoring settings (the table's ``attrs``).
    columns : list of str
        Columns of the predictions.
    sums : dict of str to float
        Sums over all customers of ``probability_alive``, ``expected_purchases`` and
        ``clv`` (those present).
    by_segment : pandas.DataFrame
        Per rule segment (when there is one): ``customers`` and the sum of ``clv``
        (or ``expected_purchases`` without a spend model), highest first.
    streamed : bool
        Whether the table was scored in chunks (``False``: the pandas fallback).
    """

    paths: dict[str, Path]
    n_rows: int
    attrs: dict[str, Any]
    columns: list[str]
    sums: dict[str, float] = field(default_factory=dict)
    by_segment: pd.DataFrame = field(default_factory=pd.DataFrame)
    streamed: bool = True


def fit_on_table(model: Any, table: FeaturesTable) -> Any:
    """Fit a BTYD model on the distinct rows of its columns in ``table``, with their counts.

    The model collapses a summary to its distinct rows with counts (sorted) before
    fitting; here DuckDB collapses it, so the same rows and weights reach the
    likelihood and the fitted parameters are those of ``model.fit(summary)``.

    Parameters
    ----------
    model : PurchaseModel or GammaGamma
        Unfitted estimator (fitted in place).
    table : FeaturesTable

    Returns
    -------
    The fitted model.
    """
    return model.fit(fit_rows(model, table))


def fit_models_on_table(
    table: FeaturesTable,
    purchase_model: Any = None,
    gamma_gamma: Any = None,
    rule_segmenter: RuleSegmenter | None = None,
) -> tuple[Any, Any, RuleSegmenter | None]:
    """Fit a scoring pipeline's models on ``table``: the purchase model beside the others.

    The models :func:`fit_on_table` and :func:`fit_rule_segmenter` fit, the
    same values: the purchase model's rows are grouped here, then its fit (the
    likelihood's quasi-Newton steps on the distinct rows, with their own
    threads: 0.3-0.4 s at 3.3M customers) runs on a thread of its own while
    this one groups and fits the Gamma-Gamma rows and learns the rules' edges
    in DuckDB (0.25 s). Only this thread uses the table's connection. With
    ``RFMML_THREADS=1`` the fits run one after the other.

    Parameters
    ----------
    table : FeaturesTable
    purchase_model, gamma_gamma : estimator, optional
        Unfitted models (fitted in place).
    rule_segmenter : RuleSegmenter, optional
        Unfitted segmenter.

    Returns
    -------
    tuple
        ``(purchase_model, gamma_gamma, rule_segmenter)`` fitted (None where not
        given).

    Raises
    ------
    Exception
        What a fit raises; the first in the order of the arguments when several
        fail, after every fit has stopped.
    """
    import threading

    from rfmml._threads import thread_count

    failures: list[BaseException] = []
    worker = None
    # the table's connection is used by one thread at a time (DuckDB's connections are
    # not shared between threads): the purchase model's rows are grouped on the fit's
    # thread, in memory when the table is held there (at 3.3M customers the grouping kept
    # one core busy while the other waited 0.1 s) and by a statement under this lock
    # otherwise, while this thread groups the Gamma-Gamma rows and learns the rules' edges
    connection = threading.Lock()
    if purchase_model is not None:
        if thread_count() > 1 and (gamma_gamma is not None or rule_segmenter is not None):

            def fit_purchase() -> None:
                try:
                    purchase_model.fit(_grouped_rows(purchase_model, table, connection))
                except BaseException as exc:  # raised in the caller's thread
                    failures.append(exc)

            worker = threading.Thread(target=fit_purchase, name="rfmml-fit")
            worker.start()
        else:
            purchase_model.fit(fit_rows(purchase_model, table))
    try:
        if gamma_gamma is not None:
            gamma_gamma.fit(_grouped_rows(gamma_gamma, table, connection))
        if rule_segmenter is not None:
            with connection:
                rule_segmenter = fit_rule_segmenter(rule_segmenter, table)
    except BaseException:
        if worker is not None:
            worker.join()
        if failures:  # the purchase model's error first
            raise failures[0] from None
        raise
    if worker is not None:
        worker.join()
    if failures:
        raise failures[0]
    return purchase_model, gamma_gamma, rule_segmenter


def fit_rows(model: Any, table: FeaturesTable) -> pd.DataFrame:
    """The distinct rows of ``model``'s columns in ``table``, sorted, with their counts.

    What :func:`fit_on_table` fits ``model`` on (``weights`` holds the counts;
    the summary's attrs are kept): ``model.fit(fit_rows(model, table))`` equals
    ``model.fit(summary)`` on the table's summary.

    Parameters
    ----------
    model : PurchaseModel or GammaGamma
    table : FeaturesTable

    Returns
    -------
    pandas.DataFrame
    """
    return _grouped_rows(model, table, contextlib.nullcontext())


def _grouped_rows(
    model: Any, table: FeaturesTable, connection: AbstractContextManager[Any]
) -> pd.DataFrame:
    """:func:`fit_rows`, holding ``connection`` (a lock) while it uses the table's connection.

    A table held in memory (:attr:`FeaturesTable.arrow`) is grouped without the
    connection when :func:`_counted_rows` takes its columns, so another thread
    may use the connection meanwhile.
    """
    columns = [c for c in model.fit_columns if c in table.summary_columns]
    with contextlib.nullcontext() if table.arrow is not None else connection:
        rows = _counted_rows(table, columns)
    if rows is None:  # NULL or NaN: as the statement groups them, for the model to report
        names = ", ".join(_q(c) for c in columns)
        with connection:
            rows = table.connection.sql(
                f"SELECT {names}, count(*)::DOUBLE AS weights FROM {_q(table.table)} "
                f"GROUP BY ALL ORDER BY {names}"
            ).df()
    rows.attrs = dict(table.summary_attrs)
    return rows


def _counted_rows(table: FeaturesTable, columns: list[str]) -> pd.DataFrame | None:
    """``SELECT columns, count(*)::DOUBLE AS weights ... GROUP BY ALL ORDER BY columns``.

    Columns of small whole numbers (whole-period summaries) are read once and
    grouped by one sort (:func:`rfmml.models._grouping.sorted_distinct_rows`):
    at 3.4M customers and 1.4M distinct (frequency, recency, T) rows, 0.43
    CPU s against DuckDB's 1.07 for the statement. None otherwise (a column
    of other numbers, where the statement's hash aggregation is faster, or
    holding NULL or NaN), and past :data:`SORT_ROWS_MAX` customers.
    """
    found = table.distinct_rows.get(tuple(columns))
    if found is None:
        if table.n_rows > SORT_ROWS_MAX:
            return None
        arrays = _fetched(table, columns)
        if arrays is None or not all(_grouping.small_whole_numbers(a) for a in arrays):
            return None
        found = _grouping.sorted_distinct_rows(*arrays)
        if found is None:
            return None
        if all(a.dtype == np.float64 for a in arrays):  # as the scoring reads them
            table.distinct_rows[tuple(columns)] = found
    distinct, codes = found
    rows = pd.DataFrame(dict(zip(columns, distinct, strict=True)))
    rows["weights"] = np.bincount(codes, minlength=len(rows)).astype(np.float64)
    return rows


def _fetched(table: FeaturesTable, columns: list[str]) -> list[np.ndarray] | None:
    """Every customer's values of ``columns``, in the table's order; None with NULLs.

    Read-only views of a table held in memory (:attr:`FeaturesTable.arrow`).
    """
    arrow = table.relation(columns).to_arrow_table() if table.arrow is None else table.arrow
    if any(arrow.column(c).null_count for c in columns):
        return None
    return [arrow.column(c).to_numpy() for c in columns]


def _check_rule_columns(table: FeaturesTable, columns: list[str]) -> int:
    """Validate the scored columns in DuckDB as :class:`RFMScorer` does; the row count."""
    parts = []
    for c in columns:
        parts += [f"count(*) FILTER (WHERE {_q(c)} IS NULL OR isnan({_q(c)}::DOUBLE))",
                  f"count(*) FILTER (WHERE {_q(c)} < 0)"]  # fmt: skip
    counts = table.connection.sql(
        f"SELECT count(*), {', '.join(parts)} FROM {_q(table.table)}"
    ).fetchall()[0]
    n = int(counts[0])
    for i, c in enumerate(columns):
        n_nan, n_neg = int(counts[1 + 2 * i]), int(counts[2 + 2 * i])
        if n_nan:
            raise DataError(
                f"RFMScorer.fit: column {c!r} has {n_nan} of {n} missing or non-numeric "
                "values. Drop or fill those customers first."
            )
        if n_neg:
            raise DataError(
                f"RFMScorer.fit: column {c!r} has {n_neg} of {n} negative values; recency, "
                "order counts and spend must be >= 0."
            )
    return n


def _distinct_counts(table: FeaturesTable, column: str, negate: bool) -> tuple[np.ndarray, ...]:
    """Distinct values of a column (negated first with ``negate``), ascending, and counts."""
    got = table.connection.sql(
        f"SELECT {_q(column)}::DOUBLE AS v, count(*) AS n FROM {_q(table.table)} GROUP BY ALL"
    ).fetchnumpy()
    values = np.asarray(got["v"], dtype=float)
    counts = np.asarray(got["n"], dtype=np.int64)
    if negate:
        values = -values
    order = np.argsort(values, kind="stable")
    return values[order], counts[order]


def quantile_edges_sql(
    table: FeaturesTable, column: str, n_scores: int, negate: bool
) -> np.ndarray:
    """The quantile edges of ``RFMScorer`` (strictly-worse share rule) from value counts.

    Score ``k`` needs at least ``ceil((k - 1) * N / n)`` customers strictly below:
    its edge is the smallest distinct value with that many customers below it
    (``inf`` when none), which is the sorted-array rule of the scorer, tie blocks
    included, without sorting the customers.
    """
    values, counts = _distinct_counts(table, column, negate)
    below = np.cumsum(counts) - counts  # customers strictly below each distinct value
    n_obs = int(counts.sum())
    edges = np.empty(n_scores - 1)
    for k in range(2, n_scores + 1):
        need = -((-(k - 1) * n_obs) // n_scores)
        if need >= n_obs:
            edges[k - 2] = np.inf
            continue
        at = int(np.searchsorted(below, need, side="left"))
        edges[k - 2] = values[at] if at < len(values) else np.inf
    return edges


def fit_rule_segmenter(segmenter: RuleSegmenter, table: FeaturesTable) -> RuleSegmenter:
    """Fit a rule segmenter on every customer of ``table``, edges computed in DuckDB.

    With the quantile method and one set of edges (no group), the edges come
    from the value counts of each scored column (:func:`quantile_edges_sql`) and
    equal those ``segmenter.fit(features)`` learns; otherwise (thresholds, or per
    group) the segmenter is fitted on the scored columns in pandas.

    Parameters
    ----------
    segmenter : RuleSegmenter
        Unfitted segmenter (fitted in place).
    table : FeaturesTable

    Returns
    -------
    RuleSegmenter
    """
    probe = segmenter.scorer if segmenter.scorer is not None else None
    from rfmml.segments.scoring import RFMScorer

    scorer = probe if probe is not None else RFMScorer()
    columns = list(scorer.columns.values())
    if not set(columns) <= set(table.feature_columns):
        missing = sorted(set(columns) - set(table.feature_columns))
        raise DataError(f"RFMScorer.fit: features lack column(s) {missing}")
    grouped = len(table.keys) > 1
    if grouped or scorer.method != "quantile":
        cols = [*table.keys, *columns]
        frame = table.connection.sql(
            f"SELECT {', '.join(_q(c) for c in cols)} FROM {_q(table.table)}"
        ).df()
        return _seen_features(segmenter.fit(frame.set_index(table.keys)), table)
    _check_rule_columns(table, columns)
    head = table.connection.sql(
        f"SELECT {', '.join(_q(c) for c in [*table.keys, *table.feature_columns])} "
        f"FROM {_q(table.table)} LIMIT {max(scorer.n_scores, 2)}"
    ).df()
    head = head.set_index(table.keys).select_dtypes("number")
    fitted = segmenter.fit(head)  # loads and checks the scheme; the edges are replaced
    edges = np.vstack(
        [
            -quantile_edges_sql(table, scorer.recency_col, scorer.n_scores, negate=True),
            quantile_edges_sql(table, scorer.frequency_col, scorer.n_scores, negate=False),
            quantile_edges_sql(table, scorer.monetary_col, scorer.n_scores, negate=False),
        ]
    )
    fitted.scorer_.edges_ = pd.DataFrame(
        edges, index=fitted.scorer_.edges_.index, columns=fitted.scorer_.edges_.columns
    )
    return _seen_features(fitted, table)


def _seen_features(fitted: RuleSegmenter, table: FeaturesTable) -> RuleSegmenter:
    """The features count a fit on the table's whole features frame records (``n_features_in_``)."""
    fitted.scorer_.n_features_in_ = len(table.feature_columns)
    fitted.n_features_in_ = fitted.scorer_.n_features_in_
    return fitted


def _outputs_of_rows(
    model: Any, rows: pd.DataFrame, horizon: int, median: bool, window: float | None,
    clv: bool, discount_rate: float, tabulate: bool = False,
) -> dict[str, np.ndarray]:  # fmt: skip
    """:func:`purchase_outputs` of the distinct rows, with the CLV's purchase factor (``clv``).

    ``tabulate``: the factor as the whole table's CLV sums it (:func:`_clv_tabulated`).
    """
    outputs = purchase_outputs(model, rows, horizon, median=median, next_order_window=window)
    if clv and discount_rate == 0.0:  # the factor is the expected purchases (same rows)
        outputs["clv_factor"] = outputs["expected_purchases"]
    elif clv:
        outputs["clv_factor"] = clv_purchase_factor(model, rows, horizon, discount_rate,
                                                    tabulate=tabulate)  # fmt: skip
    return outputs


def _first_then(head: list[pd.DataFrame], rest: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
    """The chunks of ``head`` (taken out of it: not held once written), then ``rest``."""
    while head:
        yield head.pop(0)
    yield from rest


def _own_index(frame: pd.DataFrame) -> pd.DataFrame:
    """``frame`` (its arrays shared) on a copy of its index (caches not shared with the caller)."""
    return frame.set_axis(frame.index.copy(), axis=0)


class _RowCodes:
    """Each customer's row among the distinct rows of some summary columns.

    The distinct rows come sorted (lexicographically); every column's values get
    their rank among that column's distinct values, and the ranks combine into
    one integer key per row (mixed radix, so sorted rows have sorted keys): a
    chunk's customers find their rows by binary search on the keys.
    """

    def __init__(self, rows: pd.DataFrame, columns: list[str]) -> None:
        self.columns = columns
        self.levels = [np.unique(rows[c].to_numpy(dtype=float)) for c in columns]
        sizes = [len(v) for v in self.levels]
        if math.prod(max(s, 1) for s in sizes) >= 2**62:
            raise OverflowError("too many distinct values to combine into one key")
        self.sizes = sizes
        self.keys = self._key(rows)
        if len(self.keys) > 1 and not np.all(np.diff(self.keys) > 0):
            raise RuntimeError("internal error: distinct rows are not sorted and unique")

    def _key(self, frame: pd.DataFrame) -> np.ndarray:
        key = np.zeros(len(frame), dtype=np.int64)
        for column, levels, size in zip(self.columns, self.levels, self.sizes, strict=True):
            values = frame[column].to_numpy(dtype=float)
            rank = np.searchsorted(levels, values)
            bad = (rank >= size) | (levels[np.minimum(rank, size - 1)] != values)
            if bad.any():
                raise DataError(
                    f"column {column!r}: {int(bad.sum())} of {len(frame)} values are not among "
                    "the table's distinct rows (missing values?)"
                )
            key = key * size + rank
        return key

    def codes(self, frame: pd.DataFrame, chunk: int | None = None) -> np.ndarray:
        """The row of each customer of ``frame`` (``chunk``: unused, as :class:`_TableCodes`)."""
        keys = self._key(frame)
        # searched in sorted order, each search starts near the last one (in cache):
        # a third of the time of searching a million keys in customer order
        order = np.argsort(keys)
        codes = np.empty(len(keys), dtype=np.intp)
        codes[order] = np.searchsorted(self.keys, keys[order])
        return codes


#: Most customers whose distinct summary rows are found by one sort in memory
#: (:func:`rfmml.models._grouping.sorted_distinct_rows`, about 70 bytes a customer at
#: once); larger tables are grouped by DuckDB within its memory budget (at 33.8M
#: customers the sort held 1.7 GiB more than DuckDB's statements).
SORT_ROWS_MAX = 2**24


class _TableCodes:
    """Each customer's row among the distinct rows, found once for the whole table.

    The columns of every customer are read once, in the order the chunks come
    (:func:`_chunks`), and :func:`rfmml.models._grouping.sorted_distinct_rows`
    gives the distinct rows (in the order of ``SELECT DISTINCT ... ORDER BY``)
    and every customer's row in one sort (or :func:`fit_on_table` left them on
    the table). A chunk takes its slice of those numbers when the rows they
    name hold the chunk's values (they do when the table is read in the same
    order twice; a table held in memory, :attr:`FeaturesTable.arrow`, is read
    in its own order by both, and its chunks take their slices unchecked);
    otherwise its customers find their rows by search, as :class:`_RowCodes`.
    """

    def __init__(self, rows: pd.DataFrame, columns: list[str], codes: np.ndarray,
                 chunk_rows: int, in_chunk_order: bool = False) -> None:  # fmt: skip
        self.rows, self.columns, self.all_codes, self.chunk_rows = rows, columns, codes, chunk_rows
        self.in_chunk_order = in_chunk_order
        self._values = [rows[c].to_numpy() for c in columns]
        self._search: _RowCodes | None = None

    @classmethod
    def of_table(cls, table: FeaturesTable, columns: list[str],
                 chunk_rows: int) -> _TableCodes | None:  # fmt: skip
        """The codes of ``table``'s customers; None when a column holds NULL or NaN.

        None too past :data:`SORT_ROWS_MAX` customers.
        """
        found = table.distinct_rows.pop(tuple(columns), None)
        if found is None:
            if table.n_rows > SORT_ROWS_MAX:
                return None
            arrays = _fetched(table, columns)
            if arrays is None:
                return None
            found = _grouping.sorted_distinct_rows(
                *(a.astype(np.float64, copy=False) for a in arrays)
            )
            del arrays
            if found is None:
                return None
        distinct, codes = found
        rows = pd.DataFrame(dict(zip(columns, distinct, strict=True)))
        # a table held in memory is read in its own order, here and by _chunks (slices
        # of the same Arrow table): a chunk's numbers need no check against its values
        return cls(rows, columns, codes, chunk_rows, in_chunk_order=table.arrow is not None)

    def codes(self, frame: pd.DataFrame, chunk: int | None = None) -> np.ndarray:
        """The row of each customer of ``frame``, chunk number ``chunk`` of the table."""
        if chunk is not None:
            start = chunk * self.chunk_rows
            part = self.all_codes[start : start + len(frame)]
            if len(part) == len(frame) and self.in_chunk_order:
                return part
            if len(part) == len(frame) and all(
                np.array_equal(values[part], frame[c].to_numpy(dtype=float))
                for c, values in zip(self.columns, self._values, strict=True)
            ):
                return part
        if self._search is None:
            self._search = _RowCodes(self.rows, self.columns)
        return self._search.codes(frame)


def _chunks(table: FeaturesTable, chunk_rows: int) -> Iterator[pd.DataFrame]:
    """The scoring input (:func:`scoring_frame`) of consecutive chunks of customers."""
    import pyarrow as pa

    # scoring_frame keeps the numeric features: the times are not fetched at all
    described = table.connection.sql(f"DESCRIBE {_q(table.table)}").fetchall()
    types = {row[0]: str(row[1]) for row in described}
    feature_columns = [c for c in table.feature_columns
                       if not types.get(c, "").startswith(("TIMESTAMP", "DATE"))]  # fmt: skip
    columns = [*table.keys, *feature_columns, *table.summary_columns]

    def frame_of(arrays: dict[str, np.ndarray]) -> pd.DataFrame:
        # copy=False: one block per column, the fetched arrays as they are (no stacking copy)
        frame = pd.DataFrame(arrays, copy=False)
        frame = frame.set_index(table.keys)
        frame["n_orders"] = frame["n_orders"].astype("int64")
        features = frame[feature_columns]
        summary = frame[table.summary_columns]
        features.attrs = dict(table.feature_attrs)
        summary.attrs = dict(table.summary_attrs)
        return scoring_frame(features, summary)

    def of_arrow(arrow: Any) -> dict[str, np.ndarray]:
        return {name: _plain(arrow.column(name).to_numpy()) for name in arrow.column_names}

    if table.arrow is not None and not any(table.arrow.column(c).null_count for c in columns):
        # held in memory: each chunk's columns are read-only views of slices (the
        # predictions copy the columns they keep: segment_columns)
        for start in range(0, table.n_rows, chunk_rows):
            part = table.arrow.slice(start, chunk_rows)
            yield frame_of({c: _plain(part.column(c).to_numpy()) for c in columns})
        return

    if _numbered_rows(table):
        # each chunk straight into numpy by its row numbers: Arrow's batches of 122,880
        # rows and their concatenation into a chunk's columns cost a copy more
        names = ", ".join(_q(c) for c in columns)
        con = table.connection
        con.execute("SET preserve_insertion_order = true")
        for start in range(0, table.n_rows, chunk_rows):
            sql = (f"SELECT {names} FROM {_q(table.table)} WHERE rowid >= {start} "
                   f"AND rowid < {start + chunk_rows}")  # fmt: skip
            fetched = con.sql(sql).fetchnumpy()
            if any(isinstance(v, np.ma.MaskedArray) for v in fetched.values()):
                # NULLs: fetched through Arrow, whose arrays show them as the pandas path does
                fetched = of_arrow(con.sql(sql).to_arrow_table())
            yield frame_of({name: _plain(np.asarray(fetched[name])) for name in columns})
        return
    reader = table.relation(columns).to_arrow_reader(chunk_rows)
    pending: list[Any] = []
    count = 0
    for batch in reader:  # DuckDB hands back batches of up to chunk_rows rows
        if not batch.num_rows:
            continue
        pending.append(batch)
        count += batch.num_rows
        while count >= chunk_rows:  # exactly chunk_rows customers a chunk (the last: fewer)
            rows = pa.Table.from_batches(pending)
            yield frame_of(of_arrow(rows.slice(0, chunk_rows)))
            rest = rows.slice(chunk_rows)
            pending, count = rest.to_batches(), rest.num_rows
    if count:
        yield frame_of(of_arrow(pa.Table.from_batches(pending)))


def _numbered_rows(table: FeaturesTable) -> bool:
    """Whether the table's rows are numbered ``0 .. n_rows - 1`` in the order it is read.

    A table created in one statement and never changed (as
    :func:`~rfmml.features.combined.customer_features_table` leaves it) is:
    DuckDB numbers rows as they are inserted and reads them in that order.
    """
    import duckdb

    try:
        low, high, n = table.connection.sql(
            f"SELECT min(rowid), max(rowid), count(*) FROM {_q(table.table)}"
        ).fetchall()[0]
    except duckdb.Error:  # a view or another relation without row numbers
        return False
    return bool(n == table.n_rows and (n == 0 or (low == 0 and high == n - 1)))


def _plain(values: np.ndarray) -> np.ndarray:
    """An Arrow column as the array ``fetchnumpy`` gives (text as objects, times as us)."""
    if values.dtype.kind == "M":
        return values.astype("datetime64[us]")
    return values


def _needs_one_table(pipeline: ScoringPipeline, tabulated: bool | None) -> str | None:
    """Why the table must be scored in one piece, or ``None`` when chunks give the same.

    ``tabulated`` is :func:`_clv_tabulated` of the table.
    """
    if pipeline.interval:
        return "intervals (their per-segment totals use every customer at once)"
    if tabulated is None:
        return "a discounted BG/NBD CLV on rows that may not repeat, in no known order"
    return None


def _clv_tabulated(pipeline: ScoringPipeline, table: FeaturesTable) -> bool | None:
    """Whether the CLV of the whole table sums BG/NBD's discounted purchases from a table.

    :func:`~rfmml.models.clv.discounted_purchases` decides it on the whole
    table (:func:`~rfmml.models._grouping.rows_repeat` of its ``(frequency,
    T)`` rows: an evenly strided sample of them, in the table's order); the
    same decision here, from the distinct pairs when few enough and else from
    the same sample read off the table. False without a discounted BG/NBD
    CLV; None when the sample cannot be read in the table's order (a table
    neither held in memory nor numbered in its order).
    """
    model = pipeline.purchase_model
    if type(model) is not BetaGeoNBD or pipeline.gamma_gamma is None:
        return False
    if float(pipeline.discount_rate) == 0.0:  # the expected purchases: no sum, no table
        return False
    positions = _grouping.sample_positions(table.n_rows)
    limit = _grouping.COLLAPSE_MAX_FRACTION * max(int(_grouping.CHUNK_ROWS), 1)
    if positions is None or _distinct_pairs(table) <= limit:
        return False  # rows repeat (at most `limit` distinct pairs in any sample)
    sampled = _sampled_pairs(table, positions)
    if sampled is None:
        return None
    return not _grouping.sample_repeats(*sampled)


def _sampled_pairs(table: FeaturesTable, positions: np.ndarray) -> tuple[np.ndarray, ...] | None:
    """``frequency`` and ``T`` of the customers at ``positions`` (evenly strided, from 0).

    In the order the table is read (and scored in one piece); None when that
    order is not known or a value is missing.
    """
    if table.arrow is not None:
        import pyarrow as pa

        picked = table.arrow.select(["frequency", "T"]).take(pa.array(positions))
        pairs = tuple(
            picked.column(c).to_numpy(zero_copy_only=False).astype(np.float64)
            for c in ("frequency", "T")
        )
    elif _numbered_rows(table):
        stride = int(positions[1] - positions[0]) if len(positions) > 1 else 1
        fetched = table.connection.sql(
            f'SELECT frequency, "T" FROM {_q(table.table)} WHERE rowid % {stride} = 0 '
            f"AND rowid <= {int(positions[-1])} ORDER BY rowid"
        ).fetchnumpy()
        pairs = tuple(
            np.ma.filled(np.ma.asarray(fetched[c], dtype=np.float64), np.nan)
            for c in ("frequency", "T")
        )
    else:
        return None
    if len(pairs[0]) != len(positions) or not all(np.isfinite(p).all() for p in pairs):
        return None
    return pairs


def _distinct_pairs(table: FeaturesTable) -> int:
    """Distinct ``(frequency, T)`` pairs of the table (``SELECT DISTINCT``'s count).

    From the distinct rows the fit left on the table when they hold both
    columns (finite numbers: a fraction of the customers, no statement);
    otherwise counted by DuckDB.
    """
    for columns, (distinct, _) in table.distinct_rows.items():
        if "frequency" in columns and "T" in columns:
            x, T = distinct[columns.index("frequency")], distinct[columns.index("T")]
            if np.isfinite(x).all() and np.isfinite(T).all():
                return len(_grouping.group_rows(x, T)[1])
    return int(
        table.connection.sql(
            f'SELECT count(*) FROM (SELECT DISTINCT frequency, "T" FROM {_q(table.table)})'
        ).fetchall()[0][0]
    )


def _whole_ids(table: FeaturesTable) -> list[str]:
    """Float ``*_id`` key columns holding whole numbers only (written as integers in CSV)."""
    out = []
    types = dict(
        (r[0], r[1]) for r in table.connection.sql(f"DESCRIBE {_q(table.table)}").fetchall()
    )
    for key in table.keys:
        if key.endswith("_id") and types.get(key) in ("DOUBLE", "FLOAT"):
            ok = table.connection.sql(
                f"SELECT coalesce(bool_and({_q(key)} = round({_q(key)})), true) "
                f"FROM {_q(table.table)} WHERE isfinite({_q(key)})"
            ).fetchall()[0][0]
            if ok:
                out.append(key)
    return out


@dataclass
class _State:
    attrs: dict[str, Any] = field(default_factory=dict)
    done: int = 0


def _segment_totals(segment: pd.Series, value: pd.Series) -> pd.DataFrame | None:
    """Customers and summed ``value`` per segment present, as ``groupby(observed=True)`` gives.

    Counted on the categorical codes (``numpy.bincount``: a tenth of the grouping's
    0.03 s a million customers); None for a segment column that is not categorical.
    """
    if not isinstance(segment.dtype, pd.CategoricalDtype):
        return None
    codes = segment.cat.codes.to_numpy()
    weights = value.to_numpy(dtype=np.float64, na_value=np.nan)
    kept = codes >= 0
    if not kept.all():  # customers without a segment are not grouped
        codes, weights = codes[kept], weights[kept]
    n_labels = len(segment.cat.categories)
    customers = np.bincount(codes, minlength=n_labels)
    totals = np.bincount(codes, weights=np.nan_to_num(weights, nan=0.0), minlength=n_labels)
    present = np.flatnonzero(customers)
    index = pd.CategoricalIndex(segment.cat.categories[present], dtype=segment.dtype,
                                name=segment.name)  # fmt: skip
    return pd.DataFrame(
        {"customers": customers[present].astype(np.int64), value.name: totals[present]},
        index=index,
    )


class _Totals:
    """Sums over customers and per segment, added chunk by chunk."""

    def __init__(self) -> None:
        self.sums: dict[str, list[float]] = {}
        self.segments: pd.DataFrame | None = None
        self.value = "clv"

    def add(self, chunk: pd.DataFrame) -> None:
        for column in ("probability_alive", "expected_purchases", "clv"):
            if column in chunk.columns:
                self.sums.setdefault(column, []).append(float(chunk[column].sum()))
        if "segment" not in chunk.columns:
            return
        self.value = "clv" if "clv" in chunk.columns else "expected_purchases"
        part = _segment_totals(chunk["segment"], chunk[self.value])
        if part is None:
            part = chunk.groupby("segment", observed=True).agg(
                customers=("customer_id", "size"), **{self.value: (self.value, "sum")}
            )
        self.segments = part if self.segments is None else self.segments.add(part, fill_value=0)

    def result(self) -> tuple[dict[str, float], pd.DataFrame]:
        sums = {k: math.fsum(v) for k, v in self.sums.items()}
        if self.segments is None:
            return sums, pd.DataFrame()
        by = self.segments.astype({"customers": "int64"})
        return sums, by.sort_values(self.value, ascending=False)


def score_features_table(
    table: FeaturesTable,
    pipeline: ScoringPipeline,
    out_dir: str | Path,
    *,
    fingerprints: dict,
    formats: tuple[str, ...] = ("parquet", "csv"),
    chunk_rows: int = CHUNK_ROWS,
    progress: Callable[[int, int], None] | None = None,
) -> StreamedPredictions:
    """Score every customer of ``table`` with ``pipeline``, writing the predictions files.

    Parameters
    ----------
    table : FeaturesTable
        :func:`~rfmml.features.combined.customer_features_table` of the log.
    pipeline : ScoringPipeline
        Fitted segmenters and models (as :meth:`ScoringPipeline.predict` uses them).
    out_dir : str or pathlib.Path
        Folder of ``predictions.parquet``, ``predictions.csv`` and
        ``predictions.meta.json`` (see :func:`~rfmml.campaign.write_predictions`).
    fingerprints : dict
        Recorded in the metadata.
    formats : tuple of {"parquet", "csv"}
        Table formats to write.
    chunk_rows : int
        Customers scored and written at a time; memory grows with it, the
        result does not change.
    progress : callable, optional
        ``progress(done, total)`` after each chunk (customers).

    Returns
    -------
    StreamedPredictions

    Raises
    ------
    DataError
        As :meth:`ScoringPipeline.predict` and :func:`score_customers`.
    """
    if not (isinstance(chunk_rows, int) and chunk_rows >= 1):
        raise ValueError(f"chunk_rows must be a whole number >= 1, got {chunk_rows!r}")
    tabulated = None if pipeline.interval else _clv_tabulated(pipeline, table)
    if _needs_one_table(pipeline, tabulated) is not None:
        return _score_one_table(table, pipeline, out_dir, fingerprints, formats)
    tabulate = bool(tabulated)
    uses_summary = pipeline.purchase_model is not None or pipeline.gamma_gamma is not None
    needed = [c for c in BTYD_COLUMNS if c != "monetary_value" or pipeline.gamma_gamma]
    missing = [c for c in needed if c not in table.summary_columns]
    if uses_summary and missing:
        raise DataError(
            f"scoring input lacks BTYD column(s) {missing}; build it with "
            "rfmml.campaign.scoring_frame(rfm_table(...), btyd_summary(...))"
        )
    for model in (pipeline.rule_segmenter, pipeline.kmeans_segmenter, pipeline.purchase_model,
                  pipeline.gamma_gamma):  # fmt: skip
        if model is not None:
            check_is_fitted(model)
    summary_attrs = dict(table.summary_attrs)
    summary_attrs["freq"] = pipeline.freq
    if pipeline.observation_end is not None:
        summary_attrs.setdefault("observation_end", pipeline.observation_end)
    book = load_playbook(pipeline.playbook) if pipeline.rule_segmenter is not None else None

    purchase: tuple[Started[dict[str, np.ndarray]], _RowCodes | _TableCodes] | None = None
    model = pipeline.purchase_model
    if model is not None:
        columns = purchase_row_columns(model, table.summary_columns)
        known = _TableCodes.of_table(table, columns, chunk_rows)
        codes_of: _RowCodes | _TableCodes
        if known is None:  # NULL or NaN: the search reports them
            names = ", ".join(_q(c) for c in columns)
            rows = table.connection.sql(
                f"SELECT DISTINCT {names} FROM {_q(table.table)} ORDER BY {names}"
            ).df()
            codes_of = _RowCodes(rows, columns)
        else:
            rows, codes_of = known.rows.copy(deep=False), known
        rows.attrs = dict(summary_attrs)
        from rfmml.models.clv import resolve_freq

        probe = pd.DataFrame(index=pd.RangeIndex(0))
        probe.attrs = dict(summary_attrs)
        unit = resolve_freq(pipeline.freq, probe, model, "score_customers")
        end = table.summary_attrs.get("observation_end", summary_attrs.get("observation_end"))
        # computed on the pool while the first chunk is read and segmented (the
        # same calls on the same rows as in this thread: the same values)
        outputs = start(
            functools.partial(
                _outputs_of_rows, model, rows, int(pipeline.horizon),
                end is not None and unit is not None, pipeline.next_order_window,
                pipeline.gamma_gamma is not None, float(pipeline.discount_rate), tabulate,
            )
        )  # fmt: skip
        purchase = (outputs, codes_of)
        del rows

    totals = _Totals()
    state = _State()

    def scored() -> Iterator[pd.DataFrame]:
        for number, frame in enumerate(_chunks(table, chunk_rows)):
            # a new frame (its own attrs) sharing the chunk's arrays: copy-on-write
            summary = frame[[c for c in BTYD_COLUMNS if c in frame.columns]]
            summary.attrs = dict(summary_attrs)
            features = frame.drop(columns=[c for c in BTYD_COLUMNS if c in frame.columns])
            features.attrs = dict(table.summary_attrs)  # as ScoringPipeline.predict passes them
            # the segments and actions (no model output needed) on the pool, while this
            # thread finds the chunk's rows (and, at the first chunk, waits for the
            # model's outputs): the first chunk is ready sooner (the writing waits for it)
            part = start(
                functools.partial(segment_columns, _own_index(features),
                                  pipeline.rule_segmenter, pipeline.kmeans_segmenter, book,
                                  text_categories=True)
            )  # fmt: skip
            try:
                rows = None
                if purchase is not None:
                    codes = purchase[1].codes(summary, number)
                    rows = (purchase[0].result(), codes)
                chunk = _score_customers(
                    features, summary if uses_summary else None,
                    rule_segmenter=pipeline.rule_segmenter,
                    kmeans_segmenter=pipeline.kmeans_segmenter,
                    purchase_model=pipeline.purchase_model, gamma_gamma=pipeline.gamma_gamma,
                    horizon=int(pipeline.horizon), discount_rate=float(pipeline.discount_rate),
                    freq=pipeline.freq, playbook=pipeline.playbook,
                    churn_basis=pipeline.churn_basis, random_state=pipeline.random_state,
                    next_order_window=pipeline.next_order_window, purchase_rows=rows,
                    book=book, segment_part=part.result,
                )  # fmt: skip
            finally:
                part.wait()  # never left running (an error raised here first)
            del frame, summary, features, rows, part
            state.attrs = dict(chunk.attrs)
            state.done += len(chunk)
            yield chunk
            # added while the chunk is written (the writing of the first waits for nothing)
            totals.add(chunk)
            if progress is not None:
                progress(state.done, table.n_rows)

    integer_ids = _whole_ids(table)  # before the chunks: a reader may hold the connection
    try:
        chunks = scored()
        # the first chunk (and the model's outputs) before any file is opened: an error
        # there leaves no folder behind, and the writing starts with a chunk to write
        head = list(itertools.islice(chunks, 1))
        paths, n_rows, columns_out = write_predictions_chunks(
            _first_then(head, chunks), out_dir, fingerprints=fingerprints, formats=formats,
            integer_ids=integer_ids, n_rows_hint=table.n_rows, as_text=TEXT_CATEGORIES,
        )  # fmt: skip
    finally:
        if purchase is not None:
            purchase[0].wait()  # nothing left running on the pool, whatever failed
    sums, by_segment = totals.result()
    return StreamedPredictions(paths, n_rows, state.attrs, columns_out, sums, by_segment)


def _score_one_table(
    table: FeaturesTable,
    pipeline: ScoringPipeline,
    out_dir: str | Path,
    fingerprints: dict,
    formats: tuple[str, ...],
) -> StreamedPredictions:
    """The pandas path: the whole table scored at once, then written."""
    features, summary = table.to_pandas()
    predictions = pipeline.predict(scoring_frame(features, summary))
    del features, summary
    paths = write_predictions(predictions, out_dir, fingerprints=fingerprints, formats=formats)
    totals = _Totals()
    totals.add(predictions)
    sums, by_segment = totals.result()
    return StreamedPredictions(paths, len(predictions), dict(predictions.attrs),
                               [str(c) for c in predictions.reset_index(drop=True).columns],
                               sums, by_segment, streamed=False)  # fmt: skip


def export_segment_lists_from_file(
    path: str | Path,
    out_dir: str | Path,
    *,
    hash_ids: bool = False,
    salt: str | None = None,
    chunk_rows: int = 500_000,
) -> dict[str, Path]:
    """:func:`~rfmml.campaign.export_segment_lists` of a ``predictions.parquet``, streamed.

    Each segment's customers are read from the file by DuckDB, highest ``clv`` first
    (ties in file order, as the stable sort of the pandas lists), and written a chunk
    at a time: the same files, without the predictions in pandas.

    Parameters
    ----------
    path : str or pathlib.Path
        A ``predictions.parquet`` written with its ``predictions.meta.json``, or
        the folder holding them.
    out_dir : str or pathlib.Path
        Destination folder (created).
    hash_ids, salt
        As :func:`~rfmml.campaign.export_segment_lists`.
    chunk_rows : int
        Rows read and written at a time.

    Returns
    -------
    dict of str to pathlib.Path
        Segment name to its file.
    """
    import json

    import duckdb
    import pyarrow.parquet as pq

    from rfmml._documents import replacing
    from rfmml.campaign._csv import CsvChunks
    from rfmml.campaign.exports import to_safe_csv
    from rfmml.campaign.lists import (
        LIST_COLUMNS,
        _check_hash_args,
        _prepare_export,
        _unique_slugs,
    )

    _check_hash_args(hash_ids, salt, "export_segment_lists")
    path = _predictions_file(path)
    described = path.with_name("predictions.meta.json")
    if not described.is_file():
        raise DataError(
            f"export_segment_lists_from_file: {str(described)!r} not found; pass the "
            "predictions.parquet of rfmml predict or write_predictions (its "
            "predictions.meta.json beside it), or their folder"
        )
    meta = json.loads(described.read_text(encoding="utf-8"))
    keys = [k for k in meta.get("index", []) if k in meta["columns"]]
    columns = [c for c in LIST_COLUMNS if c in meta["columns"]]
    if "customer_id" in columns:
        at = columns.index("customer_id") + 1
        columns[at:at] = [k for k in keys[1:] if k not in columns]
    file = pq.ParquetFile(path)
    segment_type = file.schema_arrow.field("segment").type
    if file.metadata.num_rows == 0 or str(file.schema_arrow.field("customer_id").type) in (
        "double",
        "float",
    ):  # float ids: the lists decide per list whether they are whole numbers
        from rfmml.campaign.lists import export_segment_lists

        table = pd.read_parquet(path, columns=list(dict.fromkeys([*keys, *columns])))
        if keys:
            table.index = pd.MultiIndex.from_frame(table[keys]) if len(keys) > 1 else (
                pd.Index(table[keys[0]], name=keys[0]))  # fmt: skip
        return export_segment_lists(table, out_dir, hash_ids=hash_ids, salt=salt)
    if hasattr(segment_type, "value_type"):  # categorical: every category gets a list
        first = file.read_row_group(0, columns=["segment"]).column("segment").chunk(0)
        names = [str(v) for v in first.dictionary.to_pylist()]
    else:
        distinct = duckdb.execute(
            f"SELECT DISTINCT segment FROM read_parquet('{_sql_path(path)}')"
        ).fetchall()
        names = sorted(str(v[0]) for v in distinct)
    slugs = _unique_slugs(names, "export_segment_lists")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    con = duckdb.connect()
    con.execute("SET preserve_insertion_order = true")
    order = "ORDER BY clv DESC, file_row_number" if "clv" in columns else "ORDER BY file_row_number"
    cols = ", ".join(_q(c) for c in columns)
    written: dict[str, Path] = {}
    try:
        missing = con.sql(
            f"SELECT count(*) FROM read_parquet('{_sql_path(path)}') WHERE segment IS NULL"
        ).fetchall()[0][0]
        if missing:
            raise DataError(
                f"segment_lists: column 'segment' has {missing} of {file.metadata.num_rows} "
                "missing values; every customer needs a segment for the lists to add up."
            )
        for name in names:
            target = out / f"{slugs[name]}.csv"
            reader = con.sql(
                f"SELECT {cols} FROM read_parquet('{_sql_path(path)}', file_row_number = true) "
                f"WHERE CAST(segment AS VARCHAR) = $name {order}",
                params={"name": name},
            ).to_arrow_reader(chunk_rows)
            wrote = False
            with replacing(target) as temporary, open(temporary, "wb") as handle:
                writer = CsvChunks(handle)
                try:
                    for batch in reader:
                        if not batch.num_rows:
                            continue
                        frame = batch.to_pandas()
                        writer.write(_prepare_export(frame, hash_ids, salt))
                        wrote = True
                finally:
                    writer.close()
            if not wrote:  # an empty segment: a header-only file
                empty = file.schema_arrow.empty_table().select(columns).to_pandas()
                to_safe_csv(_prepare_export(empty, hash_ids, salt), target)
            written[name] = target
    finally:
        con.close()
    return written


def _sql_path(path: Path) -> str:
    return str(path).replace("'", "''")
