"""The count distribution of every purchase model: P(X(T, T + t) = n | history).

``_count_pmf_if_alive`` gives the distribution given alive; mixed with
P(alive) it is the predictive distribution whose quantiles are
``purchase_count_lower``/``_upper``. Checked against each model's own
predictions (mean, mass at 0, new-customer distribution), adaptive quadrature
(Pareto/NBD), Monte Carlo draws from the posterior, and holdout counts of
customers simulated with known parameters.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from rfmml.models import _formulas_pareto as FP
from rfmml.models import model_class
from rfmml.models.simulate import simulate_bgbb, simulate_mbgnbd, simulate_pareto_nbd
from rfmml.models.uncertainty import _count_pmf_if_alive, interval_predictions

PARETO_CDNOW = {"r": 0.553, "alpha": 10.578, "s": 0.606, "beta": 11.669}  # per week
MBG_CDNOW = {"r": 0.525, "alpha": 6.183, "a": 0.891, "b": 1.614}
DONATIONS = {"alpha": 1.204, "beta": 0.750, "gamma": 0.657, "delta": 2.783}  # FHS10
CONTINUOUS = ("BetaGeoNBD", "ModifiedBetaGeoNBD", "ParetoNBD")
KINDS = (*CONTINUOUS, "BetaGeoBetaBinom")


@pytest.fixture(scope="module")
def fitted(cdnow_summary, cdnow_bgnbd):
    models = {"BetaGeoNBD": cdnow_bgnbd}
    for kind in ("ModifiedBetaGeoNBD", "ParetoNBD"):
        models[kind] = model_class(kind)().fit(cdnow_summary)
    donations = simulate_bgbb(5000, 6, DONATIONS, random_state=0)
    models["BetaGeoBetaBinom"] = model_class("BetaGeoBetaBinom")().fit(donations)
    return models


def _histories(kind: str) -> tuple[pd.DataFrame, float]:
    """A few customers and a horizon: weeks (CDNOW) or opportunities (BG/BB)."""
    if kind == "BetaGeoBetaBinom":
        rows = [(0, 0, 6), (2, 4, 6), (6, 6, 6), (1, 1, 6)]
        t = 5.0
    else:
        rows = [(0, 0.0, 30.0), (2, 10.5, 35.0), (12, 36.0, 38.0), (1, 2.0, 39.0)]
        t = 39.0
    return pd.DataFrame(rows, columns=["frequency", "recency", "T"]).astype(float), t


def _theta(model) -> np.ndarray:
    return np.array([list(model.get_fitted_params().values())])


def _predictive(model, X: pd.DataFrame, t: float, n_max: int, theta=None) -> np.ndarray:
    """P(n | history) per customer: dead customers buy nothing."""
    theta = _theta(model) if theta is None else theta
    cond = _count_pmf_if_alive(model, theta, X["frequency"].to_numpy(), X["T"].to_numpy(),
                               t, n_max)[:, 0]  # fmt: skip
    alive = model.probability_alive(X).to_numpy()
    pmf = alive[:, None] * cond
    pmf[:, 0] += 1.0 - alive
    return pmf


# ---------------------------------------------- (a) the model's own predictions
@pytest.mark.parametrize("kind", KINDS)
def test_count_distribution_agrees_with_the_model(kind, fitted):
    model = fitted[kind]
    X, t = _histories(kind)
    n_max = int(t) if kind == "BetaGeoBetaBinom" else 600
    pmf = _predictive(model, X, t, n_max)
    assert np.isfinite(pmf).all() and (pmf >= 0).all()
    np.testing.assert_allclose(pmf.sum(axis=1), 1.0, rtol=0, atol=1e-8)
    # its mean is the model's expected purchases, its mass at 0 the probability of none
    mean = pmf @ np.arange(n_max + 1)
    np.testing.assert_allclose(mean, model.expected_purchases(X, t), rtol=1e-8)
    np.testing.assert_allclose(pmf[:, 0], model.probability_no_purchase(X, t), rtol=1e-8)


@pytest.mark.parametrize("kind", KINDS)
def test_a_customer_with_no_history_is_a_new_customer(kind, fitted):
    # (x, t_x, T) = (0, 0, 0): the predictive distribution is the model's P(X(t) = n)
    model = fitted[kind]
    X = pd.DataFrame({"frequency": [0.0], "recency": [0.0], "T": [0.0]})
    t = 5.0 if kind == "BetaGeoBetaBinom" else 26.0
    n = np.arange(6)
    pmf = _predictive(model, X, t, int(t) if kind == "BetaGeoBetaBinom" else 300)[0]
    np.testing.assert_allclose(pmf[n], model.probability_of_purchases(n, t), rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize(
    ("x", "T", "t"), [(0, 40.0, 39.0), (5, 60.0, 39.0), (50, 10.0, 52.0), (200, 70.0, 52.0)]
)
def test_pareto_count_distribution_matches_adaptive_quadrature(x, T, t):
    # given alive, the future is a new customer at r + x, alpha + T, s, beta + T
    r, alpha, s, beta = PARETO_CDNOW.values()
    n_max = 800
    pmf = FP.pareto_nbd_count_pmf_if_alive(n_max, t, x, T, r, alpha, s, beta)
    n = np.unique(np.linspace(0, 3 * (r + x) * t / (alpha + T) + 10, 12).astype(int))
    reference = FP.pareto_nbd_probability_of_purchases(n, t, r + x, alpha + T, s, beta + T)
    np.testing.assert_allclose(pmf[n], reference, rtol=0, atol=1e-10)
    assert pmf.sum() == pytest.approx(1.0, abs=1e-10)
    mean = FP.pareto_nbd_expected_purchases_if_alive(t, x, T, r, alpha, s, beta)
    assert pmf @ np.arange(n_max + 1) == pytest.approx(float(mean), rel=1e-10)


def test_pareto_count_distribution_of_heavy_buyers_and_extreme_draws():
    # 1000 repeat purchases: (alpha + T) / (alpha + T + t)) ** (r + x) is 1e-290; nothing
    # underflows to a lost distribution
    r, alpha, s, beta = PARETO_CDNOW.values()
    pmf = FP.pareto_nbd_count_pmf_if_alive(1500, 52.0, 1000.0, 70.0, r, alpha, s, beta)
    assert pmf.sum() == pytest.approx(1.0, abs=1e-10)
    mean = FP.pareto_nbd_expected_purchases_if_alive(52.0, 1000.0, 70.0, r, alpha, s, beta)
    assert pmf @ np.arange(1501) == pytest.approx(float(mean), rel=1e-10)
    # draws of a poorly identified fit: tiny or huge s and beta, T = 0
    theta = np.array([[0.3, 6.0, 1e-6, 1e-6], [0.3, 6.0, 1e6, 1e8], [0.3, 1e-4, 0.6, 11.0]])
    cond = FP.pareto_nbd_count_pmf_if_alive(200, 26.0, 0.0, 0.0, *theta.T)
    assert np.isfinite(cond).all() and (cond >= 0).all() and (cond.sum(axis=1) <= 1 + 1e-10).all()
    np.testing.assert_allclose(cond[:2].sum(axis=1), 1.0, atol=1e-8)


# ----------------------------------------------- (b) Monte Carlo from the posterior
def _posterior_counts(kind: str, theta, x: float, T: float, t: float, alive: float,
                      n: int, rng) -> np.ndarray:  # fmt: skip
    """Future counts simulated from each model's assumptions, given the history."""
    p_alive = rng.random(n) < alive
    if kind == "BetaGeoBetaBinom":
        al, be, ga, de = theta
        p = rng.beta(al + x, be + T - x, size=n)
        drop = rng.beta(ga, de + T + 1.0, size=n)  # alive at opportunity T + 1
        m = int(t)
        # alive at the first future opportunity, then survives each later one with 1 - theta
        alive_for = np.minimum(rng.geometric(drop), m)
        counts = rng.binomial(alive_for, p)
    else:
        r, alpha = theta[0], theta[1]
        lam = rng.gamma(r + x, 1.0 / (alpha + T), size=n)
        if kind == "ParetoNBD":
            s, beta = theta[2], theta[3]
            mu = rng.gamma(s, 1.0 / (beta + T), size=n)
            counts = rng.poisson(lam * np.minimum(rng.exponential(size=n) / mu, t))
        else:
            b = theta[3] + x + (1.0 if kind == "ModifiedBetaGeoNBD" else 0.0)
            p = rng.beta(theta[2], b, size=n)
            counts = np.minimum(rng.poisson(lam * t), rng.geometric(p))
    return np.where(p_alive, counts, 0)


@pytest.mark.parametrize("kind", KINDS)
def test_count_distribution_matches_posterior_simulation(kind, fitted):
    model = fitted[kind]
    X, t = _histories(kind)
    theta = _theta(model)[0]
    n_sims, bins = 100_000, 6
    rng = np.random.default_rng(11)
    n_max = int(t) if kind == "BetaGeoBetaBinom" else 400
    pmf = _predictive(model, X, t, n_max)
    alive = model.probability_alive(X).to_numpy()
    for i, row in enumerate(X.itertuples()):
        sims = _posterior_counts(kind, theta, row.frequency, row.T, t, alive[i], n_sims, rng)
        freq = np.bincount(np.minimum(sims, bins), minlength=bins + 1) / n_sims
        exact = np.append(pmf[i, :bins], pmf[i, bins:].sum())
        # binomial standard error of each frequency; 5 of them (some 100 comparisons)
        tol = 5.0 * np.sqrt(exact * (1.0 - exact) / n_sims) + 1e-12
        assert (np.abs(freq - exact) <= tol).all(), (kind, i, freq, exact)


# ------------------------------------ (c) holdout counts of simulated customers
def _holdout(kind: str, n: int, t: float, seed: int):
    """Calibration summary from the simulator, holdout counts from its latent state."""
    rng = np.random.default_rng(seed)
    if kind == "BetaGeoBetaBinom":
        summary = simulate_bgbb(n, 8, DONATIONS, random_state=rng)
        lat = summary.attrs["latent"]
        m = int(t)
        # alive after the n opportunities: each future one survived with 1 - theta, then
        # a transaction with probability p
        alive_for = np.where(lat["alive"], np.minimum(rng.geometric(lat["theta"]) - 1, m), 0)
        return summary, rng.binomial(alive_for, lat["p"])
    T = np.floor(rng.uniform(39.0, 78.0, size=n))  # CDNOW-like ages, weeks
    if kind == "ParetoNBD":
        summary = simulate_pareto_nbd(n, T, PARETO_CDNOW, random_state=rng)
        lat = summary.attrs["latent"]
        rest = rng.exponential(size=n) / lat["mu"]  # memoryless remaining lifetime
        counts = rng.poisson(lat["lambda"] * np.minimum(rest, t))
    else:
        summary = simulate_mbgnbd(n, T, MBG_CDNOW, random_state=rng)
        lat = summary.attrs["latent"]
        counts = np.minimum(rng.poisson(lat["lambda"] * t), rng.geometric(lat["p"]))
    return summary, np.where(lat["alive"], counts, 0)


def _model_at(kind: str, params: dict):
    model = model_class(kind)()
    model.params_ = pd.Series(params, dtype=float)
    model.freq_ = None  # simulated summaries carry no time unit
    return model


@pytest.mark.parametrize(
    ("kind", "params"),
    [("ParetoNBD", PARETO_CDNOW), ("ModifiedBetaGeoNBD", MBG_CDNOW),
     ("BetaGeoBetaBinom", DONATIONS)],
)  # fmt: skip
def test_intervals_cover_simulated_holdout_counts(kind, params):
    n = 20_000
    t = 4.0 if kind == "BetaGeoBetaBinom" else 26.0
    summary, holdout = _holdout(kind, n, t, seed=3)
    model = _model_at(kind, params)
    # the true parameters as the only draw: the intervals are the exact predictive quantiles
    draws = {"purchase_model": np.array([list(params.values())])}
    res = interval_predictions(model, None, summary, horizon=int(t), interval=0.9,
                               draws=draws, random_state=0).columns  # fmt: skip
    lo, hi = res["purchase_count_lower"].to_numpy(), res["purchase_count_upper"].to_numpy()
    assert (lo == np.floor(lo)).all() and (lo <= hi).all() and (hi <= 200).all()

    n_max = int(t) if kind == "BetaGeoBetaBinom" else 200
    pmf = _predictive(model, summary, t, n_max, theta=draws["purchase_model"])
    cdf = np.cumsum(pmf, axis=1)
    # the bounds are the 5% and 95% quantiles of this distribution
    np.testing.assert_array_equal(lo, np.argmax(cdf >= 0.05 - 1e-12, axis=1))
    np.testing.assert_array_equal(hi, np.argmax(cdf >= 0.95 - 1e-12, axis=1))
    # calibration: given the parameters customers are independent, so the number with
    # holdout count k is a sum of Bernoulli(p_i(k)); within 5 of its standard deviations
    for k in range(4):
        p_k = pmf[:, k]
        sd = np.sqrt((p_k * (1.0 - p_k)).sum())
        assert abs((holdout == k).sum() - p_k.sum()) <= 5.0 * sd + 1e-9, (k,)
    # coverage: the interval holds >= 90% of each customer's mass (integer counts: more,
    # since most customers' intervals are [0, small]); realised within 5 sd of expected
    inside = np.take_along_axis(cdf, hi[:, None].astype(int), 1)[:, 0] - np.where(
        lo > 0, np.take_along_axis(cdf, np.maximum(lo - 1, 0)[:, None].astype(int), 1)[:, 0], 0.0
    )
    assert (inside >= 0.9 - 1e-9).all()
    expected, sd = inside.mean(), np.sqrt((inside * (1.0 - inside)).sum()) / n
    realised = ((lo <= holdout) & (holdout <= hi)).mean()
    assert abs(realised - expected) <= 5.0 * sd, (realised, expected, sd)
    assert realised >= 0.9 - 5.0 * sd


@pytest.mark.parametrize(("kind", "params"), [("ParetoNBD", PARETO_CDNOW),
                                              ("ModifiedBetaGeoNBD", MBG_CDNOW)])  # fmt: skip
def test_fitted_intervals_cover_simulated_holdout_counts(kind, params):
    # the pipeline: fit on the calibration summary, 200 parametric draws, 90% intervals
    n, t = 10_000, 26.0
    summary, holdout = _holdout(kind, n, t, seed=5)
    model = model_class(kind)().fit(summary)
    draws = {"purchase_model": model.draw_params(200, random_state=0)}
    res = interval_predictions(model, None, summary, horizon=int(t), interval=0.9,
                               draws=draws, random_state=0).columns  # fmt: skip
    lo = res["purchase_count_lower"].to_numpy().astype(int)
    hi = res["purchase_count_upper"].to_numpy().astype(int)
    # the intervals depend on the calibration data only; given it and the true parameters
    # the holdout counts are independent with the true predictive distribution, so the
    # realised coverage is a sum of Bernoulli(q_i), q_i the true mass inside interval i
    truth = _model_at(kind, params)
    cdf = np.cumsum(_predictive(truth, summary, t, 200), axis=1)
    rows = np.arange(n)
    q = cdf[rows, hi] - np.where(lo > 0, cdf[rows, np.maximum(lo - 1, 0)], 0.0)
    realised = ((lo <= holdout) & (holdout <= hi)).mean()
    sd = np.sqrt((q * (1.0 - q)).sum()) / n
    assert abs(realised - q.mean()) <= 5.0 * sd, (realised, q.mean(), sd)
    # about 90%: at least 90% of the fitted predictive mass, conservative for whole counts;
    # under the true distribution the estimation error of 10,000 customers moves it little
    assert 0.9 - 5.0 * sd <= realised < 0.99
    assert q.mean() > 0.89
