"""Parameter draws and interval predictions (rfmml.models.uncertainty)."""

from __future__ import annotations

import copy

import numpy as np
import pandas as pd
import pytest

from rfmml.data.simulate import bgnbd_purchase_process
from rfmml.errors import DataError
from rfmml.models import BetaGeoNBD, customer_lifetime_value, load_model, model_class
from rfmml.models import _formulas as F
from rfmml.models.simulate import simulate_bgbb
from rfmml.models.uncertainty import (
    _count_pmf_if_alive_bgnbd,
    draw_params,
    interval_predictions,
    probability_top_fraction,
)

CDNOW_BGNBD = {"r": 0.243, "alpha": 4.414, "a": 0.793, "b": 2.426}
HORIZON = 39


def _draws(bg, gg, n=200, method="parametric", X=None, seed=0):
    return {
        "purchase_model": bg.draw_params(n, method=method, random_state=seed, X=X),
        "gamma_gamma": gg.draw_params(n, method=method, random_state=seed + 1, X=X),
    }


@pytest.fixture(scope="module")
def cdnow_intervals(cdnow_summary, cdnow_bgnbd, cdnow_gamma_gamma):
    segments = np.where(cdnow_summary["frequency"] > 0, "repeat", "one-time")
    return interval_predictions(
        cdnow_bgnbd, cdnow_gamma_gamma, cdnow_summary, horizon=HORIZON, discount_rate=0.01,
        interval=0.9, draws=_draws(cdnow_bgnbd, cdnow_gamma_gamma), segments=segments,
        random_state=0,
    )  # fmt: skip


# ------------------------------------------------------------------ draws
def test_parametric_draws_follow_the_inverse_hessian(cdnow_bgnbd):
    draws = cdnow_bgnbd.draw_params(4000, random_state=1)
    assert draws.shape == (4000, 4) and (draws > 0).all()
    cov = np.cov(np.log(draws), rowvar=False)
    # variance estimates from 4000 draws have relative standard error sqrt(2/4000) = 2.2%:
    # 10% is 4.5 standard errors
    np.testing.assert_allclose(np.diag(cov), np.diag(cdnow_bgnbd.covariance_log_), rtol=0.1)
    # the log-draws are centred on the estimate (standard error of the mean: sd / 63)
    sd = np.sqrt(np.diag(cdnow_bgnbd.covariance_log_))
    centre = np.log(draws).mean(axis=0) - np.log(cdnow_bgnbd.params_.to_numpy())
    assert np.all(np.abs(centre) < 4 * sd / np.sqrt(4000))


def test_covariance_matches_the_standard_errors(cdnow_bgnbd, cdnow_gamma_gamma):
    for model in (cdnow_bgnbd, cdnow_gamma_gamma):
        se = np.sqrt(np.diag(model.covariance_log_)) * model.params_.to_numpy()
        np.testing.assert_allclose(se, model.summary_["std_error"].to_numpy(), rtol=1e-12)


def test_draws_are_reproducible_and_seeded(cdnow_bgnbd, cdnow_summary):
    a = cdnow_bgnbd.draw_params(5, random_state=3)
    assert np.array_equal(a, cdnow_bgnbd.draw_params(5, random_state=3))
    assert not np.array_equal(a, cdnow_bgnbd.draw_params(5, random_state=4))
    b = cdnow_bgnbd.draw_params(3, method="bootstrap", random_state=3, X=cdnow_summary)
    assert np.array_equal(b, draw_params(cdnow_bgnbd, 3, "bootstrap", 3, X=cdnow_summary))


def test_draws_never_change_the_fitted_parameters(cdnow_bgnbd, cdnow_summary):
    before = cdnow_bgnbd.params_.copy()
    cdnow_bgnbd.draw_params(3, method="bootstrap", random_state=0, X=cdnow_summary)
    pd.testing.assert_series_equal(cdnow_bgnbd.params_, before)


def test_saved_models_keep_the_covariance(cdnow_gamma_gamma, tmp_path):
    path = cdnow_gamma_gamma.save(tmp_path / "gg.json")
    loaded = load_model(path)
    np.testing.assert_array_equal(loaded.covariance_log_, cdnow_gamma_gamma.covariance_log_)
    assert np.array_equal(loaded.draw_params(4, random_state=0),
                          cdnow_gamma_gamma.draw_params(4, random_state=0))  # fmt: skip
    del loaded.covariance_log_  # a document written before the covariance was kept
    diag = np.diag(loaded.draw_params(4000, random_state=0).std(axis=0))
    assert diag.shape == (3, 3)


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"n_draws": 0}, ValueError, r"n_draws must be an integer >= 1, got 0"),
        ({"n_draws": 2.5}, ValueError, r"n_draws must be an integer"),
        ({"n_draws": 5, "method": "mcmc"}, ValueError, r"method must be one of"),
        ({"n_draws": 5, "method": "bootstrap"}, ValueError, r"pass X=the training summary"),
    ],
)
def test_draw_params_errors(cdnow_bgnbd, kwargs, error, match):
    with pytest.raises(error, match=match):
        cdnow_bgnbd.draw_params(**kwargs)


def test_parametric_draws_need_a_finite_covariance(cdnow_bgnbd):
    model = copy.copy(cdnow_bgnbd)
    model.covariance_log_ = np.full((4, 4), np.nan)  # what a non-positive-definite Hessian gives
    with pytest.raises(DataError, match=r"no finite covariance .* use method='bootstrap'"):
        model.draw_params(3)


# ------------------------------------------------- count distribution (BG/NBD)
@pytest.mark.parametrize(("x", "t_x", "T"), [(0, 0, 30.0), (2, 10.5, 35.0), (12, 36.0, 38.0)])
def test_count_distribution_matches_the_closed_forms(x, t_x, T):
    theta = np.array([list(CDNOW_BGNBD.values())])
    cond = _count_pmf_if_alive_bgnbd(theta, np.array([x]), np.array([T]), 39.0, 400)[0, 0]
    alive = F.bgnbd_probability_alive(x, t_x, T, *CDNOW_BGNBD.values())
    pmf = alive * cond
    pmf[0] += 1 - alive
    assert pmf.sum() == pytest.approx(1.0, abs=1e-12)
    # its mean is FHL05 eq. (10) and its mass at 0 the probability of no purchase
    expected = F.bgnbd_expected_purchases(39.0, x, t_x, T, *CDNOW_BGNBD.values())
    assert pmf @ np.arange(401) == pytest.approx(float(expected), rel=1e-10)
    none = F.bgnbd_probability_no_purchase(39.0, x, t_x, T, *CDNOW_BGNBD.values())
    assert pmf[0] == pytest.approx(float(none), rel=1e-12)


def test_count_distribution_survives_extreme_draws():
    # poorly identified fits draw a, b of 1e-21 or 1e22: b + x + n - 1 must not round to 0 / 0
    theta = np.array([[0.3, 6.0, 1e-21, 1e-21], [0.3, 6.0, 1e22, 6e23]])
    cond = _count_pmf_if_alive_bgnbd(theta, np.array([0.0, 3.0]), np.array([40.0, 40.0]),
                                     26.0, 300)  # fmt: skip
    assert np.isfinite(cond).all()
    np.testing.assert_allclose(cond.sum(axis=-1), 1.0, atol=1e-9)


def test_count_distribution_matches_simulation():
    # customers alive at T = 0 with no history: the BG/NBD process of rfmml.data.simulate
    rng = np.random.default_rng(7)
    n = 200_000
    sim = bgnbd_purchase_process(np.full(n, 20.0), CDNOW_BGNBD, rng, record_times=False)
    counts = np.bincount(sim["frequency"], minlength=6)[:6] / n
    theta = np.array([list(CDNOW_BGNBD.values())])
    pmf = _count_pmf_if_alive_bgnbd(theta, np.array([0.0]), np.array([0.0]), 20.0, 5)[0, 0]
    # binomial standard error of a frequency p from 200k customers <= 0.0012: 5 of them
    np.testing.assert_allclose(counts, pmf, atol=0.006)


# --------------------------------------------------------- interval predictions
def test_bounds_contain_the_point_estimates(cdnow_intervals, cdnow_summary, cdnow_bgnbd,
                                            cdnow_gamma_gamma):  # fmt: skip
    s = cdnow_summary
    cols = cdnow_intervals.columns
    point = {
        "expected_purchases": cdnow_bgnbd.expected_purchases(s, HORIZON),
        "probability_alive": cdnow_bgnbd.probability_alive(s),
        "probability_no_purchase": cdnow_bgnbd.probability_no_purchase(s, HORIZON),
        "expected_order_value": cdnow_gamma_gamma.expected_order_value(s),
    }
    assert not cols.isna().any().any()
    for name, value in point.items():
        v = value.to_numpy()
        lower, upper = cols[f"{name}_lower"].to_numpy(), cols[f"{name}_upper"].to_numpy()
        assert (lower <= v).all() and (v <= upper).all(), name
        assert (upper > lower).mean() > 0.4, name  # not degenerate
    assert (cols["purchase_count_lower"] <= cols["purchase_count_upper"]).all()
    assert (cols["clv_lower"] <= cols["clv_upper"]).all()


def test_totals_come_from_joint_draws(cdnow_intervals, cdnow_summary, cdnow_bgnbd):
    totals = cdnow_intervals.totals.set_index("segment")
    assert list(totals.index) == ["one-time", "repeat", "all"]
    assert totals.loc["all", "n_customers"] == len(cdnow_summary)
    point = cdnow_bgnbd.expected_purchases(cdnow_summary, HORIZON).sum()
    assert totals.loc["all", "expected_purchases"] == pytest.approx(point, rel=1e-12)
    cols = cdnow_intervals.columns
    for name in ("expected_purchases", "clv"):
        low, high = totals.loc["all", f"{name}_lower"], totals.loc["all", f"{name}_upper"]
        assert low < totals.loc["all", name] < high
        # customers' errors partly cancel: narrower than the sum of their bounds
        assert high - low < cols[f"{name}_upper"].sum() - cols[f"{name}_lower"].sum()
    # the predictive total adds process noise around the expected total
    assert totals.loc["all", "purchase_count_lower"] < totals.loc["all", "expected_purchases_lower"]
    assert totals.loc["all", "purchase_count_upper"] > totals.loc["all", "expected_purchases_upper"]


def test_intervals_do_not_depend_on_the_chunk_size(cdnow_summary, cdnow_bgnbd, cdnow_gamma_gamma):
    draws = _draws(cdnow_bgnbd, cdnow_gamma_gamma, n=20)
    kw = dict(horizon=HORIZON, interval=0.8, draws=draws, random_state=0)
    big = interval_predictions(cdnow_bgnbd, cdnow_gamma_gamma, cdnow_summary, **kw)
    small = interval_predictions(cdnow_bgnbd, cdnow_gamma_gamma, cdnow_summary, **kw,
                                 chunk_elements=2_000)  # fmt: skip
    pd.testing.assert_frame_equal(big.columns, small.columns, rtol=1e-12)
    pd.testing.assert_frame_equal(big.totals, small.totals, rtol=1e-9)


def test_parametric_and_bootstrap_widths_agree_on_cdnow(cdnow_summary, cdnow_bgnbd,
                                                        cdnow_gamma_gamma):  # fmt: skip
    kw = dict(horizon=HORIZON, interval=0.9, random_state=0)
    s = cdnow_summary
    para = interval_predictions(
        cdnow_bgnbd, cdnow_gamma_gamma, s, draws=_draws(cdnow_bgnbd, cdnow_gamma_gamma, 200), **kw
    )
    boot = interval_predictions(cdnow_bgnbd, cdnow_gamma_gamma, s, draws=_draws(
        cdnow_bgnbd, cdnow_gamma_gamma, 200, "bootstrap", X=s), **kw)  # fmt: skip
    for name in ("expected_purchases", "probability_alive", "expected_order_value", "clv"):
        width_p = (para.columns[f"{name}_upper"] - para.columns[f"{name}_lower"]).to_numpy()
        width_b = (boot.columns[f"{name}_upper"] - boot.columns[f"{name}_lower"]).to_numpy()
        ok = (width_p > 1e-9) & (width_b > 1e-9)
        ratio = np.median(width_b[ok] / width_p[ok])
        # the two estimate the same sampling distribution; with 200 draws a 90% width
        # has a sampling error of about 10%: agreement within a factor 1.5 (stated in README)
        assert 1 / 1.5 < ratio < 1.5, (name, ratio)


def test_probability_top_decile(cdnow_summary, cdnow_bgnbd, cdnow_gamma_gamma):
    s = cdnow_summary
    draws = _draws(cdnow_bgnbd, cdnow_gamma_gamma, 50)
    p = probability_top_fraction(cdnow_bgnbd, cdnow_gamma_gamma, s, horizon=HORIZON,
                                 discount_rate=0.01, draws=draws, fraction=0.1)  # fmt: skip
    assert p.between(0, 1).all()
    # about a tenth of the customers are in the top decile in each draw
    assert p.mean() == pytest.approx(0.1, abs=0.01)
    clv = customer_lifetime_value(cdnow_bgnbd, cdnow_gamma_gamma, s, HORIZON, 0.01)
    assert p.iloc[int(clv.to_numpy().argmax())] == 1.0
    assert p.iloc[int(clv.to_numpy().argmin())] == 0.0


# ---------------------------------------------------------------- coverage
def _replicate(seed: int, n: int, t: float):
    """Simulate a calibration summary and holdout counts from the BG/NBD process."""
    rng = np.random.default_rng(seed)
    T = np.floor(rng.uniform(39.0, 78.0, size=n))  # CDNOW-like ages, in weeks
    sim = bgnbd_purchase_process(T + t, CDNOW_BGNBD, rng)
    cust, when = sim["customer"], sim["time"]
    cal = when <= T[cust]
    frequency = np.bincount(cust[cal], minlength=n).astype(float)
    recency = np.zeros(n)
    np.maximum.at(recency, cust[cal], when[cal])
    holdout = np.bincount(cust[~cal], minlength=n)
    summary = pd.DataFrame({"frequency": frequency, "recency": recency, "T": T})
    return summary, holdout


@pytest.mark.slow
def test_interval_coverage_on_simulated_customers():
    replicates, n, t = 150, 800, 26.0
    param_cover, count_cover, below, above = [], [], [], []
    for seed in range(replicates):
        summary, holdout = _replicate(seed, n, t)
        model = BetaGeoNBD().fit(summary)
        draws = {"purchase_model": model.draw_params(200, random_state=seed)}
        res = interval_predictions(model, None, summary, horizon=int(t), interval=0.9,
                                   draws=draws, random_state=seed).columns  # fmt: skip
        truth = F.bgnbd_expected_purchases(t, summary["frequency"], summary["recency"],
                                           summary["T"], *CDNOW_BGNBD.values())  # fmt: skip
        lower, upper = res["expected_purchases_lower"], res["expected_purchases_upper"]
        inside = (lower <= truth) & (truth <= upper)
        param_cover.append(inside.mean())
        lo, hi = res["purchase_count_lower"].to_numpy(), res["purchase_count_upper"].to_numpy()
        count_cover.append(((lo <= holdout) & (holdout <= hi)).mean())
        below.append((holdout < lo).mean())
        above.append((holdout > hi).mean())
    # Each replicate's coverage is an average of Bernoulli(0.9) indicators, so its variance
    # is at most 0.9 * 0.1 (all customers' indicators perfectly correlated): the mean over
    # 150 replicates has standard error <= sqrt(0.09 / 150) = 0.0245; allow 3 of them.
    tol = 3 * np.sqrt(0.9 * 0.1 / replicates)
    assert abs(np.mean(param_cover) - 0.9) < tol, np.mean(param_cover)
    # Counts are discrete: the interval holds at least 90% of the predictive mass, each tail
    # at most 5%, so the realised coverage is >= 0.9 (and each miss rate <= 0.05) up to tol.
    assert np.mean(count_cover) > 0.9 - tol, np.mean(count_cover)
    assert np.mean(below) < 0.05 + tol and np.mean(above) < 0.05 + tol
    # ... but not trivially wide: most customers' intervals are short
    assert np.mean(count_cover) < 0.99


@pytest.mark.parametrize("kind", ["ParetoNBD", "ModifiedBetaGeoNBD"])
def test_every_purchase_model_gets_intervals(kind, cdnow_summary, cdnow_gamma_gamma):
    model = model_class(kind)().fit(cdnow_summary)
    draws = {"purchase_model": model.draw_params(30, random_state=0),
             "gamma_gamma": cdnow_gamma_gamma.draw_params(30, random_state=1)}  # fmt: skip
    res = interval_predictions(model, cdnow_gamma_gamma, cdnow_summary, horizon=HORIZON,
                               interval=0.9, draws=draws).columns  # fmt: skip
    assert not res.isna().any().any()
    est = model.expected_purchases(cdnow_summary, HORIZON).to_numpy()
    assert (res["expected_purchases_lower"] <= est).all()
    assert (est <= res["expected_purchases_upper"]).all()
    assert (res["expected_purchases_upper"] > res["expected_purchases_lower"]).mean() > 0.9
    clv = customer_lifetime_value(model, cdnow_gamma_gamma, cdnow_summary, HORIZON, 0.0)
    assert (res["clv_lower"] <= clv).all() and (clv <= res["clv_upper"]).all()
    # every purchase model has a count distribution: whole-number predictive bounds
    lo, hi = res["purchase_count_lower"], res["purchase_count_upper"]
    assert (lo == np.floor(lo)).all() and (lo <= hi).all() and (hi >= 1).mean() > 0.5


def test_bgbb_draws_both_ways():
    # BG/BB: discrete opportunities (donations example parameters of Fader, Hardie & Shang 2010)
    summary = simulate_bgbb(3000, 6, {"alpha": 1.2, "beta": 0.75, "gamma": 0.66, "delta": 2.78},
                            random_state=0)  # fmt: skip
    model = model_class("BetaGeoBetaBinom")().fit(summary)
    para = model.draw_params(300, random_state=0)
    boot = model.draw_params(30, method="bootstrap", random_state=0, X=summary)
    assert para.shape == (300, 4) and boot.shape == (30, 4)
    # both spread around the estimate on the log scale by about its standard error; with 30
    # bootstrap draws a standard deviation is known to about 13%: a factor 1.6 is ~3.5 of them
    ratio = np.log(boot).std(axis=0) / np.log(para).std(axis=0)
    assert np.all((ratio > 1 / 1.6) & (ratio < 1.6)), ratio
