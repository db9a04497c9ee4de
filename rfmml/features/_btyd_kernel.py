"""The compiled BTYD summary's definitions (numba), imported on first use.

The same definitions and the same arithmetic as the DuckDB statement
(``btyd._summary_sql``), computed per customer instead of in two hash
aggregations: customers are numbered ``0..K-1`` in key order (the integer ids
themselves when their range is compact, else a factorisation whose uniques are
sorted), each row's period and exact spend units are placed in its customer's
segment, and each segment gives its customer's counts, first and last period
and spends (:func:`_segment`, :func:`_store`). Spend is summed in exact
integer units of 1e-9 as in :func:`rfmml.features.btyd.sql_spend_units`, and
converted to a double as in ``_sql_units_to_double``, so the values equal the
statement's bit for bit. The pass over a log's rows that builds the segments
is :func:`rfmml.features._features_kernel.summarise`.
"""

from __future__ import annotations

import numpy as np

from rfmml._jit import jit as _jit

__all__ = ["SPEND_GUARD", "prepare"]

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
def _new_summary(n_out, with_amount, keep_repeat):
    """The summary columns of ``n_out`` customers, filled by :func:`_store`."""
    customer = np.empty(n_out, np.int64)
    frequency = np.empty(n_out, np.float64)
    recency = np.empty(n_out, np.float64)
    age = np.empty(n_out, np.float64)
    monetary = np.empty(n_out if with_amount else 0, np.float64)
    repeat_units = np.zeros(n_out if keep_repeat else 0, np.int64)
    return customer, frequency, recency, age, monetary, repeat_units


def prepare(keys, lo, rank, ts, amount, freq):
    """Customers, first day and month table of a log; None when an amount reaches the guard.

    The steps of :mod:`rfmml.features._features_kernel`'s pass before the rows
    are partitioned.
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
