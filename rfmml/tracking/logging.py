"""Small, batched logging helpers: parameters, metrics, tables, figures, datasets.

The public ones are re-exported (and listed) by :mod:`rfmml.tracking`.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import mlflow
import pandas as pd
from matplotlib.figure import Figure
from mlflow.data.pandas_dataset import PandasDataset, from_pandas

_MAX_PARAM = 6000  # MLflow's limit on a parameter value


def flatten(params: Mapping[str, Any], prefix: str = "") -> dict[str, str]:
    """Nested mapping to ``a.b.c`` keys with string values (long values truncated)."""
    out: dict[str, str] = {}
    for key, value in params.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            out.update(flatten(value, f"{name}."))
        else:
            text = value if isinstance(value, str) else json.dumps(value, default=str)
            out[name] = text[:_MAX_PARAM]
    return out


def log_params(params: Mapping[str, Any], prefix: str = "") -> None:
    """Log a (nested) mapping of parameters in one call."""
    mlflow.log_params(flatten(params, prefix))


def log_metrics(metrics: Mapping[str, float], prefix: str = "") -> list[str]:
    """Log the finite metrics in one call; return the names of undefined (NaN/inf) ones.

    Undefined metrics (e.g. a silhouette for a single segment) are listed in the
    run tag ``undefined_metrics`` rather than logged as NaN.
    """
    finite, undefined = {}, []
    for key, value in metrics.items():
        if value is None:
            undefined.append(f"{prefix}{key}")
            continue
        number = float(value)
        if math.isfinite(number):
            finite[f"{prefix}{key}"] = number
        else:
            undefined.append(f"{prefix}{key}")
    if finite:
        mlflow.log_metrics(finite)
    if undefined:
        mlflow.set_tag("undefined_metrics", ",".join(sorted(undefined)))
    return undefined


def log_table(frame: pd.DataFrame, artifact_file: str, *, index: bool = True) -> None:
    """Log a DataFrame as a CSV artifact."""
    mlflow.log_text(frame.to_csv(index=index), artifact_file)


def log_figure(figure: Figure, artifact_file: str) -> None:
    """Log a matplotlib figure as a PNG artifact."""
    mlflow.log_figure(figure, artifact_file)


def log_dataset(
    frame: pd.DataFrame,
    *,
    name: str,
    source: str,
    digest: str,
    context: str,
    report: Mapping[str, Any] | None = None,
    n_rows: int | None = None,
) -> None:
    """Log the transactions as a run input (name, source, fingerprint, counts, cleaning).

    The rows themselves are not copied: MLflow stores the schema, the profile
    (row count) and our fingerprint as the digest. ``n_rows`` says that
    ``frame`` is only the first rows of a log of ``n_rows`` rows (e.g. a log
    held by DuckDB): the schema comes from ``frame``, the counts from ``n_rows``.
    """
    # the module-level mlflow.data.from_pandas is set at run time, unseen by type checkers
    dataset = from_pandas(frame, name=name, source=_source(source), digest=digest)
    if n_rows is not None:
        dataset = _FirstRows(dataset, n_rows)
    tags = {"rows": str(len(frame) if n_rows is None else n_rows)}
    if report is not None:
        tags["rows_in"] = str(report.get("rows_in"))
        tags["rows_out"] = str(report.get("rows_out"))
    mlflow.log_input(dataset, context=context, tags=tags)
    if report is not None:
        mlflow.log_dict(dict(report), "data/cleaning_report.json")


class _FirstRows(PandasDataset):
    """A dataset logged from its first rows: the profile counts the whole log."""

    def __init__(self, head: PandasDataset, n_rows: int) -> None:
        super().__init__(head.df, head.source, name=head.name, digest=head.digest)
        self._n_rows = int(n_rows)

    @property
    def profile(self) -> Any | None:
        """Rows and cells of the whole log (not of the rows the schema came from)."""
        return {"num_rows": self._n_rows, "num_elements": self._n_rows * self.df.shape[1]}


def _source(source: str) -> str:
    path = Path(source)
    return str(path.resolve()) if path.exists() else source


def log_artifacts(folder: str | Path, artifact_path: str | None = None) -> None:
    """Log every file of a folder as artifacts of the active run."""
    mlflow.log_artifacts(str(folder), artifact_path=artifact_path)


def log_artifact(
    path: str | Path,
    artifact_path: str | None = None,
    *,
    run_id: str | None = None,
    tracking_uri: str | None = None,
) -> None:
    """Log one file as an artifact of the active run, or of the run ``run_id``.

    With ``run_id`` the file goes to that run (finished or not) in the store
    ``tracking_uri`` (default: the current one), e.g. a report built after the run.
    """
    if run_id is None:
        mlflow.log_artifact(str(path), artifact_path=artifact_path)
    else:
        client = mlflow.MlflowClient(tracking_uri=tracking_uri)
        client.log_artifact(run_id, str(path), artifact_path=artifact_path)


def set_tags(tags: Mapping[str, Any]) -> None:
    """Set tags on the active run (values as strings)."""
    mlflow.set_tags({k: str(v) for k, v in tags.items()})
