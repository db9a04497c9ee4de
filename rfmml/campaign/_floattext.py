"""Float CSV cells as C's ``%.15g`` writes them, formatted by a compiled loop.

:func:`g15_cells` gives the text ``"%.15g" % x`` of every value of a float
column (what pandas' ``to_csv(float_format="%.15g")`` writes; missing values
as empty cells) as an Arrow string array, without a Python object or a
``printf`` call per value: the 15 significant digits are the integer
``round(|x| * 10**(14 - e))``, computed in double-double arithmetic (the product
or quotient by an exactly representable power of ten, with its rounding
error), so the rounding is exact except within ``1e-9`` of a half, which,
like values whose power of ten is not exact (``|x|`` below ``1e-8`` or at or
above ``1e37``) and infinities, is formatted by Python's ``%`` operator instead.
The digits are then laid out as ``%g`` does: fixed notation for decimal
exponents from -4 to 14, else ``d.ddde+XX``, trailing zeros removed.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from rfmml._jit import jit

__all__ = ["g15_cells", "text_buffers"]

#: exact powers of ten (10**22 is the largest a double holds exactly)
_POW10 = np.array([10.0**k for k in range(23)])
#: bytes of one cell at most: sign, 15 digits, point, "e-308" (22)
_WIDTH = 24


@jit
def _split(a: float) -> tuple[float, float]:
    c = 134217729.0 * a  # Dekker: 2**27 + 1
    high = c - (c - a)
    return high, a - high


@jit
def _two_product(a: float, b: float) -> tuple[float, float]:
    p = a * b
    ah, al = _split(a)
    bh, bl = _split(b)
    return p, ((ah * bh - p) + ah * bl + al * bh) + al * bl


@jit
def _scaled(a: float, k: int, pow10: np.ndarray) -> tuple[float, float]:
    """``a * 10**k`` as an unevaluated sum ``high + low`` (``|k| <= 22``)."""
    if k >= 0:
        return _two_product(a, pow10[k])
    p = pow10[-k]
    q = a / p
    ph, pl = _two_product(q, p)
    return q, ((a - ph) - pl) / p


#: "00", "01", ..., "99": two digits a division
_PAIRS = np.frombuffer("".join(f"{i:02d}" for i in range(100)).encode(), dtype=np.uint8).copy()


@jit
def _eight_digits(v: np.uint32, digits: np.ndarray, at: int, pairs: np.ndarray) -> None:
    """The 8 decimal digits of ``v < 10**8`` (leading zeros) at ``digits[at:at + 8]``."""
    for j in range(3, -1, -1):
        q = v // np.uint32(100)
        r = 2 * (v - q * np.uint32(100))
        digits[at + 2 * j] = pairs[r]
        digits[at + 2 * j + 1] = pairs[r + 1]
        v = q


@jit
def _kernel(
    values: np.ndarray, pow10: np.ndarray, data: np.ndarray, offsets: np.ndarray
) -> np.ndarray:
    n = values.shape[0]
    fallback = np.zeros(n, dtype=np.bool_)
    digits16 = np.empty(16, dtype=np.uint8)
    digits = digits16[1:]  # the 15 significant digits after the leading zero
    bits = values.view(np.uint64)
    pairs = _PAIRS
    at = 0
    offsets[0] = 0
    for i in range(n):
        x = values[i]
        if np.isnan(x):
            offsets[i + 1] = at
            continue
        if np.isinf(x):
            fallback[i] = True
            offsets[i + 1] = at
            continue
        negative = x < 0 or (x == 0 and np.signbit(x))
        a = -x if x < 0 else x
        if negative:
            data[at] = 45  # "-"
            at += 1
        if a == 0:
            data[at] = 48
            at += 1
            offsets[i + 1] = at
            continue
        # floor(log10(a)) or one less, from the binary exponent (the loop corrects it)
        e2 = int((bits[i] >> np.uint64(52)) & np.uint64(0x7FF)) - 1023
        e = int(np.floor(e2 * 0.30102999566398120))
        ok = False
        m = np.uint64(0)
        for _ in range(3):  # log10 may be off by one next to a power of ten
            k = 14 - e
            if k > 22 or k < -22:
                break
            high, low = _scaled(a, k, pow10)
            if high < 1e14:
                e -= 1
                continue
            if high >= 1e15:
                e += 1
                continue
            whole = np.floor(high)
            frac = (high - whole) + low
            if frac < 0.0:  # high was rounded up to a whole number
                whole -= 1.0
                frac += 1.0
            elif frac >= 1.0:
                whole += 1.0
                frac -= 1.0
            if abs(frac - 0.5) < 1e-9:
                break
            m = np.uint64(whole) + np.uint64(1 if frac > 0.5 else 0)
            ok = True
            break
        if not ok:
            fallback[i] = True
            at = offsets[i]
            offsets[i + 1] = at
            continue
        if m == np.uint64(10**15):
            m = np.uint64(10**14)
            e += 1
        # 16 digits, the first a zero (m < 10**15): digits is the other 15
        high8 = np.uint32(m // np.uint64(10**8))
        _eight_digits(high8, digits16, 0, pairs)
        _eight_digits(np.uint32(m - np.uint64(high8) * np.uint64(10**8)), digits16, 8, pairs)
        nd = 15
        while nd > 1 and digits[nd - 1] == 48:
            nd -= 1
        if -4 <= e < 15:
            if e >= 0:
                for j in range(e + 1):
                    data[at] = digits[j] if j < nd else 48
                    at += 1
                if nd > e + 1:
                    data[at] = 46  # "."
                    at += 1
                    for j in range(e + 1, nd):
                        data[at] = digits[j]
                        at += 1
            else:
                data[at] = 48
                data[at + 1] = 46
                at += 2
                for _ in range(-e - 1):
                    data[at] = 48
                    at += 1
                for j in range(nd):
                    data[at] = digits[j]
                    at += 1
        else:
            data[at] = digits[0]
            at += 1
            if nd > 1:
                data[at] = 46
                at += 1
                for j in range(1, nd):
                    data[at] = digits[j]
                    at += 1
            data[at] = 101  # "e"
            data[at + 1] = 45 if e < 0 else 43
            at += 2
            ex = -e if e < 0 else e
            if ex >= 100:
                data[at] = 48 + ex // 100
                at += 1
            data[at] = 48 + (ex // 10) % 10
            data[at + 1] = 48 + ex % 10
            at += 2
        offsets[i + 1] = at
    return fallback


def text_buffers(
    scratch: dict[str, np.ndarray], n: int, width: int
) -> tuple[np.ndarray, np.ndarray]:
    """Bytes for ``n`` cells of at most ``width`` bytes and ``n + 1`` offsets, from ``scratch``.

    The buffers are kept in ``scratch`` and grown when too small, so a loop that
    formats chunk after chunk reuses memory already written (no fresh pages).
    """
    if len(scratch.get("offsets", ())) < n + 1 or len(scratch["data"]) < n * width:
        scratch["data"] = np.empty(n * width, dtype=np.uint8)
        scratch["offsets"] = np.empty(n + 1, dtype=np.int64)
    return scratch["data"], scratch["offsets"][: n + 1]


def g15_cells(values: np.ndarray, scratch: dict[str, np.ndarray] | None = None) -> Any:
    """The CSV cells ``"%.15g" % x`` of float values (NaN: empty) as an Arrow string array.

    Parameters
    ----------
    values : numpy.ndarray
        One-dimensional floats (float32 values are formatted as their float64 value,
        as C's ``printf`` and Python's ``%`` do).
    scratch : dict, optional
        Buffers to write into, kept (and grown) here between calls: the returned
        array lives in them, valid until the next call with the same ``scratch``.
        Reusing memory already written saves the page faults of fresh memory.

    Returns
    -------
    pyarrow.LargeStringArray
        No nulls; a missing value is an empty string.
    """
    import pyarrow as pa
    import pyarrow.compute as pc

    values = np.ascontiguousarray(values, dtype=np.float64)
    n = len(values)
    data, offsets = text_buffers({} if scratch is None else scratch, n, _WIDTH)
    fallback = _kernel(values, _POW10, data, offsets)
    used = int(offsets[-1])
    cells = pa.LargeStringArray.from_buffers(n, pa.py_buffer(offsets), pa.py_buffer(data[:used]))
    if fallback.any():
        texts = ["%.15g" % x for x in values[fallback].tolist()]  # noqa: UP031 (pandas' operator)
        cells = pc.replace_with_mask(cells, pa.array(fallback), pa.array(texts, pa.large_string()))
    return cells
