"""The MLflow pyfunc wrapper around an rfmml model saved as a JSON folder.

It is logged "from code": MLflow stores the small entry file
``_pyfunc_entry.py``, the model's JSON folder as an artifact and, in the model
config, the ``loader``: the class (``"module:Class"``) whose ``load(folder)``
rebuilds the model, never a pickled object. Tracking stays below the packages
whose models it logs: it names their class, it does not import it.
``mlflow.pyfunc.load_model(uri).predict(frame)`` returns the model's
``predict(frame)`` with a flat index and plain (not categorical) columns.

The inference parameter ``dates`` (in the signature, default ``"datetime"``)
set to ``"iso"`` returns date columns (``expected_next_order_date``) as
``YYYY-MM-DD`` text, empty where there is no date: what
``mlflow.pyfunc.spark_udf``, whose results are primitive types only, can carry
(:func:`rfmml.tracking.spark.scoring_udf` turns it back into a Spark timestamp).
"""

from __future__ import annotations

from importlib import import_module
from pathlib import Path
from typing import Any

import pandas as pd
from mlflow.pyfunc import PythonModel

__all__ = ["DATES_PARAM", "ENTRY_FILE", "RFMMLPyfunc", "dates_as_text", "load_class", "to_plain"]

ENTRY_FILE = Path(__file__).with_name("_pyfunc_entry.py")

#: The inference parameter that chooses how date columns come back (``"datetime"`` or ``"iso"``).
DATES_PARAM = "dates"


def to_plain(table: pd.DataFrame) -> pd.DataFrame:
    """Predictions with a flat index and no categorical columns (MLflow-friendly)."""
    out = table.reset_index(drop=True)
    for col in out.columns:
        if isinstance(out[col].dtype, pd.CategoricalDtype):
            out[col] = out[col].astype(str)
    return out


def dates_as_text(table: pd.DataFrame) -> pd.DataFrame:
    """Date columns as ``YYYY-MM-DD`` text, ``""`` where missing (the rest unchanged)."""
    out = table.copy()
    for col in out.columns:
        if pd.api.types.is_datetime64_any_dtype(out[col].dtype):
            text = out[col].dt.strftime("%Y-%m-%d")
            out[col] = text.where(out[col].notna(), "").astype(object)
    return out


def load_class(path: str) -> Any:
    """The class named ``"package.module:Class"`` (it must live in rfmml)."""
    module, _, name = path.partition(":")
    if not module.startswith("rfmml.") or not name:
        raise ValueError(f"loader must be 'rfmml.<module>:<Class>', got {path!r}")
    return getattr(import_module(module), name)


class RFMMLPyfunc(PythonModel):
    """Batch scoring as an MLflow model."""

    def load_context(self, context: Any) -> None:
        """Load the model from the ``model`` artifact folder with the configured loader."""
        loader = load_class(context.model_config["loader"])
        self.model = loader.load(context.artifacts["model"])

    def predict(self, context: Any, model_input: pd.DataFrame, params: Any = None) -> pd.DataFrame:
        """Score a frame: for a scoring pipeline, customer features or transactions.

        See :meth:`rfmml.campaign.ScoringPipeline.predict` (the features of
        :func:`rfmml.campaign.scoring_frame`, or ``customer_id``, ``timestamp``
        and ``amount`` rows summarised as of the stored ``observation_end``).
        ``params={"dates": "iso"}`` returns date columns as ``YYYY-MM-DD`` text.
        """
        table = to_plain(self.model.predict(model_input))
        dates = (params or {}).get(DATES_PARAM, "datetime")
        if dates not in ("datetime", "iso"):
            raise ValueError(f"params {DATES_PARAM!r} must be 'datetime' or 'iso', got {dates!r}")
        return dates_as_text(table) if dates == "iso" else table
