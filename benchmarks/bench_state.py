"""Customer state: a 1 % update against a full rebuild, on a 10M-row log.

Usage: python benchmarks/bench_state.py [--rows 1e7] [--new-share 0.01]

The log is ``bench_features.synthetic_log`` (about one customer per three rows,
timestamps over three years, shuffled) with a ``channel`` column (``web`` or
``shop`` by a fixed rule on the row, so most customers buy in both). The
newest ``--new-share`` of the rows by time is the new batch; the rest is the
existing log. Measured, each in a fresh process (wall seconds and peak extra
resident memory):

- ``recompute``: what rfmml does without a state, every time: read and clean the
  whole log (:func:`rfmml.data.read_transactions`), then ``btyd_summary`` and
  ``rfm_table`` on it;
- ``rebuild``: a new :class:`~rfmml.features.CustomerState` built from the
  whole log in one update;
- ``update``: the same state built from the existing log (not timed), then the
  new batch applied (timed);
- ``features``: ``btyd_summary`` + ``rfm_table`` read from that state;

and the same with ``group="channel"``: ``group recompute`` (the functions per
customer and channel on the whole log), ``group rebuild`` and ``group update``
(a state with a group column keeps per-customer and per-(customer, channel)
aggregates), ``group features`` (read from those aggregates) and ``group
features from rows`` (the same frames computed from the stored transactions,
which is what a state did before it kept per-group aggregates); and with
returns: ``net rebuild`` and ``net update`` of a state with
``negative_amounts="net"`` on the log plus returns (3 % of the purchases, half
their value, 1 to 30 days later), each netted against the customer's purchase
whichever batch it is in.

``--save FILE`` writes the measurements as JSON; ``--reuse FILE`` takes the
tasks found there from it instead of measuring them again.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).parent))
from _harness import gib, measure, run_isolated, write_section  # noqa: E402
from bench_features import synthetic_log  # noqa: E402


def _split(n_rows: int, share: float, returns: bool = False) -> tuple[pd.DataFrame, pd.DataFrame]:
    tx = synthetic_log(n_rows)
    tx["channel"] = np.where(tx["timestamp"].dt.second % 3 == 0, "web", "shop")
    if returns:
        rng = np.random.default_rng(1)
        bought = tx.sample(frac=0.03, random_state=2)
        later = pd.to_timedelta(rng.integers(1, 31, len(bought)), unit="D")
        back = bought.assign(amount=-(bought["amount"] / 2).round(2),
                             timestamp=bought["timestamp"] + later)  # fmt: skip
        tx = pd.concat([tx, back], ignore_index=True)
    cut = tx["timestamp"].quantile(1 - share)
    new = tx["timestamp"] > cut
    return tx.loc[~new], tx.loc[new]


def _child(task: str, n_rows: int, share: float) -> None:
    from rfmml.data import read_transactions
    from rfmml.features import CustomerState, btyd_summary, rfm_table

    grouped = task.startswith("group ")
    net = task.startswith("net ")
    step = task.removeprefix("group ").removeprefix("net ")
    group = "channel" if grouped else None
    policy = "net" if net else "drop"
    old, new = _split(n_rows, share, returns=net)
    if not grouped:
        old, new = old.drop(columns="channel"), new.drop(columns="channel")
    folder = Path(tempfile.mkdtemp(prefix="rfmml-bench-state-"))
    path = folder / "state.duckdb"
    extra: dict = {}
    if step in ("recompute", "rebuild"):
        full = pd.concat([old, new], ignore_index=True)
        del old, new
        if step == "recompute":

            def run() -> None:
                tx, _ = read_transactions(full, group=group)
                btyd_summary(tx, freq="D", group=group)
                rfm_table(tx, group=group)

        else:

            def run() -> None:
                with CustomerState.create(path, group=group, negative_amounts=policy) as state:
                    state.update(full)

        result = measure(run)
        if step == "rebuild":
            extra["file_mib"] = path.stat().st_size / 2**20
    else:
        with CustomerState.create(path, group=group, negative_amounts=policy) as state:
            state.update(old)
        del old
        state = CustomerState.open(path)
        if step == "update":
            outcome: dict = {}

            def run() -> None:
                update = state.update(new)
                outcome.update(rows=update.rows_added, touched=update.customers_touched)

            result = measure(run)
            extra.update(outcome)
        elif step == "features from rows":
            from rfmml.features.state import _fetch

            state.update(new)
            end = state.last_timestamp
            rows = state.connection.sql("SELECT * EXCLUDE (_batch) FROM rfmml_transactions")
            keys = ["customer_id", "channel"]
            result = measure(  # what CustomerState did with group= before: the same frames
                lambda: (
                    _fetch(btyd_summary(rows, end, "D", group), keys),
                    rfm_table(rows, end, group).order("customer_id, channel").df().set_index(keys),
                )
            )
        else:
            state.update(new)
            result = measure(
                lambda: (state.btyd_summary(freq="D", group=group), state.rfm_table(group=group))
            )
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
    parser.add_argument("--save", type=Path, help="Write the measurements to this JSON file.")
    parser.add_argument("--reuse", type=Path, help="Take the tasks measured in this JSON file.")
    args = parser.parse_args()
    n_rows = int(float(args.rows))
    if args.child:
        _child(args.child[0], n_rows, args.new_share)
        return
    share = f"{args.new_share:.0%}"
    tasks = {
        "recompute": "read_transactions + btyd_summary + rfm_table on the whole log",
        "rebuild": "CustomerState built from the whole log",
        "update": f"CustomerState.update with the newest {share} of rows",
        "features": "btyd_summary + rfm_table read from the state",
        "group recompute": "the same per customer and channel, on the whole log",
        "group rebuild": "CustomerState with group='channel' built from the whole log",
        "group update": f"its update with the newest {share} of rows",
        "group features": "btyd_summary + rfm_table(group='channel') from the state",
        "group features from rows": "the same from the stored rows (the state before)",
        "net rebuild": "CustomerState with negative_amounts='net', log plus 3 % returns",
        "net update": f"its update with the newest {share} of rows",
    }
    results = json.loads(args.reuse.read_text()) if args.reuse else {}
    loads = results.pop("_loads", [])
    for task in tasks:
        if task in results:
            continue
        loads.append(os.getloadavg()[0])
        results[task] = run_isolated(
            __file__, "--child", task, "--rows", args.rows, "--new-share", str(args.new_share),
            timeout=1800,
        )  # fmt: skip
        print(task, results[task], file=sys.stderr)
    loads.append(os.getloadavg()[0])
    if args.save:
        args.save.write_text(json.dumps({**results, "_loads": loads}, indent=1))
    lines = [
        "## Customer state: 1 % update vs rebuild (`benchmarks/bench_state.py`)",
        "",
        f"Machine: {platform.machine()}, 2 cores, Python {platform.python_version()}. "
        f"Synthetic log of {n_rows:,} rows (`bench_features.synthetic_log`, plus a `channel` "
        f"column); the newest {share} of rows by time is the new batch. One fresh process "
        f"per row. Shared machine: the 1-minute load average was {min(loads):.1f} to "
        f"{max(loads):.1f} on the 2 cores during the run, so absolute times vary; compare "
        "rows within the table.",
        "",
        "| task | what | seconds | peak GiB | share of rebuild | share of recompute |",
        "|---|---|---:|---:|---:|---:|",
    ]
    for task, what in tasks.items():
        r = results[task]
        if "error" in r:
            lines.append(f"| {task} | {what} | error: {r['error']} | | | |")
            continue
        base = task.split(" ")[0] + " " if task.startswith(("group ", "net ")) else ""
        rebuild = results[base + "rebuild"].get("seconds", float("nan"))
        recompute = results.get(base + "recompute", {}).get("seconds")
        of_recompute = f"{r['seconds'] / recompute:.3f}" if recompute else ""
        lines.append(
            f"| {task} | {what} | {r['seconds']:.2f} | {gib(r['peak_bytes'])} | "
            f"{r['seconds'] / rebuild:.3f} | {of_recompute} |"
        )
    lines.append("")
    for name in ("update", "group update", "net update"):
        update = results[name]
        if "rows" in update:
            lines.append(
                f"The {name} added {update['rows']:,} rows touching {update['touched']:,} "
                "customers."
            )
    lines += [
        "Target: an update takes at most a tenth of a full rebuild (never more than a fifth). "
        "Shares in the group and net rows are of the group (net) rebuild and recompute.",
    ]
    text = "\n".join(lines)
    print(text)
    if not args.no_write:
        write_section("bench_state", text)


if __name__ == "__main__":
    main()
