"""Modules of compiled loops (numba), imported on first use; None where numba is missing.

numba is a dependency, but every compiled path has a plain numpy, DuckDB or
pandas path beside it, taken where numba cannot be imported. The modules of
compiled loops import numba (through :mod:`rfmml._jit`) when they are
imported, so callers ask for them here, when a loop would pay off, rather than
importing them at the top of their own modules.
"""

from __future__ import annotations

import functools
import importlib
from types import ModuleType

__all__ = ["compiled_module"]


@functools.cache
def compiled_module(name: str) -> ModuleType | None:
    """The module ``name`` of compiled loops, imported once; None when numba is not installed.

    Parameters
    ----------
    name : str
        Its full name, e.g. ``"rfmml.models._kernels"``.

    Returns
    -------
    types.ModuleType or None
    """
    try:
        return importlib.import_module(name)
    except ImportError:  # numba not installed: the caller's plain path
        return None
