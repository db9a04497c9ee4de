"""Compiled classic features and BTYD summary of a log's columns (numba), imported on first use.

The pass of :mod:`rfmml.features._btyd_kernel` (customers numbered in key
order, one counting sort of the rows' periods and spend units into
per-customer segments, one pass over the segments) with the RFM table's
aggregates added to its counting pass: per customer the first and last
timestamp, the rows and the exact spend units before the RFM cut-off. These
are the values ``combined._combined_sql`` aggregates per period and then per
customer (minimum of minima, sum of counts, sum of exact integer sums), so
the same integers.
"""

from __future__ import annotations

from functools import partial

import numpy as np

from rfmml._jit import jit as _jit
from rfmml.features._btyd_kernel import (
    _EXACT_DOUBLE,
    _US_PER_DAY,
    _units,
    prepare,
    summarise_counted,
)

__all__ = ["features", "numpy_column", "rfm_columns"]

_I64_MAX = np.iinfo(np.int64).max
_I64_MIN = np.iinfo(np.int64).min


@_jit
def _count_rfm(keys, lo, rank, ts, amount, cut, rfm_cut, with_amount, agg, i_lo, i_hi):
    """Per customer ``c``, in ``agg[c]``: of the rows ``i_lo <= i < i_hi``, those before ``cut``.

    ``agg[c]`` holds the rows before ``cut`` (the counts of
    ``_btyd_kernel._count``), and of the rows before ``rfm_cut`` the first and
    last timestamp, the rows and the spend in 1e-9 units (64-bit sums below the
    kernel's guard, which the caller checks afterwards): one row of ``agg`` per
    customer, so each log row touches one place in memory, not five.
    """
    by_rank = len(rank) > 0
    for i in range(i_lo, i_hi):
        t = ts[i]
        if t < cut:
            c = rank[keys[i]] if by_rank else keys[i] - lo
            agg[c, 0] += 1
            if t < rfm_cut:
                if t < agg[c, 1]:
                    agg[c, 1] = t
                if t > agg[c, 2]:
                    agg[c, 2] = t
                agg[c, 3] += 1
                if with_amount:
                    agg[c, 4] += _units(amount[i])


@_jit
def _empty_aggregates(ranges, n_customers):
    """The aggregates of :func:`_count_rfm` of ``ranges`` ranges of rows, uninitialised.

    Allocated here, in small pages, as ``_btyd_kernel._new_segments``'s arrays.
    """
    return np.empty((ranges, n_customers, 5), np.int64)


@_jit
def _reset_aggregates(agg):
    """Zero the aggregates (first timestamps at int64's maximum, last at its minimum)."""
    for c in range(agg.shape[0]):
        agg[c, 0] = 0
        agg[c, 1] = _I64_MAX
        agg[c, 2] = _I64_MIN
        agg[c, 3] = 0
        agg[c, 4] = 0


@_jit
def _seen_counts(aggs, bounds, heads, c_lo, c_hi):
    """The rows before the cut of customers ``c_lo <= c < c_hi``; how many have rows.

    All ranges' rows into ``bounds[c + 2]``, range ``j``'s into ``heads[j, c]``
    (every range but the last: ``_btyd_kernel._offsets``).
    """
    n_out = 0
    for c in range(c_lo, c_hi):
        total = aggs[0, c, 0]
        for j in range(1, aggs.shape[0]):
            total += aggs[j, c, 0]
        for j in range(heads.shape[0]):
            heads[j, c] = aggs[j, c, 0]
        bounds[c + 2] = total
        if total > 0:
            n_out += 1
    return n_out


@_jit
def _seen(aggs, c_lo, c_hi, k, t0, t1, n, spend):
    """The RFM aggregates of the customers ``c_lo <= c < c_hi`` with rows, from row ``k`` on.

    Those of all ranges of rows: the least first timestamp, the greatest last
    one, the sums of rows and of spend units (integers: the values of one range).
    """
    for c in range(c_lo, c_hi):
        rows = aggs[0, c, 0]
        first, last, orders, units = aggs[0, c, 1], aggs[0, c, 2], aggs[0, c, 3], aggs[0, c, 4]
        for j in range(1, aggs.shape[0]):
            rows += aggs[j, c, 0]
            first = min(first, aggs[j, c, 1])
            last = max(last, aggs[j, c, 2])
            orders += aggs[j, c, 3]
            units += aggs[j, c, 4]
        if rows > 0:
            t0[k], t1[k], n[k], spend[k] = first, last, orders, units
            k += 1


@_jit
def _empty_int64(n):
    return np.empty(n, np.int64)


@_jit
def _empty_float64(n):
    return np.empty(n, np.float64)


@_jit
def _empty_heads(ranges, n_customers):
    return np.empty((ranges, n_customers), np.int64)


@_jit
def _copy(out, start, values):
    """``out[start:start + len(values)] = values``, without the GIL."""
    for i in range(len(values)):
        out[start + i] = values[i]


def numpy_column(chunked, integer, workers=1):
    """One numpy array of an Arrow column's chunks (without NULLs), in small pages.

    ``integer``: int64 (timestamps as their microseconds), else float64. The
    array is allocated by numba, as :func:`_empty_aggregates` (numpy's own
    allocation of 80 MB, in huge pages, cost 0.4 s of system time at 10M rows);
    with ``workers`` above 1 the chunks are copied on as many threads.
    """
    import pyarrow as pa

    from rfmml.features._threads import run_ranges

    out = _empty_int64(len(chunked)) if integer else _empty_float64(len(chunked))
    chunks, starts = [], [0]
    for chunk in chunked.chunks:
        values = chunk.cast(pa.int64()) if integer and chunk.type != pa.int64() else chunk
        chunks.append(values.to_numpy(zero_copy_only=False))
        starts.append(starts[-1] + len(chunk))
    # chunk bounds with about as many rows per thread
    split = [int(np.searchsorted(starts, len(out) * j // workers)) for j in range(workers)]
    split.append(len(chunks))

    def copy(_: int, a: int, b: int) -> None:
        for j in range(a, b):
            _copy(out, starts[j], chunks[j])

    run_ranges(copy, split)
    return out


@_jit
def _rfm_range(t0, t1, n, units, end_day, min_tenure, days_per_year, with_amount, i_lo, i_hi,
               recency, tenure, per_year, spend, average, spend_year):  # fmt: skip
    """Rows ``i_lo <= i < i_hi`` of the arrays of :func:`rfm_columns`."""
    for i in range(i_lo, i_hi):
        recency[i] = np.float64(end_day - t1[i] // _US_PER_DAY)
        days = np.float64(end_day - t0[i] // _US_PER_DAY)
        tenure[i] = days
        exposure = (days if days > min_tenure else min_tenure) / days_per_year
        orders = np.float64(n[i])
        per_year[i] = orders / exposure
        if with_amount:
            total = np.float64(units[i]) / 1e9 if abs(units[i]) < _EXACT_DOUBLE else np.nan
            spend[i] = total
            average[i] = total / orders
            spend_year[i] = total / exposure


def rfm_columns(t0, t1, n, units, end_day, min_tenure, days_per_year, with_amount, workers=1):
    """The RFM table's derived columns, with the statement's arithmetic.

    Returns ``recency_days``, ``tenure_days``, ``orders_per_year`` and, with
    amounts, ``total_spend`` (NaN where the units reach 2**53: the caller
    converts those through their decimal text), ``avg_order_value`` and
    ``spend_per_year`` (empty without); days are whole-day differences, the
    exposure ``max(tenure, min_tenure) / days_per_year``. ``workers``
    threads compute as many ranges of rows.
    """
    from rfmml.features._threads import even_bounds, run_ranges

    k = len(t0)
    m = k if with_amount else 0
    out = (_empty_float64(k), _empty_float64(k), _empty_float64(k), _empty_float64(m),
           _empty_float64(m), _empty_float64(m))  # fmt: skip
    run_ranges(lambda _, i_lo, i_hi: _rfm_range(t0, t1, n, units, end_day, min_tenure,
                                                 days_per_year, with_amount, i_lo, i_hi, *out),
               even_bounds(k, workers))  # fmt: skip
    return out


def _gather(aggs, bounds, heads, workers):
    """The counts (:func:`_seen_counts`) and the RFM aggregates of the customers with rows.

    :func:`_seen_counts` then :func:`_seen` on ``workers`` even ranges of customers.
    """
    from rfmml.features._threads import even_bounds, run_ranges

    even = even_bounds(aggs.shape[1], workers)
    counts = run_ranges(lambda _, c_lo, c_hi: _seen_counts(aggs, bounds, heads, c_lo, c_hi), even)
    n_out = sum(counts)
    rfm = (_empty_int64(n_out), _empty_int64(n_out), _empty_int64(n_out), _empty_int64(n_out))
    firsts = [sum(counts[:j]) for j in range(len(counts))]
    run_ranges(lambda j, c_lo, c_hi: _seen(aggs, c_lo, c_hi, firsts[j], *rfm), even)
    return rfm


def _count_range(keys, lo, rank, ts, amount, cut, rfm_cut, with_amount, aggs, j, i_lo, i_hi):
    """:func:`_count_rfm` of rows ``i_lo <= i < i_hi`` into ``aggs[j]``, reset first."""
    _reset_aggregates(aggs[j])
    _count_rfm(keys, lo, rank, ts, amount, cut, rfm_cut, with_amount, aggs[j], i_lo, i_hi)


def features(keys, lo, rank, ts, amount, cut, rfm_cut, freq, end_period, keep_repeat=False,
             workers=1):  # fmt: skip
    """The summary columns and the RFM aggregates of a log's customers.

    Arguments as :func:`rfmml.features._btyd_kernel.summarise`, and
    ``rfm_cut``: the RFM table's exclusive cut-off in microseconds. Returns
    the summary's tuple followed by the first and last timestamps, rows and
    spend units (zeros without amounts) of the same customers, in the same
    order (``t0`` is the int64 maximum for a customer without a row before
    ``rfm_cut``); None when an amount or a customer's spend reaches
    ``_btyd_kernel.SPEND_GUARD``. ``workers`` threads (:mod:`rfmml.features._threads`)
    each aggregate a range of rows, then place them, then summarise a range of
    customers: the values of one thread, bit for bit (integer sums, least and
    greatest values, each customer's rows placed in the log's order).
    """
    from rfmml.features._threads import even_bounds, run_ranges

    setup = prepare(keys, lo, rank, ts, amount, freq)
    if setup is None:
        return None
    n_customers, day0, months = setup
    with_amount = amount is not None
    values = amount if with_amount else np.empty(0, np.float64)
    rows = even_bounds(len(keys), workers)
    aggs = _empty_aggregates(workers, n_customers)
    run_ranges(partial(_count_range, keys, lo, rank, ts, values, cut, rfm_cut, with_amount, aggs),
               rows)  # fmt: skip
    bounds = np.zeros(n_customers + 2, np.int64)
    heads = _empty_heads(workers - 1, n_customers)
    rfm = _gather(aggs, bounds, heads, workers)
    del aggs
    summary = summarise_counted(bounds, heads, rows, keys, lo, rank, ts, amount, cut, freq,
                                months, day0, end_period, keep_repeat)  # fmt: skip
    if summary is None:
        return None
    return (*summary, *rfm)
