"""Holdout evaluation of purchase models and Gamma-Gamma against a naive baseline.

The models are fitted on the calibration period and judged on what customers
did in the holdout period (the frame of
:func:`rfmml.features.calibration_holdout`). The baseline carries each
customer's calibration purchase rate forward: ``frequency_cal / T_cal``
repeat purchases per period (Poisson, so ``1 - exp(-rate t)`` for the chance
of buying again) and the calibration mean spend.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import pandas as pd
from sklearn.metrics import roc_auc_score

from rfmml.errors import DataError
from rfmml.features import calibration_summary
from rfmml.features._spark import is_spark
from rfmml.models import GammaGamma, PurchaseModel

__all__ = [
    "HOLDOUT_COLUMNS",
    "evaluate_holdout",
    "fit_statistics",
    "holdout_frame",
    "holdout_metrics",
    "holdout_predictions",
]

HOLDOUT_COLUMNS = (
    "frequency_cal",
    "recency_cal",
    "T_cal",
    "frequency_holdout",
    "duration_holdout",
)


def require_holdout_columns(columns: Iterable[str], spend: bool) -> list[str]:
    """The columns the holdout evaluation reads (pandas or Spark); raise if any is missing."""
    needed = list(HOLDOUT_COLUMNS) + (
        ["monetary_value_cal", "monetary_value_holdout"] if spend else []
    )
    missing = [c for c in needed if c not in columns]
    if missing:
        raise DataError(
            f"cal_holdout needs columns {needed}, but {missing} are missing. Build it with "
            "rfmml.features.calibration_holdout (with an amount column for spend metrics)."
        )
    return needed


def _check(cal_holdout: pd.DataFrame, spend: bool) -> None:
    if not isinstance(cal_holdout, pd.DataFrame):
        raise TypeError(
            f"cal_holdout must be a pandas DataFrame, got {type(cal_holdout).__name__}. "
            "Build it with rfmml.features.calibration_holdout."
        )
    require_holdout_columns(cal_holdout.columns, spend)
    if len(cal_holdout) == 0:
        raise DataError("cal_holdout is empty (0 customers); nothing to evaluate.")


def _buy_again(model: PurchaseModel, summary: pd.DataFrame, duration: np.ndarray) -> np.ndarray:
    """P(at least one purchase in the holdout), per customer."""
    if hasattr(model, "probability_repeat_purchase"):  # BG/NBD's closed form
        return model.probability_repeat_purchase(summary, duration).to_numpy()
    return model.probability_purchase_within(summary, duration).to_numpy()


def fit_statistics(model: PurchaseModel) -> dict[str, float]:
    """Maximised log-likelihood, number of parameters, AIC and BIC of a fitted model.

    ``aic = 2 k - 2 LL`` and ``bic = k ln(n) - 2 LL`` with ``k`` parameters and
    ``n`` customers in the fit (the model's ``n_customers_``).

    Parameters
    ----------
    model : MaximumLikelihoodModel
        A fitted model.

    Returns
    -------
    dict
        ``log_likelihood``, ``n_params``, ``aic``, ``bic``.
    """
    ll = float(model.log_likelihood_)
    k = float(len(model.param_names))
    n = float(model.n_customers_)
    return {
        "log_likelihood": ll,
        "n_params": k,
        "aic": 2.0 * k - 2.0 * ll,
        "bic": k * float(np.log(n)) - 2.0 * ll,
    }


def holdout_predictions(
    bgnbd: PurchaseModel, gamma_gamma: GammaGamma | None, cal_holdout: pd.DataFrame
) -> pd.DataFrame:
    """Per-customer predictions for the holdout period, model and baseline side by side.

    Parameters
    ----------
    bgnbd : PurchaseModel
        Any fitted purchase model (BG/NBD, MBG/NBD, Pareto/NBD, ...), fitted
        on the calibration summary.
    gamma_gamma : GammaGamma or None
        Fitted on the calibration summary; ``None`` skips the spend columns.
    cal_holdout : pandas.DataFrame
        Columns of :func:`rfmml.features.calibration_holdout`:
        ``frequency_cal, recency_cal, T_cal, monetary_value_cal,
        frequency_holdout, monetary_value_holdout, duration_holdout``.

    Returns
    -------
    pandas.DataFrame
        Aligned to ``cal_holdout.index``: ``actual_purchases``,
        ``model_purchases``, ``baseline_purchases``, ``bought_again``,
        ``model_probability``, ``baseline_probability`` and, with a spend
        model, ``actual_spend``, ``model_spend``, ``baseline_spend``.
    """
    _check(cal_holdout, spend=gamma_gamma is not None)
    return holdout_frame(bgnbd, gamma_gamma, cal_holdout)


def holdout_frame(
    bgnbd: PurchaseModel,
    gamma_gamma: GammaGamma | None,
    cal_holdout: pd.DataFrame,
    population_spend: float | None = None,
) -> pd.DataFrame:
    """:func:`holdout_predictions` of a checked frame, or of a part of one.

    ``population_spend`` is the baseline's order value of customers without a
    repeat purchase (the calibration mean spend of the repeat buyers); default
    that mean over ``cal_holdout``. A caller scoring the customers in parts
    (the Spark path, one Arrow batch at a time) passes the whole population's.
    """
    summary = calibration_summary(cal_holdout)
    duration = cal_holdout["duration_holdout"].to_numpy(dtype=float)
    x = summary["frequency"].to_numpy(dtype=float)
    T = summary["T"].to_numpy(dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        rate = np.where(T > 0, x / T, 0.0)
    actual = cal_holdout["frequency_holdout"].to_numpy(dtype=float)
    out = pd.DataFrame(
        {
            "actual_purchases": actual,
            "model_purchases": bgnbd.expected_purchases(summary, duration).to_numpy(),
            "baseline_purchases": rate * duration,
            "bought_again": actual > 0,
            "model_probability": _buy_again(bgnbd, summary, duration),
            "baseline_probability": -np.expm1(-rate * duration),
        },
        index=cal_holdout.index,
    )
    if gamma_gamma is not None:
        out["actual_spend"] = cal_holdout["monetary_value_holdout"].to_numpy(dtype=float)
        out["model_spend"] = gamma_gamma.expected_order_value(summary).to_numpy()
        m_cal = summary["monetary_value"].to_numpy(dtype=float)
        repeat = x > 0
        if population_spend is None:
            population_spend = float(m_cal[repeat].mean()) if repeat.any() else np.nan
        out["baseline_spend"] = np.where(repeat, m_cal, population_spend)
    return out


def _auc(y: np.ndarray, score: np.ndarray) -> float:
    return float(roc_auc_score(y, score)) if 0 < y.sum() < len(y) else float("nan")


def evaluate_holdout(
    bgnbd: PurchaseModel, gamma_gamma: GammaGamma | None, cal_holdout: pd.DataFrame
) -> pd.DataFrame:
    """Score the models on the holdout period and compare with the naive baseline.

    Parameters
    ----------
    bgnbd, gamma_gamma, cal_holdout
        As in :func:`holdout_predictions` (a ``None`` Gamma-Gamma skips ``spend_mae``).

    Returns
    -------
    pandas.DataFrame
        One row per metric, columns ``model`` and ``baseline``:

        - ``purchases_mae``, ``purchases_rmse``: per-customer error of the
          predicted number of holdout purchases.
        - ``total_purchases_predicted``, ``total_purchases_actual`` and
          ``total_purchases_ratio`` (predicted / actual): the aggregate;
          ``total_purchases_error``: ``|predicted - actual| / actual`` of it.
        - ``spend_mae``: mean absolute error of the predicted mean
          transaction value, over customers with repeat purchases in both
          periods (the ones whose holdout spend is observed and whose
          calibration spend informs the prediction).
        - ``buy_again_brier``, ``buy_again_auc``: Brier score and ROC AUC of
          the probability of at least one holdout purchase.

        ``attrs`` holds ``n_customers``, ``n_spend_customers`` and ``freq``.

        A PySpark ``cal_holdout`` (:func:`rfmml.features.calibration_holdout` of
        a Spark log) is evaluated inside Spark (:mod:`rfmml.evaluation._spark`):
        the same table, the sums and the exact AUC aggregated in Spark.

    Raises
    ------
    DataError
        If required columns are missing or the frame is empty.
    """
    if is_spark(cal_holdout):  # aggregated inside Spark, the same table back
        from rfmml.evaluation._spark import evaluate_holdout_spark

        return evaluate_holdout_spark(bgnbd, gamma_gamma, cal_holdout)
    pred = holdout_predictions(bgnbd, gamma_gamma, cal_holdout)
    actual = pred["actual_purchases"].to_numpy()
    y = pred["bought_again"].to_numpy()
    totals: dict[str, float] = {"n": float(len(pred)), "actual": float(actual.sum())}
    aucs: dict[str, float] = {}
    for name in ("model", "baseline"):
        est = pred[f"{name}_purchases"].to_numpy()
        prob = pred[f"{name}_probability"].to_numpy()
        err = est - actual
        totals |= {
            f"{name}_abs": float(np.add.reduce(np.abs(err))),
            f"{name}_squared": float(np.add.reduce(err**2)),
            f"{name}_predicted": float(est.sum()),
            f"{name}_brier": float(np.add.reduce((prob - y) ** 2)),
        }
        aucs[name] = _auc(y, prob)
    if gamma_gamma is not None:
        both = (cal_holdout["frequency_cal"].to_numpy() > 0) & (actual > 0)
        totals["n_spend"] = float(both.sum())
        for name in ("model", "baseline"):
            diff = pred[f"{name}_spend"].to_numpy()[both] - pred["actual_spend"].to_numpy()[both]
            totals[f"{name}_spend_abs"] = float(np.add.reduce(np.abs(diff)))
    return holdout_metrics(totals, aucs, freq=cal_holdout.attrs.get("freq"))


def holdout_metrics(
    totals: dict[str, float], aucs: dict[str, float], freq: str | None = None
) -> pd.DataFrame:
    """The table of :func:`evaluate_holdout` from its sums over customers.

    The one definition of the holdout metrics, shared by the pandas path
    (numpy sums) and the Spark path (sums aggregated in Spark,
    :mod:`rfmml.evaluation._spark`).

    Parameters
    ----------
    totals : dict
        ``n`` (customers), ``actual`` (holdout purchases) and, for ``name`` in
        ``model`` and ``baseline``: ``<name>_abs`` and ``<name>_squared`` (sums
        of the absolute and squared errors of the predicted purchases),
        ``<name>_predicted`` (their sum), ``<name>_brier`` (sum of the squared
        errors of the probability of buying again); with a spend model also
        ``n_spend`` and ``<name>_spend_abs``.
    aucs : dict
        ROC AUC of ``model`` and ``baseline`` (NaN when one class is empty).
    freq : str, optional
        Recorded in ``attrs``.

    Returns
    -------
    pandas.DataFrame
        As :func:`evaluate_holdout`.
    """
    n, actual = totals["n"], totals["actual"]
    rows: dict[str, dict[str, float]] = {}
    for name in ("model", "baseline"):
        predicted = totals[f"{name}_predicted"]
        rows[name] = {
            "purchases_mae": totals[f"{name}_abs"] / n,
            "purchases_rmse": float(np.sqrt(totals[f"{name}_squared"] / n)),
            "total_purchases_predicted": predicted,
            "total_purchases_actual": actual,
            "total_purchases_ratio": predicted / actual if actual else np.nan,
            "total_purchases_error": abs(predicted - actual) / actual if actual else np.nan,
            "buy_again_brier": totals[f"{name}_brier"] / n,
            "buy_again_auc": float(aucs[name]),
        }
    n_spend = int(totals.get("n_spend", 0))
    if "n_spend" in totals:
        for name in ("model", "baseline"):
            rows[name]["spend_mae"] = totals[f"{name}_spend_abs"] / n_spend if n_spend else np.nan
    result = pd.DataFrame(rows)
    result.index.name = "metric"
    result.attrs.update(n_customers=int(n), n_spend_customers=n_spend, freq=freq)
    return result
