"""MBG/NBD formulas: lifetimes at fixed parameters, gradient, properties."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given
from hypothesis import strategies as st
from lifetimes import ModifiedBetaGeoFitter

from rfmml.models import _formulas_mbgnbd as M

#: MBG/NBD on the CDNOW sample (weeks), the estimates quoted in the issue
CDNOW = {"r": 0.525, "alpha": 6.183, "a": 0.891, "b": 1.614}
NAMES = ("r", "alpha", "a", "b")
params = st.fixed_dictionaries(
    {
        "r": st.floats(0.05, 5),
        "alpha": st.floats(0.1, 50),
        "a": st.floats(0.05, 5),
        "b": st.floats(0.05, 10),
    }
)


def _cdnow(cdnow_summary):
    return tuple(cdnow_summary[c].to_numpy() for c in ("frequency", "recency", "T"))


def _lifetimes() -> ModifiedBetaGeoFitter:
    fitter = ModifiedBetaGeoFitter()
    fitter.params_ = pd.Series(CDNOW)
    return fitter


def test_agrees_with_lifetimes_at_fixed_parameters(cdnow_summary):
    x, t_x, T = _cdnow(cdnow_summary)
    fitter = _lifetimes()
    total = M.mbgnbd_log_likelihood(x, t_x, T, **CDNOW).sum()
    theirs = -len(x) * ModifiedBetaGeoFitter._negative_log_likelihood(
        np.log(list(CDNOW.values())), x, t_x, T, np.ones(len(x)), 0.0
    )
    assert total == pytest.approx(theirs, rel=1e-13)  # same expression, rounding only
    np.testing.assert_allclose(
        M.mbgnbd_probability_alive(x, t_x, T, **CDNOW),
        fitter.conditional_probability_alive(x, t_x, T),
        rtol=1e-13,
    )
    # lifetimes evaluates the closed form; ours switches to its integral form only where
    # the closed form is unreliable, and agrees with it to ~1e-11 elsewhere
    np.testing.assert_allclose(
        M.mbgnbd_expected_purchases(10.0, x, t_x, T, **CDNOW),
        fitter.conditional_expected_number_of_purchases_up_to_time(10.0, x, t_x, T),
        rtol=1e-10,
    )
    t = np.array([1.0, 10.0, 52.0])
    np.testing.assert_allclose(
        M.mbgnbd_expected_purchases_new_customer(t, **CDNOW),
        fitter.expected_number_of_purchases_up_to_time(t),
        rtol=1e-10,
    )
    for n in (0, 1, 3, 10):
        assert M.mbgnbd_probability_of_purchases(n, 10.0, **CDNOW) == pytest.approx(
            fitter.probability_of_n_purchases_up_to_time(10.0, n), rel=1e-12
        )


def test_one_time_buyers_can_be_inactive():
    # the MBG/NBD's defining difference from the BG/NBD: P(alive | x = 0) < 1, and at
    # T = 0 it is the survival of the first coin flip, b / (a + b)
    assert M.mbgnbd_probability_alive(0, 0.0, 0.0, **CDNOW) == pytest.approx(
        CDNOW["b"] / (CDNOW["a"] + CDNOW["b"]), rel=1e-14
    )
    assert M.mbgnbd_probability_alive(0, 0.0, 30.0, **CDNOW) < 0.5


def test_total_gradient_matches_central_differences(
    cdnow_summary, gradient_matches_central_differences
):
    x, t_x, T = _cdnow(cdnow_summary)
    data = M.mbgnbd_prepare(x, t_x, T, np.ones(len(x)))
    theta = np.array(list(CDNOW.values()))
    total, _ = M.mbgnbd_total_log_likelihood_and_gradient(*theta, data)
    assert total == pytest.approx(M.mbgnbd_log_likelihood(x, t_x, T, **CDNOW).sum(), rel=1e-13)
    gradient_matches_central_differences(M.mbgnbd_total_log_likelihood_and_gradient, theta, data)


def test_probability_of_purchases_is_a_distribution_with_the_right_mean():
    n = np.arange(600)
    pmf = M.mbgnbd_probability_of_purchases(n, 10.0, **CDNOW)
    assert pmf.sum() == pytest.approx(1.0, abs=1e-12)
    assert n @ pmf == pytest.approx(M.mbgnbd_expected_purchases_new_customer(10.0, **CDNOW))


@given(x=st.integers(0, 60), t_x=st.floats(0, 100), gap=st.floats(0, 100), p=params)
def test_probability_alive_is_a_probability(x, t_x, gap, p):
    t_x = 0.0 if x == 0 else t_x
    assert 0.0 <= M.mbgnbd_probability_alive(x, t_x, t_x + gap, **p) <= 1.0


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
    q1 = M.mbgnbd_probability_no_purchase(t1, x, t_x, T, **p)
    q2 = M.mbgnbd_probability_no_purchase(t1 + dt, x, t_x, T, **p)
    assert 0.0 <= q2 <= q1 <= 1.0
    e1 = M.mbgnbd_expected_purchases(t1, x, t_x, T, **p)
    e2 = M.mbgnbd_expected_purchases(t1 + dt, x, t_x, T, **p)
    assert 0.0 <= e1 <= e2 * (1 + 1e-12) + 1e-15  # equal up to rounding when dt ~ 0


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
    total, _ = M.mbgnbd_total_log_likelihood_and_gradient(
        *(p[k] for k in NAMES), M.mbgnbd_prepare(x, t_x, T, w)
    )
    assert total == pytest.approx(w @ M.mbgnbd_log_likelihood(x, t_x, T, **p), rel=1e-10)
