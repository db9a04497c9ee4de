"""MLflow tracking: the only package of rfmml that imports mlflow.

- :func:`resolve_tracking_uri` / :func:`ensure_experiment`: where runs go (a
  local SQLite file by default, ``MLFLOW_TRACKING_URI`` overrides).
- logging helpers for parameters, metrics, tables, figures and datasets.
- :func:`log_folder_model`: a fitted model that saves to a JSON folder (the
  scoring pipeline) as a pyfunc model, logged from code (no pickle).
- :func:`scoring_udf`: a logged model as a Spark UDF (``mlflow.pyfunc.spark_udf``),
  its date columns included.
- :func:`compare_segmentations`: an experiment's segmentations read back with
  ``mlflow.search_runs`` as one table, best first.
"""

from rfmml.tracking.compare import compare_segmentations
from rfmml.tracking.logging import (
    flatten,
    log_artifact,
    log_artifacts,
    log_dataset,
    log_figure,
    log_metrics,
    log_params,
    log_table,
    set_tags,
)
from rfmml.tracking.models import log_folder_model
from rfmml.tracking.runs import tracked_run
from rfmml.tracking.spark import scoring_udf
from rfmml.tracking.store import ensure_experiment, resolve_tracking_uri, ui_command

__all__ = [
    "compare_segmentations",
    "ensure_experiment",
    "flatten",
    "log_artifact",
    "log_artifacts",
    "set_tags",
    "log_dataset",
    "log_figure",
    "log_folder_model",
    "log_metrics",
    "log_params",
    "log_table",
    "resolve_tracking_uri",
    "scoring_udf",
    "tracked_run",
    "ui_command",
]
