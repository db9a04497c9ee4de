"""Collapse identical customer rows to unique rows with counts.

Customers with the same (frequency, recency, T) have the same likelihood and
the same predictions, so fitting and scoring work on unique rows. Each
column becomes integer codes (small non-negative whole numbers, as in
whole-period summaries, are their own codes; other values are hashed with
``pandas.factorize``) and the codes are combined into one integer key. When
the key's range is small (whole-period summaries) rows are grouped by marking
the keys present in a table of that range, a few linear passes; otherwise the
key is hashed (or, for the fit's unique rows, sorted). ``numpy.unique(axis=0)``
sorts rows and is much slower on millions of rows.

Every per-customer prediction goes through :func:`map_rows`, which evaluates
it on unique rows when they collapse and in chunks of at most
:data:`CHUNK_ROWS` rows either way, so that the memory of a prediction does
not grow with the number of customers beyond its output column.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd

from rfmml._threads import run_all

__all__ = [
    "CHUNK_ROWS",
    "map_rows",
    "rows_repeat",
    "sample_positions",
    "sample_repeats",
    "group_rows",
    "unique_rows",
    "rows_fingerprint",
    "frequency_levels",
    "whole_levels",
    "small_whole_numbers",
    "sorted_distinct_rows",
]

#: Rows a prediction evaluates at once. The closed forms hold about ten
#: temporaries per row (hypergeometric and quadrature paths), so a chunk
#: needs some 5 MiB per temporary and 50 MiB in all, whatever the number of
#: customers. Read at call time: tests set it to a few rows to check that
#: chunked results equal unchunked ones.
CHUNK_ROWS = 2**16
#: Rows per call of a cheap elementwise prediction evaluated in order
#: (``map_rows(..., unique=False)`` by default): its few temporaries then stay
#: in the processor's cache and in memory the allocator reuses, where
#: million-row temporaries cost more in page faults than in arithmetic
#: (measured: 3x on P(alive) at 1M customers).
IN_ORDER_CHUNK_ROWS = 2**14
#: Above this fraction of distinct rows in a sample, :func:`map_rows` does
#: not collapse the rows (continuous-time summaries: nearly every row is
#: distinct, and grouping would only add a hash of every row).
COLLAPSE_MAX_FRACTION = 0.5


def rows_repeat(*columns: np.ndarray) -> bool:
    """Whether rows repeat enough to be worth collapsing (the rule of :func:`map_rows`).

    True when there are at most :data:`CHUNK_ROWS` rows, or when an evenly
    strided sample of :data:`CHUNK_ROWS` rows has at most
    :data:`COLLAPSE_MAX_FRACTION` distinct rows.

    Parameters
    ----------
    *columns : numpy.ndarray
        Equal-length 1-d arrays.

    Returns
    -------
    bool
    """
    positions = sample_positions(len(columns[0]))
    if positions is None:
        return True
    return sample_repeats(*(np.asarray(c)[positions] for c in columns))


def sample_positions(n: int) -> np.ndarray | None:
    """The rows of :func:`rows_repeat`'s sample of ``n`` rows; None when it takes them all.

    Every ``n // CHUNK_ROWS``-th row from the first, :data:`CHUNK_ROWS` of them.
    """
    sample = max(int(CHUNK_ROWS), 1)
    if n <= sample:
        return None
    return np.arange(sample, dtype=np.int64) * (n // sample)


def sample_repeats(*sampled: np.ndarray) -> bool:
    """Whether :func:`rows_repeat`'s sample (its rows given) has few distinct rows.

    At most :data:`COLLAPSE_MAX_FRACTION` of them.
    """
    _, first = group_rows(*sampled)
    return bool(len(first) <= COLLAPSE_MAX_FRACTION * len(sampled[0]))


def map_rows(
    fn: Callable[..., np.ndarray],
    *columns: np.ndarray,
    unique: bool = True,
    chunk_rows: int | None = None,
) -> np.ndarray:
    """Evaluate a row-wise function in bounded chunks, once per distinct row.

    ``fn(*chunk_columns) -> values`` must be elementwise: one value per row
    (or one row of values, e.g. the lower and upper ends of an interval, as
    an array of shape ``(rows, k)``), depending on that row only. It is
    called on slices (or gathered unique rows) of at most ``chunk_rows``
    rows, so its temporaries are bounded, and, after the first chunk, from
    several threads at once (:func:`rfmml._threads.run_all`: ``fn`` must not
    change shared state; each chunk's values are the bits one thread gives);
    the result is gathered into one float array, the only array that grows
    with the number of rows (plus, when rows collapse, one integer code per
    row and one value per distinct row).

    With ``unique=True`` (for expensive functions), rows are collapsed when
    they repeat: always when there are at most :data:`CHUNK_ROWS` of them,
    otherwise when an evenly strided sample of :data:`CHUNK_ROWS` rows has at
    most :data:`COLLAPSE_MAX_FRACTION` distinct rows (whole-period
    summaries); columns with a single value do not enter the grouping.
    Otherwise (``unique=False``, or continuous-time summaries where nearly
    every row is distinct) the rows are sliced in order.

    Parameters
    ----------
    fn : callable
        ``fn(*columns) -> numpy.ndarray`` of one value per row.
    *columns : numpy.ndarray
        Equal-length 1-d arrays, passed to ``fn`` in this order.
    unique : bool, default True
        Whether to evaluate once per distinct row.
    chunk_rows : int, optional
        Rows per call of ``fn``; :data:`CHUNK_ROWS` by default
        (:data:`IN_ORDER_CHUNK_ROWS` with ``unique=False``).

    Returns
    -------
    numpy.ndarray
        ``fn`` of every row, float64, in the input order: shape ``(n,)``, or
        ``(n, k)`` when ``fn`` returns ``(rows, k)``.
    """
    default = CHUNK_ROWS if unique else min(CHUNK_ROWS, IN_ORDER_CHUNK_ROWS)
    size = max(int(default if chunk_rows is None else chunk_rows), 1)
    arrays = [np.asarray(c) for c in columns]
    n = len(arrays[0])
    if n == 0:
        return np.empty(0)
    if unique:
        varying = [not a[0] == a[-1] or not np.all(a == a[0]) for a in arrays]
        keys = [a for a, v in zip(arrays, varying, strict=True) if v]
        if not keys:  # one distinct row
            one = np.asarray(fn(*(a[:1] for a in arrays)), dtype=float)
            return np.repeat(one, n, axis=0)
        unique_columns: list[np.ndarray] | None = None
        dense = _dense_key(keys)
        if dense is not None:
            # whole-number columns: grouping is a few linear passes, decide on all rows;
            # the unique rows are decoded from their keys (no row positions needed)
            key, n_key, levels = dense
            present = np.zeros(n_key, dtype=np.bool_)
            present[key] = True
            ukeys = np.flatnonzero(present)
            if len(ukeys) < n and (
                len(ukeys) <= COLLAPSE_MAX_FRACTION * n or n <= max(int(CHUNK_ROWS), 1)
            ):
                number = np.empty(n_key, dtype=np.int64)  # only present keys' entries are read
                number[ukeys] = np.arange(len(ukeys), dtype=np.int64)
                codes = number[key]
                decoded = iter(_decode_key(ukeys, levels))
                unique_columns = [
                    next(decoded).astype(a.dtype) if v else np.full(len(ukeys), a[0])
                    for a, v in zip(arrays, varying, strict=True)
                ]
        elif rows_repeat(*keys):
            codes, first = group_rows(*keys)
            if len(first) < n:
                unique_columns = [a[first] for a in arrays]
        if unique_columns is not None:
            values = _in_blocks(fn, unique_columns, size)
            return np.take(values, codes, axis=0)
    return _in_blocks(fn, arrays, size)


def _in_blocks(fn: Callable[..., np.ndarray], arrays: list[np.ndarray], size: int) -> np.ndarray:
    """``fn`` of consecutive blocks of ``size`` rows, gathered into one float array.

    The first block fixes the shape of a row's value; the others are computed
    by :func:`rfmml._threads.run_all` (on several cores; each block's values
    are the bits one thread gives) and stored in place.
    """
    n = len(arrays[0])
    first = np.asarray(fn(*(a[:size] for a in arrays)), dtype=float)
    out = np.empty((n, *first.shape[1:]))
    out[:size] = first

    def block(start: int) -> Callable[[], None]:
        def compute() -> None:
            where = slice(start, start + size)
            out[where] = np.asarray(fn(*(a[where] for a in arrays)), dtype=float)

        return compute

    run_all([block(start) for start in range(size, n, size)])
    return out


def group_rows(*columns: np.ndarray, sort: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Group identical rows of several equal-length 1-d arrays.

    Each column becomes integer codes (small non-negative whole numbers are
    their own codes, other values are hashed by ``pandas.factorize``) and the
    codes are combined into one integer key. When the key's range is at
    most :data:`DENSE_KEY_FACTOR` times the number of rows (whole-period
    summaries), rows are grouped by marking the keys present in a table of
    that range (:func:`_group_dense`, a few linear passes); otherwise the key
    is hashed once more.

    Parameters
    ----------
    *columns : numpy.ndarray
        The columns that together identify a row.
    sort : bool, default False
        Number the unique rows in lexicographic order of the columns (so the
        numbering does not depend on the input row order). Only the distinct
        values are sorted, never the rows.

    Returns
    -------
    codes : numpy.ndarray
        For each input row, the index of its unique row.
    first : numpy.ndarray
        For each unique row, the position of one input row holding it.
    """
    key = None
    n_key = 1
    for col in columns:
        codes, n_levels = _codes(np.asarray(col), sort)
        if key is None:
            key, n_key = codes, n_levels
            continue
        if n_key * n_levels >= 2**62:  # keep the combined key inside int64
            key, kept = pd.factorize(key, sort=sort)
            key, n_key = key.astype(np.int64), len(kept)
        key *= n_levels  # key is a fresh array from _codes or astype: safe in place
        key += codes
        n_key *= n_levels
    assert key is not None  # at least one column
    if n_key <= _dense_limit(len(key)):
        return _group_dense(key, n_key)
    codes, uniques = pd.factorize(key, sort=sort)
    first = np.empty(len(uniques), dtype=np.int64)
    first[codes] = np.arange(len(codes), dtype=np.int64)
    return codes, first


#: A combined key whose range is at most this many times the number of rows
#: (or at most :data:`DENSE_KEY_MIN`) is grouped through a table of its range.
DENSE_KEY_FACTOR = 4
DENSE_KEY_MIN = 2**18


def _dense_limit(n_rows: int) -> int:
    return max(DENSE_KEY_FACTOR * n_rows, DENSE_KEY_MIN)


def _group_dense(key: np.ndarray, n_key: int) -> tuple[np.ndarray, np.ndarray]:
    """:func:`group_rows` for integer keys in ``[0, n_key)``: unique rows in key order.

    Marks the keys present in a table of ``n_key`` flags and numbers them in
    increasing order (so the numbering is the sorted one whatever ``sort``
    asks). Costs a few passes over the rows and one over the flags, against
    a hash-table probe per row for ``pandas.factorize``.
    """
    present = np.zeros(n_key, dtype=np.bool_)
    present[key] = True
    keys = np.flatnonzero(present)
    number = np.empty(n_key, dtype=np.int64)  # only the entries of present keys are written
    number[keys] = np.arange(len(keys), dtype=np.int64)
    codes = number[key]
    first = np.empty(len(keys), dtype=np.int64)
    first[codes] = np.arange(len(key), dtype=np.int64)
    return codes, first


def _dense_key(columns: list[np.ndarray]) -> tuple[np.ndarray, int, list[int]] | None:
    """The combined key of columns of small whole numbers, when its range is small.

    Returns the key (the first column most significant), its range and the
    range of each column's codes (for :func:`_decode_key`); None when a
    column holds other values or the range of the key exceeds
    :func:`_dense_limit` of the number of rows. The key is built, and the
    values checked to be whole, in blocks of :data:`IN_ORDER_CHUNK_ROWS`
    rows, so that no million-row temporary is allocated besides the key.
    """
    n = len(columns[0])
    levels = []
    for col in columns:
        if col.dtype.kind not in "fiu" or not n:
            return None
        top = col.max()
        if not (0 <= col.min() and top < 2**24):  # NaN fails both comparisons
            return None
        levels.append(int(top) + 1)
    n_key = int(np.prod(np.asarray(levels, dtype=float)))
    if n_key > _dense_limit(n):
        return None
    key = np.empty(n, dtype=np.int64)
    block = max(int(IN_ORDER_CHUNK_ROWS), 1)
    for start in range(0, n, block):
        rows = slice(start, start + block)
        out = key[rows]
        for i, (col, n_levels) in enumerate(zip(columns, levels, strict=True)):
            part = col[rows]
            codes = part.astype(np.int64)
            if part.dtype.kind == "f" and not np.array_equal(codes, part):
                return None
            if i == 0:
                out[:] = codes
            else:
                out *= n_levels
                out += codes
    return key, n_key, levels


def _decode_key(keys: np.ndarray, levels: list[int]) -> list[np.ndarray]:
    """The column codes (here: the whole numbers themselves) of combined keys."""
    out = []
    for n_levels in levels[::-1]:
        keys, codes = np.divmod(keys, n_levels)
        out.append(codes)
    return out[::-1]


def _own_codes(values: np.ndarray) -> tuple[np.ndarray, int] | None:
    """Small non-negative whole numbers as int64 codes and their range, else None."""
    if values.dtype.kind not in "fiu" or not len(values):
        return None
    top = values.max()
    if not (0 <= values.min() and top < 2**24):  # NaN fails both comparisons
        return None
    as_int = values.astype(np.int64)
    if values.dtype.kind == "f" and not np.array_equal(as_int, values):
        return None
    return as_int, int(top) + 1


def small_whole_numbers(values: np.ndarray) -> bool:
    """Whether every value is a whole number in ``[0, 2**24)`` (an empty float array: no)."""
    if values.dtype.kind in "iu":
        return len(values) == 0 or (values.min() >= 0 and values.max() < 2**24)
    if values.dtype.kind != "f" or not len(values):
        return False
    return bool(
        values.min() >= 0 and values.max() < 2**24 and np.array_equal(np.floor(values), values)
    )


def _codes(values: np.ndarray, sort: bool) -> tuple[np.ndarray, int]:
    """Integer codes of a column and their range; order-preserving when ``sort``.

    Small non-negative whole numbers (frequencies, whole-period recency and
    T) are their own codes, which skips a hash table.
    """
    own = _own_codes(values)
    if own is not None:
        return own
    codes, uniques = pd.factorize(values, sort=sort)
    return codes.astype(np.int64), len(uniques)


def unique_rows(
    columns: dict[str, np.ndarray], weights: np.ndarray
) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """Collapse rows to unique rows with summed weights, in sorted (canonical) order.

    The order does not depend on the input row order, so fits on the same
    customers in any order (or already collapsed with weights) run the same
    arithmetic and give bit-identical results.

    Parameters
    ----------
    columns : dict of str to numpy.ndarray
        Columns identifying a row; the first is the primary sort key.
    weights : numpy.ndarray
        Customers per input row.

    Returns
    -------
    unique : dict of str to numpy.ndarray
        Unique rows, sorted by the columns in order.
    counts : numpy.ndarray
        Summed weights per unique row.
    """
    arrays = [np.asarray(a) for a in columns.values()]
    if _strictly_increasing(arrays):  # distinct and sorted already: the features table's
        # grouping, DuckDB's ORDER BY (the first BG/NBD fit at 1.3M rows: 0.08 s less)
        return (
            {k: arr.copy() for k, arr in zip(columns, arrays, strict=True)},
            np.array(weights, dtype=float),
        )
    if all(small_whole_numbers(a) for a in arrays):
        fast = _unique_whole_rows(arrays, np.asarray(weights))
        if fast is not None:
            return dict(zip(columns, fast[0], strict=True)), fast[1]
        # hash path: whole numbers are their own codes, one factorize of the combined key
        codes, first = group_rows(*arrays, sort=True)
        counts = np.bincount(codes, weights=weights, minlength=len(first))
        return {k: arr[first] for k, arr in zip(columns, arrays, strict=True)}, counts
    # sort path for continuous values (e.g. mean spend), where hashing millions of
    # distinct floats and sorting the uniques costs several times one argsort
    order: np.ndarray | None = None
    for arr in reversed(arrays):
        keyed = arr if order is None else arr[order]
        if small_whole_numbers(keyed) and keyed.max() < 2**15:
            step = np.argsort(keyed.astype(np.int16), kind="stable")  # radix sort
        else:
            step = np.argsort(keyed, kind="quicksort" if order is None else "stable")
        order = step if order is None else order[step]
    assert order is not None  # arrays is non-empty: no columns takes the hash path
    ordered = [arr[order] for arr in arrays]
    new_row = np.zeros(len(order), dtype=np.bool_)
    new_row[0] = True
    for arr in ordered:
        new_row[1:] |= arr[1:] != arr[:-1]
    starts = np.flatnonzero(new_row)
    counts = np.add.reduceat(np.asarray(weights, dtype=float)[order], starts)
    return {k: arr[starts] for k, arr in zip(columns, ordered, strict=True)}, counts


def _row_steps(arrays: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Between each row and the next (two rows or more), whether it goes up and whether down.

    Lexicographically, the first column holding different values deciding; a
    NaN there decides neither (it compares false both ways), nor do equal rows.
    """
    n = len(arrays[0])
    up = np.zeros(n - 1, dtype=bool)
    down = np.zeros(n - 1, dtype=bool)
    tied = np.ones(n - 1, dtype=bool)
    for arr in arrays:
        left, right = arr[:-1], arr[1:]
        up |= tied & (right > left)
        down |= tied & (right < left)
        tied &= right == left
    return up, down


def _strictly_increasing(arrays: list[np.ndarray]) -> bool:
    """Whether each row is lexicographically above the one before (so no row repeats).

    False with NaN (it compares false), and for fewer than two rows only when
    there are none.
    """
    n = len(arrays[0])
    if n < 2:
        return n == 1
    return bool(_row_steps(arrays)[0].all())


def _unique_whole_rows(
    arrays: list[np.ndarray], weights: np.ndarray
) -> tuple[list[np.ndarray], np.ndarray] | None:
    """:func:`unique_rows` of small whole numbers by sorting (or tabulating) one integer key.

    The columns' values are their own codes, combined into one integer key
    (the first column most significant), so the sorted distinct keys decode
    back into the unique rows in lexicographic order. With a key range of at
    most :func:`_dense_limit` rows the weights are summed into a table of
    that range (``bincount``, in input order as the hash path); otherwise,
    when every weight is 1 (a summary without a ``weights`` column), the
    counts are the run lengths of the sorted keys (SIMD ``numpy.sort``, a
    few times faster than hashing); when the rows are already distinct
    (collapsed with their counts, as DuckDB or Spark hand them over), the
    rows and weights are put in key order (``numpy.argsort``: the counts are
    the weights themselves, as the hash path's sums of one weight each).
    Returns None in the other cases (weighted rows that repeat: the hash
    path sums their weights in input order).
    """
    n = len(arrays[0])
    if n == 0:
        return None
    ranges = [int(a.max()) + 1 for a in arrays]
    if float(np.prod([float(k) for k in ranges])) >= 2.0**62:
        return None
    key = arrays[0].astype(np.int64)
    for arr, n_levels in zip(arrays[1:], ranges[1:], strict=True):
        key *= n_levels
        key += arr.astype(np.int64)
    n_key = int(np.prod(ranges, dtype=np.int64))
    w = np.asarray(weights, dtype=float)
    if n_key <= _dense_limit(n):
        table = np.bincount(key, weights=w, minlength=n_key)
        present = np.bincount(key, minlength=n_key) > 0  # weights may be any positive value
        keys = np.flatnonzero(present)
        counts = table[keys]
    elif w.min() == 1.0 and w.max() == 1.0:
        ordered = np.sort(key)
        starts = np.flatnonzero(np.concatenate(([True], ordered[1:] != ordered[:-1])))
        keys = ordered[starts]
        counts = np.diff(np.append(starts, n)).astype(float)
    else:
        order = np.argsort(key)
        keys = key[order]
        if not (keys[1:] > keys[:-1]).all():  # a row repeats
            return None
        counts = w[order]
    out = []
    for arr, n_levels in zip(arrays[::-1], ranges[::-1], strict=True):
        out.append((keys % n_levels).astype(arr.dtype))
        keys = keys // n_levels
    return out[::-1], counts


def rows_fingerprint(columns: dict[str, np.ndarray], weights: np.ndarray) -> str:
    """SHA-256 of the sorted unique rows and their counts.

    The same customers in any row order (or already collapsed to unique rows
    with weights) give the same fingerprint.

    Parameters
    ----------
    columns : dict of str to numpy.ndarray
        Unique rows, one array per column, as :func:`unique_rows` returns them
        (sorted lexicographically; other orders are sorted here).
    weights : numpy.ndarray
        How many customers each unique row stands for.

    Returns
    -------
    str
        ``"sha256:<hex digest>"``.
    """
    arrays = [np.asarray(v, dtype=np.float64) for v in columns.values()]
    order = _lexsort_if_needed(arrays)
    digest = hashlib.sha256()
    for name, arr in zip(columns, arrays, strict=True):
        digest.update(name.encode())
        digest.update(np.ascontiguousarray(arr[order]).tobytes())
    digest.update(np.ascontiguousarray(np.asarray(weights, dtype=np.float64)[order]).tobytes())
    return "sha256:" + digest.hexdigest()


def _lexsort_if_needed(arrays: list[np.ndarray]) -> np.ndarray | slice:
    """Row order that sorts ``arrays`` lexicographically; a no-op slice if already sorted."""
    n = len(arrays[0])
    if n < 2:
        return slice(None)
    if not _row_steps(arrays)[1].any():  # no row below the one before it
        return slice(None)
    return np.lexsort(arrays[::-1])


def frequency_levels(weights, **columns) -> tuple[dict[str, Any], np.ndarray]:
    """The fields every prepared likelihood data shares, and the frequency level of each row.

    Parameters
    ----------
    weights : array_like
        Customers per (unique) row.
    **columns : array_like
        The rows' columns by field name; ``x`` (the frequency) among them.

    Returns
    -------
    fields : dict
        The columns and ``weights`` as float arrays, ``n`` (total weight),
        ``x_levels`` (distinct frequencies, sorted) and ``level_weights``
        (their summed weights).
    index : numpy.ndarray
        The level of each row in ``x_levels``.
    """
    fields: dict[str, Any] = {k: np.asarray(v, dtype=float) for k, v in columns.items()}
    w = np.asarray(weights, dtype=float)
    whole = whole_levels(fields["x"])  # np.unique's levels and index without its sort
    levels, index = whole if whole is not None else np.unique(fields["x"], return_inverse=True)
    fields.update(
        weights=w,
        n=float(w.sum()),
        x_levels=levels,
        level_weights=np.bincount(index, weights=w, minlength=len(levels)),
    )
    return fields, index


def whole_levels(values: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
    """``np.unique(values, return_inverse=True)`` of small whole numbers; None for others.

    The distinct values (as floats, ascending) and each value's position among
    them, through a table of the values' range (a few linear passes, no sort).
    """
    own = _own_codes(values)
    if own is None:
        return None
    index, present = _ranks_in_range(*own, np.intp)  # np.unique's index type
    return present.astype(float), index


def _ranks_in_range(
    codes: np.ndarray, span: int, dtype: type[np.integer]
) -> tuple[np.ndarray, np.ndarray]:
    """Each code's rank among the codes present, and those codes (ascending).

    Codes in ``[0, span)``, ranked through a table of that range (a few linear
    passes, no sort); the ranks of type ``dtype``.
    """
    present = np.zeros(span, dtype=np.bool_)
    present[codes] = True
    rank_of = np.cumsum(present, dtype=dtype)
    rank_of -= 1
    return rank_of[codes], np.flatnonzero(present)


def _column_ranks(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Each value's rank among the column's distinct values, and those values (sorted).

    Small non-negative whole numbers are ranked through a table of their
    range (a few linear passes); other values by sorting the distinct ones.
    """
    own = _own_codes(values)
    if own is None:
        levels = np.unique(values)
        return np.searchsorted(levels, values), levels
    ranks, present = _ranks_in_range(*own, np.int32)  # ranks < 2**24: half the int64 table
    return ranks, present.astype(values.dtype)


#: From this many rows :func:`sorted_distinct_rows` of two or three columns of small whole
#: numbers takes the compiled loops (:mod:`rfmml.models._grouping_kernel`).
COMPILED_DISTINCT_MIN_ROWS = 100_000


def _sorted_distinct_compiled(
    arrays: list[np.ndarray],
) -> tuple[list[np.ndarray], np.ndarray] | None:
    """:func:`sorted_distinct_rows` by the compiled loops: the same keys, rows and numbers.

    None (the numpy steps then run) without numba, or when a column holds a
    value that is not a whole number in ``[0, 2**24)``, or the packed keys
    would not fit in 63 bits.
    """
    from rfmml._compiled import compiled_module

    kernel = compiled_module("rfmml.models._grouping_kernel")
    if kernel is None:
        return None
    n = len(arrays[0])
    ranks, levels = [], []
    for values in arrays:
        if values.dtype.kind not in "fiu" or not 0 <= values.max() < kernel.TOP:
            return None
        present = np.zeros(int(values.max()) + 1, dtype=np.bool_)
        if not kernel.mark_values(values, present):  # a negative or fractional value
            return None
        rank_of = np.cumsum(present, dtype=np.int64)
        rank_of -= 1
        ranks.append(rank_of)
        levels.append(np.flatnonzero(present).astype(values.dtype))
    sizes = [len(v) for v in levels]
    bits = max(n - 1, 1).bit_length()
    if math.prod(sizes) >= 2 ** (63 - bits):
        return None
    if len(arrays) == 2:
        arrays = [*arrays, arrays[0][:0]]
        ranks.append(np.zeros(0, dtype=np.int64))
        sizes.append(1)
    keys = np.empty(n, dtype=np.int64)
    kernel.packed_keys(*arrays, *ranks, sizes[1], sizes[2], bits, keys)
    distinct_keys = np.empty(n, dtype=np.int64)  # first the radix sort's second buffer
    kernel.radix_sort(keys, bits, (math.prod(sizes) - 1).bit_length(), distinct_keys)
    codes = np.empty(n, dtype=np.int64)
    n_distinct = kernel.number_keys(keys, bits, codes, distinct_keys)
    del keys
    distinct_keys = distinct_keys[:n_distinct].copy()
    distinct = []
    for values, size in zip(levels[::-1], sizes[len(levels) - 1 :: -1], strict=True):
        distinct_keys, rank = np.divmod(distinct_keys, size)
        distinct.append(values[rank])
    return distinct[::-1], codes


def sorted_distinct_rows(*columns: np.ndarray) -> tuple[list[np.ndarray], np.ndarray] | None:
    """The distinct rows of numeric columns in lexicographic order, and each row's number.

    The order is that of ``SELECT DISTINCT ... ORDER BY`` the columns (first
    column first): row ``i`` of the input is row ``codes[i]`` of the result.
    Each column's values are ranked (:func:`_column_ranks`), the ranks
    combined into one integer key (mixed radix, so keys sort as the rows do),
    and the keys sorted with each row's position packed into their low bits
    (one sort of integers, no argsort) when key and position fit in 63 bits;
    else the rows are sorted by :func:`numpy.lexsort`.

    Parameters
    ----------
    *columns : numpy.ndarray
        Equal-length 1-d numeric arrays.

    Returns
    -------
    (list of numpy.ndarray, numpy.ndarray) or None
        The distinct rows' columns and the row number (int64) of every input
        row; None when a column holds NaN (no order is defined for it).
    """
    arrays = [np.asarray(c) for c in columns]
    n = len(arrays[0])
    if not n or any(a.dtype.kind == "f" and np.isnan(a).any() for a in arrays):
        return None
    if 2 <= len(arrays) <= 3 and n >= COMPILED_DISTINCT_MIN_ROWS:
        compiled = _sorted_distinct_compiled(arrays)
        if compiled is not None:
            return compiled
    ranked = [_column_ranks(a) for a in arrays]
    sizes = [len(levels) for _, levels in ranked]
    bits = max(n - 1, 1).bit_length()
    if math.prod(sizes) < 2 ** (63 - bits):
        key = np.zeros(n, dtype=np.int64)
        for (rank, _), size in zip(ranked, sizes, strict=True):
            key *= size
            key += rank
        key <<= bits
        key |= np.arange(n, dtype=np.int64)
        key.sort()
        order = key & ((1 << bits) - 1)
        key >>= bits
        new = np.empty(n, dtype=np.bool_)
        new[0] = True
        np.not_equal(key[1:], key[:-1], out=new[1:])
        unique_keys: np.ndarray | None = key[new]
    else:  # too many distinct values to pack: sort the ranks themselves
        order = np.lexsort([rank for rank, _ in ranked][::-1])
        new = np.zeros(n, dtype=np.bool_)
        new[0] = True
        for rank, _ in ranked:
            in_order = rank[order]
            new[1:] |= in_order[1:] != in_order[:-1]
        unique_keys = None
    number = np.cumsum(new, dtype=np.int64)
    number -= 1
    codes = np.empty(n, dtype=np.int64)
    codes[order] = number
    if unique_keys is None:
        first = order[new]
        return [levels[rank[first]] for rank, levels in ranked], codes
    distinct = []
    for (_, levels), size in zip(ranked[::-1], sizes[::-1], strict=True):
        unique_keys, rank = np.divmod(unique_keys, size)
        distinct.append(levels[rank])
    return distinct[::-1], codes
