"""simulate_transactions: schema, windows, reproducibility, and the processes it draws from."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from rfmml.data.simulate import simulate_transactions


def test_log_has_canonical_columns_and_every_customer():
    tx = simulate_transactions(2_000, random_state=42)
    assert list(tx.columns) == ["customer_id", "timestamp", "amount"]
    assert tx["customer_id"].dtype == np.int64
    assert tx["timestamp"].dtype == "datetime64[ns]"
    assert tx["amount"].dtype == np.float64 and (tx["amount"] > 0).all()
    assert tx["customer_id"].nunique() == 2_000
    assert tx.groupby("customer_id")["timestamp"].is_monotonic_increasing.all()


def test_first_purchases_fall_in_the_acquisition_window_and_all_before_the_end():
    tx = simulate_transactions(
        2_000, start="2021-03-01", acquisition_days=30, observation_days=200, random_state=42
    )
    first = tx.groupby("customer_id")["timestamp"].min()
    start = pd.Timestamp("2021-03-01")
    assert first.min() >= start and first.max() <= start + pd.Timedelta(days=30)
    assert tx["timestamp"].max() <= start + pd.Timedelta(days=200)
    assert tx.attrs["simulation"]["observation_end"] == str(start + pd.Timedelta(days=200))


def test_seeded_runs_are_identical_and_seeds_differ():
    a = simulate_transactions(500, random_state=42)
    pd.testing.assert_frame_equal(a, simulate_transactions(500, random_state=42))
    pd.testing.assert_frame_equal(
        a, simulate_transactions(500, random_state=np.random.default_rng(42))
    )
    assert not a.equals(simulate_transactions(500, random_state=7))


def test_mean_amount_matches_gamma_gamma_population_mean():
    # E[amount] = p v / (q - 1) for Gamma(p, nu) amounts with nu ~ Gamma(q, v)
    # (Hardie note 025); with q = 10 the variance is finite and 20k customers
    # give a standard error below 1%. Allow 3%.
    params = {"p": 4.0, "q": 10.0, "v": 90.0}
    tx = simulate_transactions(20_000, gamma_gamma_params=params, random_state=42)
    per_customer = tx.groupby("customer_id")["amount"].mean()
    assert per_customer.mean() == pytest.approx(4.0 * 90.0 / 9.0, rel=0.03)


def test_no_dropout_and_fixed_rate_gives_poisson_counts():
    # a -> 0 makes p ~ Beta(a, b) ~ 0 (nobody drops out) and r large with alpha = r / rate
    # makes lambda ~ rate for everyone: repeat counts over 100 days are Poisson(rate * 100
    # * share of the window left after birth); with birth at day 0 it is Poisson(5).
    bg = {"r": 1e4, "alpha": 1e4 / 0.05, "a": 1e-6, "b": 1e3}
    tx = simulate_transactions(
        20_000, bgnbd_params=bg, acquisition_days=0, observation_days=100, random_state=42
    )
    repeats = tx.groupby("customer_id").size() - 1
    # Poisson(5): mean 5 and variance 5; sample mean se = sqrt(5 / 20000) = 0.016
    assert repeats.mean() == pytest.approx(5.0, abs=0.07)
    assert repeats.var() == pytest.approx(5.0, rel=0.05)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"n_customers": 0}, "n_customers must be a positive integer"),
        ({"n_customers": 10, "acquisition_days": 50, "observation_days": 20}, "acquisition_days"),
        ({"n_customers": 10, "bgnbd_params": {"r": 1.0}}, r"bgnbd_params needs .* missing"),
        ({"n_customers": 10, "random_state": "x"}, "random_state must be None"),
    ],
)
def test_bad_arguments(kwargs, match):
    with pytest.raises((ValueError, TypeError), match=match):
        simulate_transactions(**kwargs)
