"""``customer_features_table`` alone on a Parquet log, two checkouts alternated.

Usage::

    flock /tmp/rfmml-bigbench.lock python benchmarks/bench_features_threads.py \\
        --log /tmp/rfmml-bench/log_10000000.parquet --before /work/main --runs 3

Each run is a fresh process that imports rfmml from one checkout, turns
transparent huge pages off (as the ``rfmml`` command does), scans the log
(``scan_transactions``) and then times ``customer_features_table(tx, freq="D")``:
wall and CPU seconds (the process's, all threads) and the peak resident size
of the stage (VmHWM, reset just before it; the scanned log's memory is part
of it, as in the job). The stored table's digest (the md5 of every column's
values as numpy bytes, NaN bits included, in table order, with the names and
types) shows whether both checkouts store the same table bit for bit. Runs
alternate before / after; the 1-minute load average is read before each run.
Written to the section ``bench_features_threads`` of RESULTS.md.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))
from _harness import gib, write_section  # noqa: E402
from bench_pipeline import _status_kib  # noqa: E402

HERE = Path(__file__).resolve().parent.parent


def _digest(con: Any, table: str) -> str:
    """md5 of the table's columns (names, types, values as numpy bytes) in order."""
    import hashlib

    import numpy as np

    arrow = con.sql(f'SELECT * FROM "{table}"').to_arrow_table()
    md5 = hashlib.md5()
    for name, column in zip(arrow.column_names, arrow.columns, strict=True):
        md5.update(f"{name}:{column.type}:{column.null_count};".encode())
        values = np.ascontiguousarray(column.to_numpy())
        md5.update(values.view(np.uint8).tobytes())
    return md5.hexdigest()


def _child(log: str) -> None:
    from rfmml._process import disable_transparent_huge_pages

    disable_transparent_huge_pages()
    from rfmml.data import scan_transactions
    from rfmml.features.combined import customer_features_table

    tx, _ = scan_transactions(log)
    with open("/proc/self/clear_refs", "w") as refs:  # "5": VmHWM back to the current RSS
        refs.write("5")
    rss = _status_kib("VmRSS") * 1024
    start, cpu = time.perf_counter(), time.process_time()
    table = customer_features_table(tx, freq="D")
    seconds, cpu = time.perf_counter() - start, time.process_time() - cpu
    peak = _status_kib("VmHWM") * 1024
    print(json.dumps({"seconds": seconds, "cpu": cpu, "peak_bytes": peak, "rss_before": rss,
                      "customers": table.n_rows,
                      "digest": _digest(tx.connection, table.table)}))  # fmt: skip


def _run(checkout: Path, log: str) -> dict[str, Any]:
    env = dict(os.environ, PYTHONPATH=str(checkout))
    load = os.getloadavg()[0]
    proc = subprocess.run([sys.executable, __file__, "--child", log], env=env,
                          capture_output=True, text=True, timeout=600, cwd=checkout)  # fmt: skip
    if proc.returncode != 0:
        raise RuntimeError(proc.stderr.strip().splitlines()[-1] if proc.stderr else "failed")
    return {**json.loads(proc.stdout.strip().splitlines()[-1]), "load": load}


def _median(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[len(ordered) // 2]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--log", default="/tmp/rfmml-bench/log_10000000.parquet")
    parser.add_argument("--before", default="/work/main", help="checkout measured as 'before'")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--no-write", action="store_true", help="print, do not edit RESULTS.md")
    args = parser.parse_args()
    if args.child:
        _child(args.child)
        return
    results: dict[str, list[dict[str, Any]]] = {"before": [], "after": []}
    for _ in range(args.runs):
        for side, checkout in (("before", Path(args.before)), ("after", HERE)):
            results[side].append(_run(checkout, args.log))
            print(side, results[side][-1], flush=True)
    digests = {r["digest"] for side in results.values() for r in side}
    n = results["after"][0]["customers"]
    when = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    lines = [
        f"### The stage alone, {Path(args.log).name} ({n:,} customers)",
        "",
        f"Machine: {platform.machine()}, {os.cpu_count()} cores, Python "
        f"{platform.python_version()}; run {when}. Fresh processes, alternated before "
        f"(rfmml from {args.before}) / after (this branch); peak is the process's VmHWM "
        "during the stage (the scanned log included). Stored tables: "
        + (
            "the same md5 in every run (" + next(iter(digests))[:8] + "...)."
            if len(digests) == 1
            else f"{len(digests)} different md5s: NOT bit-identical."
        ),
        "",
        "| run | before s | before CPU s | before peak GiB | load | after s | after CPU s "
        "| after peak GiB | load |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for i, (b, a) in enumerate(zip(results["before"], results["after"], strict=True), 1):
        lines.append(
            f"| {i} | {b['seconds']:.2f} | {b['cpu']:.2f} | {gib(b['peak_bytes'])} | "
            f"{b['load']:.1f} | {a['seconds']:.2f} | {a['cpu']:.2f} | {gib(a['peak_bytes'])} | "
            f"{a['load']:.1f} |"
        )
    med = {side: {k: _median([r[k] for r in rs]) for k in ("seconds", "cpu", "peak_bytes")}
           for side, rs in results.items()}  # fmt: skip
    b, a = med["before"], med["after"]
    lines.append(
        f"| median (after / before) | {b['seconds']:.2f} | {b['cpu']:.2f} | "
        f"{gib(b['peak_bytes'])} | | {a['seconds']:.2f} ({a['seconds'] / b['seconds']:.2f}x) | "
        f"{a['cpu']:.2f} ({a['cpu'] / b['cpu']:.2f}x) | {gib(a['peak_bytes'])} | |"
    )
    table = "\n".join(lines)
    print(table)
    if not args.no_write:
        write_section("bench_features_threads", table)


if __name__ == "__main__":
    main()
