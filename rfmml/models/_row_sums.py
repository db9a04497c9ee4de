"""The compiled BG/NBD and MBG/NBD row sums on one core or two, with the same values.

The compiled loop (:func:`rfmml.models._kernels.bg_likelihood_sums`) sums
blocks of :data:`~rfmml.models._kernels.SUM_BLOCK_ROWS` rows; numba releases
Python's lock while it runs, so a second Python thread can sum the later
blocks while the calling thread sums the first ones. The values are those of
one thread summing every row in order, bit for bit, however the rows are
split:

* the eight sums: each block's sums are written to its own row of a
  ``(blocks, 8)`` array and added in block order
  (:func:`~rfmml.models._kernels.add_block_sums`), the additions one pass
  over the blocks makes;
* ``w s`` per frequency level: each thread adds its rows' values to the
  levels row by row, the second thread into its own array, except at the
  levels the first rows also have (marked first by
  :func:`~rfmml.models._kernels.mark_levels`, a pass over the first rows'
  levels): those values it writes, in row order, to arrays that the calling
  thread adds to the first rows' sums afterwards
  (:func:`~rfmml.models._kernels.add_carried`). Every level's sum is then
  the additions, in the order, of one pass. Prepared rows are sorted by
  frequency, so usually one level straddles the cut and few values wait.

Likelihoods that are flat along a ridge (a degenerate fit: ``r`` and
``alpha`` running to infinity) end wherever rounding sends the optimiser, so
anything but the same bits would move such a fit's parameters by orders of
magnitude more than rounding.

One thread sums every row, as before, when the process may run on one core
only (its CPU affinity) and below :data:`LIKELIHOOD_THREAD_MIN_ROWS` rows,
where starting a thread costs more than it saves. Python threads, not
numba's ``parallel=True``: other compiled loops run in background writer
threads (:mod:`rfmml.campaign._background`), and not every numba threading
layer accepts calls from several threads at once.
"""

from __future__ import annotations

import os
import threading
from typing import Any

import numpy as np

__all__ = [
    "LIKELIHOOD_THREAD_MIN_ROWS",
    "compiled_row_sums",
    "sum_threads",
    "usable_cores",
]

#: Rows from which the compiled sums use two threads when the process may run
#: on more than one core; fewer rows are summed in the calling thread (starting
#: and joining a thread costs ~0.1 ms, the loop ~15 ns a row). Read at call time.
LIKELIHOOD_THREAD_MIN_ROWS = 50_000


def usable_cores() -> int:
    """Cores this process may run on (its CPU affinity; ``os.cpu_count()`` without one)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # no sched_getaffinity (macOS, Windows)
        return os.cpu_count() or 1


def sum_threads(rows: int) -> int:
    """Threads for the compiled sums of ``rows`` prepared rows: 1 or 2."""
    return 2 if rows >= LIKELIHOOD_THREAD_MIN_ROWS and usable_cores() > 1 else 1


_NO_MARKS = np.empty(0, dtype=np.bool_)
_NO_LEVELS = np.empty(0, dtype=np.intp)
_NO_VALUES = np.empty(0)


def compiled_row_sums(
    kernels: Any, args: tuple, level: np.ndarray, n_levels: int, threads: int
) -> tuple[np.ndarray, np.ndarray]:
    """The eight row sums and ``w s`` per level from the compiled loop, in 1 or 2 threads.

    Parameters
    ----------
    kernels : module
        :mod:`rfmml.models._kernels`.
    args : tuple
        The arguments of :func:`~rfmml.models._kernels.bg_likelihood_sums`
        before its block range and outputs; ``level`` is among them.
    level : numpy.ndarray
        Frequency level of each prepared row.
    n_levels : int
        Frequency levels.
    threads : int
        1: every block in the calling thread; 2: the later half of the blocks
        in a second thread. The values are the same.

    Returns
    -------
    sums : numpy.ndarray
        The eight sums.
    ws_level : numpy.ndarray
        ``sum w s`` per frequency level.
    """
    sums_of = kernels.bg_likelihood_sums
    n_rows = len(level)
    n_blocks = -(-n_rows // kernels.SUM_BLOCK_ROWS)
    block_sums = np.empty((n_blocks, 8))
    ws_level = np.zeros(n_levels)
    cut = max(n_blocks // 2, 1) if threads > 1 else n_blocks
    if cut == n_blocks:
        sums_of(*args, 0, n_blocks, ws_level, _NO_MARKS, _NO_LEVELS, _NO_VALUES, block_sums)
    else:
        first_row = cut * kernels.SUM_BLOCK_ROWS
        in_first = np.zeros(n_levels, dtype=np.bool_)  # levels of the first rows
        later_level = np.zeros(n_levels)  # the later rows' sums at the other levels
        carried_level = np.empty(n_rows - first_row, dtype=np.intp)
        carried_ws = np.empty(n_rows - first_row)
        carried: list[int] = []
        errors: list[BaseException] = []

        def later_blocks() -> None:
            try:
                kernels.mark_levels(level, first_row, in_first)
                carried.append(sums_of(*args, cut, n_blocks, later_level, in_first,
                                       carried_level, carried_ws, block_sums))  # fmt: skip
            except BaseException as exc:  # re-raised in the calling thread
                errors.append(exc)

        other = threading.Thread(target=later_blocks, name="rfmml-likelihood", daemon=True)
        other.start()
        try:
            sums_of(*args, 0, cut, ws_level, _NO_MARKS, _NO_LEVELS, _NO_VALUES, block_sums)
        finally:
            other.join()
        if errors:
            raise errors[0]
        # a level the first rows lack starts from 0.0 in either array: the later
        # rows' own sum is the one-pass sum; the others continue from the first rows'
        ws_level = np.where(in_first, ws_level, later_level)
        m = carried[0]
        kernels.add_carried(carried_level[:m], carried_ws[:m], ws_level)
    sums = np.zeros(8)
    kernels.add_block_sums(block_sums, sums)
    return sums, ws_level
