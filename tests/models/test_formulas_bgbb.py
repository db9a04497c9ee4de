"""BG/BB formulas: Fader, Hardie & Shang (2010) on the donations data, lifetimes, properties."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given
from hypothesis import strategies as st
from lifetimes import BetaGeoBetaBinomFitter
from scipy.special import betaln

from rfmml.data.datasets import _lifetimes_datasets
from rfmml.models import _formulas_bgbb as G

#: Fader, Hardie & Shang (2010), donations data
FHS = {"alpha": 1.204, "beta": 0.750, "gamma": 0.657, "delta": 2.784}
NAMES = ("alpha", "beta", "gamma", "delta")
params = st.fixed_dictionaries(
    {
        "alpha": st.floats(0.05, 10),
        "beta": st.floats(0.05, 10),
        "gamma": st.floats(0.05, 10),
        "delta": st.floats(0.05, 10),
    }
)


@pytest.fixture(scope="module")
def donations() -> pd.DataFrame:
    """lifetimes' donations data (11,104 donors, 6 opportunities), read as a file."""
    return pd.read_csv(_lifetimes_datasets() / "donations.csv")


def _cols(d):
    return tuple(d[c].to_numpy() for c in ("frequency", "recency", "periods", "weights"))


def test_log_likelihood_matches_fader_hardie_shang_2010(donations):
    x, t_x, n, w = _cols(donations)
    total, _ = G.bgbb_total_log_likelihood_and_gradient(*FHS.values(), G.bgbb_prepare(x, t_x, n, w))
    # published -33,225.6 at the published (rounded) estimates: half a unit of the last digit
    assert total == pytest.approx(-33225.6, abs=0.05)


def test_probability_alive_matches_fader_hardie_shang_2010():
    # P(alive in 2002), i.e. at opportunity n + 1, for three donors: about 0.11, 0.59, 0.93
    p = G.bgbb_probability_alive([0, 2, 6], [0, 4, 6], [6, 6, 6], **FHS)
    np.testing.assert_allclose(p, [0.11, 0.59, 0.93], atol=0.005)


def test_agrees_with_lifetimes_at_fixed_parameters(donations):
    x, t_x, n, _ = _cols(donations)
    theta = tuple(FHS.values())
    # lifetimes adds 1e-15 to the dropout sum before its logarithm: agreement to ~1e-13
    np.testing.assert_allclose(
        G.bgbb_log_likelihood(x, t_x, n, **FHS),
        BetaGeoBetaBinomFitter._loglikelihood(theta, x, t_x, n),
        rtol=1e-12,
    )
    fitter = BetaGeoBetaBinomFitter()
    fitter.params_ = pd.Series(FHS)
    for m in (1, 5, 20):
        np.testing.assert_allclose(
            G.bgbb_expected_purchases(m, x, t_x, n, **FHS),
            fitter.conditional_expected_number_of_purchases_up_to_time(m, x, t_x, n),
            rtol=1e-11,
        )
    np.testing.assert_allclose(
        G.bgbb_probability_alive(x, t_x, n, **FHS),
        fitter.conditional_probability_alive(1, x, t_x, n),
        rtol=1e-11,
    )


def test_total_gradient_matches_central_differences(
    donations, gradient_matches_central_differences
):
    x, t_x, n, w = _cols(donations)
    data = G.bgbb_prepare(x, t_x, n, w)
    theta = np.array(list(FHS.values()))
    gradient_matches_central_differences(G.bgbb_total_log_likelihood_and_gradient, theta, data)


def test_probability_of_purchases_is_a_distribution_with_the_right_mean():
    x = np.arange(7)
    pmf = G.bgbb_probability_of_purchases(x, 6, **FHS)
    assert pmf.sum() == pytest.approx(1.0, abs=1e-13)
    assert x @ pmf == pytest.approx(G.bgbb_expected_purchases_new_customer(6, **FHS), rel=1e-12)


def test_no_purchase_matches_brute_force_sum():
    x, t_x, n = 2, 4, 6
    log_l = G.bgbb_log_likelihood(x, t_x, n, **FHS)
    const = -betaln(FHS["alpha"], FHS["beta"]) - betaln(FHS["gamma"], FHS["delta"]) - log_l
    k = np.arange(1, 400_001)
    terms = np.exp(G._log_buy_term(k, x, n, *FHS.values()) + const)
    m = np.array([1, 7, 200, 1000, 400_000])
    brute = 1.0 - np.cumsum(terms)[m - 1]
    ours = G.bgbb_probability_no_purchase(m, x, t_x, n, **FHS)
    # exact up to 200 terms; the midpoint-rule remainder beyond is good to ~1e-9
    np.testing.assert_allclose(ours, brute, atol=1e-9)
    # the rest of the series beyond 400,000 terms is below 1e-7 (power law k ** -4.9)
    never = G.bgbb_probability_no_purchase(np.inf, x, t_x, n, **FHS)
    assert never == pytest.approx(brute[-1], abs=1e-7)


def test_expected_purchases_is_continuous_at_gamma_one():
    # the closed form divides by gamma - 1; below |gamma - 1| = 1e-3 the finite sum is used
    args = (5, 2, 4, 6, FHS["alpha"], FHS["beta"])
    below = G.bgbb_expected_purchases(*args, 1.0 - 0.999e-3, FHS["delta"])
    above = G.bgbb_expected_purchases(*args, 1.0 - 1.001e-3, FHS["delta"])
    # the function's own change over 2e-6 in gamma is ~1e-6 relative
    assert below == pytest.approx(above, rel=1e-5)


opportunities = st.integers(0, 30).flatmap(
    lambda n: st.tuples(st.just(n), st.integers(0, n)).flatmap(
        lambda nt: st.tuples(st.just(nt[0]), st.just(nt[1]), st.integers(0, nt[1]))
    )
)


@given(h=opportunities, p=params, m1=st.integers(0, 40), dm=st.integers(0, 40))
def test_probabilities_and_monotonicity(h, p, m1, dm):
    n, t_x, x = h
    if x == 0:
        t_x = 0
    if t_x > 0 and x == 0:
        x = 1
    alive = G.bgbb_probability_alive(x, t_x, n, **p)
    assert 0.0 <= alive <= 1.0 + 1e-12
    q1 = G.bgbb_probability_no_purchase(m1, x, t_x, n, **p)
    q2 = G.bgbb_probability_no_purchase(m1 + dm, x, t_x, n, **p)
    assert 0.0 <= q2 <= q1 + 1e-12 <= 1.0 + 1e-12
    e1 = G.bgbb_expected_purchases(m1, x, t_x, n, **p)
    e2 = G.bgbb_expected_purchases(m1 + dm, x, t_x, n, **p)
    assert -1e-12 <= e1 <= e2 * (1 + 1e-10) + 1e-12


@given(h=st.lists(opportunities, min_size=1, max_size=20), p=params)
def test_per_customer_log_likelihoods_sum_to_weighted_total(h, p):
    n = np.array([v[0] for v in h])
    t_x = np.array([v[1] for v in h])
    x = np.where(t_x > 0, np.maximum(np.array([v[2] for v in h]), 1), 0)
    w = np.arange(1, len(h) + 1, dtype=float)
    total, grad = G.bgbb_total_log_likelihood_and_gradient(
        *(p[k] for k in NAMES), G.bgbb_prepare(x, t_x, n, w)
    )
    assert total == pytest.approx(w @ G.bgbb_log_likelihood(x, t_x, n, **p), rel=1e-10)
    assert np.all(np.isfinite(grad))
