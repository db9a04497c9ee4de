"""The compiled BG/NBD and MBG/NBD row sums on several cores, with the bits of one pass.

The compiled loop (:func:`rfmml.models._kernels.bg_likelihood_sums`) sums
blocks of :data:`~rfmml.models._kernels.SUM_BLOCK_ROWS` rows and releases
Python's lock while it runs, so the blocks, cut into contiguous parts, can be
summed on the shared thread pool (:func:`rfmml._threads.run_all`). The values
are those of one thread summing every row in order, bit for bit, whatever the
number of parts:

* the eight sums: each block's sums are written to its own row of a
  ``(blocks, 8)`` array and added in block order
  (:func:`~rfmml.models._kernels.add_block_sums`), the additions one pass
  over the blocks makes;
* ``w s`` per frequency level: each part adds its rows' values to the levels
  row by row, in an array of its own, except at the levels the rows before it
  have (marked first by :func:`~rfmml.models._kernels.mark_levels`, a pass
  over those rows' levels): those values it writes, in row order, to arrays
  that are added afterwards, part after part, to the sums of the rows before
  (:func:`~rfmml.models._kernels.add_carried`). At a level the rows before
  lack, the part's own sum from 0.0 is the one-pass sum. Prepared rows are
  sorted by frequency, so usually one level straddles a cut and few values
  wait.

Likelihoods that are flat along a ridge (a degenerate fit: ``r`` and
``alpha`` running to infinity) end wherever rounding sends the optimiser:
values that differed at rounding level would move such a fit's parameters by
orders of magnitude more than rounding.

One part, summed in the calling thread as before, when
:func:`rfmml._threads.thread_count` is 1 (one usable core, or
``RFMML_THREADS=1``) or below :data:`LIKELIHOOD_THREAD_ROWS` rows per thread
(starting the parts costs more than it saves); inside a task of the pool the
parts run one after the other in the calling thread.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from rfmml._threads import run_all, thread_count

__all__ = ["LIKELIHOOD_THREAD_ROWS", "compiled_row_sums", "sum_parts"]

#: Fewest prepared rows per part (per thread) of the compiled sums: the loop
#: takes ~15 ns a row, handing a part to the pool and collecting it ~0.1 ms
#: (measured: two threads gain from ~50,000 rows on a loaded two-core machine,
#: from ~20,000 on an idle one). Read at call time.
LIKELIHOOD_THREAD_ROWS = 25_000

_NO_MARKS = np.empty(0, dtype=np.bool_)
_NO_LEVELS = np.empty(0, dtype=np.intp)
_NO_VALUES = np.empty(0)


def sum_parts(rows: int) -> int:
    """Parts (threads) for the compiled sums of ``rows`` prepared rows.

    :func:`rfmml._threads.thread_count`, at most one per
    :data:`LIKELIHOOD_THREAD_ROWS` rows, at least 1.
    """
    return max(1, min(thread_count(), rows // LIKELIHOOD_THREAD_ROWS))


def compiled_row_sums(
    kernels: Any, args: tuple, level: np.ndarray, n_levels: int, parts: int
) -> tuple[np.ndarray, np.ndarray]:
    """The eight row sums and ``w s`` per level from the compiled loop, in ``parts`` parts.

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
    parts : int
        Contiguous parts of the blocks (at most one per block), summed on the
        thread pool. The values are the same for any number.

    Returns
    -------
    sums : numpy.ndarray
        The eight sums.
    ws_level : numpy.ndarray
        ``sum w s`` per frequency level.
    """
    sums_of = kernels.bg_likelihood_sums
    n_blocks = -(-len(level) // kernels.SUM_BLOCK_ROWS)
    parts = max(1, min(parts, n_blocks))
    cuts = [p * n_blocks // parts for p in range(parts + 1)]
    block_sums = np.empty((n_blocks, 8))
    ws_level = np.zeros(n_levels)

    def first_part() -> None:
        sums_of(*args, 0, cuts[1], ws_level, _NO_MARKS, _NO_LEVELS, _NO_VALUES, block_sums)

    def later_part(p: int) -> Callable[[], tuple]:
        def run() -> tuple:
            first_row = cuts[p] * kernels.SUM_BLOCK_ROWS
            rows = min(cuts[p + 1] * kernels.SUM_BLOCK_ROWS, len(level)) - first_row
            before = np.zeros(n_levels, dtype=np.bool_)  # levels of the rows before
            kernels.mark_levels(level, first_row, before)
            own = np.zeros(n_levels)  # this part's sums at the other levels
            carried_level, carried_ws = np.empty(rows, dtype=np.intp), np.empty(rows)
            m = sums_of(*args, cuts[p], cuts[p + 1], own, before,
                        carried_level, carried_ws, block_sums)  # fmt: skip
            return before, own, carried_level[:m], carried_ws[:m]

        return run

    tasks: list[Callable[[], Any]] = [first_part]
    later = run_all(tasks + [later_part(p) for p in range(1, parts)])[1:]
    for before, own, carried_level, carried_ws in later:
        # ws_level holds the one-pass sums over the rows before this part (0.0 at
        # the levels they lack, where this part's own sum is the one-pass sum)
        ws_level = np.where(before, ws_level, own)
        kernels.add_carried(carried_level, carried_ws, ws_level)
    sums = np.zeros(8)
    kernels.add_block_sums(block_sums, sums)
    return sums, ws_level
