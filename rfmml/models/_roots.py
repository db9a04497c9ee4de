"""A vectorised, bracketed root finder for monotone functions of one variable per row."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

__all__ = ["bracketed_root"]

#: a step bisects when the last three steps left the bracket wider than half
#: of what it was before them
SAFEGUARD = 0.5
#: rows still open are compacted once at least this fraction of them converged
#: (or fewer than COMPACT_ROWS remain)
COMPACT_FRACTION = 0.125
COMPACT_ROWS = 4096


def bracketed_root(
    f: Callable[..., np.ndarray],
    lo: np.ndarray,
    hi: np.ndarray,
    f_lo: np.ndarray,
    f_hi: np.ndarray,
    columns: tuple[np.ndarray, ...] = (),
    rtol: float = 1e-12,
    max_iter: int = 400,
) -> np.ndarray:
    """Upper ends of brackets of relative width ``rtol`` around a sign change of ``f``.

    Per row, ``f`` changes sign from ``> 0`` at ``lo`` to ``<= 0`` at ``hi``;
    the bracket shrinks until ``hi - lo <= rtol * hi`` and ``hi`` is
    returned: within ``rtol`` (relative) above a point where ``f`` changes
    sign (the smallest ``t`` with ``f(t) <= 0`` when ``f`` is
    non-increasing), the answer bisection to the same width gives. The steps
    are regula falsi with the Illinois modification (Dowell & Jarratt 1971:
    the value kept at an end that survives twice in a row is halved), which
    converges superlinearly from both sides; a step lands at least
    ``rtol / 4`` (relative) inside the bracket, so a step next to the root
    closes the bracket; and when three steps did not halve the bracket the
    next one bisects, so a step function or non-finite values cost at most
    about four times the steps of bisection.

    Parameters
    ----------
    f : callable
        ``f(t, *columns) -> values``, one value per row of ``t``; called
        with the open rows only (``columns`` cut to the same rows).
    lo, hi : numpy.ndarray
        Bracket ends, ``0 <= lo < hi``.
    f_lo, f_hi : numpy.ndarray
        ``f`` at the ends: ``f_lo > 0 >= f_hi``.
    columns : tuple of numpy.ndarray, optional
        Per-row arguments of ``f``.
    rtol : float, default 1e-12
        Relative width of the final bracket.
    max_iter : int, default 400
        Cap on the number of steps.

    Returns
    -------
    numpy.ndarray
        The upper ends of the final brackets.

    References
    ----------
    Dowell, M. and Jarratt, P. (1971), "A modified regula falsi method for
    computing the root of an equation", BIT 11, 168-174.
    """
    out = np.array(hi, dtype=float)
    open_ = out - np.asarray(lo, dtype=float) > rtol * out
    # the open rows, compacted: position, ends, values at the ends (Illinois-scaled),
    # which end the last step replaced, half the bracket widths before the last steps
    pos = np.flatnonzero(open_)
    a, b = np.asarray(lo, dtype=float)[open_], out[open_]
    fa, fb = np.asarray(f_lo, dtype=float)[open_], np.asarray(f_hi, dtype=float)[open_]
    cols = [np.asarray(c)[open_] for c in columns]
    last_left = np.zeros(len(pos), dtype=bool)
    last_right = np.zeros(len(pos), dtype=bool)
    w1, w2, w3 = (np.full(len(pos), np.inf) for _ in range(3))
    # converged rows stay (frozen: their step is their upper end) until compacted away
    done = np.zeros(len(pos), dtype=bool)
    quarter = 0.25 * rtol
    for _ in range(max_iter):
        if not len(pos):
            break
        width = b - a
        with np.errstate(all="ignore"):
            x = fb - fa
            np.divide(width, x, out=x)
            x *= fb
            np.subtract(b, x, out=x)  # regula falsi; NaN when fa or fb is not finite
        margin = quarter * b
        np.maximum(x, a + margin, out=x)
        np.minimum(x, b - margin, out=x)
        bisect = width > w3
        bisect |= x != x
        if bisect.any():
            x = _pick(bisect, 0.5 * (a + b), x)
        if done.any():
            x = _pick(done, b, x)
        g = np.asarray(f(x, *cols), dtype=float)
        left = g > 0.0  # the root is above x: x becomes the lower end
        right = ~left
        # Illinois: the value kept at an end for the second time in a row is halved
        fb *= 1.0 - 0.5 * (left & last_left)
        fa *= 1.0 - 0.5 * (right & last_right)
        a, fa = _pick(left, x, a), _pick(left, g, fa)
        b, fb = _pick(left, b, x), _pick(left, fb, g)
        last_left, last_right = left, right
        w3, w2, w1 = w2, w1, SAFEGUARD * width
        done = b - a <= rtol * b
        n_done = int(np.count_nonzero(done))
        if n_done and (n_done >= COMPACT_FRACTION * len(pos) or len(pos) - n_done < COMPACT_ROWS):
            out[pos[done]] = b[done]
            keep = ~done
            pos, a, b, fa, fb = pos[keep], a[keep], b[keep], fa[keep], fb[keep]
            cols = [c[keep] for c in cols]
            last_left, last_right = last_left[keep], last_right[keep]
            w1, w2, w3, done = w1[keep], w2[keep], w3[keep], done[keep]
    out[pos] = b
    return out


def _pick(mask: np.ndarray, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """``x`` where ``mask``, else ``y`` (float64), exactly, without branches.

    ``numpy.where`` and masked ``copyto`` branch per element, which costs
    about 10 ns per element when the mask is irregular (a root finder's
    sides); selecting the bits with an all-ones or all-zeros integer mask
    costs a fraction of that.
    """
    ones = np.negative(mask.view(np.int8), dtype=np.int64)  # -1 (all bits) where mask
    bits = np.bitwise_and(x.view(np.int64), ones)
    np.invert(ones, out=ones)
    np.bitwise_and(y.view(np.int64), ones, out=ones)
    np.bitwise_or(bits, ones, out=bits)
    return bits.view(np.float64)
