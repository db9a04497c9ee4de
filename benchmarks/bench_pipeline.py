"""End to end, per stage: a Parquet log to a scored table on disk, against one DuckDB pass.

Usage::

    python benchmarks/bench_pipeline.py --generate 1e7,5e7,1e8 --folder /tmp/rfmml-bench
    python benchmarks/bench_pipeline.py --sizes 1e7 --folder /tmp/rfmml-bench [--before /work/main]
    python benchmarks/bench_pipeline.py --run --sizes 1e7 --before /work/main

``--run`` measures the experiment instead (``rfmml run``: ``evaluate`` then
``record``, one rule segmentation and BG/NBD, MLflow in a fresh SQLite store)
on the same log, 'before' importing rfmml from another checkout and 'after'
from this one; per stage (the run's own progress messages) and whole, wall
and CPU seconds and peak memory as below. Written to the section
``bench_run_scan`` of RESULTS.md.

Logs (generated once, in chunks, never whole in memory): ``customer_id``
(int64), ``timestamp`` (time of day, three years), ``amount`` (log-normal,
cents); about 0.36 customers drawn per row (10M rows: 3.4M customers with
2.9 rows each on average), so most customers buy several times.

Each cell runs in a fresh process. Stages (the job of ``rfmml predict``):
loading and cleaning (``scan_transactions``), the RFM table and the BTYD
summary (``customer_features``, one pass), BG/NBD + Gamma-Gamma fits, rule
segments (rfm11), ``score_customers``, writing Parquet, then CSV; mode
``pandas`` runs ``read_transactions``, ``btyd_summary`` and ``rfm_table``
instead. ``--before CHECKOUT`` runs the same stages with rfmml imported
from another checkout. Wall and CPU seconds per stage; memory is the
process's own high-water mark (VmHWM, reset before each stage) above its
resident size after imports. The reference is one DuckDB ``GROUP BY customer_id`` pass over the same
file (rows, spend, first and last time) written to Parquet, in its own process
in the same run.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import sys
import time
import warnings
from collections.abc import Iterator
from inspect import signature
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from _harness import gib, run_isolated, write_section  # noqa: E402

CHUNK = 5_000_000


def generate(n_rows: int, path: Path, seed: int = 0) -> None:
    """Write a synthetic log of ``n_rows`` rows to ``path`` in chunks."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    rng = np.random.default_rng(seed)
    n_customers = max(int(n_rows * 0.36), 1)
    schema = pa.schema([("customer_id", pa.int64()), ("timestamp", pa.timestamp("us")),
                        ("amount", pa.float64())])  # fmt: skip
    start = np.datetime64("2021-01-01T00:00:00", "us")
    with pq.ParquetWriter(path, schema) as writer:
        for lo in range(0, n_rows, CHUNK):
            n = min(CHUNK, n_rows - lo)
            seconds = rng.integers(0, 3 * 365 * 86_400, n)
            table = pa.table({
                "customer_id": rng.integers(0, n_customers, n),
                "timestamp": start + seconds.astype("timedelta64[s]").astype("timedelta64[us]"),
                "amount": np.round(rng.lognormal(3.0, 1.0, n), 2),
            }, schema=schema)  # fmt: skip
            writer.write_table(table)


#: BG/NBD parameters (days) of ``--log btyd``: about 3.0 rows per customer, 40 % of them
#: buying once, the busiest 1 % 18 times or more over the three years.
BTYD_LOG_PARAMS = {"r": 0.4, "alpha": 80.0, "a": 0.8, "b": 3.0}


def generate_btyd(n_rows: int, path: Path, seed: int = 0) -> None:
    """Write a log drawn from the BG/NBD and Gamma-Gamma processes (``--log btyd``).

    Customers' first purchases spread over two years, observed for three
    (:func:`rfmml.data.simulate_transactions` with :data:`BTYD_LOG_PARAMS` and
    CDNOW's spend parameters), drawn 1M customers at a time until ``n_rows``
    rows; then sorted by time, as an export is, and amounts rounded to cents.
    Unlike the uniform log, every customer has an own purchase rate and may
    drop out, so the BG/NBD fit is not degenerate.
    """
    import pandas as pd
    import pyarrow as pa
    import pyarrow.parquet as pq

    from rfmml.data import simulate_transactions

    rng = np.random.default_rng(seed)
    parts, rows, first_id = [], 0, 0
    while rows < n_rows:
        frame = simulate_transactions(1_000_000, BTYD_LOG_PARAMS, acquisition_days=730.0,
                                      observation_days=1095.0, start="2021-01-01",
                                      random_state=rng)  # fmt: skip
        frame["customer_id"] += first_id
        first_id += 1_000_000
        if rows + len(frame) > n_rows:  # whole customers, at most n_rows rows
            ids = frame["customer_id"].to_numpy()
            frame = frame[ids < ids[n_rows - rows]]
        parts.append(frame)
        rows += len(frame)
    log = pd.concat(parts, ignore_index=True)
    del parts
    order = np.argsort(log["timestamp"].to_numpy(), kind="stable")
    table = pa.table({
        "customer_id": log["customer_id"].to_numpy()[order],
        "timestamp": log["timestamp"].to_numpy().astype("datetime64[us]")[order],
        "amount": np.round(log["amount"].to_numpy()[order], 2),
    })  # fmt: skip
    pq.write_table(table, path, row_group_size=1_000_000)


def log_path(folder: Path, n: int, kind: str) -> Path:
    """The generated log of ``n`` rows of ``kind`` ("uniform" or "btyd") in ``folder``."""
    return folder / (f"log_{n}.parquet" if kind == "uniform" else f"log_{n}_{kind}.parquet")


def _status_kib(field: str) -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise KeyError(field)


def _reset_peak() -> None:
    with open("/proc/self/clear_refs", "w") as refs:  # "5": reset VmHWM to the current RSS
        refs.write("5")


class Stages:
    """Wall and CPU time and peak memory of each stage, and of the whole job.

    Memory is the process's own high-water mark (``VmHWM``, reset before each
    stage through ``/proc/self/clear_refs``) above its resident size when the
    job starts (after imports); CPU time is the process's, all threads.
    """

    def __init__(self) -> None:
        self.rows: dict[str, dict[str, float]] = {}
        self.peak = 0

    def __enter__(self) -> Stages:
        self._base = _status_kib("VmRSS") * 1024
        self._start = time.perf_counter()
        self._cpu = time.process_time()
        return self

    def __exit__(self, *exc: object) -> None:
        self.seconds = time.perf_counter() - self._start
        self.cpu = time.process_time() - self._cpu

    def run(self, name: str, fn: Any) -> Any:
        _reset_peak()
        start, cpu = time.perf_counter(), time.process_time()
        out = fn()
        seconds, cpu = time.perf_counter() - start, time.process_time() - cpu
        peak = _status_kib("VmHWM") * 1024 - self._base
        self.peak = max(self.peak, peak)
        self.rows[name] = {"seconds": seconds, "cpu": cpu, "peak_bytes": peak}
        return out

    def result(self, **extra: Any) -> str:
        return json.dumps({"stages": self.rows, "seconds": self.seconds, "cpu": self.cpu,
                           "peak_bytes": self.peak, **extra})  # fmt: skip


def _process_settings() -> None:
    """The process settings of the ``rfmml`` command (where the measured checkout has them)."""
    import importlib.util

    if importlib.util.find_spec("rfmml._process") is not None:
        from rfmml._process import disable_transparent_huge_pages, huge_pages_wanted

        if not huge_pages_wanted():
            disable_transparent_huge_pages()


def _loaded() -> None:
    """What the ``rfmml`` batch commands do after their imports (where the checkout does it)."""
    import importlib.util

    if importlib.util.find_spec("rfmml._process") is not None:
        from rfmml import _process

        if hasattr(_process, "freeze_loaded_objects"):
            _process.freeze_loaded_objects()
        if hasattr(_process, "single_thread_blas"):
            _process.single_thread_blas()
        if hasattr(_process, "keep_freed_memory"):
            _process.keep_freed_memory()


def _child(mode: str, path: Path, out: Path) -> None:
    import shutil

    import duckdb

    # every cell writes into a new folder (replacing a file is slower on some file systems)
    (out / "groupby.parquet").unlink(missing_ok=True)
    shutil.rmtree(out / mode, ignore_errors=True)

    if mode == "duckdb":
        with Stages() as st:
            st.run(
                "one DuckDB group-by pass",
                lambda: duckdb.sql(
                    f"COPY (SELECT customer_id, count(*) AS n, sum(amount) AS spend, "
                    f"min(timestamp) AS first, max(timestamp) AS last "
                    f"FROM read_parquet('{path}') GROUP BY customer_id) "
                    f"TO '{out / 'groupby.parquet'}' (FORMAT parquet)"
                ),
            )
        print(st.result())
        return
    import importlib.util

    if mode in ("after", "parquet") and importlib.util.find_spec("rfmml.campaign.streaming"):
        _streamed(path, out / mode, ("parquet",) if mode == "parquet" else ("parquet", "csv"))
        return
    from rfmml.campaign import score_customers, write_predictions
    from rfmml.data import read_transactions
    from rfmml.features import btyd_summary, rfm_table
    from rfmml.models import BetaGeoNBD, GammaGamma
    from rfmml.segments import RuleSegmenter

    warnings.simplefilter("ignore")
    with Stages() as st:
        if mode == "pandas":
            new_reader = "engine" in signature(read_transactions).parameters
            options = {"engine": "pandas"} if new_reader else {}
            tx, _ = st.run("read_transactions", lambda: read_transactions(path, **options))
            summary = st.run("btyd_summary", lambda: btyd_summary(tx, freq="D"))
            features = st.run("rfm_table", lambda: rfm_table(tx))
            del tx
        else:
            from rfmml.data import scan_transactions
            from rfmml.features import customer_features

            tx, _ = st.run("scan_transactions", lambda: scan_transactions(path))
            features, summary = st.run(
                "customer_features (RFM + BTYD, one pass)",
                lambda: customer_features(tx, freq="D"),
            )
            tx.close()
        models = st.run("BG/NBD + Gamma-Gamma fits", lambda: (
            BetaGeoNBD().fit(summary), GammaGamma().fit(summary)
        ))  # fmt: skip
        rules = st.run("rule segments (rfm11 fit)", lambda: RuleSegmenter("rfm11").fit(features))
        table = st.run("score_customers", lambda: score_customers(
            features, summary, rule_segmenter=rules, purchase_model=models[0],
            gamma_gamma=models[1], horizon=30, freq="D",
        ))  # fmt: skip
        st.run("write Parquet", lambda: write_predictions(
            table, out / mode, fingerprints={}, formats=("parquet",)))  # fmt: skip
        on_disk = {"seconds": time.perf_counter() - st._start,
                   "cpu": time.process_time() - st._cpu}  # fmt: skip
        st.run("write CSV", lambda: write_predictions(
            table, out / mode, fingerprints={}, formats=("csv",)))  # fmt: skip
    print(st.result(customers=len(table), parquet_on_disk=on_disk))


def _streamed(path: Path, out: Path, formats: tuple[str, ...]) -> None:
    """The streamed job: features in a DuckDB table, scored and written per 1M customers."""
    from rfmml.campaign import ScoringPipeline, streaming
    from rfmml.campaign.streaming import fit_on_table, fit_rule_segmenter, score_features_table
    from rfmml.data import scan_transactions
    from rfmml.features.combined import customer_features_table
    from rfmml.models import BetaGeoNBD, GammaGamma
    from rfmml.segments import RuleSegmenter

    warnings.simplefilter("ignore")
    _loaded()
    with Stages() as st:
        tx, _ = st.run("scan_transactions", lambda: scan_transactions(path))
        table = st.run(
            "customer_features (RFM + BTYD, one pass)",
            lambda: customer_features_table(tx, freq="D"),
        )
        # the log is not read again (the pandas job closes it here): DuckDB frees its rows
        if hasattr(tx, "release"):  # rows held in Arrow or in a DuckDB table
            tx.release()
        else:  # a checkout from before ScannedLog.release
            tx.connection.execute(f"DROP TABLE {tx.table}")
        if hasattr(streaming, "fit_models_on_table"):  # the three fits side by side
            *models, rules = st.run(
                "BG/NBD + Gamma-Gamma fits, rfm11 rules (side by side)",
                lambda: streaming.fit_models_on_table(table, BetaGeoNBD(), GammaGamma(),
                                                      RuleSegmenter("rfm11")),
            )  # fmt: skip
        else:  # a checkout from before fit_models_on_table: one after the other
            models = st.run("BG/NBD + Gamma-Gamma fits", lambda: (
                fit_on_table(BetaGeoNBD(), table), fit_on_table(GammaGamma(), table)
            ))  # fmt: skip
            rules = st.run("rule segments (rfm11 fit)",
                           lambda: fit_rule_segmenter(RuleSegmenter("rfm11"), table))  # fmt: skip
        pipeline = ScoringPipeline(rule_segmenter=rules, purchase_model=models[0],
                                   gamma_gamma=models[1], horizon=30, freq="D",
                                   next_order_window=None, churn_basis="no_purchase")  # fmt: skip
        files = " and ".join({"parquet": "Parquet", "csv": "CSV"}[f] for f in formats)
        written = st.run(
            f"score_customers + write {files} (streamed, 1M customers a chunk)",
            lambda: score_features_table(table, pipeline, out, fingerprints={}, formats=formats),
        )
        tx.close()
    print(st.result(customers=written.n_rows))


def _run_config(path: Path, out: Path) -> dict:
    """The experiment of ``--run``: the last half year held out, rf_grid, BG/NBD, weeks."""
    return {
        "name": "bench_run",
        "calibration_end": "2023-06-30",
        "observation_end": "2023-12-31",
        "freq": "W",
        "n_bootstrap": 0,
        "output_dir": str(out),
        "data": {"source": str(path)},
        "segmentations": [{"name": "rf_grid", "kind": "rules", "scheme": "rf_grid"}],
        "models": {"purchase_models": ["bgnbd"], "horizon": 26},
    }


def _run_child(path: Path, out: Path) -> None:
    """One ``rfmml run`` (evaluate, then record), its stages timed by its progress messages."""
    import shutil

    from rfmml.pipeline import evaluate, record

    warnings.simplefilter("ignore")
    _loaded()  # as rfmml run does after its imports
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    cfg = _run_config(path, out)
    uri = f"sqlite:///{out / 'mlflow.db'}"
    marks: list[tuple[str, float, float, int]] = []

    def step(message: str) -> None:  # closes the previous stage, opens the next
        marks.append((message, time.perf_counter(), time.process_time(),
                      _status_kib("VmHWM") * 1024))  # fmt: skip
        _reset_peak()

    with Stages() as st:
        ev = evaluate(cfg, progress=step)
        step("record: files, MLflow runs, report")
        try:
            record(ev, output_dir=out, tracking_uri=uri)
        finally:
            if hasattr(ev, "close"):
                ev.close()
        step("end")
    for (name, t0, c0, _), (_, t1, c1, peak) in zip(marks, marks[1:], strict=False):
        st.rows[name] = {"seconds": t1 - t0, "cpu": c1 - c0, "peak_bytes": peak - st._base}
    st.peak = max(r["peak_bytes"] for r in st.rows.values())
    print(st.result(customers=len(ev.scoring.predictions) if ev.scoring is not None else 0))


def _run_table(n: int, results: dict[str, dict]) -> str:
    before, after = results.get("before"), results["after"]
    lines = [f"### `rfmml run`, {n:,} rows ({after.get('customers', 0):,} customers)", "",
             "| stage | before s | before CPU s | before GiB | after s | after CPU s | after GiB |",
             "|---|---:|---:|---:|---:|---:|---:|"]  # fmt: skip
    stages_before = before.get("stages", {}) if before else {}
    for name in dict.fromkeys([*stages_before, *after["stages"]]):
        shown = name.replace("/tmp/rfmml-bench/", "")
        lines.append(f"| {shown} | " + " | ".join(
            _cell(stages_before.get(name)) + _cell(after["stages"].get(name))) + " |")  # fmt: skip
    whole = []
    for r in (before, after):
        whole += ["", "", ""] if not r else [f"**{r['seconds']:.1f}**", f"{r['cpu']:.1f}",
                                             f"**{gib(r['peak_bytes'])}**"]  # fmt: skip
    lines.append("| **whole run** | " + " | ".join(whole) + " |")
    if before:
        lines.append(f"| after / before | | | | {after['seconds'] / before['seconds']:.2f}x | "
                     f"{after['cpu'] / before['cpu']:.2f}x | "
                     f"{after['peak_bytes'] / before['peak_bytes']:.2f}x |")  # fmt: skip
    return "\n".join(lines)


def _cell(row: dict | None) -> list[str]:
    if not row:
        return ["", "", ""]
    return [f"{row['seconds']:.2f}", f"{row['cpu']:.2f}", gib(row["peak_bytes"])]


@contextlib.contextmanager
def _pythonpath(path: str | None) -> Iterator[None]:
    """``PYTHONPATH`` set to ``path`` (unchanged for None) for the children started inside."""
    saved = os.environ.get("PYTHONPATH")
    if path is not None:
        os.environ["PYTHONPATH"] = path
    try:
        yield
    finally:
        if saved is None:
            os.environ.pop("PYTHONPATH", None)
        else:
            os.environ["PYTHONPATH"] = saved


def _table(n: int, results: dict[str, dict]) -> str:
    d = results["duckdb"]
    ref, ref_cpu = d["seconds"], d["cpu"]
    lines = [f"### {n:,} rows ({results['after'].get('customers', 0):,} customers)", "",
             "| stage | before s | before CPU s | before GiB | after s | after CPU s | after GiB |",
             "|---|---:|---:|---:|---:|---:|---:|"]  # fmt: skip
    before, after = results.get("before", {}).get("stages", {}), results["after"]["stages"]
    for name in dict.fromkeys([*before, *after]):
        lines.append(f"| {name} | " + " | ".join(_cell(before.get(name)) + _cell(after.get(name)))
                     + " |")  # fmt: skip
    for label, key in (("to Parquet on disk", "parquet_on_disk"), ("whole job (+ CSV)", None)):
        cells = []
        for mode in ("before", "after"):
            r = results.get(mode)
            if not r or (key and key not in r):
                cells += ["", "", ""]
                continue
            part = r[key] if key else r
            peak = max(v["peak_bytes"] for k, v in r["stages"].items() if key is None
                       or k != "write CSV")  # fmt: skip
            cells += [
                f"**{part['seconds']:.2f}** ({part['seconds'] / ref:.1f}x)",
                f"{part['cpu']:.2f} ({part['cpu'] / ref_cpu:.1f}x)",
                gib(peak),
            ]
        lines.append(f"| **{label}** (x the DuckDB pass) | " + " | ".join(cells) + " |")
    if "parquet" in results and "error" not in results["parquet"]:
        r = results["parquet"]
        lines.append(
            "| **to Parquet on disk** (the same job writing Parquet only, run on its own; x the "
            f"DuckDB pass) | | | | **{r['seconds']:.2f}** ({r['seconds'] / ref:.1f}x) | "
            f"{r['cpu']:.2f} ({r['cpu'] / ref_cpu:.1f}x) | {gib(r['peak_bytes'])} |"
        )
    lines.append("| one DuckDB group-by pass to Parquet (reference) | | | | "
                 + " | ".join(_cell(d["stages"]["one DuckDB group-by pass"])) + " |")  # fmt: skip
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sizes", default="1e7")
    parser.add_argument("--generate", default="")
    parser.add_argument("--folder", default="/tmp/rfmml-bench")
    parser.add_argument(
        "--before",
        default="",
        metavar="CHECKOUT",
        help="also run the same stages importing rfmml from this checkout ('before')",
    )
    parser.add_argument(
        "--modes",
        default="duckdb,after",
        help="cells to run: duckdb, after, parquet (the streamed job writing Parquet only), "
        "pandas (read_transactions, btyd_summary and rfm_table; and before with --before)",
    )
    parser.add_argument(
        "--run",
        action="store_true",
        help="measure rfmml run (evaluate + record) instead of the predict job",
    )
    parser.add_argument(
        "--log",
        choices=("uniform", "btyd"),
        default="uniform",
        help="uniform: customers drawn at random per row (every customer alike, no dropout: "
        "a degenerate BG/NBD fit); btyd: drawn from the BG/NBD and Gamma-Gamma processes",
    )
    parser.add_argument("--child", nargs=3, metavar=("MODE", "PATH", "OUT"))
    args = parser.parse_args()
    if args.child:
        _process_settings()
        if args.child[0] == "run":
            _run_child(Path(args.child[1]), Path(args.child[2]))
        else:
            _child(args.child[0], Path(args.child[1]), Path(args.child[2]))
        return
    folder = Path(args.folder)
    folder.mkdir(parents=True, exist_ok=True)
    for n in [int(float(s)) for s in args.generate.split(",") if s]:
        (generate if args.log == "uniform" else generate_btyd)(n, log_path(folder, n, args.log))
        print(f"wrote {log_path(folder, n, args.log)}")
    if args.run:
        _run_cells(args, folder)
        return
    sections = []
    for n in [int(float(s)) for s in args.sizes.split(",") if s]:
        path = log_path(folder, n, args.log)
        out = folder / f"out_{n}" if args.log == "uniform" else folder / f"out_{n}_{args.log}"
        out.mkdir(exist_ok=True)
        results: dict[str, dict] = {}
        loads = [os.getloadavg()[0]]
        modes = [m for m in args.modes.split(",") if m] + (["before"] if args.before else [])
        for mode in dict.fromkeys(modes):
            with _pythonpath(args.before if mode == "before" else None):
                child = "after" if mode == "before" else mode
                results[mode] = run_isolated(__file__, "--child", child, str(path), str(out),
                                             timeout=7200)  # fmt: skip
            print(mode, n, json.dumps(results[mode]), flush=True)
            loads.append(os.getloadavg()[0])
        (out / "results.json").write_text(json.dumps(results))
        if any("error" in r for r in results.values()) or "after" not in results:
            continue
        sections.append(_table(n, results) + "\n\nLoad average (1 min) before and after each "
                        "cell: " + ", ".join(f"{v:.1f}" for v in loads) + ".")  # fmt: skip
    if sections:
        head = (
            f"Machine: {platform.machine()}, 2 cores, Python {platform.python_version()}; "
            f"run {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}. One fresh process per "
            "cell, one run each. "
            + (
                f"'before' runs the same stages with rfmml imported from {args.before}; "
                if args.before
                else ""
            )
            + "memory is the process's VmHWM above its RSS after "
            "imports (reset per stage); CPU is the process's CPU time, all threads."
        )
        suffix = "" if args.log == "uniform" else f"_{args.log}"
        write_section(f"bench_pipeline_{args.sizes}{suffix}", head + "\n\n" + "\n\n".join(sections))


def _run_cells(args: argparse.Namespace, folder: Path) -> None:
    """``--run``: the experiment before (``--before`` checkout) and after, one process each."""
    sections = []
    for n in [int(float(s)) for s in args.sizes.split(",") if s]:
        path = folder / f"log_{n}.parquet"
        results: dict[str, dict] = {}
        loads = [os.getloadavg()[0]]
        for mode in ["before"] * bool(args.before) + ["after"]:
            this = str(Path(__file__).resolve().parents[1])
            with _pythonpath(args.before if mode == "before" else this):
                results[mode] = run_isolated(
                    __file__,
                    "--child",
                    "run",
                    str(path),
                    str(folder / f"run_{n}_{mode}"),
                    timeout=7200,
                )
            print(mode, n, json.dumps(results[mode]), flush=True)
            loads.append(os.getloadavg()[0])
        (folder / f"run_{n}_results.json").write_text(json.dumps(results))
        if any("error" in r for r in results.values()):
            continue
        sections.append(_run_table(n, results) + "\n\nLoad average (1 min) before and after "
                        "each cell: " + ", ".join(f"{v:.1f}" for v in loads) + ".")  # fmt: skip
    if sections:
        head = (
            f"## `rfmml run` on a Parquet log: pandas frame (before) and DuckDB scan (after)\n\n"
            f"Machine: {platform.machine()}, 2 cores, Python {platform.python_version()}; run "
            f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())} with `benchmarks/"
            f"bench_pipeline.py --run --sizes {args.sizes}` under `flock`. One fresh process "
            "per cell: `evaluate` then `record` of one experiment (rf_grid, BG/NBD + "
            "Gamma-Gamma, weekly, holdout 2023-07 to 2023-12, `n_bootstrap = 0`, MLflow in a new "
            "SQLite store). 'before' imports rfmml from "
            f"{args.before or '(not run)'}, 'after' from this checkout. Stages are the run's "
            "progress messages; memory is the process's VmHWM above its RSS after imports "
            "(reset per stage); CPU is the process's CPU time, all threads."
        )
        write_section("bench_run_scan", head + "\n\n" + "\n\n".join(sections))


if __name__ == "__main__":
    main()
