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
def _count_rfm(keys, lo, rank, ts, amount, cut, rfm_cut, with_amount, agg):
    """Per customer ``c``, in ``agg[c]``: the rows before ``cut`` and the RFM aggregates.

    ``agg[c]`` holds the rows before ``cut`` (the counts of
    ``_btyd_kernel._count``), and of the rows before ``rfm_cut`` the first and
    last timestamp, the rows and the spend in 1e-9 units (64-bit sums below the
    kernel's guard, which the caller checks afterwards): one row of ``agg`` per
    customer, so each log row touches one place in memory, not five.
    """
    by_rank = len(rank) > 0
    for i in range(len(keys)):
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
def _new_aggregates(n_customers):
    """The zeroed aggregates of :func:`_count_rfm` (first timestamps at the int64 maximum).

    Allocated here, in small pages, as ``_btyd_kernel._place``'s arrays.
    """
    agg = np.zeros((n_customers, 5), np.int64)
    for c in range(n_customers):
        agg[c, 1] = _I64_MAX
        agg[c, 2] = _I64_MIN
    return agg


@_jit
def _seen(agg, bounds):
    """The counts into ``bounds[c + 2]``, and the RFM aggregates of the customers with rows."""
    n_customers = agg.shape[0]
    n_out = 0
    for c in range(n_customers):
        bounds[c + 2] = agg[c, 0]
        if agg[c, 0] > 0:
            n_out += 1
    t0 = np.empty(n_out, np.int64)
    t1 = np.empty(n_out, np.int64)
    n = np.empty(n_out, np.int64)
    spend = np.empty(n_out, np.int64)
    k = 0
    for c in range(n_customers):
        if agg[c, 0] > 0:
            t0[k], t1[k], n[k], spend[k] = agg[c, 1], agg[c, 2], agg[c, 3], agg[c, 4]
            k += 1
    return t0, t1, n, spend


@_jit
def _empty_int64(n):
    return np.empty(n, np.int64)


@_jit
def _empty_float64(n):
    return np.empty(n, np.float64)


def numpy_column(chunked, integer):
    """One numpy array of an Arrow column's chunks (without NULLs), in small pages.

    ``integer``: int64 (timestamps as their microseconds), else float64. The
    array is allocated by numba, as :func:`_new_aggregates` (numpy's own
    allocation of 80 MB, in huge pages, cost 0.4 s of system time at 10M rows).
    """
    import pyarrow as pa

    out = _empty_int64(len(chunked)) if integer else _empty_float64(len(chunked))
    start = 0
    for chunk in chunked.chunks:
        values = chunk.cast(pa.int64()) if integer and chunk.type != pa.int64() else chunk
        out[start : start + len(chunk)] = values.to_numpy(zero_copy_only=False)
        start += len(chunk)
    return out


@_jit
def rfm_columns(t0, t1, n, units, end_day, min_tenure, days_per_year, with_amount):
    """The RFM table's derived columns, with the statement's arithmetic.

    Returns ``recency_days``, ``tenure_days``, ``orders_per_year`` and, with
    amounts, ``total_spend`` (NaN where the units reach 2**53: the caller
    converts those through their decimal text), ``avg_order_value`` and
    ``spend_per_year``; days are whole-day differences, the exposure
    ``max(tenure, min_tenure) / days_per_year``.
    """
    k = len(t0)
    recency = np.empty(k, np.float64)
    tenure = np.empty(k, np.float64)
    per_year = np.empty(k, np.float64)
    m = k if with_amount else 0
    spend = np.empty(m, np.float64)
    average = np.empty(m, np.float64)
    spend_year = np.empty(m, np.float64)
    for i in range(k):
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
    return recency, tenure, per_year, spend, average, spend_year


def features(keys, lo, rank, ts, amount, cut, rfm_cut, freq, end_period, keep_repeat=False):
    """The summary columns and the RFM aggregates of a log's customers.

    Arguments as :func:`rfmml.features._btyd_kernel.summarise`, and
    ``rfm_cut``: the RFM table's exclusive cut-off in microseconds. Returns
    the summary's tuple followed by the first and last timestamps, rows and
    spend units (zeros without amounts) of the same customers, in the same
    order (``t0`` is the int64 maximum for a customer without a row before
    ``rfm_cut``); None when an amount or a customer's spend reaches
    ``_btyd_kernel.SPEND_GUARD``.
    """
    setup = prepare(keys, lo, rank, ts, amount, freq)
    if setup is None:
        return None
    n_customers, day0, months = setup
    with_amount = amount is not None
    agg = _new_aggregates(n_customers)
    values = amount if with_amount else np.empty(0, np.float64)
    _count_rfm(keys, lo, rank, ts, values, cut, rfm_cut, with_amount, agg)
    bounds = np.zeros(n_customers + 2, np.int64)
    rfm = _seen(agg, bounds)
    del agg
    summary = summarise_counted(bounds, keys, lo, rank, ts, amount, cut, freq, months, day0,
                                end_period, keep_repeat)  # fmt: skip
    if summary is None:
        return None
    return (*summary, *rfm)
