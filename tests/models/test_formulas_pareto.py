"""Pareto/NBD formulas: published values, lifetimes at fixed parameters, stability, properties."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
from hypothesis import given
from hypothesis import strategies as st
from lifetimes import ParetoNBDFitter
from scipy.integrate import dblquad, quad
from scipy.special import gammaln

from rfmml.models import _formulas_pareto as P

#: Fader, Hardie & Lee (2005), CDNOW sample, weeks
CDNOW = {"r": 0.553, "alpha": 10.58, "s": 0.606, "beta": 11.67}
#: the same with alpha > beta, for the other branch of the hypergeometric term
SWAPPED = {"r": 0.553, "alpha": 11.67, "s": 0.606, "beta": 10.58}
params = st.fixed_dictionaries(
    {
        "r": st.floats(0.05, 5),
        "alpha": st.floats(0.1, 50),
        "s": st.floats(0.05, 5),
        "beta": st.floats(0.1, 50),
    }
)


def _cdnow(cdnow_summary):
    return tuple(cdnow_summary[c].to_numpy() for c in ("frequency", "recency", "T"))


def _lifetimes(p: dict) -> ParetoNBDFitter:
    fitter = ParetoNBDFitter()
    fitter.params_ = pd.Series(p)
    return fitter


def _reference_log_likelihood(x, t_x, T, r, alpha, s, beta):
    """Note 009 eq. (18) by adaptive quadrature of its dropout integral, in logs.

    ``int_(t_x)^T (alpha + v) ** -(r + x) (beta + v) ** -(s + 1) dv`` in
    ``u = ln(alpha + v)``, relative to its value at ``t_x`` (its maximum),
    with break points where the integrand falls by e^-k.
    """

    def log_g(u):
        v = np.exp(u) - alpha
        return -(r + x) * u - (s + 1.0) * np.log(beta + v) + u

    u0, u1 = np.log(alpha + t_x), np.log(alpha + T)
    top = log_g(u0)
    points = [p for p in u0 + np.arange(1, 60) / (r + x + s) if p < u1]
    integral = (
        quad(lambda u: np.exp(log_g(u) - top), u0, u1, points=points or None, limit=500,
             epsabs=0.0, epsrel=1e-13)[0]
        if u1 > u0
        else 0.0
    )  # fmt: skip
    alive = -(r + x) * np.log(alpha + T) - s * np.log(beta + T)
    dead = np.log(s) + top + np.log(integral) if integral > 0 else -np.inf
    front = gammaln(r + x) - gammaln(r) + r * np.log(alpha) + s * np.log(beta)
    return front + np.logaddexp(alive, dead)


def test_log_likelihood_matches_fader_hardie_lee_2005(cdnow_summary):
    # FHL05 report -9595.0 for the CDNOW sample at their rounded estimates; the BTYD
    # walkthrough gives -9594.98 at the full-precision optimum. At the rounded
    # parameters the total must round to -9595.0 (half a unit in the last digit).
    total = P.pareto_nbd_log_likelihood(*_cdnow(cdnow_summary), **CDNOW).sum()
    assert total == pytest.approx(-9595.0, abs=0.05)


def test_customer_predictions_match_fader_hardie_lee_2005():
    # x = 26, t_x = 30.86, T = 31: E[Y(52)] = 25.46, P(alive) = 0.998 (published decimals)
    e = P.pareto_nbd_expected_purchases(52.0, 26, 30.86, 31.0, **CDNOW)
    alive = P.pareto_nbd_probability_alive(26, 30.86, 31.0, **CDNOW)
    assert e == pytest.approx(25.46, abs=0.005)
    assert alive == pytest.approx(0.998, abs=0.0005)


@pytest.mark.parametrize("p", [CDNOW, SWAPPED], ids=["alpha<beta", "alpha>beta"])
def test_agrees_with_lifetimes_at_fixed_parameters(cdnow_summary, p):
    x, t_x, T = _cdnow(cdnow_summary)
    theta = tuple(p.values())
    fitter = _lifetimes(p)
    ours = P.pareto_nbd_log_likelihood(x, t_x, T, **p)
    theirs = ParetoNBDFitter._conditional_log_likelihood(theta, x, t_x, T)
    # same closed form, different arrangement: rounding only (|ln L| < 100)
    np.testing.assert_allclose(ours, theirs, rtol=1e-12, atol=1e-11)
    np.testing.assert_allclose(
        P.pareto_nbd_probability_alive(x, t_x, T, **p),
        fitter.conditional_probability_alive(x, t_x, T),
        rtol=1e-10,
    )
    np.testing.assert_allclose(
        P.pareto_nbd_expected_purchases(10.0, x, t_x, T, **p),
        fitter.conditional_expected_number_of_purchases_up_to_time(10.0, x, t_x, T),
        rtol=1e-10,
    )
    t = np.array([1.0, 10.0, 52.0])
    np.testing.assert_allclose(
        P.pareto_nbd_expected_purchases_new_customer(t, **p),
        fitter.expected_number_of_purchases_up_to_time(t),
        rtol=1e-12,
    )


@pytest.mark.parametrize(
    "x, t_x, T, p, lifetimes_nan",
    [
        (100_000, 2e5, 2e5, CDNOW, True),
        (100_000, 2e5, 2e5, SWAPPED, True),
        (300, 1.0, 5000.0, {"r": 2.0, "alpha": 1.0, "s": 0.5, "beta": 100.0}, True),
        (300, 1.0, 5000.0, {"r": 0.5, "alpha": 100.0, "s": 2.0, "beta": 1.0}, True),
        (1000, 900.0, 1000.0, CDNOW, False),
    ],
)
def test_log_likelihood_is_finite_where_lifetimes_is_not(x, t_x, T, p, lifetimes_nan):
    theta = tuple(p.values())
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        theirs = ParetoNBDFitter._conditional_log_likelihood(
            theta, np.array([x]), np.array([t_x]), np.array([T])
        )[0]
    ours = P.pareto_nbd_log_likelihood(x, t_x, T, **p)
    reference = _reference_log_likelihood(x, t_x, T, *theta)
    assert np.isfinite(ours)
    # relative accuracy of the adaptive quadrature (1e-13) and rounding of terms of size |ln L|
    assert ours == pytest.approx(reference, rel=1e-11)
    assert np.isnan(theirs) == lifetimes_nan


@pytest.mark.parametrize(
    "u, A, B, p, q",
    [
        (0.0, 0.1, 50.0, 0.5, 1.6),
        (0.0, 50.0, 0.1, 0.5, 1.6),
        (3.0, 50.0, 0.1, 30.5, 1.6),
        (0.0, 1e-3, 100.0, 2.0, 1.2),  # w close to 1: scipy 2F1 fallback
        (10.0, 10.0, 12.0, 40.0, 0.7),
    ],
)
def test_tail_integral_and_gradient(u, A, B, p, q):
    ref = quad(lambda v: (A + v) ** -p * (B + v) ** -q, u, np.inf, epsabs=0, epsrel=1e-13)[0]
    log_i, grad = P.pareto_log_tail_integral(np.array([u]), A, B, p, q, grad=True)
    # 1e-12 from the series; 1e-9 where w > 0.9 and c - b - 1 is an integer (the fourth
    # case), where scipy's 2F1 is averaged at c (1 +- 1e-9)
    assert log_i[0] == pytest.approx(np.log(ref), abs=1e-9 if A == 1e-3 else 1e-12)
    # central differences of ln I: truncation (1e-6)^2, rounding 1e-16 / 1e-6 relative
    args = [A, B, p, q]
    for i in range(4):
        up, down = list(args), list(args)
        up[i] *= 1 + 1e-6
        down[i] *= 1 - 1e-6
        fd = (
            P.pareto_log_tail_integral(np.array([u]), *up)[0]
            - P.pareto_log_tail_integral(np.array([u]), *down)[0]
        )[0] / (2e-6 * args[i])
        assert grad[i][0] == pytest.approx(fd, rel=1e-6, abs=1e-8)


def _log_tail_by_quadrature(u, A, B, p, q):
    """ln int_u^inf (A + v)^-p (B + v)^-q dv, scaled by the integrand at u (no overflow)."""

    def g(v):
        return -p * np.log(A + v) - q * np.log(B + v)

    top = g(u)
    rest = quad(lambda z: np.exp(g(u + z) - top), 0, np.inf, epsabs=0, epsrel=1e-13, limit=500)
    return top + np.log(rest[0])


@pytest.mark.parametrize(
    "u, A, B, p, q",
    [
        (100.0, 1000.0, 1.0, 400.0, 0.6),  # a heavy buyer (r + x = 400), alpha / beta = 1000
        (50.0, 1.0, 1000.0, 0.6, 350.5),
        (0.0, 2000.0, 2.0, 1000.0, 2.0),
        (10.0, 1e4, 1.0, 5000.0, 0.05),
    ],
)
def test_tail_integral_where_scipy_2f1_fails(u, A, B, p, q):
    """Large exponents with w near 1: scipy's 2F1 returns inf or nan there; the
    quadrature of Euler's integral takes over (value and gradient finite and right)."""
    log_i, grad = P.pareto_log_tail_integral(np.array([u]), A, B, p, q, grad=True)
    assert log_i[0] == pytest.approx(_log_tail_by_quadrature(u, A, B, p, q), rel=1e-12)
    # central differences of the direct quadrature: ln I is in the thousands, so its
    # rounding (~1e-13) over a step of 1e-5 relative bounds the oracle to ~1e-7
    args = [A, B, p, q]
    for i in range(4):
        up, down = list(args), list(args)
        up[i] *= 1 + 1e-5
        down[i] *= 1 - 1e-5
        fd = (_log_tail_by_quadrature(u, *up) - _log_tail_by_quadrature(u, *down)) / (
            2e-5 * args[i]
        )
        assert grad[i][0] == pytest.approx(fd, rel=1e-5, abs=1e-6)


def test_heavy_buyers_with_extreme_rate_ratio_are_finite():
    """x up to 10,000 with alpha / beta = 1000 (and 1 / 1000): P(alive), the
    likelihood and expected purchases stay finite and P(alive) within [0, 1]."""
    x = np.repeat([0.0, 50.0, 300.0, 1000.0, 10_000.0], 3)
    T_ = np.tile([10.0, 500.0, 50_000.0], 5)
    t_x = np.where(x > 0, 0.5 * T_, 0.0)
    for theta in [(2.0, 1000.0, 0.6, 1.0), (2.0, 1.0, 0.6, 1000.0)]:
        alive = P.pareto_nbd_probability_alive(x, t_x, T_, *theta)
        assert np.all(np.isfinite(alive)) and np.all((alive >= 0) & (alive <= 1))
        assert np.all(np.isfinite(P.pareto_nbd_log_likelihood(x, t_x, T_, *theta)))
        assert np.all(np.isfinite(P.pareto_nbd_expected_purchases(30.0, x, t_x, T_, *theta)))


@pytest.mark.parametrize("p", [CDNOW, SWAPPED], ids=["alpha<beta", "alpha>beta"])
def test_total_gradient_matches_central_differences(
    cdnow_summary, p, gradient_matches_central_differences
):
    x, t_x, T = _cdnow(cdnow_summary)
    data = P.pareto_nbd_prepare(x, t_x, T, np.ones(len(x)))
    theta = np.array(list(p.values()))
    total, _ = P.pareto_nbd_total_log_likelihood_and_gradient(*theta, data)
    assert total == pytest.approx(P.pareto_nbd_log_likelihood(x, t_x, T, **p).sum(), rel=1e-13)
    gradient_matches_central_differences(
        P.pareto_nbd_total_log_likelihood_and_gradient, theta, data
    )


def test_probability_no_purchase_matches_double_integral():
    # E[lambda / (lambda + mu) (1 - exp(-(lambda + mu) t))] over the alive posterior
    # Gamma(r + x, alpha + T) x Gamma(s, beta + T), by 2-d adaptive quadrature
    x, t_x, T, t = 3, 20.0, 30.0, 10.0
    r, alpha, s, beta = CDNOW.values()
    k1, b1, k2, b2 = r + x, alpha + T, s, beta + T

    def density(mu, lam):
        log_d = (
            k1 * np.log(b1) + (k1 - 1) * np.log(lam) - b1 * lam - gammaln(k1)
            + k2 * np.log(b2) + (k2 - 1) * np.log(mu) - b2 * mu - gammaln(k2)
        )  # fmt: skip
        return np.exp(log_d) * lam / (lam + mu) * -np.expm1(-(lam + mu) * t)

    buy = dblquad(density, 0, np.inf, 0, np.inf, epsabs=1e-12, epsrel=1e-10)[0]
    expected = 1.0 - P.pareto_nbd_probability_alive(x, t_x, T, **CDNOW) * buy
    # the double integral is good to ~1e-9 (its integrand is singular at mu = 0 for s < 1)
    assert P.pareto_nbd_probability_no_purchase(t, x, t_x, T, **CDNOW) == pytest.approx(
        expected, abs=1e-8
    )


def test_probability_of_purchases_is_a_distribution_with_the_right_mean():
    n = np.arange(400)
    for t in (5.0, 52.0):
        pmf = P.pareto_nbd_probability_of_purchases(n, t, **CDNOW)
        # quadrature tolerance 1e-12 relative per term; the tail beyond 400 is < 1e-15
        assert pmf.sum() == pytest.approx(1.0, abs=1e-10)
        assert n @ pmf == pytest.approx(
            P.pareto_nbd_expected_purchases_new_customer(t, **CDNOW), rel=1e-9
        )


def test_probability_no_purchase_limits():
    x, t_x, T = (
        np.array([0.0, 2.0, 26.0]),
        np.array([0.0, 5.0, 30.86]),
        np.array([10.0, 31.0, 31.0]),
    )
    assert np.all(P.pareto_nbd_probability_no_purchase(0.0, x, t_x, T, **CDNOW) == 1.0)
    never = P.pareto_nbd_probability_no_purchase(np.inf, x, t_x, T, **CDNOW)
    far = P.pareto_nbd_probability_no_purchase(1e12, x, t_x, T, **CDNOW)
    # I(1e12) ~ 1e12 ** -(r + s + x) is 1e-13 or less of I(0)
    np.testing.assert_allclose(never, far, atol=1e-9)
    assert np.all(never > 1.0 - P.pareto_nbd_probability_alive(x, t_x, T, **CDNOW))


@given(x=st.integers(0, 60), t_x=st.floats(0, 100), gap=st.floats(0, 100), p=params)
def test_probability_alive_is_a_probability(x, t_x, gap, p):
    t_x = 0.0 if x == 0 else t_x
    prob = P.pareto_nbd_probability_alive(x, t_x, t_x + gap, **p)
    assert 0.0 <= prob <= 1.0


@given(
    x=st.integers(0, 60),
    t_x=st.floats(0, 100),
    gap=st.floats(0, 100),
    t1=st.floats(0, 200),
    dt=st.floats(0, 200),
    p=params,
)
def test_no_purchase_and_expectation_are_monotone_in_t(x, t_x, gap, t1, dt, p):
    t_x = 0.0 if x == 0 else t_x
    T = t_x + gap
    q1 = P.pareto_nbd_probability_no_purchase(t1, x, t_x, T, **p)
    q2 = P.pareto_nbd_probability_no_purchase(t1 + dt, x, t_x, T, **p)
    assert 0.0 <= q2 <= q1 + 1e-12 <= 1.0 + 1e-12  # equal up to rounding when dt ~ 0
    e1 = P.pareto_nbd_expected_purchases(t1, x, t_x, T, **p)
    e2 = P.pareto_nbd_expected_purchases(t1 + dt, x, t_x, T, **p)
    assert 0.0 <= e1 <= e2 * (1 + 1e-12)


rows = st.lists(
    st.tuples(st.integers(0, 30), st.floats(0, 1), st.floats(0.1, 60), st.integers(1, 5)),
    min_size=1,
    max_size=30,
)


@given(rows=rows, p=params)
def test_per_customer_log_likelihoods_sum_to_weighted_total(rows, p):
    x = np.array([r[0] for r in rows], dtype=float)
    T = np.array([r[2] for r in rows])
    t_x = np.where(x > 0, np.array([r[1] for r in rows]) * T, 0.0)
    w = np.array([r[3] for r in rows], dtype=float)
    total, grad = P.pareto_nbd_total_log_likelihood_and_gradient(
        *(p[k] for k in ("r", "alpha", "s", "beta")), P.pareto_nbd_prepare(x, t_x, T, w)
    )
    assert total == pytest.approx(w @ P.pareto_nbd_log_likelihood(x, t_x, T, **p), rel=1e-10)
    assert np.all(np.isfinite(grad))


def test_series_stops_on_non_finite_terms():
    # an optimiser step can hand the likelihood NaN or overflowing parameters; the series
    # must return (non-finite) instead of looping for ever
    value, _ = P._log_s(np.array([np.nan, 2.0]), np.array([3.0, 3.0]), np.array([0.5, 0.5]))
    assert np.isnan(value[0])
    assert np.isfinite(value[1])
