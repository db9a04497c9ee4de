"""Pareto/NBD count, expectation and P(alive) formulas on the degenerate ridges, two trees.

Usage::

    python benchmarks/bench_pareto_ridge_counts.py --before /path/to/old/tree --after .

On the ridges ``r, alpha = k, k / 0.032`` (``s, beta`` = CDNOW's 0.606, 11.67: Poisson
purchases) and ``s, beta = k, k / 0.05`` (``r, alpha`` = CDNOW's 0.553, 10.58: one
exponential dropout rate), ``k = 1e6, 1e9, 1e12``, each tree's (fresh process, ``PYTHONPATH``
set to it) values of

- ``pareto_nbd_probability_of_purchases(n, t)``, ``n = 0..40``, ``t = 10, 52``;
- ``pareto_nbd_expected_purchases_new_customer(t)``, ``t = 1, 10, 52, 104``;
- ``pareto_nbd_probability_alive``, ``pareto_nbd_expected_purchases(52)`` and
  ``pareto_nbd_probability_no_purchase(10)`` of the 2,357 CDNOW customers;
- ``pareto_nbd_count_pmf_if_alive(40, 52)`` of 12 ``(x, T)`` rows

are compared with references at the same finite parameters: one-dimensional integrals by
adaptive quadrature (``scipy.integrate.quad``, relative tolerance 1e-13) of integrands written
with ``log1p`` and rising factorials as sums ``sum_(j<n) log1p(j / r)``, so that no term of
order ``r ln(alpha)`` is formed:

- ``P(X(t) = n) = NB(n; t) (1 + t / beta) ** -s + int_0^t (s / beta) (1 + v / beta) ** -(s + 1)
  NB(n; v) dv`` (the integral form of eq. 29 of note 009, Fader, Hardie & Lee 2005;
  Schmittlein et al. 1987, sec. 2),
  ``ln NB(n; v) = sum_(j<n) log1p(j / r) - ln n! + n (ln(r / alpha) + ln v - log1p(v / alpha))
  - r log1p(v / alpha)``;
- ``E[X(t)] = (r / alpha) int_0^t (1 + v / beta) ** -s dv`` (the rate times the expected time
  alive; eq. 27);
- ``(P2 - P3) / P1 = (s / beta) int_(t_x)^T exp((r + x) log1p((T - v) / (alpha + v))
  + s log1p((T - v) / (beta + v)) - log1p(v / beta)) dv`` and ``P(alive) = 1 / (1 + that)``
  (eq. 18, 36);
- given alive, ``E[Y(t)] = ((r + x) / (alpha + T)) int_0^t (1 + v / (beta + T)) ** -s dv`` (eq. 41)
  and ``P(a purchase in t) = int_0^t ((r + x) / (alpha + T)) (1 + v / (alpha + T)) ** -(r + x + 1)
  (1 + v / (beta + T)) ** -s dv`` (``E[lambda e^(-lambda v)] E[e^(-mu v)]`` integrated over the
  time of the first purchase).

The references are checked against the limits at ``k = 1e12`` (Poisson counts over a Lomax
lifetime, NBD counts over an exponential lifetime), whose distance is ``O(1 / k)``.

Off the ridges (``OFF_RIDGE``: CDNOW's published and fitted parameters, the swapped ones and
four others), ``pareto_nbd_probability_of_purchases(n, t)`` for ``n = 0..200`` and
``t = 0, 1, 5, 52, 104`` of the two trees are compared with each other (largest relative
difference where the probability exceeds 1e-200) and their CPU seconds, ``--repeats``
fresh processes per tree, alternating.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
from scipy.integrate import quad
from scipy.special import gammaln
from scipy.stats import poisson

R, ALPHA, S, BETA = 0.553, 10.58, 0.606, 11.67
LAM, MU = 0.032, 0.05
KS = (1e6, 1e9, 1e12)
N = np.arange(41.0)
T_PMF = (10.0, 52.0)
T_NEW = np.array([1.0, 10.0, 52.0, 104.0])
ROWS_X = np.array([0.0, 2.0, 10.0, 26.0] * 3)
ROWS_T = np.repeat([31.0, 40.0, 78.0], 4)

OFF_RIDGE = (
    (0.553, 10.58, 0.606, 11.67),
    (0.553, 11.67, 0.606, 10.58),
    (0.5534, 10.5802, 0.6061, 11.6562),
    (2.0, 1.0, 20.0, 40.0),
    (0.5, 100.0, 2.0, 1.0),
    (5.0, 3.0, 0.1, 50.0),
    (0.05, 0.2, 4.0, 0.5),
)

OFF_CHILD = r"""
import json, sys, time
import numpy as np
from rfmml.models import _formulas_pareto as P

thetas = json.loads(sys.argv[1])
n = np.arange(201.0)
c0 = time.process_time()
out = [[P.pareto_nbd_probability_of_purchases(n, t, *th).tolist()
        for t in (0.0, 1.0, 5.0, 52.0, 104.0)] for th in thetas]
print(json.dumps({"v": out, "cpu": time.process_time() - c0}))
"""

CHILD = r"""
import json, sys, time
import numpy as np
from rfmml.data import load_cdnow_summary
from rfmml.models import _formulas_pareto as P

theta = [float(v) for v in sys.argv[1].split(",")]
d = load_cdnow_summary()
x, t_x, T = (d[c].to_numpy(dtype=float) for c in ("frequency", "recency", "T"))
n = np.arange(41.0)
c0 = time.process_time()
pmf = [P.pareto_nbd_probability_of_purchases(n, t, *theta).tolist() for t in (10.0, 52.0)]
cpu = time.process_time() - c0
rows_x = np.array([0.0, 2.0, 10.0, 26.0] * 3)
rows_T = np.repeat([31.0, 40.0, 78.0], 4)
with np.errstate(all="ignore"):
    out = {
        "pmf": pmf,
        "pmf_cpu": cpu,
        "new": P.pareto_nbd_expected_purchases_new_customer(
            np.array([1.0, 10.0, 52.0, 104.0]), *theta).tolist(),
        "alive": P.pareto_nbd_probability_alive(x, t_x, T, *theta).tolist(),
        "expected": P.pareto_nbd_expected_purchases(52.0, x, t_x, T, *theta).tolist(),
        "none": P.pareto_nbd_probability_no_purchase(10.0, x, t_x, T, *theta).tolist(),
        "cond_pmf": P.pareto_nbd_count_pmf_if_alive(40, 52.0, rows_x, rows_T, *theta).tolist(),
    }
print(json.dumps(out))
"""


def _quad(f, lo: float, hi: float) -> float:
    if hi <= lo:
        return 0.0
    return quad(f, lo, hi, epsabs=0.0, epsrel=1e-13, limit=400)[0]


def _log_nb(n: float, v: float, r: float, alpha: float) -> float:
    """``ln NB(n; v)`` without terms of order ``r ln(alpha)`` (``-inf`` at ``v = 0 < n``)."""
    rising = math.fsum(math.log1p(j / r) for j in range(int(n)))
    lv = -math.log1p(v / alpha)
    if n == 0:
        return r * lv
    if v == 0:
        return -math.inf
    return rising - math.lgamma(n + 1.0) + n * (math.log(r / alpha) + math.log(v) + lv) + r * lv


def ref_pmf(n: float, t: float, r, alpha, s, beta) -> float:
    alive = math.exp(_log_nb(n, t, r, alpha) - s * math.log1p(t / beta))
    log_g = math.log(s / beta)

    def f(v: float) -> float:
        return math.exp(log_g - (s + 1.0) * math.log1p(v / beta) + _log_nb(n, v, r, alpha))

    return alive + _quad(f, 0.0, t)


def ref_new(t: float, r, alpha, s, beta) -> float:
    return r / alpha * _quad(lambda v: math.exp(-s * math.log1p(v / beta)), 0.0, t)


def ref_alive_expected_none(x, t_x, T, r, alpha, s, beta, t=52.0, t_none=10.0):
    p = r + x

    def odds_f(v: float) -> float:
        return math.exp(
            p * math.log1p((T - v) / (alpha + v))
            + s * math.log1p((T - v) / (beta + v))
            - math.log1p(v / beta)
        )

    alive = 1.0 / (1.0 + s / beta * _quad(odds_f, t_x, T))
    a, b = alpha + T, beta + T
    factor = p / a * _quad(lambda v: math.exp(-s * math.log1p(v / b)), 0.0, t)
    buy = _quad(
        lambda v: p / a * math.exp(-(p + 1.0) * math.log1p(v / a) - s * math.log1p(v / b)),
        0.0,
        t_none,
    )
    return alive, alive * factor, 1.0 - alive * buy


def limit_pmf(n: float, t: float, ridge: str) -> float:
    """The ridge's limit: Poisson counts over a Lomax lifetime, or NBD over an exponential one."""
    if ridge == "purchase":
        log_g = math.log(S / BETA)

        def nb(v: float) -> float:
            return float(poisson.pmf(n, LAM * v))

        return nb(t) * math.exp(-S * math.log1p(t / BETA)) + _quad(
            lambda v: math.exp(log_g - (S + 1.0) * math.log1p(v / BETA)) * nb(v), 0.0, t
        )

    def nbd(v: float) -> float:
        if v == 0:
            return float(n == 0)
        return math.exp(
            gammaln(R + n) - gammaln(R) - gammaln(n + 1.0)
            + R * math.log(ALPHA / (ALPHA + v)) + n * math.log(v / (ALPHA + v))
        )  # fmt: skip

    return nbd(t) * math.exp(-MU * t) + _quad(lambda v: MU * math.exp(-MU * v) * nbd(v), 0.0, t)


def _theta(ridge: str, k: float) -> tuple[float, float, float, float]:
    return (k, k / LAM, S, BETA) if ridge == "purchase" else (R, ALPHA, k, k / MU)


def _run(tree: Path, theta, child: str = CHILD) -> dict:
    env = {**os.environ, "PYTHONPATH": str(tree)}
    arg = json.dumps(theta) if child is OFF_CHILD else ",".join(repr(v) for v in theta)
    out = subprocess.run(
        [sys.executable, "-c", child, arg],
        env=env,
        capture_output=True,
        text=True,
        check=True,
        cwd=tree,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def _rel(a, b) -> float:
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    with np.errstate(all="ignore"):
        err = np.abs(a - b) / np.abs(b)
    err = np.where(np.isfinite(a), err, np.inf)
    return float(np.max(err))


def _off_ridge(args) -> None:
    """Both trees' probabilities off the ridges: largest relative difference, CPU seconds."""
    runs: dict[str, list[dict]] = {"before": [], "after": []}
    loads = []
    for _ in range(args.repeats):
        for side in ("before", "after"):
            loads.append(os.getloadavg()[0])
            runs[side].append(_run(getattr(args, side).resolve(), OFF_RIDGE, OFF_CHILD))
    b, a = (np.asarray(runs[s][0]["v"], dtype=float) for s in ("before", "after"))
    big = b > 1e-200
    rel = np.abs(a - b)[big] / b[big]
    low = big.copy()
    low[..., 41:] = False
    rel_low = np.abs(a - b)[low] / b[low]
    cpu = {s: sorted(r["cpu"] for r in runs[s]) for s in runs}
    print(
        f"off the ridges ({len(OFF_RIDGE)} parameter sets x 5 horizons x n = 0..200): "
        f"max rel. difference after vs before {rel.max():.1e} (n <= 40: {rel_low.max():.1e}); "
        f"CPU s per process before {cpu['before']}, after {cpu['after']}; "
        f"load {min(loads):.2f}-{max(loads):.2f}\n"
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--before", type=Path, required=True)
    parser.add_argument("--after", type=Path, required=True)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    _off_ridge(args)
    sys.path.insert(0, str(args.after.resolve()))
    from rfmml.data import load_cdnow_summary

    d = load_cdnow_summary()
    x, t_x, T = (d[c].to_numpy(dtype=float) for c in ("frequency", "recency", "T"))
    print(f"load (1 min) at start: {os.getloadavg()[0]:.2f}")
    print("| function | ridge | k | before max rel. error | after max rel. error "
          "| before max abs. error | after max abs. error |")  # fmt: skip
    print("|---|---|---:|---:|---:|---:|---:|")
    notes = []
    for ridge in ("purchase", "dropout"):
        for k in KS:
            theta = _theta(ridge, k)
            ref = {
                "pmf": [[ref_pmf(n, t, *theta) for n in N] for t in T_PMF],
                "new": [ref_new(t, *theta) for t in T_NEW],
            }
            rows = np.array(
                [ref_alive_expected_none(*z, *theta) for z in zip(x, t_x, T, strict=True)]
            )
            ref["alive"], ref["expected"], ref["none"] = rows.T
            rp, ap, bp = theta[0] + ROWS_X, theta[1] + ROWS_T, theta[3] + ROWS_T
            ref["cond_pmf"] = [
                [ref_pmf(n, 52.0, rp[i], ap[i], theta[2], bp[i]) for n in N]
                for i in range(len(ROWS_X))
            ]
            if k == KS[-1]:
                lim = [[limit_pmf(n, t, ridge) for n in N] for t in T_PMF]
            got = {side: _run(getattr(args, side).resolve(), theta) for side in ("before", "after")}
            if k == KS[-1]:
                gaps = [
                    np.max(np.abs(np.subtract(v, lim)))
                    for v in (ref["pmf"], got["before"]["pmf"], got["after"]["pmf"])
                ]
                notes.append(
                    f"{ridge} ridge, k = {k:.0e}: pmf vs the limit, max abs.: reference "
                    f"{gaps[0]:.1e}, before {gaps[1]:.1e}, after {gaps[2]:.1e}"
                )
            for key in ("pmf", "cond_pmf", "new", "alive", "expected", "none"):
                b, a = (np.asarray(got[s][key], dtype=float) for s in ("before", "after"))
                r_ = np.asarray(ref[key], dtype=float)
                # relative errors where the reference exceeds 1e-12 (the pmf's far tail)
                big = r_ > 1e-12
                print(
                    f"| {key} | {ridge} | {k:.0e} | {_rel(b[big], r_[big]):.1e} | "
                    f"{_rel(a[big], r_[big]):.1e} | {np.max(np.abs(b - r_)):.1e} | "
                    f"{np.max(np.abs(a - r_)):.1e} |",
                    flush=True,
                )
            notes.append(
                f"{ridge} k = {k:.0e}: pmf (82 values) CPU s before "
                f"{got['before']['pmf_cpu']:.3f}, after {got['after']['pmf_cpu']:.3f}, "
                f"load {os.getloadavg()[0]:.2f}"
            )
    print("\n".join(notes))


if __name__ == "__main__":
    main()
