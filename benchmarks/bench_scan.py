"""``scan_transactions`` of a Parquet log on its own: before (another checkout) and after.

Usage::

    flock /tmp/rfmml-bigbench.lock python benchmarks/bench_scan.py --sizes 1e6,1e7 \\
        --before /path/to/old/checkout [--before-label TEXT] --runs 3

The logs are those of ``bench_pipeline.py`` (``--folder``, ``log_<n>.parquet``,
written there with ``--generate``). Cases: ``plain`` is the call of the
streamed job (``scan_transactions(path)``: nothing to remove in these logs);
``cut`` also removes rows (``observation_end`` half a year before the last
one, ``drop_duplicates=True``), so the cleaned rows are a copy of part of
the file.

Each run is a fresh process with the settings of the ``rfmml`` command
(transparent huge pages off); 'before' imports rfmml from ``--before``,
'after' from this checkout, alternating (before first in odd runs, after
first in even ones). Wall and CPU seconds (the process's, all threads) of
the call; memory is the process's peak resident size (VmHWM, imports
included). The first run of each side also writes the cleaned table (Arrow,
sorted by the log's ``order_by``) and the cleaning report, and the section
says whether the two sides are equal. Written to ``bench_scan_passes`` of
RESULTS.md.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import time
import warnings
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from _harness import gib, run_isolated, write_section  # noqa: E402
from bench_pipeline import _process_settings, _status_kib  # noqa: E402

CASES: dict[str, dict] = {
    "plain": {},
    "cut": {"observation_end": "2023-06-30", "drop_duplicates": True},
}


def _child(path: Path, case: str, dump: str) -> None:
    """One call, timed; with ``dump``, the cleaned table and the report written there."""
    import pyarrow as pa

    from rfmml.data import scan_transactions

    warnings.simplefilter("ignore")
    start, cpu = time.perf_counter(), time.process_time()
    log, report = scan_transactions(path, **CASES[case])
    seconds, cpu = time.perf_counter() - start, time.process_time() - cpu
    peak = _status_kib("VmHWM") * 1024
    try:
        if dump:
            table = log.connection.sql(
                f"SELECT * FROM {log.table} ORDER BY {log.order_by}"
            ).to_arrow_table()
            with (
                pa.OSFile(dump + ".arrow", "wb") as sink,
                pa.ipc.new_file(sink, table.schema) as writer,
            ):
                writer.write_table(table)
            described = log.connection.sql(f"DESCRIBE {log.table}").fetchall()
            Path(dump + ".json").write_text(json.dumps({
                "report": report.to_frame().to_json(orient="split"),
                "notes": report.notes,
                "rows": [report.rows_in, report.rows_out],
                "layout": [list(map(str, r[:2])) for r in described],
                "table": log.table,
                "order_by": log.order_by,
            }))  # fmt: skip
    finally:
        log.close()
    print(json.dumps({"seconds": seconds, "cpu": cpu, "peak_bytes": peak,
                      "rows_out": report.rows_out}))  # fmt: skip


def _same(folder: Path, stem: str) -> str:
    """Whether the two sides' dumps are equal (table with its schema; report)."""
    import pyarrow as pa

    tables, meta = [], []
    for side in ("before", "after"):
        with pa.memory_map(str(folder / f"{stem}_{side}.arrow")) as source:
            tables.append(pa.ipc.open_file(source).read_all())
        meta.append(json.loads((folder / f"{stem}_{side}.json").read_text()))
    table_ok = tables[0].schema.equals(tables[1].schema) and tables[0].equals(tables[1])
    report_ok = meta[0] == meta[1]
    words = ("DIFFERS", "equal")
    return f"table {words[table_ok]}, report {words[report_ok]}"


def _median(runs: list[dict], key: str) -> float:
    return statistics.median(r[key] for r in runs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sizes", default="1e6,1e7")
    parser.add_argument("--folder", default="/tmp/rfmml-bench")
    parser.add_argument("--before", required=False, default="", metavar="CHECKOUT")
    parser.add_argument("--before-label", default="", help="how the section names --before")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--cases", default="plain,cut")
    parser.add_argument("--child", nargs=3, metavar=("PATH", "CASE", "DUMP"))
    args = parser.parse_args()
    if args.child:
        _process_settings()
        _child(Path(args.child[0]), args.child[1], args.child[2])
        return
    this = str(Path(__file__).resolve().parents[1])
    sides = {"before": args.before, "after": this} if args.before else {"after": this}
    folder = Path(args.folder)
    dumps = folder / "scan_check"
    dumps.mkdir(parents=True, exist_ok=True)
    rows = []
    loads = [os.getloadavg()[0]]
    for n in [int(float(s)) for s in args.sizes.split(",") if s]:
        path = folder / f"log_{n}.parquet"
        for case in [c for c in args.cases.split(",") if c]:
            runs: dict[str, list[dict]] = {side: [] for side in sides}
            stem = f"{n}_{case}"
            for k in range(args.runs):
                order = list(sides) if k % 2 == 0 else list(reversed(sides))
                for side in order:
                    dump = str(dumps / f"{stem}_{side}") if k == 0 else ""
                    env_path = os.environ.get("PYTHONPATH")
                    os.environ["PYTHONPATH"] = sides[side]
                    try:
                        result = run_isolated(__file__, "--child", str(path), case, dump,
                                              timeout=1800)  # fmt: skip
                    finally:
                        if env_path is None:
                            os.environ.pop("PYTHONPATH")
                        else:
                            os.environ["PYTHONPATH"] = env_path
                    result["load"] = os.getloadavg()[0]
                    print(n, case, side, k, json.dumps(result), flush=True)
                    if "error" in result:
                        raise SystemExit(f"{side} failed: {result['error']}")
                    runs[side].append(result)
                    loads.append(result["load"])
            check = _same(dumps, stem) if len(sides) == 2 else ""
            rows.append((n, case, runs, check))
    shutil.rmtree(dumps, ignore_errors=True)
    lines = ["| rows | case | side | wall s | CPU s | peak RSS GiB | runs (wall / CPU s) | check |",
             "|---:|---|---|---:|---:|---:|---|---|"]  # fmt: skip
    for n, case, runs, check in rows:
        for side, rs in runs.items():
            each = ", ".join(f"{r['seconds']:.2f} / {r['cpu']:.2f}" for r in rs)
            lines.append(f"| {n:,} | {case} | {side} | {_median(rs, 'seconds'):.2f} | "
                         f"{_median(rs, 'cpu'):.2f} | {gib(_median(rs, 'peak_bytes'))} | {each} | "
                         f"{check if side == 'after' else ''} |")  # fmt: skip
        if len(runs) == 2:
            b, a = runs["before"], runs["after"]
            lines.append(
                f"| {n:,} | {case} | after / before | "
                f"{_median(a, 'seconds') / _median(b, 'seconds'):.2f}x | "
                f"{_median(a, 'cpu') / _median(b, 'cpu'):.2f}x | "
                f"{_median(a, 'peak_bytes') / _median(b, 'peak_bytes'):.2f}x | | |"
            )
    before = ""
    if args.before:
        label = args.before_label
        if not label:
            commit = subprocess.run(["git", "-C", args.before, "rev-parse", "--short", "HEAD"],
                                    capture_output=True, text=True).stdout.strip()  # fmt: skip
            label = f"{args.before} (commit {commit})" if commit else args.before
        before = f"'before' imports rfmml from {label}; "
    head = (
        f"Machine: {platform.machine()}, 2 cores, Python {platform.python_version()}; run "
        f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}. `scan_transactions` alone, "
        f"{args.runs} fresh processes per side and cell, alternating; medians. {before}"
        "peak RSS is the process's VmHWM (imports included). `plain`: `scan_transactions(path)`; "
        "`cut`: `observation_end='2023-06-30', drop_duplicates=True`. Check: the cleaned table "
        "(Arrow, sorted by `order_by`, schema included) and the report (rows, counts, notes, "
        "table layout) of the first run of each side."
    )
    load = "Load average (1 min) over the runs: " + ", ".join(f"{v:.1f}" for v in loads) + "."
    write_section("bench_scan_passes", head + "\n\n" + "\n".join(lines) + "\n\n" + load)
    print("\n".join(lines))


if __name__ == "__main__":
    main()
