"""Evaluation on a holdout period: model holdout metrics (and segmentation metrics).

``evaluate_holdout`` scores the BG/NBD and Gamma-Gamma models against a naive
baseline on the holdout frame of :func:`rfmml.features.calibration_holdout`.
"""

from rfmml.evaluation.holdout import HOLDOUT_COLUMNS, evaluate_holdout, holdout_predictions

__all__ = ["HOLDOUT_COLUMNS", "evaluate_holdout", "holdout_predictions"]
