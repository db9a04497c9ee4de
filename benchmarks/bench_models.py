"""Benchmark rfmml's BG/NBD, Gamma-Gamma and CLV against lifetimes and pymc-marketing.

Usage: python benchmarks/bench_models.py [--sizes 100000 1000000 10000000] [--timeout 300]
       [--pymc-max 1000000] [--pipeline 10000000] [--kinds whole fractional]
       [--tasks bgnbd_fit gamma_gamma_fit scoring] [--no-write]

Every measurement runs in a fresh subprocess (so peak RSS belongs to one task):
the child loads the summary from a .npz file, records its RSS, runs the task
(best of 3 for <= 1M customers, once at 10M) and reports wall time, peak RSS
(VmHWM of the worker's own image) and the increase over the RSS after loading. Runs that exceed the
timeout are reported as such. Results go to benchmarks/RESULTS.md between the
bench_models markers.

Summaries are simulated from the BG/NBD and Gamma-Gamma processes (CDNOW
parameters, alpha in days), customers acquired over 365 days and observed
for 546. Two kinds: "whole" floors recency and T to whole days as
btyd_summary(freq="D") makes them (rows repeat: the models collapse them);
"fractional" keeps continuous recency and T (summaries in continuous time or
exported by other tools: no two customers share a row). Scoring = probability
alive + expected purchases in the next 30 days + CLV over 12 periods (days) at
1% per period, all libraries at the same (true) parameters; lifetimes' CLV runs
with freq="M" (one step per period of the summary, see tests/models/test_clv.py
for the mapping). pymc-marketing (MAP fits; scoring from a one-draw posterior at
the true parameters) is run up to --pymc-max customers; its CLV steps are months
whatever the data's unit, so its scoring CLV is 12 monthly steps and only its
probability alive and expected purchases enter the agreement column.

--pipeline N: one process fits BG/NBD and Gamma-Gamma on N customers of a
fractional weekly summary (CDNOW parameters in weeks, 52-week acquisition,
78-week observation) and scores them: probability alive, expected purchases in
52 weeks and a 52-week CLV (rfmml only; the memory target is 4 GiB peak).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "RESULTS.md"
START, END = "<!-- bench_models:start -->", "<!-- bench_models:end -->"
BG_PARAMS = {"r": 0.243, "alpha": 30.898, "a": 0.793, "b": 2.426}  # CDNOW, alpha per day
BG_WEEKS = {"r": 0.243, "alpha": 4.414, "a": 0.793, "b": 2.426}  # CDNOW, FHL05
GG_PARAMS = {"p": 6.25, "q": 3.74, "v": 15.44}
TASKS = ("bgnbd_fit", "gamma_gamma_fit", "scoring")


# --------------------------------------------------------------------------- data
def make_summary(n: int, path: Path, kind: str = "whole") -> None:
    from rfmml.models import simulate_bgnbd, simulate_gamma_gamma

    rng = np.random.default_rng(42)
    if kind == "weeks":  # --pipeline: fractional weeks
        T = 78.0 - rng.uniform(0, 52, size=n)
        s = simulate_bgnbd(n, T, BG_WEEKS, random_state=rng)
        m = simulate_gamma_gamma(s["frequency"].to_numpy(), GG_PARAMS, random_state=rng)
        np.savez(path, frequency=s["frequency"].to_numpy(), recency=s["recency"].to_numpy(),
                 T=T, monetary_value=m)  # fmt: skip
        return
    T = 546.0 - rng.uniform(0, 365, size=n)
    if kind == "whole":
        T = np.floor(T)
    s = simulate_bgnbd(n, T, BG_PARAMS, random_state=rng)
    recency = s["recency"].to_numpy()
    if kind == "whole":
        recency = np.floor(recency)
    m = simulate_gamma_gamma(s["frequency"].to_numpy(), GG_PARAMS, random_state=rng)
    np.savez(path, frequency=s["frequency"].to_numpy(), recency=recency, T=T, monetary_value=m)


# ------------------------------------------------------------------------- worker
def _rss_mb() -> float:
    import psutil

    return psutil.Process().memory_info().rss / 2**20


def _peak_rss_mb() -> float:
    """Peak RSS of this process image (VmHWM; ru_maxrss would include the parent's at fork)."""
    status = Path("/proc/self/status")
    if status.exists():
        for line in status.read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _run_rfmml(task, df):
    import pandas as pd

    from rfmml.models import BetaGeoNBD, GammaGamma, customer_lifetime_value

    if task == "bgnbd_fit":
        m = BetaGeoNBD().fit(df)
        return {"params": m.params_.to_dict(), "log_likelihood": m.log_likelihood_}
    if task == "gamma_gamma_fit":
        m = GammaGamma().fit(df)
        return {"params": m.params_.to_dict(), "log_likelihood": m.log_likelihood_}
    bg, gg = BetaGeoNBD(), GammaGamma()
    bg.params_, gg.params_ = pd.Series(BG_PARAMS), pd.Series(GG_PARAMS)
    p_alive = bg.probability_alive(df)
    expected = bg.expected_purchases(df, 30.0)
    clv = customer_lifetime_value(bg, gg, df, horizon=12, discount_rate=0.01)
    return {"sums": [float(p_alive.sum()), float(expected.sum()), float(clv.sum())]}


def _run_pipeline(df):
    from rfmml.models import BetaGeoNBD, GammaGamma, customer_lifetime_value

    bg, gg = BetaGeoNBD().fit(df), GammaGamma().fit(df)
    p_alive = bg.probability_alive(df)
    expected = bg.expected_purchases(df, 52.0)
    clv = customer_lifetime_value(bg, gg, df, horizon=52, discount_rate=0.001)
    return {
        "params": {**bg.params_.to_dict(), **gg.params_.to_dict()},
        "sums": [float(p_alive.sum()), float(expected.sum()), float(clv.sum())],
    }


def _run_pymc(task, df):
    import logging

    import arviz as az
    from pymc_marketing.clv import BetaGeoModel, GammaGammaModel

    logging.getLogger("pymc").setLevel(logging.ERROR)
    logging.getLogger("pymc_marketing").setLevel(logging.ERROR)
    data = df.reset_index().rename(columns={"index": "customer_id"})
    if task == "bgnbd_fit":
        bg = BetaGeoModel(data=data[["customer_id", "frequency", "recency", "T"]])
        bg.fit(fit_method="map", progressbar=False)
        post = bg.idata.posterior
        return {"params": {k: float(post[k].mean()) for k in ("r", "alpha", "a", "b")}}
    repeat = data[data["frequency"] > 0]
    if task == "gamma_gamma_fit":
        gg = GammaGammaModel(data=repeat[["customer_id", "frequency", "monetary_value"]])
        gg.fit(fit_method="map", progressbar=False)
        post = gg.idata.posterior
        return {"params": {"p": float(post["p"].mean()), "q": float(post["q"].mean()),
                           "v": float(post["v"].mean())}}  # fmt: skip

    def one_draw(params):
        return az.from_dict(posterior={k: np.array([[v]]) for k, v in params.items()})

    bg = BetaGeoModel(data=data[["customer_id", "frequency", "recency", "T"]])
    bg.build_model()
    bg.idata = one_draw(BG_PARAMS)
    gg = GammaGammaModel(data=repeat[["customer_id", "frequency", "monetary_value"]])
    gg.build_model()
    gg.idata = one_draw(GG_PARAMS)
    p_alive = bg.expected_probability_alive(data)
    expected = bg.expected_purchases(data, future_t=30)
    clv = gg.expected_customer_lifetime_value(bg, data, future_t=12, discount_rate=0.01,
                                              time_unit="D")  # fmt: skip
    return {"sums": [float(p_alive.sum()), float(expected.sum())], "clv": float(clv.sum())}


def _run_lifetimes(task, df):
    import pandas as pd
    from lifetimes import BetaGeoFitter, GammaGammaFitter

    f, r, T, m = df["frequency"], df["recency"], df["T"], df["monetary_value"]
    if task == "bgnbd_fit":
        bg = BetaGeoFitter().fit(f, r, T)
        ll = -len(f) * BetaGeoFitter._negative_log_likelihood(
            np.log(bg.params_[["r", "alpha", "a", "b"]].to_numpy()),
            f.to_numpy(),
            r.to_numpy(),
            T.to_numpy(),
            np.ones(len(f)),
            0.0,
        )
        return {"params": bg.params_.to_dict(), "log_likelihood": float(ll)}
    if task == "gamma_gamma_fit":
        repeat = f > 0
        gg = GammaGammaFitter().fit(f[repeat], m[repeat])
        return {"params": gg.params_.to_dict()}
    bg, gg = BetaGeoFitter(), GammaGammaFitter()
    bg.params_, gg.params_ = pd.Series(BG_PARAMS), pd.Series(GG_PARAMS)
    bg.predict = bg.conditional_expected_number_of_purchases_up_to_time  # lifetimes sets it in fit
    p_alive = bg.conditional_probability_alive(f, r, T)
    expected = bg.conditional_expected_number_of_purchases_up_to_time(30.0, f, r, T)
    clv = gg.customer_lifetime_value(bg, f, r, T, m, time=12, discount_rate=0.01, freq="M")
    return {"sums": [float(np.sum(p_alive)), float(np.sum(expected)), float(clv.sum())]}


def worker(lib: str, task: str, data: str, out: str, repeats: int) -> None:
    import pandas as pd

    arrays = np.load(data)
    df = pd.DataFrame({k: arrays[k] for k in arrays.files})
    df.index.name = "customer_id"
    run = {"rfmml": _run_rfmml, "lifetimes": _run_lifetimes, "pymc": _run_pymc}[lib]
    if task == "pipeline":
        run = lambda task, df: _run_pipeline(df)  # noqa: E731
    rss0 = _rss_mb()
    times, cpu = [], []
    for _ in range(repeats):
        t0, c0 = time.perf_counter(), time.process_time()
        info = run(task, df)
        times.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
    peak = _peak_rss_mb()
    info.update(seconds=min(times), cpu_seconds=min(cpu), peak_rss_mb=peak,
                rss_after_load_mb=rss0, repeats=repeats)  # fmt: skip
    Path(out).write_text(json.dumps(info))


# ----------------------------------------------------------------------- driver
def measure(lib, task, data, n, timeout):
    repeats = 3 if n <= 1_000_000 else 1
    with tempfile.NamedTemporaryFile(suffix=".json", delete=False) as fh:
        out = fh.name
    cmd = [sys.executable, __file__, "--worker", lib, task, str(data), out, str(repeats)]
    env = dict(os.environ, PYTHONWARNINGS="ignore")
    t0 = time.perf_counter()
    try:
        subprocess.run(cmd, check=True, timeout=timeout, env=env, capture_output=True)
    except subprocess.TimeoutExpired:
        return {"timeout": True, "seconds": time.perf_counter() - t0}
    except subprocess.CalledProcessError as exc:
        return {"error": exc.stderr.decode()[-500:]}
    return json.loads(Path(out).read_text())


def _agree(a, b):
    if "params" in a and "params" in b:
        keys = a["params"].keys() & b["params"].keys()
        return max(abs(a["params"][k] / b["params"][k] - 1) for k in keys)
    if "sums" in a and "sums" in b:
        return max(abs(x / y - 1) for x, y in zip(a["sums"], b["sums"], strict=False))
    return float("nan")


def fmt_time(r):
    if r.get("timeout"):
        return f"> {r['seconds']:.0f} (timed out)"
    if "error" in r:
        return "error"
    if "cpu_seconds" in r:
        return f"{r['seconds']:.3f} ({r['cpu_seconds']:.3f})"
    return f"{r['seconds']:.3f}"


def fmt_mem(r):
    if "peak_rss_mb" not in r:
        return "-"
    return f"{r['peak_rss_mb']:.0f} (+{r['peak_rss_mb'] - r['rss_after_load_mb']:.0f})"


def write_section(text: str) -> None:
    old = RESULTS.read_text() if RESULTS.exists() else "# Benchmark results\n"
    block = f"{START}\n{text.rstrip()}\n{END}"
    if START in old and END in old:
        new = re.sub(re.escape(START) + r".*?" + re.escape(END), lambda _: block, old, flags=re.S)
    else:
        new = old.rstrip() + "\n\n" + block + "\n"
    RESULTS.write_text(new)


def _ratio(ours, theirs, key="seconds"):
    if key not in ours or key not in theirs or "error" in theirs:
        return float("nan")
    return theirs[key] / ours[key]


def _ratio_txt(ours, theirs):
    ratio = _ratio(ours, theirs)
    if theirs.get("timeout"):
        return f"> {ratio:.0f}x"
    if not np.isfinite(ratio):
        return "n/a"
    return f"{ratio:.1f}x ({_ratio(ours, theirs, 'cpu_seconds'):.1f}x)"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", type=int, nargs="+", default=[100_000, 1_000_000, 10_000_000])
    parser.add_argument("--kinds", nargs="+", default=["whole", "fractional"])
    parser.add_argument("--timeout", type=float, default=300.0)
    parser.add_argument("--pymc-max", type=int, default=1_000_000)
    parser.add_argument("--pipeline", type=int, default=10_000_000, help="0 to skip")
    parser.add_argument("--tasks", nargs="+", default=list(TASKS), choices=TASKS)
    parser.add_argument("--no-write", action="store_true", help="print, do not update RESULTS.md")
    args = parser.parse_args()
    from importlib.metadata import PackageNotFoundError, version

    import lifetimes
    import scipy

    import rfmml

    try:  # not imported here: the driver stays small
        pymc_version: str | None = version("pymc-marketing")
    except PackageNotFoundError:
        pymc_version = None
    rows = []
    pipeline = None
    with tempfile.TemporaryDirectory() as tmp:
        for n in args.sizes:
            for kind in args.kinds:
                data = Path(tmp) / f"summary_{kind}_{n}.npz"
                t0 = time.perf_counter()
                make_summary(n, data, kind)
                print(f"n={n:,} {kind}: simulated in {time.perf_counter() - t0:.1f} s", flush=True)
                for task in args.tasks:
                    ours = measure("rfmml", task, data, n, args.timeout)
                    theirs = measure("lifetimes", task, data, n, args.timeout)
                    pymc = {}
                    if pymc_version is not None and n <= args.pymc_max:
                        pymc = measure("pymc", task, data, n, args.timeout)
                    rows.append((n, kind, task, ours, theirs, pymc))
                    print(
                        f"  {task:16s} rfmml {fmt_time(ours):>10s} {fmt_mem(ours):>12s}  "
                        f"lifetimes {fmt_time(theirs):>18s} {fmt_mem(theirs):>12s} "
                        f"x{_ratio(ours, theirs):.1f}  pymc {fmt_time(pymc) if pymc else '-'} "
                        f"{fmt_mem(pymc)}  agree {_agree(ours, theirs):.1e}",
                        flush=True,
                    )
        if args.pipeline:
            data = Path(tmp) / f"summary_weeks_{args.pipeline}.npz"
            make_summary(args.pipeline, data, "weeks")
            pipeline = measure("rfmml", "pipeline", data, args.pipeline, 3 * args.timeout)
            print(f"pipeline {args.pipeline:,}: {fmt_time(pipeline)} s {fmt_mem(pipeline)} MiB")

    lines = [
        "## Models: BG/NBD, Gamma-Gamma and scoring (`benchmarks/bench_models.py`)",
        "",
        f"Machine: {os.cpu_count()} cores (shared), {platform.platform()}, Python "
        f"{platform.python_version()}; rfmml {rfmml.__version__}, lifetimes "
        f"{lifetimes.__version__}, pymc-marketing {pymc_version or 'not installed'}, numpy "
        f"{np.__version__}, scipy {scipy.__version__}. "
        f"Run {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}.",
        "",
        "Simulated daily summaries (CDNOW parameters, alpha per day; 365-day acquisition, "
        "546-day observation). *whole*: recency and T in whole days (rows repeat); "
        "*fractional*: continuous recency and T (no two customers share a row). Each cell is "
        "one fresh subprocess: wall seconds and, in parentheses, CPU seconds of the process "
        "(best of 3 up to 1M customers, single run at 10M; the machine is shared, CPU time is "
        "the steadier figure; speed-ups likewise, wall (CPU)) "
        "and peak RSS in MiB (increase over the RSS after loading the summary; the increase "
        "includes importing the library, about 80 MiB for rfmml or lifetimes, more for "
        f"pymc-marketing). Runs are time-boxed at {args.timeout:.0f} s. Scoring = probability "
        "alive + expected purchases in the next 30 days + 12-period CLV at 1%, at the same "
        "parameters (pymc-marketing: a one-draw posterior at those parameters; its CLV steps "
        "are months whatever the unit, so its CLV is 12 monthly steps). pymc-marketing fits "
        f"are MAP, run up to {args.pymc_max:,} customers. 'agree' = largest relative "
        "difference of fitted parameters (fits) or of the summed predictions (scoring; "
        "probability alive and expected purchases for pymc-marketing) against rfmml.",
        "",
        "| customers | summary | task | rfmml s | lifetimes s | speed-up | pymc-marketing s "
        "| speed-up | rfmml peak MiB | lifetimes peak MiB | pymc-marketing peak MiB "
        "| agree lifetimes | agree pymc |",
        "|---:|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for n, kind, task, ours, theirs, pymc in rows:
        lines.append(
            f"| {n:,} | {kind} | {task} | {fmt_time(ours)} | {fmt_time(theirs)} | "
            f"{_ratio_txt(ours, theirs)} | {fmt_time(pymc) if pymc else 'not run'} | "
            f"{_ratio_txt(ours, pymc) if pymc else '-'} | {fmt_mem(ours)} | {fmt_mem(theirs)} | "
            f"{fmt_mem(pymc)} | {_agree(ours, theirs):.1e} | "
            f"{_agree(ours, pymc) if pymc else float('nan'):.1e} |"
        )
    speed = {(n, kind, task): _ratio(o, t) for n, kind, task, o, t, _ in rows}
    cpu_speed = {(n, kind, task): _ratio(o, t, "cpu_seconds") for n, kind, task, o, t, _ in rows}
    peaks = {(n, kind, task): (o.get("peak_rss_mb"), t.get("peak_rss_mb"))
             for n, kind, task, o, t, _ in rows}  # fmt: skip
    notes = []
    for kind in args.kinds:
        if (1_000_000, kind, "bgnbd_fit") in speed:
            notes.append(
                f"BG/NBD fit at 1M customers ({kind}): "
                f"{speed[(1_000_000, kind, 'bgnbd_fit')]:.1f}x faster than lifetimes."
            )
        if (1_000_000, kind, "scoring") in speed:
            ours_mb, theirs_mb = peaks[(1_000_000, kind, "scoring")]
            notes.append(
                f"Scoring at 1M customers ({kind}): {speed[(1_000_000, kind, 'scoring')]:.1f}x "
                f"faster than lifetimes (CPU time: "
                f"{cpu_speed[(1_000_000, kind, 'scoring')]:.1f}x), "
                f"peak {ours_mb or float('nan'):.0f} MiB against "
                f"{theirs_mb or float('nan'):.0f} MiB."
            )
    if pipeline is not None:
        notes.append(
            f"Pipeline, {args.pipeline:,} customers of a fractional weekly summary, one process "
            "(BG/NBD + Gamma-Gamma fits, probability alive, expected purchases in 52 weeks, "
            f"52-week CLV): {fmt_time(pipeline)} s, peak {fmt_mem(pipeline)} MiB "
            f"(target 4 GiB = 4096 MiB, goal 2 GiB)."
        )
    timed_out = [f"{task} at {n:,} ({kind})" for n, kind, task, _, t, _ in rows if t.get("timeout")]
    notes.append(
        "lifetimes timed out on: " + ", ".join(timed_out) + "."
        if timed_out
        else f"Every lifetimes run finished inside the {args.timeout:.0f} s time box."
    )
    lines += ["", *notes]
    if args.no_write:
        print("\n".join(lines))
        return
    write_section("\n".join(lines))
    print(f"wrote {RESULTS}")


# ===================================================================== new models
# Pareto/NBD, MBG/NBD and BG/BB against lifetimes' ParetoNBDFitter, ModifiedBetaGeoFitter
# and BetaGeoBetaBinomFitter. Usage:
#   python benchmarks/bench_models.py --new-models [--sizes 100000 1000000] [--big 10000000]
#          [--tasks pareto_fit ...] [--timeout 300] [--no-write]
# Daily summaries as above (365-day acquisition, 546-day observation, whole days) drawn from
# each model at CDNOW parameters converted to days; BG/BB: 4-15 opportunities per customer
# at the donations parameters. Scoring = probability alive + expected purchases in the next
# 30 days (BG/BB: 5 opportunities), both libraries at the true parameters; clv = 12-period
# CLV at 1% per period with Gamma-Gamma spend (as the BG/NBD scoring above). The models are
# given their parameters before the timed runs and the check sums are taken after them, so
# the time is that of the library calls alone (both libraries). Each cell is a
# fresh subprocess; wall seconds (best of 5, or a single run when one run exceeds 10 s) and
# the process CPU seconds of that run (the machine is shared: CPU time is the steadier
# figure). lifetimes' fitters run with their defaults. The table is printed (markdown).
NEW_PARAMS = {
    "pareto": {"r": 0.553, "alpha": 10.58 * 7, "s": 0.606, "beta": 11.67 * 7},
    "mbgnbd": {"r": 0.525, "alpha": 6.183 * 7, "a": 0.891, "b": 1.614},
    "bgbb": {"alpha": 1.204, "beta": 0.750, "gamma": 0.657, "delta": 2.784},
}
NEW_TASKS = ("pareto_fit", "mbgnbd_fit", "bgbb_fit", "pareto_scoring", "mbgnbd_scoring",
             "bgbb_scoring", "pareto_both", "mbgnbd_both", "bgbb_both", "pareto_clv",
             "mbgnbd_clv")  # fmt: skip


def make_new_summary(model: str, n: int, path: Path) -> None:
    from rfmml.models import (
        simulate_bgbb,
        simulate_gamma_gamma,
        simulate_mbgnbd,
        simulate_pareto_nbd,
    )

    rng = np.random.default_rng(42)
    if model == "bgbb":
        s = simulate_bgbb(n, rng.integers(4, 16, size=n), NEW_PARAMS["bgbb"], random_state=rng)
    else:
        T = np.floor(546.0 - rng.uniform(0, 365, size=n))
        sim = simulate_pareto_nbd if model == "pareto" else simulate_mbgnbd
        s = sim(n, T, NEW_PARAMS[model], random_state=rng)
        s["recency"] = np.floor(s["recency"].to_numpy())
        s["monetary_value"] = simulate_gamma_gamma(s["frequency"], GG_PARAMS, random_state=rng)
    columns = [c for c in ("frequency", "recency", "T", "monetary_value") if c in s]
    np.savez(path, **{k: s[k].to_numpy() for k in columns})


def _run_new(lib: str, task: str, df):
    """``(run, summarise)``: ``run()`` is the timed library call, ``summarise`` its check sums.

    Models with given parameters are set up before the timing (both libraries),
    and the sums compared across libraries are taken after it: the timed part
    is the scoring (or the fit) alone.
    """
    import pandas as pd

    model, what = task.split("_")
    params = NEW_PARAMS[model]
    horizon = 5 if model == "bgbb" else 30.0

    def sums(*arrays):
        return {"sums": [float(np.sum(a)) for a in arrays]}

    if lib == "rfmml":
        from rfmml.models import BetaGeoBetaBinom, ModifiedBetaGeoNBD, ParetoNBD

        cls = {"pareto": ParetoNBD, "mbgnbd": ModifiedBetaGeoNBD, "bgbb": BetaGeoBetaBinom}[model]
        if what == "fit":
            return (lambda: cls().fit(df)), (
                lambda m: {"params": m.params_.to_dict(), "log_likelihood": m.log_likelihood_}
            )
        m = cls()
        m.params_ = pd.Series(params)
        m.freq_ = None
        if what == "clv":
            from rfmml.models import GammaGamma, customer_lifetime_value

            gg = GammaGamma()
            gg.params_ = pd.Series(GG_PARAMS)
            return (
                lambda: customer_lifetime_value(m, gg, df, horizon=12, discount_rate=0.01)
            ), sums
        if what == "both":  # one call: validation and P(alive) shared
            return (lambda: m.alive_and_expected(df, horizon)), (
                lambda both: sums(both["probability_alive"], both["expected_purchases"])
            )
        return (
            lambda: (m.probability_alive(df), m.expected_purchases(df, horizon))
        ), lambda out: sums(*out)
    import warnings

    from lifetimes import BetaGeoBetaBinomFitter, ModifiedBetaGeoFitter, ParetoNBDFitter

    warnings.simplefilter("ignore")
    cls = {"pareto": ParetoNBDFitter, "mbgnbd": ModifiedBetaGeoFitter,
           "bgbb": BetaGeoBetaBinomFitter}[model]  # fmt: skip
    f, r, T = df["frequency"], df["recency"], df["T"]
    if what == "fit":
        return (lambda: cls().fit(f, r, T)), (lambda m: {"params": m.params_.to_dict()})
    m = cls()
    m.params_ = pd.Series(params)
    if what == "clv":
        from lifetimes import GammaGammaFitter

        gg = GammaGammaFitter()
        gg.params_ = pd.Series(GG_PARAMS)
        m.predict = m.conditional_expected_number_of_purchases_up_to_time  # set in fit
        return (
            lambda: gg.customer_lifetime_value(
                m, f, r, T, df["monetary_value"], time=12, discount_rate=0.01, freq="M"
            )
        ), sums

    def score():
        if model == "bgbb":
            alive = m.conditional_probability_alive(1, f, r, T)
        else:
            alive = m.conditional_probability_alive(f, r, T)
        return alive, m.conditional_expected_number_of_purchases_up_to_time(horizon, f, r, T)

    return score, lambda out: sums(*out)


def worker_new(lib: str, task: str, data: str, out: str) -> None:
    import pandas as pd

    arrays = np.load(data)
    df = pd.DataFrame({k: arrays[k] for k in arrays.files})
    df.index.name = "customer_id"
    run, summarise = _run_new(lib, task, df)
    best = None
    for _ in range(5):
        t0, c0 = time.perf_counter(), time.process_time()
        result = run()
        wall, cpu = time.perf_counter() - t0, time.process_time() - c0
        best = (min(best[0], wall), min(best[1], cpu)) if best else (wall, cpu)
        if wall > 10.0:
            break
    info = summarise(result)
    peak = _peak_rss_mb()
    info.update(seconds=best[0], cpu_seconds=best[1], peak_rss_mb=peak)
    Path(out).write_text(json.dumps(info))


def measure_new(lib, task, data, timeout):
    """One fresh worker process; also the load averages (1 min) before and after it."""
    with tempfile.NamedTemporaryFile(suffix=".json", delete=False) as fh:
        out = fh.name
    cmd = [sys.executable, __file__, "--worker-new", lib, task, str(data), out]
    env = dict(os.environ, PYTHONWARNINGS="ignore")
    load = [os.getloadavg()[0]]
    t0 = time.perf_counter()
    try:
        subprocess.run(cmd, check=True, timeout=timeout, env=env, capture_output=True)
        result = json.loads(Path(out).read_text())
    except subprocess.TimeoutExpired:
        result = {"timeout": True, "seconds": time.perf_counter() - t0}
    except subprocess.CalledProcessError as exc:
        result = {"error": exc.stderr.decode()[-500:]}
    load.append(os.getloadavg()[0])
    result["load"] = load
    return result


#: issue 11's targets: speed-up over lifetimes (wall and CPU) per task
NEW_TARGETS = {"pareto_fit": 20, "mbgnbd_fit": 20, "pareto_scoring": 10, "mbgnbd_scoring": 10,
               "bgbb_scoring": 10, "pareto_both": 10, "mbgnbd_both": 10,
               "bgbb_both": 10}  # fmt: skip
NEW_NAMES = {"pareto_fit": "Pareto/NBD fit", "mbgnbd_fit": "MBG/NBD fit", "bgbb_fit": "BG/BB fit",
             "pareto_scoring": "Pareto/NBD scoring", "mbgnbd_scoring": "MBG/NBD scoring",
             "bgbb_scoring": "BG/BB scoring",
             "pareto_both": "Pareto/NBD scoring, one call (`alive_and_expected`)",
             "mbgnbd_both": "MBG/NBD scoring, one call (`alive_and_expected`)",
             "bgbb_both": "BG/BB scoring, one call (`alive_and_expected`)",
             "pareto_clv": "Pareto/NBD CLV",
             "mbgnbd_clv": "MBG/NBD CLV"}  # fmt: skip


def _new_cell(r: dict) -> str:
    if not r:
        return "not run"
    if r.get("timeout"):
        return f"> {r['seconds']:.0f} (timed out)"
    if "error" in r:
        return "error"
    return f"{r['seconds']:.4g} ({r['cpu_seconds']:.4g})"


def _new_ratio(ours: dict, theirs: dict, key: str) -> tuple[float, bool]:
    """lifetimes / rfmml and whether it is a lower bound (lifetimes timed out)."""
    if theirs.get("timeout") and key == "seconds" and "seconds" in ours:
        return theirs["seconds"] / ours["seconds"], True
    if key not in ours or key not in theirs:
        return float("nan"), False
    return theirs[key] / ours[key], False


def _verdict(task: str, wall: float, cpu: float, bound: bool) -> str:
    target = NEW_TARGETS.get(task)
    if target is None:
        return ""
    if bound and wall >= target:
        return f">= {target}x: met (lifetimes timed out)"
    if wall >= target and cpu >= target:
        return f">= {target}x: met"
    if wall >= target or cpu >= target:
        return f">= {target}x: met in {'wall' if wall >= target else 'CPU'} time only"
    return f">= {target}x: not met"


def main_new_models() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--new-models", action="store_true")
    parser.add_argument("--sizes", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument("--tasks", nargs="+", default=list(NEW_TASKS))
    parser.add_argument("--big", type=int, default=10_000_000, help="Pareto/NBD fit, rfmml only")
    parser.add_argument("--timeout", type=float, default=300.0)
    parser.add_argument("--no-write", action="store_true", help="print, do not update RESULTS.md")
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for n in args.sizes:
            for task in args.tasks:
                model = task.split("_")[0]
                data = Path(tmp) / f"{model}_{n}.npz"
                if not data.exists():
                    make_new_summary(model, n, data)
                ours = measure_new("rfmml", task, data, args.timeout)
                theirs = measure_new("lifetimes", task, data, args.timeout)
                rows.append((n, task, ours, theirs))
                wall, bound = _new_ratio(ours, theirs, "seconds")
                cpu, _ = _new_ratio(ours, theirs, "cpu_seconds")
                mark = ">" if bound else "x"
                print(f"  {n:,} {task:15s} rfmml {_new_cell(ours):>18s} lifetimes "
                      f"{_new_cell(theirs):>22s} {mark}{wall:.1f} (cpu x{cpu:.1f}) "
                      f"agree {_agree(ours, theirs):.1e} load {ours['load']}",
                      flush=True)  # fmt: skip
        big = None
        if args.big:
            data = Path(tmp) / f"pareto_{args.big}.npz"
            make_new_summary("pareto", args.big, data)
            big = measure_new("rfmml", "pareto_fit", data, 3 * args.timeout)
            print(f"  {args.big:,} pareto_fit rfmml {_new_cell(big)}", flush=True)
    loads = [x for _, _, o, t in rows for r in (o, t) for x in r.get("load", [])]
    loads += big.get("load", []) if big else []
    lines = [
        "## New purchase models against lifetimes (`benchmarks/bench_models.py --new-models`)",
        "",
        f"Run {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())} on {os.cpu_count()} shared "
        f"cores (1-minute load average {min(loads):.1f} to {max(loads):.1f} during the run). "
        "Simulated daily summaries (365-day acquisition, 546-day observation, whole days; "
        "BG/BB: 4-15 opportunities) at CDNOW / donations parameters. Each cell is one fresh "
        "process: wall seconds, best of 5 (one run when a run exceeds 10 s), and in brackets "
        "the CPU seconds of the process, best of the same runs; both libraries in the same "
        "run. Speed-up = lifetimes / rfmml. Fits: lifetimes' fitters at their defaults. "
        "Scoring = probability alive + expected purchases in the next 30 days (BG/BB: 5 "
        "opportunities), at the true parameters set before the timed runs (the check sums "
        "are taken after them): rfmml's two methods, or its one call "
        "`alive_and_expected` (same values; validation and P(alive) shared), against "
        "lifetimes' two methods; CLV = 12 periods at 1% with "
        "Gamma-Gamma spend. 'agree' = largest relative difference of the parameters (fits) "
        "or of the summed predictions (scoring).",
        "",
        "| customers | task | rfmml s (cpu) | lifetimes s (cpu) | speed-up wall | speed-up cpu "
        "| agree | target (issue 11) |",
        "|---:|---|---:|---:|---:|---:|---:|---|",
    ]
    for n, task, ours, theirs in rows:
        wall, bound = _new_ratio(ours, theirs, "seconds")
        cpu, _ = _new_ratio(ours, theirs, "cpu_seconds")
        lines.append(
            f"| {n:,} | {NEW_NAMES[task]} | {_new_cell(ours)} | {_new_cell(theirs)} | "
            f"{'> ' if bound else ''}{wall:.1f}x | {'-' if bound else f'{cpu:.1f}x'} | "
            f"{_agree(ours, theirs):.1e} | {_verdict(task, wall, cpu, bound)} |"
        )
    if big is not None:
        lines += [
            "",
            f"Pareto/NBD fit at {args.big:,} customers (rfmml only, target: it finishes): "
            f"{_new_cell(big)} s, peak RSS {big.get('peak_rss_mb', float('nan')):.0f} MiB"
            + (f", {big['params']}" if "params" in big else "")
            + ".",
        ]
    text = "\n".join(lines)
    print(text)
    if not args.no_write:
        from _harness import write_section as write_marked

        write_marked("bench_new_models", text)
        print(f"wrote {RESULTS}")


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--worker":
        worker(*sys.argv[2:6], repeats=int(sys.argv[6]))
    elif len(sys.argv) > 1 and sys.argv[1] == "--worker-new":
        worker_new(*sys.argv[2:6])
    elif "--new-models" in sys.argv:
        main_new_models()
    else:
        main()
