"""Save fitted models as JSON and load them back. No pickle.

A saved model is a small, human-readable document::

    {"format": "rfmml-model", "format_version": 1, "model": "BetaGeoNBD",
     "rfmml_version": "...", "hyper_parameters": {...}, "params": {...},
     "standard_errors": {...}, "log_likelihood": ..., "n_customers": ...,
     "training_fingerprint": "sha256:...", "fit_date": "...", ...}

Floats are written with ``repr`` precision, so a loaded model predicts
exactly what the saved one did.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd

import rfmml
from rfmml.errors import DataError

__all__ = ["save_model", "load_model", "FORMAT", "FORMAT_VERSION"]

FORMAT = "rfmml-model"
FORMAT_VERSION = 1


def _registry() -> dict[str, type]:
    from rfmml.models.bgnbd import BetaGeoNBD
    from rfmml.models.gamma_gamma import GammaGamma

    return {"BetaGeoNBD": BetaGeoNBD, "GammaGamma": GammaGamma}


def _clean(value):
    """Make ``value`` JSON-safe: numpy scalars to Python, NaN and inf to None."""
    if isinstance(value, dict):
        return {str(k): _clean(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_clean(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def save_model(model, path: str | Path) -> Path:
    """Write a fitted :class:`BetaGeoNBD` or :class:`GammaGamma` to JSON.

    Parameters
    ----------
    model : BetaGeoNBD or GammaGamma
        A fitted model.
    path : str or pathlib.Path
        Destination file (parent directories are created).

    Returns
    -------
    pathlib.Path
        The written path.

    Raises
    ------
    sklearn.exceptions.NotFittedError
        If the model is not fitted.
    """
    model._theta()  # raises NotFittedError before anything is written
    name = type(model).__name__
    if name not in _registry():
        raise TypeError(f"save_model supports {sorted(_registry())}, got {name}.")
    table = model.summary_
    doc = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "model": name,
        "rfmml_version": rfmml.__version__,
        "hyper_parameters": model.get_params(),
        "params": {k: float(v) for k, v in model.params_.items()},
        "standard_errors": {k: float(v) for k, v in table["std_error"].items()},
        "log_likelihood": model.log_likelihood_,
        "n_customers": model.n_customers_,
        "n_unique_rows": model.n_unique_rows_,
        "freq": model.freq_,
        "training_fingerprint": model.training_fingerprint_,
        "fit_date": model.fit_date_,
        "convergence": model.convergence_,
    }
    if hasattr(model, "correlation_"):
        doc["correlation"] = model.correlation_
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(_clean(doc), indent=2, allow_nan=False) + "\n", encoding="utf-8")
    return path


def load_model(path: str | Path, expected: type | None = None):
    """Read a model written by :func:`save_model`.

    Parameters
    ----------
    path : str or pathlib.Path
        A JSON file written by :func:`save_model` (or a model's ``save``).
    expected : type, optional
        Raise ``TypeError`` unless the file holds this model class.

    Returns
    -------
    BetaGeoNBD or GammaGamma
        A fitted model that predicts exactly like the saved one.

    Raises
    ------
    DataError
        If the file is not an rfmml model document.
    """
    path = Path(path)
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise DataError(f"{path} is not valid JSON ({exc}); expected an rfmml model file.") from exc
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        raise DataError(
            f'{path} is not an rfmml model file (missing "format": "{FORMAT}"). '
            "Save models with model.save(path)."
        )
    if doc.get("format_version", 0) > FORMAT_VERSION:
        raise DataError(
            f"{path} uses model format version {doc['format_version']}, newer than this rfmml "
            f"({rfmml.__version__}) reads ({FORMAT_VERSION}). Upgrade rfmml."
        )
    cls = _registry().get(doc.get("model"))
    if cls is None:
        raise DataError(f"{path} holds an unknown model type {doc.get('model')!r}.")
    if expected is not None and cls is not expected:
        raise TypeError(f"{path} holds a {cls.__name__}, not a {expected.__name__}.")
    model = cls(**doc["hyper_parameters"])
    names = list(doc["params"])
    params = np.array([doc["params"][k] for k in names], dtype=float)
    se = np.array(
        [np.nan if doc["standard_errors"][k] is None else doc["standard_errors"][k] for k in names],
        dtype=float,
    )
    model.params_ = pd.Series(params, index=names, name=cls.__name__)
    z = 1.959963984540054
    model.summary_ = pd.DataFrame(
        {
            "estimate": params,
            "std_error": se,
            "lower_95": params - z * se,
            "upper_95": params + z * se,
        },
        index=pd.Index(names, name="parameter"),
    )
    model.log_likelihood_ = doc["log_likelihood"]
    model.n_customers_ = doc["n_customers"]
    model.n_unique_rows_ = doc["n_unique_rows"]
    model.freq_ = doc.get("freq")
    model.training_fingerprint_ = doc["training_fingerprint"]
    model.fit_date_ = doc["fit_date"]
    model.convergence_ = doc.get("convergence", {})
    if "correlation" in doc:
        model.correlation_ = float("nan") if doc["correlation"] is None else doc["correlation"]
    model.rfmml_version_ = doc.get("rfmml_version")
    return model
