"""``save`` / ``load`` methods shared by the fitted models (JSON, never pickle)."""

from __future__ import annotations

from pathlib import Path
from typing import Any


class JSONPersistence:
    """Mixin giving a fitted model ``save(path)`` and ``Model.load(path)``.

    Both delegate to :mod:`rfmml.models.persistence` (imported on use, since
    that module knows every model class).
    """

    def save(self, path: str | Path) -> Path:
        """Save the fitted model as JSON (see :mod:`rfmml.models.persistence`).

        Parameters
        ----------
        path : str or pathlib.Path
            Destination file.

        Returns
        -------
        pathlib.Path
        """
        from rfmml.models.persistence import save_model

        return save_model(self, path)

    @classmethod
    def load(cls, path: str | Path) -> Any:
        """Load a model saved with :meth:`save`, checking it is of this class.

        Parameters
        ----------
        path : str or pathlib.Path
            A JSON file written by :meth:`save`.

        Returns
        -------
        The fitted model.
        """
        from rfmml.models.persistence import load_model

        return load_model(path, expected=cls)
