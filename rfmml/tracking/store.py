"""Where runs go: the tracking URI and the experiment (with its artifact location)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import mlflow
from mlflow.tracking import MlflowClient

__all__ = ["DEFAULT_DB", "ensure_experiment", "resolve_tracking_uri", "ui_command"]

DEFAULT_DB = "mlflow.db"


def resolve_tracking_uri(
    uri: str | None = None,
    base_dir: str | Path | None = None,
    *,
    configured: str | None = None,
) -> str:
    """The tracking URI to use.

    In order: ``uri`` passed explicitly (a function argument or a command-line
    option), the ``MLFLOW_TRACKING_URI`` environment variable, ``configured``
    (the experiment config's ``tracking_uri``), then a SQLite file
    ``mlflow.db`` in ``base_dir`` (default: the working directory).
    """
    if uri:
        return uri
    env = os.environ.get("MLFLOW_TRACKING_URI")
    if env:
        return env
    if configured:
        return configured
    base = Path(base_dir) if base_dir is not None else Path.cwd()
    return f"sqlite:///{(base / DEFAULT_DB).resolve()}"


def _sqlite_path(uri: str) -> Path | None:
    if uri.startswith("sqlite:///"):
        return Path(uri[len("sqlite:///") :])
    return None


def ensure_experiment(name: str, tracking_uri: str) -> str:
    """Get or create the experiment; return its id.

    With a local SQLite store the artifacts go next to the database, in
    ``mlartifacts/<name>`` (set explicitly, so they do not land in the working
    directory of whoever runs the experiment later).
    """
    mlflow.set_tracking_uri(tracking_uri)
    client = MlflowClient(tracking_uri=tracking_uri)
    found = client.get_experiment_by_name(name)
    if found is not None:
        if found.lifecycle_stage == "deleted":
            client.restore_experiment(found.experiment_id)
        return found.experiment_id
    db = _sqlite_path(tracking_uri)
    location = None
    if db is not None:
        location = (db.parent / "mlartifacts" / name).resolve().as_uri()
    return client.create_experiment(name, artifact_location=location)


def ui_command(tracking_uri: str) -> str:
    """The shell command that opens the MLflow UI on this store.

    Uses the ``mlflow`` executable installed beside the running Python (e.g.
    ``.venv/bin/mlflow``) when there is one, so the command works without
    activating the environment.
    """
    beside = Path(sys.executable).parent / "mlflow"
    exe = str(beside) if beside.exists() else "mlflow"
    try:
        exe = os.path.relpath(exe) if beside.exists() else exe
    except ValueError:  # another drive (Windows)
        pass
    return f"{exe} ui --backend-store-uri {tracking_uri} --workers 1"
