"""Read an experiment's segmentation runs back from MLflow as a comparison table."""

from __future__ import annotations

import mlflow
import pandas as pd

from rfmml.errors import ConfigError
from rfmml.evaluation.segmentation import LOWER_IS_BETTER
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
        Experiment name (the config's ``[experiment] name``).
    tracking_uri : str, optional
        Store to read; defaults as in :func:`~rfmml.tracking.resolve_tracking_uri`.
    parent_run_id : str, optional
        Which invocation to read; default the latest finished one.
    primary : str, optional
        Metric to sort by; default the one the run was configured with.

    Returns
    -------
    pandas.DataFrame
        Index ``segmentation``; columns ``run_id``, ``kind`` and every metric;
        sorted by ``primary`` (descending, or ascending for metrics where lower
        is better) with a ``rank`` column.

    Raises
    ------
    ConfigError
        Unknown experiment, no finished run, or a primary metric that was not logged.
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
        parent = parents.iloc[0]
        parent_run_id = str(parent["run_id"])
    else:
        parent = mlflow.get_run(parent_run_id)
    children = mlflow.search_runs(
        experiment_names=[experiment],
        filter_string=(
            f"tags.`mlflow.parentRunId` = '{parent_run_id}' and tags.`rfmml.role` = 'segmentation'"
        ),
    )
    if children.empty:
        raise ConfigError(f"run {parent_run_id} has no segmentation runs")
    if primary is None:
        tags = parent.tags if hasattr(parent, "tags") else None
        primary = (
            tags.get("rfmml.primary_metric")
            if tags is not None
            else parent.get("tags.rfmml.primary_metric")
        ) or "buy_again_auc"
    metrics = [c for c in children.columns if c.startswith("metrics.")]
    table = children[["tags.rfmml.segmentation", "run_id", "tags.rfmml.kind", *metrics]].copy()
    table.columns = ["segmentation", "run_id", "kind", *[m[len("metrics.") :] for m in metrics]]
    table = table.set_index("segmentation")
    if primary not in table.columns:
        raise ConfigError(
            f"primary metric {primary!r} was not logged; logged metrics: "
            f"{sorted(table.columns.drop(['run_id', 'kind']))}"
        )
    ascending = primary in LOWER_IS_BETTER
    table["rank"] = table[primary].rank(method="min", ascending=ascending).astype("Int64")
    table = table.sort_values(primary, ascending=ascending, na_position="last")
    table.attrs["primary"] = primary
    table.attrs["parent_run_id"] = parent_run_id
    return table
