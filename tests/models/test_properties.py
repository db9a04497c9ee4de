"""Hypothesis properties of the closed forms, the likelihood and the fit."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rfmml.models import BetaGeoNBD, customer_lifetime_value, simulate_bgnbd
from rfmml.models import _formulas as F

CDNOW_PARAMS = {"r": 0.243, "alpha": 4.414, "a": 0.793, "b": 2.426}
params = st.fixed_dictionaries(
    {
        "r": st.floats(0.05, 5),
        "alpha": st.floats(0.1, 50),
        "a": st.floats(0.05, 5),
        "b": st.floats(0.05, 10),
    }
)


@given(x=st.integers(0, 50), t_x=st.floats(0, 100), gap=st.floats(0, 100), p=params)
def test_probability_alive_is_a_probability(x, t_x, gap, p):
    t_x = 0.0 if x == 0 else t_x
    prob = F.bgnbd_probability_alive(x, t_x, T=t_x + gap, **p)
    assert 0.0 <= prob <= 1.0 and (x > 0 or prob == 1.0)


@given(
    x=st.integers(0, 50),
    t_x=st.floats(0, 100),
    gap=st.floats(0, 100),
    t1=st.floats(0, 200),
    dt=st.floats(0, 200),
)
def test_expected_purchases_never_decrease_in_t(x, t_x, gap, t1, dt):
    t_x = 0.0 if x == 0 else t_x
    e1 = F.bgnbd_expected_purchases(t1, x, t_x, t_x + gap, **CDNOW_PARAMS)
    e2 = F.bgnbd_expected_purchases(t1 + dt, x, t_x, t_x + gap, **CDNOW_PARAMS)
    assert e1 >= 0
    assert e2 >= e1 * (1 - 1e-12)  # equal up to rounding when dt ~ 0


# parameters where eq. 7's closed form holds (c = a + b - 1 > 0, a away from the removable
# singularity a = 1); test_degenerate_params.py covers the rest, via the integral form
@given(
    t1=st.floats(0, 500),
    dt=st.floats(0, 500),
    p=params.filter(lambda d: d["a"] + d["b"] > 1.05 and abs(d["a"] - 1.0) > 1e-3),
)
def test_new_customer_expectation_never_decreases(t1, dt, p):
    e1 = F.bgnbd_expected_purchases_new_customer(t1, **p)
    e2 = F.bgnbd_expected_purchases_new_customer(t1 + dt, **p)
    assert e1 >= -1e-12 and e2 >= e1 - 1e-9 * max(1.0, abs(e1))


rows = st.lists(
    st.tuples(st.integers(0, 30), st.floats(0, 1), st.floats(0.1, 60), st.integers(1, 5)),
    min_size=1,
    max_size=40,
)


@given(rows=rows, p=params)
def test_per_customer_log_likelihoods_sum_to_weighted_total(rows, p):
    x = np.array([r[0] for r in rows], dtype=float)
    T = np.array([r[2] for r in rows])
    t_x = np.where(x > 0, np.array([r[1] for r in rows]) * T, 0.0)
    w = np.array([r[3] for r in rows], dtype=float)
    total, _ = F.bgnbd_total_log_likelihood_and_gradient(
        p["r"], p["alpha"], p["a"], p["b"], F.bgnbd_prepare(x, t_x, T, w)
    )
    per_customer = F.bgnbd_log_likelihood(x, t_x, T, **p)
    assert total == pytest.approx(w @ per_customer, rel=1e-10, abs=1e-9)


@settings(max_examples=25, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(rows=rows, horizon=st.integers(1, 60), rate=st.floats(0, 0.5))
def test_clv_is_never_negative(cdnow_bgnbd, cdnow_gamma_gamma, rows, horizon, rate):
    x = np.array([r[0] for r in rows], dtype=float)
    T = np.array([r[2] for r in rows])
    frame = pd.DataFrame(
        {
            "frequency": x,
            "recency": np.where(x > 0, np.array([r[1] for r in rows]) * T, 0.0),
            "T": T,
            "monetary_value": np.where(x > 0, 1.0 + 10 * np.array([r[3] for r in rows]), 0.0),
        }
    )
    clv = customer_lifetime_value(cdnow_bgnbd, cdnow_gamma_gamma, frame, horizon, rate)
    assert (clv >= 0).all() and np.isfinite(clv).all()


@settings(max_examples=8, deadline=None)
@given(seed=st.integers(0, 10_000))
def test_fit_on_unique_rows_with_weights_equals_fit_on_expanded_rows(seed):
    # whole-period recency and T (as btyd_summary makes them) give many duplicates
    sims = simulate_bgnbd(400, 52.0, CDNOW_PARAMS, random_state=seed)
    sims["recency"] = np.floor(sims["recency"])
    grouped = sims.groupby(["frequency", "recency", "T"]).size().rename("weights").reset_index()
    a, b = BetaGeoNBD().fit(sims), BetaGeoNBD().fit(grouped)
    # both collapse to the same unique rows in canonical (sorted) order: same arithmetic
    np.testing.assert_array_equal(a.params_, b.params_)
    assert a.log_likelihood_ == b.log_likelihood_
