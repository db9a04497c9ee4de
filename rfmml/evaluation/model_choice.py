"""Choosing the scoring model among the purchase models judged on the holdout.

The pandas run (:mod:`rfmml.pipeline`) and the Spark run
(:mod:`rfmml.spark_run`) compare their purchase models with the same table
(``model_comparison.csv``), choose with the same rule and word a degenerate
fit the same way.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd

from rfmml.evaluation.metrics import model_lower_is_better
from rfmml.models import PurchaseModel

__all__ = [
    "COMPARISON_METRICS",
    "baseline_beats_message",
    "choose_model",
    "comparison_table",
    "degenerate_message",
]

#: The columns of ``model_comparison.csv`` (fit statistics, then holdout metrics).
COMPARISON_METRICS = (
    "log_likelihood",
    "n_params",
    "aic",
    "bic",
    "purchases_mae",
    "purchases_rmse",
    "total_purchases_error",
    "buy_again_auc",
    "buy_again_brier",
    "tracking_mape",
)


def choose_model(metrics: Mapping[str, Mapping[str, float]], selection: str) -> str:
    """The model with the best ``selection`` metric; NaN loses, ties go to the first listed.

    Parameters
    ----------
    metrics : mapping of str to mapping
        Each model's metrics (fit statistics and holdout metrics), in config order.
    selection : str
        A metric with a direction (:func:`~rfmml.evaluation.selection_metrics`).
    """
    sign = 1.0 if model_lower_is_better(selection) else -1.0

    def key(name: str) -> float:
        value = metrics[name].get(selection, np.nan)
        return sign * value if np.isfinite(value) else np.inf

    return min(metrics, key=key)  # min keeps the first of equal keys


def baseline_beats_message(
    metrics: Mapping[str, float], baseline: Mapping[str, float], selection: str, label: str
) -> str | None:
    """One plain line when the naive baseline beats the chosen model on ``selection``.

    Parameters
    ----------
    metrics : mapping
        The chosen model's metrics (``selection`` among them).
    baseline : mapping
        The baseline's holdout metrics (the ``baseline`` column of the holdout table).
    selection : str
        The metric the model was chosen by.
    label : str
        The chosen model's readable name.

    Returns
    -------
    str or None
        The line, or None when the model is at least as good or a value is missing.
    """
    model_value = float(metrics.get(selection, np.nan))
    base_value = float(baseline.get(selection, np.nan))
    if not (np.isfinite(model_value) and np.isfinite(base_value)):
        return None
    lower = model_lower_is_better(selection)
    if not ((base_value < model_value) if lower else (base_value > model_value)):
        return None
    return (
        f"the naive baseline (calibration rate carried forward) beats the best purchase "
        f"model on {selection}: {base_value:.4g} against {model_value:.4g} for {label}; on "
        "this holdout the models forecast no better than the past rate (compare the other "
        "metrics in model_comparison.csv, or try another freq or calibration end)"
    )


def comparison_table(
    metrics: Mapping[str, Mapping[str, float]],
    degenerate: Mapping[str, pd.DataFrame],
    baseline: pd.Series,
    chosen: str,
    labels: Mapping[str, str],
) -> pd.DataFrame:
    """``model_comparison.csv``: every purchase model and the naive baseline, one row each.

    Parameters
    ----------
    metrics : mapping of str to mapping
        Each model's metrics, in config order.
    degenerate : mapping of str to pandas.DataFrame
        Each model's flagged parameters (``degenerate_parameters()``).
    baseline : pandas.Series
        The ``baseline`` column of the chosen model's holdout table.
    chosen : str
        The chosen model.
    labels : mapping of str to str
        Display names of the models.
    """
    rows = {}
    for name, values in metrics.items():
        rows[name] = {
            "label": labels.get(name, name),
            **{m: values.get(m, np.nan) for m in COMPARISON_METRICS},
            "chosen": name == chosen,
            "degenerate": ", ".join(degenerate[name].index),
        }
    rows["baseline"] = {
        "label": "calibration rate carried forward",
        **{m: float(baseline.get(m, np.nan)) for m in COMPARISON_METRICS},
        "chosen": False,
        "degenerate": "",
    }
    table = pd.DataFrame.from_dict(rows, orient="index")
    table.index.name = "model"
    return table


def degenerate_message(
    name: str,
    model: PurchaseModel,
    flagged: pd.DataFrame,
    when: str,
    label: str | None = None,
    *,
    penalizer_hint: str | None = None,
    model_hint: str = "another purchase model",
) -> str:
    """The one plain line that tells a degenerate fit and what to try.

    ``penalizer_hint`` is how to ask for a penalizer (default: the config's
    ``[models] <name> = { penalizer = 0.01 }``; the CLI's ``--penalizer 0.01``).
    """
    values = ", ".join(f"{p} = {v:.3g}" for p, v in flagged["estimate"].items())
    se_nan = not np.isfinite(model.summary_["std_error"].to_numpy(dtype=float)).all()
    what = "ran to the edges of their range" if len(flagged) > 1 else "ran to the edge of its range"
    if (flagged["reason"] == "standard error not finite").all():
        what = "are not identified"
    return (
        f"{label or name} fit on the {when} is degenerate: {values} {what}"
        f"{' (standard errors NaN)' if se_nan else ''}; try a penalizer "
        f"({penalizer_hint or f'[models] {name} = {{ penalizer = 0.01 }}'}), {model_hint} "
        "or a coarser freq."
    )
