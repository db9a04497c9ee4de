"""A compiled radix sort of integer keys (numba); imported on first use.

Used where a large sort sits on a pipeline's critical path: the grouping of a
fit's customers into distinct rows (:mod:`rfmml.models._grouping_kernel`) and
the repeated rows' check of the DuckDB scan (:mod:`rfmml.data._scan`). Ask
for it with ``rfmml._compiled.compiled_module("rfmml._radix")`` (None without
numba).
"""

from __future__ import annotations

import numpy as np

from rfmml._jit import jit as _jit

__all__ = ["RADIX_BITS", "radix_sort"]


#: Most key bits one pass of :func:`radix_sort` orders (its table: 2**11 counts).
RADIX_BITS = 11


@_jit
def radix_sort(keys, shift, key_bits, spare):  # pragma: no cover - compiled
    """Sort ``keys`` (integers) in place by their bits ``[shift, shift + key_bits)``.

    Least significant digit first: each pass counts the keys per digit of up
    to :data:`RADIX_BITS` bits, then moves them to their digit's place in
    order (a stable pass), between ``keys`` and ``spare`` (as long, same
    type). Unsigned keys sort as numbers by all their bits (``shift`` 0,
    ``key_bits`` their width); signed ones when they are >= 0. Keys
    equal in those bits keep their order, so packed keys whose low ``shift``
    bits are the rows' positions in ascending order, and whose bits above
    ``shift + key_bits`` are zero, come out as ``numpy.sort`` leaves them. At
    3.3M keys of 27 such bits: three passes, 0.05 s against 0.26 s for
    ``numpy.sort`` on the same machine; 10M 32-bit keys: 0.1 s against 0.65 s.
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
        for i in range(n):  # as int64 (the same bits): no float mixing with unsigned keys
            counts[(np.int64(src[i]) >> s) & mask] += 1
        total = np.int64(0)
        for b in range(len(counts)):
            c = counts[b]
            counts[b] = total
            total += c
        for i in range(n):
            v = src[i]
            b = (np.int64(v) >> s) & mask
            dst[counts[b]] = v
            counts[b] += 1
        src, dst = dst, src
    if passes % 2 == 1:  # the last pass wrote into spare
        keys[:] = src
