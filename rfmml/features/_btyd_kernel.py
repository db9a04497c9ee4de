"""Compiled BTYD summary of a pandas log (numba), imported on first use.

The same definitions and the same arithmetic as the DuckDB statement
(``btyd._summary_sql``), computed in one counting sort instead of two hash
aggregations: customers are numbered ``0..K-1`` in key order (the integer ids
themselves when their range is compact, else a factorisation whose uniques are
sorted), each row's period and exact spend units are placed in its customer's
segment, and each segment gives its customer's counts, first and last period
and spends. Spend is summed in exact integer units of 1e-9 as in
:func:`rfmml.features.btyd.sql_spend_units`, and converted to a double as in
``_sql_units_to_double``, so the values equal the statement's bit for bit.
"""

from __future__ import annotations

import numpy as np

from rfmml._jit import jit as _jit

__all__ = ["summarise"]

_US_PER_DAY = 86_400_000_000
#: A customer's absolute spend (in currency units) from which 64-bit unit sums could
#: overflow: the caller takes the DuckDB statement instead (128-bit sums there).
SPEND_GUARD = 9.0e9
_EXACT_DOUBLE = 9007199254740992  # 2**53
#: Longest span of days whose months are looked up in a table (32 MiB) rather than
#: computed on every row (twice as slow at 10M rows)
MONTH_TABLE_DAYS = 2**22


@_jit
def _month_index(day: int) -> int:
    """``year * 12 + month - 1`` of a day number (days since 1970-01-01), civil calendar."""
    z = day + 719468
    era = (z if z >= 0 else z - 146096) // 146097
    doe = z - era * 146097
    yoe = (doe - doe // 1460 + doe // 36524 - doe // 146096) // 365
    y = yoe + era * 400
    doy = doe - (365 * yoe + yoe // 4 - yoe // 100)
    mp = (5 * doy + 2) // 153
    m = mp + 3 if mp < 10 else mp - 9
    if m <= 2:
        y += 1
    return y * 12 + m - 1


@_jit
def _period(us, freq, months, day0):
    """Period number of a timestamp in microseconds: 0 day, 1 week (from Monday), 2 month.

    Months are looked up in ``months`` (those of the days from ``day0`` on) when it
    covers the day.
    """
    day = us // _US_PER_DAY
    if freq == 0:
        return day
    if freq == 1:
        return (day + 3) // 7
    if 0 <= day - day0 < len(months):
        return months[day - day0]
    return _month_index(day)


@_jit
def _month_table(day0, n_days):
    """:func:`_month_index` of the ``n_days`` days from ``day0``."""
    months = np.empty(n_days, np.int64)
    for d in range(n_days):
        months[d] = _month_index(day0 + d)
    return months


@_jit
def _units(amount):
    """An amount in exact units of 1e-9: ``floor`` part times 1e9 plus the rounded fraction."""
    whole = np.floor(amount)
    return np.int64(whole) * 1_000_000_000 + np.int64(np.floor((amount - whole) * 1e9 + 0.5))


@_jit
def _insertion_sort(values, a, b):
    """Sort ``values[a:b]`` in place (short segments: most customers have few rows)."""
    for i in range(a + 1, b):
        v = values[i]
        j = i - 1
        while j >= a and values[j] > v:
            values[j + 1] = values[j]
            j -= 1
        values[j + 1] = v


@_jit
def _sift_down(values, a, root, end):
    """Move ``values[a + root]`` down the max-heap ``values[a:a + end]``."""
    while 2 * root + 1 < end:
        child = 2 * root + 1
        if child + 1 < end and values[a + child] < values[a + child + 1]:
            child += 1
        if values[a + root] >= values[a + child]:
            return
        values[a + root], values[a + child] = values[a + child], values[a + root]
        root = child


@_jit
def _heap_sort(values, a, b):
    """Sort ``values[a:b]`` in place in O(n log n) (the rare customers with many rows)."""
    n = b - a
    for root in range(n // 2 - 1, -1, -1):
        _sift_down(values, a, root, n)
    for end in range(n - 1, 0, -1):
        values[a], values[a + end] = values[a + end], values[a]
        _sift_down(values, a, 0, end)


@_jit
def _count(keys, lo, rank, ts, cut, counts, shift, i_lo, i_hi):
    """Rows ``i_lo <= i < i_hi`` before ``cut`` per customer ``c``, into ``counts[c + shift]``.

    The customer of row ``i`` is ``keys[i] - lo``, or ``rank[keys[i]]`` when
    ``rank`` is not empty.
    """
    by_rank = len(rank) > 0
    for i in range(i_lo, i_hi):
        if ts[i] < cut:
            c = rank[keys[i]] if by_rank else keys[i] - lo
            counts[c + shift] += 1


@_jit
def _offsets(bounds, heads):
    """The counts become write positions; returns the rows counted.

    ``bounds[c + 2]`` holds customer ``c``'s rows before the cut and
    ``heads[j, c]`` those among the rows of range ``j`` (all ranges but the
    last, :func:`_place`). Afterwards ``bounds[c + 1]`` is where the last
    range writes c's first row and ``heads[j, c]`` where range ``j`` does: c's
    segment starts with the rows of range 0, in the log's order, then those of
    range 1, and so on.
    """
    n_customers = len(bounds) - 2
    for c in range(n_customers):  # bounds[c + 2] becomes the end of customer c
        start = bounds[c + 1]
        bounds[c + 2] += start
        for j in range(heads.shape[0]):
            rows = heads[j, c]
            heads[j, c] = start
            start += rows
        bounds[c + 1] = start
    return bounds[n_customers + 1]


@_jit
def _new_segments(total, with_amount):
    """The arrays :func:`_place` fills: each row's period and spend units.

    Allocated here, in small pages: numpy asks for huge pages, whose zeroing
    and compaction cost more system time than they save in page faults
    (measured at 10M rows).
    """
    return np.empty(total, np.int32), np.empty(total if with_amount else 0, np.int64)


@_jit
def _place(keys, lo, rank, ts, amount, cut, freq, months, day0, with_amount, cursor, shift, period,
           units, i_lo, i_hi):  # fmt: skip
    """Counting sort of the rows ``i_lo <= i < i_hi`` before ``cut`` by customer.

    Their periods and spend units go into ``period`` and ``units`` (from
    :func:`_new_segments`) at customer ``c``'s write position
    ``cursor[c + shift]`` (from :func:`_offsets`), which walks on. Once every
    range is placed customer ``c``'s rows are ``bounds[c]:bounds[c + 1]``, in
    the log's order.
    """
    by_rank = len(rank) > 0
    for i in range(i_lo, i_hi):
        if ts[i] < cut:
            c = rank[keys[i]] if by_rank else keys[i] - lo
            j = cursor[c + shift]
            cursor[c + shift] = j + 1
            period[j] = _period(ts[i], freq, months, day0)
            if with_amount:
                units[j] = _units(amount[i])


@_jit
def _with_rows(bounds, c_lo, c_hi):
    """How many customers of ``c_lo <= c < c_hi`` have rows (after :func:`_place`)."""
    k = 0
    for c in range(c_lo, c_hi):
        if bounds[c + 1] > bounds[c]:
            k += 1
    return k


@_jit
def _new_summary(n_out, with_amount, keep_repeat):
    """The columns :func:`_segments` fills, for ``n_out`` customers."""
    customer = np.empty(n_out, np.int64)
    frequency = np.empty(n_out, np.float64)
    recency = np.empty(n_out, np.float64)
    age = np.empty(n_out, np.float64)
    monetary = np.empty(n_out if with_amount else 0, np.float64)
    repeat_units = np.zeros(n_out if keep_repeat else 0, np.int64)
    return customer, frequency, recency, age, monetary, repeat_units


@_jit
def _segment(period, units, a, b, with_amount):
    """The periods and spend of one customer's rows ``a <= j < b`` (``b > a``).

    Returns the first and last period, the number of distinct periods (0 when
    the customer's spend reaches :data:`SPEND_GUARD`) and the spend units of
    the periods after the first. ``period[a:b]`` is sorted in place when it
    holds several periods.
    """
    first = period[a]
    last = period[a]
    for j in range(a + 1, b):
        p = period[j]
        if p < first:
            first = p
        if p > last:
            last = p
    if with_amount:  # 64-bit sums cannot overflow below the guard
        spend = 0.0
        for j in range(a, b):
            spend += abs(np.float64(units[j]))
        if not spend < SPEND_GUARD * 1e9:
            return first, last, 0, np.int64(0)
    repeat = np.int64(0)
    if with_amount and first != last:  # the spend of the periods after the first
        for j in range(a, b):
            if period[j] != first:
                repeat += units[j]
    if b - a == 1 or first == last:
        distinct = 1
    else:  # the periods sorted (their units are summed already)
        if b - a <= 32:
            _insertion_sort(period, a, b)
        else:
            _heap_sort(period, a, b)
        distinct = 1
        for j in range(a + 1, b):
            if period[j] != period[j - 1]:
                distinct += 1
    return first, last, distinct, repeat


@_jit
def _store(k, number, first, last, distinct, repeat, with_amount, end_period, keep_repeat,
           customer, frequency, recency, age, monetary, repeat_units):  # fmt: skip
    """Row ``k`` of the arrays of :func:`_new_summary`, from :func:`_segment`'s values.

    Returns 2 when the monetary value is left as NaN (a repeat spend of 2**53
    units or more), else 0.
    """
    customer[k] = number
    frequency[k] = distinct - 1
    recency[k] = last - first
    age[k] = end_period - first
    if with_amount:
        if keep_repeat:
            repeat_units[k] = repeat
        if distinct == 1:
            monetary[k] = 0.0
        elif abs(repeat) < _EXACT_DOUBLE:
            monetary[k] = (np.float64(repeat) / 1e9) / (distinct - 1)
        else:
            monetary[k] = np.nan
            return 2
    return 0


@_jit
def _segments(bounds, period, units, with_amount, end_period, lo, keep_repeat, c_lo, c_hi, k,
              customer, frequency, recency, age, monetary, repeat_units):  # fmt: skip
    """The summary columns of the customers ``c_lo <= c < c_hi`` with rows, from ``k`` on.

    Fills, from :func:`_place`'s segments, each customer's number plus
    ``lo``, frequency, recency, T, monetary value and (with ``keep_repeat``)
    repeat spend in units, in the arrays of :func:`_new_summary`
    (:func:`_segment`, :func:`_store`). Returns a flag: 0 done, 1 a
    customer's spend reaches :data:`SPEND_GUARD` (stopped), 2 the monetary
    value of customers whose repeat spend has 2**53 units or more is left as
    NaN, for the caller to convert from the units.
    """
    flag = 0
    for c in range(c_lo, c_hi):
        a, b = bounds[c], bounds[c + 1]
        if b == a:
            continue
        first, last, distinct, repeat = _segment(period, units, a, b, with_amount)
        if distinct == 0:
            return 1
        flag |= _store(k, c + lo, first, last, distinct, repeat, with_amount, end_period,
                       keep_repeat, customer, frequency, recency, age, monetary,
                       repeat_units)  # fmt: skip
        k += 1
    return flag


def prepare(keys, lo, rank, ts, amount, freq):
    """Customers, first day and month table of a log; None when an amount reaches the guard.

    The steps of :func:`summarise` before the rows are counted, shared with
    :mod:`rfmml.features._features_kernel`.
    """
    n_customers = (len(rank) if len(rank) else int(keys.max()) - lo + 1) if len(keys) else 0
    if amount is not None and not (amount.min() > -SPEND_GUARD and amount.max() < SPEND_GUARD):
        return None
    day0, months = 0, np.empty(0, np.int64)
    if freq == 2 and len(ts):  # the months of the log's days, from a table when it is small
        day0 = int(ts.min()) // _US_PER_DAY
        n_days = int(ts.max()) // _US_PER_DAY - day0 + 1
        if n_days <= MONTH_TABLE_DAYS:
            months = _month_table(day0, n_days)
    return n_customers, day0, months


def customer_rows(bounds, n_rows):
    """Customer bounds cutting the rows into ranges of about ``n_rows`` rows each.

    ``bounds`` as after :func:`_place` (customer ``c``'s rows are
    ``bounds[c]:bounds[c + 1]``); ``n_rows`` the rows of each range but the last.
    """
    n_customers = len(bounds) - 2
    starts = bounds[:n_customers]
    cuts = np.searchsorted(starts, np.cumsum(n_rows)).tolist()
    return [0, *cuts, n_customers]


def summarise_counted(bounds, heads, rows, keys, lo, rank, ts, amount, cut, freq, months, day0,
                      end_period, keep_repeat=False):  # fmt: skip
    """The summary columns from the rows counted per customer (:func:`_count`).

    ``rows`` are the bounds of ranges of log rows, one thread each
    (:mod:`rfmml.features._threads`); ``bounds[c + 2]`` holds customer c's
    rows before the cut and ``heads[j, c]`` those of range ``j``, for every
    range but the last. Each range places its rows on its thread, then each
    thread summarises the segments of a range of customers with about as many
    rows: the values of one thread, bit for bit.
    """
    from rfmml.features._threads import run_ranges

    with_amount = amount is not None
    n_out = int(np.count_nonzero(bounds))
    values = amount if with_amount else np.empty(0, np.float64)
    workers = len(rows) - 1
    total = _offsets(bounds, heads)
    period, units = _new_segments(total, with_amount)

    def place(j: int, i_lo: int, i_hi: int) -> None:
        cursor, shift = (bounds, 1) if j == workers - 1 else (heads[j], 0)
        _place(keys, lo, rank, ts, values, cut, freq, months, day0, with_amount, cursor, shift,
               period, units, i_lo, i_hi)  # fmt: skip

    run_ranges(place, rows)
    split = customer_rows(bounds, [total // workers] * (workers - 1))
    out = _new_summary(n_out, with_amount, keep_repeat)
    firsts = [0]  # each range's first output row: the customers with rows before it
    for j in range(1, workers):
        firsts.append(firsts[-1] + _with_rows(bounds, split[j - 1], split[j]))
    flags = run_ranges(lambda j, c_lo, c_hi: _segments(bounds, period, units, with_amount,
                                                       end_period, lo, keep_repeat, c_lo, c_hi,
                                                       firsts[j], *out),
                       split)  # fmt: skip
    if 1 in flags:
        return None
    customer, frequency, recency, age, monetary, repeat_units = out
    return customer, frequency, recency, age, monetary, max(flags), repeat_units


def summarise(keys, lo, rank, ts, amount, cut, freq, end_period, keep_repeat=False, workers=1):
    """The summary columns of a log's customers (see :func:`_segments`).

    Customer ``c`` of row ``i`` is ``keys[i] - lo``, or ``rank[keys[i]]`` when
    ``rank`` is not empty; ``ts`` are microseconds, ``cut`` the exclusive end,
    ``freq`` 0, 1 or 2 for days, weeks and months; ``amount`` may be None;
    ``keep_repeat`` returns the repeat spends in units too; ``workers``
    threads, each on a range of rows then of customers (the same values as
    one thread). Returns the customers' numbers plus ``lo``, frequency,
    recency, T, monetary value (empty without amounts), a flag (2: some
    monetary values are NaN, their repeat spends reaching 2**53 units, to
    convert from the units) and the repeat spends in units (empty without
    ``keep_repeat``). None when an amount or a customer's spend reaches
    :data:`SPEND_GUARD`.
    """
    from rfmml.features._threads import even_bounds, run_ranges

    setup = prepare(keys, lo, rank, ts, amount, freq)
    if setup is None:
        return None
    n_customers, day0, months = setup
    rows = even_bounds(len(keys), workers)
    bounds = np.zeros(n_customers + 2, np.int64)
    heads = np.zeros((workers - 1, n_customers), np.int64)

    def count(j: int, i_lo: int, i_hi: int) -> None:
        counts, shift = (bounds, 2) if j == workers - 1 else (heads[j], 0)
        _count(keys, lo, rank, ts, cut, counts, shift, i_lo, i_hi)

    run_ranges(count, rows)
    if workers > 1:
        bounds[2:] += heads.sum(axis=0)
    return summarise_counted(bounds, heads, rows, keys, lo, rank, ts, amount, cut, freq, months,
                             day0, end_period, keep_repeat)  # fmt: skip
