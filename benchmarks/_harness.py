"""Shared benchmark plumbing: run a measurement in a fresh process, track peak memory.

Each measurement runs in its own Python process so that one library's
allocations do not inflate another's peak. Memory is the peak resident set
size above the process's baseline after the input data is built, sampled
every 5 ms by a background thread.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import psutil

RESULTS = Path(__file__).with_name("RESULTS.md")


class PeakMemory:
    """Context manager sampling this process's RSS; ``peak`` is bytes above the start."""

    def __init__(self, interval: float = 0.005) -> None:
        self.interval = interval
        self.peak = 0
        self._stop = threading.Event()

    def __enter__(self) -> PeakMemory:
        self._proc = psutil.Process()
        self._base = self._proc.memory_info().rss
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def _sample(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, self._proc.memory_info().rss - self._base)
            time.sleep(self.interval)

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self._proc.memory_info().rss - self._base)


def measure(fn: Callable[[], object]) -> dict:
    """Wall time (s) and peak extra memory (bytes) of one call."""
    with PeakMemory() as mem:
        start = time.perf_counter()
        fn()
        seconds = time.perf_counter() - start
    return {"seconds": seconds, "peak_bytes": mem.peak}


def run_isolated(script: str, *args: str, timeout: float = 900) -> dict:
    """Run ``script args`` in a new interpreter; it prints one JSON line last."""
    proc = subprocess.run(
        [sys.executable, script, *args], capture_output=True, text=True, timeout=timeout
    )
    if proc.returncode != 0:
        return {"error": proc.stderr.strip().splitlines()[-1] if proc.stderr else "failed"}
    return json.loads(proc.stdout.strip().splitlines()[-1])


def run_in_tree(tree: Path, child: str, *args: str) -> dict:
    """``python -c child args`` with rfmml imported from ``tree``; its last JSON line and the load.

    The 1-minute load average is read before the child starts.
    """
    load = os.getloadavg()[0]
    env = {**os.environ, "PYTHONPATH": str(tree)}
    out = subprocess.run(
        [sys.executable, "-c", child, *args],
        env=env,
        capture_output=True,
        text=True,
        check=True,
        cwd=tree,
    )
    return {**json.loads(out.stdout.strip().splitlines()[-1]), "load": load}


def write_section(name: str, markdown: str) -> None:
    """Replace the section between this benchmark's markers in RESULTS.md."""
    start, end = f"<!-- {name}:start -->", f"<!-- {name}:end -->"
    block = f"{start}\n{markdown.rstrip()}\n{end}"
    text = RESULTS.read_text() if RESULTS.exists() else "# Benchmark results\n"
    pattern = re.compile(re.escape(start) + ".*?" + re.escape(end), re.S)
    text = pattern.sub(lambda _: block, text) if pattern.search(text) else f"{text}\n{block}\n"
    RESULTS.write_text(text)


def gib(n_bytes: float) -> str:
    """Bytes as GiB with two decimals."""
    return f"{n_bytes / 2**30:.2f}"
