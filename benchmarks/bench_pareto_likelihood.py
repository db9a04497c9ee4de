"""CPU time of one Pareto/NBD likelihood evaluation (total and gradient), two source trees.

Usage::

    python benchmarks/bench_pareto_likelihood.py --before /path/to/old/tree --after .

Each cell is a fresh process with ``PYTHONPATH`` set to one tree: it simulates the
same 1M-customer summary (seeded; CDNOW parameters, ages uniform on 1-78 weeks),
prepares it once (:func:`pareto_nbd_prepare`, not timed), and times three
evaluations of :func:`pareto_nbd_total_log_likelihood_and_gradient` (CPU and wall
seconds; the median is kept). Trees alternate, ``--repeats`` processes each; the
1-minute load average is read before every process.
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from _harness import run_in_tree  # noqa: E402

CHILD = r"""
import json, sys, time
import numpy as np
from rfmml.models import simulate_pareto_nbd
from rfmml.models import _formulas_pareto as P

n, summary, theta = int(sys.argv[1]), sys.argv[2], [float(v) for v in sys.argv[3].split(",")]
rng = np.random.default_rng(1)
T = rng.uniform(1.0, 78.0, n)
d = simulate_pareto_nbd(n, T, {"r": 0.553, "alpha": 10.58, "s": 0.606, "beta": 11.67}, 2)
x, t_x, T = (d[c].to_numpy(dtype=float) for c in ("frequency", "recency", "T"))
if summary == "whole":
    T = np.ceil(T)
    t_x = np.floor(t_x)
data = P.pareto_nbd_prepare(x, t_x, T, np.ones(n))
cpu, wall, totals = [], [], []
for _ in range(3):
    c0, w0 = time.process_time(), time.perf_counter()
    total, grad = P.pareto_nbd_total_log_likelihood_and_gradient(*theta, data)
    cpu.append(time.process_time() - c0)
    wall.append(time.perf_counter() - w0)
    totals.append(total)
print(json.dumps({"cpu": sorted(cpu)[1], "wall": sorted(wall)[1], "total": totals[0],
                  "pairs": len(data.pairs[1]) + len(data.pairs[3])}))
"""

CASES = {
    "CDNOW fit (series)": "0.553,10.58,0.606,11.67",
    "alpha/beta = 17 (w > 0.9)": "0.553,200.0,0.606,11.67",
}


def _run(tree: Path, n: int, summary: str, theta: str) -> dict:
    return run_in_tree(tree, CHILD, str(n), summary, theta)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--before", type=Path, required=True)
    parser.add_argument("--after", type=Path, required=True)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    print("| summary | parameters | distinct pairs | before CPU s | after CPU s | after / before "
          "| before wall s | after wall s | |total| rel. diff | load (1 min) |")  # fmt: skip
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|---|")
    for summary in ("fractional", "whole"):
        for label, theta in CASES.items():
            runs: dict[str, list[dict]] = {"before": [], "after": []}
            for _ in range(args.repeats):
                for side in ("before", "after"):
                    tree = getattr(args, side).resolve()
                    runs[side].append(_run(tree, args.rows, summary, theta))
            b, a = (
                {k: statistics.median(r[k] for r in runs[s]) for k in ("cpu", "wall")}
                for s in ("before", "after")
            )
            tb, ta = runs["before"][0]["total"], runs["after"][0]["total"]
            loads = [r["load"] for s in runs.values() for r in s]
            print(
                f"| {summary} | {label} | {runs['after'][0]['pairs']:,} | {b['cpu']:.2f} | "
                f"{a['cpu']:.2f} | {a['cpu'] / b['cpu']:.2f} | {b['wall']:.2f} | {a['wall']:.2f} "
                f"| {abs(ta - tb) / abs(tb):.1e} | {min(loads):.2f}-{max(loads):.2f} |",
                flush=True,
            )


if __name__ == "__main__":
    main()
