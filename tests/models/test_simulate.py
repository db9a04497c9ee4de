"""Simulators: reproducibility, shapes, and parameter recovery by the estimators."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from rfmml.models import BetaGeoNBD, GammaGamma, simulate_bgnbd, simulate_gamma_gamma

TRUE_BGNBD = {"r": 0.25, "alpha": 4.0, "a": 0.8, "b": 2.5}  # Hardie note 027's example values
TRUE_GAMMA_GAMMA = {"p": 6.25, "q": 3.74, "v": 15.44}  # CDNOW, Hardie note 025


def test_simulate_bgnbd_is_reproducible_and_valid():
    T = np.random.default_rng(42).uniform(10, 80, size=1000)
    a = simulate_bgnbd(1000, T, TRUE_BGNBD, random_state=42)
    b = simulate_bgnbd(1000, T, TRUE_BGNBD, random_state=np.random.default_rng(42))
    pd.testing.assert_frame_equal(a, b)
    assert list(a.columns) == ["frequency", "recency", "T"] and a.index.name == "customer_id"
    assert (a["recency"] <= a["T"]).all() and (a["frequency"] == np.floor(a["frequency"])).all()
    assert (a.loc[a["frequency"] == 0, "recency"] == 0).all()
    assert not a.equals(simulate_bgnbd(1000, T, TRUE_BGNBD, random_state=43))


def test_simulated_mean_purchases_match_eq_7():
    # E[X(T)] of a new customer, FHL (2005) eq. 7: the sample mean of 20k customers
    # has standard error sd / sqrt(20000) ~ 0.02; allow 4 of them.
    sims = simulate_bgnbd(20_000, 52.0, TRUE_BGNBD, random_state=42)
    model = BetaGeoNBD().fit(sims)
    model.params_ = pd.Series(TRUE_BGNBD)
    expected = model.expected_purchases_new_customer(52.0)
    se = sims["frequency"].std() / np.sqrt(len(sims))
    assert abs(sims["frequency"].mean() - expected) < 4 * se


@pytest.mark.slow
def test_bgnbd_recovers_simulation_parameters():
    # 20k customers, ages spread over 10-80 periods. Each estimate must lie within
    # 4 standard errors (from summary_) of the truth: for 4 roughly normal MLEs the
    # chance of a false failure is below 3e-4, while a biased likelihood or wrong
    # gradient would miss by many standard errors at this sample size.
    T = np.random.default_rng(42).uniform(10, 80, size=20_000)
    sims = simulate_bgnbd(20_000, T, TRUE_BGNBD, random_state=42)
    model = BetaGeoNBD().fit(sims)
    z = (model.params_ - pd.Series(TRUE_BGNBD)) / model.summary_["std_error"]
    assert (z.abs() < 4).all(), z.to_dict()


@pytest.mark.slow
def test_gamma_gamma_recovers_simulation_parameters():
    # same 4-standard-error rule as above, on the spend of the simulated repeat buyers
    rng = np.random.default_rng(42)
    frequency = pd.Series(rng.integers(1, 15, size=20_000).astype(float))
    spend = simulate_gamma_gamma(frequency, TRUE_GAMMA_GAMMA, random_state=rng)
    frame = pd.DataFrame({"frequency": frequency, "monetary_value": spend})
    model = GammaGamma().fit(frame)
    z = (model.params_ - pd.Series(TRUE_GAMMA_GAMMA)) / model.summary_["std_error"]
    assert (z.abs() < 4).all(), z.to_dict()


def test_simulate_gamma_gamma_zero_for_one_time_buyers():
    out = simulate_gamma_gamma(np.array([0, 1, 5]), TRUE_GAMMA_GAMMA, random_state=42)
    assert out[0] == 0 and (out[1:] > 0).all()
    with pytest.raises(ValueError, match=r"missing \['v'\]"):
        simulate_gamma_gamma([1], {"p": 1.0, "q": 2.0}, random_state=42)


@pytest.mark.slow
def test_bgnbd_recovers_parameters_from_a_simulated_transaction_log():
    # End to end: log -> btyd_summary (days) -> fit. Day rounding of recency/T
    # and same-day purchases merging shift the estimates by far less than one
    # standard error at these rates (mean lambda 0.008 per day), so the same
    # 4-standard-error rule as above applies.
    from rfmml.data.simulate import DEFAULT_BGNBD_PARAMS_DAYS, simulate_transactions
    from rfmml.features import btyd_summary

    tx = simulate_transactions(20_000, random_state=42)
    end = tx.attrs["simulation"]["observation_end"]
    summary = btyd_summary(tx, observation_end=end, freq="D")
    model = BetaGeoNBD().fit(summary)
    z = (model.params_ - pd.Series(DEFAULT_BGNBD_PARAMS_DAYS)) / model.summary_["std_error"]
    assert (z.abs() < 4).all(), z.to_dict()
