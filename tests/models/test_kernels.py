"""The compiled scoring paths (numba) equal the reference formulas and keep their errors.

The reference is the numpy formula of each model (the paper's equations, in
``rfmml.models._formulas*``). The kernels run the same floating-point
operations, so they are compared bit for bit (and otherwise to 1e-12) over a
grid of whole-number histories up to 10,000 purchases and ages of 100,000
periods (the table path), over random summaries (hypothesis), on
continuous-time summaries (the fallback paths) and on invalid input (the same
errors).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from scipy.special import hyp2f1

pytest.importorskip("numba")  # the optional extra rfmml[fast]

from rfmml.errors import DataError
from rfmml.models import BetaGeoNBD, ModifiedBetaGeoNBD, ParetoNBD, _kernels, _scoring
from rfmml.models import _formulas as B
from rfmml.models import _formulas_mbgnbd as M
from rfmml.models import _formulas_pareto as P
from rfmml.models._base import PurchaseModel

RTOL = 1e-12

#: (class, reference P(alive), reference expected purchases)
MODELS = {
    "BetaGeoNBD": (BetaGeoNBD, B.bgnbd_probability_alive, B.bgnbd_expected_purchases),
    "ModifiedBetaGeoNBD": (
        ModifiedBetaGeoNBD,
        M.mbgnbd_probability_alive,
        M.mbgnbd_expected_purchases,
    ),
    "ParetoNBD": (ParetoNBD, P.pareto_nbd_probability_alive, P.pareto_nbd_expected_purchases),
}
#: (r, alpha, a or s, b or beta): CDNOW-like, tiny and large shapes, alpha < beta and >
PARAMS = [
    (0.525, 6.183, 0.891, 1.614),
    (0.243, 4.414, 0.793, 2.426),
    (0.553, 10.58, 0.606, 11.67),
    (0.05, 0.1, 0.05, 0.1),
    (5.0, 200.0, 3.0, 0.2),
    (2.0, 1.0, 20.0, 50.0),
]
FRACTIONS = np.array([0.0, 1e-6, 0.1, 0.5, 0.9, 1.0 - 1e-9, 1.0])
HORIZONS = (0.0, 1e-6, 30.0, 1e4)


@pytest.fixture(autouse=True)
def _kernels_for_every_size(monkeypatch):
    """The kernels also for the small summaries of these tests."""
    monkeypatch.setattr(_scoring, "KERNEL_MIN_ROWS", 0)


def _model(name: str, theta) -> PurchaseModel:
    cls = MODELS[name][0]
    model = cls()
    model.params_ = pd.Series(dict(zip(cls.param_names, theta, strict=True)))
    model.freq_ = None
    return model


def _whole_histories(X, T) -> pd.DataFrame:
    x, T_, f = (g.ravel() for g in np.meshgrid(X, T, FRACTIONS, indexing="ij"))
    t_x = np.where(x > 0, np.floor(f * T_), 0.0)
    return pd.DataFrame({"frequency": x, "recency": t_x, "T": T_})


def _assert_reference(
    name: str, theta, summary: pd.DataFrame, horizons=HORIZONS, exact: bool = False
) -> None:
    """The model's three methods against the reference formulas (``exact``: bit for bit)."""
    _, alive_ref, expected_ref = MODELS[name]
    model = _model(name, theta)
    x, t_x, T_ = (summary[k].to_numpy(dtype=float) for k in ("frequency", "recency", "T"))
    alive = alive_ref(x, t_x, T_, *theta)
    compare = np.testing.assert_array_equal if exact else _close
    compare(model.probability_alive(summary), alive)
    for t in horizons:
        expected = expected_ref(t, x, t_x, T_, *theta)
        got = model.expected_purchases(summary, t)
        compare(got, expected)
        both = model.alive_and_expected(summary, t)
        np.testing.assert_array_equal(both["probability_alive"], model.probability_alive(summary))
        np.testing.assert_array_equal(both["expected_purchases"], got)


def _close(got, want) -> None:
    np.testing.assert_allclose(got, want, rtol=RTOL, atol=0.0)


def _takes_the_tables(name: str, summary: pd.DataFrame, theta) -> bool:
    """Whether the kernels (not a fallback) score ``summary`` with a 30-period horizon."""
    x, t_x, T_ = (summary[k].to_numpy(dtype=float) for k in ("frequency", "recency", "T"))
    if name == "ParetoNBD":
        out = _scoring.pareto_alive_rows(x, t_x, T_, theta, horizon=30.0)
    else:
        model = MODELS[name][0]()
        out = _scoring.bg_alive_rows(
            x, t_x, T_, theta, modified=name == "ModifiedBetaGeoNBD", horizon=30.0,
            if_alive=model._formula("expected_purchases_if_alive"),
        )  # fmt: skip
    return out is not _scoring.NO_TABLE and out[1] is not None


@pytest.mark.parametrize("theta", PARAMS)
@pytest.mark.parametrize("name", list(MODELS))
@pytest.mark.parametrize(
    ("X", "T"),
    [
        # up to 10,000 purchases (ages to 546) and ages to 100,000 (frequencies to 40)
        ([0.0, 1.0, 2.0, 7.0, 40.0, 300.0, 10_000.0], [0.0, 1.0, 3.0, 39.0, 546.0]),
        ([0.0, 1.0, 2.0, 7.0, 40.0], [0.0, 1.0, 546.0, 5_000.0, 100_000.0]),
    ],
    ids=["large-frequency", "large-age"],
)
def test_kernels_equal_the_reference_on_a_grid(name, theta, X, T, monkeypatch):
    monkeypatch.setattr(_scoring, "DENSE_MIN", 2**23)  # tables for these few rows
    summary = _whole_histories(X, T)
    assert _takes_the_tables(name, summary, theta)
    _assert_reference(name, theta, summary, exact=True)


positive = st.floats(min_value=1e-2, max_value=1e2)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    name=st.sampled_from(list(MODELS)),
    theta=st.tuples(positive, positive, positive, positive),
    seed=st.integers(0, 2**32 - 1),
    top_x=st.sampled_from([1, 5, 60, 2_000]),
    top_T=st.sampled_from([1, 30, 546, 20_000]),
    whole=st.booleans(),
    t=st.sampled_from([0.0, 0.5, 30.0, 365.0]),
)
def test_kernels_equal_the_reference_on_random_summaries(name, theta, seed, top_x, top_T, whole, t):
    rng = np.random.default_rng(seed)
    n = 400
    x = rng.integers(0, top_x + 1, n).astype(float)
    T_ = rng.uniform(0.0, top_T, n)
    t_x = np.where(x > 0, rng.uniform(0.0, 1.0, n) * T_, 0.0)
    if whole:  # btyd_summary in whole periods: the table path
        T_, t_x = np.floor(T_), np.floor(t_x)
    summary = pd.DataFrame({"frequency": x, "recency": t_x, "T": T_})
    _assert_reference(name, theta, summary, horizons=(t,), exact=True)


@pytest.mark.parametrize("name", list(MODELS))
def test_every_path_gives_the_reference_values(name, monkeypatch):
    theta = PARAMS[0]
    rng = np.random.default_rng(5)
    n = 5_000
    x = rng.integers(0, 40, n).astype(float)
    T_ = np.floor(rng.uniform(1.0, 400.0, n))
    t_x = np.where(x > 0, np.floor(rng.uniform(0.0, 1.0, n) * T_), 0.0)
    summary = pd.DataFrame({"frequency": x, "recency": t_x, "T": T_})
    assert _takes_the_tables(name, summary, theta)
    _assert_reference(name, theta, summary, exact=True)
    # integer columns, a weights column, an index of labels: the same values
    labelled = summary.astype({"frequency": "int64", "T": "int32"}).assign(weights=2.0)
    labelled.index = [f"c{i}" for i in range(n)]
    _assert_reference(name, theta, labelled, horizons=(30.0,))
    # the frame of one call as the base's (index, column labels and dtypes, values)
    model = _model(name, theta)
    for frame in (summary, labelled):
        pd.testing.assert_frame_equal(
            model.alive_and_expected(frame, 30.0),
            PurchaseModel.alive_and_expected(model, frame, 30.0),
            check_exact=False,
            rtol=RTOL,
        )
    # continuous ages (no tables) and per-customer horizons: the base's row functions
    _assert_reference(name, theta, summary.assign(T=T_ + 0.25, recency=t_x + 0.25 * (x > 0)))
    model = _model(name, theta)
    per_customer = np.full(n, 30.0)
    np.testing.assert_allclose(
        model.expected_purchases(summary, per_customer),
        MODELS[name][2](30.0, x, t_x, T_, *theta),
        rtol=RTOL,
    )
    # pair tables too large for the rows: P(alive) (BG/NBD, MBG/NBD) from the kernels,
    # the factor per distinct row
    monkeypatch.setattr(_scoring, "DENSE_MIN", 0)
    monkeypatch.setattr(_scoring, "DENSE_PER_ROW", 0)
    assert not _takes_the_tables(name, summary, theta)
    _assert_reference(name, theta, summary, horizons=(30.0,))


@pytest.mark.parametrize("name", list(MODELS))
def test_blocks_growing_tables_and_late_pairs_give_the_reference_values(name, monkeypatch):
    # blocks of 97 rows, sorted so that the tables grow block after block and most pairs
    # first appear after the first block
    monkeypatch.setattr(_kernels, "BLOCK_ROWS", 97)
    theta = PARAMS[0]
    summary = _whole_histories([0.0, 1.0, 2.0, 5.0, 12.0, 40.0], [0.0, 1.0, 9.0, 60.0, 546.0])
    summary = summary.sort_values(["frequency", "T"], kind="stable", ignore_index=True)
    assert _takes_the_tables(name, summary, theta)
    _assert_reference(name, theta, summary, horizons=(0.0, 30.0), exact=True)
    # the pair table outgrows its limit after some blocks: P(alive) from the kernels (the
    # odds of the blocks before finished), the factor per distinct row
    monkeypatch.setattr(_scoring, "DENSE_PER_ROW", 0)
    monkeypatch.setattr(_scoring, "DENSE_MIN", 3 * 547)
    assert not _takes_the_tables(name, summary, theta)
    _assert_reference(name, theta, summary, horizons=(30.0,))


#: parameters of 2F1 as the expected purchases make them, and others: tiny to large,
#: whole numbers and near them (scipy's tolerance is 1e-13), c - a - b near -1 and 0
_GAUSS_VALUES = [1e-14, 1e-13, 1e-3, 0.109, 0.5, 1.0 - 1e-14, 1.0, 1.0 + 1e-12, 2.0, 2.5, 7.0]
_gauss_parameter = st.one_of(
    st.sampled_from(_GAUSS_VALUES),
    st.floats(min_value=1e-4, max_value=300.0),
    st.floats(min_value=-5.0, max_value=5.0),
)


@settings(max_examples=60, deadline=None)
@given(
    A=_gauss_parameter,
    B=_gauss_parameter,
    C=_gauss_parameter,
    x=st.lists(st.integers(0, 3_000), min_size=1, max_size=40),
    z=st.lists(st.floats(min_value=0.0, max_value=1.0), min_size=1, max_size=40),
)
def test_compiled_gauss_series_has_scipys_values(A, B, C, x, z):
    # as in the expected purchases: (r + x, b + x; a + b + x - 1) over many x and z
    xs, zs = (np.asarray(v, dtype=float) for v in np.meshgrid(x, z, indexing="ij"))
    for args in [
        (A + xs, B + xs, C + B + (xs - 1.0), zs),
        (A + xs, B + xs, C + xs, zs),
        (np.full_like(zs, A), np.full_like(zs, B), np.full_like(zs, C), zs),
    ]:
        with np.errstate(all="ignore"):
            np.testing.assert_array_equal(_scoring._gauss_hyp2f1(*args), hyp2f1(*args))


def test_compiled_gauss_series_covers_the_scoring_arguments():
    # the compiled series is the evaluator with this scipy, and it evaluates (no NaN left
    # to scipy) the probe and the arguments of the expected purchases at CDNOW-like values
    assert _scoring.gauss_hyp2f1() is _scoring._gauss_hyp2f1
    out = np.empty(len(_scoring._PROBE[0]))
    _kernels.gauss_hyp2f1(*_scoring._PROBE, out)
    assert not np.isnan(out).any()
    x, T_ = (g.ravel() for g in np.meshgrid(np.arange(200.0), np.arange(0.0, 600.0, 7.0)))
    for r, alpha, a, b in PARAMS:
        for t in (1.0, 30.0, 365.0):
            z = t / (alpha + T_ + t)
            args = (r + x, b + x, a + b + (x - 1.0), z)
            out = np.empty(len(x))
            _kernels.gauss_hyp2f1(*args, out)
            assert np.isnan(out[z <= _kernels.HYP2F1_Z_MAX]).mean() < 0.01
            np.testing.assert_array_equal(_scoring._gauss_hyp2f1(*args), hyp2f1(*args))


def test_gauss_series_edge_arguments():
    # z = 0 is 1 whatever the parameters; outside the series' domain scipy's values
    args = np.array(
        [
            [np.nan, 1.0, 2.0, 0.0],
            [1.0, 2.0, 3.0, 0.95],
            [1.0, 2.0, 3.0, 1.0],
            [-2.0, 1.5, 3.0, 0.5],
            [1.0, 2.0, -1.5, 0.5],
            [2.0, 3.0, 2.0, 0.5],
            [np.inf, 1.0, 2.0, 0.5],
            [1.0, 2.0, 3.0, np.nan],
            [0.5, 0.7, 0.25, 0.9],
            [1e-14, 2.0, 3.0, 0.5],
        ]
    ).T
    with np.errstate(all="ignore"):
        np.testing.assert_array_equal(_scoring._gauss_hyp2f1(*args), hyp2f1(*args))
    assert _scoring._gauss_hyp2f1(1.0, 2.0, 3.0, 0.5).shape == ()


@pytest.mark.parametrize("theta", [*PARAMS, (0.5, 6.0, 1.0 + 5e-5, 2.0), (0.5, 6.0, 1.0, 2.0)])
def test_compiled_factor_given_alive_equals_the_formula(theta):
    # the closed form in compiled loops, the reference where it takes another route (t = 0,
    # short horizons, z > 0.9, a near 1, c < 1e-8): the formula's values bit for bit
    x, T_ = (g.ravel() for g in np.meshgrid([0.0, 1.0, 3.0, 40.0, 2_000.0], [0.0, 1.0, 30.0, 5e4]))
    for t in (0.0, 1e-6, 30.0, 1e4):
        redone = []

        def formula(x_u, u, t=t, redone=redone):
            redone.append(len(x_u))
            return B.bgnbd_expected_purchases_if_alive(t, x_u, u, *theta)

        got = _scoring._if_alive_terms(t, x, T_, *theta, formula)
        np.testing.assert_array_equal(got, B.bgnbd_expected_purchases_if_alive(t, x, T_, *theta))
        if t == 30.0 and theta in PARAMS[:3]:  # CDNOW-like: mostly the compiled loops
            assert sum(redone) <= len(x) // 2


BAD_ROWS = [
    ("recency", 5, 900.0, "recency must be <= T"),
    ("frequency", 7, -1.0, "frequency must be >= 0"),
    ("T", 3, np.nan, "T must be a number"),
    ("recency", 9, np.inf, "recency must be finite"),
    ("frequency", 11, 2.5, "frequency must be an integer"),
]


@pytest.mark.parametrize("name", list(MODELS))
@pytest.mark.parametrize(("column", "row", "value", "match"), BAD_ROWS)
def test_invalid_rows_raise_the_reference_errors(name, column, row, value, match):
    model = _model(name, PARAMS[0])
    summary = _whole_histories([1.0, 3.0], [10.0, 546.0])
    summary.index = pd.Index([f"c{i}" for i in range(len(summary))], name="customer_id")
    bad = summary.copy()
    bad.loc[bad.index[row], column] = value
    bad.loc[bad.index[row + 2], column] = value  # two offending rows: counted
    calls = {
        "probability_alive": lambda m, f: m.probability_alive(f),
        "expected_purchases": lambda m, f: m.expected_purchases(f, 30.0),
        "alive_and_expected": lambda m, f: m.alive_and_expected(f, 30.0),
    }
    for method, call in calls.items():
        with pytest.raises(DataError, match=match) as fast:
            call(model, bad)
        with pytest.raises(DataError) as reference:
            getattr(PurchaseModel, method)(
                model, bad, *([] if method == "probability_alive" else [30.0])
            )
        assert str(fast.value) == str(reference.value)
        assert f"2 of {len(bad)} customers" in str(fast.value)
        assert f"first customer_id='c{row}'" in str(fast.value)


@pytest.mark.parametrize("name", list(MODELS))
def test_summary_errors_come_before_horizon_errors(name):
    model = _model(name, PARAMS[0])
    bad = _whole_histories([1.0], [10.0])
    bad.loc[0, "recency"] = 99.0
    with pytest.raises(DataError, match="recency must be <= T"):
        model.expected_purchases(bad, -1.0)
    good = _whole_histories([1.0], [10.0])
    with pytest.raises(DataError, match="t must be >= 0"):
        model.expected_purchases(good, -1.0)
    with pytest.raises(DataError, match="t must be >= 0"):
        model.alive_and_expected(good, np.nan)


def test_frequency_zero_with_recency_and_time_unit_errors_are_kept():
    model = _model("ModifiedBetaGeoNBD", PARAMS[0])
    bad = pd.DataFrame({"frequency": [0.0, 1.0], "recency": [2.0, 1.0], "T": [5.0, 5.0]})
    with pytest.raises(DataError, match="0 for customers with frequency 0"):
        model.probability_alive(bad)
    model.freq_ = "W"
    weekly = pd.DataFrame({"frequency": [1.0], "recency": [1.0], "T": [5.0]})
    weekly.attrs["freq"] = "D"
    with pytest.raises(DataError, match="time unit"):
        model.alive_and_expected(weekly, 30.0)


def test_the_compiled_loops_are_cached_in_numba_cache_dir(tmp_path):
    # a fresh process with NUMBA_CACHE_DIR: the first scoring writes the cache there (P(alive)
    # only: three loops to compile)
    # (also where numba caches when the package's __pycache__ is not writable and
    # NUMBA_CACHE_DIR is set; without it numba uses ~/.cache/numba)
    code = (
        "import pandas as pd\n"
        "from rfmml.models import ModifiedBetaGeoNBD, _scoring\n"
        "_scoring.KERNEL_MIN_ROWS = 0\n"
        "m = ModifiedBetaGeoNBD()\n"
        "m.params_ = pd.Series({'r': 0.5, 'alpha': 6.0, 'a': 0.9, 'b': 1.6})\n"
        "m.freq_ = None\n"
        "s = pd.DataFrame({'frequency': [0.0, 2.0], 'recency': [0.0, 3.0], 'T': [5.0, 9.0]})\n"
        "print(m.probability_alive(s).sum())\n"
    )
    env = dict(os.environ, NUMBA_CACHE_DIR=str(tmp_path))
    root = Path(__file__).resolve().parents[2]
    env["PYTHONPATH"] = os.pathsep.join([str(root), env.get("PYTHONPATH", "")])
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
    )
    assert np.isfinite(float(out.stdout))
    assert list(tmp_path.rglob("*.nbi")) and list(tmp_path.rglob("*.nbc"))


@pytest.mark.parametrize("name", list(MODELS))
def test_without_numba_the_base_paths_give_the_same_values(name, monkeypatch):
    model = _model(name, PARAMS[0])
    summary = _whole_histories([0.0, 1.0, 4.0, 30.0], [0.0, 7.0, 100.0, 546.0])
    fast = model.alive_and_expected(summary, 30.0)
    monkeypatch.setattr(_scoring, "_kernels", lambda: None)
    np.testing.assert_allclose(model.alive_and_expected(summary, 30.0), fast, rtol=RTOL)
    np.testing.assert_allclose(
        model.probability_alive(summary), fast["probability_alive"], rtol=RTOL
    )
