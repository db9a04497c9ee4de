"""Compiled loops of the features pass on ranges of rows or customers, one thread per range.

The loops of :mod:`rfmml.features._partition_kernel` and
:mod:`rfmml.features._features_kernel` are compiled with ``nogil=True``: the
threads of :mod:`rfmml._threads`' pool run them at the same time. Each loop
takes a range of log rows or of blocks of customers and touches only its own
places, and every customer's rows keep the log's order: the values are those
of one range covering everything, bit for bit. numba's own threading layer is not
used (the writers of the scoring stage run other compiled loops from their
own threads).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import partial
from typing import Any

from rfmml._threads import run_all, thread_count

__all__ = ["MAX_WORKERS", "THREADS_MIN_ROWS", "available_workers", "even_bounds", "run_ranges"]

#: Most threads a features pass uses: its loops are bound by memory accesses
#: (random writes into per-customer arrays), which more threads share.
MAX_WORKERS = 2
#: Log rows from which the compiled passes (the features table's and the pandas
#: summary's) run their loops on several threads: the same values as one thread.
THREADS_MIN_ROWS = 1_000_000


def available_workers() -> int:
    """The threads of a features pass: ``thread_count()``, at most :data:`MAX_WORKERS`."""
    return max(1, min(MAX_WORKERS, thread_count()))


def even_bounds(n: int, parts: int) -> list[int]:
    """``parts + 1`` bounds cutting ``range(n)`` into ``parts`` ranges of (nearly) equal length."""
    return [n * j // parts for j in range(parts + 1)]


def run_ranges(fn: Callable[[int, int, int], Any], bounds: Sequence[int]) -> list[Any]:
    """``fn(j, bounds[j], bounds[j + 1])`` for each range ``j``; results in the ranges' order.

    On the pool's threads (:func:`rfmml._threads.run_all`: in the calling
    thread when there is one range, one thread or the caller is itself a
    task of the pool). The first failing range's exception is raised after
    every range has finished.
    """
    tasks = [partial(fn, j, bounds[j], bounds[j + 1]) for j in range(len(bounds) - 1)]
    return run_all(tasks)
