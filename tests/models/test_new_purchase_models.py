"""ParetoNBD, ModifiedBetaGeoNBD and BetaGeoBetaBinom: published fits, lifetimes parity,
recovery, persistence, the shared purchase-model questions and bad input."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
from lifetimes import BetaGeoBetaBinomFitter, ModifiedBetaGeoFitter, ParetoNBDFitter
from sklearn.base import clone
from sklearn.exceptions import NotFittedError

from rfmml.data.datasets import _lifetimes_datasets
from rfmml.errors import ConvergenceError, DataError
from rfmml.models import (
    BetaGeoBetaBinom,
    ModifiedBetaGeoNBD,
    ParetoNBD,
    load_model,
    model_kinds,
    simulate_bgbb,
    simulate_mbgnbd,
    simulate_pareto_nbd,
)

PARETO = {"r": 0.553, "alpha": 10.58, "s": 0.606, "beta": 11.67}  # FHL 2005, CDNOW weeks
MBG = {"r": 0.525, "alpha": 6.183, "a": 0.891, "b": 1.614}  # MBG/NBD on CDNOW
BGBB = {"alpha": 1.204, "beta": 0.750, "gamma": 0.657, "delta": 2.784}  # FHS 2010, donations


@pytest.fixture(scope="module")
def donations() -> pd.DataFrame:
    """lifetimes' donations data as a BG/BB summary (T = opportunities), with weights."""
    d = pd.read_csv(_lifetimes_datasets() / "donations.csv")
    return d.rename(columns={"periods": "T"})


@pytest.fixture(scope="module")
def cdnow_pareto(cdnow_summary) -> ParetoNBD:
    return ParetoNBD().fit(cdnow_summary)


@pytest.fixture(scope="module")
def cdnow_mbg(cdnow_summary) -> ModifiedBetaGeoNBD:
    return ModifiedBetaGeoNBD().fit(cdnow_summary)


@pytest.fixture(scope="module")
def donations_bgbb(donations) -> BetaGeoBetaBinom:
    return BetaGeoBetaBinom().fit(donations)


def _ages(n: int, seed: int) -> np.ndarray:
    return np.floor(np.random.default_rng(seed).uniform(20, 78, n))  # whole weeks, as CDNOW


# ------------------------------------------------------------ published fits
def test_pareto_nbd_matches_fader_hardie_lee_2005(cdnow_pareto):
    # published to 3-4 significant digits: tolerances of half a unit in the last digit
    p = cdnow_pareto.params_
    assert p["r"] == pytest.approx(0.553, abs=5e-4)
    assert p["alpha"] == pytest.approx(10.58, abs=5e-3)
    assert p["s"] == pytest.approx(0.606, abs=5e-4)
    assert p["beta"] == pytest.approx(11.67, abs=5e-3)
    # FHL05 print -9595.0 and the BTYD walkthrough -9594.98 (its own optimiser): the
    # optimum must round to the former and be at least as high as the latter
    assert cdnow_pareto.log_likelihood_ == pytest.approx(-9595.0, abs=0.05)
    assert cdnow_pareto.log_likelihood_ >= -9594.98
    one = pd.DataFrame({"frequency": [26.0], "recency": [30.86], "T": [31.0]})
    assert cdnow_pareto.expected_purchases(one, 52.0).iloc[0] == pytest.approx(25.46, abs=5e-3)
    assert cdnow_pareto.probability_alive(one).iloc[0] == pytest.approx(0.998, abs=5e-4)


def test_mbgnbd_matches_published_cdnow_estimates(cdnow_mbg):
    expected = {"r": 0.525, "alpha": 6.183, "a": 0.891, "b": 1.614}
    for k, v in expected.items():  # half a unit in the last printed digit
        assert cdnow_mbg.params_[k] == pytest.approx(v, abs=5e-4)


def test_bgbb_matches_fader_hardie_shang_2010(donations_bgbb, donations):
    p = donations_bgbb.params_
    for k, v in BGBB.items():
        assert p[k] == pytest.approx(v, abs=1e-3)  # delta printed as 2.783/2.784 across sources
    assert donations_bgbb.log_likelihood_ == pytest.approx(-33225.6, abs=0.05)
    three = pd.DataFrame({"frequency": [0, 2, 6], "recency": [0, 4, 6], "T": [6, 6, 6]})
    np.testing.assert_allclose(
        donations_bgbb.probability_alive(three), [0.11, 0.59, 0.93], atol=0.005
    )
    assert donations_bgbb.n_customers_ == 11_104


def test_standard_errors_are_positive_and_finite(cdnow_pareto, cdnow_mbg, donations_bgbb):
    for model in (cdnow_pareto, cdnow_mbg, donations_bgbb):
        se = model.summary_["std_error"]
        assert np.all(np.isfinite(se)) and np.all(se > 0)


# ---------------------------------------------------------- lifetimes parity
def test_pareto_nbd_parity_with_lifetimes_on_cdnow(cdnow_pareto, cdnow_summary):
    s = cdnow_summary
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        # lifetimes' default Nelder-Mead tolerance (1e-4) stops short of the optimum
        theirs = ParetoNBDFitter().fit(s["frequency"], s["recency"], s["T"], tol=1e-10,
                                       maxiter=20_000)  # fmt: skip
    # both at the same optimum: measured 2e-8; the issue asks for 1e-4
    np.testing.assert_allclose(cdnow_pareto.params_, theirs.params_[list(PARETO)], rtol=1e-4)


def test_mbgnbd_parity_with_lifetimes_on_cdnow(cdnow_mbg, cdnow_summary):
    s = cdnow_summary
    theirs = ModifiedBetaGeoFitter().fit(s["frequency"], s["recency"], s["T"])
    np.testing.assert_allclose(cdnow_mbg.params_, theirs.params_[list(MBG)], rtol=1e-4)


def test_bgbb_parity_with_lifetimes_on_donations(donations_bgbb, donations):
    d = donations
    theirs = BetaGeoBetaBinomFitter().fit(d["frequency"], d["recency"], d["T"], d["weights"])
    np.testing.assert_allclose(donations_bgbb.params_, theirs.params_[list(BGBB)], rtol=1e-4)


@pytest.mark.slow
def test_parity_with_lifetimes_on_simulated_data():
    # 2,000 simulated customers per model, fresh lifetimes fitters; same optimum to 1e-4
    pareto_sim = simulate_pareto_nbd(2000, _ages(2000, 1), PARETO, random_state=11)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        lt = ParetoNBDFitter().fit(
            pareto_sim["frequency"], pareto_sim["recency"], pareto_sim["T"], tol=1e-10,
            maxiter=20_000,
        )  # fmt: skip
    np.testing.assert_allclose(
        ParetoNBD().fit(pareto_sim).params_, lt.params_[list(PARETO)], rtol=1e-4
    )
    mbg_sim = simulate_mbgnbd(2000, _ages(2000, 2), MBG, random_state=12)
    lt = ModifiedBetaGeoFitter().fit(mbg_sim["frequency"], mbg_sim["recency"], mbg_sim["T"])
    np.testing.assert_allclose(
        ModifiedBetaGeoNBD().fit(mbg_sim).params_, lt.params_[list(MBG)], rtol=1e-4
    )
    bgbb_sim = simulate_bgbb(2000, 8, BGBB, random_state=13)
    lt = BetaGeoBetaBinomFitter().fit(bgbb_sim["frequency"], bgbb_sim["recency"], bgbb_sim["T"])
    np.testing.assert_allclose(
        BetaGeoBetaBinom().fit(bgbb_sim).params_, lt.params_[list(BGBB)], rtol=1e-4
    )


def test_penalizer_matches_lifetimes(cdnow_summary, donations):
    s, d = cdnow_summary, donations
    ours = ModifiedBetaGeoNBD(penalizer=0.01).fit(s)
    theirs = ModifiedBetaGeoFitter(penalizer_coef=0.01).fit(s["frequency"], s["recency"], s["T"])
    np.testing.assert_allclose(ours.params_, theirs.params_[list(MBG)], rtol=1e-4)
    ours = BetaGeoBetaBinom(penalizer=0.01).fit(d)
    theirs = BetaGeoBetaBinomFitter(penalizer_coef=0.01).fit(
        d["frequency"], d["recency"], d["T"], d["weights"]
    )
    np.testing.assert_allclose(ours.params_, theirs.params_[list(BGBB)], rtol=1e-4)


# --------------------------------------------------------- parameter recovery
@pytest.mark.slow
@pytest.mark.parametrize(
    ("model", "simulate", "truth", "horizon"),
    [
        (ParetoNBD, simulate_pareto_nbd, PARETO, _ages(20_000, 3)),
        (ModifiedBetaGeoNBD, simulate_mbgnbd, MBG, _ages(20_000, 4)),
        (BetaGeoBetaBinom, simulate_bgbb, BGBB, np.random.default_rng(5).integers(4, 16, 20_000)),
    ],
    ids=["pareto_nbd", "mbgnbd", "bgbb"],
)
def test_parameter_recovery(model, simulate, truth, horizon):
    sims = simulate(20_000, horizon, truth, random_state=42)
    fitted = model().fit(sims)
    # each estimate within 4 of its own standard errors of the truth (a 4-sigma band per
    # parameter; with this fixed seed the largest deviation is about 2 sigma)
    z = (fitted.params_ - pd.Series(truth)) / fitted.summary_["std_error"]
    assert (z.abs() < 4).all(), z.to_dict()


# ------------------------------------------------------------- persistence
@pytest.mark.parametrize("name", ["pareto", "mbg", "bgbb"])
def test_json_round_trip_predicts_identically(
    name, cdnow_pareto, cdnow_mbg, donations_bgbb, cdnow_summary, donations, tmp_path
):
    model, X = {
        "pareto": (cdnow_pareto, cdnow_summary),
        "mbg": (cdnow_mbg, cdnow_summary),
        "bgbb": (donations_bgbb, donations),
    }[name]
    path = model.save(tmp_path / f"{name}.json")
    loaded = load_model(path)
    assert type(loaded) is type(model) and type(model).kind in model_kinds()
    assert type(model).load(path).get_params() == model.get_params()
    pd.testing.assert_series_equal(loaded.params_, model.params_)
    for method in ("probability_alive",):
        pd.testing.assert_series_equal(getattr(loaded, method)(X), getattr(model, method)(X))
    pd.testing.assert_series_equal(loaded.expected_purchases(X, 5), model.expected_purchases(X, 5))
    pd.testing.assert_series_equal(
        loaded.probability_no_purchase(X, 5), model.probability_no_purchase(X, 5)
    )


def test_estimator_contract(cdnow_summary):
    model = ParetoNBD(penalizer=0.001)
    assert clone(model).get_params() == model.get_params()
    with pytest.raises(NotFittedError):
        model.probability_alive(cdnow_summary)
    assert model.fit(cdnow_summary) is model
    first = model.params_.copy()
    np.testing.assert_array_equal(model.fit(cdnow_summary).params_, first)


def test_fit_on_unique_rows_with_weights_equals_fit_on_all_rows(cdnow_summary):
    s = cdnow_summary[["frequency", "recency", "T"]]
    counts = s.value_counts().rename("weights").reset_index()
    full = ParetoNBD().fit(s)
    grouped = ParetoNBD().fit(counts)
    # both fits see the same unique rows and weights: identical optimisation
    np.testing.assert_array_equal(full.params_.to_numpy(), grouped.params_.to_numpy())


def test_failed_fit_leaves_the_estimator_unfitted(cdnow_summary):
    model = ParetoNBD().fit(cdnow_summary)
    model.set_params(max_iter=1)
    with pytest.raises(ConvergenceError, match=r"ParetoNBD fit did not converge"):
        model.fit(cdnow_summary)
    assert not hasattr(model, "params_")
    with pytest.raises(NotFittedError):
        model.probability_alive(cdnow_summary)


# ------------------------------------------------- the shared purchase questions
@pytest.mark.parametrize("name", ["pareto", "mbg", "bgbb"])
def test_probability_no_purchase_limits_and_next_purchase(
    name, cdnow_pareto, cdnow_mbg, donations_bgbb, cdnow_summary, donations
):
    model, X = {
        "pareto": (cdnow_pareto, cdnow_summary.iloc[:300]),
        "mbg": (cdnow_mbg, cdnow_summary.iloc[:300]),
        "bgbb": (donations_bgbb, donations),
    }[name]
    assert (model.probability_no_purchase(X, 0.0) == 1.0).all()
    never = model.probability_no_purchase(X, np.inf)
    soon = model.probability_no_purchase(X, 1.0)
    later = model.probability_no_purchase(X, 10.0)
    assert ((never <= later + 1e-12) & (later <= soon + 1e-12) & (never >= 0)).all()
    # a customer dead at T never buys again: P(never) >= 1 - P(alive) (BG/BB: alive at T + 1)
    if name != "bgbb":
        assert (never >= 1.0 - model.probability_alive(X) - 1e-12).all()
    within = model.probability_purchase_within(X, 10.0)
    np.testing.assert_allclose(within, 1.0 - later)
    median = model.next_purchase_quantile(X, 0.5)
    finite = np.isfinite(median)
    # the median of the time to the next purchase solves P(no purchase in t) = 0.5
    got = model.probability_no_purchase(X[finite.to_numpy()], median[finite]).to_numpy()
    assert (got <= 0.5 + 1e-9).all()
    assert (never[~finite.to_numpy()] >= 0.5).all()


def test_mbgnbd_one_time_buyers_are_not_all_alive(cdnow_mbg, cdnow_summary):
    one_time = cdnow_summary[cdnow_summary["frequency"] == 0]
    assert (cdnow_mbg.probability_alive(one_time) < 1.0).all()


def test_new_customer_questions(cdnow_pareto, cdnow_mbg, donations_bgbb):
    for model, t, n in ((cdnow_pareto, 39.0, 300), (cdnow_mbg, 39.0, 300), (donations_bgbb, 6, 7)):
        pmf = model.probability_of_purchases(np.arange(n), t)
        assert pmf.sum() == pytest.approx(1.0, abs=1e-9)  # quadrature (Pareto/NBD) 1e-12 per term
        assert np.arange(n) @ pmf == pytest.approx(
            model.expected_purchases_new_customer(t), rel=1e-8
        )


# ------------------------------------------------------------------ bad input
def _frame(**cols):
    base = {"frequency": [0.0, 2.0, 1.0], "recency": [0.0, 5.0, 3.0], "T": [10.0, 10.0, 8.0]}
    base.update(cols)
    return pd.DataFrame(base, index=pd.Index(["c1", "c2", "c3"], name="customer_id"))


@pytest.mark.parametrize("model", [ParetoNBD, ModifiedBetaGeoNBD, BetaGeoBetaBinom])
def test_recency_above_t_names_column_count_and_customer(model):
    with pytest.raises(DataError, match=r"recency must be <= T, but 1 of 3 .*customer_id='c2'"):
        model().fit(_frame(recency=[0.0, 12.0, 3.0]))


@pytest.mark.parametrize("model", [ParetoNBD, ModifiedBetaGeoNBD, BetaGeoBetaBinom])
def test_all_one_time_buyers_are_rejected(model):
    frame = _frame(frequency=[0.0, 0.0, 0.0], recency=[0.0, 0.0, 0.0])
    with pytest.raises(
        DataError, match=r"frequency must be > 0 for at least one customer .* 3 of 3 .*'c1'"
    ):
        model().fit(frame)


@pytest.mark.parametrize(
    ("frame", "match"),
    [
        (_frame(T=[10.0, 10.5, 8.0]), r"T must be an integer \(opportunities\).* 1 of 3 .*'c2'"),
        (_frame(T=[10.0, -1.0, 8.0]), r"T must be >= 0, but 1 of 3 .*'c2'"),
        (
            _frame(recency=[0.0, 4.5, 3.0]),
            r"recency must be an integer \(the last opportunity with a purchase\).* 1 of 3 .*'c2'",
        ),
        (_frame(frequency=[0.0, 6.0, 1.0]), r"frequency must be <= recency .* 1 of 3 .*'c2'"),
    ],
)
def test_bgbb_opportunities_must_be_counts(frame, match):
    with pytest.raises(DataError, match=match):
        BetaGeoBetaBinom().fit(frame)


def test_summary_in_another_time_unit_is_rejected(cdnow_summary):
    weekly = cdnow_summary.copy()
    weekly.attrs["freq"] = "W"
    model = ParetoNBD().fit(weekly)
    daily = weekly.copy()
    daily.attrs["freq"] = "D"
    with pytest.raises(
        DataError,
        match=r"T must be in the time unit the ParetoNBD was fitted on \('W'; this summary is "
        r"in 'D'\), but 2357 of 2357 customers .*customer_id=1\)",
    ):
        model.expected_purchases(daily, 4.0)
    with pytest.raises(DataError, match=r"fitted on \('W'"):
        model.probability_purchase_within(daily, 4.0)


def test_bgbb_horizons_are_whole_opportunities(donations_bgbb, donations):
    with pytest.raises(DataError, match=r"t counts transaction opportunities .* non-negative"):
        donations_bgbb.expected_purchases(donations, 2.5)


# ------------------------------------------------------------------ simulators
@pytest.mark.parametrize(
    ("model", "simulate", "truth", "horizon"),
    [
        (ParetoNBD, simulate_pareto_nbd, PARETO, 52.0),
        (ModifiedBetaGeoNBD, simulate_mbgnbd, MBG, 52.0),
        (BetaGeoBetaBinom, simulate_bgbb, BGBB, 6),
    ],
    ids=["pareto_nbd", "mbgnbd", "bgbb"],
)
def test_simulators_follow_the_models(model, simulate, truth, horizon):
    # the simulated distribution of X(T) for new customers against the model's closed forms
    n = 100_000
    sims = simulate(n, horizon, truth, random_state=7)
    m = model()
    m.params_ = pd.Series(truth)
    x = sims["frequency"].to_numpy()
    assert (sims["recency"] <= sims["T"]).all() and ((x > 0) | (sims["recency"] == 0)).all()
    # sample mean within 4 standard errors of E[X(T)] (a 4-sigma band; fixed seed)
    se = x.std() / np.sqrt(n)
    assert abs(x.mean() - m.expected_purchases_new_customer(horizon)) < 4 * se
    # and the share of each count 0..3 within 4 binomial standard errors of P(X(T) = k)
    k = np.arange(4)
    pmf = m.probability_of_purchases(k, horizon)
    share = np.array([(x == j).mean() for j in k])
    assert np.all(np.abs(share - pmf) < 4 * np.sqrt(pmf * (1 - pmf) / n))


# ------------------------------------------------------------------------ CLV
@pytest.mark.parametrize("name", ["pareto", "mbg"])
def test_clv_matches_lifetimes_with_the_new_models(
    name, cdnow_pareto, cdnow_mbg, cdnow_gamma_gamma, cdnow_summary
):
    # lifetimes' time=H, freq="M" steps one period of the summary at a time (see
    # test_clv.py), i.e. rfmml's horizon=H; fresh lifetimes objects at our parameters
    from lifetimes import GammaGammaFitter

    from rfmml.models import customer_lifetime_value

    model, fitter = {
        "pareto": (cdnow_pareto, ParetoNBDFitter()),
        "mbg": (cdnow_mbg, ModifiedBetaGeoFitter()),
    }[name]
    fitter.params_ = model.params_.copy()
    fitter.predict = fitter.conditional_expected_number_of_purchases_up_to_time
    gg = GammaGammaFitter()
    gg.params_ = cdnow_gamma_gamma.params_.copy()
    s = cdnow_summary
    ours = customer_lifetime_value(model, cdnow_gamma_gamma, s, horizon=12, discount_rate=0.01)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # lifetimes: log(0) at t = 0
        theirs = gg.customer_lifetime_value(
            fitter, s["frequency"], s["recency"], s["T"], s["monetary_value"], time=12,
            discount_rate=0.01, freq="M",
        )  # fmt: skip
    # the same closed forms evaluated differently: rounding only (measured 3e-13)
    np.testing.assert_allclose(ours, theirs, rtol=1e-9)
