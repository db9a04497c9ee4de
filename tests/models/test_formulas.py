"""Closed forms against published single-customer values and against each other."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.optimize import approx_fprime
from scipy.special import hyp2f1

from rfmml.models import _formulas as F

CDNOW = (0.243, 4.414, 0.793, 2.426)  # r, alpha, a, b of Fader, Hardie & Lee (2005)


def test_log_likelihood_matches_hardie_note_027():
    # Fader & Hardie (2013) note 027: a customer with x=200, t_x=38, T=40 at
    # r=0.25, alpha=4, a=0.8, b=2.5, where the naive form overflows (#NUM!).
    # Checked against lifetimes' BetaGeoFitter._negative_log_likelihood: 100.795693.
    ll = F.bgnbd_log_likelihood(x=200, t_x=38, T=40, r=0.25, alpha=4.0, a=0.8, b=2.5)
    assert ll == pytest.approx(100.7957, abs=1e-4)


def test_conditional_expectation_matches_fader_hardie_lee_2005_customer_1():
    # FHL (2005), section 5: the customer with x=2, t_x=30.43, T=38.86 is expected
    # to make 1.226 purchases in the next 39 weeks (3 decimals published).
    e = F.bgnbd_expected_purchases(39.0, 2, 30.43, 38.86, *CDNOW)
    assert e == pytest.approx(1.226, abs=5e-4)


def test_probability_alive_by_hand():
    # FHL (2008) eq. 2 written out for one customer.
    r, alpha, a, b = CDNOW
    x, t_x, T = 2, 30.43, 38.86
    expected = 1 / (1 + a / (b + x - 1) * ((alpha + T) / (alpha + t_x)) ** (r + x))
    assert F.bgnbd_probability_alive(x, t_x, T, *CDNOW) == pytest.approx(expected, rel=1e-14)
    assert F.bgnbd_probability_alive(0, 0.0, 50.0, *CDNOW) == 1.0


def test_probability_of_purchases_is_a_distribution_with_mean_eq_7():
    # FHL (2005) eq. 8 summed over n must be 1, and its mean must equal eq. 7.
    n = np.arange(0, 400)
    probs = F.bgnbd_probability_of_purchases(n, 39.0, *CDNOW)
    assert probs.min() >= 0
    assert probs.sum() == pytest.approx(1.0, abs=1e-6)  # tail beyond 400 is below 1e-6
    mean = F.bgnbd_expected_purchases_new_customer(39.0, *CDNOW)
    assert (n * probs).sum() == pytest.approx(mean, rel=1e-4)


def test_probability_of_purchases_broadcasts_n_and_t():
    n = np.array([0, 1, 2])
    t = np.array([0.0, 5.0, 20.0])
    vec = F.bgnbd_probability_of_purchases(n, t, *CDNOW)
    one_by_one = [F.bgnbd_probability_of_purchases(k, s, *CDNOW) for k, s in zip(n, t, strict=True)]
    np.testing.assert_allclose(vec, np.ravel(one_by_one), rtol=1e-14)
    assert vec[0] == 1.0  # nothing happens in zero time


def test_gradient_of_bgnbd_total_matches_finite_differences(cdnow_summary):
    s = cdnow_summary
    x, t_x, T = (s[c].to_numpy() for c in ("frequency", "recency", "T"))
    w = np.ones_like(x)
    theta = np.array([0.5, 2.0, 1.5, 3.0])  # away from the optimum: gradient is large

    def total(th):
        return F.bgnbd_total_log_likelihood_and_gradient(*th, data)[0]

    data = F.bgnbd_prepare(x, t_x, T, w)
    value, grad = F.bgnbd_total_log_likelihood_and_gradient(*theta, data)
    assert value == pytest.approx(F.bgnbd_log_likelihood(x, t_x, T, *theta).sum(), rel=1e-12)
    # forward differences with h=1e-7 on a total of order 1e4: about 1e-4 relative error
    np.testing.assert_allclose(grad, approx_fprime(theta, total, 1e-7), rtol=1e-4)


def test_gradient_of_gamma_gamma_total_matches_finite_differences(cdnow_summary):
    s = cdnow_summary[cdnow_summary["frequency"] > 0]
    x, m = s["frequency"].to_numpy(), s["monetary_value"].to_numpy()
    w = np.ones_like(x)
    theta = np.array([3.0, 2.0, 20.0])

    def total(th):
        return F.gamma_gamma_total_log_likelihood_and_gradient(*th, data)[0]

    data = F.gamma_gamma_prepare(x, m, w)
    value, grad = F.gamma_gamma_total_log_likelihood_and_gradient(*theta, data)
    assert value == pytest.approx(F.gamma_gamma_log_likelihood(x, m, *theta).sum(), rel=1e-12)
    np.testing.assert_allclose(grad, approx_fprime(theta, total, 1e-7), rtol=1e-4)


def test_expected_spend_is_population_mean_without_repeat_purchases():
    # note 025 eq. 5 with x = 0: the weight on the customer's own mean is 0.
    p, q, v = 6.25, 3.74, 15.44
    assert F.gamma_gamma_expected_order_value(0, 0.0, p, q, v) == pytest.approx(v * p / (q - 1))


def test_euler_transformation_agrees_with_direct_series():
    # Abramowitz & Stegun 15.3.3: both forms of 2F1 must agree where both are finite.
    A, B, C, z = 2.243, 4.426, 4.219, 0.6
    direct = F._log_hyp2f1(A, B, C, z)
    euler = np.log(hyp2f1(C - A, C - B, C, z)) + (C - A - B) * np.log1p(-z)
    assert direct == pytest.approx(euler, rel=1e-12)


def test_expected_purchases_stay_finite_for_heavy_buyers_far_ahead():
    # x=300 and t=5000 push 2F1 to z = 0.997 with large parameters; the
    # expectation must stay finite and non-negative (the Euler fallback's job).
    e = F.bgnbd_expected_purchases(5000.0, 300.0, 9.0, 10.0, *CDNOW)
    assert np.isfinite(e) and e >= 0.0


def test_hypergeometric_at_integer_c_minus_a_minus_b():
    # a - r = 0 makes c - a - b = -1 in eq. 7, where scipy's hyp2f1 returns nan near z = 1;
    # the value must be finite and continuous in the parameters (checked against a - 1e-7).
    p = {"r": 4.0, "alpha": 0.5, "a": 4.0, "b": 0.1}
    exact = F.bgnbd_expected_purchases_new_customer(231.0, **p)
    nearby = F.bgnbd_expected_purchases_new_customer(231.0, **{**p, "a": 4.0 - 1e-7})
    assert np.isfinite(exact) and exact == pytest.approx(nearby, rel=1e-6)


def _uniform_whole_day_rows(n: int = 5_000) -> tuple[np.ndarray, ...]:
    """Rows of a log with uniform purchase times and no dropout (a degenerate BG/NBD fit)."""
    rng = np.random.default_rng(11)
    T = rng.integers(30, 1_095, n).astype(float)
    x = rng.poisson(T / 120.0).astype(float)
    t_x = np.where(x > 0, np.floor(T * rng.beta(x + 1.0, 1.0)), 0.0)
    return x, t_x, T, np.ones(n)


@pytest.mark.parametrize("source", ["uniform", "online_retail"])
def test_level_gathers_give_the_bits_of_per_row_logarithms(source, online_retail_tx):
    # whole-day T and t_x take few values: their logarithms are computed per level and
    # gathered per row (np.take without a buffer); the result must be bit for bit that of
    # the per-row logarithms, at a sound point and far out on a degenerate ridge
    if source == "uniform":
        x, t_x, T, w = _uniform_whole_day_rows()
    else:
        from rfmml.features import btyd_summary

        s = btyd_summary(online_retail_tx, freq="D")
        x, t_x, T = (s[c].to_numpy(dtype=float) for c in ("frequency", "recency", "T"))
        w = np.ones(len(x))
    data = F.bgnbd_prepare(x, t_x, T, w)
    assert data.T_levels is not None and data.t_x_levels is not None
    per_row = data._replace(T_levels=None, T_index=None, t_x_levels=None, t_x_index=None)
    for theta in ([0.8, 60.0, 0.5, 3.0], [3.5e5, 1.4e8, 1.75e-4, 1.0e4]):
        got = F.bgnbd_total_log_likelihood_and_gradient(*theta, data)
        want = F.bgnbd_total_log_likelihood_and_gradient(*theta, per_row)
        assert got[0] == want[0]
        np.testing.assert_array_equal(got[1], want[1])
