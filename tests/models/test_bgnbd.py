"""BetaGeoNBD: published CDNOW numbers, lifetimes parity, errors and the estimator contract."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from lifetimes import BetaGeoFitter
from sklearn.base import clone
from sklearn.exceptions import NotFittedError

from rfmml.errors import ConvergenceError, DataError
from rfmml.models import BetaGeoNBD

#: Fader, Hardie & Lee (2005), CDNOW 2,357-customer sample, weeks.
PUBLISHED_BGNBD = {"r": 0.243, "alpha": 4.414, "a": 0.793, "b": 2.426}
PUBLISHED_BGNBD_LL = -9582.4

COLS = ["frequency", "recency", "T"]


def _arrays(s):
    return s["frequency"], s["recency"], s["T"]


def test_bgnbd_params_match_fader_hardie_lee_2005(cdnow_bgnbd):
    # Published to 3 decimals, so abs=1e-3 (we get 0.24259, 4.41353, 0.79289, 2.42575).
    assert cdnow_bgnbd.params_.to_dict() == pytest.approx(PUBLISHED_BGNBD, abs=1e-3)
    # Published to one decimal.
    assert cdnow_bgnbd.log_likelihood_ == pytest.approx(PUBLISHED_BGNBD_LL, abs=0.05)
    assert cdnow_bgnbd.n_customers_ == 2357


def test_bgnbd_fit_matches_lifetimes_betageofitter(
    cdnow_bgnbd, lifetimes_bgnbd, cdnow_summary, assert_lifetimes_parity
):
    # Same data, same optimum, same log-likelihood and standard errors.
    assert_lifetimes_parity(cdnow_bgnbd, lifetimes_bgnbd, cdnow_summary)


@pytest.mark.parametrize("penalizer", [0.001, 0.1])
def test_bgnbd_penalizer_matches_lifetimes_penalizer_coef(cdnow_summary, penalizer):
    ours = BetaGeoNBD(penalizer=penalizer).fit(cdnow_summary)
    theirs = BetaGeoFitter(penalizer_coef=penalizer).fit(*_arrays(cdnow_summary))
    np.testing.assert_allclose(
        ours.params_.to_numpy(), theirs.params_[ours.params_.index].to_numpy(), rtol=1e-4
    )
    # the penalty shrinks the parameters: the fit must differ from the unpenalised one
    assert not np.allclose(ours.params_, BetaGeoNBD().fit(cdnow_summary).params_, rtol=1e-3)


@pytest.fixture()
def lifetimes_at_our_params(cdnow_bgnbd, lifetimes_bgnbd):
    """lifetimes' fitter carrying OUR parameters, so only the formulas are compared."""
    lifetimes_bgnbd.params_ = cdnow_bgnbd.params_.copy()
    return lifetimes_bgnbd


def test_bgnbd_predictions_match_lifetimes_at_same_params(
    cdnow_bgnbd, lifetimes_at_our_params, cdnow_summary
):
    s, bg = cdnow_summary, lifetimes_at_our_params
    p_alive = cdnow_bgnbd.probability_alive(s)
    assert p_alive.index.equals(s.index)
    np.testing.assert_allclose(p_alive, bg.conditional_probability_alive(*_arrays(s)), rtol=1e-6)
    for t in (1.0, 10.0, 39.0, 52.0):
        ours = cdnow_bgnbd.expected_purchases(s, t)
        theirs = bg.conditional_expected_number_of_purchases_up_to_time(t, *_arrays(s))
        np.testing.assert_allclose(ours, theirs, rtol=1e-6)
    ts = np.array([1.0, 13.0, 39.0, 78.0])
    np.testing.assert_allclose(
        cdnow_bgnbd.expected_purchases_new_customer(ts),
        bg.expected_number_of_purchases_up_to_time(ts),
        rtol=1e-6,
    )
    for n in range(0, 8):
        assert cdnow_bgnbd.probability_of_purchases(n, 39.0) == pytest.approx(
            bg.probability_of_n_purchases_up_to_time(39.0, n), rel=1e-6
        )


def test_expected_purchases_accepts_per_customer_horizons(cdnow_bgnbd, cdnow_summary):
    s = cdnow_summary.iloc[:50]
    t = np.linspace(1, 60, len(s))
    per_customer = cdnow_bgnbd.expected_purchases(s, t)
    one_by_one = [cdnow_bgnbd.expected_purchases(s.iloc[[i]], t[i]).iloc[0] for i in range(len(s))]
    np.testing.assert_allclose(per_customer, one_by_one, rtol=1e-13)


def test_log_likelihood_per_customer_sums_to_fitted_total(cdnow_bgnbd, cdnow_summary):
    ll = cdnow_bgnbd.log_likelihood(cdnow_summary)
    assert ll.index.equals(cdnow_summary.index)
    assert ll.sum() == pytest.approx(cdnow_bgnbd.log_likelihood_, rel=1e-12)


def test_fit_on_unique_rows_with_weights_equals_fit_on_all_rows(cdnow_summary):
    full = cdnow_summary[COLS]
    grouped = full.groupby(COLS).size().rename("weights").reset_index()
    assert len(grouped) < len(full)
    a = BetaGeoNBD().fit(full)
    b = BetaGeoNBD().fit(grouped)
    # both collapse to the same unique rows in canonical (sorted) order: same arithmetic
    np.testing.assert_array_equal(a.params_, b.params_)
    assert a.log_likelihood_ == b.log_likelihood_
    assert a.n_customers_ == b.n_customers_ == 2357
    assert a.training_fingerprint_ == b.training_fingerprint_


def test_summary_table_and_convergence_diagnostics(cdnow_bgnbd):
    table = cdnow_bgnbd.summary_
    assert list(table.columns) == ["estimate", "std_error", "lower_95", "upper_95"]
    assert (table["std_error"] > 0).all()
    assert ((table["lower_95"] < table["estimate"]) & (table["estimate"] < table["upper_95"])).all()
    conv = cdnow_bgnbd.convergence_
    assert conv["success"] and conv["n_iter"] > 0 and set(conv["start"]) == {"r", "alpha", "a", "b"}


def test_convergence_error_says_what_was_tried(cdnow_summary):
    # one iteration per start cannot reach the optimum from any starting point
    with pytest.raises(ConvergenceError, match=r"did not converge from any of \d+ starting points"):
        BetaGeoNBD(max_iter=1).fit(cdnow_summary)


def test_user_starting_point_is_tried_first(cdnow_summary):
    model = BetaGeoNBD(initial_params={"r": 0.3, "alpha": 5.0, "a": 0.7, "b": 2.0}).fit(
        cdnow_summary
    )
    assert model.convergence_["start"] == pytest.approx(
        {"r": 0.3, "alpha": 5.0, "a": 0.7, "b": 2.0}
    )
    assert model.params_.to_dict() == pytest.approx(PUBLISHED_BGNBD, abs=1e-3)


# ------------------------------------------------------------------ bad input
def _frame(**cols):
    base = {"frequency": [0.0, 2.0, 1.0], "recency": [0.0, 5.0, 3.0], "T": [10.0, 10.0, 8.0]}
    base.update(cols)
    return pd.DataFrame(base, index=pd.Index(["c1", "c2", "c3"], name="customer_id"))


@pytest.mark.parametrize(
    ("frame", "match"),
    [
        (_frame().drop(columns="T"), r"needs columns .* \['T'\] are missing"),
        (_frame(recency=[0.0, 12.0, 3.0]), r"recency must be <= T, but 1 of 3 .*customer_id='c2'"),
        (_frame(T=[10.0, -1.0, 8.0]), r"T must be >= 0, but 1 of 3 .*customer_id='c2'"),
        (
            _frame(frequency=[0.0, np.nan, 1.0]),
            r"frequency must be a number \(not NaN\), but 1 of 3 .*'c2'",
        ),
        (_frame(frequency=[0.0, 2.5, 1.5]), r"frequency must be an integer .* 2 of 3 .*'c2'"),
        (
            _frame(recency=[1.0, 5.0, 3.0]),
            r"recency must be 0 for customers with frequency 0, but 1 of 3 .*'c1'",
        ),
        (_frame(frequency=["0", "2", "1"]), r"frequency must be numeric"),
        (_frame(weights=[1.0, 0.0, 2.0]), r"weights must be > 0, but 1 of 3 .*'c2'"),
        (_frame().iloc[:0], r"empty summary frame \(0 customers\)"),
    ],
)
def test_bad_input_raises_data_error_naming_column_and_count(frame, match):
    with pytest.raises(DataError, match=match):
        BetaGeoNBD().fit(frame)


def test_all_zero_ages_are_rejected():
    frame = pd.DataFrame({"frequency": [0.0, 0.0], "recency": [0.0, 0.0], "T": [0.0, 0.0]})
    with pytest.raises(DataError, match=r"T must be > 0 for at least one customer, but all 2"):
        BetaGeoNBD().fit(frame)


def test_non_dataframe_input_is_a_type_error():
    with pytest.raises(TypeError, match="expects a pandas DataFrame"):
        BetaGeoNBD().fit(np.zeros((3, 3)))


def test_negative_penalizer_is_rejected_in_fit(cdnow_summary):
    model = BetaGeoNBD(penalizer=-1.0)  # __init__ does not validate
    with pytest.raises(ValueError, match="penalizer must be a number >= 0"):
        model.fit(cdnow_summary)


# ------------------------------------------------------------------ contract
def test_estimator_contract(cdnow_summary, tmp_path):
    model = BetaGeoNBD(penalizer=0.001, max_iter=500)
    assert model.get_params() == clone(model).get_params()
    assert clone(model).set_params(**model.get_params()).get_params() == model.get_params()
    with pytest.raises(NotFittedError):
        model.probability_alive(cdnow_summary)
    assert model.fit(cdnow_summary) is model
    first = model.params_.copy()
    assert not any(
        isinstance(v, pd.DataFrame) for v in vars(model).values() if v is not model.summary_
    )
    np.testing.assert_array_equal(model.fit(cdnow_summary).params_, first)  # refit, same result
    path = model.save(tmp_path / "bgnbd.json")
    loaded = BetaGeoNBD.load(path)
    assert loaded.get_params() == model.get_params()
    pd.testing.assert_series_equal(
        loaded.expected_purchases(cdnow_summary, 39.0),
        model.expected_purchases(cdnow_summary, 39.0),
    )


def test_predictions_keep_multiindex(cdnow_bgnbd, cdnow_summary):
    s = cdnow_summary.iloc[:10].copy()
    s.index = pd.MultiIndex.from_product(
        [range(5), ["web", "store"]], names=["customer_id", "channel"]
    )
    out = cdnow_bgnbd.probability_alive(s)
    assert out.index.equals(s.index)


def test_warm_start_path_reaches_the_same_optimum(monkeypatch):
    # Above WARM_START_ROWS unique rows the fit starts from a subsample's optimum and
    # polishes with quasi-Newton steps; it must land where plain L-BFGS-B from lifetimes'
    # start lands. Both stop at max|gradient| < 1e-10 of the mean objective, so the
    # optima agree to ~1e-8 relative; 1e-6 leaves room for the flatter directions.
    from rfmml.models import _fitting, simulate_bgnbd

    T = np.random.default_rng(42).uniform(10, 80, size=60_000)
    sims = simulate_bgnbd(60_000, T, PUBLISHED_BGNBD, random_state=42)
    warm = BetaGeoNBD().fit(sims)
    assert warm.convergence_["warm_start_from_subsample"]
    monkeypatch.setattr(_fitting, "WARM_START_ROWS", 10**9)
    cold = BetaGeoNBD().fit(sims)
    assert not cold.convergence_["warm_start_from_subsample"]
    np.testing.assert_allclose(warm.params_, cold.params_, rtol=1e-6)
    assert warm.log_likelihood_ == pytest.approx(cold.log_likelihood_, rel=1e-12)
    np.testing.assert_allclose(warm.summary_["std_error"], cold.summary_["std_error"], rtol=1e-4)


def test_middle_subsample_reaches_the_same_optimum(monkeypatch):
    """Past MIDDLE_FROM_ROWS distinct rows a second, larger subsample is refined between the
    first one's optimum and the full data's: the same optimum, fewer full evaluations."""
    from rfmml.models import _fitting, simulate_bgnbd

    T = np.random.default_rng(7).uniform(10, 80, size=40_000)
    sims = simulate_bgnbd(40_000, T, PUBLISHED_BGNBD, random_state=7)
    refined: list[int] = []
    real_refine = _fitting._refine

    def counted(objective, *args, **kwargs):
        refined.append(1)
        return real_refine(objective, *args, **kwargs)

    monkeypatch.setattr(_fitting, "_refine", counted)
    monkeypatch.setattr(_fitting, "MIDDLE_FROM_ROWS", 20_000)
    monkeypatch.setattr(_fitting, "MIDDLE_ROWS", 8_000)
    three = BetaGeoNBD().fit(sims)
    assert len(refined) == 2  # the middle subsample, then the full data
    assert three.convergence_["warm_start_from_subsample"]
    monkeypatch.setattr(_fitting, "MIDDLE_FROM_ROWS", 10**9)
    refined.clear()
    two = BetaGeoNBD().fit(sims)
    assert len(refined) == 1
    assert three.convergence_["n_iter"] <= two.convergence_["n_iter"]
    monkeypatch.setattr(_fitting, "WARM_START_ROWS", 10**9)
    cold = BetaGeoNBD().fit(sims)
    for warm in (three, two):
        np.testing.assert_allclose(warm.params_, cold.params_, rtol=1e-6)
        assert warm.log_likelihood_ == pytest.approx(cold.log_likelihood_, rel=1e-12)
        np.testing.assert_allclose(warm.summary_["std_error"], cold.summary_["std_error"],
                                   rtol=1e-4)  # fmt: skip


@pytest.mark.parametrize(
    ("t", "match"),
    [
        (
            np.ones(3),
            r"t must be a scalar or have one value per customer \(2357\), got shape \(3,\)",
        ),
        (-1.0, r"t must be >= 0 and not NaN; 2357 values are not"),
    ],
)
def test_bad_horizon_for_expected_purchases(cdnow_bgnbd, cdnow_summary, t, match):
    with pytest.raises(DataError, match=match):
        cdnow_bgnbd.expected_purchases(cdnow_summary, t)


def test_infinite_values_and_negative_n_are_rejected(cdnow_bgnbd):
    with pytest.raises(DataError, match=r"T must be finite, but 1 of 3 .*'c3'"):
        BetaGeoNBD().fit(_frame(T=[10.0, 10.0, np.inf]))
    with pytest.raises(DataError, match=r"n must hold non-negative integers"):
        cdnow_bgnbd.probability_of_purchases(-1, 10.0)


def test_non_positive_definite_hessian_warns(cdnow_summary, monkeypatch):
    from rfmml.models import StandardErrorWarning, _base

    monkeypatch.setattr(_base, "fit_log_params", _with_hessian(_base.fit_log_params, -np.eye(4)))
    with pytest.warns(
        StandardErrorWarning, match="not positive definite .* standard errors are NaN"
    ):
        model = BetaGeoNBD().fit(cdnow_summary)
    assert model.summary_["std_error"].isna().all() and model.params_.notna().all()


def _with_hessian(fit, hessian):
    def patched(*args, **kwargs):
        outcome, _, warm = fit(*args, **kwargs)
        return outcome, hessian, warm

    return patched


def test_scoring_refuses_a_summary_in_another_time_unit(cdnow_tx):
    """BG/NBD fitted on weeks scored a daily summary without a word (expected purchases in
    the wrong unit); MBG/NBD and Pareto/NBD refused it, and now BG/NBD does too."""
    from rfmml.features import btyd_summary

    tx = cdnow_tx[cdnow_tx["customer_id"] <= 500]
    model = BetaGeoNBD().fit(btyd_summary(tx, freq="W"))
    daily = btyd_summary(tx, freq="D")
    for score in (model.probability_alive, lambda X: model.expected_purchases(X, 4)):
        with pytest.raises(DataError, match=r"^T must be in the time unit the BetaGeoNBD was "
                           r"fitted on \('W'; this summary is in 'D'\)"):  # fmt: skip
            score(daily)
    assert model.expected_purchases(btyd_summary(tx, freq="W"), 4).notna().all()
