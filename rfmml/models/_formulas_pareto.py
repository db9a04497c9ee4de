"""Likelihood and closed forms of the Pareto/NBD model.

Pure, vectorised functions with the papers' symbols: ``x`` repeat
purchases, ``t_x`` time of the last repeat purchase, ``T`` age, ``t`` a
future horizon and the parameters ``r, alpha`` (purchase rate
``lambda ~ Gamma(r, alpha)``) and ``s, beta`` (dropout rate
``mu ~ Gamma(s, beta)``). Nothing here validates input.

Every quantity is built from one integral,

    I(u; A, B, p, q) = int_u^inf (A + v) ** -p (B + v) ** -q dv,

which, with ``m = min(A, B)``, ``M = max(A, B)``, ``p_m`` and ``p_M`` the
exponents on the ``m`` and ``M`` sides and ``c = p + q``, is (substitute
``m + v = (m + u) / y`` and apply Pfaff's transformation, Abramowitz &
Stegun 15.3.5, to the Euler integral of 2F1)

    I = (m + u) ** (1 - p_m) (M + u) ** -p_M / (c - 1)
        * S(p_M, c, w),   S(b, c, w) = 2F1(1, b; c; w),   w = (M - m) / (M + u).

Because ``0 <= w < 1`` and ``b = p_M < c``, every term of the series of
``S`` is positive and at most ``w ** k``: ``1 <= S <= (M + u) / (m + u)``.
``ln I`` is therefore a sum of logarithms and one bounded, positive
hypergeometric factor, finite for any ``x`` and ``T`` (no ``(alpha +
T) ** (r + s + x)`` is ever formed, no two large terms are subtracted). This
is the α ≥ β / α < β case split of Fader, Hardie & Lee (2005, note 009, eqs.
19-20) written so that the hypergeometric argument and the factor in front
of it never overflow.

The likelihood carries ``alpha^r beta^s`` into each of its terms instead of
adding ``r ln alpha + s ln beta`` to them: ``I`` enters as ``J(u) = (A + u) ** p
(B + u) ** q I(u) = int_0^inf (1 + t / (A + u)) ** -p (1 + t / (B + u)) ** -q dt``
(:func:`_log_j`, of order one), ``r ln alpha - (r + x) ln(alpha + u)`` as
``-r ln(1 + u / alpha) - x ln(alpha + u)`` and ``ln Gamma(r + x) - ln Gamma(r)``
as ``sum_(j<x) ln(r + j)``. On a degenerate fit's ridge, ``r`` and ``alpha``
run to infinity at a fixed ``r / alpha`` (purchases Poisson, no heterogeneity)
or ``s`` and ``beta`` at a fixed ``s / beta`` (one exponential dropout rate for
all); there the terms of order ``r ln alpha`` (3e13 at ``r = 1e12``) lost every
digit, and the series of ``S`` needs ``~r`` terms (scipy's 2F1 fails there):
where it converges slowly (``w > 0.9``) and the exponent on the larger shift is
20 or more, ``J`` is summed by the trapezoid rule in ``ln t``
(:func:`_log_j_trapezoid`), exact to rounding for any ``p`` and ``A``.

References
----------
.. [SMC87] Schmittlein, D. C., Morrison, D. G. and Colombo, R. (1987),
   "Counting your customers: who are they and what will they do next?",
   Management Science 33 (1), 1-24.
.. [FHL05n] Fader, P. S., Hardie, B. G. S. and Lee, K. L. (2005), "A note on
   deriving the Pareto/NBD model and related expressions",
   http://brucehardie.com/notes/009/
.. [FHL05] Fader, P. S., Hardie, B. G. S. and Lee, K. L. (2005), "RFM and
   CLV: using iso-value curves for customer base analysis", Journal of
   Marketing Research 42 (4), 415-430 (Pareto/NBD on the CDNOW sample).
.. [AS64] Abramowitz, M. and Stegun, I. A. (1964), Handbook of Mathematical
   Functions, 15.3.1 (Euler integral) and 15.3.5 (Pfaff).
"""

from __future__ import annotations

import math
from typing import Any, NamedTuple

import numpy as np
from scipy.integrate import quad
from scipy.special import digamma, gammaln, hyp2f1, roots_legendre

from rfmml.models._formulas import RISING_SUM_MAX, _log_nb_front
from rfmml.models._grouping import frequency_levels, group_rows

__all__ = [
    "pareto_log_tail_integral",
    "pareto_nbd_log_likelihood",
    "ParetoNBDData",
    "pareto_nbd_prepare",
    "pareto_nbd_total_log_likelihood_and_gradient",
    "pareto_nbd_probability_alive",
    "pareto_nbd_alive_and_expected",
    "pareto_nbd_expected_purchases",
    "pareto_nbd_expected_purchases_if_alive",
    "pareto_nbd_expected_purchases_new_customer",
    "pareto_nbd_probability_no_purchase",
    "pareto_nbd_probability_of_purchases",
    "pareto_nbd_count_pmf_if_alive",
]

#: Largest ``w`` summed as a series in :func:`_log_s_series`: the terms fall at
#: least like ``w ** k``, so 0.9 needs at most ~350 terms for 1e-16; beyond it
#: scipy's 2F1 (which switches to transformed series) and central differences
#: of it are used (see :func:`_log_s_fallback`).
_W_SERIES_MAX = 0.9
#: Relative step of the central differences in ``b`` and ``c`` of the
#: fallback: truncation ~ (1e-4) ** 2 times a third derivative of ``ln S`` of
#: order one, rounding ~ 1e-16 / 1e-4; both near 1e-9 relative to the
#: gradient entry, and only for rows with ``w > 0.9``.
_FD_STEP = 1e-4


def _hyp2f1_1(b, c, w):
    """``2F1(1, b; c; w)`` by scipy.

    Where scipy gives nan (``c - b - 1`` an integer near ``w = 1``), the
    average at ``c (1 +- 1e-9)`` (the function is continuous in ``c``;
    relative error ~1e-9).
    """
    with np.errstate(all="ignore"):
        out = np.asarray(hyp2f1(1.0, b, c, w), dtype=float)
        bad = ~np.isfinite(out)
        if bad.any():
            b_, c_, w_ = (np.broadcast_to(v, out.shape)[bad] for v in (b, c, w))
            out = out.copy()
            out[bad] = 0.5 * (
                hyp2f1(1.0, b_, c_ * (1 + 1e-9), w_) + hyp2f1(1.0, b_, c_ * (1 - 1e-9), w_)
            )
    return out


def _log_s_series(b, c, w, grad: bool):
    """``ln S(b, c, w) = ln 2F1(1, b; c; w)`` and its derivatives by the series.

    ``S = sum_k c_k``, ``c_0 = 1``, ``c_(k+1) = c_k (b + k) / (c + k) w``
    ([AS64] 15.1.1), so ``dS/db = sum_k c_k sum_(j<k) 1 / (b + j)``,
    ``dS/dc = -sum_k c_k sum_(j<k) 1 / (c + j)`` and
    ``dS/dw = sum_(k>=1) k c_k / w``. Rows drop out of the loop once the
    remainder bound ``c_k rho / (1 - rho)``, ``rho = w (b + k) / (c + k) < w``,
    is below 1e-17 (``S >= 1``, so that is a relative bound).
    """
    n = len(w)
    out = np.empty((4, n))  # S, dS/db, dS/dc, dS/dw per row, written when a row converges
    idx = np.arange(n)
    bb, cc, ww = b.copy(), c.copy(), w.copy()
    S, term = np.ones(n), np.ones(n)
    dSb, dSc, dSw, hb, hc = (np.zeros(n) for _ in range(5))  # hb = sum_(j<k) 1 / (b + j)
    k = 0
    while len(idx):
        ratio = (bb + k) / (cc + k)
        if grad:
            dSw += term * ratio * (k + 1)  # (k + 1) c_(k+1) / w
            hb += 1.0 / (bb + k)
            hc += 1.0 / (cc + k)
        term *= ratio * ww
        S += term
        if grad:
            dSb += term * hb
            dSc -= term * hc
        k += 1
        rho = ww * (bb + k) / (cc + k)
        # a non-finite term (NaN or overflowing parameters from an optimiser step) never
        # meets the bound: those rows stop here with a non-finite S, which the fit rejects
        done = (term * rho <= 1e-17 * (1.0 - rho)) | ~np.isfinite(term * rho)
        n_done = np.count_nonzero(done)
        # write converged rows out and shrink the arrays only when a quarter has converged
        # (every shrink copies all of them)
        if n_done == len(idx) or n_done * 4 > len(idx):
            out[:, idx[done]] = np.stack([S[done], dSb[done], dSc[done], dSw[done]])
            keep = ~done
            idx, bb, cc, ww, S, term, dSb, dSc, dSw, hb, hc = (
                v[keep] for v in (idx, bb, cc, ww, S, term, dSb, dSc, dSw, hb, hc)
            )
    S = out[0]
    if not grad:
        return np.log(S), None
    return np.log(S), (out[1] / S, out[2] / S, out[3] / S)


def _log_s_fallback(b, c, w, grad: bool):
    """``ln S`` and derivatives for ``w > 0.9`` from scipy's 2F1.

    ``dS/dw = b / c 2F1(2, b + 1; c + 1; w)`` ([AS64] 15.2.1); the ``b`` and
    ``c`` derivatives by central differences of ``ln S`` (step ``_FD_STEP``
    relative).
    """
    S = _hyp2f1_1(b, c, w)
    log_s = np.log(S)
    if not grad:
        return log_s, None
    hb, hc = _FD_STEP * b, _FD_STEP * c
    d_b = (np.log(_hyp2f1_1(b + hb, c, w)) - np.log(_hyp2f1_1(b - hb, c, w))) / (2 * hb)
    d_c = (np.log(_hyp2f1_1(b, c + hc, w)) - np.log(_hyp2f1_1(b, c - hc, w))) / (2 * hc)
    with np.errstate(all="ignore"):
        d_w = b / c * hyp2f1(2.0, b + 1.0, c + 1.0, w) / S
    return log_s, (d_b, d_c, d_w)


def _log_s_quadrature(b, c, w, grad: bool):
    """``ln S`` and derivatives by adaptive quadrature of Euler's integral, row by row.

    For the rows where scipy's 2F1 fails (large ``b`` with ``w`` near 1, where
    it returns inf or nan although ``1 <= S <= 1 / (1 - w)``). With
    ``t = 1 - exp(-z)`` in Euler's integral ([AS64] 15.3.1, ``a = 1``),

        S = (c - 1) int_0^inf exp(f(z)) dz,
        f(z) = -(c - 1) z - b ln(1 - w + w exp(-z)),

    and ``f`` is concave with its maximum at ``z* = ln(w (1 - rho) / (rho (1 -
    w)))``, ``rho = (c - 1) / b`` (``z* = 0`` when ``rho >= w``), so the
    integrand is scaled by ``exp(-f(z*))`` and integrated on ``[0, z*]`` and
    ``[z*, inf)``. The derivatives are ratios of integrals with the same weight:
    ``d ln S / db = -E[ln(1 - w + w e^-z)]``, ``d ln S / dc = 1 / (c - 1) -
    E[z]`` and ``d ln S / dw = b E[(1 - e^-z) / (1 - w + w e^-z)]``.
    """
    rows = [
        _log_s_one(float(bi), float(ci), float(wi), grad)
        for bi, ci, wi in zip(b, c, w, strict=True)
    ]
    log_s = np.array([row[0] for row in rows], dtype=float).reshape(len(w))
    if not grad:
        return log_s, None
    derivs = [np.array([row[1][k] for row in rows], dtype=float) for k in range(3)]
    return log_s, derivs


def _log_s_one(b: float, c: float, w: float, grad: bool) -> tuple[float, tuple[float, ...]]:
    """One row of :func:`_log_s_quadrature`: ``ln S`` and ``(d/db, d/dc, d/dw)`` (or ``()``)."""
    rho = (c - 1.0) / b if b > 0 else np.inf
    z_star = float(np.log(w * (1.0 - rho) / (rho * (1.0 - w)))) if rho < w else 0.0

    def f(z: float) -> float:
        return -(c - 1.0) * z - b * np.log1p(-w * -np.expm1(-z))

    top = f(z_star)
    parts = [(0.0, z_star), (z_star, np.inf)] if z_star > 0 else [(0.0, np.inf)]

    def integral(g) -> float:
        return sum(
            quad(lambda z: np.exp(f(z) - top) * g(z), lo, hi, epsabs=0.0, epsrel=1e-13,
                 limit=400)[0]
            for lo, hi in parts
        )  # fmt: skip

    mass = integral(lambda z: 1.0)
    log_s = float(np.log(c - 1.0) + top + np.log(mass))
    if not grad:
        return log_s, ()

    def inner(z: float) -> float:
        return 1.0 - w * -np.expm1(-z)  # 1 - w + w e^-z

    d_b = -integral(lambda z: np.log(inner(z))) / mass
    d_c = 1.0 / (c - 1.0) - integral(lambda z: z) / mass
    d_w = b * integral(lambda z: -np.expm1(-z) / inner(z)) / mass
    return log_s, (d_b, d_c, d_w)


def _log_s(b, c, w, grad: bool = False):
    b, c, w = (np.array(v, dtype=float).ravel() for v in np.broadcast_arrays(b, c, w))
    log_s = np.empty(len(w))
    derivs = [np.empty(len(w)) for _ in range(3)] if grad else None

    def fill(mask: np.ndarray, fn) -> None:
        if mask.any():
            value, d = fn(b[mask], c[mask], w[mask], grad)
            log_s[mask] = value
            for out, di in zip(derivs or [], d or [], strict=True):
                out[mask] = di

    far = w > _W_SERIES_MAX
    fill(~far, _log_s_series)
    fill(far, _log_s_fallback)
    # scipy's 2F1 fails for large b near w = 1 (inf or nan although S <= 1 / (1 - w)):
    # those rows, and rows whose finite differences failed, go to the quadrature
    failed = far & ~np.isfinite(log_s)
    for d_i in derivs or []:
        failed |= far & ~np.isfinite(d_i)
    fill(failed, _log_s_quadrature)
    return log_s, derivs


#: Step in ``y = ln t`` of the trapezoid rule of :func:`_log_j_trapezoid`. The integrand
#: is analytic in the strip ``|Im y| < pi / 2`` and decays at both ends, so the rule
#: converges like ``exp(-pi ** 2 / step)``; at 0.25 it agrees with 0.125 and with
#: adaptive quadrature to rounding (~1e-15 relative).
_TRAP_STEP = 0.25
#: Smallest exponent on the larger shift (``b`` of ``S(b, c, w)``) for which rows with
#: ``w > 0.9`` take the trapezoid rule rather than scipy's 2F1 (:func:`_log_s_fallback`):
#: against the rule, scipy's ``ln S`` is good to ~3e-12 below 20, to ~1e-10 up to 100,
#: and fails (inf, nan, then slow quadrature) beyond; smaller ones keep scipy's values
#: and cost (their tails ``t ** -(c - 1)`` need many nodes).
_TRAP_MIN_B = 20.0
#: Rows x nodes held at once by :func:`_log_j_trapezoid` (8 MiB per array)
_TRAP_BLOCK = 1 << 20


def _log_j_trapezoid(a, b, p, q, grad: bool):
    """``ln J`` and ``d ln J / d(a, b, p, q)`` by the trapezoid rule in ``y = ln t``.

    ``J = int_0^inf (1 + t / a) ** -p (1 + t / b) ** -q dt = int exp(phi(y)) dy`` with
    ``phi(y) = y - p ln(1 + e^y / a) - q ln(1 + e^y / b)``, concave in ``y``. With
    ``t0 = 1 / (p / a + q / b)`` (``J >= t0 / e``), the nodes run from
    ``ln t0 - 14`` (below it ``exp(phi) = e^y - e^(2 y) / t0 + O(e^(3 y) / t0 ** 2)``:
    that tail is summed as two geometric series) to where ``phi`` has fallen below
    ``ln t0 - 41`` (bisection; ``phi`` is concave). The derivatives are averages under
    the same weights:
    ``d/dp = -E[ln(1 + t / a)]``, ``d/da = p E[t / (a (a + t))]`` and likewise for
    ``q, b``. Every term is positive and ``p ln(1 + t / a)`` is accurate for any
    ``p`` and ``a``: this stays exact where ``p`` and ``a`` (or ``q`` and ``b``) run to
    infinity at a fixed ratio, where the hypergeometric series needs ``~p`` terms.
    """
    n = len(a)
    log_j = np.empty(n)
    derivs = [np.empty(n) for _ in range(4)] if grad else None
    if n == 0:
        return log_j, derivs
    h = _TRAP_STEP
    lt0 = -np.log(p / a + q / b)
    target = lt0 - 41.0

    def phi(y):
        t = np.exp(y)
        return y - p * np.log1p(t / a) - q * np.log1p(t / b)

    # phi(ln t0) >= ln t0 - 1 > target; beyond M = max(a, b), phi <= (1 - c) y + c ln M
    lM = np.log(np.maximum(a, b))
    lo = lt0.copy()
    hi = np.maximum(lo, np.maximum(lM, lM + (lM - target) / (p + q - 1.0)))
    for _ in range(24):
        mid = 0.5 * (lo + hi)
        above = phi(mid) > target
        lo = np.where(above, mid, lo)
        hi = np.where(above, hi, mid)
    y_lo = lt0 - 14.0
    nodes = np.ceil((hi - y_lo) / h).astype(np.int64) + 1
    order = np.argsort(nodes, kind="stable")
    done = 0
    while done < n:
        k_max = int(nodes[order[done]])
        take = order[done : done + max(1, _TRAP_BLOCK // k_max)]
        k_max = int(nodes[take].max())
        a_, b_, p_, q_ = (v[take, None] for v in (a, b, p, q))
        y = y_lo[take, None] + h * np.arange(k_max)
        t = np.exp(y)
        la, lb = np.log1p(t / a_), np.log1p(t / b_)
        f = y - p_ * la - q_ * lb
        top = f.max(axis=1)
        e = np.exp(f - top[:, None])
        # left tail: h sum_(k>=1) (e^(y_k) - e^(2 y_k) / t0) at y_k = y_lo - k h
        yl = y_lo[take] - top
        tail = np.exp(yl) / np.expm1(h) - np.exp(yl + y_lo[take] - lt0[take]) / np.expm1(2 * h)
        mass = e.sum(axis=1) + tail
        log_j[take] = np.log(h * mass) + top
        if derivs is not None:
            # t / (a (a + t)) = (1 - e^(-ln(1 + t / a))) / a
            derivs[0][take] = p[take] * (e * -np.expm1(-la)).sum(axis=1) / (a[take] * mass)
            derivs[1][take] = q[take] * (e * -np.expm1(-lb)).sum(axis=1) / (b[take] * mass)
            derivs[2][take] = -(e * la).sum(axis=1) / mass
            derivs[3][take] = -(e * lb).sum(axis=1) / mass
        done += len(take)
    return log_j, derivs


def _log_j(u, A, B, p, q, grad: bool = False):
    """``ln J(u)``, ``J(u) = (A + u) ** p (B + u) ** q int_u^inf (A + v) ** -p (B + v) ** -q dv``.

    ``J = int_0^inf (1 + t / (A + u)) ** -p (1 + t / (B + u)) ** -q dt``, between
    0 and ``1 / (p / (A + u) + q / (B + u))`` times ``e``: it stays of order one
    where ``p`` and ``A`` (or ``q`` and ``B``) grow together. Where the series of the
    module docstring converges fast (``w <= 0.9``) ``ln J = ln(m + u) - ln(c - 1) +
    ln S``; elsewhere the trapezoid rule of :func:`_log_j_trapezoid`, or scipy's 2F1
    where the exponent on the larger shift is below 20 (:data:`_TRAP_MIN_B`).

    Returns
    -------
    log_J : numpy.ndarray
    gradient : tuple of numpy.ndarray or None
        ``(d/dA, d/dB, d/dp, d/dq)`` of ``ln J``, flat.
    """
    u, p, q = (np.array(v, dtype=float).ravel() for v in np.broadcast_arrays(u, p, q))
    a_u, b_u = A + u, B + u
    c = p + q
    a_is_min = A <= B
    m_u, M_u = (a_u, b_u) if a_is_min else (b_u, a_u)
    w = abs(B - A) / M_u
    p_M = q if a_is_min else p
    trap = (w > _W_SERIES_MAX) & (p_M >= _TRAP_MIN_B)
    if not trap.any():  # the usual case: every row by the series or scipy, no gathering
        return _log_j_from_s(m_u, M_u, c, p_M, w, a_is_min, grad)
    log_j = np.empty(len(u))
    out = [np.empty(len(u)) for _ in range(4)] if grad else None
    rest = ~trap
    parts = [
        (trap, _log_j_trapezoid(a_u[trap], b_u[trap], p[trap], q[trap], grad)),
        (rest, _log_j_from_s(m_u[rest], M_u[rest], c[rest], p_M[rest], w[rest], a_is_min, grad)),
    ]
    for rows, (value, d) in parts:
        log_j[rows] = value
        for o, di in zip(out or [], d or [], strict=True):
            o[rows] = di
    return log_j, out


def _log_j_from_s(m_u, M_u, c, p_M, w, a_is_min: bool, grad: bool):
    """``ln J = ln(m + u) - ln(c - 1) + ln S(p_M, c, w)`` and its gradient in ``(A, B, p, q)``."""
    log_s, d = _log_s(p_M, c, w, grad)
    log_j = np.log(m_u) - np.log(c - 1.0) + log_s
    if d is None:
        return log_j, None
    d_b, d_c, d_w = d
    g_pm = -1.0 / (c - 1.0) + d_c
    g_pM = g_pm + d_b
    g_m = 1.0 / m_u - d_w / M_u
    g_M = d_w * m_u / M_u**2
    return log_j, [g_m, g_M, g_pm, g_pM] if a_is_min else [g_M, g_m, g_pM, g_pm]


def pareto_log_tail_integral(u, A, B, p, q, grad: bool = False):
    """``ln int_u^inf (A + v) ** -p (B + v) ** -q dv`` and its gradient.

    ``ln I = ln J(u) - p ln(A + u) - q ln(B + u)`` with ``J`` of :func:`_log_j`:
    where the series converges fast (``w <= 0.9``) the representation in the
    module docstring, ``ln I = (1 - p_m) ln(m + u) - p_M ln(M + u) - ln(c - 1) +
    ln S(p_M, c, w)`` with ``m = min(A, B)``, ``M = max(A, B)`` (``A, B``
    scalars), ``p_m, p_M`` the matching exponents, ``c = p + q`` and
    ``w = (M - m) / (M + u)``. Needs ``p_m > 0`` and ``c > 1``.

    Parameters
    ----------
    u : array_like
        Lower limits (>= 0).
    A, B : float
        Shifts (> 0).
    p, q : array_like
        Exponents, broadcast with ``u``.
    grad : bool
        Also return the derivatives.

    Returns
    -------
    log_I : numpy.ndarray
    gradient : tuple of numpy.ndarray or None
        ``(d/dA, d/dB, d/dp, d/dq)`` of ``ln I``.
    """
    u, p, q = (np.array(v, dtype=float) for v in np.broadcast_arrays(u, p, q))
    shape = u.shape
    u, p, q = u.ravel(), p.ravel(), q.ravel()
    log_j, d = _log_j(u, A, B, p, q, grad)
    log_a, log_b = np.log(A + u), np.log(B + u)
    log_i = log_j - p * log_a - q * log_b
    if d is None:
        return log_i.reshape(shape), None
    out = (d[0] - p / (A + u), d[1] - q / (B + u), d[2] - log_a, d[3] - log_b)
    return log_i.reshape(shape), tuple(g.reshape(shape) for g in out)


def _log_expm1(d):
    """``ln(e^d - 1)`` for ``d >= 0`` (``-inf`` at 0), without overflow."""
    d = np.asarray(d, dtype=float)
    with np.errstate(divide="ignore"):
        return np.where(
            d > 1.0,
            d + np.log1p(-np.exp(-np.minimum(d, 1e300))),
            np.log(np.expm1(np.minimum(d, 1.0))),
        )


def _pairs(x, t_x, T):
    """Distinct ``(x, t_x)`` and ``(x, T)`` pairs: codes per row and a first row per pair."""
    x, t_x, T = (np.ravel(v) for v in (x, t_x, T))
    return (*group_rows(x, t_x), *group_rows(x, T))


def _log_rising(r, x_levels):
    """``ln Gamma(r + x) - ln Gamma(r)`` and its ``r``-derivative per level ``x``.

    For whole levels up to :data:`~rfmml.models._formulas.RISING_SUM_MAX` the sums
    ``sum_(j<x) ln(r + j)`` and ``sum_(j<x) 1 / (r + j)`` (Gamma's recurrence):
    accurate for any ``r``, where differences of ``gammaln`` of order ``r ln r``
    lose every digit as ``r`` grows; other levels take ``gammaln`` and digamma.
    """
    xl = np.asarray(x_levels, dtype=float)
    top = float(xl.max()) if xl.size else 0.0
    if xl.size and top <= RISING_SUM_MAX and xl.min() >= 0 and np.all(xl == np.floor(xl)):
        j = np.arange(top)
        k = xl.astype(np.intp)
        value = np.concatenate(([0.0], np.cumsum(np.log(r + j))))[k]
        d_r = np.concatenate(([0.0], np.cumsum(1.0 / (r + j))))[k]
        return value, d_r
    return gammaln(r + xl) - gammaln(r), digamma(r + xl) - digamma(r)


def _log_tail_terms(x, u, r, alpha, s, beta, grad: bool):
    """``K(u) = r ln alpha + s ln beta + ln I(u)`` (``p = r + x``, ``q = s + 1``) and its gradient.

    Written ``E(u) - ln(beta + u) + ln J(u)`` (:func:`_log_j`) with ``E(u) =
    -r ln(1 + u / alpha) - x ln(alpha + u) - s ln(1 + u / beta)`` (``E(T)`` is the
    alive term ``E1``, :func:`_log_alive_term`): no two terms of order ``r ln alpha``
    or ``s ln beta`` cancel where ``r, alpha`` (or ``s, beta``) run to infinity together.

    Returns
    -------
    K : numpy.ndarray
    gradient : numpy.ndarray or None
        Shape ``(4, n)``: ``d K / d(r, alpha, s, beta)``.
    E, ln(1 + u / alpha), ln(1 + u / beta) : numpy.ndarray
        For the alive term and its gradient at ``u = T``.
    """
    log_j, d = _log_j(u, alpha, beta, r + x, s + 1.0, grad)
    la, lb = np.log1p(u / alpha), np.log1p(u / beta)
    e = -r * la - x * np.log(alpha + u) - s * lb
    k = e - np.log(beta + u) + log_j
    if d is None:
        return k, None, e, la, lb
    g = np.array(
        [
            d[2] - la,
            d[0] + r * u / (alpha * (alpha + u)) - x / (alpha + u),
            d[3] - lb,
            d[1] + s * u / (beta * (beta + u)) - 1.0 / (beta + u),
        ]
    )
    return k, g, e, la, lb


def _log_alive_term(x, T, r, alpha, s, beta):
    """``E1 = ln(alpha^r beta^s (alpha + T) ** -(r + x) (beta + T) ** -s)``, the alive-at-T term.

    As ``-r ln(1 + T / alpha) - x ln(alpha + T) - s ln(1 + T / beta)``: no terms of
    order ``r ln alpha`` cancel (see :func:`_likelihood_terms`).
    """
    return -r * np.log1p(T / alpha) - x * np.log(alpha + T) - s * np.log1p(T / beta)


def _likelihood_terms(x, t_x, T, r, alpha, s, beta, weights=None, pairs=None):
    """``E1`` and ``Q`` of the likelihood (see below), and with ``weights`` the weighted gradient.

    From note 009 eq. (18) ([FHL05n]):
    ``L = Gamma(r + x) / Gamma(r) * alpha^r beta^s [P1 + P2 - P3]`` with
    ``P1 = (alpha + T) ** -(r + x) (beta + T) ** -s`` (alive at T),
    ``P2 - P3 = s int_(t_x)^T (alpha + v) ** -(r + x) (beta + v) ** -(s + 1) dv``
    (dropout at v in (t_x, T]), i.e. ``P2 = s I(t_x)``, ``P3 = s I(T)`` with
    ``I`` the tail integral at ``p = r + x, q = s + 1``. The factor
    ``alpha^r beta^s`` goes into each term: ``E1 = ln(alpha^r beta^s P1) =
    -r ln(1 + T / alpha) - x ln(alpha + T) - s ln(1 + T / beta)`` and
    ``K(u) = ln(alpha^r beta^s I(u))`` (:func:`_log_tail_terms`), so that nothing
    of order ``r ln alpha`` is formed (on a degenerate fit's ridge ``r`` and
    ``alpha``, or ``s`` and ``beta``, run to infinity at a fixed ratio). Then
    ``Q = ln(alpha^r beta^s (P1 + P2 - P3)) = ln(e^E1 + s e^K(T) (e^Delta - 1))``,
    ``Delta = K(t_x) - K(T) >= 0``, a log-sum-exp of two non-negative terms;
    ``ln L = ln Gamma(r + x) - ln Gamma(r) + Q`` and ``E1 - Q = ln P(alive)``.

    The gradient of ``sum_i w_i Q_i`` is ``sum_i w_i (w1 dE1 + w2 d ln P2 -
    w3 d ln P3)`` with ``w_k = P_k / (P1 + P2 - P3)`` (between 0 and 2).

    ``E1`` depends on ``(x, T)`` and ``K`` on ``(x, u)`` only: they are evaluated
    once per distinct ``(x, t_x)`` and ``(x, T)`` pair (``pairs``, from
    :func:`_pairs`, or computed here); their gradients are summed per pair with the
    rows' weights (``bincount``) rather than gathered back to every row.
    """
    x, t_x, T = (np.asarray(v, dtype=float) for v in np.broadcast_arrays(x, t_x, T))
    shape = x.shape
    x, t_x, T = x.ravel(), t_x.ravel(), T.ravel()
    grad = weights is not None
    codes_tx, first_tx, codes_T, first_T = _pairs(x, t_x, T) if pairs is None else pairs
    k_tx_u, g_tx, *_ = _log_tail_terms(x[first_tx], t_x[first_tx], r, alpha, s, beta, grad)
    x_T, T_T = x[first_T], T[first_T]
    k_T_u, g_T, e1_u, la_T, lb_T = _log_tail_terms(x_T, T_T, r, alpha, s, beta, grad)
    k_tx, k_T, e1 = k_tx_u[codes_tx], k_T_u[codes_T], e1_u[codes_T]
    log_p3 = np.log(s) + k_T
    delta = np.maximum(k_tx - k_T, 0.0)
    q = np.logaddexp(e1, log_p3 + _log_expm1(delta))
    if not grad:
        return e1.reshape(shape), q.reshape(shape), None
    ww1 = weights * np.exp(e1 - q)  # w P1 / total; P1 / total = P(alive)
    ww2 = weights * np.exp(np.log(s) + k_tx - q)  # w P2 / total, P2 / total <= 2
    ww3 = weights * np.exp(log_p3 - q)  # w P3 / total <= w
    W1 = np.bincount(codes_T, weights=ww1, minlength=len(first_T))
    W2 = np.bincount(codes_tx, weights=ww2, minlength=len(first_tx))
    W3 = np.bincount(codes_T, weights=ww3, minlength=len(first_T))
    # d/d(r, alpha, s, beta) of E1 per (x, T) pair
    g_e1 = np.array(
        [
            -(W1 @ la_T),
            W1 @ (r * T_T / (alpha * (alpha + T_T)) - x_T / (alpha + T_T)),
            -(W1 @ lb_T),
            s * (W1 @ (T_T / (beta * (beta + T_T)))),
        ]
    )
    # ln P2, ln P3 = ln s + K; the ln s part of the s-derivative
    g_p2 = g_tx @ W2 + np.array([0.0, 0.0, W2.sum() / s, 0.0])
    g_p3 = g_T @ W3 + np.array([0.0, 0.0, W3.sum() / s, 0.0])
    return e1.reshape(shape), q.reshape(shape), g_e1 + g_p2 - g_p3


def pareto_nbd_log_likelihood(x, t_x, T, r, alpha, s, beta):
    """Per-customer Pareto/NBD log-likelihood.

    Eq. (18) of Fader, Hardie & Lee's note 009 [FHL05n] (eq. 7 of
    [SMC87]), with the hypergeometric ``A_0`` of its eqs. (19)-(20)
    replaced by the bounded form of the module docstring:
    ``ln L = ln Gamma(r + x) - ln Gamma(r) + Q`` (``Q``, which holds
    ``r ln alpha + s ln beta``, in :func:`_likelihood_terms`; the gamma functions
    by :func:`_log_rising`). Finite for any ``x`` and ``T``, and accurate where
    ``r, alpha`` or ``s, beta`` run to infinity at a fixed ratio.

    Returns
    -------
    numpy.ndarray
    """
    x = np.asarray(x, dtype=float)
    _, q, _ = _likelihood_terms(x, t_x, T, r, alpha, s, beta)
    levels, index = np.unique(x, return_inverse=True)
    return _log_rising(r, levels)[0][index.reshape(x.shape)] + q


class ParetoNBDData(NamedTuple):
    """Unique customer rows prepared once for repeated likelihood evaluations.

    ``levels`` holds :func:`~rfmml.models._grouping.frequency_levels`' fields
    (``x``, ``t_x``, ``T``, ``weights``, ``n``, ``x_levels``, ``level_weights``);
    ``pairs`` the distinct ``(x, t_x)`` and ``(x, T)`` pairs (:func:`_pairs`).
    """

    levels: dict[str, Any]
    pairs: tuple

    @property
    def T(self) -> np.ndarray:
        """Ages of the rows (for the starting points)."""
        return self.levels["T"]

    @property
    def n(self) -> float:
        """Customers the rows stand for (the fit scales the objective by it)."""
        return self.levels["n"]


def pareto_nbd_prepare(x, t_x, T, weights) -> ParetoNBDData:
    """Group frequencies into levels for :func:`pareto_nbd_total_log_likelihood_and_gradient`.

    Returns
    -------
    ParetoNBDData
    """
    fields, _ = frequency_levels(weights, x=x, t_x=t_x, T=T)
    return ParetoNBDData(fields, _pairs(fields["x"], fields["t_x"], fields["T"]))


def pareto_nbd_total_log_likelihood_and_gradient(r, alpha, s, beta, data: ParetoNBDData):
    """Weighted total Pareto/NBD log-likelihood and its gradient in (r, alpha, s, beta).

    :func:`pareto_nbd_log_likelihood` summed with weights; the gamma
    functions once per distinct frequency (:func:`_log_rising`). The gradient is
    analytic: sums of ``1 / (r + j)`` (or digamma) for the gamma terms, and for
    ``Q`` the weighted derivatives of its three terms (``dQ = w1 dE1 + w2 d ln P2
    - w3 d ln P3`` with ``w_i = P_i / (P1 + P2 - P3)``, all between 0 and 2), the
    hypergeometric factor differentiated term by term in its series
    (:func:`_log_s_series`) or under the trapezoid rule (:func:`_log_j_trapezoid`).
    Accurate on the degenerate ridges of the module docstring (``r, alpha`` or
    ``s, beta`` to infinity together), also in log-parameters.

    Returns
    -------
    total : float
    gradient : numpy.ndarray
        Derivatives with respect to ``(r, alpha, s, beta)``.
    """
    rows = data.levels
    xl, wl, w = rows["x_levels"], rows["level_weights"], rows["weights"]
    _, q, g_q = _likelihood_terms(
        rows["x"], rows["t_x"], rows["T"], r, alpha, s, beta, weights=w, pairs=data.pairs
    )
    rising, d_rising = _log_rising(r, xl)
    total = wl @ rising + w @ q
    grad = g_q + np.array([wl @ d_rising, 0.0, 0.0, 0.0])
    return float(total), grad


def pareto_nbd_probability_alive(x, t_x, T, r, alpha, s, beta, pairs=None):
    """Probability that a customer with history ``(x, t_x, T)`` is alive at ``T``.

    Eq. (36)-(37) of note 009 [FHL05n] (eq. 11 of [SMC87]):
    ``P(alive) = P1 / (P1 + P2 - P3)``, the share of the likelihood of the
    alive-at-``T`` branch (terms of :func:`_likelihood_terms`), in [0, 1]
    by construction. Written as ``1 / (1 + e^y)`` with
    ``y = ln((P2 - P3) / P1) = ln s - E1 + ln I(t_x) + ln(1 - e^(-Delta))``,
    ``Delta = ln I(t_x) - ln I(T) >= 0`` (``y = -inf``, ``P(alive) = 1``,
    at ``Delta = 0``, i.e. ``t_x = T``).

    ``ln I(t_x)`` depends on the ``(x, t_x)`` pair, ``E1`` and ``ln I(T)``
    on the ``(x, T)`` pair: they are evaluated once per distinct pair
    (``pairs`` from :func:`_pairs`, or computed here), and the rest, a few
    elementwise operations per customer, in cache-sized blocks.

    Returns
    -------
    numpy.ndarray
    """
    return _alive_and_expected(None, x, t_x, T, r, alpha, s, beta, pairs)[0]


def pareto_nbd_alive_and_expected(t, x, t_x, T, r, alpha, s, beta):
    """:func:`pareto_nbd_probability_alive` and :func:`pareto_nbd_expected_purchases` at once.

    For one horizon ``t`` (a scalar), the factor given alive depends on the
    ``(x, T)`` pair only, so it is evaluated once per pair, next to the
    pair terms of the probability alive, and multiplied in the same blocks.

    Returns
    -------
    alive, expected : numpy.ndarray
    """
    return _alive_and_expected(float(t), x, t_x, T, r, alpha, s, beta, None)


def _alive_and_expected(t, x, t_x, T, r, alpha, s, beta, pairs):
    """P(alive) and, for a scalar horizon ``t`` (else None), expected purchases."""
    x, t_x, T = np.broadcast_arrays(*(np.asarray(v, dtype=float) for v in (x, t_x, T)))
    shape = x.shape
    x, t_x, T = x.ravel(), t_x.ravel(), T.ravel()
    codes_tx, first_tx, codes_T, first_T = _pairs(x, t_x, T) if pairs is None else pairs
    # K(u) = ln(alpha^r beta^s I(u)) and E1 with the same factor: their differences are
    # those of ln I and ln P1, without terms of order r ln(alpha) on a degenerate ridge
    log_itx = _log_tail_terms(x[first_tx], t_x[first_tx], r, alpha, s, beta, False)[0]
    x_T, T_T = x[first_T], T[first_T]
    log_iT, _, e1, *_ = _log_tail_terms(x_T, T_T, r, alpha, s, beta, False)
    lead = np.log(s) - e1  # ln s - E1 per (x, T) pair
    factor = (
        None
        if t is None
        else pareto_nbd_expected_purchases_if_alive(t, x_T, T_T, r, alpha, s, beta)
    )
    alive = np.empty(len(x))
    expected = None if factor is None else np.empty(len(x))
    block = 2**14
    for start in range(0, len(x), block):
        rows = slice(start, start + block)
        ctx, cT = codes_tx[rows], codes_T[rows]
        l_tx = np.take(log_itx, ctx)
        y = np.take(log_iT, cT)
        np.subtract(l_tx, y, out=y)
        np.maximum(y, 0.0, out=y)  # Delta >= 0 (equality up to rounding when t_x = T)
        np.negative(y, out=y)
        np.expm1(y, out=y)
        np.negative(y, out=y)
        with np.errstate(divide="ignore"):
            np.log(y, out=y)  # ln(1 - e^(-Delta)), -inf at Delta = 0
        y += l_tx
        y += np.take(lead, cT, out=l_tx)
        with np.errstate(over="ignore"):
            np.exp(y, out=y)
        y += 1.0
        np.reciprocal(y, out=alive[rows])
        if expected is not None:
            np.multiply(np.take(factor, cT, out=l_tx), alive[rows], out=expected[rows])
    if not shape:
        return alive[0], None if expected is None else expected[0]
    return alive.reshape(shape), None if expected is None else expected.reshape(shape)


def _one_minus_power_over(k, L):
    """``(1 - exp(-k L)) / k``, with its limit ``L`` at ``k = 0``.

    For ``|k L| < 1e-8`` the two-term series ``L (1 - k L / 2)`` (error
    ``(k L) ** 2 L / 6 < 1e-16 L``); elsewhere ``-expm1(-k L) / k``, whose
    relative error is ~1e-16 / |k L| <= 1e-8 only at the switch.
    """
    k = np.asarray(k, dtype=float)
    L = np.asarray(L, dtype=float)
    small = np.abs(k * L) < 1e-8
    with np.errstate(all="ignore"):
        direct = -np.expm1(-k * L) / np.where(small, 1.0, k)
    return np.where(small, L * (1.0 - 0.5 * k * L), direct)


def pareto_nbd_expected_purchases(t, x, t_x, T, r, alpha, s, beta):
    """Expected purchases in ``(T, T + t]`` given the history.

    Eq. (41) of note 009 [FHL05n] (eq. 22 of [SMC87]):
    ``E[Y(t) | x, t_x, T] = P(alive) (r + x) (beta + T) / ((alpha + T) (s - 1))
    [1 - ((beta + T) / (beta + T + t)) ** (s - 1)]``: the probability alive
    times :func:`pareto_nbd_expected_purchases_if_alive`.

    Returns
    -------
    numpy.ndarray
    """
    if np.ndim(t) == 0:  # the factor once per (x, T) pair, with P(alive)'s pair terms
        return _alive_and_expected(float(t), x, t_x, T, r, alpha, s, beta, None)[1]
    if_alive = pareto_nbd_expected_purchases_if_alive(t, x, T, r, alpha, s, beta)
    return if_alive * pareto_nbd_probability_alive(x, t_x, T, r, alpha, s, beta)


def pareto_nbd_expected_purchases_if_alive(t, x, T, r, alpha, s, beta):
    """Expected purchases in ``(T, T + t]`` of a customer alive at ``T``.

    The factor of :func:`pareto_nbd_expected_purchases` after ``P(alive)``
    (note 009 eq. 41): ``(r + x) (beta + T) / ((alpha + T) (s - 1))
    [1 - ((beta + T) / (beta + T + t)) ** (s - 1)]``, the new-customer
    expectation (eq. 27) at the updated parameters ``r + x, alpha + T, s,
    beta + T``. It depends on ``(t, x, T)`` only.

    Returns
    -------
    numpy.ndarray
    """
    x = np.asarray(x, dtype=float)
    T = np.asarray(T, dtype=float)
    t = np.asarray(t, dtype=float)
    bT = beta + T
    return (r + x) * bT / (alpha + T) * _one_minus_power_over(s - 1.0, np.log1p(t / bT))


def pareto_nbd_expected_purchases_new_customer(t, r, alpha, s, beta):
    """Expected purchases of a new customer in ``(0, t]``.

    Eq. (27) of note 009 [FHL05n] (eq. 17 of [SMC87]):
    ``E[X(t)] = r beta / (alpha (s - 1)) [1 - (beta / (beta + t)) ** (s - 1)]``.

    Returns
    -------
    numpy.ndarray
    """
    t = np.asarray(t, dtype=float)
    return r * beta / alpha * _one_minus_power_over(s - 1.0, np.log1p(t / beta))


def pareto_nbd_probability_no_purchase(t, x, t_x, T, r, alpha, s, beta, p_alive=None):
    """Probability of no purchase in ``(T, T + t]`` given the history.

    Derived from the model's assumptions ([SMC87] sec. 2): alive at ``T``
    with rates ``(lambda, mu)``, the next purchase (rate ``lambda``) comes
    before dropout (rate ``mu``) and within ``t`` with probability
    ``lambda / (lambda + mu) (1 - exp(-(lambda + mu) t))``. Given alive at
    ``T`` and the history, ``lambda ~ Gamma(r + x, alpha + T)`` and
    ``mu ~ Gamma(s, beta + T)`` independently (the alive branch of note 009
    eq. 18), and writing ``lambda / (lambda + mu) = lambda int_0^inf
    exp(-(lambda + mu) v) dv``, the expectation is
    ``(r + x) (alpha + T) ** (r + x) (beta + T) ** s [I(0) - I(t)]`` with
    ``I(u) = int_u^inf (alpha + T + v) ** -(r + x + 1) (beta + T + v) ** -s dv``
    (:func:`pareto_log_tail_integral`). Then
    ``P(no purchase) = 1 - P(alive) E[...]``.

    ``p_alive``, when given, is :func:`pareto_nbd_probability_alive` of the
    same rows (not evaluated again).

    Returns
    -------
    numpy.ndarray
        In [0, 1], 1 at ``t = 0``, non-increasing in ``t``; ``t = inf`` gives
        the probability of never buying again.
    """
    t, x, t_x, T = (np.asarray(v, dtype=float) for v in np.broadcast_arrays(t, x, t_x, T))
    shape = t.shape
    t, x, t_x, T = t.ravel(), x.ravel(), t_x.ravel(), T.ravel()
    if p_alive is None:
        p_alive = pareto_nbd_probability_alive(x, t_x, T, r, alpha, s, beta)
    # the purchase probability given alive depends on (t, x, T) only: once per distinct triple
    codes, first = group_rows(t, x, T)
    buy = _buy_if_alive(t[first], x[first], T[first], r, alpha, s, beta)[codes]
    none = np.clip(1.0 - np.ravel(p_alive) * buy, 0.0, 1.0)
    return none.reshape(shape)


def _buy_if_alive(t, x, T, r, alpha, s, beta):
    """P(a purchase in ``(T, T + t]`` | alive at ``T``) for the probability of none."""
    aT, bT = alpha + T, beta + T
    # I(u) has per-row shifts A = alpha + T, B = beta + T, but it depends on A + u and
    # B + u only: evaluate it at u' = T + u with the scalar shifts alpha and beta, as
    # J(u') = (alpha + u') ** p (beta + u') ** s I(u') (of order one: no terms of order
    # r ln(alpha) where r and alpha run to infinity together)
    p = r + x + 1.0
    log_j0, _ = _log_j(T, alpha, beta, p, s)
    finite = np.isfinite(t)
    log_ratio = np.full(t.shape, -np.inf)  # I(inf) = 0: P(never buys again) for t = inf
    if finite.any():
        tf, pf = t[finite], p[finite]
        log_jt = _log_j(T[finite] + tf, alpha, beta, pf, s)[0]
        log_ratio[finite] = (
            log_jt - pf * np.log1p(tf / aT[finite]) - s * np.log1p(tf / bT[finite]) - log_j0[finite]
        )
    # (r + x) (alpha + T) ** (r + x) (beta + T) ** s I(T) = (r + x) / (alpha + T) J(T)
    log_front = np.log(r + x) - np.log(aT) + log_j0
    with np.errstate(divide="ignore"):
        buy = np.exp(log_front) * -np.expm1(np.minimum(log_ratio, 0.0))
    return np.clip(buy, 0.0, 1.0)


def pareto_nbd_probability_of_purchases(n, t, r, alpha, s, beta):
    """Probability that a new customer makes exactly ``n`` purchases in ``(0, t]``.

    From the model's assumptions ([SMC87] sec. 2; the closed form is eq.
    (29) of note 009 [FHL05n]): alive throughout ``(0, t]`` with
    probability ``(beta / (beta + t)) ** s`` and ``n`` purchases from the NBD,
    or dropout at ``v < t`` (density ``s beta ** s (beta + v) ** -(s + 1)``)
    after ``n`` purchases in ``(0, v]``:
    ``P(X(t) = n) = NB(n; t) (beta / (beta + t)) ** s
    + int_0^t s beta ** s (beta + v) ** -(s + 1) NB(n; v) dv`` with
    ``NB(n; v) = Gamma(r + n) / (Gamma(r) n!) (alpha / (alpha + v)) ** r
    (v / (alpha + v)) ** n``. The integral (smooth, on a finite interval) is
    evaluated by adaptive quadrature (``scipy.integrate.quad``, relative
    tolerance 1e-12) once per distinct ``(n, t)``.

    As in the likelihood, ``alpha^r`` and ``beta^s`` go into the powers:
    ``ln NB(n; v) = F(n) + n (ln v - ln(1 + v / alpha)) - r ln(1 + v / alpha)`` with
    ``F(n) = sum_(j<n) ln((r + j) / alpha) - ln n!`` (:func:`_log_nb_front`), and the
    dropout density is ``(s / beta) (1 + v / beta) ** -(s + 1)``: no terms of order
    ``r ln(alpha)`` or ``s ln(beta)`` are formed, so the probabilities keep their digits
    where ``r, alpha`` (Poisson purchases) or ``s, beta`` (one exponential dropout rate)
    run to infinity at a fixed ratio.

    Returns
    -------
    numpy.ndarray
        NaN where ``t`` is negative or NaN.
    """
    n, t = np.broadcast_arrays(np.asarray(n, dtype=float), np.asarray(t, dtype=float))
    shape = n.shape
    flat_n, flat_t = n.ravel(), t.ravel()
    out = np.empty(flat_n.shape)
    levels, level_of = np.unique(flat_n, return_inverse=True)
    fronts = _log_nb_front(r, alpha, levels)
    r, alpha, s, beta = (float(v) for v in (r, alpha, s, beta))
    log_g0 = math.log(s / beta)  # ln of the dropout density at v = 0

    def log_nb(k: float, front: float, v: float) -> float:
        la = math.log1p(v / alpha)
        if k == 0:
            return -r * la
        if v <= 0:
            return -math.inf
        return front + k * (math.log(v) - la) - r * la

    cache: dict[tuple[float, float], float] = {}
    for i, (k, tt) in enumerate(zip(flat_n, flat_t, strict=True)):
        key = (float(k), float(tt))
        if key not in cache:
            k_, tt_, front = key[0], key[1], float(fronts[level_of[i]])
            if not tt_ >= 0.0:  # a negative or NaN horizon has no probability
                cache[key] = math.nan
                out[i] = math.nan
                continue
            alive = math.exp(log_nb(k_, front, tt_) - s * math.log1p(tt_ / beta))

            def integrand(v: float, k_: float = k_, front: float = front) -> float:
                return math.exp(log_g0 - (s + 1.0) * math.log1p(v / beta) + log_nb(k_, front, v))

            dead = (
                quad(integrand, 0.0, tt_, epsabs=0.0, epsrel=1e-12, limit=200)[0]
                if tt_ > 0
                else 0.0
            )
            cache[key] = alive + dead
        out[i] = cache[key]
    return out.reshape(shape)


#: Gauss-Legendre nodes per panel of :func:`pareto_nbd_count_pmf_if_alive` (16 nodes
#: agree with a 40,000-node reference to 1e-14, 12 to 1e-10: quantiles of counts need no
#: more, and the quadrature is the cost of the count intervals)
_PMF_NODES = 12
#: (rows + 16) x nodes held at once by :func:`pareto_nbd_count_pmf_if_alive` (8 MiB)
_PMF_BLOCK = 1 << 20


def _pmf_panels(t: float, levels: int) -> tuple[np.ndarray, np.ndarray]:
    """Panels of ``[0, t]`` graded towards 0: left ends and lengths.

    Breakpoints ``t 2 ** -j`` (j = 0..levels) and 0, with ``t 2 ** -levels``
    below the scale on which the integrand varies near 0; the panels
    ``[t / 2, t]`` and ``[t / 4, t / 2]`` are cut in four and two (there
    ``v ** n`` of large counts varies most). Each panel ``[c, c + h]`` lies at
    least ``h`` from the singularities at ``-a'`` and ``-b'``, so
    Gauss-Legendre on it converges like ``5.8 ** -(2 nodes)``.
    """
    ends = t * 2.0 ** -np.arange(levels + 1.0)  # t, t/2, ..., t 2^-levels
    edges = np.concatenate([[0.0], ends[::-1]])
    last = len(edges) - 2
    pieces = [np.linspace(lo, hi, 5 if k == last else 3 if k == last - 1 else 2)
              for k, (lo, hi) in enumerate(zip(edges[:-1], edges[1:], strict=True))]  # fmt: skip
    edges = np.unique(np.concatenate(pieces))
    return edges[:-1], np.diff(edges)


def pareto_nbd_count_pmf_if_alive(n_max: int, t: float, x, T, r, alpha, s, beta) -> np.ndarray:
    """``P(X(T, T + t) = n | alive at T, x, T)`` for ``n = 0..n_max``.

    Alive at ``T`` after ``x`` repeat purchases, ``lambda ~ Gamma(r + x,
    alpha + T)`` and ``mu ~ Gamma(s, beta + T)`` independently (the alive
    branch of note 009 eq. 18), and the exponential lifetime is memoryless:
    the future is a new customer's process at the updated parameters
    ``r' = r + x``, ``a' = alpha + T``, ``s``, ``b' = beta + T`` (Fader &
    Hardie, note 028, the conditional PMF). Its count in ``(0, t]`` (note
    012; [SMC87] sec. 2) is the NBD count of the time alive, ``min(tau, t)``
    with ``tau`` Pareto (Lomax) of density
    ``g(v) = s b' ** s (b' + v) ** -(s + 1)``:

        P(n) = NB(n; t) (b' / (b' + t)) ** s + int_0^t g(v) NB(n; v) dv,
        NB(n; v) = Gamma(r' + n) / (Gamma(r') n!) (a' / (a' + v)) ** r'
                   (v / (a' + v)) ** n.

    Note 012 writes the integral with Gauss hypergeometric functions and a
    finite sum subtracted from one, which cancels badly for large ``n``; here
    it is evaluated by Gauss-Legendre quadrature (16 nodes per panel) on
    panels graded towards ``v = 0`` (:func:`_pmf_panels`), every ``n`` at
    once: at each node ``NB(n; v)`` follows the ratio recursion
    ``NB(n; v) = NB(n - 1; v) (r' + n - 1) / n v / (a' + v)``, rescaled every
    16 steps so that nothing underflows for large ``r'``. The integrand is
    analytic on ``[0, t]`` with singularities at ``v = -a'`` and
    ``v = -b'``; the panels keep their distance, and against adaptive
    quadrature (:func:`pareto_nbd_probability_of_purchases` at the updated
    parameters) the probabilities agree to 1e-10. The mean,
    ``sum_n n P(n)``, is :func:`pareto_nbd_expected_purchases_if_alive`.

    Parameters
    ----------
    n_max : int
        Largest count.
    t : float
        Horizon (finite, >= 0).
    x, T, r, alpha, s, beta : array_like
        Broadcast together to the shape ``S`` of the result's leading axes
        (e.g. pairs x 1 and 1 x draws).

    Returns
    -------
    numpy.ndarray
        Shape ``S + (n_max + 1,)``.
    """
    x, T, r, alpha, s, beta = np.broadcast_arrays(
        *(np.asarray(v, dtype=float) for v in (x, T, r, alpha, s, beta))
    )
    shape = x.shape
    rp, ap, bp, sv = (r + x).ravel(), (alpha + T).ravel(), (beta + T).ravel(), s.ravel()
    size = rp.size
    grid = np.arange(n_max + 1, dtype=float)
    out = np.empty((size, n_max + 1))
    if size == 0:
        return out.reshape(*shape, n_max + 1)
    if t <= 0:  # nothing can happen in no time
        out[:] = 0.0
        out[:, 0] = 1.0
        return out.reshape(*shape, n_max + 1)
    # alive throughout (0, t]: the NBD at t times the lifetime survival
    # logs of ratios near 1 by log1p: s and r' may be 1e6 in poorly identified draws
    log_q = -np.log1p(t / ap)  # ln (a' / (a' + t))
    log_p = np.log(t) - np.log(ap + t)  # ln (t / (a' + t))
    log_alive = -sv * np.log1p(t / bp)
    # ln Gamma(r' + n) / (Gamma(r') n!) as a running sum of ln((r' + n - 1) / n)
    logc = np.zeros((size, n_max + 1))
    if n_max > 0:
        step = np.add.outer(rp - 1.0, grid[1:])
        step /= grid[1:]
        np.log(step, out=step)
        np.cumsum(step, axis=1, out=logc[:, 1:])
        del step
    np.multiply(log_p[:, None], grid, out=out)  # in place: n ln (t / (a' + t)) ...
    out += logc
    out += (rp * log_q + log_alive)[:, None]
    np.exp(out, out=out)
    # dropout at v in (0, t): quadrature on panels graded towards 0, down to the scale on
    # which the integrand varies (a' / (r' + 1) for (a' + v) ** -r', b' / (s + 1) likewise)
    scale = np.minimum(ap / (rp + 1.0), bp / (sv + 1.0))
    levels = np.clip(np.ceil(np.log2(np.maximum(t / scale, 1.0))), 0, 60).astype(np.int64)
    # rows with the same (a', b', s) (same T and draw, any x) share the nodes' dropout
    # weights and powers of v / (a' + v): their sums over nodes are matrix products
    codes, first = group_rows(ap, bp, sv)
    n_groups = len(first)
    counts = np.bincount(codes, minlength=n_groups)
    by_group = np.argsort(codes, kind="stable")
    starts = np.cumsum(counts) - counts
    group_level = np.zeros(n_groups, dtype=np.int64)
    np.maximum.at(group_level, codes, levels)
    y, w = roots_legendre(_PMF_NODES)
    for level in np.unique(group_level):
        groups = np.flatnonzero(group_level == level)
        left, length = _pmf_panels(float(t), int(level))
        nodes = (left[:, None] + length[:, None] * 0.5 * (1.0 + y)).ravel()
        log_w = (np.log(0.5 * length)[:, None] + np.log(w)).ravel()
        # groups of similar size together (little padding), bounded batches
        groups = groups[np.argsort(counts[groups], kind="stable")]
        done = 0
        while done < groups.size:
            width = int(counts[groups[done]])
            # per group: its rows' terms and the 16 powers of its nodes
            fit = max(1, _PMF_BLOCK // (nodes.size * (width + 16)))
            take = groups[done : done + fit]
            take = take[counts[take] <= 2 * width] if width else take
            take = take[: max(1, take.size)]
            _pmf_dead_part(out, take, by_group, starts, counts, first, nodes, log_w, ap, bp,
                           rp, sv, logc, n_max)  # fmt: skip
            done += take.size
    return out.reshape(*shape, n_max + 1)


def _pmf_dead_part(out, groups, by_group, starts, counts, first, nodes, log_w, ap, bp, rp, sv,
                   logc, n_max: int) -> None:  # fmt: skip
    """Add the quadrature of ``int_0^t g(v) NB(n; v) dv`` to the rows of ``groups``.

    A group's rows share ``a', b', s`` (so the nodes' ``ln g(v) w`` and
    ``v / (a' + v)``) and differ in ``r'``; a batch of groups is padded to its
    largest group (padding repeats a row, never written back). For each block
    of 16 counts the sums over nodes are one batched matrix product with the
    powers ``(v / (a' + v)) ** j``, j < 16.
    """
    size = counts[groups]
    width = int(size.max())
    j = np.arange(width)
    valid = j < size[:, None]
    pos = starts[groups][:, None] + np.minimum(j, size[:, None] - 1)
    rows = by_group[pos]  # (groups, width)
    g0 = first[groups]
    a_, b_, s_ = ap[g0, None], bp[g0, None], sv[g0, None]
    ratio = nodes / (a_ + nodes)  # v / (a' + v), (groups, nodes)
    la = np.log1p(nodes / a_)  # ln (1 + v / a'), ln (1 + v / b'): two logarithms per node
    lb = np.log1p(nodes / b_)
    log_ratio = np.log(nodes) - np.log(a_) - la
    # ln of weight x dropout density s / b' (b' / (b' + v)) ** (s + 1) x (a' / (a' + v)) ** r':
    # the node's part of NB(0; v), (groups, width, nodes)
    base = ((log_w + np.log(s_ / b_)) - (s_ + 1.0) * lb)[:, None, :]
    base = base - rp[rows][:, :, None] * la[:, None, :]
    powers = np.empty((ratio.shape[0], 16, ratio.shape[1]))  # (groups, 16, nodes)
    powers[:, 0] = 1.0
    for k in range(1, 16):
        np.multiply(powers[:, k - 1], ratio, out=powers[:, k])
    ratio16 = powers[:, 15] * ratio
    c = logc[rows]  # (groups, width, n_max + 1)
    dest = rows[valid]
    h = np.empty_like(base)
    for n0 in range(0, n_max + 1, 16):
        # blocks of 16 counts: the node terms exp(base + n ln(v / (a' + v)) + ln c_n) at the
        # block's first count, from logarithms every fourth block (nothing under- or
        # overflows for large r'), else updated by multiplication; the sums over nodes of
        # the next counts are matrix products with the powers of v / (a' + v) and the
        # count's factor Gamma(r' + n) / (Gamma(r') n!) per row
        m = min(16, n_max + 1 - n0)
        if n0 % 64 == 0:
            np.multiply(log_ratio[:, None, :], float(n0), out=h)
            h += base
            h += c[:, :, n0 : n0 + 1]
            np.exp(h, out=h)
        else:
            h *= np.exp(c[:, :, n0 : n0 + 1] - c[:, :, n0 - 16 : n0 - 15])
            h *= ratio16[:, None, :]
        sums = np.matmul(h, powers[:, :m].swapaxes(1, 2))  # (groups, width, m)
        sums *= np.exp(c[:, :, n0 : n0 + m] - c[:, :, n0 : n0 + 1])
        out[dest, n0 : n0 + m] += sums[valid]
