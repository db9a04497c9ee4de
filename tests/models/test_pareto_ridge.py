"""The Pareto/NBD likelihood on a degenerate fit's ridges, against the limits' closed forms.

When ``r`` and ``alpha`` run to infinity at a fixed ``lambda = r / alpha`` the
purchase rates lose their heterogeneity (Poisson purchases at ``lambda``); when
``s`` and ``beta`` do so at ``mu = s / beta``, every lifetime is exponential with
rate ``mu``. Integrating the individual-level likelihood (Fader, Hardie & Lee
2005, note 009, eq. 3; Schmittlein, Morrison & Colombo 1987, sec. 2)

    L(lambda, mu) = lambda^x e^(-(lambda + mu) T) + lambda^x mu int_(t_x)^T e^(-(lambda + mu) v) dv

over the gamma that remains gives the two limits (:func:`_purchase_limit`,
:func:`_dropout_limit`), each a smooth integral over ``[t_x, T]`` evaluated by
Gauss-Legendre quadrature (its integrand is analytic on a Bernstein ellipse of
parameter > 2 around the interval: 64 nodes are exact to rounding). The
likelihood tends to them at a rate ``1 / r`` (``1 / s``); with
``r ln(alpha)`` of order ``3e13`` at ``r = 1e12`` it must keep every digit of the
O(1e4) total to get there.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy.integrate import quad
from scipy.optimize import minimize
from scipy.special import gammaln, roots_legendre

from rfmml.models import ParetoNBD, _scoring, simulate_pareto_nbd
from rfmml.models import _formulas_pareto as P

#: CDNOW's purchase and dropout parameters (Fader, Hardie & Lee 2005, weeks)
R, ALPHA, S, BETA = 0.553, 10.58, 0.606, 11.67
LAM = 0.032  # CDNOW's repeat purchases per week of age
MU = 0.05


def _gauss_legendre(t_x, T, log_integrand):
    """``ln int_(t_x)^T exp(log_integrand(v)) dv`` per row (``-inf`` where ``t_x = T``)."""
    y, w = roots_legendre(64)
    half = 0.5 * (T - t_x)[:, None]
    v = t_x[:, None] + half * (1.0 + y)
    with np.errstate(divide="ignore"):
        return np.log((half * w * np.exp(log_integrand(v))).sum(axis=1))


def _purchase_limit(x, t_x, T, lam, s, beta):
    """``ln L`` as ``r, alpha -> inf`` at ``r / alpha = lam``: mu ~ Gamma(s, beta).

    ``x ln lam - lam T + ln[(1 + T / beta) ** -s
    + (s / beta) int_(t_x)^T e^(lam (T - v)) (1 + v / beta) ** -(s + 1) dv]``.
    """
    Tc = T[:, None]
    dead = np.log(s / beta) + _gauss_legendre(
        t_x, T, lambda v: lam * (Tc - v) - (s + 1.0) * np.log1p(v / beta)
    )
    return x * np.log(lam) - lam * T + np.logaddexp(-s * np.log1p(T / beta), dead)


def _dropout_limit(x, t_x, T, r, alpha, mu):
    """``ln L`` as ``s, beta -> inf`` at ``s / beta = mu``: lambda ~ Gamma(r, alpha).

    ``ln Gamma(r + x) - ln Gamma(r) - x ln alpha + ln[e^(-mu T) (1 + T / alpha) ** -(r + x)
    + mu int_(t_x)^T e^(-mu v) (1 + v / alpha) ** -(r + x) dv]``.
    """
    p = (r + x)[:, None]
    dead = np.log(mu) + _gauss_legendre(t_x, T, lambda v: -mu * v - p * np.log1p(v / alpha))
    alive = -mu * T - (r + x) * np.log1p(T / alpha)
    return gammaln(r + x) - gammaln(r) - x * np.log(alpha) + np.logaddexp(alive, dead)


@pytest.fixture(scope="module")
def cdnow(cdnow_summary):
    x, t_x, T = (cdnow_summary[c].to_numpy(dtype=float) for c in ("frequency", "recency", "T"))
    weights = np.linspace(1.0, 3.0, len(x))
    return x, t_x, T, weights, P.pareto_nbd_prepare(x, t_x, T, weights)


RIDGES = {
    # (theta at scale k, the limit per customer, the model's distance from it per unit weight)
    "purchase": (
        lambda k: (k, k / LAM, S, BETA),
        lambda x, t_x, T: _purchase_limit(x, t_x, T, LAM, S, BETA),
        lambda x, T, k: (x**2 + (LAM * T) ** 2) / k,
    ),
    "dropout": (
        lambda k: (R, ALPHA, k, k / MU),
        lambda x, t_x, T: _dropout_limit(x, t_x, T, R, ALPHA, MU),
        lambda x, T, k: (1.0 + MU * T) ** 2 / k,
    ),
}


@pytest.mark.parametrize("ridge", list(RIDGES))
def test_likelihood_keeps_its_digits_on_the_ridge(ridge, cdnow):
    x, t_x, T, weights, data = cdnow
    theta_at, limit_of, distance = RIDGES[ridge]
    limit = limit_of(x, t_x, T)
    scaled_gaps = []
    for k in [1e6, 1e9, 1e12]:
        theta = theta_at(k)
        total, grad = P.pareto_nbd_total_log_likelihood_and_gradient(*theta, data)
        # r ln(alpha) alone is 3e13 at k = 1e12: 1e-7 is 1e-11 of the total
        bound = 1e-7 + float(weights @ distance(x, T, k))
        assert total == pytest.approx(float(weights @ limit), abs=bound), k
        scaled_gaps.append(k * (total - float(weights @ limit)))
        assert np.all(np.isfinite(grad))
        per_customer = P.pareto_nbd_log_likelihood(x, t_x, T, *theta)
        gap = np.abs(per_customer - limit) - distance(x, T, k)
        assert gap.max() <= 1e-9, (k, float(gap.max()))
        assert float(weights @ per_customer) == pytest.approx(total, rel=1e-13)
    # the gap closes like 1 / k: at k = 1e12 it is ~7e-9 and must be right to ~1e-10,
    # 1e-14 of the total
    assert scaled_gaps[1:] == pytest.approx([scaled_gaps[0]] * 2, rel=0.02)


@pytest.mark.parametrize(
    "theta",
    [
        (R, ALPHA, S, BETA),  # CDNOW: the hypergeometric series everywhere
        (R, 200.0, S, 3.0),  # alpha / beta = 67: scipy's 2F1, and for x >= 20 the trapezoid rule
        (2.0, 1.0, 20.0, 40.0),  # beta / alpha = 40, s + 1 > 20: the trapezoid rule
        (1e6, 1e6 / LAM, S, BETA),
        (1e12, 1e12 / LAM, S, BETA),
        (R, ALPHA, 1e12, 1e12 / MU),
        (1e9, 1e9 / LAM, 1e9, 1e9 / MU),
    ],
)
def test_gradient_in_log_parameters_matches_central_differences(theta, cdnow):
    # in log-parameters (those of the fit): on the ridge d/dr is ~1e-20 and any
    # check in r itself passes trivially, while r d/dr is of order 1e3
    *_, data = cdnow
    theta = np.array(theta)
    _, grad = P.pareto_nbd_total_log_likelihood_and_gradient(*theta, data)
    h = 1e-5
    for i in range(4):
        up, down = theta.copy(), theta.copy()
        up[i] *= np.exp(h)
        down[i] *= np.exp(-h)
        fd = (
            P.pareto_nbd_total_log_likelihood_and_gradient(*up, data)[0]
            - P.pareto_nbd_total_log_likelihood_and_gradient(*down, data)[0]
        ) / (2 * h)
        assert theta[i] * grad[i] == pytest.approx(fd, rel=1e-6, abs=1e-5), i


def test_fit_without_heterogeneity_reaches_the_limits_optimum():
    # Poisson purchases at 0.5 a week (r = 1e12): on this draw the likelihood rises
    # towards r -> inf, where the model is the 3-parameter limit of _purchase_limit
    lam, s, beta = 0.5, 0.8, 12.0
    d = simulate_pareto_nbd(1000, 52.0, {"r": 1e12, "alpha": 1e12 / lam, "s": s, "beta": beta}, 2)
    x, t_x, T = (d[c].to_numpy(dtype=float) for c in ("frequency", "recency", "T"))
    with pytest.warns(UserWarning, match="not positive definite"):  # flat along the ridge
        model = ParetoNBD().fit(d)
    best = minimize(
        lambda z: -_purchase_limit(x, t_x, T, *np.exp(z)).sum(),
        np.log([lam, s, beta]),
        method="Nelder-Mead",
        options={"xatol": 1e-9, "fatol": 1e-10, "maxiter": 4000},
    )
    r, alpha, s_fit, beta_fit = model.params_.to_numpy()
    assert model.convergence_["success"] and np.isfinite(model.log_likelihood_)
    assert r > 1e9  # on the ridge, not stopped short of it
    assert model.log_likelihood_ >= -best.fun - 1e-6
    np.testing.assert_allclose([r / alpha, s_fit, beta_fit], np.exp(best.x), rtol=1e-4)


def test_probability_alive_tends_to_the_limit_on_the_purchase_ridge():
    # P(alive) = P1 / (P1 + P2 - P3) from the same terms: in the limit
    # (1 + T / beta) ** -s over that plus the dropout integral of _purchase_limit;
    # whole-week histories so that the model's compiled pair tables are used too
    rng = np.random.default_rng(4)
    T = np.floor(rng.uniform(1.0, 78.0, 1_000))
    x = rng.integers(0, 30, T.size).astype(float)
    t_x = np.where(x > 0, np.floor(rng.uniform(0.0, 1.0, T.size) * T), 0.0)
    Tc = T[:, None]
    log_dead = np.log(S / BETA) + _gauss_legendre(
        t_x, T, lambda v: LAM * (Tc - v) - (S + 1.0) * np.log1p(v / BETA)
    )
    log_alive = -S * np.log1p(T / BETA)
    limit = np.exp(log_alive - np.logaddexp(log_alive, log_dead))
    summary = pd.DataFrame({"frequency": x, "recency": t_x, "T": T})
    for k in [1e6, 1e12]:
        theta = (k, k / LAM, S, BETA)
        model = ParetoNBD()
        model.params_ = pd.Series(dict(zip(model.param_names, theta, strict=True)))
        model.freq_ = None
        assert _scoring.pareto_alive_rows(x, t_x, T, theta) is not _scoring.NO_TABLE
        for alive in (
            P.pareto_nbd_probability_alive(x, t_x, T, *theta),
            model.probability_alive(summary).to_numpy(),
        ):
            # the model is 1e-5 / (k / 1e6) from its limit; before, 3e-3 at k = 1e12
            np.testing.assert_allclose(alive, limit, rtol=0.0, atol=1e-5 * 1e6 / k + 1e-12)


def test_probability_no_purchase_tends_to_the_limit_on_the_purchase_ridge():
    # alive at T, mu ~ Gamma(s, beta + T): P(a purchase in (T, T + t] | alive) =
    # E[lam / (lam + mu) (1 - e^(-(lam + mu) t))], by quadrature over the gamma density
    x, t_x, T, t = np.array([0.0, 2.0, 10.0]), np.array([0.0, 20.0, 30.0]), np.full(3, 40.0), 10.0
    buy = np.array(
        [
            quad(
                lambda m, b=BETA + Ti: LAM / (LAM + m) * -np.expm1(-(LAM + m) * t)
                * np.exp(S * np.log(b) + (S - 1.0) * np.log(m) - b * m - gammaln(S)),
                0.0, np.inf, epsabs=0.0, epsrel=1e-12, limit=400,
            )[0]
            for Ti in T
        ]
    )  # fmt: skip
    for k in [1e6, 1e12]:
        theta = (k, k / LAM, S, BETA)
        limit = 1.0 - P.pareto_nbd_probability_alive(x, t_x, T, *theta) * buy
        none = P.pareto_nbd_probability_no_purchase(t, x, t_x, T, *theta)
        # 2e-6 at k = 1e6 (the model's distance from its limit); before, 1e-3 at 1e12
        np.testing.assert_allclose(none, limit, rtol=0.0, atol=1e-5 * 1e6 / k + 1e-11)


def _nb_over_lifetime(n, t, log_nb, log_survival, log_density):
    """``P(X(t) = n)``: counts ``exp(log_nb(n, v))`` over the time alive, ``min(tau, t)``.

    ``NB(n; t) S(t) + int_0^t g(v) NB(n; v) dv`` (note 009 eq. 29's integral form) with the
    lifetime's survival ``S`` and density ``g``; the integral by 64-node Gauss-Legendre (the
    integrand is analytic on a Bernstein ellipse of parameter > 2 around ``[0, t]``).
    """
    y, w = roots_legendre(64)
    v = 0.5 * t * (1.0 + y)
    nc = n[:, None]
    dead = (0.5 * t * w * np.exp(log_density(v) + log_nb(nc, v))).sum(axis=1)
    return np.exp(log_nb(n, t) + log_survival(t)) + dead


def _poisson_over_lomax(n, t):
    """Purchase ridge: Poisson counts at ``LAM``, lifetime Lomax with ``S, BETA``."""
    return _nb_over_lifetime(
        n,
        t,
        lambda k, v: k * np.log(LAM * v) - LAM * v - gammaln(k + 1.0),
        lambda v: -S * np.log1p(v / BETA),
        lambda v: np.log(S / BETA) - (S + 1.0) * np.log1p(v / BETA),
    )


def _nbd_over_exponential(n, t):
    """Dropout ridge: NBD counts with ``R, ALPHA``, lifetime exponential at ``MU``."""

    def log_nb(k, v):
        return (
            gammaln(R + k) - gammaln(R) - gammaln(k + 1.0)
            + k * np.log(v / (ALPHA + v)) - R * np.log1p(v / ALPHA)
        )  # fmt: skip

    return _nb_over_lifetime(n, t, log_nb, lambda v: -MU * v, lambda v: np.log(MU) - MU * v)


@pytest.mark.parametrize(
    "theta_at, limit",
    [
        (lambda k: (k, k / LAM, S, BETA), _poisson_over_lomax),
        (lambda k: (R, ALPHA, k, k / MU), _nbd_over_exponential),
    ],
    ids=["purchase", "dropout"],
)
def test_probability_of_purchases_tends_to_the_limit_on_the_ridge(theta_at, limit):
    # the new customer's count distribution; before, Gamma-function differences of order
    # r ln r and r ln(alpha) left it 6e-4 (purchase) and 1e-3 (dropout) off at k = 1e12
    n, t = np.arange(41.0), 52.0
    lim = limit(n, t)
    assert lim.sum() == pytest.approx(1.0, abs=1e-4)  # nearly all the mass below 41
    scaled = []
    for k in [1e6, 1e9, 1e12]:
        pmf = P.pareto_nbd_probability_of_purchases(n, t, *theta_at(k))
        gap = np.abs(pmf - lim).max()
        assert gap <= 0.3 / k + 1e-13, (k, gap)  # the model is ~0.14 / k from its limit
        scaled.append(k * gap)
    # the gap closes like 1 / k: at k = 1e12 it is ~1e-13 and must be right to ~5e-15
    assert scaled[1:] == pytest.approx([scaled[0]] * 2, rel=0.05)
    model = ParetoNBD()
    model.params_ = pd.Series(dict(zip(model.param_names, theta_at(1e12), strict=True)))
    np.testing.assert_allclose(model.probability_of_purchases(n, t), lim, rtol=0, atol=1e-12)


@pytest.mark.parametrize("ridge", ["purchase", "dropout"])
def test_expected_purchases_tend_to_the_limits_on_the_ridge(ridge):
    # E[X(t)] of a new customer and E[Y(t) | x, t_x, T] = P(alive) x E[Y(t) | alive] against
    # the limits: the rate (lam or (r + x) / (alpha + T)) times the expected time alive in
    # (T, T + t], a Lomax or an exponential lifetime; P(alive) from the limits' likelihood
    # terms (_purchase_limit, _dropout_limit)
    rng = np.random.default_rng(7)
    T = np.floor(rng.uniform(1.0, 78.0, 400))
    x = rng.integers(0, 30, T.size).astype(float)
    t_x = np.where(x > 0, np.floor(rng.uniform(0.0, 1.0, T.size) * T), 0.0)
    t, horizons, Tc = 52.0, np.array([1.0, 10.0, 52.0, 104.0]), T[:, None]
    if ridge == "purchase":
        theta_at = lambda k: (k, k / LAM, S, BETA)  # noqa: E731
        new = LAM * BETA / (S - 1.0) * -np.expm1(-(S - 1.0) * np.log1p(horizons / BETA))
        log_dead = np.log(S / BETA) + _gauss_legendre(
            t_x, T, lambda v: LAM * (Tc - v) - (S + 1.0) * np.log1p(v / BETA)
        )
        log_alive = -S * np.log1p(T / BETA)
        factor = LAM * (BETA + T) / (S - 1.0) * -np.expm1(-(S - 1.0) * np.log1p(t / (BETA + T)))
    else:
        theta_at = lambda k: (R, ALPHA, k, k / MU)  # noqa: E731
        new = R / ALPHA * -np.expm1(-MU * horizons) / MU
        p = (R + x)[:, None]
        log_dead = np.log(MU) + _gauss_legendre(
            t_x, T, lambda v: MU * (Tc - v) - p * np.log1p((v - Tc) / (ALPHA + Tc))
        )
        log_alive = np.zeros(T.size)  # both terms relative to e^(-MU T) (1 + T / alpha) ** -(r + x)
        factor = (R + x) / (ALPHA + T) * -np.expm1(-MU * t) / MU
    expected = np.exp(log_alive - np.logaddexp(log_alive, log_dead)) * factor
    summary = pd.DataFrame({"frequency": x, "recency": t_x, "T": T})
    scaled = []
    for k in [1e6, 1e9, 1e12]:
        theta = theta_at(k)
        model = ParetoNBD()
        model.params_ = pd.Series(dict(zip(model.param_names, theta, strict=True)))
        model.freq_ = None
        gaps = [
            np.max(np.abs(got / want - 1.0))
            for got, want in (
                (P.pareto_nbd_expected_purchases_new_customer(horizons, *theta), new),
                (P.pareto_nbd_expected_purchases(t, x, t_x, T, *theta), expected),
                (model.expected_purchases(summary, t).to_numpy(), expected),  # compiled
            )
        ]
        # relative distances from the limits: ~0.9 / k (new customer; 0 on the purchase
        # ridge, where only r / alpha enters) and ~30 / k (given the history)
        assert gaps[0] <= 1.0 / k + 1e-15, (k, gaps[0])
        assert max(gaps[1:]) <= 40.0 / k + 1e-13, (k, gaps[1:])
        scaled.append(k * gaps[2])
    # and they close like 1 / k: at k = 1e12 right to ~1e-13 of the expectation
    assert scaled[1:] == pytest.approx([scaled[0]] * 2, rel=0.02)
