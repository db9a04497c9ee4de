"""Writing in a background thread while the caller prepares the next rows.

Writing a file spends its time where Python's lock is released: in the
kernel copying bytes into the page cache (``write``), in Arrow's Parquet
encoder. A thread that does that work while the caller scores or formats the
next chunk turns a second core into wall time saved; the bytes on disk are the
same, in the same order.

:class:`BackgroundFile` wraps a binary file: ``write`` hands the bytes to the
thread (at most ``depth`` writes wait; the caller blocks beyond that, which
bounds memory); its buffers (:meth:`BackgroundFile.buffer`) are reused once
written. :class:`BackgroundCalls` runs calls one at a time in order in its
thread, with at most ``depth`` calls waiting behind the running one. Both
re-raise the thread's error in the caller, at the next call or at
:meth:`close`.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable
from typing import Any, BinaryIO

import numpy as np

__all__ = ["BackgroundCalls", "BackgroundFile"]

_STOP = object()


class BackgroundCalls:
    """Calls run in order in one background thread.

    Parameters
    ----------
    depth : int
        Calls that may wait while one runs; :meth:`submit` blocks beyond (0: a
        call waits for the one before it to finish, so the arguments of at
        most one call are held here).
    name : str
        The thread's name.
    """

    def __init__(self, depth: int = 1, name: str = "rfmml-writer") -> None:
        if int(depth) < 0:
            raise ValueError(f"depth must be >= 0, got {depth!r}")
        self._queue: queue.Queue[Any] = queue.Queue()
        self._slots = threading.Semaphore(int(depth) + 1)
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._work, name=name, daemon=True)
        self._thread.start()
        self._closed = False

    def _work(self) -> None:
        while True:
            item = self._queue.get()
            if item is _STOP:
                return
            fn, args = item
            del item
            try:
                if self._error is None:  # after an error nothing more runs
                    fn(*args)
            except BaseException as exc:  # handed to the caller's thread
                self._error = exc
            finally:
                del fn, args  # the arguments are released before the slot
                self._slots.release()

    def _raise(self) -> None:
        if self._error is not None:
            error, self._error = self._error, None
            raise error

    def submit(self, fn: Callable[..., Any], *args: Any) -> None:
        """Run ``fn(*args)`` after the calls submitted before it."""
        if self._closed:
            raise ValueError("BackgroundCalls: submit after close")
        self._raise()
        self._slots.acquire()
        self._raise()
        self._queue.put((fn, args))

    def close(self) -> None:
        """Wait for every submitted call; raise the first error of any."""
        if not self._closed:
            self._closed = True
            self._queue.put(_STOP)
            self._thread.join()
        self._raise()

    def __enter__(self) -> BackgroundCalls:
        return self

    def __exit__(self, *exc: object) -> None:
        if exc[0] is None:
            self.close()
            return
        try:  # already failing: wait for the thread, keep the caller's error
            self.close()
        except BaseException:  # noqa: BLE001, S110 - the first error is the one raised
            pass


class BackgroundFile:
    """A binary file written by a background thread, in the order of :meth:`write`.

    Parameters
    ----------
    out : binary file
        Open for writing; not closed here (the caller's).
    depth : int
        Writes that may wait; :meth:`write` blocks beyond (memory bound).
    """

    def __init__(self, out: BinaryIO, depth: int = 4) -> None:
        self.out = out
        self._calls = BackgroundCalls(depth, name="rfmml-file-writer")
        try:
            self._size = out.tell()
        except (OSError, ValueError):  # a pipe or a terminal: counted from here
            self._size = 0
        self._free: list[np.ndarray] = []  # buffers written and free to fill again

    def buffer(self, nbytes: int) -> np.ndarray:
        """A byte buffer of at least ``nbytes`` to fill and pass to :meth:`write_buffer`.

        Buffers come back here once written, so filling one reuses memory the
        process already has (no fresh pages) and never one still being written.
        """
        while self._free:
            buffer = self._free.pop()
            if len(buffer) >= nbytes:
                return buffer
        return np.empty(max(int(nbytes * 1.25), 1 << 16), dtype=np.uint8)

    def write_buffer(self, buffer: np.ndarray, nbytes: int) -> None:
        """Queue the first ``nbytes`` of ``buffer`` (from :meth:`buffer`, not changed after)."""
        self._calls.submit(self._write_and_free, buffer, nbytes)
        self._size += nbytes

    def _write_and_free(self, buffer: np.ndarray, nbytes: int) -> None:
        self.out.write(buffer.data[:nbytes])
        self._free.append(buffer)

    def write(self, data: Any) -> int:
        """Queue ``data`` (bytes-like, not changed afterwards) and return its length."""
        n = memoryview(data).nbytes
        self._calls.submit(self.out.write, data)
        self._size += n
        return n

    def tell(self) -> int:
        """Bytes written and queued."""
        return self._size

    def close(self) -> None:
        """Wait for the queued writes; raise the first error of any."""
        self._calls.close()

    def __enter__(self) -> BackgroundFile:
        return self

    def __exit__(self, *exc: object) -> None:
        self._calls.__exit__(*exc)
