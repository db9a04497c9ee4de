"""Writing in a background thread (:mod:`rfmml.campaign._background`): order, errors, memory."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import numpy as np
import pytest

from rfmml.campaign._background import BackgroundCalls, BackgroundFile


def test_calls_run_in_order_in_another_thread() -> None:
    seen: list[tuple[int, str]] = []
    with BackgroundCalls(depth=2) as calls:
        for i in range(50):
            calls.submit(lambda i: seen.append((i, threading.current_thread().name)), i)
    assert [i for i, _ in seen] == list(range(50))
    assert {name for _, name in seen} == {"rfmml-writer"}


def test_depth_zero_holds_one_call_at_a_time() -> None:
    running = []
    peak = []

    def slow(i: int) -> None:
        running.append(i)
        time.sleep(0.01)
        peak.append(len(running))
        running.remove(i)

    started = time.perf_counter()
    with BackgroundCalls(depth=0) as calls:
        for i in range(5):
            calls.submit(slow, i)
            # submit returned: the call before this one has finished
            assert len(running) <= 1
    assert max(peak) == 1
    assert time.perf_counter() - started >= 0.05


def test_an_error_reaches_the_caller_and_stops_later_calls() -> None:
    ran: list[int] = []

    def fail() -> None:
        raise OSError("disk full")

    calls = BackgroundCalls(depth=0)
    calls.submit(fail)
    with pytest.raises(OSError, match="disk full"):
        calls.submit(ran.append, 1)  # waits for fail(), then raises its error
        calls.submit(ran.append, 2)
    calls.close()
    assert ran == []
    with pytest.raises(ValueError, match="after close"):
        calls.submit(ran.append, 3)


def test_an_error_at_close_is_raised_and_the_callers_own_error_wins() -> None:
    calls = BackgroundCalls(depth=4)
    calls.submit(lambda: 1 / 0)
    with pytest.raises(ZeroDivisionError):
        calls.close()
    with pytest.raises(KeyError), BackgroundCalls() as other:
        other.submit(lambda: 1 / 0)
        raise KeyError("the caller's")


def test_file_bytes_in_order_and_buffers_reused(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    pieces = [rng.integers(0, 256, int(n), dtype=np.uint8) for n in rng.integers(1, 5000, 200)]
    ids = set()
    with open(tmp_path / "f.bin", "wb") as handle:
        out = BackgroundFile(handle, depth=2)
        out.write(b"head\r\n")
        for i, piece in enumerate(pieces):
            if i % 2:
                out.write(piece.tobytes())
            else:
                buffer = out.buffer(len(piece))
                ids.add(id(buffer))
                buffer[: len(piece)] = piece
                out.write_buffer(buffer, len(piece))
        assert out.tell() == 6 + sum(len(p) for p in pieces)
        out.close()
    assert (tmp_path / "f.bin").read_bytes() == b"head\r\n" + b"".join(p.tobytes() for p in pieces)
    # at most depth + 2 buffers in use at once: the rest are reused
    assert len(ids) <= 8


def test_a_pipe_gets_the_same_bytes_as_a_file(tmp_path: Path, monkeypatch) -> None:
    # a pipe cannot tell its position (``-o /dev/stdout`` piped on): written all the same
    import os

    import pandas as pd

    from rfmml.campaign import _csv

    monkeypatch.setattr(_csv, "_compiled_floats", lambda rows: True)
    rng = np.random.default_rng(3)
    frame = pd.DataFrame({"id": np.arange(3000), "x": rng.random(3000), "t": ["a,b"] * 3000})
    assert _csv.write_csv(frame, tmp_path / "file.csv", chunk_rows=512)
    read_end, write_end = os.pipe()
    received: list[bytes] = []
    reader = threading.Thread(target=lambda: received.append(os.fdopen(read_end, "rb").read()))
    reader.start()
    with open(write_end, "wb") as pipe:
        writer = _csv.CsvChunks(pipe, chunk_rows=512)
        writer.write(frame)
        writer.close()
    reader.join(timeout=30)
    assert received == [(tmp_path / "file.csv").read_bytes()]
