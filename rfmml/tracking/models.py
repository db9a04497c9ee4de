"""Log the scoring pipeline as an MLflow pyfunc model, from code (no pickle)."""

from __future__ import annotations

import tempfile
from pathlib import Path

import mlflow
import pandas as pd
from mlflow.models import infer_signature

from rfmml.campaign.pipeline_model import ScoringPipeline
from rfmml.tracking.pyfunc import ENTRY_FILE, to_plain

__all__ = ["log_scoring_model"]

_REQUIREMENTS = ["mlflow", "numpy", "pandas", "scipy", "scikit-learn", "narwhals", "duckdb"]


def log_scoring_model(
    pipeline: ScoringPipeline, input_example: pd.DataFrame, name: str = "scoring_pipeline"
) -> str:
    """Log ``pipeline`` as a pyfunc model in the active run; return its model URI.

    The model is the entry file ``rfmml/tracking/_pyfunc_entry.py`` plus the
    pipeline's JSON folder as the ``pipeline`` artifact; its signature is
    inferred from ``input_example`` and the pipeline's own output on it.
    """
    example = input_example.reset_index()
    output = to_plain(pipeline.predict(example))
    signature = infer_signature(example, output)
    with tempfile.TemporaryDirectory() as tmp:
        folder = pipeline.save(Path(tmp) / "pipeline")
        info = mlflow.pyfunc.log_model(
            name=name,
            python_model=str(ENTRY_FILE),
            artifacts={"pipeline": str(folder)},
            signature=signature,
            input_example=example,
            pip_requirements=_REQUIREMENTS,
        )
    return info.model_uri
