"""BTYD summary from synthetic logs: rfmml against lifetimes, same data, same run.

Usage: python benchmarks/bench_features.py [--sizes 1e6,1e7,5e7] [--rfmml-only 1e8]

Logs have about one customer per three rows and, like real logs, mostly
one-time buyers (orders per customer ~ geometric(0.45)); timestamps are
spread over three years with a time of day; amounts are log-normal.
Each (library, size) runs in a fresh process; lifetimes is skipped above
``--lifetimes-max`` rows.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).parent))
from _harness import gib, measure, run_isolated, write_section  # noqa: E402


def synthetic_log(n_rows: int, seed: int = 0) -> pd.DataFrame:
    """A transaction log of ``n_rows`` rows, deterministic for a seed."""
    rng = np.random.default_rng(seed)
    n_customers = max(n_rows // 3, 1)
    orders = np.minimum(rng.geometric(0.45, n_customers), 200)
    customer = np.repeat(np.arange(n_customers, dtype=np.int64), orders)[:n_rows]
    if len(customer) < n_rows:
        extra = rng.integers(0, n_customers, n_rows - len(customer))
        customer = np.concatenate([customer, extra])
    rng.shuffle(customer)
    seconds = rng.integers(0, 3 * 365 * 86_400, n_rows)
    timestamp = (np.datetime64("2021-01-01T00:00:00", "s") + seconds).astype("datetime64[us]")
    amount = np.round(rng.lognormal(3.0, 1.0, n_rows), 2)
    return pd.DataFrame({"customer_id": customer, "timestamp": timestamp, "amount": amount})


def _measure(fn) -> dict:
    """:func:`measure` plus the process's CPU seconds (all threads) during the call."""
    cpu = time.process_time()
    result = measure(fn)
    result["cpu"] = time.process_time() - cpu
    return result


def _child(library: str, n_rows: int) -> None:
    tx = synthetic_log(n_rows)
    if library == "rfmml":
        import duckdb  # noqa: F401  (imported before measuring, like lifetimes below)

        from rfmml.features import btyd_summary

        result = _measure(lambda: btyd_summary(tx, freq="D"))
    else:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            from lifetimes.utils import summary_data_from_transaction_data

            result = _measure(
                lambda: summary_data_from_transaction_data(
                    tx, "customer_id", "timestamp", "amount", freq="D"
                )
            )
    print(json.dumps(result))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sizes", default="1e6,1e7,5e7")
    parser.add_argument("--rfmml-only", default="1e8")
    parser.add_argument("--lifetimes-max", type=float, default=5e7)
    parser.add_argument("--child", nargs=2, metavar=("LIBRARY", "ROWS"))
    parser.add_argument(
        "--section",
        default="bench_features",
        help="RESULTS.md section to write (another name keeps the issue-2 table as it is)",
    )
    args = parser.parse_args()
    if args.child:
        _child(args.child[0], int(float(args.child[1])))
        return

    sizes = [int(float(s)) for s in args.sizes.split(",") if s]
    extra = [int(float(s)) for s in args.rfmml_only.split(",") if s]
    rows = []
    loads = [os.getloadavg()[0]]
    for n in sizes + extra:
        ours = run_isolated(__file__, "--child", "rfmml", str(n), timeout=1800)
        loads.append(os.getloadavg()[0])
        theirs = (
            run_isolated(__file__, "--child", "lifetimes", str(n), timeout=1800)
            if n in sizes and n <= args.lifetimes_max
            else None
        )
        loads.append(os.getloadavg()[0])
        rows.append((n, ours, theirs))
        print(n, ours, theirs, flush=True)

    lines = [
        "## Features: BTYD summary (`benchmarks/bench_features.py`)"
        + ("" if args.section == "bench_features" else f", section {args.section}"),
        "",
        f"Machine: {platform.machine()}, {psutil_cpus()} cores, Python {platform.python_version()}."
        ' Wall time and peak extra resident memory of `btyd_summary(tx, freq="D")` (rfmml,'
        " DuckDB engine, pandas in and out) and `summary_data_from_transaction_data` (lifetimes"
        " 0.11.3) on the same in-memory pandas log; one fresh process per cell.",
        "",
        "| rows | customers | rfmml s | rfmml CPU s | rfmml GiB | lifetimes s | lifetimes CPU s "
        "| lifetimes GiB | speed-up | CPU speed-up | memory ratio |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for n, ours, theirs in rows:
        if "error" in ours:
            lines.append(f"| {n:,} | {n // 3:,} | error: {ours['error']} | | | | | | | | |")
            continue
        cells = [f"{n:,}", f"{n // 3:,}", f"{ours['seconds']:.2f}", _cpu(ours),
                 gib(ours["peak_bytes"])]  # fmt: skip
        if theirs and "error" not in theirs:
            cells += [
                f"{theirs['seconds']:.2f}",
                _cpu(theirs),
                gib(theirs["peak_bytes"]),
                f"{theirs['seconds'] / ours['seconds']:.1f}x",
                f"{theirs['cpu'] / ours['cpu']:.1f}x" if "cpu" in ours and "cpu" in theirs else "",
                f"{ours['peak_bytes'] / max(theirs['peak_bytes'], 1):.2f}",
            ]
        else:
            cells += ["not run", "", "", "", "", ""]
        lines.append("| " + " | ".join(cells) + " |")
    lines += [
        "",
        "Targets (issue 2): at least 5x faster than lifetimes at 10M and 50M rows with at most half"
        " its peak memory (memory ratio <= 0.5); 100M rows in under 60 s within 8 GiB.",
        "",
        "Load average (1 min) before and after each cell: "
        + ", ".join(f"{v:.1f}" for v in loads)
        + f"; run {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}.",
    ]
    write_section(args.section, "\n".join(lines))


def _cpu(result: dict) -> str:
    return f"{result['cpu']:.2f}" if "cpu" in result else ""


def psutil_cpus() -> int:
    import psutil

    return psutil.cpu_count() or 0


if __name__ == "__main__":
    main()
