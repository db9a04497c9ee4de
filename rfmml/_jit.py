"""The one numba decorator of rfmml's compiled loops (models' scoring, k-means silhouettes).

Compiled code is cached on disk (``cache=True``, numba's locators in order):
in ``$NUMBA_CACHE_DIR`` when it is set; else next to the module that defines
the loop, in ``__pycache__``, when that is writable; else in the user-wide
cache (``$XDG_CACHE_HOME/numba`` or ``~/.cache/numba``). When no cache
directory is writable the loops are compiled once per process instead.
Importing this module imports numba: callers import it on first use.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from numba import njit

__all__ = ["jit"]


def jit(fn: Callable[..., Any]) -> Any:
    """``njit(cache=True, nogil=True, error_model="numpy")``; no disk cache when none is writable.

    ``error_model="numpy"``: a division by zero gives IEEE's inf or NaN, as in
    numpy, instead of raising; without the check the divisions of the loops
    vectorise (the values are the same: no loop here divides by zero).

    numba looks for a writable cache directory when the function is decorated
    (``$NUMBA_CACHE_DIR``, the defining package's ``__pycache__``, the
    user-wide cache) and raises ``RuntimeError`` when there is none.
    """
    options: dict[str, Any] = {"nogil": True, "error_model": "numpy"}
    try:
        return njit(cache=True, **options)(fn)
    except RuntimeError:  # no writable cache directory: compile in each process
        return njit(**options)(fn)
