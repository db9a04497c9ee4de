"""Radix partition of a log's rows by block of customers (numba), imported on first use.

The rows of a large log touch their customers in random order: a pass that
updates one per-customer place per row (a count, a cursor, an aggregate)
misses the caches on nearly every row once the customers' arrays outgrow
them (10M rows, 3.4M customers: 27-136 MB of counts and aggregates). The
rows are therefore first partitioned by block of ``2**shift`` consecutive
customers, as the first pass of a parallel radix sort: each range of rows
counts its rows per block (:func:`_histogram`), the counts become one write
position per range and block (:func:`_cursors`: the blocks in customer
order, within a block the ranges in the log's order), then each range writes
its rows' customer within the block, timestamp and spend units at its
positions (:func:`_scatter`: one sequential write stream per block, a few
hundred streams). Customers numbered through their ids' ranks are looked up
once, by the histogram. The partition is stable: a block's rows keep the log's
order, so each customer's rows do too. Each block is then aggregated on its
own (:mod:`rfmml.features._features_kernel`), its customers' arrays small
enough for the caches.
"""

from __future__ import annotations

import numpy as np

from rfmml._jit import jit as _jit
from rfmml.features._btyd_kernel import _units

__all__: list[str] = []


@_jit
def _histogram(keys, lo, rank, ts, cut, shift, counts, customers, i_lo, i_hi):
    """The rows ``i_lo <= i < i_hi`` before ``cut`` per block of customers, into ``counts``.

    Customer ``c`` (``keys[i] - lo``, or ``rank[keys[i]]`` when ``rank`` is
    not empty) is in block ``c >> shift``; ``counts`` is zeroed first. With
    ``rank``, ``customers[i]`` keeps ``c`` for :func:`_scatter` (the ranks
    are read at random, once).
    """
    by_rank = len(rank) > 0
    for b in range(len(counts)):
        counts[b] = 0
    for i in range(i_lo, i_hi):
        if ts[i] < cut:
            c = rank[keys[i]] if by_rank else keys[i] - lo
            counts[c >> shift] += 1
            if by_rank:
                customers[i] = c


@_jit
def _cursors(counts):
    """Each range's write position per block, and the blocks' bounds, from :func:`_histogram`.

    ``counts[j, b]``: the rows of range ``j`` in block ``b``. Block ``b``'s
    rows are ``bounds[b]:bounds[b + 1]`` of the partition: those of range 0
    first, then those of range 1, and so on; range ``j`` writes its rows of
    block ``b`` from ``cursor[j, b]`` on.
    """
    ranges, n_blocks = counts.shape
    cursor = np.empty((ranges, n_blocks), np.int64)
    bounds = np.empty(n_blocks + 1, np.int64)
    at = 0
    for b in range(n_blocks):
        bounds[b] = at
        for j in range(ranges):
            cursor[j, b] = at
            at += counts[j, b]
    bounds[n_blocks] = at
    return cursor, bounds


@_jit
def _new_customers(n):
    """Each row's customer number (:func:`_histogram`), in small pages (:func:`_new_partition`)."""
    return np.empty(n, np.int64)


@_jit
def _new_partition(total, with_amount):
    """The arrays :func:`_scatter` fills: each row's customer in its block, time, spend units.

    Allocated here, in small pages (numpy asks for huge pages, whose zeroing
    cost more system time than they save at 10M rows).
    """
    local = np.empty(total, np.int32)
    stamp = np.empty(total, np.int64)
    units = np.empty(total if with_amount else 0, np.int64)
    return local, stamp, units


@_jit
def _scatter(keys, lo, customers, ts, amount, cut, shift, with_amount, cursor, local, stamp,
             units, i_lo, i_hi):  # fmt: skip
    """Write the rows ``i_lo <= i < i_hi`` before ``cut`` into their blocks' parts.

    Row ``i`` of customer ``c`` (``customers[i]`` from :func:`_histogram`
    when not empty, else ``keys[i] - lo``) goes to ``j = cursor[c >> shift]``
    (from :func:`_cursors`), which walks on: ``local[j]`` is ``c``'s place in
    its block, ``stamp[j]`` its timestamp and ``units[j]`` its amount in
    exact units of 1e-9 (with amounts).
    """
    by_rank = len(customers) > 0
    mask = (np.int64(1) << shift) - 1
    for i in range(i_lo, i_hi):
        t = ts[i]
        if t < cut:
            c = customers[i] if by_rank else keys[i] - lo
            b = c >> shift
            j = cursor[b]
            cursor[b] = j + 1
            local[j] = c & mask
            stamp[j] = t
            if with_amount:
                units[j] = _units(amount[i])


def partition(keys, lo, rank, ts, amount, cut, n_customers, shift, rows):
    """The rows before ``cut`` partitioned by block of ``2**shift`` customers.

    ``rows``: bounds of ranges of log rows, one thread each
    (:mod:`rfmml.features._threads`); ``amount`` may be None. Returns the
    arrays of :func:`_new_partition` and the blocks' bounds in them: block
    ``b`` (customers ``b * 2**shift`` on) holds rows ``bounds[b]:bounds[b + 1]``,
    in the log's order, whatever the number of ranges.
    """
    from rfmml.features._threads import run_ranges

    with_amount = amount is not None
    values = amount if with_amount else np.empty(0, np.float64)
    n_blocks = (n_customers + (1 << shift) - 1) >> shift
    counts = np.empty((len(rows) - 1, n_blocks), np.int64)
    customers = _new_customers(len(keys) if len(rank) else 0)
    run_ranges(lambda j, i_lo, i_hi: _histogram(keys, lo, rank, ts, cut, shift, counts[j],
                                                customers, i_lo, i_hi), rows)  # fmt: skip
    cursor, bounds = _cursors(counts)
    local, stamp, units = _new_partition(int(bounds[n_blocks]), with_amount)
    run_ranges(lambda j, i_lo, i_hi: _scatter(keys, lo, customers, ts, values, cut, shift,
                                              with_amount, cursor[j], local, stamp, units, i_lo,
                                              i_hi), rows)  # fmt: skip
    return local, stamp, units, bounds
