"""Compiled classic features and BTYD summary of a log's columns (numba), imported on first use.

The definitions of :mod:`rfmml.features._btyd_kernel` (customers numbered in
key order, each customer's periods and exact spend units gathered into a
segment, one pass over the segments) with the RFM table's aggregates: per
customer the first and last timestamp, the rows and the exact spend units
before the RFM cut-off. These are the values ``combined._combined_sql``
aggregates per period and then per customer (minimum of minima, sum of
counts, sum of exact integer sums), so the same integers.

The log's rows come in no customer order, so a pass that updates each
row's customer (its aggregates, its write position in the segments) in the
log's order reads and writes a random place of arrays far beyond the caches
on nearly every row: at 10M rows and 3.4M customers two such passes took
about 2.1 of the pass's 2.5 CPU seconds (one thread), mostly waiting for
memory. The rows are therefore first partitioned by block of
:data:`BLOCK_CUSTOMERS` consecutive customers
(:mod:`rfmml.features._partition_kernel`: a histogram and one stable
scatter, both sequential in the log, as the first pass of a radix sort),
then every block is aggregated on its own (:func:`_blocks`): its customers'
aggregates, write positions and segments fit in a core's caches, and a
block's customers are a contiguous range of the output. The same log then
takes 0.8-0.9 CPU s (partition 0.15-0.2, blocks 0.6).
"""

from __future__ import annotations

import numpy as np

from rfmml._jit import jit as _jit
from rfmml.features._btyd_kernel import (
    _EXACT_DOUBLE,
    _US_PER_DAY,
    _new_summary,
    _period,
    _segment,
    _store,
    prepare,
)

__all__ = ["features", "numpy_column", "rfm_columns", "summarise"]

_I64_MAX = np.iinfo(np.int64).max
_I64_MIN = np.iinfo(np.int64).min
#: Customers per block of the partition (a power of two): a block's per-customer
#: arrays (five of int64) and its rows' periods and spends stay in a core's caches.
BLOCK_CUSTOMERS = 2**13


@_jit
def _block_customers(local, bounds, shift, n_customers, seen, b_lo, b_hi):
    """Per block ``b_lo <= b < b_hi`` of the partition, its customers with rows, into ``seen[b]``.

    ``local`` and ``bounds`` as from :func:`rfmml.features._partition_kernel.partition`.
    """
    size = np.int64(1) << shift
    mark = np.empty(size, np.bool_)
    for b in range(b_lo, b_hi):
        m = min(size, n_customers - (b << shift))
        mark[:m] = False
        k = 0
        for j in range(bounds[b], bounds[b + 1]):
            x = local[j]
            if not mark[x]:
                mark[x] = True
                k += 1
        seen[b] = k


@_jit
def _blocks(local, stamp, units, bounds, shift, n_customers, with_rfm, rfm_cut, freq, months,
            day0, with_amount, end_period, lo, keep_repeat, b_lo, b_hi, k, customer, frequency,
            recency, age, monetary, repeat_units, t0, t1, n, spend):  # fmt: skip
    """The summary and RFM columns of the customers of blocks ``b_lo <= b < b_hi``, from row ``k``.

    Per block (its ``2**shift`` customers' arrays fit in the caches), one
    pass over the block's rows counts each customer's rows and (with
    ``with_rfm``) takes the first and last timestamp, the rows and the spend
    units before ``rfm_cut``; a second one places the rows' periods and spend
    units by customer (a counting sort: each customer's rows in the log's
    order, as the partition keeps them); then each customer's segment is
    summarised (``_btyd_kernel._segment``, ``_store``). The customers with
    rows fill the arrays of ``_btyd_kernel._new_summary`` and (with
    ``with_rfm``) ``t0``, ``t1``, ``n``, ``spend`` (zeros without amounts),
    in customer order. Returns a flag: 0 done, 1 a customer's spend reaches
    ``_btyd_kernel.SPEND_GUARD`` (stopped), 2 the monetary value of customers
    whose repeat spend has 2**53 units or more is left as NaN, for the caller
    to convert from the units.
    """
    size = np.int64(1) << shift
    starts = np.empty(size + 2, np.int64)
    first = np.empty(size, np.int64)
    last = np.empty(size, np.int64)
    orders = np.empty(size, np.int64)
    total = np.empty(size, np.int64)
    most = 0
    for b in range(b_lo, b_hi):
        most = max(most, bounds[b + 1] - bounds[b])
    period = np.empty(most, np.int32)
    placed = np.empty(most if with_amount else 0, np.int64)
    flag = 0
    for b in range(b_lo, b_hi):
        r0, r1 = bounds[b], bounds[b + 1]
        m = min(size, n_customers - (b << shift))
        starts[: m + 2] = 0
        first[:m] = _I64_MAX
        last[:m] = _I64_MIN
        orders[:m] = 0
        total[:m] = 0
        for j in range(r0, r1):
            x = local[j]
            starts[x + 2] += 1
            t = stamp[j]
            if with_rfm and t < rfm_cut:
                if t < first[x]:
                    first[x] = t
                if t > last[x]:
                    last[x] = t
                orders[x] += 1
                if with_amount:
                    total[x] += units[j]
        for x in range(m):  # starts[x + 1]: where x's rows go, then their end
            starts[x + 2] += starts[x + 1]
        for j in range(r0, r1):
            x = local[j]
            q = starts[x + 1]
            starts[x + 1] = q + 1
            period[q] = _period(stamp[j], freq, months, day0)
            if with_amount:
                placed[q] = units[j]
        for x in range(m):
            a, e = starts[x], starts[x + 1]
            if e == a:
                continue
            first_p, last_p, distinct, repeat = _segment(period, placed, a, e, with_amount)
            if distinct == 0:
                return 1
            c = (b << shift) + x
            flag |= _store(k, c + lo, first_p, last_p, distinct, repeat, with_amount, end_period,
                           keep_repeat, customer, frequency, recency, age, monetary,
                           repeat_units)  # fmt: skip
            if with_rfm:
                t0[k], t1[k], n[k], spend[k] = first[x], last[x], orders[x], total[x]
            k += 1
    return flag


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


def _split_blocks(bounds, workers):
    """Block bounds cutting the partition's blocks into ``workers`` ranges of about as many rows."""
    n_blocks = len(bounds) - 1
    total = int(bounds[n_blocks])
    cuts = [int(np.searchsorted(bounds, total * j // workers)) for j in range(1, workers)]
    return [0, *[min(c, n_blocks) for c in cuts], n_blocks]


def _pass(keys, lo, rank, ts, amount, cut, rfm_cut, freq, end_period, keep_repeat, workers,
          with_rfm):  # fmt: skip
    """:func:`features`, or without ``with_rfm`` :func:`summarise` (its RFM arrays empty)."""
    from rfmml.features._partition_kernel import partition
    from rfmml.features._threads import even_bounds, run_ranges

    setup = prepare(keys, lo, rank, ts, amount, freq)
    if setup is None:
        return None
    n_customers, day0, months = setup
    with_amount = amount is not None
    shift = BLOCK_CUSTOMERS.bit_length() - 1
    if BLOCK_CUSTOMERS != 1 << shift:
        raise ValueError(f"BLOCK_CUSTOMERS must be a power of two, not {BLOCK_CUSTOMERS}")
    rows = even_bounds(len(keys), workers)
    local, stamp, units, bounds = partition(keys, lo, rank, ts, amount, cut, n_customers, shift,
                                            rows)  # fmt: skip
    split = _split_blocks(bounds, workers)
    seen = np.zeros(len(bounds) - 1, np.int64)
    run_ranges(lambda _, b_lo, b_hi: _block_customers(local, bounds, shift, n_customers, seen, b_lo,
                                                      b_hi), split)  # fmt: skip
    n_out = int(seen.sum())
    firsts = [int(seen[: split[j]].sum()) for j in range(workers)]
    summary = _new_summary(n_out, with_amount, keep_repeat)
    m = n_out if with_rfm else 0
    rfm = (_empty_int64(m), _empty_int64(m), _empty_int64(m), _empty_int64(m))
    flags = run_ranges(lambda j, b_lo, b_hi: _blocks(local, stamp, units, bounds, shift,
                                                     n_customers, with_rfm, rfm_cut, freq, months,
                                                     day0, with_amount, end_period, lo,
                                                     keep_repeat, b_lo, b_hi, firsts[j], *summary,
                                                     *rfm), split)  # fmt: skip
    if 1 in flags:
        return None
    customer, frequency, recency, age, monetary, repeat_units = summary
    return customer, frequency, recency, age, monetary, max(flags), repeat_units, *rfm


def summarise(keys, lo, rank, ts, amount, cut, freq, end_period, keep_repeat=False, workers=1):
    """The BTYD summary columns of a log's customers (``_btyd_kernel._segment``).

    Customer ``c`` of row ``i`` is ``keys[i] - lo``, or ``rank[keys[i]]`` when
    ``rank`` is not empty; ``ts`` are microseconds, ``cut`` the exclusive end,
    ``freq`` 0, 1 or 2 for days, weeks and months; ``amount`` may be None;
    ``keep_repeat`` returns the repeat spends in units too; ``workers``
    threads (as :func:`features`: the same values as one thread). Returns the
    customers' numbers plus ``lo``, frequency, recency, T, monetary value
    (empty without amounts), a flag (2: some monetary values are NaN, their
    repeat spends reaching 2**53 units, to convert from the units) and the
    repeat spends in units (empty without ``keep_repeat``). None when an
    amount or a customer's spend reaches ``_btyd_kernel.SPEND_GUARD``.
    """
    result = _pass(keys, lo, rank, ts, amount, cut, _I64_MIN, freq, end_period, keep_repeat,
                   workers, False)  # fmt: skip
    return None if result is None else result[:7]


def features(keys, lo, rank, ts, amount, cut, rfm_cut, freq, end_period, keep_repeat=False,
             workers=1):  # fmt: skip
    """The summary columns and the RFM aggregates of a log's customers.

    Arguments as :func:`summarise`, and ``rfm_cut``: the RFM table's
    exclusive cut-off in microseconds. Returns the summary's tuple followed
    by the first and last timestamps, rows and spend units (zeros without
    amounts) of the same customers, in the same order (``t0`` is the int64
    maximum for a customer without a row before ``rfm_cut``); None when an
    amount or a customer's spend reaches ``_btyd_kernel.SPEND_GUARD``.

    The rows are first partitioned by block of :data:`BLOCK_CUSTOMERS`
    customers (:func:`rfmml.features._partition_kernel.partition`: two
    sequential passes over the log's columns), then each block is aggregated
    on its own (:func:`_block_customers`, :func:`_blocks`): every per-customer
    update then lands in arrays of one block, which stay in the caches, where
    a pass over the log's rows in their order would miss them on nearly every
    row (10M rows, 3.4M customers). ``workers`` threads
    (:mod:`rfmml.features._threads`) partition a range of rows each, then
    aggregate a range of blocks with about as many rows each: the values of
    one thread, bit for bit (integer sums, least and greatest values, each
    customer's rows in the log's order).
    """
    return _pass(keys, lo, rank, ts, amount, cut, rfm_cut, freq, end_period, keep_repeat, workers,
                 True)  # fmt: skip
