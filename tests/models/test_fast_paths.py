"""The faster evaluation paths of issue 11 equal the paths they replace.

Each replaced formula path is compared with the previous one (kept here as a
reference written in its original form) over a wide grid of parameters and
histories, including large frequencies and ages; the grouping shortcuts are
compared with the hash-table paths they bypass.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy.special import expit

from rfmml.models import (
    BetaGeoBetaBinom,
    BetaGeoNBD,
    ModifiedBetaGeoNBD,
    ParetoNBD,
    _fitting,
    _grouping,
    simulate_mbgnbd,
    simulate_pareto_nbd,
)
from rfmml.models import _formulas_mbgnbd as M
from rfmml.models import _formulas_pareto as P

RTOL = 1e-10  # the bound for every speed change

#: histories (x, t_x, T): up to 10,000 purchases and ages of 100,000 periods
X = np.array([0.0, 1.0, 2.0, 7.0, 40.0, 300.0, 10_000.0])
T = np.array([1e-3, 0.5, 3.0, 39.0, 546.0, 5_000.0, 100_000.0])
FRACTIONS = np.array([0.0, 1e-6, 0.1, 0.5, 0.9, 1.0 - 1e-9, 1.0])


def _histories() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    x, T_, f = (g.ravel() for g in np.meshgrid(X, T, FRACTIONS, indexing="ij"))
    t_x = np.where(x > 0, f * T_, 0.0)
    return x, t_x, T_


#: (r, alpha, a or s, b or beta): CDNOW-like, tiny and large shapes, both alpha < beta and >
PARAMS = [
    (0.525, 6.183, 0.891, 1.614),
    (0.553, 10.58, 0.606, 11.67),
    (0.553, 11.67, 0.606, 10.58),
    (0.05, 0.1, 0.05, 0.1),
    (5.0, 200.0, 3.0, 0.2),
    (2.0, 1.0, 20.0, 50.0),
]


@pytest.mark.parametrize("theta", PARAMS)
def test_mbgnbd_probability_alive_equals_expit_of_the_log_odds(theta):
    x, t_x, T_ = _histories()
    fast = M.mbgnbd_probability_alive(x, t_x, T_, *theta)
    reference = expit(-M._log_dead_odds(x, t_x, T_, *theta))  # the previous path
    np.testing.assert_allclose(fast, reference, rtol=RTOL, atol=0.0)
    assert M.mbgnbd_probability_alive(0.0, 0.0, 0.0, *theta) == pytest.approx(
        theta[3] / (theta[2] + theta[3]), rel=1e-15
    )


@pytest.mark.parametrize("theta", PARAMS)
def test_pareto_probability_alive_equals_the_likelihood_share(theta):
    x, t_x, T_ = _histories()
    fast = P.pareto_nbd_probability_alive(x, t_x, T_, *theta)
    e1, q, _ = P._likelihood_terms(x, t_x, T_, *theta)
    reference = np.minimum(np.exp(e1 - q), 1.0)  # the previous path
    np.testing.assert_allclose(fast, reference, rtol=RTOL, atol=1e-300)
    assert np.all(np.isfinite(fast))  # x >= 300 with alpha / beta = 1000 included
    assert np.all(fast[t_x == T_] == 1.0)


@pytest.mark.parametrize("theta", PARAMS)
def test_pareto_expected_purchases_is_the_factor_given_alive_times_p_alive(theta):
    r, alpha, s, beta = theta
    x, t_x, T_ = _histories()
    alive = P.pareto_nbd_probability_alive(x, t_x, T_, *theta)
    for t in (0.0, 1e-6, 30.0, 1e4):
        bT = beta + T_
        # note 009 eq. (41) as evaluated before the factor had its own function
        reference = (r + x) * bT / (alpha + T_) * P._one_minus_power_over(s - 1.0, np.log1p(t / bT))
        got = P.pareto_nbd_expected_purchases_if_alive(t, x, T_, *theta)
        np.testing.assert_array_equal(got, reference)
        np.testing.assert_array_equal(
            P.pareto_nbd_expected_purchases(t, x, t_x, T_, *theta), reference * alive
        )


def _hash_grouping(monkeypatch) -> None:
    """Force the hash-table paths of _grouping (no dense keys, no sorted keys)."""
    monkeypatch.setattr(_grouping, "_dense_limit", lambda n: -1)
    monkeypatch.setattr(_grouping, "_unique_whole_rows", lambda arrays, weights: None)


@pytest.mark.parametrize("dtype", [np.float64, np.int64])
def test_dense_grouping_equals_hashing(dtype, monkeypatch):
    rng = np.random.default_rng(1)
    a = rng.integers(0, 80, 20_000).astype(dtype)
    b = rng.integers(180, 547, 20_000).astype(dtype)
    codes, first = _grouping.group_rows(a, b)
    assert np.array_equal(a[first][codes], a) and np.array_equal(b[first][codes], b)
    order = np.lexsort((b[first], a[first]))
    assert np.array_equal(order, np.arange(len(first)))  # numbered in sorted order
    _hash_grouping(monkeypatch)
    codes_h, first_h = _grouping.group_rows(a, b, sort=True)
    assert np.array_equal(codes, codes_h)
    assert np.array_equal(a[first], a[first_h]) and np.array_equal(b[first], b[first_h])


@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("n_columns", [2, 3])
def test_unique_whole_rows_equal_the_hash_path(weighted, n_columns, monkeypatch):
    rng = np.random.default_rng(2)
    n = 30_000
    x = rng.integers(0, 60, n).astype(float)
    T_ = rng.integers(181, 547, n).astype(float)
    t_x = np.floor(rng.uniform(0, 1, n) * T_) * (x > 0)
    columns = {"x": x, "t_x": t_x, "T": T_} if n_columns == 3 else {"x": x, "T": T_}
    weights = rng.uniform(0.5, 3.0, n) if weighted else np.ones(n)
    rows, counts = _grouping.unique_rows(columns, weights)
    _hash_grouping(monkeypatch)
    rows_h, counts_h = _grouping.unique_rows(columns, weights)
    for k in columns:
        assert np.array_equal(rows[k], rows_h[k]) and rows[k].dtype == rows_h[k].dtype
    np.testing.assert_array_equal(counts, counts_h)


@pytest.mark.parametrize("presorted", [True, False])
def test_distinct_weighted_rows_come_back_in_key_order_with_their_weights(presorted):
    """Rows collapsed already (DuckDB's or the grouping's, with counts): sorted or not."""
    rng = np.random.default_rng(5)
    n = 200_000  # a key range too wide for the dense table
    x = rng.integers(0, 60, n).astype(float)
    T_ = rng.integers(1, 2_000, n).astype(float)
    t_x = np.floor(rng.uniform(0, 1, n) * T_) * (x > 0)
    codes, first = _grouping.group_rows(x, t_x, T_, sort=True)
    rows = {"x": x[first], "t_x": t_x[first], "T": T_[first]}
    weights = rng.integers(1, 9, len(first)).astype(float)
    expected = {k: v.copy() for k, v in rows.items()}
    if not presorted:
        order = rng.permutation(len(first))
        rows = {k: v[order] for k, v in rows.items()}
        weights_in = weights[order]
    else:
        weights_in = weights.copy()
    got, counts = _grouping.unique_rows(rows, weights_in)
    for k in rows:
        assert np.array_equal(got[k], expected[k]) and got[k].dtype == expected[k].dtype
    np.testing.assert_array_equal(counts, weights)
    assert not np.shares_memory(counts, weights_in)  # the caller's weights stay theirs


@pytest.mark.parametrize("presorted", [True, False])
def test_distinct_continuous_rows_come_back_sorted_with_their_weights(presorted):
    """Spend rows collapsed already (DuckDB's ORDER BY): the sort path's rows and counts."""
    rng = np.random.default_rng(6)
    x = np.sort(rng.integers(1, 20, 50_000)).astype(float)
    m = rng.lognormal(3.0, 1.0, 50_000)
    order = np.lexsort((m, x))
    rows = {"x": x[order], "m": m[order]}
    weights = rng.integers(1, 5, 50_000).astype(float)
    shuffled = rng.permutation(50_000) if not presorted else np.arange(50_000)
    got, counts = _grouping.unique_rows({k: v[shuffled] for k, v in rows.items()},
                                        weights[shuffled])  # fmt: skip
    for k in rows:
        assert np.array_equal(got[k], rows[k])
    np.testing.assert_array_equal(counts, weights)
    nan = {"x": np.array([1.0, 1.0]), "m": np.array([np.nan, 2.0])}
    assert not _grouping._strictly_increasing(list(nan.values()))
    assert not _grouping._strictly_increasing([np.array([1.0, 1.0]), np.array([2.0, 2.0])])


@pytest.mark.parametrize(
    "x", [np.arange(40.0) % 7, np.array([3.0]), np.array([0.0, 0.0]), np.array([0.5, 2.0, 0.5])]
)
def test_frequency_levels_are_numpy_unique_levels_and_index(x):
    fields, index = _grouping.frequency_levels(np.ones(len(x)), x=x)
    levels, inverse = np.unique(x, return_inverse=True)
    assert np.array_equal(fields["x_levels"], levels) and fields["x_levels"].dtype == levels.dtype
    assert np.array_equal(index, inverse) and index.dtype == inverse.dtype
    np.testing.assert_array_equal(fields["level_weights"], np.bincount(inverse))


@pytest.mark.parametrize("whole", [True, False])
def test_time_levels_index_back_to_every_value(whole):
    """``_levels`` of T or t_x: distinct values whose index gives every row's value back."""
    from rfmml.models import _formulas as FM

    rng = np.random.default_rng(7)
    values = rng.integers(0, 600, 300_000).astype(float)
    if not whole:
        values = values + 0.5  # few distinct values, not whole: hashed
    levels, index = FM._levels(values)
    assert levels is not None and index.dtype == np.intp
    assert np.array_equal(levels[index], values) and len(np.unique(levels)) == len(levels)
    assert FM._levels(rng.uniform(0, 600, 300_000)) == (None, None)  # continuous: no levels


def test_map_rows_decoded_unique_rows_equal_in_order_evaluation():
    rng = np.random.default_rng(3)
    x = rng.integers(0, 30, 50_000).astype(float)
    T_ = rng.integers(0, 400, 50_000).astype(float)
    t = np.full(50_000, 30.0)

    def fn(t, x, T):
        return M.mbgnbd_expected_purchases_if_alive(t, x, T, *PARAMS[0])

    np.testing.assert_array_equal(
        _grouping.map_rows(fn, t, x, T_), _grouping.map_rows(fn, t, x, T_, unique=False)
    )


def _summary(kind: str, n: int = 3_000) -> pd.DataFrame:
    rng = np.random.default_rng(4)
    if kind == "BetaGeoBetaBinom":
        n_opp = rng.integers(4, 16, n).astype(float)
        x = np.floor(rng.uniform(0, 1, n) * (n_opp + 1))
        t_x = np.where(x > 0, np.maximum(x, np.floor(rng.uniform(0, 1, n) * (n_opp + 1))), 0.0)
        return pd.DataFrame({"frequency": x, "recency": t_x, "T": n_opp})
    T_ = np.floor(546.0 - rng.uniform(0, 365, n))
    sim = simulate_pareto_nbd if kind == "ParetoNBD" else simulate_mbgnbd
    params = (
        {"r": 0.553, "alpha": 74.0, "s": 0.606, "beta": 81.7}
        if kind == "ParetoNBD"
        else {"r": 0.525, "alpha": 43.3, "a": 0.891, "b": 1.614}
    )
    s = sim(n, T_, params, random_state=rng)
    s["recency"] = np.floor(s["recency"].to_numpy())
    return s[["frequency", "recency", "T"]]


@pytest.mark.parametrize(
    ("cls", "theta"),
    [
        (BetaGeoNBD, {"r": 0.243, "alpha": 30.9, "a": 0.793, "b": 2.426}),
        (ModifiedBetaGeoNBD, {"r": 0.525, "alpha": 43.3, "a": 0.891, "b": 1.614}),
        (ParetoNBD, {"r": 0.553, "alpha": 74.0, "s": 0.606, "beta": 81.7}),
        (BetaGeoBetaBinom, {"alpha": 1.204, "beta": 0.75, "gamma": 0.657, "delta": 2.784}),
    ],
)
def test_alive_and_expected_equals_the_two_methods(cls, theta):
    model = cls()
    model.params_ = pd.Series(theta)
    model.freq_ = None
    kind = "BetaGeoBetaBinom" if cls is BetaGeoBetaBinom else cls.__name__
    summary = _summary(kind if kind != "BetaGeoNBD" else "ModifiedBetaGeoNBD")
    one = 5 if cls is BetaGeoBetaBinom else 30.0
    per_customer = np.arange(len(summary)) % 7 + (1 if cls is BetaGeoBetaBinom else 0.5)
    alive = model.probability_alive(summary)
    for horizon in (one, per_customer):
        both = model.alive_and_expected(summary, horizon)
        assert list(both.columns) == ["probability_alive", "expected_purchases"]
        assert both.index.equals(summary.index)
        np.testing.assert_array_equal(both["probability_alive"], alive)
        np.testing.assert_array_equal(
            both["expected_purchases"], model.expected_purchases(summary, horizon)
        )
    # one horizon given per customer takes the general path: the same values
    np.testing.assert_allclose(
        model.expected_purchases(summary, np.full(len(summary), one)),
        model.expected_purchases(summary, one),
        rtol=1e-14,
    )


@pytest.mark.parametrize("cls", [ModifiedBetaGeoNBD, ParetoNBD])
def test_warm_start_reaches_the_cold_optimum(cls, monkeypatch):
    # the subsample warm start (above WARM_START_ROWS unique rows) and plain L-BFGS-B both
    # stop at max|gradient| < 1e-10 of the mean objective: optima agree to ~1e-7
    summary = _summary(cls.__name__, 40_000)
    warm = cls().fit(summary)
    assert warm.n_unique_rows_ > _fitting.WARM_START_ROWS
    assert warm.convergence_["warm_start_from_subsample"]
    monkeypatch.setattr(_fitting, "WARM_START_ROWS", 10**9)
    cold = cls().fit(summary)
    assert not cold.convergence_["warm_start_from_subsample"]
    np.testing.assert_allclose(warm.params_, cold.params_, rtol=1e-5)
    assert warm.log_likelihood_ == pytest.approx(cold.log_likelihood_, rel=1e-11)


def test_blockwise_summary_checks_find_rows_in_any_block(monkeypatch):
    from rfmml.errors import DataError
    from rfmml.models import _validation

    monkeypatch.setattr(_validation, "_BLOCK", 7)
    n = 100
    base = pd.DataFrame({"frequency": np.ones(n), "recency": np.ones(n), "T": np.full(n, 2.0)})
    for column, value, match in [
        ("frequency", 0.5, "frequency must be an integer"),
        ("recency", 3.0, "recency must be <= T"),
    ]:
        bad = base.copy()
        bad.loc[93, column] = value
        with pytest.raises(DataError, match=match):
            _validation.check_summary(bad)
    bad = base.copy()
    bad.loc[95, "frequency"] = 0.0
    with pytest.raises(DataError, match="0 for customers with frequency 0"):
        _validation.check_summary(bad)
