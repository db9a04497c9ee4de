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


def _one_more(x: int) -> int:
    return x + 1


_ready = jit(_one_more)


def warm() -> None:
    """Set up numba's compiler target by loading (or compiling, once) the smallest cached loop.

    numba reads its typing and lowering registries when a process loads its
    first compiled function (about 0.2 s); doing it here, on a thread that
    waits for nothing else, takes that off the first real loop.
    """
    _ready(1)
