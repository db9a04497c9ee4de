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

The ``rfmml`` command turns THP off for its own process at start
(:func:`disable_transparent_huge_pages`), unless the environment variable
``RFMML_HUGE_PAGES`` is ``keep``. Library users who run the same batch work
in their own process can call it themselves
(``rfmml.disable_transparent_huge_pages()``); nothing in :mod:`rfmml` changes
process settings on import.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import sys

__all__ = ["disable_transparent_huge_pages"]

# <linux/prctl.h>
_PR_SET_THP_DISABLE = 41
_PR_GET_THP_DISABLE = 42


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
        libc = ctypes.CDLL(ctypes.util.find_library("c") or None, use_errno=True)
        if libc.prctl(_PR_SET_THP_DISABLE, 1, 0, 0, 0) != 0:
            return False
        return bool(libc.prctl(_PR_GET_THP_DISABLE, 0, 0, 0, 0) == 1)
    except (OSError, AttributeError):  # no libc or no prctl: leave the process as it is
        return False


def huge_pages_wanted() -> bool:
    """Whether ``RFMML_HUGE_PAGES=keep`` asks the command to leave THP as the system sets it."""
    return os.environ.get("RFMML_HUGE_PAGES", "").strip().lower() == "keep"
