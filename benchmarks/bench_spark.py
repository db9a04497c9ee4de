"""End to end on Spark local[2] against the one-machine (DuckDB + pandas) path, same log.

Usage::

    python benchmarks/bench_spark.py --rows 1e7 --folder /tmp/rfmml-spark-bench
    python benchmarks/bench_spark.py --rows 1e8 --driver-memory 6g   # the full-size run

The log (generated once, in chunks, by ``bench_pipeline.generate``; about 0.36
customers per row) is a Parquet file. Each engine runs in a fresh process:

- ``duckdb``: the job of ``rfmml predict`` on one machine (``bench_pipeline``'s
  "after" cell: scan, features in one pass, BG/NBD + Gamma-Gamma, rfm11 rules,
  ``score_customers``, Parquet + CSV);
- ``spark``: the same job inside Spark (``local[2]``, a session from
  :func:`rfmml.spark_run.spark_session`, so with its defaults): features, rule
  segments with edges computed in Spark, fits on the distinct summary rows,
  ``score_customers`` by ``mapInPandas``, Parquet partitioned by segment.

Time is wall time of each stage (Spark stages end on an action: features are
cached and counted, the table is written); CPU time is that of the process
tree. Memory is the peak resident set size of the whole process tree (for
Spark: the Python driver, the JVM and its Python workers) above its baseline
after start-up, sampled every 20 ms. The load average of the machine before
and after each engine is recorded with the results.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import threading
import time
import warnings
from pathlib import Path
from typing import Any

import psutil

sys.path.insert(0, str(Path(__file__).parent))
from _harness import gib, run_isolated, write_section  # noqa: E402
from bench_pipeline import generate  # noqa: E402


class TreeMemory:
    """Peak RSS and CPU time of this process and all its descendants (JVM, Python workers).

    CPU time is the last seen total of each process of the tree (sampled with
    the memory), so a Python worker that exits still counts what it used.
    """

    def __init__(self, interval: float = 0.02) -> None:
        self.interval = interval
        self.peak = 0
        self._cpu: dict[int, float] = {}
        self._stop = threading.Event()

    def _procs(self) -> list[psutil.Process]:
        return [self._proc, *self._proc.children(recursive=True)]

    def _rss(self) -> int:
        total = jvm = workers = 0
        for proc in self._procs():
            try:
                rss = proc.memory_info().rss
                times = proc.cpu_times()
                self._cpu[proc.pid] = times.user + times.system
                if proc.pid != self._proc.pid:
                    if proc.name() == "java":
                        jvm += rss
                    else:
                        workers += rss
            except psutil.Error:
                continue
            total += rss
        self.peak_jvm = max(getattr(self, "peak_jvm", 0), jvm)
        self.peak_workers = max(getattr(self, "peak_workers", 0), workers)
        return total

    @property
    def cpu(self) -> float:
        """CPU seconds of the tree so far."""
        return sum(self._cpu.values())

    def __enter__(self) -> TreeMemory:
        self._proc = psutil.Process()
        self.base = self._rss()
        self.base_cpu = self.cpu
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def _sample(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, self._rss())
            time.sleep(self.interval)

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self._rss()


def _spark_child(path: Path, out: Path, driver_memory: str, partitions: int) -> None:
    os.environ["PYSPARK_PYTHON"] = sys.executable
    root = str(Path(__file__).resolve().parents[1])
    os.environ["PYTHONPATH"] = os.pathsep.join(
        p for p in (root, os.environ.get("PYTHONPATH", "")) if p
    )
    warnings.simplefilter("ignore")
    from rfmml.spark_run import spark_session

    config = {
        "spark.ui.enabled": "false",
        "spark.driver.memory": driver_memory,
        # Spark's default: the fits collect the distinct summary rows (daily: 55 MB at 10M
        # rows, more at 30M); the table (GBs at these sizes) must never come back
        "spark.driver.maxResultSize": "1g",
        "spark.executorEnv.PYTHONPATH": os.environ["PYTHONPATH"],
    }
    if partitions:
        config["spark.sql.shuffle.partitions"] = str(partitions)
    # rfmml's session defaults (rfmml.spark_run.SESSION_DEFAULTS) plus the above
    spark = spark_session("local[2]", app_name="rfmml-bench", config=config)
    spark.sparkContext.setLogLevel("ERROR")
    from rfmml.campaign import score_customers
    from rfmml.campaign._spark import write_spark_predictions
    from rfmml.features import btyd_summary, rfm_table
    from rfmml.models import BetaGeoNBD, GammaGamma
    from rfmml.segments import RuleSegmenter

    stages: dict[str, dict[str, float]] = {}
    with TreeMemory() as mem:
        start = time.perf_counter()

        def stage(name: str, fn: Any) -> Any:
            t0, cpu0 = time.perf_counter(), mem.cpu
            value = fn()
            stages[name] = {"seconds": time.perf_counter() - t0, "cpu": mem.cpu - cpu0,
                            "peak_bytes": mem.peak - mem.base}  # fmt: skip
            return value

        tx = spark.read.parquet(str(path))

        def features() -> tuple[Any, Any]:
            f = rfm_table(tx).cache()
            s = btyd_summary(tx, freq="D").cache()
            f.count()
            s.count()
            return f, s

        feats, summary = stage("features (RFM table + BTYD summary, cached)", features)
        models = stage(
            "BG/NBD + Gamma-Gamma fits (distinct rows collected)",
            lambda: (BetaGeoNBD().fit(summary), GammaGamma(zero_spend="exclude").fit(summary)),
        )
        rules = stage("rule segments (rfm11 fit, edges in Spark)",
                      lambda: RuleSegmenter("rfm11").fit(feats))  # fmt: skip
        table = score_customers(feats, summary, rule_segmenter=rules, purchase_model=models[0],
                                gamma_gamma=models[1], horizon=30, freq="D")  # fmt: skip
        stage("score_customers (mapInPandas) + Parquet by segment",
              lambda: write_spark_predictions(table, out / "spark", fingerprints={}))  # fmt: skip
        seconds = time.perf_counter() - start
    n = int(models[0].n_customers_)
    print(json.dumps({"stages": stages, "seconds": seconds, "cpu": mem.cpu - mem.base_cpu,
                      "peak_bytes": mem.peak - mem.base, "customers": n,
                      "peak_jvm": mem.peak_jvm, "peak_workers": mem.peak_workers,
                      "distinct_rows": models[0].n_unique_rows_}))  # fmt: skip
    spark.stop()


def _cpu(cell: dict) -> str:
    return f"{cell['cpu']:.1f}" if "cpu" in cell else ""


def _table(n: int, results: dict[str, dict]) -> str:
    spark, duck = results.get("spark", {}), results.get("duckdb", {})
    customers = spark.get("customers", duck.get("customers", 0))
    lines = [f"### {n:,} rows ({customers:,} customers)", "",
             "| engine | stage | seconds | CPU s | peak GiB |",
             "|---|---|---:|---:|---:|"]  # fmt: skip
    for label, r in (("DuckDB + pandas", duck), ("Spark local[2]", spark)):
        if "error" in r or not r:
            lines.append(f"| {label} | failed: {r.get('error', 'not run')} | | | |")
            continue
        for name, cell in r["stages"].items():
            lines.append(f"| {label} | {name} | {cell['seconds']:.1f} | {_cpu(cell)} | "
                         f"{gib(cell['peak_bytes'])} |")  # fmt: skip
        lines.append(f"| **{label}** | **whole job** | **{r['seconds']:.1f}** | "
                     f"**{_cpu(r)}** | **{gib(r['peak_bytes'])}** |")  # fmt: skip
    lines.append("")
    if duck.get("seconds") and spark.get("seconds"):
        ratio = f"Spark / DuckDB: {spark['seconds'] / duck['seconds']:.2f}x wall time"
        if duck.get("cpu") and spark.get("cpu"):
            ratio += f", {spark['cpu'] / duck['cpu']:.2f}x CPU time"
        lines.append(ratio + f", {spark['peak_bytes'] / duck['peak_bytes']:.2f}x peak memory.")
    loads = [f"{e} {r['load'][0]:.1f} -> {r['load'][1]:.1f}" for e, r in results.items()
             if "load" in r]  # fmt: skip
    if loads:
        lines.append("Load average (1 min) before -> after each engine: " + "; ".join(loads) + ".")
    if "peak_jvm" in spark:
        lines.append(f"Spark's largest resident sizes (not above a baseline): the JVM "
                     f"{gib(spark['peak_jvm'])} GiB, the Python workers and daemon together "
                     f"{gib(spark['peak_workers'])} GiB.")  # fmt: skip
    if "distinct_rows" in spark:
        lines.append(f"Collected by the Spark fit: {spark['distinct_rows']:,} distinct "
                     f"(frequency, recency, T) rows for {customers:,} customers.")  # fmt: skip
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", default="1e7", help="log size(s), e.g. 1e7 or 1e7,1e8")
    parser.add_argument("--folder", default="/tmp/rfmml-spark-bench")
    parser.add_argument("--engines", default="duckdb,spark")
    parser.add_argument("--driver-memory", default="4g")
    parser.add_argument("--partitions", type=int, default=0,
                        help="spark.sql.shuffle.partitions (0: the session default)")  # fmt: skip
    parser.add_argument("--timeout", type=float, default=7200)
    parser.add_argument("--child", nargs=2, metavar=("PATH", "OUT"))
    args = parser.parse_args()
    if args.child:
        _spark_child(Path(args.child[0]), Path(args.child[1]), args.driver_memory,
                     args.partitions)  # fmt: skip
        return
    folder = Path(args.folder)
    folder.mkdir(parents=True, exist_ok=True)
    pipeline = str(Path(__file__).with_name("bench_pipeline.py"))
    sections = []
    for n in [int(float(s)) for s in args.rows.split(",") if s]:
        path = folder / f"log_{n}.parquet"
        if not path.exists():
            generate(n, path)
            print(f"wrote {path}", flush=True)
        out = folder / f"out_{n}"
        out.mkdir(exist_ok=True)
        results: dict[str, dict] = {}
        for engine in [e for e in args.engines.split(",") if e]:
            load = os.getloadavg()[0]
            if engine == "duckdb":
                results[engine] = run_isolated(pipeline, "--child", "after", str(path), str(out),
                                               timeout=args.timeout)  # fmt: skip
            else:
                results[engine] = run_isolated(
                    __file__, "--child", str(path), str(out), "--driver-memory",
                    args.driver_memory, "--partitions", str(args.partitions),
                    timeout=args.timeout,
                )  # fmt: skip
            results[engine]["load"] = [load, os.getloadavg()[0]]
            print(engine, n, json.dumps(results[engine]), flush=True)
        sections.append(_table(n, results))
    head = (
        f"Machine: {platform.machine()}, 2 cores shared with other jobs, Python "
        f"{platform.python_version()}; run {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}. "
        "One fresh process per engine, one run each; memory is the peak RSS of the process "
        "tree (driver, JVM, Python workers for Spark) above its baseline; CPU s is the CPU "
        "time of that tree (DuckDB: the process, all threads)."
    )
    write_section(f"bench_spark_{args.rows}", head + "\n\n" + "\n\n".join(sections))


if __name__ == "__main__":
    main()
