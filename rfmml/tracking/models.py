"""Log an rfmml model that saves to a JSON folder as an MLflow pyfunc model, from code."""

from __future__ import annotations

import tempfile
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import mlflow
import pandas as pd
from mlflow.models import infer_signature

from rfmml.tracking.pyfunc import ENTRY_FILE, load_class, to_plain

__all__ = ["log_folder_model", "requirements"]


def requirements() -> list[str]:
    """What the logged model needs: rfmml itself (pinned) and its scoring dependencies."""
    try:
        rfmml = f"rfmml=={version('rfmml')}"
    except PackageNotFoundError:  # pragma: no cover - a source tree without metadata
        rfmml = "rfmml"
    return [rfmml, "mlflow", "numpy", "pandas", "scipy", "scikit-learn", "narwhals", "duckdb"]


def log_folder_model(
    model: Any, input_example: pd.DataFrame, *, loader: str, name: str = "scoring_pipeline"
) -> str:
    """Log ``model`` as a pyfunc model in the active run; return its model URI.

    Parameters
    ----------
    model : object
        Has ``save(folder)`` (JSON files) and ``predict(frame)``, e.g. a
        :class:`rfmml.campaign.ScoringPipeline`.
    input_example : pandas.DataFrame
        A few rows of input; the signature is inferred from them and the model's
        own output on them.
    loader : str
        ``"rfmml.<module>:<Class>"`` whose ``load(folder)`` rebuilds ``model``.
    name : str
        The model's name in the run.

    Returns
    -------
    str
        The model URI.
    """
    load_class(loader)  # fail now, not when someone loads the model
    example = input_example.reset_index()
    signature = infer_signature(example, to_plain(model.predict(example)))
    with tempfile.TemporaryDirectory() as tmp:
        folder = model.save(Path(tmp) / "model")
        info = mlflow.pyfunc.log_model(
            name=name,
            python_model=str(ENTRY_FILE),
            artifacts={"model": str(folder)},
            model_config={"loader": loader},
            signature=signature,
            input_example=example,
            pip_requirements=requirements(),
        )
    return info.model_uri
