"""Modules of compiled loops (numba), imported on first use; None where numba is missing.

numba is a dependency, but every compiled path has a plain numpy, DuckDB or
pandas path beside it, taken where numba cannot be imported. The modules of
compiled loops import numba (through :mod:`rfmml._jit`) when they are
imported, so callers ask for them here, when a loop would pay off, rather than
importing them at the top of their own modules.

A process pays for numba once: importing it (about 0.2 s), setting up its
compiler target on the first loop it loads (about 0.2 s) and loading each
loop from the disk cache (a few ms to tens of ms each). A caller that knows
compiled loops will follow (a scan of a large log) starts that work early on
a background thread (:func:`in_background`, :func:`warm_numba`) while it
waits for DuckDB, which holds no Python lock.
"""

from __future__ import annotations

import functools
import importlib
import importlib.util
import threading
from collections.abc import Callable
from types import ModuleType

__all__ = ["compiled_module", "has_numba", "in_background", "warm_numba"]

#: Rows of a log from which its scan starts loading numba in the background
#: (the compiled features pass takes logs from 2M rows on).
WARM_MIN_ROWS = 2_000_000


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


def has_numba() -> bool:
    """Whether numba can be found (without importing it)."""
    return importlib.util.find_spec("numba") is not None


def in_background(work: Callable[[], object], name: str = "rfmml-warm") -> threading.Thread:
    """Run ``work`` once on a daemon thread, ignoring what it raises.

    For warm-ups only: work whose result nobody waits for, which the caller
    would otherwise do on first use (where any error then surfaces as usual).
    Imports from two threads are safe: Python's import lock makes the second
    importer of a module wait for the first.

    Returns
    -------
    threading.Thread
        Already started.
    """

    def run() -> None:
        try:
            work()
        except Exception:  # noqa: BLE001 - a warm-up: the real call reports its own errors
            pass

    thread = threading.Thread(target=run, name=name, daemon=True)
    thread.start()
    return thread


def warm_numba() -> None:
    """Import numba and set up its compiler target (one cached loop loaded); no-op without numba."""
    if has_numba():
        jit = compiled_module("rfmml._jit")
        if jit is not None:
            jit.warm()
