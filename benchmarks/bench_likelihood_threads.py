"""The BG/NBD likelihood sums and the streamed BG/NBD fit at 10M rows, two source trees.

Usage (a run needs ~3 GiB and several minutes: run it under ``flock``)::

    flock /tmp/rfmml-bigbench.lock python benchmarks/bench_likelihood_threads.py \
        --before /path/to/old/tree --after . --log /tmp/rfmml-bench/log_10000000.parquet

Every cell is a fresh process with ``PYTHONPATH`` set to one tree, transparent
huge pages disabled first as the ``rfmml`` command does; trees alternate,
``--repeats`` processes each; the 1-minute load average is read before every
process. Cells:

* ``evaluation``: one BG/NBD likelihood evaluation (total and gradient,
  :func:`rfmml.models._formulas.bgnbd_total_log_likelihood_and_gradient`) on
  the log's distinct ``(frequency, recency, T)`` rows with their counts, in
  days (written once by the ``--after`` tree; prepared once per process, not
  timed; one evaluation to load the compiled loop, then the median of 10);
* ``fit_on_table``: the log scanned and its features table built
  (``scan_transactions`` + ``customer_features_table(tx, freq="D")``, not
  timed), then ``fit_on_table(BetaGeoNBD(), table)`` (the first in the
  process, as in ``benchmarks/bench_pipeline.py``: it loads the compiled
  loops) and ``fit_on_table(GammaGamma(), table)``, each timed; the fitted
  parameters are compared across trees.

Wall and CPU seconds (the process's, all threads).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from _harness import run_in_tree  # noqa: E402

SETTINGS = r"""
import importlib.util, json, os, sys, time, warnings
warnings.simplefilter("ignore")
if importlib.util.find_spec("rfmml._process") is not None:
    from rfmml._process import disable_transparent_huge_pages, huge_pages_wanted
    if not huge_pages_wanted():
        disable_transparent_huge_pages()
"""

ROWS = (
    SETTINGS
    + r"""
from rfmml.data import scan_transactions
from rfmml.features.combined import customer_features_table
tx, _ = scan_transactions(sys.argv[1])
table = customer_features_table(tx, freq="D")
table.connection.sql(
    f'SELECT frequency, recency, "T", count(*)::DOUBLE AS weights FROM {table.table} '
    'GROUP BY ALL ORDER BY ALL'
).write_parquet(sys.argv[2])
print("{}")
"""
)

EVALUATION = (
    SETTINGS
    + r"""
import numpy as np, pandas as pd
from rfmml.models import _formulas as F
rows = pd.read_parquet(sys.argv[1])
cols = [rows[c].to_numpy() for c in ("frequency", "recency", "T")]
data = F.bgnbd_prepare(*cols, rows["weights"].to_numpy())
theta = (2.19e6, 8.63e8, 5.28e-5, 4.93e4)  # the 10M log's fit, in days
F.bgnbd_total_log_likelihood_and_gradient(*theta, data)
cpu, wall = [], []
for _ in range(10):
    c0, w0 = time.process_time(), time.perf_counter()
    total, grad = F.bgnbd_total_log_likelihood_and_gradient(*theta, data)
    cpu.append(time.process_time() - c0)
    wall.append(time.perf_counter() - w0)
print(json.dumps({"cpu": float(np.median(cpu)), "wall": float(np.median(wall)),
                  "rows": len(data.x), "values": [total, *grad.tolist()]}))
"""
)

FIT = (
    SETTINGS
    + r"""
from rfmml.campaign.streaming import fit_on_table
from rfmml.data import scan_transactions
from rfmml.features.combined import customer_features_table
from rfmml.models import BetaGeoNBD, GammaGamma
tx, _ = scan_transactions(sys.argv[1])
table = customer_features_table(tx, freq="D")
if hasattr(tx, "release"):  # rows held in Arrow or in a DuckDB table
    tx.release()
else:  # a checkout from before ScannedLog.release
    tx.connection.execute(f"DROP TABLE {tx.table}")
out = {}
for name, model in (("bgnbd", BetaGeoNBD()), ("gamma_gamma", GammaGamma())):
    c0, w0 = time.process_time(), time.perf_counter()
    fitted = fit_on_table(model, table)
    out[name] = {"cpu": time.process_time() - c0, "wall": time.perf_counter() - w0,
                 "params": [float(v) for v in fitted.params_]}
print(json.dumps(out))
"""
)


def _run(tree: Path, child: str, *args: str) -> dict:
    return run_in_tree(tree, child, *args)


def _alternate(args: argparse.Namespace, child: str, *child_args: str) -> dict[str, list[dict]]:
    runs: dict[str, list[dict]] = {"before": [], "after": []}
    for _ in range(args.repeats):
        for side in ("before", "after"):
            runs[side].append(_run(getattr(args, side).resolve(), child, *child_args))
    return runs


def _rel(a: list[float], b: list[float]) -> float:
    return max(abs(x - y) / abs(y) for x, y in zip(a, b, strict=True))


def _row(label: str, runs: dict[str, list[dict]], pick, rel: float, extra: str = "") -> str:
    med = {
        side: {k: statistics.median(pick(r)[k] for r in rs) for k in ("cpu", "wall")}
        for side, rs in runs.items()
    }
    b, a = med["before"], med["after"]
    loads = [r["load"] for rs in runs.values() for r in rs]
    return (
        f"| {label}{extra} | {b['wall']:.3f} | {a['wall']:.3f} | {a['wall'] / b['wall']:.2f} "
        f"| {b['cpu']:.3f} | {a['cpu']:.3f} | {a['cpu'] / b['cpu']:.2f} | {rel:.1e} "
        f"| {min(loads):.2f}-{max(loads):.2f} |"
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--before", type=Path, required=True)
    parser.add_argument("--after", type=Path, required=True)
    parser.add_argument("--log", type=Path, required=True)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    print(
        "| cell | before wall s | after wall s | after / before | before CPU s | after CPU s "
        "| after / before | largest rel. diff | load (1 min) |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|---|")
    with tempfile.TemporaryDirectory() as folder:
        rows = Path(folder) / "rows.parquet"
        _run(args.after.resolve(), ROWS, str(args.log), str(rows))
        runs = _alternate(args, EVALUATION, str(rows))
        rel = _rel(runs["after"][0]["values"], runs["before"][0]["values"])
        n = f" ({runs['after'][0]['rows']:,} rows)"
        print(_row("one evaluation", runs, lambda r: r, rel, n), flush=True)
    runs = _alternate(args, FIT, str(args.log))
    for name in ("bgnbd", "gamma_gamma"):
        first = runs["before"][0][name]["params"]  # every run against the first
        rel = max(_rel(r[name]["params"], first) for rs in runs.values() for r in rs)
        print(_row(f"fit_on_table {name}", runs, lambda r, k=name: r[k], rel), flush=True)
        print(f"<!-- {name} params: {runs['after'][0][name]['params']} -->", flush=True)


if __name__ == "__main__":
    main()
