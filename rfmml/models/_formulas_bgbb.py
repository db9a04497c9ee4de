"""Likelihood and closed forms of the BG/BB model for discrete opportunities.

The beta-geometric/beta-binomial model of Fader, Hardie & Shang (2010): at
each of ``n`` transaction opportunities an alive customer transacts with
probability ``p ~ Beta(alpha, beta)``; before each opportunity he dies with
probability ``theta ~ Beta(gamma, delta)``. A customer's history is ``x``
(transactions in opportunities 1..n), ``t_x`` (the last opportunity with a
transaction, 0 if none) and ``n``, all integers with ``x <= t_x <= n``.
Nothing here validates input.

References
----------
.. [FHS10] Fader, P. S., Hardie, B. G. S. and Shang, J. (2010),
   "Customer-base analysis in a discrete-time noncontractual setting",
   Marketing Science 29 (6), 1086-1108.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from scipy.special import betaln, digamma, gammaln, roots_laguerre

__all__ = [
    "bgbb_log_likelihood",
    "BGBBData",
    "bgbb_prepare",
    "bgbb_total_log_likelihood_and_gradient",
    "bgbb_probability_alive",
    "bgbb_expected_purchases",
    "bgbb_expected_purchases_new_customer",
    "bgbb_probability_no_purchase",
    "bgbb_probability_of_purchases",
    "bgbb_count_pmf_if_alive",
]


class BGBBData(NamedTuple):
    """Unique (x, t_x, n) rows as integers, prepared once for repeated evaluations."""

    x: np.ndarray
    t_x: np.ndarray
    n_opp: np.ndarray
    weights: np.ndarray
    n: float
    j: np.ndarray  # (rows, I) opportunity t_x + i of each dropout term
    valid: np.ndarray  # (rows, I) i < n - t_x


def bgbb_prepare(x, t_x, n_opp, weights) -> BGBBData:
    """Integer rows and the grid of dropout opportunities of the likelihood's sum.

    Returns
    -------
    BGBBData
    """
    x, t_x, n_opp = (np.asarray(v, dtype=float).astype(np.int64) for v in (x, t_x, n_opp))
    weights = np.asarray(weights, dtype=float)
    width = int((n_opp - t_x).max()) if len(x) else 0
    i = np.arange(max(width, 1))[None, :]
    return BGBBData(
        x=x,
        t_x=t_x,
        n_opp=n_opp,
        weights=weights,
        n=float(weights.sum()),
        j=t_x[:, None] + i,
        valid=i < (n_opp - t_x)[:, None],
    )


def _terms(alpha, beta, gamma, delta, data: BGBBData, grad: bool):
    """Log-terms of the likelihood and, optionally, their shares and digamma tables.

    FHS10 eq. (5): ``L = B(alpha + x, beta + n - x) / B(alpha, beta)
    B(gamma, delta + n) / B(gamma, delta) + sum_(i=0)^(n - t_x - 1)
    B(alpha + x, beta + t_x - x + i) / B(alpha, beta)
    B(gamma + 1, delta + t_x + i) / B(gamma, delta)``: alive through ``n``, or
    dead at opportunity ``t_x + i + 1`` after ``t_x + i`` opportunities alive.
    Every gamma function depends on an integer offset ``0..max(n)`` and is
    tabulated once per evaluation; the rows only gather from the tables.
    """
    x, j, n_opp = data.x, data.j, data.n_opp
    top = int(n_opp.max()) + 2 if len(x) else 2
    k = np.arange(top, dtype=float)
    lg_ab, lg_b, lg_d = gammaln(alpha + beta + k), gammaln(beta + k), gammaln(delta + k)
    lg_gd = gammaln(gamma + delta + k)  # index m: Gamma(gamma + delta + m)
    const = -betaln(alpha, beta) - betaln(gamma, delta)
    lg_ax = gammaln(alpha + x)
    log_alive = (
        lg_ax + lg_b[n_opp - x] - lg_ab[n_opp] + gammaln(gamma) + lg_d[n_opp] - lg_gd[n_opp] + const
    )
    jj = np.where(data.valid, j, 0)
    xx = np.minimum(x[:, None], jj)
    log_dead = (
        lg_ax[:, None]
        + lg_b[jj - xx]
        - lg_ab[jj]
        + gammaln(gamma + 1.0)
        + lg_d[jj]
        - lg_gd[jj + 1]
        + const
    )
    log_dead = np.where(data.valid, log_dead, -np.inf)
    top_val = np.maximum(log_alive, log_dead.max(axis=1))
    share_alive = np.exp(log_alive - top_val)
    share_dead = np.exp(log_dead - top_val[:, None])
    total = share_alive + share_dead.sum(axis=1)
    log_l = top_val + np.log(total)
    if not grad:
        return log_l, None
    share_alive /= total
    share_dead /= total[:, None]
    ps_ab, ps_b, ps_d, ps_gd = (
        digamma(alpha + beta + k),
        digamma(beta + k),
        digamma(delta + k),
        digamma(gamma + delta + k),
    )
    ab_mix = share_alive * ps_ab[n_opp] + (share_dead * ps_ab[jj]).sum(axis=1)
    gd_mix = share_alive * ps_gd[n_opp] + (share_dead * ps_gd[jj + 1]).sum(axis=1)
    g_alpha = digamma(alpha + x) - digamma(alpha) + digamma(alpha + beta) - ab_mix
    g_beta = (
        share_alive * ps_b[n_opp - x]
        + (share_dead * ps_b[jj - xx]).sum(axis=1)
        - ab_mix
        - digamma(beta)
        + digamma(alpha + beta)
    )
    g_gamma = (
        share_alive * digamma(gamma)
        + (1.0 - share_alive) * digamma(gamma + 1.0)
        - gd_mix
        - digamma(gamma)
        + digamma(gamma + delta)
    )
    g_delta = (
        share_alive * ps_d[n_opp]
        + (share_dead * ps_d[jj]).sum(axis=1)
        - gd_mix
        - digamma(delta)
        + digamma(gamma + delta)
    )
    return log_l, (g_alpha, g_beta, g_gamma, g_delta)


def bgbb_log_likelihood(x, t_x, n_opp, alpha, beta, gamma, delta):
    """Per-customer BG/BB log-likelihood, FHS10 eq. (5) (see :func:`_terms`).

    Returns
    -------
    numpy.ndarray
    """
    x, t_x, n_opp = np.broadcast_arrays(*(np.asarray(v, dtype=float) for v in (x, t_x, n_opp)))
    shape = x.shape
    data = bgbb_prepare(x.ravel(), t_x.ravel(), n_opp.ravel(), np.ones(x.size))
    return _terms(alpha, beta, gamma, delta, data, grad=False)[0].reshape(shape)


def bgbb_total_log_likelihood_and_gradient(alpha, beta, gamma, delta, data: BGBBData):
    """Weighted total BG/BB log-likelihood and its analytic gradient.

    With ``pi_k`` the share of each term of FHS10 eq. (5) in ``L``, the
    derivative of ``ln L`` is ``sum_k pi_k d ln(term_k)``; each term is a
    product of beta functions, whose log-derivatives are digamma differences.

    Returns
    -------
    total : float
    gradient : numpy.ndarray
        Derivatives with respect to ``(alpha, beta, gamma, delta)``.
    """
    log_l, g = _terms(alpha, beta, gamma, delta, data, grad=True)
    w = data.weights
    return float(w @ log_l), np.array([w @ gi for gi in g])


def bgbb_probability_alive(x, t_x, n_opp, alpha, beta, gamma, delta):
    """Probability that the customer is alive at opportunity ``n + 1``.

    FHS10 eq. (11):
    ``P(alive at n + 1 | x, t_x, n) = B(alpha + x, beta + n - x) / B(alpha, beta)
    B(gamma, delta + n + 1) / B(gamma, delta) / L``. On the donations data
    this gives 0.11, 0.59 and 0.93 for (x, t_x, n) = (0, 0, 6), (2, 4, 6)
    and (6, 6, 6) (FHS10).

    Returns
    -------
    numpy.ndarray
    """
    x, n_opp = np.asarray(x, dtype=float), np.asarray(n_opp, dtype=float)
    log_l = bgbb_log_likelihood(x, t_x, n_opp, alpha, beta, gamma, delta)
    return np.exp(
        betaln(alpha + x, beta + n_opp - x)
        - betaln(alpha, beta)
        + betaln(gamma, delta + n_opp + 1.0)
        - betaln(gamma, delta)
        - log_l
    )


#: ``|gamma - 1|`` below which the closed form of :func:`_survival_sum` is
#: replaced by its finite sum: the closed form divides ``-expm1(d)`` by
#: ``gamma - 1`` with ``d`` of the same order, so its relative error grows like
#: 1e-16 (ln Gamma magnitudes ~100) / |gamma - 1|, 1e-11 at the threshold.
_GAMMA_NEAR_ONE = 1e-3


def _survival_sum(n0, m, gamma, delta):
    """``sum_(i=1)^m B(gamma, delta + n0 + i) / B(gamma, delta)``, expected alive opportunities.

    Closed form (the telescoping sum behind FHS10 eqs. 9 and 13):
    ``delta / (gamma - 1) Gamma(gamma + delta) / Gamma(1 + delta)
    [Gamma(1 + delta + n0) / Gamma(gamma + delta + n0)
    - Gamma(1 + delta + n0 + m) / Gamma(gamma + delta + n0 + m)]``, and the sum
    itself for ``|gamma - 1| < 1e-3``.
    """
    n0, m = np.broadcast_arrays(np.asarray(n0, dtype=float), np.asarray(m, dtype=float))
    if abs(gamma - 1.0) < _GAMMA_NEAR_ONE:
        out = np.zeros(n0.shape)
        top = int(m.max()) if m.size else 0
        for i in range(1, top + 1):
            out += np.where(
                i <= m, np.exp(betaln(gamma, delta + n0 + i) - betaln(gamma, delta)), 0.0
            )
        return out
    g1 = gammaln(1.0 + delta + n0) - gammaln(gamma + delta + n0)
    g2 = gammaln(1.0 + delta + n0 + m) - gammaln(gamma + delta + n0 + m)
    lead = np.log(delta) + gammaln(gamma + delta) - gammaln(1.0 + delta) + g1
    return np.exp(lead) * (-np.expm1(g2 - g1) / (gamma - 1.0))


def bgbb_expected_purchases(m, x, t_x, n_opp, alpha, beta, gamma, delta):
    """Expected transactions in the next ``m`` opportunities given the history.

    FHS10 eq. (13):
    ``E[X(n, n + m) | x, t_x, n] = 1 / L B(alpha + x + 1, beta + n - x) / B(alpha, beta)
    delta / (gamma - 1) Gamma(gamma + delta) / Gamma(1 + delta)
    [Gamma(1 + delta + n) / Gamma(gamma + delta + n)
    - Gamma(1 + delta + n + m) / Gamma(gamma + delta + n + m)]``
    (the bracket by :func:`_survival_sum`, finite at ``gamma = 1``).

    Returns
    -------
    numpy.ndarray
    """
    x, n_opp = np.asarray(x, dtype=float), np.asarray(n_opp, dtype=float)
    log_l = bgbb_log_likelihood(x, t_x, n_opp, alpha, beta, gamma, delta)
    front = np.exp(betaln(alpha + x + 1.0, beta + n_opp - x) - betaln(alpha, beta) - log_l)
    return front * _survival_sum(n_opp, m, gamma, delta)


def bgbb_expected_purchases_new_customer(n_opp, alpha, beta, gamma, delta):
    """Expected transactions of a new customer in the first ``n`` opportunities.

    FHS10 eq. (9): ``E[X(n)] = alpha / (alpha + beta) delta / (gamma - 1)
    [1 - Gamma(gamma + delta) Gamma(1 + delta + n) / (Gamma(gamma + delta + n) Gamma(1 + delta))]``.

    Returns
    -------
    numpy.ndarray
    """
    n_opp = np.asarray(n_opp, dtype=float)
    return alpha / (alpha + beta) * _survival_sum(0.0, n_opp, gamma, delta)


#: Terms of the sum in :func:`bgbb_probability_no_purchase` added one by one;
#: beyond, the sum is replaced by an integral (midpoint rule, see there).
_EXACT_TERMS = 200
_LAGUERRE = roots_laguerre(32)


def _log_buy_term(k, x, n_opp, alpha, beta, gamma, delta):
    """``ln[B(alpha + x + 1, beta + n - x + k - 1) B(gamma, delta + n + k)]``, real ``k >= 1``."""
    return betaln(alpha + x + 1.0, beta + n_opp - x + k - 1.0) + betaln(gamma, delta + n_opp + k)


def _tail_integral(a, x, n_opp, alpha, beta, gamma, delta):
    """``int_a^inf exp(_log_buy_term(k)) dk`` by Gauss-Laguerre.

    The term decays like ``k ** -rho``, ``rho = alpha + x + 1 + gamma``
    (both beta functions are power laws in ``k``); with ``k = a e^(u / lam)``,
    ``lam = rho - 1``, the integrand is ``e^-u`` times a factor that tends to
    a constant, integrated by 32-point Gauss-Laguerre.
    """
    u, wts = _LAGUERRE
    lam = alpha + x + gamma  # rho - 1 > 0
    k = a[..., None] * np.exp(u / lam[..., None])
    log_g = (
        _log_buy_term(k, x[..., None], n_opp[..., None], alpha, beta, gamma, delta)
        + u / lam[..., None]
        + u
    )
    return a / lam * (np.exp(log_g) @ wts)


def bgbb_probability_no_purchase(m, x, t_x, n_opp, alpha, beta, gamma, delta):
    """Probability of no transaction in the next ``m`` opportunities given the history.

    From the model's assumptions ([FHS10] sec. 2): alive at ``n`` with
    ``(p, theta)``, the first transaction after ``n`` is at ``n + k`` with
    probability ``(1 - theta) ** k (1 - p) ** (k - 1) p``. Given the history and
    alive at ``n``, ``p ~ Beta(alpha + x, beta + n - x)`` and
    ``theta ~ Beta(gamma, delta + n)`` independently (the alive term of eq.
    5), and multiplying by ``P(alive at n)``:
    ``P(no transaction) = 1 - 1 / L sum_(k=1)^m
    B(alpha + x + 1, beta + n - x + k - 1) / B(alpha, beta)
    B(gamma, delta + n + k) / B(gamma, delta)``.

    ``m`` counts whole opportunities (non-integer values are floored;
    ``inf`` gives the probability of never transacting again). The first
    200 terms are added exactly; the rest, a power law in ``k``, by the
    midpoint rule ``sum_(k=K+1)^m g(k) ~ int_(K+1/2)^(m+1/2) g(k) dk``, whose
    relative error is about ``rho ** 2 / (24 K ** 2) < 1e-4`` of a remainder
    that is itself below ``K ** (1 - rho) ~ 1e-4`` of the sum (rho > 2 for
    the donations data): about 1e-8 at worst, far less for larger ``x``.

    Returns
    -------
    numpy.ndarray
        In [0, 1], 1 at ``m < 1``, non-increasing in ``m``.
    """
    m, x, t_x, n_opp = np.broadcast_arrays(
        *(np.asarray(v, dtype=float) for v in (m, x, t_x, n_opp))
    )
    m = np.floor(m)
    log_l = bgbb_log_likelihood(x, t_x, n_opp, alpha, beta, gamma, delta)
    const = -betaln(alpha, beta) - betaln(gamma, delta) - log_l
    buy = np.zeros(m.shape)
    top = int(min(m.max(), _EXACT_TERMS)) if m.size else 0
    for k in range(1, top + 1):
        term = np.exp(_log_buy_term(k, x, n_opp, alpha, beta, gamma, delta) + const)
        buy += np.where(k <= m, term, 0.0)
    far = m > _EXACT_TERMS
    if far.any():
        xf, nf, mf = x[far], n_opp[far], m[far]
        args = (xf, nf, alpha, beta, gamma, delta)
        start = np.full(xf.shape, _EXACT_TERMS + 0.5)
        rest = _tail_integral(start, *args)
        finite = np.isfinite(mf)
        if finite.any():
            end = mf[finite] + 0.5
            rest[finite] -= _tail_integral(end, *(v[finite] for v in args[:2]), *args[2:])
        buy[far] += np.exp(const[far]) * rest
    return np.clip(1.0 - buy, 0.0, 1.0)


def bgbb_probability_of_purchases(x, n_opp, alpha, beta, gamma, delta):
    """Probability that a new customer makes exactly ``x`` transactions in ``n`` opportunities.

    FHS10 eq. (7): ``P(X(n) = x) = C(n, x) B(alpha + x, beta + n - x) / B(alpha, beta)
    B(gamma, delta + n) / B(gamma, delta) + sum_(i=x)^(n-1) C(i, x)
    B(alpha + x, beta + i - x) / B(alpha, beta) B(gamma + 1, delta + i) / B(gamma, delta)``.

    Returns
    -------
    numpy.ndarray
    """
    x, n_opp = np.broadcast_arrays(np.asarray(x, dtype=float), np.asarray(n_opp, dtype=float))
    const = -betaln(alpha, beta) - betaln(gamma, delta)

    def log_choose(nn, k):
        return gammaln(nn + 1.0) - gammaln(k + 1.0) - gammaln(nn - k + 1.0)

    with np.errstate(invalid="ignore"):
        out = np.where(
            x <= n_opp,
            np.exp(
                log_choose(n_opp, x)
                + betaln(alpha + x, beta + n_opp - x)
                + betaln(gamma, delta + n_opp)
                + const
            ),
            0.0,
        )
        top = int(n_opp.max()) if n_opp.size else 0
        for i in range(top):
            use = (i >= x) & (i < n_opp)
            term = np.exp(
                log_choose(i, np.minimum(x, i))
                + betaln(alpha + x, beta + np.maximum(i - x, 0.0))
                + betaln(gamma + 1.0, delta + i)
                + const
            )
            out = out + np.where(use, term, 0.0)
    return out


def bgbb_count_pmf_if_alive(m: int, x, n_opp, alpha, beta, gamma, delta) -> np.ndarray:
    """``P(X(n, n + m) = k | alive at n + 1, x, n)`` for ``k = 0..m``.

    Alive at opportunity ``n + 1`` (the state of :func:`bgbb_probability_alive`,
    FHS10 eq. 11) after ``x`` transactions in ``n`` opportunities,
    ``p ~ Beta(alpha + x, beta + n - x)`` and ``theta ~ Beta(gamma, delta + n + 1)``
    independently (the alive term of eq. 5 extended by one survived
    opportunity). The customer transacts at opportunity ``n + 1`` with
    probability ``p``, then survives each later one with probability
    ``1 - theta``: the number ``L`` of the ``m`` future opportunities at which he
    is alive has ``P(L = j) = B(gamma + 1, delta' + j - 1) / B(gamma, delta')``
    for ``1 <= j < m`` and ``P(L = m) = B(gamma, delta' + m - 1) / B(gamma, delta')``
    (``delta' = delta + n + 1``), and given ``L = j`` the count is beta-binomial:

        P(k) = sum_(j = max(k, 1))^m P(L = j) C(j, k)
               B(alpha + x + k, beta + n - x + j - k) / B(alpha + x, beta + n - x).

    Exact, ``O(m ** 2)`` terms. Times ``P(alive at n + 1)`` its mean is FHS10
    eq. (13) (:func:`bgbb_expected_purchases`).

    Parameters
    ----------
    m : int
        Future opportunities (>= 0).
    x, n_opp, alpha, beta, gamma, delta : array_like
        Broadcast together to the shape ``S`` of the result's leading axes.

    Returns
    -------
    numpy.ndarray
        Shape ``S + (m + 1,)``.
    """
    x, n_opp, alpha, beta, gamma, delta = np.broadcast_arrays(
        *(np.asarray(v, dtype=float) for v in (x, n_opp, alpha, beta, gamma, delta))
    )
    m = int(m)
    a1, b1, d1 = (alpha + x)[..., None], (beta + n_opp - x)[..., None], (delta + n_opp + 1.0)
    g, d1 = gamma[..., None], d1[..., None]
    out = np.zeros((*x.shape, m + 1))
    if m == 0:
        out[..., 0] = 1.0
        return out
    log_b = betaln(a1, b1)
    log_bg = betaln(g, d1)
    for j in range(1, m + 1):
        if j < m:
            log_pl = betaln(g + 1.0, d1 + (j - 1.0)) - log_bg
        else:
            log_pl = betaln(g, d1 + (m - 1.0)) - log_bg
        k = np.arange(j + 1, dtype=float)
        log_bb = (
            gammaln(j + 1.0) - gammaln(k + 1.0) - gammaln(j - k + 1.0)
            + betaln(a1 + k, b1 + (j - k)) - log_b
        )  # fmt: skip
        out[..., : j + 1] += np.exp(log_pl + log_bb)
    return out
