"""Evaluation on a holdout period: segmentation metrics and model holdout metrics.

:func:`evaluate_segmentation` scores one labeling and :func:`compare_table` ranks
several; :func:`evaluate_holdout` scores the BG/NBD and Gamma-Gamma models
against a naive baseline on the holdout frame of
:func:`rfmml.features.calibration_holdout`; :func:`fit_statistics` gives AIC and
BIC; :func:`repeat_transaction_tracking` the tracking curves of purchase models.
:mod:`rfmml.evaluation.metrics` is the registry of metric names and which way is better.
"""

from rfmml.evaluation.holdout import (
    HOLDOUT_COLUMNS,
    evaluate_holdout,
    fit_statistics,
    holdout_predictions,
)
from rfmml.evaluation.metrics import (
    DEFAULT_PRIMARY,
    DEFAULT_SELECTION,
    FIT_METRICS,
    KEY_METRICS,
    MODEL_METRICS,
    SEGMENTATION_METRICS,
    higher_is_better,
    model_lower_is_better,
    ranking_metrics,
    selection_metrics,
)
from rfmml.evaluation.repeat_tracking import repeat_transaction_tracking, tracking_mape
from rfmml.evaluation.segmentation import (
    cluster_quality,
    compare_table,
    evaluate_segmentation,
    holdout_separation,
    segmentation_shape,
    stability,
    standardized_features,
)

__all__ = [
    "DEFAULT_PRIMARY",
    "DEFAULT_SELECTION",
    "FIT_METRICS",
    "HOLDOUT_COLUMNS",
    "KEY_METRICS",
    "MODEL_METRICS",
    "SEGMENTATION_METRICS",
    "cluster_quality",
    "compare_table",
    "evaluate_holdout",
    "evaluate_segmentation",
    "fit_statistics",
    "holdout_predictions",
    "higher_is_better",
    "holdout_separation",
    "model_lower_is_better",
    "ranking_metrics",
    "repeat_transaction_tracking",
    "selection_metrics",
    "tracking_mape",
    "segmentation_shape",
    "stability",
    "standardized_features",
]
