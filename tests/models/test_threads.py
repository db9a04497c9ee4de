"""The shared thread pool (rfmml._threads) and predictions computed on several threads."""

from __future__ import annotations

import multiprocessing
import threading

import numpy as np
import pandas as pd
import pytest

from rfmml import _threads
from rfmml._threads import THREADS_ENV, run_all, thread_count
from rfmml.models import BetaGeoNBD, ParetoNBD, _grouping
from rfmml.models._grouping import map_rows


def test_thread_count_reads_the_environment(monkeypatch):
    monkeypatch.setenv(THREADS_ENV, "3")
    assert thread_count() == 3
    monkeypatch.delenv(THREADS_ENV)
    assert 1 <= thread_count() <= _threads.MAX_THREADS
    for bad in ("0", "two", "-1", "1.5"):
        monkeypatch.setenv(THREADS_ENV, bad)
        with pytest.raises(ValueError, match=f"{THREADS_ENV} must be a whole number >= 1"):
            thread_count()


def test_run_all_keeps_the_order_and_uses_the_pool(monkeypatch):
    monkeypatch.setenv(THREADS_ENV, "2")
    barrier = threading.Barrier(2, timeout=30)

    def task(i: int):
        def run():
            if i < 2:  # the first two meet: they run at the same time, on two threads
                barrier.wait()
            return i, threading.current_thread().name

        return run

    out = run_all([task(i) for i in range(6)])
    assert [i for i, _ in out] == list(range(6))
    assert {name for _, name in out[:2]} <= {"rfmml_0", "rfmml_1"}
    assert len({name for _, name in out[:2]}) == 2


def test_one_thread_runs_in_the_caller(monkeypatch):
    monkeypatch.setenv(THREADS_ENV, "1")
    names = run_all([lambda: threading.current_thread().name] * 3)
    assert names == [threading.current_thread().name] * 3


def test_a_task_running_pieces_runs_them_itself(monkeypatch):
    monkeypatch.setenv(THREADS_ENV, "2")

    def outer():
        me = threading.current_thread().name
        inner = run_all([lambda: threading.current_thread().name] * 4)
        return me, inner

    for me, inner in run_all([outer, outer]):
        assert inner == [me] * 4  # no task waits on the pool from inside it


def test_the_first_error_is_raised_after_every_task_ends(monkeypatch):
    monkeypatch.setenv(THREADS_ENV, "2")
    finished = []
    gate = threading.Event()

    def slow():
        gate.wait(30)
        finished.append("slow")

    def fail(message: str):
        def run():
            gate.set()
            raise KeyError(message)

        return run

    with pytest.raises(KeyError, match="first"):
        run_all([slow, fail("first"), fail("second")])
    assert finished == ["slow"]


def _child_result(queue) -> None:  # pragma: no cover - runs in a forked child
    queue.put(run_all([lambda: threading.current_thread().name] * 2))


def test_a_forked_child_gets_a_pool_of_its_own(monkeypatch):
    monkeypatch.setenv(THREADS_ENV, "2")
    run_all([lambda: 1, lambda: 2])  # the parent's pool exists and has threads
    context = multiprocessing.get_context("fork")
    queue = context.Queue()
    child = context.Process(target=_child_result, args=(queue,))
    child.start()
    names = queue.get(timeout=60)
    child.join(60)
    assert child.exitcode == 0
    assert set(names) <= {"rfmml_0", "rfmml_1"}


@pytest.mark.parametrize("unique", [True, False])
def test_map_rows_gives_the_same_bits_on_any_number_of_threads(unique, monkeypatch):
    rng = np.random.default_rng(7)
    x = rng.integers(0, 40, 5_000).astype(float)
    t = rng.uniform(0, 50, 5_000)
    monkeypatch.setattr(_grouping, "CHUNK_ROWS", 97)

    def fn(a, b):
        return np.column_stack([np.exp(-a / (b + 1.0)), np.log1p(a * b)])

    results = []
    for threads in ("1", "2", "3"):
        monkeypatch.setenv(THREADS_ENV, threads)
        results.append(map_rows(fn, x, t, unique=unique, chunk_rows=61))
    assert results[0].shape == (5_000, 2)
    for other in results[1:]:
        assert np.array_equal(results[0], other)


@pytest.mark.parametrize("model", [BetaGeoNBD, ParetoNBD])
def test_model_predictions_on_threads_equal_one_thread(model, cdnow_summary, monkeypatch):
    fitted = model().fit(cdnow_summary)
    monkeypatch.setattr(_grouping, "CHUNK_ROWS", 211)  # CDNOW's rows in about a dozen chunks

    def predictions() -> dict[str, np.ndarray]:
        return {
            "alive": fitted.probability_alive(cdnow_summary).to_numpy(),
            "expected": fitted.expected_purchases(cdnow_summary, 39.0).to_numpy(),
            "no_purchase": fitted.probability_no_purchase(cdnow_summary, 13.0).to_numpy(),
            "median": fitted.next_purchase_quantile(cdnow_summary).to_numpy(),
        }

    monkeypatch.setenv(THREADS_ENV, "1")
    one = predictions()
    monkeypatch.setenv(THREADS_ENV, "2")
    two = predictions()
    for name, values in one.items():
        assert np.array_equal(values, two[name], equal_nan=True), name
    assert isinstance(one["alive"], np.ndarray) and len(one["alive"]) == len(cdnow_summary)
    assert not pd.isna(one["expected"]).any()


@pytest.mark.parametrize("kind", ["whole", "fractional", "wide"])
def test_sorted_distinct_rows_are_those_of_distinct_order_by(kind):
    from rfmml.models._grouping import sorted_distinct_rows

    rng = np.random.default_rng(5)
    n = 20_000
    x = rng.integers(0, 30, n).astype(float)
    if kind == "whole":
        t = rng.integers(0, 400, n).astype(float)
    elif kind == "fractional":
        t = np.round(rng.uniform(0, 50, n), 1)
    else:  # distinct values too many to pack with the positions: the lexsort path
        t = rng.uniform(0, 1, n)
    columns = [x, t]
    if kind == "wide":  # 30 * 20,000**4 keys do not fit in 63 bits with 15 bits of position
        columns += [rng.uniform(0, 1, n) for _ in range(3)]
    columns = [np.concatenate([c, c[:1_000]]) for c in columns]  # some rows twice
    found = sorted_distinct_rows(*columns)
    assert found is not None
    distinct, codes = found
    frame = pd.DataFrame({str(i): c for i, c in enumerate(columns)})
    want = frame.drop_duplicates().sort_values(list(frame.columns), ignore_index=True)
    for i, values in enumerate(distinct):
        np.testing.assert_array_equal(values, want[str(i)].to_numpy())
        np.testing.assert_array_equal(values[codes], columns[i])
    assert codes.dtype == np.int64


@pytest.mark.parametrize(
    "kind", ["whole", "integers", "two columns", "one row", "one value", "negative",
             "fractional", "huge"],
)  # fmt: skip
def test_compiled_distinct_rows_are_the_numpy_steps_rows(kind, monkeypatch):
    """The compiled loops give the numpy steps' rows and numbers; other values fall back."""
    from rfmml.models._grouping import _sorted_distinct_compiled, sorted_distinct_rows

    rng = np.random.default_rng(7)
    n = 1 if kind == "one row" else 30_000
    columns = [rng.integers(0, 40, n).astype(float), rng.integers(0, 900, n).astype(float),
               rng.integers(0, 700, n).astype(float)]  # fmt: skip
    if kind == "integers":
        columns = [c.astype(np.int64) for c in columns]
    elif kind == "two columns":
        columns = columns[:2]
    elif kind == "one value":
        columns = [np.full(n, 3.0) for _ in columns]
    elif kind == "negative":
        columns[1][5] = -1.0
    elif kind == "fractional":
        columns[2][7] = 2.5
    elif kind == "huge":
        columns[0][9] = 2.0**24
    compiled = _sorted_distinct_compiled(columns)
    assert (compiled is None) == (kind in ("negative", "fractional", "huge"))
    monkeypatch.setattr(_grouping, "COMPILED_DISTINCT_MIN_ROWS", 0)
    found = sorted_distinct_rows(*columns)
    monkeypatch.setattr(_grouping, "COMPILED_DISTINCT_MIN_ROWS", 2**62)
    reference = sorted_distinct_rows(*columns)
    assert found is not None and reference is not None
    for got, want in zip(found[0], reference[0], strict=True):
        assert got.dtype == want.dtype
        np.testing.assert_array_equal(got, want)
    np.testing.assert_array_equal(found[1], reference[1])
    assert found[1].dtype == np.int64


@pytest.mark.parametrize("key_bits", [0, 1, 5, 11, 12, 22, 23, 34, 40])
@pytest.mark.parametrize("n", [0, 1, 2, 5_000])
def test_radix_sort_orders_packed_keys_as_numpy_sort(key_bits: int, n: int) -> None:
    """Keys (rank bits over the rows' positions) sorted by their rank bits: numpy's order."""
    kernel = pytest.importorskip("rfmml.models._grouping_kernel")
    rng = np.random.default_rng(key_bits * 7 + n)
    bits = max(n - 1, 1).bit_length()
    ranks = rng.integers(0, 2**key_bits, n, dtype=np.int64) if key_bits else np.zeros(n, np.int64)
    ranks[: n // 3] = ranks[n // 3 : 2 * (n // 3)]  # many keys equal in their rank bits
    keys = (rng.permutation(ranks) << bits) | np.arange(n, dtype=np.int64)
    want = np.sort(keys)
    spare = np.empty_like(keys)
    kernel.radix_sort(keys, bits, key_bits, spare)
    np.testing.assert_array_equal(keys, want)


@pytest.mark.parametrize("dtype", [np.uint8, np.uint32, np.uint64])
def test_radix_sort_orders_unsigned_numbers_by_all_their_bits(dtype) -> None:
    radix = pytest.importorskip("rfmml._radix")
    info = np.iinfo(dtype)
    rng = np.random.default_rng(info.bits)
    values = rng.integers(0, info.max, 10_001, dtype=dtype, endpoint=True)
    values[:5] = [info.max, 0, info.max, 1, info.max - 1]
    want = np.sort(values)
    radix.radix_sort(values, 0, info.bits, np.empty_like(values))
    np.testing.assert_array_equal(values, want)


def test_sorted_distinct_rows_refuse_nan():
    from rfmml.models._grouping import sorted_distinct_rows

    assert sorted_distinct_rows(np.array([1.0, np.nan]), np.array([1.0, 2.0])) is None
    assert sorted_distinct_rows(np.array([], dtype=float)) is None


def test_tasks_run_in_the_caller_when_no_thread_can_start(monkeypatch):
    from concurrent.futures import ThreadPoolExecutor

    monkeypatch.setenv(THREADS_ENV, "2")
    original = ThreadPoolExecutor.submit
    calls = {"n": 0}

    def limited(self, fn, /, *args, **kwargs):  # the second thread cannot start
        calls["n"] += 1
        if calls["n"] > 1:
            raise RuntimeError("can't start new thread")
        return original(self, fn, *args, **kwargs)

    monkeypatch.setattr(ThreadPoolExecutor, "submit", limited)
    assert run_all([lambda i=i: i * i for i in range(5)]) == [0, 1, 4, 9, 16]
    assert calls["n"] == 2  # one task on the pool, the four others here


def test_a_started_task_runs_beside_the_caller_who_may_use_the_pool(monkeypatch):
    from rfmml._threads import start

    monkeypatch.setenv(THREADS_ENV, "2")
    barrier = threading.Barrier(2, timeout=30)

    def beside():
        barrier.wait()  # meets the caller: both run at the same time
        return threading.current_thread().name, run_all([lambda: 1] * 3)

    started = start(beside)
    barrier.wait()
    # the caller's own pieces go to the pool meanwhile (the started task holds one thread)
    assert run_all([lambda i=i: i for i in range(4)]) == [0, 1, 2, 3]
    name, inner = started.result()
    assert name.startswith("rfmml_") and inner == [1, 1, 1]
    assert started.result() == (name, inner)  # asked again: the same value


def test_a_started_task_runs_in_the_caller_with_one_thread(monkeypatch):
    from rfmml._threads import start

    monkeypatch.setenv(THREADS_ENV, "1")
    calls = []
    started = start(lambda: calls.append(threading.current_thread().name) or len(calls))
    assert calls == []  # not run until asked for
    assert started.result() == 1 and started.result() == 1
    assert calls == [threading.current_thread().name]
    started.wait()


@pytest.mark.parametrize("threads", ["1", "2"])
def test_a_started_task_raises_when_its_value_is_asked_for(monkeypatch, threads):
    from rfmml._threads import start

    monkeypatch.setenv(THREADS_ENV, threads)

    def fails():
        raise ValueError("column 'T' is broken")

    started = start(fails)
    started.wait()  # waits, raises nothing
    for _ in range(2):  # asked again: the same error, the task not run again
        with pytest.raises(ValueError, match="column 'T' is broken"):
            started.result()
