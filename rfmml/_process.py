"""Process-wide settings of the ``rfmml`` command's process.

Transparent huge pages (THP) are 2 MiB pages the kernel zeroes whole on the
first touch. NumPy asks for them on every array of 4 MiB or more
(``madvise(MADV_HUGEPAGE)``), and so do DuckDB's allocator and Arrow's for
their large blocks. A batch job that allocates, fills and frees arrays of a
million customers chunk after chunk then spends much of its time in the
kernel zeroing huge pages that are returned soon after. On the 10M-row
benchmark log (``benchmarks/bench_pipeline.py``, the job of ``rfmml predict``)
the streamed scoring and writing stage spent 11.7 of its 25.6 CPU seconds in
the kernel, most of it zeroing huge pages; with THP off for the process the
stage took 15.5 CPU seconds instead of 23.0 and the whole job 25.9 instead of
34.8 (the other stages did not slow down).

NumPy and SciPy each load an OpenBLAS with a pool of worker threads. After a
BLAS call large enough to use them (a dot product of a few hundred thousand
values, as the likelihood sums and the scoring take), the workers spin on
their cores waiting for the next call. rfmml's batch work runs its own
threads (DuckDB's, the model fits', the Parquet writer's), so on two cores
the spinning took cycles from them: on the 10M-row benchmark log the job
spent 0.3 CPU seconds less, and its fits stage 0.06 s less wall time, with
BLAS on one thread (:func:`single_thread_blas`). The batch commands run it
after their imports; no rfmml computation relies on a threaded BLAS (the
k-means silhouettes are a compiled loop, and scikit-learn's k-means limits
BLAS to one thread itself).

glibc's ``malloc`` hands an allocation of 128 KiB or more back to the system
when it is freed (and, as its threshold adapts, any free memory over twice
the largest such block at the top of its heap). A batch job that fills and
frees arrays of a million customers chunk after chunk then touches fresh
pages for every chunk, and each first touch of a page is a page fault (on a
virtual machine, sometimes one in the host too: on this project's 2-core
benchmark machine 5 to 10 microseconds a page). The batch commands keep what
they free for reuse (:func:`keep_freed_memory`: blocks of up to 64 MiB come
from the heap, and up to 256 MiB of free heap is kept): on the 10M-row
benchmark log the job took 2.65-2.68 s instead of 2.77-2.91 (five alternated
rounds each), at a peak of 1.62 instead of 1.41 GiB. The ``MALLOC_MMAP_THRESHOLD_``
and ``MALLOC_TRIM_THRESHOLD_`` environment variables, when set, are left to
decide instead.

The ``rfmml`` command turns THP off for its own process at start
(:func:`disable_transparent_huge_pages`), unless the environment variable
``RFMML_HUGE_PAGES`` is ``keep``. Library users who run the same batch work
in their own process can call it themselves
(``rfmml.disable_transparent_huge_pages()``); nothing in :mod:`rfmml` changes
process settings on import.

Python's cyclic garbage collector walks every object it tracks at each full
collection. After the imports of a batch command (pandas, scikit-learn,
DuckDB, numba, MLflow) that is about 220,000 objects that are never garbage:
one full collection during the 10M-row job took 0.11 s of the main thread,
holding Python's lock. The batch commands (``fit``, ``predict``, ``run``)
move what their imports loaded out of the collector's way once they are done
(:func:`freeze_loaded_objects`, :func:`gc.freeze`): the same collection then
took 0.02 to 0.03 s. Objects made later are collected as usual.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import os
import sys

__all__ = [
    "disable_transparent_huge_pages",
    "freeze_loaded_objects",
    "keep_freed_memory",
    "single_thread_blas",
]

#: ``mallopt`` parameters (glibc's <malloc.h>)
_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
#: Blocks up to this size come from the heap (and are reused once freed).
MMAP_THRESHOLD = 64 * 2**20
#: Free memory kept at the top of the heap before it is handed back.
TRIM_THRESHOLD = 256 * 2**20

# <linux/prctl.h>
_PR_SET_THP_DISABLE = 41
_PR_GET_THP_DISABLE = 42


@functools.cache
def _libc() -> ctypes.CDLL:
    """The C library, loaded once (``find_library`` runs ``ldconfig`` each time it is asked)."""
    return ctypes.CDLL(ctypes.util.find_library("c") or None, use_errno=True)


def disable_transparent_huge_pages() -> bool:
    """Turn transparent huge pages off for this process and the processes it starts.

    Linux only (``prctl(PR_SET_THP_DISABLE)``, kernel 3.15 or later); elsewhere,
    or where the call fails, nothing changes. Memory already backed by huge
    pages keeps them; later allocations get ordinary 4 KiB pages even where a
    library asks for huge ones.

    Returns
    -------
    bool
        Whether THP is now off for this process.
    """
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = _libc()
        if libc.prctl(_PR_SET_THP_DISABLE, 1, 0, 0, 0) != 0:
            return False
        return bool(libc.prctl(_PR_GET_THP_DISABLE, 0, 0, 0, 0) == 1)
    except (OSError, AttributeError):  # no libc or no prctl: leave the process as it is
        return False


def huge_pages_wanted() -> bool:
    """Whether ``RFMML_HUGE_PAGES=keep`` asks the command to leave THP as the system sets it."""
    return os.environ.get("RFMML_HUGE_PAGES", "").strip().lower() == "keep"


def freeze_loaded_objects() -> int:
    """Leave every object the collector tracks now out of its later collections.

    For a batch command after its imports (see the module's notes): modules,
    classes and functions stay alive for the process's life, so walking them
    again at each full collection only costs time. The few import-time cycles
    that were garbage stay in memory.

    Once per process: a later call (a second command run in the same process,
    as tests do) changes nothing, so garbage made between commands is still
    collected.

    Returns
    -------
    int
        The number of objects frozen (:func:`gc.get_freeze_count`).
    """
    import gc

    global _FROZEN
    if not _FROZEN:
        gc.freeze()
        _FROZEN = True
    return gc.get_freeze_count()


_FROZEN = False


def single_thread_blas() -> int:
    """Run the BLAS libraries loaded in this process on the calling thread only.

    For a batch command after its imports (see the module's notes): their
    OpenBLAS worker threads then stay asleep instead of spinning between calls.
    Libraries loaded later keep their own setting.

    Returns
    -------
    int
        The number of BLAS libraries set to one thread.
    """
    from threadpoolctl import ThreadpoolController

    blas = ThreadpoolController().select(user_api="blas")
    blas.limit(limits=1)  # applied now, kept for the process's life
    return len(blas.lib_controllers)


def keep_freed_memory() -> bool:
    """Keep memory this process frees for its later allocations (glibc's ``malloc``).

    Sets ``mallopt(M_MMAP_THRESHOLD)`` to :data:`MMAP_THRESHOLD` and
    ``mallopt(M_TRIM_THRESHOLD)`` to :data:`TRIM_THRESHOLD` (see the module's
    notes). Nothing changes where the C library is not glibc, or where the
    environment sets ``MALLOC_MMAP_THRESHOLD_`` or ``MALLOC_TRIM_THRESHOLD_``.

    Returns
    -------
    bool
        Whether both settings were made.
    """
    if not sys.platform.startswith("linux"):
        return False
    if any(os.environ.get(v) for v in ("MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_")):
        return False
    try:
        libc = _libc()
        libc.gnu_get_libc_version.restype = ctypes.c_char_p  # glibc only (AttributeError)
        if not libc.gnu_get_libc_version():
            return False
        return bool(
            libc.mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD) == 1
            and libc.mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD) == 1
        )
    except (OSError, AttributeError):  # no libc, or not glibc: leave the allocator as it is
        return False
