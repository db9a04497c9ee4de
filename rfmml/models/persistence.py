"""Save fitted models as JSON documents and load them back. No pickle.

A saved model is a small, human-readable document in the format of
:mod:`rfmml._documents`::

    {"format": "rfmml.model", "format_version": 2, "rfmml_version": "...",
     "model": "BetaGeoNBD", "hyper_parameters": {...}, "params": {...},
     "standard_errors": {...}, "covariance_log": [[...]], "log_likelihood": ..., "n_customers": ...,
     "n_unique_rows": ..., "freq": "W", "training_fingerprint": "sha256:...",
     "fit_date": "...", "convergence": {...}, "attributes": {...}}

``model`` is a kind of the model registry (:func:`rfmml.models.model_kinds`);
``attributes`` holds the model's own extra fitted attributes (e.g.
Gamma-Gamma's ``correlation_``). Floats follow the codec's convention (repr
precision, NaN as null), so a loaded model predicts exactly what the saved
one did. Files of format version 1 (``"format": "rfmml-model"``) still load.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from rfmml._documents import (
    check_document,
    decode_float,
    envelope,
    read_document,
    write_document,
)
from rfmml.errors import DataError
from rfmml.models._fitting import confidence_table
from rfmml.models._registry import model_class, model_kinds

if TYPE_CHECKING:  # the base imports this module
    from rfmml.models._base import MaximumLikelihoodModel

__all__ = [
    "save_model",
    "load_model",
    "model_to_document",
    "model_to_dict",
    "model_from_dict",
    "FORMAT",
    "FORMAT_VERSION",
]

FORMAT = "rfmml.model"
FORMAT_VERSION = 2
#: format of version 1 documents (rfmml 0.1): same fields, "correlation" at the top level
_FORMAT_V1 = "rfmml-model"
_WHAT = "rfmml model"
_HINT = "Save models with model.save(path)."


def model_to_document(model: MaximumLikelihoodModel) -> dict:
    """The body of a fitted model's document (without the envelope).

    Raises
    ------
    sklearn.exceptions.NotFittedError
        If the model is not fitted.
    TypeError
        If the model's class is not registered.
    """
    params = model.get_fitted_params()  # raises NotFittedError before anything else
    kind = getattr(type(model), "kind", None)
    if kind not in model_kinds() or model_class(kind) is not type(model):
        raise TypeError(f"save_model supports {list(model_kinds())}, got {type(model).__name__}.")
    return {
        "model": kind,
        "hyper_parameters": model.get_params(),
        "params": params,
        "standard_errors": {k: float(v) for k, v in model.summary_["std_error"].items()},
        **(
            {"covariance_log": np.asarray(model.covariance_log_, dtype=float).tolist()}
            if getattr(model, "covariance_log_", None) is not None
            else {}
        ),
        "log_likelihood": model.log_likelihood_,
        "n_customers": model.n_customers_,
        "n_unique_rows": model.n_unique_rows_,
        "freq": model.freq_,
        "training_fingerprint": model.training_fingerprint_,
        "fit_date": model.fit_date_,
        "convergence": model.convergence_,
        "attributes": {k: getattr(model, k) for k in model.saved_attributes if hasattr(model, k)},
    }


def save_model(model: MaximumLikelihoodModel, path: str | Path) -> Path:
    """Write a fitted model (any registered kind) to a JSON document.

    Parameters
    ----------
    model : MaximumLikelihoodModel
        A fitted model, e.g. :class:`BetaGeoNBD` or :class:`GammaGamma`.
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
    return write_document(path, FORMAT, FORMAT_VERSION, model_to_document(model))


def _from_version_1(doc: dict) -> dict | None:
    if doc.get("format") != _FORMAT_V1 or doc.get("format_version") != 1:
        return None
    out = {k: v for k, v in doc.items() if k != "correlation"}
    out["format"] = FORMAT
    out["attributes"] = {"correlation_": doc["correlation"]} if "correlation" in doc else {}
    return out


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
    MaximumLikelihoodModel
        A fitted model that predicts exactly like the saved one.

    Raises
    ------
    DataError
        If the file is not an rfmml model document, is newer than this
        rfmml, or holds an unknown model kind.
    """
    path = Path(path)
    _, doc = read_document(path, FORMAT, FORMAT_VERSION, what=_WHAT, hint=_HINT,
                           legacy=_from_version_1)  # fmt: skip
    return _from_body(doc, str(path), expected)


def model_to_dict(model: MaximumLikelihoodModel) -> dict:
    """A fitted model as the JSON-able document :func:`save_model` writes (envelope included).

    Raises
    ------
    sklearn.exceptions.NotFittedError
        If the model is not fitted.
    """
    return envelope(FORMAT, FORMAT_VERSION, model_to_document(model))


def model_from_dict(doc: dict, expected: type | None = None):
    """Rebuild a fitted model from :func:`model_to_dict` output (parsed JSON).

    Raises
    ------
    DataError
        If ``doc`` is not an rfmml model document or holds an unknown kind.
    """
    _, body = check_document(doc, FORMAT, FORMAT_VERSION, source="this dictionary", what=_WHAT,
                             hint=_HINT, legacy=_from_version_1)  # fmt: skip
    return _from_body(body, "this dictionary", expected)


def _from_body(doc: dict, path: str, expected: type | None):
    kind = doc.get("model")
    if not isinstance(kind, str) or kind not in model_kinds():
        raise DataError(
            f"{path} holds an unknown model type {kind!r}; this rfmml knows {list(model_kinds())}."
        )
    cls = model_class(kind)
    if expected is not None and cls is not expected:
        raise TypeError(f"{path} holds a {cls.__name__}, not a {expected.__name__}.")
    try:
        model = cls(**doc["hyper_parameters"])
        names = list(cls.param_names)
        params = np.array([decode_float(doc["params"][k]) for k in names])
        se = np.array([decode_float(doc["standard_errors"][k]) for k in names])
        fitted = {
            "params_": pd.Series(params, index=names, name=cls.__name__),
            "summary_": confidence_table(names, params, se),
            "log_likelihood_": decode_float(doc["log_likelihood"]),
            "n_customers_": doc["n_customers"],
            "n_unique_rows_": doc["n_unique_rows"],
            "freq_": doc.get("freq"),
            "training_fingerprint_": doc["training_fingerprint"],
            "fit_date_": doc["fit_date"],
            "convergence_": doc.get("convergence", {}),
        }
    except (KeyError, TypeError) as exc:
        raise DataError(
            f"{path} is an incomplete {kind} document ({type(exc).__name__}: {exc}); "
            "re-save the model with model.save(path)."
        ) from None
    cov = doc.get("covariance_log")
    if cov is not None:  # documents written before rfmml kept it fall back to standard errors
        fitted["covariance_log_"] = np.array(
            [[decode_float(v) for v in row] for row in cov], dtype=float
        )
    for key, value in doc.get("attributes", {}).items():
        if key in cls.saved_attributes:
            fitted[key] = decode_float(value) if key == "correlation_" else value
    for key, value in fitted.items():
        setattr(model, key, value)
    model.rfmml_version_ = doc.get("rfmml_version")
    return model
