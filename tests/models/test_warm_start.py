"""The subsample warm start: multistart on the subsample, a local refinement on the full data.

Above ``WARM_START_ROWS`` unique rows, every model's fit runs its starting
points on an evenly spaced subsample and refines the subsample optimum on the
full data; a refinement that does not converge, or a degenerate subsample or
refined optimum (outside the ``degenerate_parameters`` bounds), gets the full
multistart instead. The oracle is the plain multistart on the full data
(``WARM_START_ROWS`` raised past the data): both stop at max|gradient| < 1e-10 of
the mean objective, so the optima must agree to 1e-7 relative, on simulated logs
with known parameters, on CDNOW (published values) and on Online Retail (a
degenerate daily fit, which must come out of the full multistart unchanged and
still be flagged).
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest

from rfmml.features import calibration_holdout
from rfmml.models import (
    BetaGeoBetaBinom,
    BetaGeoNBD,
    GammaGamma,
    ModifiedBetaGeoNBD,
    ParetoNBD,
    StandardErrorWarning,
    _fitting,
    simulate_bgbb,
    simulate_bgnbd,
    simulate_gamma_gamma,
    simulate_mbgnbd,
    simulate_pareto_nbd,
)

BGNBD = {"r": 0.243, "alpha": 4.414, "a": 0.793, "b": 2.426}  # FHL 2005, CDNOW weeks
PARETO = {"r": 0.553, "alpha": 10.58, "s": 0.606, "beta": 11.67}  # FHL 2005, CDNOW weeks
MBG = {"r": 0.525, "alpha": 6.183, "a": 0.891, "b": 1.614}  # MBG/NBD on CDNOW
BGBB = {"alpha": 1.204, "beta": 0.750, "gamma": 0.657, "delta": 2.784}  # FHS 2010, donations
GAMMA_GAMMA = {"p": 6.25, "q": 3.74, "v": 15.44}  # FH 2013 note 025, CDNOW


def _fit_both(model, frame, monkeypatch, warm_rows=None, subsample_rows=None):
    """(warm, cold): the fit with the subsample warm start, and the plain multistart."""
    with monkeypatch.context() as m:
        if warm_rows is not None:  # smaller data than the defaults need to take the warm path
            m.setattr(_fitting, "WARM_START_ROWS", warm_rows)
            m.setattr(_fitting, "SUBSAMPLE_ROWS", subsample_rows)
        warm = model.fit(frame)
        warm_convergence = dict(warm.convergence_)
        warm_params, warm_ll = warm.params_.copy(), warm.log_likelihood_
    with monkeypatch.context() as m:
        m.setattr(_fitting, "WARM_START_ROWS", 10**12)
        cold = model.__class__(**model.get_params()).fit(frame)
    assert not cold.convergence_["warm_start_from_subsample"]
    return (warm_params, warm_ll, warm_convergence), cold


def _simulated(kind: str) -> tuple[object, pd.DataFrame]:
    rng = np.random.default_rng(7)
    n = 30_000
    T = rng.uniform(10.0, 80.0, n)  # continuous ages: nearly every row distinct
    if kind == "BG/NBD":
        return BetaGeoNBD(), simulate_bgnbd(n, T, BGNBD, random_state=1)
    if kind == "MBG/NBD":
        return ModifiedBetaGeoNBD(), simulate_mbgnbd(n, T, MBG, random_state=2)
    if kind == "Pareto/NBD":
        return ParetoNBD(), simulate_pareto_nbd(n, T, PARETO, random_state=3)
    if kind == "BG/BB":
        opportunities = rng.integers(5, 60, n)  # whole opportunities, many distinct rows
        return BetaGeoBetaBinom(), simulate_bgbb(n, opportunities, BGBB, random_state=4)
    frequency = pd.Series(rng.integers(1, 20, n).astype(float))
    spend = simulate_gamma_gamma(frequency, GAMMA_GAMMA, random_state=5)
    return GammaGamma(), pd.DataFrame({"frequency": frequency, "monetary_value": spend})


@pytest.mark.parametrize("kind", ["BG/NBD", "MBG/NBD", "Pareto/NBD", "BG/BB", "Gamma-Gamma"])
def test_refinement_reaches_the_multistart_optimum_on_simulated_logs(kind, monkeypatch):
    model, frame = _simulated(kind)
    cols = [c for c in frame.columns if c in ("frequency", "recency", "T", "monetary_value")]
    frame = frame[cols]
    # BG/BB's rows are whole opportunities: fewer distinct rows than the default threshold
    small = kind == "BG/BB"
    (params, ll, convergence), cold = _fit_both(
        model, frame, monkeypatch, *((2_000, 500) if small else ())
    )
    assert convergence["warm_start_from_subsample"]
    assert convergence["n_starts_tried"] == 1  # the full data saw only the refinement
    # Gamma-Gamma's L-BFGS-B stops on the relative reduction of f with max|gradient|
    # 3e-8, 9e-7 (relative) from its optimum along the flat direction (Hessian
    # eigenvalue 4e-3); the refinement stops with the next Newton step below 1e-9
    # (measured 6e-12), so it is the closer one there, and never the worse fit.
    rtol = 2e-6 if kind == "Gamma-Gamma" else 1e-7
    np.testing.assert_allclose(params, cold.params_, rtol=rtol)
    assert ll == pytest.approx(cold.log_likelihood_, rel=1e-12)
    assert ll >= cold.log_likelihood_ - 1e-12 * abs(ll)


def test_refinement_on_cdnow_reaches_the_published_fit(cdnow_summary, monkeypatch):
    # CDNOW has fewer distinct rows than WARM_START_ROWS: lowered so that the warm path
    # runs, with a subsample of about 200 rows
    s = cdnow_summary[["frequency", "recency", "T"]]
    n_unique = len(s.drop_duplicates())
    (params, ll, convergence), cold = _fit_both(BetaGeoNBD(), s, monkeypatch, n_unique // 2, 200)
    assert convergence["warm_start_from_subsample"]
    np.testing.assert_allclose(params, cold.params_, rtol=1e-7)
    np.testing.assert_allclose(params, list(BGNBD.values()), rtol=2e-3)  # FHL 2005 (3 digits)
    assert ll == pytest.approx(-9582.4, abs=0.05)


@pytest.fixture(scope="module")
def retail_daily(online_retail_tx) -> pd.DataFrame:
    """Online Retail's calibration period in days (the CLI's degenerate example)."""
    cal = calibration_holdout(online_retail_tx, "2011-08-31", "2011-12-09", freq="D")
    return cal.rename(columns={"frequency_cal": "frequency", "recency_cal": "recency",
                               "T_cal": "T"})[["frequency", "recency", "T"]]  # fmt: skip


def test_degenerate_online_retail_fit_comes_from_the_full_multistart(retail_daily, monkeypatch):
    # Online Retail in days: no dropout is identified, a runs to 0 (flagged "at bound").
    # The subsample of ~400 rows is degenerate too (a ~ 7e-7): the full data get the
    # multistart, so the fit is the one without a subsample, flags included.
    n_unique = len(retail_daily.drop_duplicates())
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", StandardErrorWarning)
        (params, ll, convergence), cold = _fit_both(
            BetaGeoNBD(), retail_daily, monkeypatch, n_unique // 2, 400
        )
    assert not convergence["warm_start_from_subsample"]
    np.testing.assert_array_equal(params, cold.params_)
    assert ll == cold.log_likelihood_
    flagged = cold.degenerate_parameters()
    assert "a" in flagged.index and (flagged["reason"] == "at bound").all()


class _Shifted:
    """Data of a quadratic objective with its minimum at ``centre`` (in log-parameters)."""

    def __init__(self, centre):
        self.centre = np.asarray(centre, dtype=float)
        self.n = 1.0


def _quadratic(data):
    def objective(x):
        d = x - data.centre
        return float(d @ d), 2.0 * d

    return objective


def test_refinement_ending_beyond_the_bounds_gives_way_to_the_full_multistart():
    # The subsample's minimum is interior, the full data's beyond the lower bound: the
    # refinement converges there, and since that is a degenerate optimum the fit is the
    # full multistart's (the same point here, but not warm-started).
    starts = [np.zeros(2), np.ones(2)]
    bounds = (np.full(2, np.log(1e-4)), np.full(2, np.log(1e4)))
    full, sub = _Shifted([-20.0, 1.0]), _Shifted([-1.0, 1.0])
    kw = {"model": "quadratic", "tol": 1e-10, "max_iter": 100}
    outcome, _, warm = _fitting.fit_log_params(_quadratic, full, sub, starts, bounds=bounds, **kw)
    assert not warm and outcome.attempts[0]["start"] == [0.0, 0.0]
    np.testing.assert_allclose(outcome.log_params, [-20.0, 1.0], atol=1e-6)
    # without bounds the refinement stands
    outcome, _, warm = _fitting.fit_log_params(_quadratic, full, sub, starts, **kw)
    assert warm and outcome.message.startswith("quasi-Newton polish")
    np.testing.assert_allclose(outcome.log_params, [-20.0, 1.0], atol=1e-9)
    # a subsample optimum beyond the bounds: no refinement at all
    outcome, _, warm = _fitting.fit_log_params(
        _quadratic, _Shifted([1.0, 1.0]), _Shifted([-15.0, 1.0]), starts, bounds=bounds, **kw
    )
    assert not warm
    np.testing.assert_allclose(outcome.log_params, [1.0, 1.0], atol=1e-6)


def test_at_bound_uses_the_degenerate_parameter_bounds():
    low, high = np.log(np.full(2, 1e-4)), np.log(np.full(2, 1e4))
    assert not _fitting.at_bound(np.log([1e-3, 1e3]), (low, high))
    assert _fitting.at_bound(np.log([1e-5, 1.0]), (low, high))
    assert _fitting.at_bound(np.log([1.0, 2e4]), (low, high))
    assert not _fitting.at_bound(np.log([1e-9, 1e9]), None)
