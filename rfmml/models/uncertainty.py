"""Parameter uncertainty of the fitted models: parameter draws and interval predictions.

Two ways to draw model parameters (:func:`draw_params`, also
``model.draw_params``):

``"parametric"`` (default)
    The asymptotic normal of the maximum-likelihood estimator on the
    log-parameters the base optimises: ``log theta ~ N(log theta_hat, H^-1)``
    with ``H`` the Hessian of the total negative log-likelihood at the optimum
    (``covariance_log_``). Draws are positive by construction.
``"bootstrap"``
    A customer bootstrap: draw as many customers as were fitted, with
    replacement, and refit (warm-started at the fitted parameters). Customers
    with identical rows are one unique row with a count, so a resample is a
    multinomial draw of the counts and every refit runs on the unique rows.

:func:`interval_predictions` evaluates every prediction of a purchase model
and a Gamma-Gamma model at each parameter draw and reports, per customer,
the central ``interval`` quantiles over draws (``<column>_lower``,
``<column>_upper``), a predictive interval for the *number* of purchases in
the horizon, and segment and overall totals whose intervals come from joint
draws (the draws-length vector of summed predictions, never added bounds).
Work is done on unique rows in bounded chunks (chunk x draws matrices only).
"""

from __future__ import annotations

import copy
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
from sklearn.utils import check_random_state

from rfmml.errors import ConvergenceError, DataError
from rfmml.models import _formulas as F
from rfmml.models._grouping import group_rows, unique_rows
from rfmml.models._validation import check_summary

if TYPE_CHECKING:  # the base imports this module
    from rfmml.models._base import MaximumLikelihoodModel, PurchaseModel
    from rfmml.models.gamma_gamma import GammaGamma

__all__ = [
    "INTERVAL_COLUMNS",
    "INTERVAL_METHODS",
    "IntervalPredictions",
    "check_interval",
    "draw_params",
    "interval_predictions",
    "log_covariance",
    "probability_top_fraction",
]

INTERVAL_METHODS = ("parametric", "bootstrap")
#: prediction columns that get ``_lower`` and ``_upper`` columns
INTERVAL_COLUMNS = (
    "expected_purchases",
    "probability_alive",
    "probability_no_purchase",
    "expected_order_value",
    "clv",
)
#: name of the predictive interval of the number of purchases in the horizon
COUNT_COLUMN = "purchase_count"
#: largest chunk x draws matrix (elements) held per column while streaming
CHUNK_ELEMENTS = 2_000_000


def check_interval(interval: float, n_draws: int, method: str) -> None:
    """Validate the interval level, the number of draws and the method.

    Raises
    ------
    ValueError
        ``interval`` not in (0, 1), ``n_draws`` not an integer >= 2, or an unknown method.
    """
    if isinstance(interval, bool) or not isinstance(interval, int | float) or not (
        0.0 < float(interval) < 1.0
    ):
        raise ValueError(f"interval must be a level strictly between 0 and 1, got {interval!r}.")
    if isinstance(n_draws, bool) or not isinstance(n_draws, int | np.integer) or n_draws < 2:
        raise ValueError(f"n_draws must be an integer >= 2, got {n_draws!r}.")
    if method not in INTERVAL_METHODS:
        raise ValueError(f"interval_method must be one of {INTERVAL_METHODS}, got {method!r}.")


# ------------------------------------------------------------------ draws
def log_covariance(hessian_log: np.ndarray) -> np.ndarray:
    """Covariance of the log-parameters: the inverse Hessian, or NaN when not positive definite.

    Parameters
    ----------
    hessian_log : numpy.ndarray
        Hessian of the total negative log-likelihood in log-parameters.

    Returns
    -------
    numpy.ndarray
    """
    try:
        np.linalg.cholesky(hessian_log)
        cov = np.linalg.inv(hessian_log)
    except np.linalg.LinAlgError:
        return np.full(hessian_log.shape, np.nan)
    return 0.5 * (cov + cov.T)


def _fitted_log_covariance(model: MaximumLikelihoodModel) -> np.ndarray:
    """``covariance_log_``, or (models saved without it) the diagonal from the standard errors."""
    cov = getattr(model, "covariance_log_", None)
    if cov is not None:
        return np.asarray(cov, dtype=float)
    theta = model.params_.to_numpy(dtype=float)
    se_log = model.summary_["std_error"].to_numpy(dtype=float) / theta
    return np.diag(se_log**2)


def draw_params(
    model: MaximumLikelihoodModel,
    n_draws: int,
    method: str = "parametric",
    random_state=None,
    X: pd.DataFrame | None = None,
) -> np.ndarray:
    """Draws of a fitted model's parameters, one row per draw, in ``param_names`` order.

    Parameters
    ----------
    model : MaximumLikelihoodModel
        A fitted model.
    n_draws : int
        Number of draws (>= 1).
    method : {"parametric", "bootstrap"}, default "parametric"
        ``"parametric"``: ``log theta ~ N(log theta_hat, covariance_log_)``
        (models loaded from documents without the covariance use the
        diagonal from their standard errors). ``"bootstrap"``: refits on
        customers resampled with replacement from ``X`` (the training summary).
    random_state : None, int or numpy.random.RandomState
        Seed (scikit-learn's ``check_random_state``).
    X : pandas.DataFrame, optional
        The training summary; required by ``"bootstrap"``.

    Returns
    -------
    numpy.ndarray
        Shape ``(n_draws, len(model.param_names))``, natural scale, all > 0.

    Raises
    ------
    ValueError
        Bad ``n_draws`` or ``method``, or ``"bootstrap"`` without ``X``.
    DataError
        The covariance is not available (NaN standard errors).
    """
    theta = np.array(list(model.get_fitted_params().values()))
    if isinstance(n_draws, bool) or not isinstance(n_draws, int | np.integer) or n_draws < 1:
        raise ValueError(f"n_draws must be an integer >= 1, got {n_draws!r}.")
    if method not in INTERVAL_METHODS:
        raise ValueError(f"method must be one of {INTERVAL_METHODS}, got {method!r}.")
    rng = check_random_state(random_state)
    if method == "parametric":
        cov = _fitted_log_covariance(model)
        if not np.isfinite(cov).all():
            raise DataError(
                f"{type(model).__name__} has no finite covariance (its Hessian was not positive "
                "definite), so parametric draws are undefined; use method='bootstrap' or refit "
                "with a small penalizer."
            )
        z = rng.standard_normal((int(n_draws), len(theta)))
        chol = np.linalg.cholesky(cov + 1e-300 * np.eye(len(theta)))
        return np.asarray(theta * np.exp(z @ chol.T))
    if X is None:
        raise ValueError("method='bootstrap' refits on resampled customers: pass X=training summary.")
    return _bootstrap_draws(model, int(n_draws), rng, X)


def _bootstrap_draws(
    model: MaximumLikelihoodModel, n_draws: int, rng: np.random.RandomState, X: pd.DataFrame
) -> np.ndarray:
    cols = check_summary(X, model.fit_columns, what=f"{type(model).__name__}.draw_params")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        selected, weights, _ = model._select_rows(X, cols)
    rows, w = unique_rows(selected, weights)
    n = int(round(float(w.sum())))
    probs = w / w.sum()
    params = model.get_params()
    if "initial_params" in params:
        params["initial_params"] = model.get_fitted_params()
    out = np.empty((n_draws, len(model.param_names)))
    for d in range(n_draws):
        counts = rng.multinomial(n, probs).astype(float)
        keep = counts > 0
        frame = pd.DataFrame({k: v[keep] for k, v in rows.items()})
        frame["weights"] = counts[keep]
        frame.attrs = dict(X.attrs)
        refit = type(model)(**params)
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                refit.fit(frame)
        except ConvergenceError as exc:
            raise ConvergenceError(
                f"bootstrap refit {d + 1} of {n_draws} of {type(model).__name__} failed: {exc}"
            ) from None
        out[d] = refit.params_.to_numpy(dtype=float)
    return out


def _at(model, theta: np.ndarray):
    """A shallow copy of a fitted model with other parameters (for generic predictions)."""
    twin = copy.copy(model)
    twin.params_ = pd.Series(np.asarray(theta, dtype=float), index=list(model.param_names))
    return twin


# ------------------------------------------------------- per-draw predictions
def _purchase_at(
    model: PurchaseModel,
    theta: np.ndarray,
    rows: dict[str, np.ndarray],
    horizon: int,
    discount: np.ndarray,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """P(alive), E[purchases in horizon], P(no purchase in horizon), discounted purchases.

    The last is ``sum_k (E[Y(k)] - E[Y(k-1)]) / (1 + d)^k``, the CLV without
    the order value. BG/NBD uses its closed forms once per distinct
    (frequency, T); other purchase models their own methods.
    """
    from rfmml.models.bgnbd import BetaGeoNBD

    steps = np.arange(int(horizon) + 1, dtype=float)
    if type(model) is BetaGeoNBD:
        r, alpha, a, b = (float(v) for v in theta)
        x, t_x, T = rows["frequency"], rows["recency"], rows["T"]
        codes, first = group_rows(x, T)
        e = F.bgnbd_expected_purchases_if_alive(
            steps[:, None], x[first][None, :], T[first][None, :], r, alpha, a, b
        )
        alive = F.bgnbd_probability_alive(x, t_x, T, r, alpha, a, b)
        disc = (discount @ (e[1:] - e[:-1]))[codes] * alive
        purchases = e[-1][codes] * alive
        none = F.bgnbd_probability_no_purchase(
            np.full(len(x), float(horizon)), x, t_x, T, r, alpha, a, b
        )
        return alive, purchases, none, disc
    twin = _at(model, theta)
    frame = pd.DataFrame(rows)
    alive = twin.probability_alive(frame).to_numpy()
    e = np.stack([twin.expected_purchases(frame, k).to_numpy() for k in steps])
    none = twin.probability_no_purchase(frame, float(horizon)).to_numpy()
    return alive, e[-1], none, discount @ (e[1:] - e[:-1])


def _count_pmf_if_alive_bgnbd(theta: np.ndarray, x, T, t: float, n_max: int) -> np.ndarray:
    """P(X(T, T + t) = n | alive at T, x, T) of BG/NBD, shape (pairs, draws, n_max + 1).

    Alive at ``T`` after ``x`` repeat purchases, ``lambda ~ Gamma(r + x, alpha + T)``
    and ``p ~ Beta(a, b + x)`` independently (FHL05, derivation of eq. 10). A
    customer with ``(lambda, p)`` buys ``N = min(Poisson(lambda t), K)`` times,
    ``K`` the geometric number of purchases until dropout
    (``P(K = k) = p (1 - p)^(k-1)``, k >= 1), so
    ``P(N = n) = P(Pois = n) P(K > n) + P(K = n) P(Pois >= n)``. Integrating,
    ``Pois`` becomes negative binomial with ``s = r + x`` and
    ``q = (alpha + T) / (alpha + T + t)``; ``E[(1 - p)^n] = B(a, b + x + n) / B(a, b + x)``
    and ``E[p (1 - p)^(n-1)] = B(a + 1, b + x + n - 1) / B(a, b + x)``. Each factor
    follows a ratio recursion in ``n`` (no special functions inside the loop).
    With the probability alive ``P_A``,
    ``P(N = n | x, t_x, T) = (1 - P_A) [n = 0] + P_A P(N = n | alive)``, whose mean is
    eq. (10) of FHL05.

    ``theta`` has one row of ``r, alpha, a, b`` per draw; ``x`` and ``T`` one value per pair.
    """
    r, alpha, a, b = (theta[:, i][None, :] for i in range(4))
    x, T = np.asarray(x, dtype=float)[:, None], np.asarray(T, dtype=float)[:, None]
    s = r + x
    q = (alpha + T) / (alpha + T + t)
    out = np.empty((x.shape[0], theta.shape[0], n_max + 1))
    nb = q**s  # P(Pois = 0)
    tail = np.ones_like(nb)  # P(Pois >= n)
    survive = np.ones_like(nb)  # E[(1 - p)^n]
    die_at = a / (a + b + x)  # E[p (1 - p)^(n-1)] at n = 1
    out[:, :, 0] = nb
    for n in range(1, n_max + 1):
        tail = tail - nb
        nb = nb * (s + n - 1.0) / n * (1.0 - q)
        survive = survive * (b + x + n - 1.0) / (a + b + x + n - 1.0)
        out[:, :, n] = nb * survive + np.maximum(tail, 0.0) * die_at
        die_at = die_at * (b + x + n - 1.0) / (a + b + x + n)
    return out


def _has_count_distribution(model) -> bool:
    from rfmml.models.bgnbd import BetaGeoNBD

    return type(model) is BetaGeoNBD


# ----------------------------------------------------------- interval results
@dataclass
class IntervalPredictions:
    """What :func:`interval_predictions` returns.

    Attributes
    ----------
    columns : pandas.DataFrame
        ``<column>_lower`` and ``<column>_upper`` per customer (index of the summary),
        plus ``purchase_count_lower``/``_upper`` when the purchase model has a count
        distribution.
    totals : pandas.DataFrame
        One row per segment and ``"all"``: ``n_customers``; ``expected_purchases``,
        ``revenue`` (expected spend in the horizon) and ``clv`` with their
        ``_lower``/``_upper`` from joint draws; ``purchase_count_lower``/``_upper``
        (predictive total).
    settings : dict
        ``interval``, ``n_draws``, ``method``.
    """

    columns: pd.DataFrame
    totals: pd.DataFrame
    settings: dict[str, Any] = field(default_factory=dict)


def interval_predictions(
    purchase_model: PurchaseModel | None,
    gamma_gamma: GammaGamma | None,
    summary: pd.DataFrame,
    *,
    horizon: int,
    discount_rate: float = 0.0,
    interval: float = 0.9,
    draws: Mapping[str, np.ndarray],
    segments: pd.Series | np.ndarray | None = None,
    random_state=None,
    chunk_elements: int = CHUNK_ELEMENTS,
) -> IntervalPredictions:
    """Per-customer intervals and joint-draw totals from parameter draws.

    Every prediction is evaluated at each parameter draw (row ``d`` of
    ``draws["purchase_model"]`` and of ``draws["gamma_gamma"]`` together: the
    two models are fitted separately, so their draws are independent) on the
    unique (frequency, recency, T, monetary_value, segment) rows, in chunks
    of at most ``chunk_elements / n_draws`` rows; the bounds are the
    ``(1 - interval) / 2`` and ``(1 + interval) / 2`` quantiles over draws
    (linear interpolation), widened where needed to contain the point
    estimate, which the draws never change.

    The predictive interval of the number of purchases in ``(T, T + horizon]``
    (``purchase_count``) is exact, not simulated: the mixture over draws of
    the model's conditional distribution of the count (BG/NBD: see
    :func:`_count_pmf_bgnbd`), evaluated for n = 0..n_max with n_max
    doubled until the mixture reaches the upper level. Purchase models without
    a count distribution here get no ``purchase_count`` columns.

    Totals: per draw, the weighted sums of the per-customer predictions in
    each segment (and overall), then quantiles of that draws-length vector.
    The predictive total count adds process noise per draw: given the
    parameters, customers buy independently, so the segment's count is a sum
    of many independent counts, normal by the central limit theorem with
    mean and variance the sums of the customers' conditional means and
    variances (computed from the same count distribution); one normal
    draw per parameter draw, rounded to a count >= 0.

    Parameters
    ----------
    purchase_model, gamma_gamma : fitted models, optional
        At least one.
    summary : pandas.DataFrame
        The models' columns (``frequency``, ``recency``, ``T``, ``monetary_value``).
    horizon : int
        Periods ahead (summary's unit).
    discount_rate : float
        Per-period discount rate of the CLV.
    interval : float
        Central level in (0, 1).
    draws : mapping
        ``"purchase_model"`` and/or ``"gamma_gamma"``: arrays n_draws x n_params
        (from :func:`draw_params`), with the same number of rows.
    segments : array_like, optional
        Segment label per customer (aligned to ``summary``) for the totals.
    random_state : None, int or numpy.random.RandomState
        Seed of the process noise of the predictive totals.
    chunk_elements : int
        Largest chunk x draws matrix.

    Returns
    -------
    IntervalPredictions
    """
    if purchase_model is None and gamma_gamma is None:
        raise ValueError("interval_predictions needs a purchase model, a Gamma-Gamma model or both.")
    rng = check_random_state(random_state)
    wanted = [m for m, k in ((purchase_model, "purchase_model"), (gamma_gamma, "gamma_gamma"))
              if m is not None and k in draws]  # fmt: skip
    n_draws = {len(np.asarray(draws[k])) for k in ("purchase_model", "gamma_gamma") if k in draws}
    if len(wanted) != sum(m is not None for m in (purchase_model, gamma_gamma)):
        raise ValueError("draws must hold an array for each model given.")
    if len(n_draws) != 1:
        raise ValueError(f"the models' draws must have the same number of rows, got {n_draws}.")
    D = n_draws.pop()
    lo_q, hi_q = (1.0 - interval) / 2.0, (1.0 + interval) / 2.0

    needed = ["frequency"]
    if purchase_model is not None:
        needed += [c for c in purchase_model.fit_columns if c not in needed]
    if gamma_gamma is not None:
        needed.append("monetary_value")
    c = check_summary(summary, tuple(needed), what="interval_predictions")
    if segments is None:
        seg_codes = np.zeros(len(summary), dtype=np.int64)
        seg_labels = np.array(["all"], dtype=object)
    else:
        seg_codes, seg_labels = pd.factorize(pd.Series(np.asarray(segments, dtype=object)).astype(str), sort=True)
        seg_labels = np.asarray(seg_labels, dtype=object)
    n_seg = len(seg_labels)
    if gamma_gamma is not None:
        c["monetary_value"] = np.where(c["frequency"] > 0, c["monetary_value"], 0.0)
    keys = [c[k] for k in needed]
    codes, first = group_rows(*keys, seg_codes)
    n_rows = len(first)
    weights = np.bincount(codes, minlength=n_rows).astype(float)
    # sort unique rows by the purchase key so a chunk touches few (frequency, T) values
    order = np.lexsort([c[k][first] for k in reversed(needed)])
    first, weights = first[order], weights[order]
    rank = np.empty(n_rows, dtype=np.int64)
    rank[order] = np.arange(n_rows)
    codes = rank[codes]
    urows = {k: c[k][first] for k in needed}
    useg = seg_codes[first]

    steps = np.arange(1, int(horizon) + 1, dtype=float)
    discount = (1.0 + float(discount_rate)) ** -steps
    theta_p = np.asarray(draws["purchase_model"]) if purchase_model is not None else None
    theta_g = np.asarray(draws["gamma_gamma"]) if gamma_gamma is not None else None

    # point estimates on unique rows (the draws never change them)
    point: dict[str, np.ndarray] = {}
    if purchase_model is not None:
        theta_hat = np.array(list(purchase_model.get_fitted_params().values()))
        alive, purchases, none, disc = _purchase_at(
            purchase_model, theta_hat, {k: urows[k] for k in purchase_model.fit_columns},
            horizon, discount,
        )  # fmt: skip
        point.update(probability_alive=alive, expected_purchases=purchases,
                     probability_no_purchase=none)  # fmt: skip
    if gamma_gamma is not None:
        phi_hat = tuple(gamma_gamma.get_fitted_params().values())
        point["expected_order_value"] = F.gamma_gamma_expected_order_value(
            urows["frequency"], urows["monetary_value"], *phi_hat
        )
    if purchase_model is not None and gamma_gamma is not None:
        point["clv"] = np.maximum(point["expected_order_value"] * disc, 0.0)
        point["revenue"] = point["expected_order_value"] * point["expected_purchases"]

    columns = [k for k in INTERVAL_COLUMNS if k in point]
    bounds = {k: (np.empty(n_rows), np.empty(n_rows)) for k in columns}
    has_count = purchase_model is not None and _has_count_distribution(purchase_model)
    count_bounds = (np.empty(n_rows), np.empty(n_rows)) if has_count else None
    total_names = [k for k in ("expected_purchases", "revenue", "clv") if k in point]
    totals = {k: np.zeros((n_seg, D)) for k in total_names}
    count_mean = np.zeros((n_seg, D))
    count_var = np.zeros((n_seg, D))

    chunk = max(1, int(chunk_elements) // D)
    for start in range(0, n_rows, chunk):
        sl = slice(start, min(start + chunk, n_rows))
        m = sl.stop - sl.start
        mats = {k: np.empty((m, D)) for k in (*columns, *(["revenue"] if "revenue" in point else []))}
        if purchase_model is not None:
            assert theta_p is not None
            pcols = purchase_model.fit_columns
            pc, pf = group_rows(*(urows[k][sl] for k in pcols))
            prow = {k: urows[k][sl][pf] for k in pcols}
            disc_m = np.empty((m, D))
            alive_p = np.empty((len(pf), D))
            for d in range(D):
                alive, purchases, none, disc = _purchase_at(
                    purchase_model, theta_p[d], prow, horizon, discount
                )
                mats["probability_alive"][:, d] = alive[pc]
                mats["expected_purchases"][:, d] = purchases[pc]
                mats["probability_no_purchase"][:, d] = none[pc]
                disc_m[:, d] = disc[pc]
                alive_p[:, d] = alive
            if has_count:
                assert count_bounds is not None
                _count_chunk(purchase_model, theta_p, prow, pc, alive_p, float(horizon), lo_q,
                             hi_q, weights[sl], useg[sl], n_seg, count_bounds, sl, count_mean,
                             count_var)  # fmt: skip
        if gamma_gamma is not None:
            assert theta_g is not None
            x, mv = urows["frequency"][sl], urows["monetary_value"][sl]
            for d in range(D):
                mats["expected_order_value"][:, d] = F.gamma_gamma_expected_order_value(
                    x, mv, *theta_g[d]
                )
        if "clv" in mats:
            np.maximum(mats["expected_order_value"] * disc_m, 0.0, out=mats["clv"])
            np.multiply(mats["expected_order_value"], mats["expected_purchases"],
                        out=mats["revenue"])  # fmt: skip
        onehot = np.zeros((n_seg, m))
        onehot[useg[sl], np.arange(m)] = weights[sl]
        for k in total_names:
            totals[k] += onehot @ mats[k]
        for k in columns:
            q = np.quantile(mats[k], [lo_q, hi_q], axis=1)
            bounds[k][0][sl] = np.minimum(q[0], point[k][sl])
            bounds[k][1][sl] = np.maximum(q[1], point[k][sl])
        del mats

    out = {}
    for k in columns:
        out[f"{k}_lower"] = bounds[k][0][codes]
        out[f"{k}_upper"] = bounds[k][1][codes]
    if count_bounds is not None:
        out[f"{COUNT_COLUMN}_lower"] = count_bounds[0][codes]
        out[f"{COUNT_COLUMN}_upper"] = count_bounds[1][codes]
    frame = pd.DataFrame(out, index=summary.index)

    table = _totals_table(point, totals, count_mean, count_var, has_count, weights, useg,
                          seg_labels, lo_q, hi_q, rng, segmented=segments is not None)  # fmt: skip
    settings = {"interval": float(interval), "n_draws": int(D)}
    return IntervalPredictions(frame, table, settings)


def _count_chunk(model, theta_p, prow, pc, alive, t, lo_q, hi_q, w, useg, n_seg,
                 count_bounds, sl, count_mean, count_var) -> None:  # fmt: skip
    """Predictive count quantiles of a chunk and per-draw count means/variances per segment.

    ``alive`` is P(alive) per purchase row of the chunk and draw (rows x draws).
    The count distribution given alive depends on (frequency, T) only: it is
    evaluated per distinct pair for all draws at once, and mixed with each
    row's P(alive) draws by one matrix product per pair.
    """
    D = len(theta_p)
    pair, pfirst = group_rows(prow["frequency"], prow["T"])
    x, T = prow["frequency"][pfirst], prow["T"][pfirst]
    theta_hat = np.array(list(model.get_fitted_params().values()))
    e_hat = F.bgnbd_expected_purchases_if_alive(np.full(len(x), t), x, T, *theta_hat)
    e_max = float(e_hat.max()) if len(e_hat) else 0.0
    n_max = int(np.ceil(3.0 * e_max + 10.0 * np.sqrt(e_max) + 10.0))
    while True:
        cond = _count_pmf_if_alive_bgnbd(theta_p, x, T, t, n_max)  # pairs x D x n
        grid = np.arange(n_max + 1, dtype=float)
        mu, m2 = cond @ grid, cond @ grid**2  # pairs x D
        mix = np.empty((len(pair), n_max + 1))
        by_pair = np.argsort(pair, kind="stable")
        splits = np.split(by_pair, np.cumsum(np.bincount(pair, minlength=len(x)))[:-1])
        for j, idx in enumerate(splits):
            mix[idx] = alive[idx] @ cond[j] / D
        mix[:, 0] += 1.0 - alive.mean(axis=1)
        cdf = np.cumsum(mix, axis=1)
        if (cdf[:, -1] >= hi_q + 1e-9).all() or n_max > 100_000:
            break
        n_max *= 2
    lower = np.argmax(cdf >= lo_q - 1e-12, axis=1).astype(float)
    reach = cdf >= hi_q - 1e-12
    upper = np.where(reach.any(axis=1), np.argmax(reach, axis=1), n_max).astype(float)
    count_bounds[0][sl] = lower[pc]
    count_bounds[1][sl] = upper[pc]
    means = alive * mu[pair]
    variances = np.maximum(alive * m2[pair] - means**2, 0.0)
    onehot = np.zeros((n_seg, len(pc)))
    onehot[useg, np.arange(len(pc))] = w
    count_mean += onehot @ means[pc]
    count_var += onehot @ variances[pc]


def _totals_table(point, totals, count_mean, count_var, has_count, weights, useg, seg_labels,
                  lo_q, hi_q, rng, segmented: bool) -> pd.DataFrame:  # fmt: skip
    n_seg = len(seg_labels)
    groups = [(str(seg_labels[s]), np.array([s])) for s in range(n_seg)] if segmented else []
    groups.append(("all", np.arange(n_seg)))
    records = []
    D = count_mean.shape[1]
    z = rng.standard_normal(D)
    for label, members in groups:
        in_group = np.isin(useg, members)
        rec: dict[str, Any] = {"segment": label, "n_customers": int(weights[in_group].sum())}
        for k, per_draw in totals.items():
            vec = per_draw[members].sum(axis=0)
            est = float(weights[in_group] @ point[k][in_group])
            lo, hi = np.quantile(vec, [lo_q, hi_q])
            rec[k], rec[f"{k}_lower"], rec[f"{k}_upper"] = est, min(lo, est), max(hi, est)
        if has_count:
            mean = count_mean[members].sum(axis=0)
            sd = np.sqrt(count_var[members].sum(axis=0))
            total = np.maximum(np.round(mean + sd * z), 0.0)
            lo, hi = np.quantile(total, [lo_q, hi_q])
            rec[f"{COUNT_COLUMN}_lower"], rec[f"{COUNT_COLUMN}_upper"] = float(lo), float(hi)
        records.append(rec)
    return pd.DataFrame.from_records(records)


# ---------------------------------------------------------- top-fraction odds
def probability_top_fraction(
    purchase_model: PurchaseModel,
    gamma_gamma: GammaGamma,
    summary: pd.DataFrame,
    *,
    horizon: int,
    discount_rate: float,
    draws: Mapping[str, np.ndarray],
    fraction: float = 0.1,
) -> pd.Series:
    """Probability over parameter draws that each customer's CLV is in the top ``fraction``.

    For each joint draw the CLV of every customer is computed (on unique
    rows) and compared with that draw's weighted ``1 - fraction`` quantile
    over customers; the result is the share of draws in which the customer is
    at or above it. Streams over draws (unique rows x 1 vector per draw).

    Returns
    -------
    pandas.Series
        Named ``p_top``, aligned to ``summary.index``.
    """
    if not 0.0 < fraction < 1.0:
        raise ValueError(f"fraction must be strictly between 0 and 1, got {fraction!r}.")
    cols = tuple(dict.fromkeys((*purchase_model.fit_columns, "frequency", "monetary_value")))
    c = check_summary(summary, cols, what="probability_top_fraction")
    c["monetary_value"] = np.where(c["frequency"] > 0, c["monetary_value"], 0.0)
    codes, first = group_rows(*(c[k] for k in cols))
    w = np.bincount(codes, minlength=len(first)).astype(float)
    rows = {k: c[k][first] for k in cols}
    prow = {k: rows[k] for k in purchase_model.fit_columns}
    steps = np.arange(1, int(horizon) + 1, dtype=float)
    discount = (1.0 + float(discount_rate)) ** -steps
    theta_p, theta_g = np.asarray(draws["purchase_model"]), np.asarray(draws["gamma_gamma"])
    hits = np.zeros(len(first))
    for d in range(len(theta_p)):
        disc = _purchase_at(purchase_model, theta_p[d], prow, horizon, discount)[3]
        eov = F.gamma_gamma_expected_order_value(rows["frequency"], rows["monetary_value"],
                                                 *theta_g[d])  # fmt: skip
        clv = np.maximum(eov * disc, 0.0)
        order = np.argsort(clv, kind="stable")
        cum = np.cumsum(w[order])
        cut = clv[order][np.searchsorted(cum, (1.0 - fraction) * cum[-1], side="left")]
        hits += clv >= cut
    return pd.Series(hits[codes] / len(theta_p), index=summary.index, name="p_top")
