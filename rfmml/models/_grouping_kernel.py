"""Compiled loops of :func:`rfmml.models._grouping.sorted_distinct_rows` (numba).

Imported on first use.

The grouping of a fit's customers into distinct (frequency, recency, T) rows
ranks each column's values, packs the ranks and each row's position into one
integer key, sorts the keys and numbers the distinct ones. In numpy that is
about fifteen passes over the customers (each column's ranks: a conversion to
integers, its check, a table, a gather; the key, the packing, the sort, the
unpacking, the marks of new keys, their running count, the scatter back):
0.16-0.20 s at 3.3M customers, on one thread, before the fit can start. The
loops here make the same keys in three passes besides numpy's sort (the
marks of the values present, one pass building the packed keys, one
numbering them), so the same rows and numbers, in about a third of the time.
The keys are sorted by :func:`radix_sort` (a few counting passes over the
bits that hold the ranks), not numpy's comparison sort.
"""

from __future__ import annotations

import numpy as np

from rfmml._jit import jit as _jit

__all__ = ["mark_values", "number_keys", "packed_keys", "radix_sort"]

#: Whole values from 0 up to (not including) this are their own table index.
TOP = 2**24


@_jit
def mark_values(values, present):  # pragma: no cover - compiled
    """Mark each value of ``values`` in ``present`` (``present[v] = True``).

    Returns False (``present`` partly marked) when a value is not a whole
    number in ``[0, len(present))`` (NaN included).
    """
    top = len(present)
    for i in range(len(values)):
        v = values[i]
        if not (v >= 0 and v < top):
            return False
        k = np.int64(v)
        if k != v:
            return False
        present[k] = True
    return True


@_jit
def packed_keys(c0, c1, c2, rank0, rank1, rank2, size1, size2, bits, out):  # pragma: no cover
    """``out[i] = ((rank0[c0[i]] * size1 + rank1[c1[i]]) * size2 + rank2[c2[i]]) << bits | i``.

    The columns hold whole numbers (checked by :func:`mark_values`); with two
    columns pass ``c2`` empty and ``size2`` 1 (its rank is then 0).
    """
    with_c2 = len(c2) > 0
    for i in range(len(c0)):
        key = rank0[np.int64(c0[i])] * size1 + rank1[np.int64(c1[i])]
        key *= size2
        if with_c2:
            key += rank2[np.int64(c2[i])]
        out[i] = (key << bits) | i


@_jit
def number_keys(keys, bits, codes, distinct):  # pragma: no cover - compiled
    """Number the sorted packed keys: ``codes[row]`` the key's place among the distinct ones.

    ``distinct`` receives the distinct keys (unpacked), in order; returns how many.
    """
    mask = (np.int64(1) << bits) - 1
    k = -1
    previous = np.int64(-1)
    for j in range(len(keys)):
        key = keys[j] >> bits
        if j == 0 or key != previous:
            k += 1
            distinct[k] = key
            previous = key
        codes[keys[j] & mask] = k
    return k + 1


#: Most key bits one pass of :func:`radix_sort` orders (its table: 2**11 counts).
RADIX_BITS = 11


@_jit
def radix_sort(keys, shift, key_bits, spare):  # pragma: no cover - compiled
    """Sort ``keys`` (int64 >= 0) in place by their bits ``[shift, shift + key_bits)``.

    Least significant digit first: each pass counts the keys per digit of up
    to :data:`RADIX_BITS` bits, then moves them to their digit's place in
    order (a stable pass), between ``keys`` and ``spare`` (as long). Keys
    equal in those bits keep their order, so packed keys whose low ``shift``
    bits are the rows' positions in ascending order, and whose bits above
    ``shift + key_bits`` are zero, come out as ``numpy.sort`` leaves them. At
    3.3M keys of 27 such bits: three passes, 0.05 s against 0.26 s for
    ``numpy.sort`` on the same machine.
    """
    n = len(keys)
    passes = (key_bits + RADIX_BITS - 1) // RADIX_BITS
    if passes == 0 or n < 2:
        return
    width = (key_bits + passes - 1) // passes
    mask = (np.int64(1) << width) - 1
    counts = np.empty(np.int64(1) << width, dtype=np.int64)
    src, dst = keys, spare
    for p in range(passes):
        s = shift + p * width
        counts[:] = 0
        for i in range(n):
            counts[(src[i] >> s) & mask] += 1
        total = np.int64(0)
        for b in range(len(counts)):
            c = counts[b]
            counts[b] = total
            total += c
        for i in range(n):
            v = src[i]
            b = (v >> s) & mask
            dst[counts[b]] = v
            counts[b] += 1
        src, dst = dst, src
    if passes % 2 == 1:  # the last pass wrote into spare
        keys[:] = src
