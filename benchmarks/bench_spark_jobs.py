"""Spark jobs and time of one Spark experiment run (CDNOW, the config of the evaluation tests).

Usage::

    python benchmarks/bench_spark_jobs.py [--runs 2] [--folder /tmp/rfmml-spark-jobs]

The run is :func:`rfmml.spark_run.run_spark_experiment` on CDNOW written as
Parquet (69,659 rows), weekly, purchase models BG/NBD, MBG/NBD and Pareto/NBD,
Gamma-Gamma, intervals 0.9 with 40 draws, on a ``local[2]`` session with the
settings of the tests' session. It runs ``--runs`` times in one process (the
first warms the session up); each run reports the Spark jobs it launched
(counted with the status tracker), its wall time and the CPU time of the
process tree (the Python driver, the JVM and its Python workers), with the
1-minute load average before it.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import psutil


def _tree_cpu() -> float:
    """CPU seconds (user + system) of this process and its descendants so far."""
    me = psutil.Process()
    total = 0.0
    for proc in [me, *me.children(recursive=True)]:
        try:
            times = proc.cpu_times()
        except psutil.Error:
            continue
        total += times.user + times.system
    return total


def _session():
    from pyspark.sql import SparkSession

    import rfmml

    root = str(Path(rfmml.__file__).resolve().parents[1])  # the same rfmml on the workers
    os.environ["PYTHONPATH"] = os.pathsep.join(
        p for p in (root, os.environ.get("PYTHONPATH", "")) if p
    )
    os.environ["PYSPARK_PYTHON"] = sys.executable
    return (
        SparkSession.builder.master("local[2]")
        .appName("rfmml-spark-jobs")
        .config("spark.ui.enabled", "false")
        .config("spark.sql.session.timeZone", "UTC")
        .config("spark.sql.shuffle.partitions", "4")
        .config("spark.default.parallelism", "4")
        .config("spark.sql.autoBroadcastJoinThreshold", "-1")
        .config("spark.executorEnv.PYTHONPATH", os.environ["PYTHONPATH"])
        .config("spark.sql.execution.arrow.pyspark.enabled", "true")
        .getOrCreate()
    )


def _config(source: str):
    from rfmml.config import load_config

    return load_config(
        {
            "name": "spark_jobs",
            "calibration_end": "1997-09-30",
            "observation_end": "1998-06-30",
            "freq": "W",
            "engine": "spark",
            "n_bootstrap": 0,
            "data": {"source": source},
            "models": {
                "purchase_models": ["bgnbd", "mbgnbd", "pareto_nbd"],
                "horizon": 52,
                "next_order_window": 4,
                "interval": 0.9,
                "n_draws": 40,
            },
            "segmentations": [{"name": "rfm11", "kind": "rules", "scheme": "rfm11"}],
        }
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=2)
    parser.add_argument("--folder", default="/tmp/rfmml-spark-jobs")
    args = parser.parse_args()
    from rfmml.data import load_cdnow
    from rfmml.spark_run import run_spark_experiment

    spark = _session()
    folder = Path(args.folder)
    source = folder / "tx"
    if not source.exists():
        log = load_cdnow()[["customer_id", "timestamp", "amount"]]
        spark.createDataFrame(log).write.parquet(str(source))
    cfg = _config(source.as_posix())
    tracker = spark.sparkContext.statusTracker()
    for i in range(args.runs):
        load = os.getloadavg()[0]
        jobs, cpu, start = set(tracker.getJobIdsForGroup()), _tree_cpu(), time.perf_counter()
        uri = f"sqlite:///{(folder / f'mlflow-{i}.db').as_posix()}"
        result = run_spark_experiment(cfg, output_dir=folder / f"out-{i}", tracking_uri=uri,
                                      spark=spark)  # fmt: skip
        wall, cpu = time.perf_counter() - start, _tree_cpu() - cpu
        n_jobs = len(set(tracker.getJobIdsForGroup()) - jobs)
        print(f"run {i + 1}: {n_jobs} Spark jobs, {wall:.1f} s wall, {cpu:.1f} s CPU "
              f"(load {load:.2f}), chosen {result.chosen_model}", flush=True)  # fmt: skip
    spark.stop()


if __name__ == "__main__":
    main()
