"""Runs that record their own failure: an ``error`` tag, then status FAILED."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import mlflow

__all__ = ["tracked_run"]


@contextmanager
def tracked_run(run_name: str, *, nested: bool = False, tags: dict[str, str] | None = None,
                experiment_id: str | None = None) -> Iterator[Any]:  # fmt: skip
    """Start an MLflow run; on an exception tag it with the error before it ends FAILED.

    Everything logged before the failure stays in the run. A nested run goes in
    its parent's experiment.
    """
    active = mlflow.active_run()
    if nested and experiment_id is None and active is not None:
        experiment_id = active.info.experiment_id
    with mlflow.start_run(run_name=run_name, nested=nested, experiment_id=experiment_id) as run:
        if tags:
            mlflow.set_tags(tags)
        try:
            yield run
        except BaseException as exc:
            mlflow.set_tag("error", f"{type(exc).__name__}: {exc}"[:5000])
            raise
