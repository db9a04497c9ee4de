"""BG/NBD predictions at degenerate parameters: a, b tiny, a + b < 1, a == 1, b < 1 < a.

The closed forms of FHL (2005) eqs. 7 and 10 hold ``2F1(r + x, b + x; a + b + x - 1; z)``,
evaluated in logs, which is NaN when ``a + b + x - 1 <= 0`` (``2F1 < 0``), and a lead
factor ``(a + b + x - 1) / (a - 1)`` singular at ``a = 1``. There the integral form
``E[f(P)]``, ``P ~ Beta(a, b + x)``, is used (``bgnbd_expected_purchases_if_alive``).
"""

from __future__ import annotations

import math
import warnings

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from scipy.integrate import quad
from scipy.special import betaln

from rfmml.evaluation import evaluate_holdout
from rfmml.features import calibration_holdout
from rfmml.models import BetaGeoNBD, GammaGamma, StandardErrorWarning, customer_lifetime_value
from rfmml.models import _formulas as F

CDNOW = (0.243, 4.414, 0.793, 2.426)  # r, alpha, a, b of Fader, Hardie & Lee (2005)
RENAME = {
    "frequency_cal": "frequency",
    "recency_cal": "recency",
    "T_cal": "T",
    "monetary_value_cal": "monetary_value",
}


def _closed_form(t, x, T, r, alpha, a, b):
    # FHL05 eq. 10 without P(alive), straight from the hypergeometric factor
    return (
        (a + b + (x - 1.0)) / (a - 1.0) * (1.0 - F.bgnbd_future_survival(t, x, T, r, alpha, a, b))
    )


def _quad_reference(t, x, T, r, alpha, a, b):
    """E[f(P)], P ~ Beta(a, b + x), by adaptive quadrature with the Beta weight (QUADPACK QAWS)."""
    A, B, s, u = a, b + x, r + x, t / (alpha + T)

    def f(p):
        return s * u if p == 0.0 else -math.expm1(-s * math.log1p(p * u)) / p

    value, _ = quad(f, 0.0, 1.0, weight="alg", wvar=(A - 1.0, B - 1.0), epsabs=0.0, epsrel=1e-13)
    return value / math.exp(betaln(A, B))


# ------------------------------------------------------- integral form = closed form


def test_integral_form_equals_closed_form_on_cdnow_grid():
    x, T, t = np.meshgrid(
        np.arange(21.0),
        np.array([1.0, 2.0, 5.0, 10.0, 20.0, 39.0, 60.0, 80.0]),
        np.array([0.1, 0.5, 1.0, 5.0, 10.0, 39.0, 52.0, 100.0]),
        indexing="ij",
    )
    integral = F._bgnbd_expected_purchases_if_alive_integral(t, x, T, *CDNOW)
    closed = _closed_form(t, x, T, *CDNOW)
    # Measured worst 7e-12, and it is the closed form's: the integral agrees with an
    # independent adaptive quadrature to ~1e-14, while 1 - G(t) loses digits to
    # cancellation for heavy buyers at short horizons. 1e-9 leaves two orders of margin;
    # a wrong formula (e.g. Beta(a, b) instead of Beta(a, b + x)) is off by far more.
    np.testing.assert_allclose(integral, closed, rtol=1e-9)


@pytest.mark.parametrize(
    "params",
    [
        (2.0, 0.5, 3.0, 5.0),
        (0.05, 50.0, 0.3, 1.5),  # a < 1 < a + b
        (5.0, 10.0, 20.0, 0.8),  # b < 1 < a
        (0.5, 1.0, 1.5, 0.2),  # b < 1 < a, a + b just above 1
        (10.0, 0.01, 0.5, 40.0),  # horizon 2e4 times alpha + T at T = 0
        (0.5, 2.0, 300.0, 300.0),  # a narrow bulk at p = 1/2
    ],
)
def test_integral_form_equals_closed_form_for_ordinary_parameters(params):
    # a + b > 1 and a away from 1: the closed form is valid, so both must be the same quantity
    x, T, t = np.meshgrid(
        np.array([0.0, 1.0, 2.0, 7.0, 30.0]),
        np.array([0.0, 3.0, 40.0, 100.0]),
        np.array([0.1, 1.0, 39.0, 200.0]),
        indexing="ij",
    )
    integral = F._bgnbd_expected_purchases_if_alive_integral(t, x, T, *params)
    closed = _closed_form(t, x, T, *params)
    # measured worst 2e-10 over these sets (the closed form's cancellation, as above)
    np.testing.assert_allclose(integral, closed, rtol=1e-9)


@pytest.mark.parametrize(
    ("x", "T", "params"),
    [
        (0, 0.0, (0.5, 1.0, 0.3, 0.4)),  # a + b < 1: the closed form is NaN here
        (0, 10.0, (2.0, 0.5, 0.05, 0.2)),
        (0, 10.0, (1.0, 1.0, 1.0, 0.5)),  # a == 1 exactly
        (5, 10.0, (1.0, 1.0, 1.0, 0.5)),
        (3, 20.0, (0.5, 3.0, 1.0 + 1e-9, 0.7)),
    ],
)
@pytest.mark.parametrize("t", [0.5, 10.0, 100.0])
def test_expectation_matches_adaptive_quadrature_where_the_closed_form_fails(x, T, params, t):
    # An independent evaluation of the same integral (QUADPACK with the Beta weight,
    # relative tolerance 1e-13); the Gauss rule agrees to ~1e-14, so 1e-10 is safe.
    ours = F.bgnbd_expected_purchases_if_alive(t, x, T, *params)
    assert ours == pytest.approx(_quad_reference(t, x, T, *params), rel=1e-10)


@pytest.mark.parametrize(
    "params",
    [
        (0.5, 2.0, 0.3, 0.4),  # a + b < 1
        (0.7, 65.0, 6e-22, 6e-9),  # the penalised Online Retail fit
        (0.5, 2.0, 1.0, 0.5),  # a == 1
        (0.5, 2.0, 3.0, 1e5),  # all mass near p = 0
        (0.5, 2.0, 1000.0, 1000.0),  # a narrow bulk at p = 1/2
    ],
)
@pytest.mark.parametrize("x", [0, 5])
def test_expectation_matches_moment_series_for_short_horizons(params, x):
    # With u = t / (alpha + T) < 1, f(p) = sum_k (-1)^k (s)_{k+1} / (k+1)! u^(k+1) p^k
    # (binomial series of (1 + p u)^-s), and E[P^k] = prod_{j<k} (A + j) / (A + B + j)
    # for P ~ Beta(A, B): an answer that uses neither 2F1 nor quadrature.
    r, alpha, a, b = params
    t, T = 5.0, 10.0
    s, u, A, B = r + x, t / (alpha + T), a, b + x
    term, moment, series = s * u, 1.0, 0.0
    for k in range(300):  # terms fall like u^k = (5/12)^k: 300 is far past 1e-16
        series += term * moment
        term *= -(s + k + 1) / (k + 2) * u
        moment *= (A + k) / (A + B + k)
    ours = F.bgnbd_expected_purchases_if_alive(t, x, T, *params)
    assert ours == pytest.approx(series, rel=1e-12)  # measured: <= 4e-15 (rounding only)


@pytest.mark.parametrize(
    "params",
    [
        CDNOW,
        (0.5, 2.0, 0.3, 0.4),  # a + b < 1
        (0.7, 65.0, 6e-22, 6e-9),  # the penalised Online Retail fit
        (0.5, 2.0, 1.0, 0.5),  # a == 1
        (0.5, 2.0, 3.0, 1e5),  # all mass near p = 0
        (0.5, 2.0, 1000.0, 1000.0),  # a narrow bulk at p = 1/2
        (3.5e5, 1.38e8, 1.75e-4, 1.0e4),  # no dropout, homogeneous rate (daily, 3.4M customers)
        (0.05, 50.0, 0.3, 1.5),
    ],
)
@pytest.mark.parametrize("x", [0.0, 1.0, 7.0, 60.0])
def test_moment_series_equals_the_quadrature_rule_where_both_apply(params, x):
    # The integral form sums the moment series where u max(r + x, 1) <= 1/2 and uses the
    # composite Gauss rule elsewhere: on that range both are the same number (the rule
    # agrees with QUADPACK to ~1e-14, see above), so switching between them at the
    # threshold leaves no step.
    r, alpha, a, b = params
    s, A, B = r + x, a, b + x
    u = 0.5 / max(s, 1.0) * np.array([0.0, 1e-12, 1e-6, 1e-3, 0.01, 0.1, 0.3, 0.7, 1.0])
    series = F._bgnbd_if_alive_moment_series(u, s, A, B)
    rule = F._bgnbd_if_alive_rule(u, s, A, B, u.max())
    assert series[0] == rule[0] == 0.0
    np.testing.assert_allclose(series, rule, rtol=1e-13, atol=0)
    # and the integral form uses the series on the whole range (the same values)
    T = 10.0
    t = u * (alpha + T)
    np.testing.assert_allclose(
        F._bgnbd_expected_purchases_if_alive_integral(t, x, T, *params), series, rtol=1e-15
    )


@pytest.mark.parametrize("x", [0, 1, 5, 30])
@pytest.mark.parametrize(("T", "t"), [(0.0, 1.0), (10.0, 39.0), (80.0, 200.0)])
def test_expectation_tends_to_poisson_rate_as_a_vanishes(x, T, t):
    # a -> 0: p ~ Beta(a, b + x) has all its mass at 0, nobody drops out, and
    # E[Y(t) | alive] = E[lambda] t = (r + x) t / (alpha + T) (FHL05 sec. 3).
    r, alpha, _, b = CDNOW
    poisson = (r + x) * t / (alpha + T)
    e = F.bgnbd_expected_purchases_if_alive(t, x, T, r, alpha, 1e-12, b)
    # the deviation is first order in a: a / (b + x) times O(1) factors, below 1e-11
    assert e == pytest.approx(poisson, rel=1e-10)
    # and the approach is gradual, from below (dropout only removes purchases)
    coarse = F.bgnbd_expected_purchases_if_alive(t, x, T, r, alpha, 1e-3, b)
    assert coarse < e


@pytest.mark.parametrize("t", [1e-130, 1e-12, 1e-8])
def test_short_horizons_keep_their_relative_accuracy(t):
    # E[Y(t) | alive] = (r + x) t / (alpha + T) (1 + O(t)): the first purchase has not
    # yet been followed by any dropout. The closed form's 1 - G(t) is pure rounding
    # there (it gave 4e-16 at t = 1e-136), so such rows take the integral form.
    r, alpha, a, b = CDNOW
    for x, T in ((0, 0.0), (2, 38.86), (20, 40.0)):
        e = F.bgnbd_expected_purchases_if_alive(t, x, T, r, alpha, a, b)
        assert e == pytest.approx((r + x) * t / (alpha + T), rel=1e-6)  # O(t) deviation


def test_expectation_with_half_the_customers_dropping_out_at_once():
    # a = b -> 0: p is 0 or 1 with probability 1/2 each. p = 1 buys at most once
    # (1 - (alpha / (alpha + t)) ** r), p = 0 never stops (r t / alpha): eq. 7 is the mean.
    r, alpha, t = 0.7, 2.0, 30.0
    expected = 0.5 * (r * t / alpha) + 0.5 * (1.0 - (alpha / (alpha + t)) ** r)
    e = F.bgnbd_expected_purchases_new_customer(t, r, alpha, 1e-13, 1e-13)
    assert e == pytest.approx(expected, rel=1e-10)  # deviation first order in a, b


@pytest.mark.parametrize(
    "params", [(0.7, 65.0, 6e-22, 6e-9), (0.5, 1.0, 0.3, 0.4), (0.5, 1.0, 1.0, 0.3)]
)
def test_new_customer_expectation_is_the_mean_of_eq_8(params):
    # FHL05 eq. 8 (the PMF, no hypergeometric) is independent of eq. 7: its mean must
    # equal the integral form. At t = 1 the tail beyond n = 400 is below 1e-15.
    n = np.arange(400)
    pmf = F.bgnbd_probability_of_purchases(n, 1.0, *params)
    assert pmf.min() >= 0.0 and pmf.sum() == pytest.approx(1.0, abs=1e-12)
    mean = F.bgnbd_expected_purchases_new_customer(1.0, *params)
    assert n @ pmf == pytest.approx(mean, rel=1e-10)


def test_probability_alive_keeps_a_tiny_b():
    # FH08 eq. 2 with x = 1: odds a / (b + x - 1) = a / b. Written (b + x) - 1 the sum
    # rounds to 0 for b < 1e-16 and P(alive) came out 0 instead of 1 / 1.01.
    p = F.bgnbd_probability_alive(1, 5.0, 5.0, r=0.5, alpha=1.0, a=1e-22, b=1e-20)
    assert p == pytest.approx(1 / 1.01, rel=1e-12)


def test_infinite_horizon_is_the_mean_of_one_over_p():
    # t -> inf: every purchase happens, E[Y] = E[1 / P] = (a + b + x - 1) / (a - 1) for
    # a > 1 (the closed form's limit, G -> 0) and infinite for a <= 1
    integral = F._bgnbd_expected_purchases_if_alive_integral
    assert integral(np.inf, 3.0, 10.0, 0.5, 1.0, 2.5, 2.0) == pytest.approx(6.5 / 1.5, rel=1e-15)
    for a in (0.3, 1.0):
        assert F.bgnbd_expected_purchases_if_alive(np.inf, 0.0, 10.0, 0.5, 1.0, a, 0.4) == np.inf


# ---------------------------------------------------------------- properties

log_uniform = st.floats(math.log(1e-12), math.log(50.0)).map(math.exp)
params = st.fixed_dictionaries(
    {
        "r": st.floats(0.01, 10.0),
        "alpha": st.floats(0.01, 100.0),
        "a": log_uniform | st.just(1.0),
        "b": log_uniform,
    }
)
horizon = st.floats(0.0, 200.0, exclude_min=True)


@settings(max_examples=300, deadline=None)
@given(
    p=params,
    x=st.integers(0, 30),
    t_x=st.floats(0.0, 100.0),
    gap=st.floats(0.0, 100.0),
    t1=horizon,
    dt=st.floats(0.0, 200.0),
)
def test_predictions_are_finite_and_monotone_for_any_parameters(p, x, t_x, gap, t1, dt):
    t_x = 0.0 if x == 0 else t_x
    T = t_x + gap
    e1, e2 = F.bgnbd_expected_purchases(np.array([t1, t1 + dt]), x, t_x, T, **p)
    assert np.isfinite([e1, e2]).all() and e1 >= 0.0
    # the closed form itself is accurate to ~2e-10 (see above), the integral to ~1e-13
    assert e2 >= e1 * (1.0 - 1e-9)
    # dropout only removes purchases: at most the Poisson expectation (r + x) t / (alpha + T)
    assert e2 <= (p["r"] + x) * (t1 + dt) / (p["alpha"] + T) * (1.0 + 1e-9) + 1e-300
    n1, n2 = F.bgnbd_expected_purchases_new_customer(np.array([t1, t1 + dt]), **p)
    assert np.isfinite([n1, n2]).all() and n1 >= 0.0 and n2 >= n1 * (1.0 - 1e-9)
    alive = F.bgnbd_probability_alive(x, t_x, T, **p)
    assert 0.0 <= alive <= 1.0
    repeat = F.bgnbd_probability_repeat_purchase(t1, x, t_x, T, **p)
    assert 0.0 <= repeat <= alive


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    p=params,
    rows=st.lists(
        st.tuples(st.integers(0, 30), st.floats(0, 1), st.floats(0.1, 100)), min_size=1, max_size=20
    ),
    horizon=st.integers(1, 60),
    rate=st.floats(0, 0.5),
)
def test_clv_is_finite_and_non_negative_for_any_parameters(
    cdnow_gamma_gamma, p, rows, horizon, rate
):
    model = BetaGeoNBD()
    model.params_ = pd.Series(p, name="BetaGeoNBD")[["r", "alpha", "a", "b"]]
    x = np.array([row[0] for row in rows], dtype=float)
    T = np.array([row[2] for row in rows])
    frame = pd.DataFrame(
        {
            "frequency": x,
            "recency": np.where(x > 0, np.array([row[1] for row in rows]) * T, 0.0),
            "T": T,
            "monetary_value": np.where(x > 0, 25.0, 0.0),
        }
    )
    clv = customer_lifetime_value(model, cdnow_gamma_gamma, frame, horizon, rate)
    assert np.isfinite(clv).all() and (clv >= 0).all()


# ------------------------------------------------------ Online Retail, penalised fit


@pytest.fixture(scope="module")
def retail_cal_holdout(online_retail_tx) -> pd.DataFrame:
    return calibration_holdout(online_retail_tx, "2011-08-31", "2011-12-09", freq="D")


@pytest.fixture(scope="module")
def retail_degenerate(retail_cal_holdout):
    cal = retail_cal_holdout.rename(columns=RENAME)
    with warnings.catch_warnings():
        # a and b sit at the boundary (a ~ 1e-22), so the Hessian is singular there
        warnings.simplefilter("ignore", StandardErrorWarning)
        model = BetaGeoNBD(penalizer=0.001).fit(cal[["frequency", "recency", "T"]])
    repeat = cal[(cal["frequency"] > 0) & (cal["monetary_value"] > 0)]
    return cal, model, GammaGamma().fit(repeat)


def test_penalised_online_retail_fit_gives_no_nan(retail_degenerate):
    cal, model, spend = retail_degenerate
    a, b = model.params_["a"], model.params_["b"]
    assert a + b < 1.0  # the regime this file is about: c = a + b - 1 < 0 for x == 0
    summary = cal[["frequency", "recency", "T"]]
    e = model.expected_purchases(summary, 100)
    assert np.isfinite(e).all() and (e >= 0).all()
    # with a ~ 0 nobody drops out: E = (r + x) t / (alpha + T) for everyone (P(alive) = 1)
    r, alpha = model.params_["r"], model.params_["alpha"]
    poisson = (r + summary["frequency"]) * 100 / (alpha + summary["T"])
    np.testing.assert_allclose(e, poisson, rtol=1e-6)  # deviation of order a / b ~ 1e-13
    assert np.isfinite(model.expected_purchases_new_customer(np.array([0.0, 10.0, 365.0]))).all()
    assert np.isfinite(model.probability_repeat_purchase(summary, 100)).all()
    pmf = model.probability_of_purchases(np.arange(10), 100)
    assert np.isfinite(pmf).all() and (pmf >= 0).all()
    clv = customer_lifetime_value(model, spend, cal, horizon=90, discount_rate=0.0003)
    assert np.isfinite(clv).all() and (clv >= 0).all()


def test_evaluate_holdout_with_degenerate_model_is_finite(retail_degenerate, retail_cal_holdout):
    _, model, spend = retail_degenerate
    result = evaluate_holdout(model, spend, retail_cal_holdout)
    assert np.isfinite(result.to_numpy()).all()
