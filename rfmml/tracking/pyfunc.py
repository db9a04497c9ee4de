"""The MLflow pyfunc wrapper around :class:`rfmml.campaign.ScoringPipeline`.

It is logged "from code": MLflow stores the small entry file
``_pyfunc_entry.py`` and the pipeline's JSON folder as an artifact, never a
pickled object. ``mlflow.pyfunc.load_model(uri).predict(frame)`` returns the
per-customer table (segment, cluster, probability alive, expected purchases,
CLV, action) for a frame of customer features.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd
from mlflow.pyfunc import PythonModel

from rfmml.campaign.pipeline_model import ScoringPipeline

__all__ = ["ENTRY_FILE", "RFMMLPyfunc", "to_plain"]

ENTRY_FILE = Path(__file__).with_name("_pyfunc_entry.py")


def to_plain(table: pd.DataFrame) -> pd.DataFrame:
    """Predictions with a flat index and no categorical columns (MLflow-friendly)."""
    out = table.reset_index(drop=True)
    for col in out.columns:
        if isinstance(out[col].dtype, pd.CategoricalDtype):
            out[col] = out[col].astype(str)
    return out


class RFMMLPyfunc(PythonModel):
    """Batch scoring as an MLflow model."""

    def load_context(self, context: Any) -> None:
        """Load the saved pipeline from the ``pipeline`` artifact folder."""
        self.pipeline = ScoringPipeline.load(context.artifacts["pipeline"])

    def predict(self, context: Any, model_input: pd.DataFrame, params: Any = None) -> pd.DataFrame:
        """Score a frame of customer features (see :func:`rfmml.campaign.scoring_frame`)."""
        return to_plain(self.pipeline.predict(model_input))
