"""Log an rfmml model that saves to a JSON folder as an MLflow pyfunc model, from code."""

from __future__ import annotations

import tempfile
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import mlflow
import pandas as pd
from mlflow.models import ModelSignature, infer_signature
from mlflow.types.schema import ColSpec, ParamSchema, ParamSpec, Schema

from rfmml.tracking.pyfunc import DATES_PARAM, ENTRY_FILE, load_class, to_plain

__all__ = ["log_folder_model", "requirements"]


def requirements() -> list[str]:
    """What the logged model needs: rfmml itself (pinned) and its scoring dependencies."""
    try:
        rfmml = f"rfmml=={version('rfmml')}"
    except PackageNotFoundError:  # pragma: no cover - a source tree without metadata
        rfmml = "rfmml"
    return [rfmml, "mlflow", "numpy", "pandas", "scipy", "scikit-learn", "narwhals", "duckdb"]


def either_schema(first: Schema, second: Schema) -> Schema:
    """Input schema of a model that takes one frame or the other: every column optional.

    The columns of ``first`` come first, then those only ``second`` has; a
    column in both keeps the type of ``first``.
    """
    columns: dict[str, ColSpec] = {}
    for spec in [*first.inputs, *second.inputs]:
        if isinstance(spec, ColSpec) and spec.name is not None and spec.name not in columns:
            columns[spec.name] = ColSpec(spec.type, spec.name, required=False)
    return Schema(list(columns.values()))


def log_folder_model(
    model: Any,
    input_example: pd.DataFrame,
    *,
    loader: str,
    name: str = "scoring_pipeline",
    other_input: pd.DataFrame | None = None,
    inputs: str | None = None,
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
    other_input : pandas.DataFrame, optional
        A few rows of a second kind of input the model also takes (a scoring
        pipeline takes customer features or transactions). The signature then
        lists the columns of both examples, each optional (MLflow checks the
        types of the columns given).
    inputs : str, optional
        What the model takes, in words; stored as the model metadata
        ``rfmml_inputs`` (``mlflow.models.get_model_info(uri).metadata``).

    Returns
    -------
    str
        The model URI.
    """
    load_class(loader)  # fail now, not when someone loads the model
    example = input_example.reset_index()
    signature = infer_signature(example, to_plain(model.predict(example)))
    if other_input is not None:
        other = infer_signature(other_input.reset_index(drop=True))
        assert signature.inputs is not None and other.inputs is not None  # frames give schemas
        signature = ModelSignature(
            inputs=either_schema(signature.inputs, other.inputs), outputs=signature.outputs
        )
    # how date columns come back: "iso" text is what mlflow.pyfunc.spark_udf can carry
    params = ParamSchema([ParamSpec(DATES_PARAM, "string", "datetime")])
    signature = ModelSignature(inputs=signature.inputs, outputs=signature.outputs, params=params)
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
            metadata={"rfmml_inputs": inputs} if inputs else None,
        )
    return info.model_uri
