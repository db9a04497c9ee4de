"""The one registry of metric names and which way is better.

Evaluation ranks with it (:func:`~rfmml.evaluation.compare_table`), the
experiment config accepts a ``primary_metric`` from it, tracking reads runs back
ranked by it and the command line shows its key metrics. A metric without a
direction (``None``) describes a segmentation but ranks nothing.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Literal

from rfmml.errors import ConfigError

__all__ = [
    "BACKTEST_METRICS",
    "DEFAULT_PRIMARY",
    "DEFAULT_SELECTION",
    "FIT_METRICS",
    "KEY_METRICS",
    "MODEL_METRICS",
    "SEGMENTATION_METRICS",
    "higher_is_better",
    "model_lower_is_better",
    "ranking_metrics",
    "selection_metrics",
]

Direction = Literal["higher", "lower"] | None

#: Segmentation metrics (:func:`~rfmml.evaluation.evaluate_segmentation` and the
#: k-means agreement with rules) and the direction that is better.
SEGMENTATION_METRICS: Mapping[str, Direction] = {
    "n_segments": None,
    "smallest_segment_share": None,
    "largest_segment_share": None,
    "size_entropy": None,
    "size_entropy_normalized": None,
    "silhouette": "higher",
    "davies_bouldin": "lower",
    "calinski_harabasz": "higher",
    "spend_variance_explained": "higher",
    "buy_again_auc": "higher",
    "top_revenue_capture": "higher",
    "best_segment_lift": "higher",
    "buy_again_rate_best": "higher",
    "buy_again_rate_overall": None,
    "stability_ari_mean": "higher",
    "stability_ari_std": "lower",
    "rule_adjusted_rand_score": None,
}

#: Model holdout metrics (rows of :func:`~rfmml.evaluation.evaluate_holdout`).
MODEL_METRICS: Mapping[str, Direction] = {
    "purchases_mae": "lower",
    "purchases_rmse": "lower",
    "total_purchases_predicted": None,
    "total_purchases_actual": None,
    "total_purchases_ratio": None,  # best at 1, neither higher nor lower
    "buy_again_brier": "lower",
    "buy_again_auc": "higher",
    "spend_mae": "lower",
    "total_purchases_error": "lower",  # |predicted - actual| / actual, of the total
    "tracking_mape": "lower",  # cumulative repeat transactions, holdout periods (percent)
}

#: Backtest metrics (:mod:`rfmml.evaluation.backtest`), one value per origin and
#: model; the champion of a backtest has the best mean rank over those with a
#: direction. ``migration_tvd`` scores segment-migration forecasts only.
BACKTEST_METRICS: Mapping[str, Direction] = {
    "mae": "lower",
    "rmse": "lower",
    "tracking_mape": "lower",
    "lift_quality": "higher",
    "gini": "higher",
    "decile_calibration_error": "lower",
    "buy_again_brier": "lower",
    "buy_again_calibration_error": "lower",
    "spend_mae": "lower",
    "migration_tvd": "lower",
}

#: Fit statistics of a purchase model (:func:`~rfmml.evaluation.fit_statistics`).
FIT_METRICS: Mapping[str, Direction] = {
    "log_likelihood": "higher",
    "n_params": None,
    "aic": "lower",
    "bic": "lower",
}

#: The purchase model an experiment scores with unless its config says otherwise.
DEFAULT_SELECTION = "purchases_mae"

#: The metric segmentations are ranked by unless a config says otherwise.
DEFAULT_PRIMARY = "buy_again_auc"

#: Segmentation metrics shown by default (command line tables).
KEY_METRICS = (
    "buy_again_auc",
    "spend_variance_explained",
    "top_revenue_capture",
    "best_segment_lift",
    "silhouette",
    "stability_ari_mean",
    "n_segments",
)


def ranking_metrics() -> list[str]:
    """Segmentation metrics that can rank segmentations (they have a direction)."""
    return [name for name, direction in SEGMENTATION_METRICS.items() if direction is not None]


def higher_is_better(metric: str) -> bool:
    """Whether a larger value of a segmentation metric is better.

    Raises
    ------
    ConfigError
        The metric is unknown or has no direction (it cannot rank).
    """
    direction = SEGMENTATION_METRICS.get(metric)
    if direction is None:
        raise ConfigError(
            f"{metric!r} cannot rank segmentations; metrics with a direction: {ranking_metrics()}"
        )
    return direction == "higher"


def selection_metrics() -> list[str]:
    """Metrics that can choose a purchase model (holdout and fit metrics with a direction)."""
    both = {**MODEL_METRICS, **FIT_METRICS}
    return [name for name, direction in both.items() if direction is not None]


def model_lower_is_better(metric: str) -> bool:
    """Whether a smaller value of a model metric is better.

    Raises
    ------
    ConfigError
        The metric is unknown or has no direction (it cannot choose a model).
    """
    direction = {**MODEL_METRICS, **FIT_METRICS}.get(metric)
    if direction is None:
        raise ConfigError(
            f"{metric!r} cannot choose a purchase model; metrics with a direction: "
            f"{selection_metrics()}"
        )
    return direction == "lower"
