"""Independent pieces of one computation run on the machine's cores: a shared thread pool.

rfmml's per-customer predictions are elementwise: each block of rows is
computed on its own (:func:`rfmml.models._grouping.map_rows`). NumPy, SciPy's
special functions and rfmml's compiled loops (``nogil``) release Python's
lock while they work on a block, so blocks computed by threads run on
several cores at once, and every block's values are the same bits as in one
thread (the blocks and the operations on them do not change).

The pool has :func:`thread_count` threads: the cores this process may run on
(at most :data:`MAX_THREADS`), or the environment variable ``RFMML_THREADS``
(``1``: everything in the calling thread). A task that itself calls
:func:`run_all` runs its pieces in its own thread (no task waits on the pool
from inside the pool), and a process forked after the pool started gets a
pool of its own.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Generic, TypeVar

__all__ = ["MAX_THREADS", "THREADS_ENV", "Started", "run_all", "start", "thread_count"]

#: Most threads used by default (more cores than this rarely help: the pieces
#: then compete for memory bandwidth).
MAX_THREADS = 8
#: Environment variable setting the number of threads (a whole number >= 1).
THREADS_ENV = "RFMML_THREADS"

T = TypeVar("T")

_lock = threading.Lock()
_pool: ThreadPoolExecutor | None = None
_pool_key: tuple[int, int] | None = None  # (process id, threads) the pool was made for
_in_pool = threading.local()


def thread_count() -> int:
    """Threads that :func:`run_all` uses: ``RFMML_THREADS``, else the usable cores (<= 8).

    Returns
    -------
    int

    Raises
    ------
    ValueError
        ``RFMML_THREADS`` is set to something other than a whole number >= 1.
    """
    value = os.environ.get(THREADS_ENV, "").strip()
    if value:
        if not value.isdigit() or int(value) < 1:
            raise ValueError(f"{THREADS_ENV} must be a whole number >= 1, got {value!r}")
        return int(value)
    try:
        cores = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # not Linux
        cores = os.cpu_count() or 1
    return max(1, min(cores, MAX_THREADS))


def _executor(threads: int) -> ThreadPoolExecutor:
    global _pool, _pool_key
    key = (os.getpid(), threads)
    with _lock:
        if _pool is None or _pool_key != key:
            if _pool is not None and _pool_key is not None and _pool_key[0] == key[0]:
                _pool.shutdown(wait=False)  # same process, other size: its idle threads end
            # a forked child's copy of the parent's pool has no threads: it is replaced
            _pool = ThreadPoolExecutor(threads, thread_name_prefix="rfmml")
            _pool_key = key
        return _pool


def _marked(task: Callable[[], T]) -> Callable[[], T]:
    def run() -> T:
        _in_pool.active = True
        try:
            return task()
        finally:
            _in_pool.active = False

    return run


def run_all(tasks: Sequence[Callable[[], T]]) -> list[T]:
    """Call every task, on the pool's threads when there are several; results in order.

    Parameters
    ----------
    tasks : sequence of callable
        Functions without arguments, independent of each other (no task may
        wait for another).

    Returns
    -------
    list
        ``[task() for task in tasks]``.

    Raises
    ------
    Exception
        The first failing task's exception (in task order), after every task
        has finished (none is left running in the background).

    Notes
    -----
    Where no thread can be started (``RuntimeError`` from the pool), the
    tasks not handed to it run in the calling thread.
    """
    threads = min(thread_count(), len(tasks))
    if threads <= 1 or getattr(_in_pool, "active", False):
        return [task() for task in tasks]
    futures = []
    try:
        pool = _executor(thread_count())
        for task in tasks:
            futures.append(pool.submit(_marked(task)))
    except RuntimeError:  # no thread can be started (a process or sandbox limit)
        pass  # the tasks not submitted run here, after those that were
    errors = [f.exception() for f in futures]  # waits for all of them
    for error in errors:
        if error is not None:
            raise error
    return [f.result() for f in futures] + [task() for task in tasks[len(futures) :]]


class Started(Generic[T]):
    """A task handed to the pool by :func:`start`: its result when asked for.

    Where the task did not go to the pool (one thread, called from a pool
    thread, or no thread can be started), :meth:`result` runs it in the
    calling thread, once.
    """

    def __init__(self, task: Callable[[], T]) -> None:
        self._task: Callable[[], T] | None = task
        self._future: Future[T] | None = None
        self._done = False
        self._value: T | None = None
        self._error: BaseException | None = None
        if thread_count() <= 1 or getattr(_in_pool, "active", False):
            return
        try:
            self._future = _executor(thread_count()).submit(_marked(task))
        except RuntimeError:  # no thread can be started: run by result()
            self._future = None

    def result(self) -> T:
        """The task's value (waiting for it), or its exception raised here."""
        if self._future is not None:
            return self._future.result()
        if not self._done:
            task, self._task = self._task, None
            assert task is not None
            self._done = True
            try:
                self._value = task()
            except BaseException as exc:
                self._error = exc
                raise
        if self._error is not None:
            raise self._error
        return self._value  # type: ignore[return-value]

    def wait(self) -> None:
        """Wait until the task finished (when on the pool); nothing is raised."""
        if self._future is not None:
            self._future.exception()


def start(task: Callable[[], T]) -> Started[T]:
    """Start ``task`` on the pool, beside the caller's own work; see :class:`Started`.

    The caller goes on (and may itself call :func:`run_all`: the pool keeps a
    thread for it, since the started task never waits on the pool, its own
    :func:`run_all` running in its thread) and takes the value with
    :meth:`Started.result`. With one thread (``RFMML_THREADS=1``) the task runs
    then, in the caller: the same value, in order.

    Parameters
    ----------
    task : callable
        A function without arguments; it must not change what the caller reads
        meanwhile.

    Returns
    -------
    Started
    """
    return Started(task)
