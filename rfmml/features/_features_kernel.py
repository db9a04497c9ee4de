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
from rfmml.features._btyd_kernel import _units, prepare, summarise_counted

__all__ = ["features"]

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
    agg = np.zeros((n_customers, 5), np.int64)
    agg[:, 1] = _I64_MAX
    agg[:, 2] = _I64_MIN
    values = amount if with_amount else np.empty(0, np.float64)
    _count_rfm(keys, lo, rank, ts, values, cut, rfm_cut, with_amount, agg)
    bounds = np.zeros(n_customers + 2, np.int64)
    bounds[2:] = agg[:, 0]
    seen = agg[bounds[2:] > 0]
    del agg
    summary = summarise_counted(bounds, keys, lo, rank, ts, amount, cut, freq, months, day0,
                                end_period, keep_repeat)  # fmt: skip
    if summary is None:
        return None
    return (*summary, seen[:, 1].copy(), seen[:, 2].copy(), seen[:, 3].copy(), seen[:, 4].copy())
