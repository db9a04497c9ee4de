"""The registry of model kinds: the name saved in a document -> the estimator class.

Model modules register their estimator with :func:`register_model` when they
are imported; :mod:`rfmml.models` imports every shipped model, so loading a
saved document never needs the persistence code to import model modules
(and no model module imports another to be saved or loaded).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, TypeVar

if TYPE_CHECKING:
    from rfmml.models._base import MaximumLikelihoodModel

__all__ = ["register_model", "model_class", "model_kinds"]

_ModelT = TypeVar("_ModelT", bound="type[MaximumLikelihoodModel]")

_MODELS: dict[str, type[MaximumLikelihoodModel]] = {}


def register_model(cls: _ModelT) -> _ModelT:
    """Class decorator: register ``cls`` under its ``kind`` (used in saved documents).

    Parameters
    ----------
    cls : type
        A subclass of :class:`rfmml.models.MaximumLikelihoodModel` with a
        ``kind`` class attribute.

    Returns
    -------
    type
        ``cls`` itself.

    Raises
    ------
    ValueError
        If ``cls`` has no ``kind``, or another class is registered under it.
    """
    kind = getattr(cls, "kind", None)
    if not isinstance(kind, str) or not kind:
        raise ValueError(f"{cls.__name__} needs a non-empty class attribute kind to be registered.")
    known = _MODELS.get(kind)
    if known is not None and known is not cls and known.__qualname__ != cls.__qualname__:
        raise ValueError(
            f"model kind {kind!r} is already registered by {known.__module__}.{known.__qualname__}."
        )
    _MODELS[kind] = cls
    return cls


def model_class(kind: str) -> type[MaximumLikelihoodModel]:
    """The estimator class registered under ``kind``.

    Parameters
    ----------
    kind : str
        A registered kind, e.g. ``"BetaGeoNBD"``.

    Returns
    -------
    type

    Raises
    ------
    KeyError
        If no model is registered under ``kind`` (the message lists the known kinds).
    """
    try:
        return _MODELS[kind]
    except (KeyError, TypeError):
        raise KeyError(f"unknown model kind {kind!r}; known kinds: {model_kinds()}.") from None


def model_kinds() -> tuple[str, ...]:
    """The registered model kinds, sorted.

    Returns
    -------
    tuple of str
    """
    return tuple(sorted(_MODELS))
