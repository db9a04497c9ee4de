"""Customer state: a 1 % update against a full rebuild, on a 10M-row log.

Usage: python benchmarks/bench_state.py [--rows 1e7] [--new-share 0.01]

The log is ``bench_features.synthetic_log`` (about one customer per three rows,
timestamps over three years, shuffled). The newest ``--new-share`` of the rows
by time is the new batch; the rest is the existing log. Measured, each in a
fresh process (wall seconds and peak extra resident memory):

- ``recompute``: what rfmml does without a state, every time: read and clean the
  whole log (:func:`rfmml.data.read_transactions`), then ``btyd_summary`` and
  ``rfm_table`` on it;
- ``state rebuild``: a new :class:`~rfmml.features.CustomerState` built from the
  whole log in one update;
- ``state update``: the same state built from the existing log (not timed),
  then the new batch applied (timed);
- ``state features``: ``btyd_summary`` + ``rfm_table`` read from that state.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import tempfile
from pathlib import Path

import pandas as pd

sys.path.insert(0, str(Path(__file__).parent))
from _harness import gib, measure, run_isolated, write_section  # noqa: E402
from bench_features import synthetic_log  # noqa: E402


def _split(n_rows: int, share: float) -> tuple[pd.DataFrame, pd.DataFrame]:
    tx = synthetic_log(n_rows)
    cut = tx["timestamp"].quantile(1 - share)
    new = tx["timestamp"] > cut
    return tx.loc[~new], tx.loc[new]


def _child(task: str, n_rows: int, share: float) -> None:
    from rfmml.data import read_transactions
    from rfmml.features import CustomerState, btyd_summary, rfm_table

    old, new = _split(n_rows, share)
    folder = Path(tempfile.mkdtemp(prefix="rfmml-bench-state-"))
    path = folder / "state.duckdb"
    extra: dict = {}
    if task == "recompute":
        full = pd.concat([old, new], ignore_index=True)
        del old, new

        def run() -> None:
            tx, _ = read_transactions(full)
            btyd_summary(tx, freq="D")
            rfm_table(tx)

        result = measure(run)
    elif task == "rebuild":
        full = pd.concat([old, new], ignore_index=True)
        del old, new

        def run() -> None:
            with CustomerState.create(path) as state:
                state.update(full)

        result = measure(run)
        extra["file_mib"] = path.stat().st_size / 2**20
    else:
        with CustomerState.create(path) as state:
            state.update(old)
        del old
        state = CustomerState.open(path)
        if task == "update":
            outcome: dict = {}

            def run() -> None:
                update = state.update(new)
                outcome.update(rows=update.rows_added, touched=update.customers_touched)

            result = measure(run)
            extra.update(outcome)
        else:
            state.update(new)
            result = measure(lambda: (state.btyd_summary(freq="D"), state.rfm_table()))
        state.close()
    for file in folder.iterdir():
        file.unlink()
    folder.rmdir()
    print(json.dumps({**result, **extra}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", default="1e7")
    parser.add_argument("--new-share", type=float, default=0.01)
    parser.add_argument("--child", nargs=1, metavar="TASK")
    parser.add_argument("--no-write", action="store_true", help="Do not update RESULTS.md.")
    args = parser.parse_args()
    n_rows = int(float(args.rows))
    if args.child:
        _child(args.child[0], n_rows, args.new_share)
        return
    tasks = {
        "recompute": "read_transactions + btyd_summary + rfm_table on the whole log",
        "rebuild": "CustomerState built from the whole log",
        "update": f"CustomerState.update with the newest {args.new_share:.0%} of rows",
        "features": "btyd_summary + rfm_table read from the state",
    }
    results = {}
    for task in tasks:
        results[task] = run_isolated(
            __file__, "--child", task, "--rows", args.rows, "--new-share", str(args.new_share),
            timeout=1800,
        )  # fmt: skip
        print(task, results[task], file=sys.stderr)
    lines = [
        "## Customer state: 1 % update vs rebuild (`benchmarks/bench_state.py`)",
        "",
        f"Machine: {platform.machine()}, 2 cores, Python {platform.python_version()}. "
        f"Synthetic log of {n_rows:,} rows (`bench_features.synthetic_log`); the newest "
        f"{args.new_share:.0%} of rows by time is the new batch. One fresh process per row.",
        "",
        "| task | what | seconds | peak GiB | share of rebuild | share of recompute |",
        "|---|---|---:|---:|---:|---:|",
    ]
    rebuild = results["rebuild"].get("seconds", float("nan"))
    recompute = results["recompute"].get("seconds", float("nan"))
    for task, what in tasks.items():
        r = results[task]
        if "error" in r:
            lines.append(f"| {task} | {what} | error: {r['error']} | | | |")
            continue
        lines.append(
            f"| {task} | {what} | {r['seconds']:.2f} | {gib(r['peak_bytes'])} | "
            f"{r['seconds'] / rebuild:.3f} | {r['seconds'] / recompute:.3f} |"
        )
    update = results["update"]
    if "rows" in update:
        lines += [
            "",
            f"The update added {update['rows']:,} rows touching {update['touched']:,} "
            f"customers. Target: an update takes at most a tenth of a full rebuild (never "
            "more than a fifth).",
        ]
    text = "\n".join(lines)
    print(text)
    if not args.no_write:
        write_section("bench_state", text)


if __name__ == "__main__":
    main()
