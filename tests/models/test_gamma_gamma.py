"""GammaGamma: published CDNOW spend parameters, lifetimes parity, errors, warning."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from lifetimes import GammaGammaFitter
from sklearn.base import clone
from sklearn.exceptions import NotFittedError

from rfmml.errors import DataError
from rfmml.models import FrequencyMonetaryCorrelationWarning, GammaGamma

#: Fader & Hardie note 025, Gamma-Gamma on the CDNOW zbar data (lifetimes calls gamma v).
PUBLISHED_GAMMA_GAMMA = {"p": 6.25, "q": 3.74, "v": 15.44}


def test_gamma_gamma_params_match_hardie_note_025(cdnow_gamma_gamma):
    # published to 2 decimals; we get 6.2488, 3.7446, 15.4477
    assert cdnow_gamma_gamma.params_.to_dict() == pytest.approx(PUBLISHED_GAMMA_GAMMA, abs=1e-2)
    assert cdnow_gamma_gamma.n_customers_ == 946  # repeat customers of the 2,357
    # note 025 reports corr(frequency, zbar) = 0.11 on these data: no warning
    assert cdnow_gamma_gamma.correlation_ == pytest.approx(0.11, abs=0.01)


def test_gamma_gamma_fit_matches_lifetimes(
    cdnow_gamma_gamma, lifetimes_gamma_gamma, cdnow_summary, assert_lifetimes_parity
):
    assert_lifetimes_parity(cdnow_gamma_gamma, lifetimes_gamma_gamma, cdnow_summary)


def test_gamma_gamma_penalizer_matches_lifetimes(cdnow_summary):
    repeat = cdnow_summary[cdnow_summary["frequency"] > 0]
    ours = GammaGamma(penalizer=0.01).fit(cdnow_summary)
    theirs = GammaGammaFitter(penalizer_coef=0.01).fit(
        repeat["frequency"], repeat["monetary_value"]
    )
    np.testing.assert_allclose(ours.params_.to_numpy(), theirs.params_[["p", "q", "v"]], rtol=1e-4)


def test_expected_spend_matches_lifetimes_at_same_params(
    cdnow_gamma_gamma, lifetimes_gamma_gamma, cdnow_summary
):
    lifetimes_gamma_gamma.params_ = cdnow_gamma_gamma.params_.copy()
    s = cdnow_summary
    ours = cdnow_gamma_gamma.expected_order_value(s)
    assert ours.index.equals(s.index)
    theirs = lifetimes_gamma_gamma.conditional_expected_average_profit(
        s["frequency"], s["monetary_value"]
    )
    np.testing.assert_allclose(ours, theirs, rtol=1e-6)
    one_timers = ours[s["frequency"] == 0]
    assert np.allclose(one_timers, cdnow_gamma_gamma.population_mean_spend, rtol=1e-14)


def test_one_time_buyers_only_raise_data_error():
    frame = pd.DataFrame({"frequency": [0.0, 0.0], "monetary_value": [0.0, 0.0]})
    with pytest.raises(DataError, match=r"frequency > 0 .* all 2 customers are one-time buyers"):
        GammaGamma().fit(frame)


def test_one_repeat_customer_is_refused_in_one_line(cdnow_summary):
    """A log of one customer (CDNOW's 00005, 10 repeat purchases): no spread between
    customers to learn; said as such, not as a convergence failure about time units."""
    one = cdnow_summary[cdnow_summary["frequency"] > 0].head(1)
    with pytest.raises(DataError, match=r"at least 2 customers with repeat .* got 1 of 1 "):
        GammaGamma().fit(one)
    with_zero = pd.concat([one, one.assign(monetary_value=0.0).set_axis(["x"])])
    with pytest.raises(DataError, match=r"got 1 of 2 customers"):
        GammaGamma(zero_spend="exclude").fit(with_zero)
    GammaGamma().fit(cdnow_summary[cdnow_summary["frequency"] > 0].head(2))  # two: a fit


def test_non_positive_spend_of_repeat_customers_raises_data_error():
    frame = pd.DataFrame(
        {"frequency": [1.0, 2.0, 3.0], "monetary_value": [10.0, 0.0, 5.0]},
        index=pd.Index([7, 8, 9], name="customer_id"),
    )
    with pytest.raises(
        DataError, match=r"monetary_value must be > 0 .* 1 of 3 repeat customers .*customer_id=8"
    ):
        GammaGamma().fit(frame)


@pytest.mark.parametrize(
    ("frame", "match"),
    [
        (pd.DataFrame({"frequency": [1.0]}), r"\['monetary_value'\] are missing"),
        (
            pd.DataFrame({"frequency": [1.0, 2.0], "monetary_value": [3.0, -1.0]}),
            r"monetary_value must be >= 0, but 1 of 2",
        ),
        (
            pd.DataFrame({"frequency": [1.0, 2.0], "monetary_value": [3.0, np.nan]}),
            r"monetary_value must be a number \(not NaN\), but 1 of 2",
        ),
    ],
)
def test_bad_spend_input(frame, match):
    with pytest.raises(DataError, match=match):
        GammaGamma().fit(frame)


@pytest.mark.filterwarnings("ignore::rfmml.models.StandardErrorWarning")
def test_correlated_frequency_and_spend_warn():
    rng = np.random.default_rng(42)
    x = rng.integers(1, 20, size=500).astype(float)
    m = 5.0 * x + rng.gamma(2.0, 2.0, size=500)  # spend grows with frequency: |r| ~ 0.99
    frame = pd.DataFrame({"frequency": x, "monetary_value": m})
    with pytest.warns(
        FrequencyMonetaryCorrelationWarning, match=r"Pearson correlation 0\.9\d .* > 0\.3"
    ):
        GammaGamma().fit(frame)


def test_weights_equal_expanded_rows():
    rng = np.random.default_rng(42)
    x = rng.integers(1, 5, size=300).astype(float)
    m = np.round(rng.gamma(5.0, 6.0, size=300), 0)  # coarse values: many duplicate rows
    full = pd.DataFrame({"frequency": x, "monetary_value": m})
    grouped = full.groupby(["frequency", "monetary_value"]).size().rename("weights").reset_index()
    a, b = GammaGamma().fit(full), GammaGamma().fit(grouped)
    # both collapse to the same unique rows in canonical (sorted) order: same arithmetic
    np.testing.assert_array_equal(a.params_, b.params_)


def test_contract(cdnow_summary, tmp_path):
    model = GammaGamma(penalizer=0.0)
    assert clone(model).get_params() == model.get_params()
    with pytest.raises(NotFittedError):
        model.expected_order_value(cdnow_summary)
    assert model.fit(cdnow_summary) is model
    first = model.params_.copy()
    np.testing.assert_array_equal(model.fit(cdnow_summary).params_, first)
    loaded = GammaGamma.load(model.save(tmp_path / "gg.json"))
    pd.testing.assert_series_equal(
        loaded.expected_order_value(cdnow_summary), model.expected_order_value(cdnow_summary)
    )


def test_warm_start_path_reaches_the_same_optimum(monkeypatch):
    # see the BG/NBD test of the same name: subsample warm start + quasi-Newton polish
    # against plain L-BFGS-B, both to max|gradient| < 1e-10.
    from rfmml.models import _fitting, simulate_gamma_gamma

    rng = np.random.default_rng(42)
    frequency = pd.Series(rng.integers(1, 15, size=60_000).astype(float))
    spend = simulate_gamma_gamma(frequency, PUBLISHED_GAMMA_GAMMA, random_state=rng)
    frame = pd.DataFrame({"frequency": frequency, "monetary_value": spend})
    warm = GammaGamma().fit(frame)
    assert warm.convergence_["warm_start_from_subsample"]
    monkeypatch.setattr(_fitting, "WARM_START_ROWS", 10**9)
    cold = GammaGamma().fit(frame)
    np.testing.assert_allclose(warm.params_, cold.params_, rtol=1e-6)


def test_negative_penalizer_is_rejected_in_fit(cdnow_summary):
    with pytest.raises(ValueError, match="penalizer must be a number >= 0"):
        GammaGamma(penalizer=-0.5).fit(cdnow_summary)


def test_zero_spend_repeat_customers_can_be_excluded(cdnow_tx):
    from rfmml.features import btyd_summary

    summary = btyd_summary(cdnow_tx, freq="W")  # one repeat buyer with $0 repeat spend
    with pytest.raises(DataError, match=r"or fit with GammaGamma\(zero_spend='exclude'\)"):
        GammaGamma().fit(summary)
    model = GammaGamma(zero_spend="exclude").fit(summary)
    assert model.n_excluded_ == 1
    clean = summary[(summary["frequency"] == 0) | (summary["monetary_value"] > 0)]
    reference = GammaGamma().fit(clean)
    assert reference.n_excluded_ == 0
    np.testing.assert_allclose(model.params_, reference.params_, rtol=1e-12)
    with pytest.raises(ValueError, match="zero_spend must be 'error' or 'exclude'"):
        GammaGamma(zero_spend="drop").fit(clean)
