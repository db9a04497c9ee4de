r"""Backtest metrics: how close predictions for one holdout period came to what happened.

Every function takes plain arrays (one value per customer, or one per holdout
period for the tracking curve) and returns a float, so the same definitions
score every model at every origin of a rolling backtest
(:mod:`rfmml.backtest`). Their names and directions are registered in
:data:`rfmml.evaluation.metrics.BACKTEST_METRICS`.

Notation: :math:`y_i` is customer :math:`i`'s realised value, :math:`\hat y_i`
its prediction, :math:`n` the number of customers.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike

from rfmml.evaluation.repeat_tracking import tracking_mape as _tracking_mape

__all__ = [
    "backtest_metrics",
    "brier_score",
    "calibration_error",
    "decile_calibration",
    "decile_calibration_error",
    "gini",
    "lift_quality",
    "mae",
    "migration_tvd",
    "rmse",
    "spend_mae",
    "tracking_mape",
]


def _pair(actual: ArrayLike, predicted: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    y = np.asarray(actual, dtype=float)
    p = np.asarray(predicted, dtype=float)
    if y.shape != p.shape or y.ndim != 1:
        raise ValueError(
            f"actual and predicted must be 1-d arrays of the same length, got shapes "
            f"{y.shape} and {p.shape}"
        )
    return y, p


def mae(actual: ArrayLike, predicted: ArrayLike) -> float:
    r"""Mean absolute error, :math:`\frac1n \sum_i |\hat y_i - y_i|`."""
    y, p = _pair(actual, predicted)
    return float(np.mean(np.abs(p - y))) if len(y) else math.nan


def rmse(actual: ArrayLike, predicted: ArrayLike) -> float:
    r"""Root mean squared error, :math:`\sqrt{\frac1n \sum_i (\hat y_i - y_i)^2}`."""
    y, p = _pair(actual, predicted)
    return float(np.sqrt(np.mean((p - y) ** 2))) if len(y) else math.nan


def tracking_mape(actual_cumulative: ArrayLike, predicted_cumulative: ArrayLike) -> float:
    r"""Mean absolute percentage error of the cumulative repeat-transaction curve.

    With :math:`A_t` the realised and :math:`\hat A_t` the predicted cumulative
    number of repeat transactions of the whole cohort after :math:`t` holdout
    periods,

    .. math:: \mathrm{MAPE} = \frac{100}{|\mathcal T|} \sum_{t \in \mathcal T}
              \frac{|\hat A_t - A_t|}{A_t},
              \qquad \mathcal T = \{t : A_t > 0\}.

    Parameters
    ----------
    actual_cumulative, predicted_cumulative : array_like
        One value per holdout period, in order.

    Returns
    -------
    float
        In percent; NaN when no period has a realised transaction.
    """
    a, p = _pair(actual_cumulative, predicted_cumulative)
    curves = pd.DataFrame({"holdout": True, "actual_cumulative": a, "model_cumulative": p})
    return _tracking_mape(curves, "model")  # the experiment's definition, on plain arrays


def _ranked_shares(actual: np.ndarray, order_by: np.ndarray) -> np.ndarray:
    """Cumulative share of ``actual`` among the top 1..n customers by ``order_by``.

    Ties in ``order_by`` are broken towards the lower realised value (the
    pessimistic order), so a constant prediction earns no credit.
    """
    order = np.lexsort((actual, -order_by))
    return np.cumsum(actual[order]) / actual.sum()


def gini(actual: ArrayLike, predicted: ArrayLike) -> float:
    r"""Normalised Gini coefficient of a ranking.

    Sort customers by :math:`\hat y` (largest first; ties put the smallest
    :math:`y` first) and let :math:`L_k` be the share of :math:`\sum_i y_i`
    held by the first :math:`k`. Then

    .. math:: G(\hat y) = \frac1n \sum_{k=1}^n \Bigl(L_k - \frac kn\Bigr),
              \qquad \mathrm{gini} = \frac{G(\hat y)}{G(y)}:

    1 for the ideal order, about 0 for a random one, negative when reversed.

    Returns
    -------
    float
        NaN when the realised values are all equal (no order to find).
    """
    y, p = _pair(actual, predicted)
    if len(y) == 0 or y.sum() <= 0 or np.ptp(y) == 0:
        return math.nan
    n = len(y)
    base = np.arange(1, n + 1) / n
    g_model = np.mean(_ranked_shares(y, p) - base)
    g_ideal = np.mean(_ranked_shares(y, y) - base)
    return float(g_model / g_ideal)


def lift_quality(actual: ArrayLike, predicted: ArrayLike, top: float = 0.1) -> float:
    r"""Share of the ideal top-group lift captured by ranking on the prediction.

    The top group is the :math:`k = \lceil \mathrm{top}\, n \rceil` customers
    with the largest :math:`\hat y` (ties: smallest :math:`y` first). With
    :math:`C` the share of :math:`\sum_i y_i` they hold and :math:`C^*` the
    share held by the :math:`k` customers with the largest :math:`y`, the
    lifts are :math:`C / (k/n)` and :math:`C^* / (k/n)`, and

    .. math:: \mathrm{lift\_quality} = \frac{C/(k/n) - 1}{C^*/(k/n) - 1}
              = \frac{C - k/n}{C^* - k/n}:

    1 when the top group is the ideal one, 0 for no better than random.

    Parameters
    ----------
    actual, predicted : array_like
    top : float, default 0.1
        Size of the top group as a share of customers, in (0, 1).

    Returns
    -------
    float
        NaN when the ideal group holds no more than its share (no lift to capture).
    """
    if not 0.0 < top < 1.0:
        raise ValueError(f"top must be in (0, 1), got {top!r}")
    y, p = _pair(actual, predicted)
    if len(y) == 0 or y.sum() <= 0:
        return math.nan
    n = len(y)
    k = max(1, math.ceil(top * n))
    base = k / n
    ideal = _ranked_shares(y, y)[k - 1] - base
    if ideal <= 0:
        return math.nan
    return float((_ranked_shares(y, p)[k - 1] - base) / ideal)


def decile_calibration(actual: ArrayLike, predicted: ArrayLike, n_bins: int = 10) -> pd.DataFrame:
    r"""Mean prediction and mean outcome by decile of the prediction.

    Customers are sorted by :math:`\hat y` (ties: smallest :math:`y` first) and
    cut into ``n_bins`` groups of sizes differing by at most one (the first
    group holds the smallest predictions).

    Returns
    -------
    pandas.DataFrame
        Index ``decile`` (1..n_bins), columns ``customers``, ``predicted``
        (mean :math:`\hat y`), ``actual`` (mean :math:`y`).
    """
    y, p = _pair(actual, predicted)
    order = np.lexsort((y, p))
    groups = np.array_split(order, n_bins)
    table = pd.DataFrame(
        {
            "customers": [len(g) for g in groups],
            "predicted": [p[g].mean() if len(g) else np.nan for g in groups],
            "actual": [y[g].mean() if len(g) else np.nan for g in groups],
        },
        index=pd.RangeIndex(1, n_bins + 1, name="decile"),
    )
    return table


def decile_calibration_error(actual: ArrayLike, predicted: ArrayLike, n_bins: int = 10) -> float:
    r"""Size-weighted gap between mean prediction and mean outcome per decile, relative.

    With deciles :math:`D_1..D_{10}` of :func:`decile_calibration`,

    .. math:: \mathrm{DCE} = \frac{\sum_d \frac{|D_d|}{n}\,
              |\bar{\hat y}_d - \bar y_d|}{\bar y}:

    0 for predictions that are right on average within every decile.

    Returns
    -------
    float
        NaN when the mean outcome is 0.
    """
    y, _ = _pair(actual, predicted)
    if len(y) == 0 or y.mean() == 0:
        return math.nan
    table = decile_calibration(actual, predicted, n_bins).dropna()
    gap = (table["customers"] * (table["predicted"] - table["actual"]).abs()).sum() / len(y)
    return float(gap / y.mean())


def brier_score(outcome: ArrayLike, probability: ArrayLike) -> float:
    r"""Brier score of probabilities :math:`\pi_i` of an event :math:`o_i \in \{0, 1\}`.

    .. math:: \mathrm{BS} = \frac1n \sum_i (\pi_i - o_i)^2
    """
    o, p = _pair(outcome, probability)
    return float(np.mean((p - o) ** 2)) if len(o) else math.nan


def calibration_error(outcome: ArrayLike, probability: ArrayLike, n_bins: int = 10) -> float:
    r"""Expected calibration error of probabilities :math:`\pi_i` of events :math:`o_i`.

    Bins :math:`B_b = \{i : \pi_i \in [\tfrac{b-1}{10}, \tfrac b{10})\}`
    (the last bin closed), then

    .. math:: \mathrm{ECE} = \sum_b \frac{|B_b|}{n}\,
              \Bigl|\frac{1}{|B_b|}\sum_{i\in B_b} \pi_i
              - \frac{1}{|B_b|}\sum_{i\in B_b} o_i\Bigr|.
    """
    o, p = _pair(outcome, probability)
    if len(o) == 0:
        return math.nan
    bins = np.clip(np.floor(p * n_bins).astype(int), 0, n_bins - 1)
    count = np.bincount(bins, minlength=n_bins)
    gap = np.abs(
        np.bincount(bins, weights=p, minlength=n_bins)
        - np.bincount(bins, weights=o, minlength=n_bins)
    )
    return float(gap[count > 0].sum() / len(o))


def spend_mae(actual_spend: ArrayLike, predicted_spend: ArrayLike, mask: ArrayLike) -> float:
    r"""Mean absolute error of the mean order value, over the customers in ``mask``.

    .. math:: \frac{1}{|S|} \sum_{i \in S} |\hat m_i - m_i|

    where :math:`S` is usually the customers with repeat purchases in both
    periods (whose holdout order value :math:`m_i` is observed).
    """
    y, p = _pair(actual_spend, predicted_spend)
    keep = np.asarray(mask, dtype=bool)
    return float(np.mean(np.abs(p[keep] - y[keep]))) if keep.any() else math.nan


def migration_tvd(predicted: pd.DataFrame, realised: pd.DataFrame) -> float:
    r"""Total variation distance between predicted and realised segment shares, per row.

    Both frames are transition matrices: rows the segment at the origin, columns
    the segment at the horizon, values shares (each row sums to 1). For every
    row :math:`s` of ``realised`` with customers,

    .. math:: \mathrm{TVD}_s = \tfrac12 \sum_{c} |P_{sc} - R_{sc}|,

    and the metric is the unweighted mean over those rows. Missing columns of
    ``predicted`` count as share 0; a row of ``realised`` that ``predicted``
    lacks counts as the largest distance, 1.

    Returns
    -------
    float
        In [0, 1]; NaN when ``realised`` has no row.
    """
    real = realised.dropna(how="all").fillna(0.0)
    if real.empty:
        return math.nan
    columns = real.columns.union(predicted.columns, sort=False)
    real = real.reindex(columns=columns, fill_value=0.0)
    pred = predicted.reindex(index=real.index, columns=columns).fillna(0.0)
    distance = 0.5 * (pred - real).abs().sum(axis=1)
    distance[~real.index.isin(predicted.dropna(how="all").index)] = 1.0
    return float(distance.mean())


def backtest_metrics(
    predictions: pd.DataFrame,
    tracking: pd.DataFrame | None = None,
    *,
    top: float = 0.1,
) -> dict[str, float]:
    """Every per-customer backtest metric of one model on one holdout period.

    Parameters
    ----------
    predictions : pandas.DataFrame
        One row per customer: ``actual_purchases``, ``predicted_purchases``,
        ``probability`` (of at least one holdout purchase); optional
        ``actual_value`` and ``predicted_value`` (holdout spend, used for
        ``lift_quality`` and ``gini``; purchases are used without them);
        optional ``actual_spend``, ``predicted_spend`` and ``spend_observed``
        (for ``spend_mae``).
    tracking : pandas.DataFrame, optional
        One row per holdout period: ``actual`` and ``predicted`` cumulative
        repeat transactions (for ``tracking_mape``).
    top : float, default 0.1
        Top group of :func:`lift_quality`.

    Returns
    -------
    dict of str to float
        ``mae``, ``rmse``, ``tracking_mape``, ``lift_quality``, ``gini``,
        ``decile_calibration_error``, ``buy_again_brier``,
        ``buy_again_calibration_error`` and ``spend_mae`` (those whose inputs
        are present).
    """
    actual = predictions["actual_purchases"].to_numpy(dtype=float)
    predicted = predictions["predicted_purchases"].to_numpy(dtype=float)
    bought = (actual > 0).astype(float)
    probability = predictions["probability"].to_numpy(dtype=float)
    if "actual_value" in predictions and "predicted_value" in predictions:
        value, value_hat = (
            predictions["actual_value"].to_numpy(dtype=float),
            predictions["predicted_value"].to_numpy(dtype=float),
        )
    else:
        value, value_hat = actual, predicted
    out = {
        "mae": mae(actual, predicted),
        "rmse": rmse(actual, predicted),
        "lift_quality": lift_quality(value, value_hat, top),
        "gini": gini(value, value_hat),
        "decile_calibration_error": decile_calibration_error(actual, predicted),
        "buy_again_brier": brier_score(bought, probability),
        "buy_again_calibration_error": calibration_error(bought, probability),
    }
    if tracking is not None:
        out["tracking_mape"] = tracking_mape(tracking["actual"], tracking["predicted"])
    if {"actual_spend", "predicted_spend", "spend_observed"} <= set(predictions.columns):
        out["spend_mae"] = spend_mae(
            predictions["actual_spend"],
            predictions["predicted_spend"],
            predictions["spend_observed"],
        )
    return out
