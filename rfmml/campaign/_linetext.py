"""CSV lines joined from their cells' text by a compiled loop.

Every cell of a batch of rows is a byte range of one buffer (the cells' text
laid end to end, or a category's text used by many rows): :func:`join_lines`
copies each row's cells into one output buffer with ``,`` between them and
CR LF after the last. This is the ``concat`` the DuckDB statement of
:mod:`rfmml.campaign._csv` does per row, without building a string value per
cell and per line.
"""

from __future__ import annotations

import numpy as np

from rfmml._jit import jit
from rfmml.campaign._floattext import text_buffers

__all__ = ["int_cells", "join_lines", "line_bytes"]

#: bytes of an int64's text at most ("-9223372036854775808")
_INT_WIDTH = 20


@jit
def _int_text(values: np.ndarray, data: np.ndarray, offsets: np.ndarray) -> None:
    digits = np.empty(_INT_WIDTH, dtype=np.uint8)
    at = 0
    offsets[0] = 0
    for i in range(values.shape[0]):
        v = values[i]
        if v < 0:
            data[at] = 45  # -
            at += 1
        # digits from the last; the magnitude of -2**63 as an unsigned number
        m = np.uint64(-(v + 1)) + np.uint64(1) if v < 0 else np.uint64(v)
        nd = 0
        while True:
            q = m // np.uint64(10)
            digits[nd] = np.uint8(48 + (m - q * np.uint64(10)))
            nd += 1
            m = q
            if m == 0:
                break
        for j in range(nd - 1, -1, -1):
            data[at] = digits[j]
            at += 1
        offsets[i + 1] = at


def int_cells(
    values: np.ndarray, scratch: dict[str, np.ndarray]
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The decimal text of int64 values as byte ranges: ``(data, starts, ends)``.

    Written into ``scratch`` (kept and grown between calls): valid until the
    next call with the same ``scratch``.
    """
    values = np.ascontiguousarray(values, dtype=np.int64)
    n = len(values)
    data, offsets = text_buffers(scratch, n, _INT_WIDTH)
    _int_text(values, data, offsets)
    return data[: offsets[n]], offsets[:-1], offsets[1:]


@jit
def _line_bytes(starts: np.ndarray, ends: np.ndarray) -> int:
    n, k = starts.shape
    total = n * (k + 1)  # k - 1 commas and CR LF a line
    for i in range(n):
        for j in range(k):
            total += ends[i, j] - starts[i, j]
    return total


@jit
def _join(data: np.ndarray, starts: np.ndarray, ends: np.ndarray, out: np.ndarray) -> int:
    n, k = starts.shape
    size = out.shape[0]
    at = 0
    for i in range(n):
        for j in range(k):
            s = starts[i, j]
            e = ends[i, j]
            if at + (e - s) + 2 > size:
                return -1  # the caller's buffer is too short
            for b in range(s, e):  # cells are short: a loop beats a slice
                out[at] = data[b]
                at += 1
            if j < k - 1:
                out[at] = 44  # ,
                at += 1
        out[at] = 13  # \r
        out[at + 1] = 10  # \n
        at += 2
    return at


def line_bytes(starts: np.ndarray, ends: np.ndarray) -> int:
    """Bytes of the lines :func:`join_lines` writes for these cells."""
    return int(_line_bytes(starts, ends))


def join_lines(data: np.ndarray, starts: np.ndarray, ends: np.ndarray, out: np.ndarray) -> int:
    """Write the lines of ``n`` rows of ``k`` cells into ``out``; return the bytes written.

    Parameters
    ----------
    data : numpy.ndarray of uint8
        The text of every cell, each a range of it.
    starts, ends : numpy.ndarray of int64, shape (n, k)
        Cell ``j`` of row ``i`` is ``data[starts[i, j]:ends[i, j]]`` (empty when
        they are equal); a row's cells side by side in memory.
    out : numpy.ndarray of uint8
        At least :func:`line_bytes` bytes.

    Returns
    -------
    int

    Raises
    ------
    ValueError
        When ``out`` is too short (nothing past its end is written).
    """
    n, k = starts.shape
    at = int(_join(data, starts, ends, out)) if k else -1
    if at < 0:
        raise ValueError(
            f"join_lines: {k} cells a row, output of {out.shape[0]} < "
            f"{line_bytes(starts, ends)} bytes"
        )
    return at
