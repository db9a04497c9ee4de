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
included). Up to ``--check-up-to`` rows the first run of each side also
writes the cleaned table (Arrow, sorted by the log's ``order_by``) and the
cleaning report, and the section says whether the two sides are equal. The
cells are kept in ``<folder>/bench_scan_results.json`` (``--keep`` adds to
them, e.g. one run at 100M rows) and written to ``bench_scan_passes`` of
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


def _same(folder: Path) -> str:
    """Whether the two sides' dumps are equal (table with its schema; report)."""
    import pyarrow as pa

    tables, meta = [], []
    for side in ("before", "after"):
        with pa.memory_map(str(folder / f"{side}.arrow")) as source:
            tables.append(pa.ipc.open_file(source).read_all())
        meta.append(json.loads((folder / f"{side}.json").read_text()))
    table_ok = tables[0].schema.equals(tables[1].schema) and tables[0].equals(tables[1])
    report_ok = meta[0] == meta[1]
    words = ("DIFFERS", "equal")
    return f"table {words[table_ok]}, report {words[report_ok]}"


def _median(runs: list[dict], key: str) -> float:
    return statistics.median(r[key] for r in runs)


def _measure(path: Path, case: str, sides: dict[str, str], runs: int, dumps: Path | None) -> dict:
    """``runs`` alternating runs of each side; with ``dumps``, the check of the first ones."""
    cell: dict = {"runs": {side: [] for side in sides}, "loads": [os.getloadavg()[0]]}
    for k in range(runs):
        for side in list(sides) if k % 2 == 0 else list(reversed(sides)):
            dump = str(dumps / side) if dumps is not None and k == 0 else ""
            saved = os.environ.get("PYTHONPATH")
            os.environ["PYTHONPATH"] = sides[side]
            try:
                result = run_isolated(__file__, "--child", str(path), case, dump, timeout=1800)
            finally:
                if saved is None:
                    os.environ.pop("PYTHONPATH")
                else:
                    os.environ["PYTHONPATH"] = saved
            print(path.name, case, side, k, json.dumps(result), flush=True)
            if "error" in result:
                raise SystemExit(f"{side} failed: {result['error']}")
            cell["runs"][side].append(result)
            cell["loads"].append(os.getloadavg()[0])
    if dumps is not None and len(sides) == 2:
        cell["check"] = _same(dumps)
    return cell


def _section(cells: dict[str, dict]) -> str:
    lines = ["| rows | case | side | wall s | CPU s | peak RSS GiB | runs (wall / CPU s) | "
             "check | load (1 min) |", "|---:|---|---|---:|---:|---:|---|---|---|"]  # fmt: skip
    for cell in sorted(cells.values(), key=lambda c: (c["n"], c["case"])):
        n, case, runs = cell["n"], cell["case"], cell["runs"]
        loads = ", ".join(f"{v:.1f}" for v in cell["loads"])
        for side, rs in runs.items():
            each = ", ".join(f"{r['seconds']:.2f} / {r['cpu']:.2f}" for r in rs)
            extra = [cell.get("check", ""), loads] if side == "after" else ["", ""]
            lines.append(f"| {n:,} | {case} | {side} | {_median(rs, 'seconds'):.2f} | "
                         f"{_median(rs, 'cpu'):.2f} | {gib(_median(rs, 'peak_bytes'))} | {each} | "
                         + " | ".join(extra) + " |")  # fmt: skip
        if len(runs) == 2:
            b, a = runs["before"], runs["after"]
            lines.append(
                f"| {n:,} | {case} | after / before | "
                f"{_median(a, 'seconds') / _median(b, 'seconds'):.2f}x | "
                f"{_median(a, 'cpu') / _median(b, 'cpu'):.2f}x | "
                f"{_median(a, 'peak_bytes') / _median(b, 'peak_bytes'):.2f}x | | | |"
            )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sizes", default="1e6,1e7")
    parser.add_argument("--folder", default="/tmp/rfmml-bench")
    parser.add_argument("--before", required=False, default="", metavar="CHECKOUT")
    parser.add_argument("--before-label", default="", help="how the section names --before")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--cases", default="plain,cut")
    parser.add_argument(
        "--check-up-to", type=float, default=2e7, help="compare the two sides' tables up to here"
    )
    parser.add_argument(
        "--keep", action="store_true", help="keep the cells of earlier runs (other sizes, cases)"
    )
    parser.add_argument("--child", nargs=3, metavar=("PATH", "CASE", "DUMP"))
    args = parser.parse_args()
    if args.child:
        _process_settings()
        _child(Path(args.child[0]), args.child[1], args.child[2])
        return
    this = str(Path(__file__).resolve().parents[1])
    sides = {"before": args.before, "after": this} if args.before else {"after": this}
    folder = Path(args.folder)
    store = folder / "bench_scan_results.json"
    cells = json.loads(store.read_text()) if args.keep and store.exists() else {}
    for n in [int(float(s)) for s in args.sizes.split(",") if s]:
        for case in [c for c in args.cases.split(",") if c]:
            dumps = folder / "scan_check" if n <= args.check_up_to else None
            if dumps is not None:
                dumps.mkdir(parents=True, exist_ok=True)
            try:
                cell = _measure(folder / f"log_{n}.parquet", case, sides, args.runs, dumps)
            finally:
                if dumps is not None:
                    shutil.rmtree(dumps, ignore_errors=True)
            cells[f"{n} {case}"] = {"n": n, "case": case, **cell}
            store.write_text(json.dumps(cells))
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
        "fresh processes alternating between the sides (runs listed); medians. "
        f"{before}peak RSS is the process's VmHWM (imports included). `plain`: "
        "`scan_transactions(path)` (the streamed job's call; nothing to remove); `cut`: "
        "`observation_end='2023-06-30', drop_duplicates=True` (a sixth of the rows removed). "
        "Check: the cleaned table (Arrow, sorted by `order_by`, schema included) and the report "
        "(rows, counts, notes, table layout) of the first run of each side. Load: the 1-minute "
        "load average before the cell and after each run."
    )
    write_section("bench_scan_passes", head + "\n\n" + _section(cells))
    print(_section(cells))


if __name__ == "__main__":
    main()
