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
from scipy import sparse
from sklearn.utils import check_random_state

from rfmml.errors import ConvergenceError, DataError
from rfmml.models import _formulas as F
from rfmml.models import _formulas_bgbb as FB
from rfmml.models import _formulas_pareto as FP
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
    if (
        isinstance(interval, bool)
        or not isinstance(interval, int | float)
        or not (0.0 < float(interval) < 1.0)
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
        raise ValueError(
            "method='bootstrap' refits on resampled customers: pass X=the training summary."
        )
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
    discount: np.ndarray | None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray | None]:
    """P(alive), E[purchases in horizon], P(no purchase in horizon), discounted purchases.

    The last is ``sum_k (E[Y(k)] - E[Y(k-1)]) / (1 + d)^k``, the CLV without
    the order value (None when ``discount`` is None: no CLV wanted). BG/NBD,
    MBG/NBD and Pareto/NBD use their closed forms, the expectation given alive
    once per distinct (frequency, T) for all steps; other purchase models
    (BG/BB, whose horizons are a few opportunities) their own methods.
    """
    if discount is None:
        steps = np.array([0.0, float(horizon)])
    else:
        steps = np.arange(int(horizon) + 1, dtype=float)
    prefix = _IF_ALIVE.get(_kind(model) or "")
    if prefix is not None:
        # closed forms: P(alive) and P(no purchase) once per row, the expectation given
        # alive once per distinct (frequency, T) for every step
        formulas = model._formulas
        params = tuple(float(v) for v in theta)
        x, t_x, T = rows["frequency"], rows["recency"], rows["T"]
        codes, first = group_rows(x, T)
        if_alive = getattr(formulas, f"{prefix}_expected_purchases_if_alive")
        e = if_alive(steps[:, None], x[first][None, :], T[first][None, :], *params)
        alive = getattr(formulas, f"{prefix}_probability_alive")(x, t_x, T, *params)
        disc = None if discount is None else (discount @ (e[1:] - e[:-1]))[codes] * alive
        purchases = e[-1][codes] * alive
        no_purchase = getattr(formulas, f"{prefix}_probability_no_purchase")
        t_h = np.full(len(x), float(horizon))
        if prefix == "pareto_nbd":  # its P(alive) is costly: not twice
            none = no_purchase(t_h, x, t_x, T, *params, p_alive=alive)
        else:
            none = no_purchase(t_h, x, t_x, T, *params)
        return alive, purchases, none, disc
    twin = _at(model, theta)
    frame = pd.DataFrame(rows)
    alive = twin.probability_alive(frame).to_numpy()
    e = np.stack([twin.expected_purchases(frame, k).to_numpy() for k in steps])
    none = twin.probability_no_purchase(frame, float(horizon)).to_numpy()
    return alive, e[-1], none, None if discount is None else discount @ (e[1:] - e[:-1])


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
    # b + x first: with a tiny b, (b + x + n) - 1 would round b away and give 0 / 0
    bx = b + x
    abx = a + bx
    nb = q**s  # P(Pois = 0)
    tail = np.ones_like(nb)  # P(Pois >= n)
    survive = np.ones_like(nb)  # E[(1 - p)^n]
    die_at = a / abx  # E[p (1 - p)^(n-1)] at n = 1
    out[:, :, 0] = nb
    for n in range(1, n_max + 1):
        tail = tail - nb
        nb = nb * (s + (n - 1.0)) / n * (1.0 - q)
        survive = survive * ((bx + (n - 1.0)) / (abx + (n - 1.0)))
        out[:, :, n] = nb * survive + np.maximum(tail, 0.0) * die_at
        die_at = die_at * ((bx + (n - 1.0)) / (abx + n))
    return out


def _kind(model) -> str | None:
    """The model's own ``kind`` (not a subclass's: this module is below the model modules)."""
    return type(model).__dict__.get("kind")


#: purchase models whose expectation is P(alive) times a factor given alive, by formula prefix
_IF_ALIVE = {"BetaGeoNBD": "bgnbd", "ModifiedBetaGeoNBD": "mbgnbd", "ParetoNBD": "pareto_nbd"}
#: purchase models with a count distribution (:func:`_count_pmf_if_alive`)
_COUNT_KINDS = ("BetaGeoNBD", "ModifiedBetaGeoNBD", "ParetoNBD", "BetaGeoBetaBinom")


def _has_count_distribution(model) -> bool:
    return _kind(model) in _COUNT_KINDS


def _count_pmf_if_alive(model, theta: np.ndarray, x, T, t: float, n_max: int) -> np.ndarray:
    """``P(X(T, T + t) = n | alive, x, T)`` of any purchase model, shape (pairs, draws, n_max + 1).

    Given alive, every model's future is its new-customer process at
    parameters updated by the history:

    BG/NBD
        ``lambda ~ Gamma(r + x, alpha + T)``, ``p ~ Beta(a, b + x)``
        (:func:`_count_pmf_if_alive_bgnbd`).
    MBG/NBD
        The same with ``p ~ Beta(a, b + x + 1)``: alive, the customer has
        survived ``x + 1`` coin flips (one at time 0), and from ``T`` on drops
        out only right after a purchase, as under the BG/NBD; so it is the
        BG/NBD distribution at ``b + 1``.
    Pareto/NBD
        ``lambda ~ Gamma(r + x, alpha + T)``, ``mu ~ Gamma(s, beta + T)``
        (:func:`rfmml.models._formulas_pareto.pareto_nbd_count_pmf_if_alive`).
    BG/BB
        Alive at opportunity ``T + 1``, ``p ~ Beta(alpha + x, beta + T - x)``,
        ``theta ~ Beta(gamma, delta + T + 1)``, over ``t`` opportunities
        (:func:`rfmml.models._formulas_bgbb.bgbb_count_pmf_if_alive`; there
        ``n_max`` must be ``t``).

    ``theta`` holds one row of parameters per draw; ``x`` and ``T`` one value per pair.
    """
    kind = _kind(model)
    x = np.asarray(x, dtype=float)[:, None]
    T = np.asarray(T, dtype=float)[:, None]
    cols = [theta[:, i][None, :] for i in range(theta.shape[1])]
    if kind == "BetaGeoNBD":
        return _count_pmf_if_alive_bgnbd(theta, x[:, 0], T[:, 0], t, n_max)
    if kind == "ModifiedBetaGeoNBD":
        shifted = np.array(theta, dtype=float, copy=True)
        shifted[:, 3] += 1.0
        return _count_pmf_if_alive_bgnbd(shifted, x[:, 0], T[:, 0], t, n_max)
    if kind == "ParetoNBD":
        return FP.pareto_nbd_count_pmf_if_alive(n_max, t, x, T, *cols)
    if kind == "BetaGeoBetaBinom":
        if n_max != int(t):
            raise ValueError(f"the BG/BB count grid is the horizon {t}, got n_max={n_max}.")
        return FB.bgbb_count_pmf_if_alive(n_max, x, T, *cols)
    raise TypeError(f"{type(model).__name__} has no count distribution.")


def _count_grid(model, theta_hat: np.ndarray, x: np.ndarray, T: np.ndarray, t: float):
    """First count grid per (frequency, T) pair, and its cap (None: doubled as needed).

    Continuous-time models: the mean given alive plus four negative-binomial
    standard deviations (shape ``r + x``), the grid's length ``n_max + 1``
    rounded up to a multiple of 16 (of 64 beyond 512: few distinct sizes, so
    many pairs are evaluated together, and whole blocks of 16 counts for the
    Pareto/NBD quadrature). BG/BB: the horizon, which bounds the count.
    """
    if _kind(model) == "BetaGeoBetaBinom":
        return np.full(len(x), int(t), dtype=np.int64), int(t)
    prefix = _IF_ALIVE[_kind(model)]  # type: ignore[index]
    if_alive = getattr(model._formulas, f"{prefix}_expected_purchases_if_alive")
    e_hat = if_alive(np.full(len(x), t), x, T, *theta_hat)
    sd = np.sqrt(e_hat + e_hat**2 / (theta_hat[0] + x))
    need = np.ceil(e_hat + 4.0 * sd + 5.0)
    step = np.where(need > 512, 64.0, 16.0)
    return (step * np.ceil((np.maximum(need, 8.0) + 1.0) / step) - 1.0).astype(np.int64), None


# ----------------------------------------------------------- interval results
@dataclass
class IntervalPredictions:
    """What :func:`interval_predictions` returns.

    Attributes
    ----------
    columns : pandas.DataFrame
        ``<column>_lower`` and ``<column>_upper`` per customer (index of the summary),
        plus ``purchase_count_lower``/``_upper`` (whole numbers) when there is a
        purchase model.
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
    two models are fitted separately, so their draws are independent) on
    unique rows, in chunks of at most ``chunk_elements / n_draws`` rows: the
    purchase model's predictions on the unique (frequency, recency, T) rows,
    the order value and CLV on the unique (purchase row, monetary_value,
    segment) rows. Only two unique-purchase-rows x draws matrices live
    through the call (expected purchases and discounted purchases, which
    revenue and CLV reuse); everything else is chunk x draws. The bounds are the
    ``(1 - interval) / 2`` and ``(1 + interval) / 2`` quantiles over draws
    (linear interpolation), widened where needed to contain the point
    estimate, which the draws never change.

    The predictive interval of the number of purchases in ``(T, T + horizon]``
    (``purchase_count``) is exact, not simulated: the mixture over draws of
    the model's conditional distribution of the count,
    ``P(n) = (1 - P_alive) [n = 0] + P_alive P(n | alive)`` with the
    distribution given alive of :func:`_count_pmf_if_alive` (BG/NBD, MBG/NBD,
    Pareto/NBD and BG/BB: every purchase model), evaluated for n = 0..n_max
    with n_max doubled until the mixture reaches the upper level (BG/BB: the
    horizon). Its mean is the model's ``expected_purchases`` and its mass at
    0 ``probability_no_purchase``, at every draw.

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
        raise ValueError(
            "interval_predictions needs a purchase model, a Gamma-Gamma model or both."
        )
    rng = check_random_state(random_state)
    given = {k: m for k, m in (("purchase_model", purchase_model), ("gamma_gamma", gamma_gamma))
             if m is not None}  # fmt: skip
    if any(k not in draws for k in given):
        raise ValueError(f"draws must hold an array for each model given: {sorted(given)}.")
    sizes = {len(np.asarray(draws[k])) for k in given}
    if len(sizes) != 1:
        raise ValueError(f"the models' draws must have the same number of rows, got {sizes}.")
    D = sizes.pop()
    lo_q, hi_q = (1.0 - interval) / 2.0, (1.0 + interval) / 2.0
    chunk = max(1, int(chunk_elements) // D)

    needed = ["frequency"]
    if purchase_model is not None:
        needed += [c for c in purchase_model.fit_columns if c not in needed]
    if gamma_gamma is not None:
        needed.append("monetary_value")
    c = check_summary(summary, tuple(needed), what="interval_predictions")
    n = len(summary)
    if segments is None:
        seg_codes = np.zeros(n, dtype=np.int64)
        seg_labels = np.array(["all"], dtype=object)
    else:
        labels = pd.Series(np.asarray(segments, dtype=object)).astype(str)
        seg_codes, uniques = pd.factorize(labels, sort=True)
        seg_labels = np.asarray(uniques, dtype=object)
    n_seg = len(seg_labels)
    steps = np.arange(1, int(horizon) + 1, dtype=float)
    discount = (1.0 + float(discount_rate)) ** -steps
    out: dict[str, np.ndarray] = {}
    point_totals: dict[str, np.ndarray] = {}  # per segment
    draw_totals: dict[str, np.ndarray] = {}  # per segment x draw
    count_mean = np.zeros((n_seg, D))
    count_var = np.zeros((n_seg, D))
    has_count = purchase_model is not None and _has_count_distribution(purchase_model)

    # ---- phase A: the purchase model on unique purchase rows, sorted by (frequency, T)
    if purchase_model is not None:
        pcols = purchase_model.fit_columns
        pcode, pfirst = group_rows(*(c[k] for k in pcols))
        order = np.lexsort([c[k][pfirst] for k in reversed(("frequency", "T", *pcols))
                            if k in c])  # fmt: skip
        rank = np.empty(len(pfirst), dtype=np.int64)
        rank[order] = np.arange(len(pfirst))
        pcode, pfirst = rank[pcode], pfirst[order]
        n_p = len(pfirst)
        prows = {k: c[k][pfirst] for k in pcols}
        # customers per (segment, purchase row)
        seg_w = sparse.csr_matrix((np.ones(n), (seg_codes, pcode)), shape=(n_seg, n_p))
        theta_p = np.asarray(draws["purchase_model"], dtype=float)
        theta_hat = np.array(list(purchase_model.get_fitted_params().values()))
        wanted = discount if gamma_gamma is not None else None
        p_alive, p_purch, p_none, p_disc = _purchase_at(
            purchase_model, theta_hat, prows, horizon, wanted
        )
        point = {"probability_alive": p_alive, "expected_purchases": p_purch,
                 "probability_no_purchase": p_none}  # fmt: skip
        bounds = {k: (np.empty(n_p), np.empty(n_p)) for k in point}
        # kept for revenue and CLV: float32 (their bounds are Monte Carlo quantities; every
        # point estimate stays float64)
        purch_m = np.empty((n_p, D), dtype=np.float32)
        disc_m = np.empty((n_p, D), dtype=np.float32) if gamma_gamma is not None else None
        count_bounds = (np.empty(n_p), np.empty(n_p))
        for start in range(0, n_p, chunk):
            sl = slice(start, min(start + chunk, n_p))
            rows = {k: v[sl] for k, v in prows.items()}
            mats = {k: np.empty((sl.stop - sl.start, D)) for k in point}
            for d in range(D):
                alive, purchases, none, disc = _purchase_at(
                    purchase_model, theta_p[d], rows, horizon, wanted
                )
                mats["probability_alive"][:, d] = alive
                mats["expected_purchases"][:, d] = purchases
                mats["probability_no_purchase"][:, d] = none
                if disc_m is not None:
                    disc_m[sl, d] = disc
            purch_m[sl] = mats["expected_purchases"]
            for k, mat in mats.items():
                _bounds_into(bounds[k], sl, mat, point[k][sl], lo_q, hi_q)
            if has_count:
                _count_chunk(purchase_model, theta_p, rows, mats["probability_alive"],
                             float(horizon), lo_q, hi_q, count_bounds, sl,
                             seg_w[:, sl], count_mean, count_var)  # fmt: skip
            del mats
        for k in INTERVAL_COLUMNS:
            if k in bounds:
                out[f"{k}_lower"], out[f"{k}_upper"] = bounds[k][0][pcode], bounds[k][1][pcode]
        if has_count:
            out[f"{COUNT_COLUMN}_lower"] = count_bounds[0][pcode]
            out[f"{COUNT_COLUMN}_upper"] = count_bounds[1][pcode]
        point_totals["expected_purchases"] = seg_w @ p_purch
        draw_totals["expected_purchases"] = np.asarray(seg_w @ purch_m)

    # ---- phase B: order value, CLV and revenue on unique (purchase row, spend, segment) rows
    if gamma_gamma is not None:
        x = c["frequency"]
        m = np.where(x > 0, c["monetary_value"], 0.0)
        key = [pcode] if purchase_model is not None else [x]
        code, first = group_rows(*key, m, seg_codes)
        n_u = len(first)
        w = np.bincount(code, minlength=n_u).astype(float)
        ux, um, useg = x[first], m[first], seg_codes[first]
        ux32, um32 = ux.astype(np.float32), um.astype(np.float32)
        upc = pcode[first] if purchase_model is not None else None
        theta_g = np.asarray(draws["gamma_gamma"], dtype=float)
        g_hat = tuple(gamma_gamma.get_fitted_params().values())
        eov_hat = F.gamma_gamma_expected_order_value(ux, um, *g_hat)
        gpoint = {"expected_order_value": eov_hat}
        if upc is not None:
            assert p_disc is not None
            gpoint["clv"] = np.maximum(eov_hat * p_disc[upc], 0.0)
            revenue_hat = eov_hat * p_purch[upc]
        gbounds = {k: (np.empty(n_u), np.empty(n_u)) for k in gpoint}
        sums = {k: np.zeros((n_seg, D)) for k in ("clv", "revenue") if upc is not None}
        pq = [theta_g[:, i][None, :].astype(np.float32) for i in range(3)]
        for start in range(0, n_u, chunk):
            sl = slice(start, min(start + chunk, n_u))
            eov = F.gamma_gamma_expected_order_value(ux32[sl, None], um32[sl, None], *pq)
            mats = {"expected_order_value": eov}
            if upc is not None:
                assert disc_m is not None
                mats["clv"] = np.maximum(eov * disc_m[upc[sl]], np.float32(0.0))
                onehot = sparse.csr_matrix(
                    (w[sl], (useg[sl], np.arange(sl.stop - sl.start))),
                    shape=(n_seg, sl.stop - sl.start),
                )
                sums["clv"] += onehot @ mats["clv"]
                sums["revenue"] += onehot @ (eov * purch_m[upc[sl]])
            for k, mat in mats.items():
                _bounds_into(gbounds[k], sl, mat, gpoint[k][sl], lo_q, hi_q)
            del mats
        for k in gpoint:
            out[f"{k}_lower"], out[f"{k}_upper"] = gbounds[k][0][code], gbounds[k][1][code]
        if upc is not None:
            for k, per_row in (("revenue", revenue_hat), ("clv", gpoint["clv"])):
                point_totals[k] = np.bincount(useg, weights=w * per_row, minlength=n_seg)
                draw_totals[k] = sums[k]

    ends = ("lower", "upper")
    ordered = [f"{k}_{end}" for k in (*INTERVAL_COLUMNS, COUNT_COLUMN) for end in ends]
    frame = pd.DataFrame({k: out[k] for k in ordered if k in out}, index=summary.index)
    n_per_seg = np.bincount(seg_codes, minlength=n_seg)
    table = _totals_table(point_totals, draw_totals, count_mean, count_var, has_count,
                          n_per_seg, seg_labels, lo_q, hi_q, rng,
                          segmented=segments is not None)  # fmt: skip
    settings = {"interval": float(interval), "n_draws": int(D)}
    return IntervalPredictions(frame, table, settings)


def _bounds_into(bounds, sl: slice, mat: np.ndarray, point: np.ndarray, lo_q: float,
                 hi_q: float) -> None:  # fmt: skip
    """Quantiles over draws (columns) into ``bounds[0][sl]``, ``bounds[1][sl]``, with ``point``."""
    q = np.quantile(mat, [lo_q, hi_q], axis=1)
    bounds[0][sl] = np.minimum(q[0], point)
    bounds[1][sl] = np.maximum(q[1], point)


def _count_chunk(model, theta_p, prow, alive, t, lo_q, hi_q, count_bounds, sl, seg_w,
                 count_mean, count_var) -> None:  # fmt: skip
    """Predictive count quantiles of a chunk of purchase rows; per-draw count moments per segment.

    ``alive`` is P(alive) per row and draw (rows x draws). The count
    distribution given alive depends on (frequency, T) only: it is evaluated
    per distinct pair for all draws at once and mixed with each row's P(alive)
    draws by one matrix product per pair. ``seg_w`` counts customers per
    (segment, row of the chunk).
    """
    D = len(theta_p)
    pair, pfirst = group_rows(prow["frequency"], prow["T"])
    x, T = prow["frequency"][pfirst], prow["T"][pfirst]
    theta_hat = np.array(list(model.get_fitted_params().values()))
    # each pair's count grid (_count_grid), doubled below for pairs whose mixture has not
    # reached the upper level (BG/BB: the horizon, which holds every count)
    n_pair, cap = _count_grid(model, theta_hat, x, T, t)
    by_pair = np.argsort(pair, kind="stable")
    splits = np.split(by_pair, np.cumsum(np.bincount(pair, minlength=len(x)))[:-1])
    mu, m2 = np.empty((len(x), D)), np.empty((len(x), D))
    todo = np.arange(len(x))
    mix = np.zeros((len(pair), int(n_pair.max()) + 1))
    while True:
        n_max = int(n_pair.max())
        if mix.shape[1] < n_max + 1:
            mix = np.pad(mix, ((0, 0), (0, n_max + 1 - mix.shape[1])))
        for size in np.unique(n_pair[todo]):
            group = todo[n_pair[todo] == size]
            cond = _count_pmf_if_alive(model, theta_p, x[group], T[group], t, int(size))
            grid = np.arange(size + 1, dtype=float)
            mu[group], m2[group] = cond @ grid, cond @ grid**2  # pairs x D
            for j, c in zip(group, cond, strict=True):
                idx = splits[j]
                mix[idx] = 0.0
                mix[idx, : size + 1] = alive[idx] @ c / D
                mix[idx, 0] += 1.0 - alive[idx].mean(axis=1)
        cdf = np.cumsum(mix, axis=1)
        if not np.isfinite(cdf).all():
            raise FloatingPointError(
                f"the {type(model).__name__} count distribution is not finite at some "
                "parameter draws; the parameters are poorly identified (see summary_)."
            )
        short = np.zeros(len(x), dtype=bool)
        short[pair[cdf[:, -1] < hi_q + 1e-9]] = True
        if cap is not None:
            short &= n_pair < cap
        # stop when every row reaches the upper level, or (memory kept bounded) report
        # the grid's end as the upper bound of the rows that would need more
        if not short.any() or D * int(n_pair[short].max()) >= 2**22:
            break
        n_pair[short] = 2 * n_pair[short] + 1  # twice the grid length: whole blocks of 16
        todo = np.flatnonzero(short)
    count_bounds[0][sl] = np.argmax(cdf >= lo_q - 1e-12, axis=1)
    reach = cdf >= hi_q - 1e-12
    count_bounds[1][sl] = np.where(reach.any(axis=1), np.argmax(reach, axis=1), n_max)
    means = alive * mu[pair]
    count_mean += seg_w @ means
    count_var += seg_w @ np.maximum(alive * m2[pair] - means**2, 0.0)


def _totals_table(point_totals, draw_totals, count_mean, count_var, has_count, n_per_seg,
                  seg_labels, lo_q, hi_q, rng, segmented: bool) -> pd.DataFrame:  # fmt: skip
    """One row per segment (when segmented) and ``"all"``: totals and their joint-draw intervals."""
    n_seg = len(seg_labels)
    groups = [(str(seg_labels[s]), [s]) for s in range(n_seg)] if segmented else []
    groups.append(("all", list(range(n_seg))))
    z = rng.standard_normal(count_mean.shape[1])
    records = []
    for label, members in groups:
        rec: dict[str, Any] = {"segment": label, "n_customers": int(n_per_seg[members].sum())}
        for k in ("expected_purchases", "revenue", "clv"):
            if k not in draw_totals:
                continue
            est = float(point_totals[k][members].sum())
            lo, hi = np.quantile(draw_totals[k][members].sum(axis=0), [lo_q, hi_q])
            rec[k], rec[f"{k}_lower"], rec[f"{k}_upper"] = est, min(lo, est), max(hi, est)
        if has_count:
            mean = count_mean[members].sum(axis=0)
            sd = np.sqrt(count_var[members].sum(axis=0))
            total = np.maximum(np.round(mean + sd * z), 0.0)
            lo, hi = np.quantile(total, [lo_q, hi_q])
            rec[f"{COUNT_COLUMN}_lower"] = float(np.floor(lo))
            rec[f"{COUNT_COLUMN}_upper"] = float(np.ceil(hi))
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
        assert disc is not None
        eov = F.gamma_gamma_expected_order_value(rows["frequency"], rows["monetary_value"],
                                                 *theta_g[d])  # fmt: skip
        clv = np.maximum(eov * disc, 0.0)
        order = np.argsort(clv, kind="stable")
        cum = np.cumsum(w[order])
        cut = clv[order][np.searchsorted(cum, (1.0 - fraction) * cum[-1], side="left")]
        hits += clv >= cut
    return pd.Series(hits[codes] / len(theta_p), index=summary.index, name="p_top")
