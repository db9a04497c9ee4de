"""Compiled loops of the features pass on ranges of customers, one Python thread per range.

The loops of :mod:`rfmml.features._btyd_kernel` and
:mod:`rfmml.features._features_kernel` are compiled with ``nogil=True``: Python
threads run them at the same time. Each loop takes a range of customers (or of
output rows) and touches only their places, so the ranges can run
concurrently, and every customer's rows are still read in the log's order:
the values are those of one range covering everything, bit for bit. numba's
own threading layer is not used (the writers of the scoring stage run other
compiled loops from their own threads).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

__all__ = ["MAX_WORKERS", "available_workers", "even_bounds", "run_ranges"]

#: Most threads a features pass uses (the loops are bound by memory accesses, and
#: the job's machines have two cores).
MAX_WORKERS = 2


def available_workers() -> int:
    """Threads for a features pass: the cores this process may use, at most :data:`MAX_WORKERS`."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # (no affinity outside Linux)
        cores = os.cpu_count() or 1
    return max(1, min(MAX_WORKERS, cores))


def even_bounds(n: int, parts: int) -> list[int]:
    """``parts + 1`` bounds cutting ``range(n)`` into ``parts`` ranges of (nearly) equal length."""
    return [n * j // parts for j in range(parts + 1)]


def run_ranges(fn: Callable[[int, int, int], Any], bounds: Sequence[int]) -> list[Any]:
    """``fn(j, bounds[j], bounds[j + 1])`` for each range ``j``, each on its own thread.

    The first range runs on the calling thread; with one range nothing else
    starts. Results in the order of the ranges; the first range's exception
    (after every range has finished) is raised.
    """
    n = len(bounds) - 1
    if n == 1:
        return [fn(0, bounds[0], bounds[1])]
    with ThreadPoolExecutor(max_workers=n - 1, thread_name_prefix="rfmml-features") as pool:
        others = [pool.submit(fn, j, bounds[j], bounds[j + 1]) for j in range(1, n)]
        try:
            first = fn(0, bounds[0], bounds[1])
        finally:  # the other ranges end before anything is raised (they share the arrays)
            for future in others:
                future.exception()
    return [first, *(future.result() for future in others)]
