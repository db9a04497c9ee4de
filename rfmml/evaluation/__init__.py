"""Evaluation on a holdout period: model holdout metrics (and segmentation metrics).

``evaluate_holdout`` scores the BG/NBD and Gamma-Gamma models against a naive
baseline on the holdout frame of :func:`rfmml.features.calibration_holdout`.
"""

from rfmml.evaluation.holdout import HOLDOUT_COLUMNS, evaluate_holdout, holdout_predictions
from rfmml.evaluation.segmentation import (
    LOWER_IS_BETTER,
    cluster_quality,
    compare_table,
    evaluate_segmentation,
    holdout_separation,
    segmentation_shape,
    stability,
    standardized_features,
)

__all__ = [
    "HOLDOUT_COLUMNS",
    "LOWER_IS_BETTER",
    "cluster_quality",
    "compare_table",
    "evaluate_holdout",
    "evaluate_segmentation",
    "holdout_predictions",
    "holdout_separation",
    "segmentation_shape",
    "stability",
    "standardized_features",
]
