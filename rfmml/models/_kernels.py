"""Compiled row loops of the purchase models' scoring (numba).

The formulas of :mod:`rfmml.models._formulas`, :mod:`~rfmml.models._formulas_mbgnbd`
and :mod:`~rfmml.models._formulas_pareto` stay the documented reference; the
loops here evaluate the same expressions, with the same floating-point
operations in the same order, on the rows of a summary (orchestrated by
:mod:`rfmml.models._scoring`). What they change is how the rows are visited:
one branch-free pass makes the row checks of
:func:`rfmml.models._validation.check_summary`; the distinct ``(x, u)``
pairs of whole-number summaries are marked in a table indexed by
``x * stride + u`` instead of being grouped by hashing or sorting; the
row-wise arithmetic gathers the logarithms and pair terms from such tables.

Exponentials and logarithms of whole blocks stay numpy calls between the
loops: numba has no vectorised ``exp`` and ``log`` without Intel's SVML, and
numpy's SIMD loops are several times faster than a scalar loop calling libm.

Compiled code is cached on disk (``cache=True``, numba's locators in order):
in ``$NUMBA_CACHE_DIR`` when it is set; else next to this file, in
``__pycache__``, when that is writable; else in the user-wide cache
(``$XDG_CACHE_HOME/numba`` or ``~/.cache/numba``). When no cache directory is
writable the loops are compiled once per process instead.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np
from numba import njit

__all__ = [
    "BLOCK_ROWS",
    "count_valid",
    "mark_pairs",
    "bg_log_odds",
    "pareto_minus_delta",
    "pareto_log_odds",
    "finish_alive",
    "finish_alive_and_product",
    "product",
]

#: Rows per block of the row-wise arithmetic: the block's buffers stay in cache.
BLOCK_ROWS = 2**16


def _jit(fn: Callable[..., Any]) -> Any:
    """``numba.njit(cache=True, nogil=True)``, without the disk cache when no directory is writable.

    numba looks for a writable cache directory when the function is decorated
    (``$NUMBA_CACHE_DIR``, this package's ``__pycache__``, the user-wide cache)
    and raises ``RuntimeError`` when there is none.
    """
    try:
        return njit(cache=True, nogil=True)(fn)
    except RuntimeError:  # no writable cache directory: compile in each process
        return njit(nogil=True)(fn)


@_jit
def count_valid(x, t_x, T, x_bits, T_bits, top):  # pragma: no cover - compiled
    """Count the rows ``check_summary`` accepts, those with whole ages, and the largest values.

    A row is accepted when ``frequency``, ``recency`` and ``T`` are not NaN,
    finite and >= 0, ``frequency`` is whole, ``recency <= T`` and ``recency
    == 0`` where ``frequency == 0`` (the row checks of
    :func:`rfmml.models._validation.check_summary`; NaN fails every
    comparison). It is keyed when also ``x``, ``T`` and ``t_x`` are whole
    numbers below ``top`` (then they can index tables).

    ``x_bits`` and ``T_bits`` are ``x`` and ``T`` viewed as int64: for
    non-negative doubles the order of the bit patterns is the order of the
    values, and an integer maximum vectorises where a float one (NaN rules)
    does not. The loop has no branch, so it vectorises.

    Returns
    -------
    n_ok, n_keyed : int
    x_max, T_max : float
        The largest frequency and age (meaningful when every row is accepted).
    """
    n_ok = 0
    n_keyed = 0
    top_x = np.int64(0)
    top_T = np.int64(0)
    for i in range(len(x)):
        xi, ti, Ti = x[i], t_x[i], T[i]
        ok = (
            (xi >= 0.0)
            & (xi < np.inf)
            & (xi == math.floor(xi))
            & (ti >= 0.0)
            & (ti <= Ti)
            & (Ti < np.inf)
            & ((xi > 0.0) | (ti == 0.0))
        )
        keyed = (xi < top) & (Ti < top) & (Ti == math.floor(Ti)) & (ti == math.floor(ti))
        n_ok += np.int64(ok)
        n_keyed += np.int64(ok & keyed)
        top_x = max(top_x, x_bits[i])
        top_T = max(top_T, T_bits[i])
    return n_ok, n_keyed, top_x, top_T


@_jit
def mark_pairs(x, t_x, T, stride, marks_T, marks_t_x, with_t_x):  # pragma: no cover - compiled
    """Mark the ``(x, T)`` pairs in ``marks_T`` and with ``with_t_x`` the ``(x, t_x)`` pairs.

    Entry ``x * stride + u`` of the marks (uint8) is set to 1; every row
    must be keyed (:func:`count_valid`). Plain stores, no read-modify-write.
    """
    step = np.uint64(stride)
    for i in range(len(x)):
        marks_T[np.uint64(x[i]) * step + np.uint64(T[i])] = 1
    if with_t_x:
        for i in range(len(x)):
            marks_t_x[np.uint64(x[i]) * step + np.uint64(t_x[i])] = 1


@_jit
def bg_log_odds(x, t_x, T, log_aT, lead, r, log_a, modified, z):  # pragma: no cover - compiled
    """The log-odds of being inactive of the BG/NBD or MBG/NBD, per keyed row, into ``z``.

    With ``d = ln(alpha + T) - ln(alpha + t_x)`` (``log_aT[u] = ln(alpha + u)``):
    BG/NBD (FH08 eq. 2, as :func:`rfmml.models._formulas._log_alive_odds`)
    ``z = ln(a / (b + x - 1)) + (r + x) d`` (``-inf`` at ``x = 0``), with
    ``lead[x] = ln(a / (b + x - 1))``; MBG/NBD ([BDF07] eq. 5, as
    :func:`rfmml.models._formulas_mbgnbd.mbgnbd_probability_alive`)
    ``z = (x + r) d - ln(b + x) + ln a``, with ``lead[x] = ln(b + x)``.
    Every row must be keyed (:func:`count_valid`); indices are unsigned (no
    wrap-around of negative indices to test).
    """
    if modified:
        for i in range(len(x)):
            xi = x[i]
            d = log_aT[np.uint64(T[i])] - log_aT[np.uint64(t_x[i])]
            z[i] = (d * (xi + r) - lead[np.uint64(xi)]) + log_a
    else:
        for i in range(len(x)):
            xi = x[i]
            d = log_aT[np.uint64(T[i])] - log_aT[np.uint64(t_x[i])]
            z[i] = lead[np.uint64(xi)] + (r + xi) * d


@_jit
def pareto_minus_delta(x, t_x, T, stride, log_i, out):  # pragma: no cover - compiled
    """``-max(ln I(t_x) - ln I(T), 0)`` per row (``log_i[x * stride + u]`` = ``ln I(u)``)."""
    step = np.uint64(stride)
    for i in range(len(x)):
        base = np.uint64(x[i]) * step
        delta = log_i[base + np.uint64(t_x[i])] - log_i[base + np.uint64(T[i])]
        out[i] = -(delta if delta > 0.0 else 0.0)


@_jit
def pareto_log_odds(x, t_x, T, stride, log_i, lead, y):  # pragma: no cover - compiled
    """``y = (y + ln I(t_x)) + (ln s - E1)`` per row, ``y`` holding ``ln(1 - e^-Delta)``."""
    step = np.uint64(stride)
    for i in range(len(x)):
        base = np.uint64(x[i]) * step
        y[i] = (y[i] + log_i[base + np.uint64(t_x[i])]) + lead[base + np.uint64(T[i])]


@_jit
def finish_alive(e, alive):  # pragma: no cover - compiled
    """``alive = 1 / (1 + e)`` (``e`` the odds of being inactive)."""
    for i in range(len(e)):
        alive[i] = 1.0 / (e[i] + 1.0)


@_jit
def finish_alive_and_product(x, T, stride, e, factor, alive, expected):  # pragma: no cover
    """``alive = 1 / (1 + e)`` and ``expected = factor[x * stride + T] alive`` per row."""
    step = np.uint64(stride)
    for i in range(len(e)):
        p = 1.0 / (e[i] + 1.0)
        alive[i] = p
        expected[i] = factor[np.uint64(x[i]) * step + np.uint64(T[i])] * p


@_jit
def product(x, T, stride, factor, alive, out):  # pragma: no cover - compiled
    """``out = factor[x * stride + T] alive`` per row (``out`` may be ``alive``)."""
    step = np.uint64(stride)
    for i in range(len(x)):
        out[i] = factor[np.uint64(x[i]) * step + np.uint64(T[i])] * alive[i]
