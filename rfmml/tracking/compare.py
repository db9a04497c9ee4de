"""Read an experiment's segmentation runs back from MLflow as a comparison table."""

from __future__ import annotations

import mlflow
import pandas as pd

from rfmml.errors import ConfigError
from rfmml.evaluation import DEFAULT_PRIMARY, compare_table
from rfmml.tracking.store import resolve_tracking_uri

__all__ = ["compare_segmentations"]


def compare_segmentations(
    experiment: str,
    *,
    tracking_uri: str | None = None,
    parent_run_id: str | None = None,
    primary: str | None = None,
) -> pd.DataFrame:
    """The segmentations of one experiment run, side by side, best first.

    Parameters
    ----------
    experiment : str
        Experiment name (the config's ``name``).
    tracking_uri : str, optional
        Store to read; defaults as in :func:`~rfmml.tracking.resolve_tracking_uri`.
    parent_run_id : str, optional
        Which invocation to read; default the latest finished one.
    primary : str, optional
        Metric to sort by; default the one the run was configured with.

    Returns
    -------
    pandas.DataFrame
        :func:`rfmml.evaluation.compare_table` of the logged metrics (the same
        ranking as the run's ``comparison.csv``), with ``run_id`` and ``kind``
        columns first.

    Raises
    ------
    ConfigError
        Unknown experiment, no finished run, or a primary metric that was not logged.
    mlflow.exceptions.MlflowException
        An unknown ``parent_run_id``.
    """
    uri = resolve_tracking_uri(tracking_uri)
    mlflow.set_tracking_uri(uri)
    if mlflow.get_experiment_by_name(experiment) is None:
        raise ConfigError(f"no experiment named {experiment!r} in {uri}")
    if parent_run_id is None:
        parents = mlflow.search_runs(
            experiment_names=[experiment],
            filter_string="tags.`rfmml.role` = 'parent' and attributes.status = 'FINISHED'",
            order_by=["attributes.start_time DESC"],
            max_results=1,
        )
        if parents.empty:
            raise ConfigError(f"experiment {experiment!r} has no finished run in {uri}")
        parent_run_id = str(parents.iloc[0]["run_id"])
        configured = parents.iloc[0].get("tags.rfmml.primary_metric")
    else:
        configured = mlflow.get_run(parent_run_id).data.tags.get("rfmml.primary_metric")
    children = mlflow.search_runs(
        experiment_names=[experiment],
        filter_string=(
            f"tags.`mlflow.parentRunId` = '{parent_run_id}' and tags.`rfmml.role` = 'segmentation'"
        ),
        order_by=["attributes.start_time ASC"],  # the config's order, as in comparison.csv
    )
    if children.empty:
        raise ConfigError(f"run {parent_run_id} has no segmentation runs")
    primary = primary or (configured if isinstance(configured, str) else None) or DEFAULT_PRIMARY
    metrics = [c for c in children.columns if c.startswith("metrics.")]
    results = {
        row["tags.rfmml.segmentation"]: {
            m[len("metrics.") :]: row[m] for m in metrics if pd.notna(row[m])
        }
        for _, row in children.iterrows()
    }
    table = compare_table(results, primary=primary)
    info = children.set_index("tags.rfmml.segmentation")
    table.insert(0, "kind", info["tags.rfmml.kind"].reindex(table.index).to_numpy())
    table.insert(0, "run_id", info["run_id"].reindex(table.index).to_numpy())
    table.attrs["parent_run_id"] = parent_run_id
    return table
