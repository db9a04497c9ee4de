"""Predictions in bounded chunks equal the unchunked predictions.

``rfmml.models._grouping.CHUNK_ROWS`` (rows per evaluation and the size of
the sample that decides whether rows collapse) and
``rfmml.models.clv.CLV_CHUNK_ELEMENTS`` are forced to a few rows; every
prediction and the CLV must then match the default (single-chunk) run. The
elementwise closed forms give identical values; the integral form of
E[Y(t) | alive] picks its quadrature rule from the largest horizon in a
chunk (within rounding, 1e-13), and the next-order quantile is solved per
row to a relative bracket of 1e-12, hence ``rtol=1e-12``.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from rfmml.models import (
    BetaGeoNBD,
    _grouping,
    clv,
    customer_lifetime_value,
    simulate_bgnbd,
    simulate_gamma_gamma,
)
from rfmml.models._grouping import map_rows

RTOL = 1e-12  # see the module docstring


@pytest.fixture(scope="module")
def continuous_summary() -> pd.DataFrame:
    """1,500 simulated customers with fractional recency and T (weeks), mean spends."""
    rng = np.random.default_rng(42)
    T = 78.0 - rng.uniform(0.0, 52.0, size=1_500)
    params = {"r": 0.243, "alpha": 4.414, "a": 0.793, "b": 2.426}
    s = simulate_bgnbd(1_500, T, params, random_state=rng)
    s["monetary_value"] = simulate_gamma_gamma(
        s["frequency"].to_numpy(), {"p": 6.25, "q": 3.74, "v": 15.44}, random_state=rng
    )
    assert (s["T"] != np.floor(s["T"])).all()  # nothing collapses
    return s


class _AnyPurchaseModel(BetaGeoNBD):
    """BG/NBD seen as any purchase model: the CLV asks it for expected_purchases per period."""


def _count_chunk_rows(monkeypatch, modules: tuple[str, ...]) -> list[int]:
    """Record the rows of every chunk that ``map_rows`` hands to a prediction in ``modules``."""
    calls: list[int] = []
    original = _grouping.map_rows

    def spy(fn, *columns, **kwargs):
        def counted(*c):
            calls.append(len(c[0]))
            return fn(*c)

        return original(counted, *columns, **kwargs)

    for module in modules:
        monkeypatch.setattr(f"rfmml.models.{module}.map_rows", spy)
    return calls


def _predictions(bg: BetaGeoNBD, gg, summary: pd.DataFrame) -> dict[str, np.ndarray]:
    per_customer_t = np.linspace(0.5, 40.0, len(summary))
    generic = _AnyPurchaseModel()
    generic.params_ = bg.params_
    few = summary.iloc[::3]  # the quantile solver is slow with 7-row chunks (per-call cost)
    out = {
        "probability_alive": bg.probability_alive(summary),
        "expected_purchases": bg.expected_purchases(summary, 10.0),
        "expected_purchases_per_customer_t": bg.expected_purchases(summary, per_customer_t),
        "expected_purchases_short": bg.expected_purchases(summary, 1e-3),  # integral form
        "probability_no_purchase": bg.probability_no_purchase(summary, 10.0),
        "probability_never_again": bg.probability_no_purchase(summary, np.inf),
        "probability_purchase_within": bg.probability_purchase_within(summary, per_customer_t),
        "probability_repeat_purchase": bg.probability_repeat_purchase(summary, 10.0),
        "log_likelihood": bg.log_likelihood(summary),
        "next_purchase_median": bg.next_purchase_quantile(few, 0.5),
        "expected_order_value": gg.expected_order_value(summary),
        "gamma_gamma_log_likelihood": gg.log_likelihood(summary),
        "clv": customer_lifetime_value(bg, gg, summary, horizon=10, discount_rate=0.01),
        "clv_any_purchase_model": customer_lifetime_value(
            generic, gg, summary, horizon=10, discount_rate=0.01
        ),
    }
    return {k: v.to_numpy() for k, v in out.items()}


@pytest.mark.parametrize("data", ["cdnow", "continuous"])
@pytest.mark.parametrize("collapse", [0.0, 1.0], ids=["in-order", "unique-rows"])
def test_chunked_predictions_equal_unchunked(
    data, collapse, request, monkeypatch, cdnow_bgnbd, cdnow_gamma_gamma
):
    summary = request.getfixturevalue("cdnow_summary" if data == "cdnow" else "continuous_summary")
    # every 5th customer (about 470 and 300): still 40 to 70 chunks of 7 rows, each chunk
    # a Python call per prediction, so the whole summaries would only cost more time
    summary = summary.iloc[::5]
    expected = _predictions(cdnow_bgnbd, cdnow_gamma_gamma, summary)  # one chunk each

    sizes = _count_chunk_rows(monkeypatch, ("bgnbd", "gamma_gamma", "clv", "_base"))
    monkeypatch.setattr(_grouping, "CHUNK_ROWS", 7)
    monkeypatch.setattr(_grouping, "COLLAPSE_MAX_FRACTION", collapse)
    monkeypatch.setattr(clv, "CLV_CHUNK_ELEMENTS", 33)  # 3 rows x 11 periods
    chunked = _predictions(cdnow_bgnbd, cdnow_gamma_gamma, summary)

    assert sizes and max(sizes) <= 7  # the chunks really were small
    for name, values in expected.items():
        assert not np.isnan(values).any() or name == "gamma_gamma_log_likelihood"
        np.testing.assert_allclose(chunked[name], values, rtol=RTOL, atol=0, err_msg=name)


def test_clv_of_any_purchase_model_equals_the_bgnbd_closed_path(
    continuous_summary, cdnow_bgnbd, cdnow_gamma_gamma
):
    generic = _AnyPurchaseModel()
    generic.params_ = cdnow_bgnbd.params_
    args = (cdnow_gamma_gamma, continuous_summary, 26, 0.02)
    ours = customer_lifetime_value(cdnow_bgnbd, *args).to_numpy()
    theirs = customer_lifetime_value(generic, *args).to_numpy()
    # P(alive) factored out of the sum or not: rounding only
    np.testing.assert_allclose(theirs, ours, rtol=1e-12)
    assert ours.sum() > 0


def _spy(calls: list[int]):
    def fn(a, b):
        calls.append(len(a))
        return 10.0 * a + b

    return fn


def test_map_rows_collapses_repeated_rows_in_bounded_chunks(monkeypatch):
    monkeypatch.setattr(_grouping, "CHUNK_ROWS", 64)
    rng = np.random.default_rng(42)
    a = rng.integers(0, 5, 1_000).astype(float)  # 10 distinct rows, repeated
    b = rng.integers(0, 2, 1_000).astype(float)
    calls: list[int] = []
    out = map_rows(_spy(calls), a, b, chunk_rows=3)
    np.testing.assert_array_equal(out, 10.0 * a + b)
    assert sum(calls) == 10 and max(calls) <= 3  # once per distinct row, 3 at a time


def test_map_rows_slices_distinct_rows_in_order(monkeypatch):
    monkeypatch.setattr(_grouping, "CHUNK_ROWS", 64)
    rng = np.random.default_rng(42)
    a, b = rng.uniform(size=1_000), rng.uniform(size=1_000)  # no repeats
    calls: list[int] = []
    out = map_rows(_spy(calls), a, b)
    np.testing.assert_array_equal(out, 10.0 * a + b)
    assert sum(calls) == 1_000 and max(calls) == 64


def test_map_rows_without_unique_never_groups(monkeypatch):
    monkeypatch.setattr(_grouping, "group_rows", None)  # would raise if called
    a = np.repeat([1.0, 2.0], 50)
    calls: list[int] = []
    out = map_rows(_spy(calls), a, a, unique=False, chunk_rows=40)
    np.testing.assert_array_equal(out, 11.0 * a)
    assert calls == [40, 40, 20]


def test_map_rows_constant_columns_and_empty_input():
    calls: list[int] = []
    out = map_rows(_spy(calls), np.full(5, 2.0), np.full(5, 1.0))
    np.testing.assert_array_equal(out, np.full(5, 21.0))
    assert calls == [1]
    assert map_rows(_spy([]), np.empty(0), np.empty(0)).shape == (0,)


NEW_MODELS = {
    # published CDNOW (weeks) and donations estimates: Hardie notes 009, MBG/NBD paper, FHS10
    "ParetoNBD": {"r": 0.553, "alpha": 10.58, "s": 0.606, "beta": 11.67},
    "ModifiedBetaGeoNBD": {"r": 0.525, "alpha": 6.183, "a": 0.891, "b": 1.614},
    "BetaGeoBetaBinom": {"alpha": 1.204, "beta": 0.750, "gamma": 0.657, "delta": 2.784},
}


def _new_model_predictions(model, summary, gg) -> dict[str, np.ndarray]:
    horizon = 5 if type(model).__name__ == "BetaGeoBetaBinom" else 10.0
    out = {
        "probability_alive": model.probability_alive(summary),
        "expected_purchases": model.expected_purchases(summary, horizon),
        "probability_no_purchase": model.probability_no_purchase(summary, horizon),
        "probability_never_again": model.probability_no_purchase(summary, np.inf),
        "log_likelihood": model.log_likelihood(summary),
        "next_purchase_median": model.next_purchase_quantile(summary.iloc[::3], 0.5),
    }
    if "monetary_value" in summary:
        out["clv"] = customer_lifetime_value(model, gg, summary, horizon=6, discount_rate=0.01)
    return {k: v.to_numpy() for k, v in out.items()}


@pytest.mark.parametrize("kind", sorted(NEW_MODELS))
def test_new_purchase_models_chunk_through_map_rows(
    kind, monkeypatch, continuous_summary, cdnow_gamma_gamma
):
    from rfmml.models import model_class, simulate_bgbb

    model = model_class(kind)()
    model.params_ = pd.Series(NEW_MODELS[kind])
    model.freq_ = None
    summary = continuous_summary
    if kind == "BetaGeoBetaBinom":
        rng = np.random.default_rng(42)
        summary = simulate_bgbb(1_500, rng.integers(4, 16, 1_500), NEW_MODELS[kind], rng)
    summary = summary.iloc[::5]  # 300 customers: 43 chunks of 7 rows
    expected = _new_model_predictions(model, summary, cdnow_gamma_gamma)

    calls = _count_chunk_rows(monkeypatch, ("clv", "_base"))
    monkeypatch.setattr(_grouping, "CHUNK_ROWS", 7)
    monkeypatch.setattr(clv, "CLV_CHUNK_ELEMENTS", 21)  # 3 rows x 7 periods
    chunked = _new_model_predictions(model, summary, cdnow_gamma_gamma)

    assert calls and max(calls) <= 7
    for name, values in expected.items():
        assert not np.isnan(values).any(), name
        np.testing.assert_allclose(chunked[name], values, rtol=RTOL, atol=0, err_msg=name)


@pytest.mark.parametrize(
    "theta",
    [
        (0.243, 4.414, 0.793, 2.426),  # CDNOW (weeks), FHL05
        (0.243, 4.414, 1.00001, 2.426),  # a near 1: integral form at the nodes
        (2.0, 10.0, 0.05, 0.2),  # a + b < 1: integral form for x = 0
        (0.5, 1.0, 3.0, 0.3),
    ],
)
def test_if_alive_sum_table_equals_the_direct_sum(theta):
    from rfmml.models import _formulas as F

    rng = np.random.default_rng(42)
    x = rng.integers(0, 40, 2_000).astype(float)
    T = rng.uniform(0.0, 78.0, 2_000)
    steps = np.arange(53.0)
    discount = 1.01 ** -steps[1:]
    e = F.bgnbd_expected_purchases_if_alive(steps[:, None], x[None, :], T[None, :], *theta)
    direct = discount @ (e[1:] - e[:-1])
    weights = discount - np.append(discount[1:], 0.0)  # summation by parts
    table = F.bgnbd_if_alive_sum_table(steps[1:], weights, x, T.min(), T.max(), *theta)
    # the closed form's own rounding error is up to ~1e-13 relative (FHL05 eq. 10 at
    # 1 - G ~ 1e-4); the interpolation error is far below that
    np.testing.assert_allclose(F.bgnbd_if_alive_sum(table, x, T), direct, rtol=1e-12)


@pytest.mark.parametrize("data", ["cdnow_summary", "continuous_summary"])
def test_likelihood_in_blocks_equals_one_block(data, request, monkeypatch):
    from rfmml.models import _formulas as F

    s = request.getfixturevalue(data)
    args = (s["frequency"].to_numpy(), s["recency"].to_numpy(), s["T"].to_numpy())
    weights = np.linspace(1.0, 3.0, len(s))
    theta = (0.243, 4.414, 0.793, 2.426)
    one = F.bgnbd_total_log_likelihood_and_gradient(*theta, F.bgnbd_prepare(*args, weights))
    monkeypatch.setattr(F, "LIKELIHOOD_BLOCK_ROWS", 7)
    prepared = F.bgnbd_prepare(*args, weights)
    assert prepared.scratch.shape == (8, 7)
    blocks = F.bgnbd_total_log_likelihood_and_gradient(*theta, prepared)
    # sums of ~2,000 terms in another order: rounding only
    assert blocks[0] == pytest.approx(one[0], rel=1e-12)
    np.testing.assert_allclose(blocks[1], one[1], rtol=1e-10)


@pytest.mark.parametrize("unique", [True, False])
def test_map_rows_gathers_several_values_per_row(unique, monkeypatch):
    monkeypatch.setattr(_grouping, "CHUNK_ROWS", 64)
    rng = np.random.default_rng(42)
    a = rng.integers(0, 5, 1_000).astype(float)  # repeated rows: collapsed when unique

    def interval(a):
        return np.column_stack([a - 1.0, a + 1.0])

    out = map_rows(interval, a, unique=unique, chunk_rows=3)
    np.testing.assert_array_equal(out, interval(a))
    assert map_rows(interval, np.full(4, 2.0)).shape == (4, 2)
