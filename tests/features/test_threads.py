"""The compiled features pass on several threads gives one thread's arrays, bit for bit."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

kernel = pytest.importorskip("rfmml.features._features_kernel")

_US_PER_DAY = 86_400_000_000


def _same(got: Any, want: Any, label: str) -> None:
    """Equal results: arrays of the same dtype, shape and bytes (NaN positions and bits)."""
    assert (got is None) == (want is None), label
    if want is None:
        return
    assert len(got) == len(want), label
    for j, (g, w) in enumerate(zip(got, want, strict=True)):
        if isinstance(w, np.ndarray):
            assert g.dtype == w.dtype and g.shape == w.shape, (label, j)
            assert g.tobytes() == w.tobytes(), (label, j)
            np.testing.assert_array_equal(g, w, err_msg=f"{label} {j}")  # (NaN where NaN)
        else:
            assert g == w, (label, j)


def _columns(tx: pd.DataFrame) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """A log's ids, microseconds and amounts as the compiled pass reads them."""
    ts = tx["timestamp"].to_numpy().astype("datetime64[us]").view(np.int64)
    amount = tx["amount"].to_numpy(np.float64) if "amount" in tx.columns else None
    return tx["customer_id"].to_numpy(np.int64), ts, amount


def _pass(ids: np.ndarray, ts: np.ndarray, amount: np.ndarray | None, cut: int, rfm_cut: int,
          freq: int, workers: int, keep_repeat: bool = False) -> Any:  # fmt: skip
    """The kernel's columns of a log, plus the derived RFM columns, on ``workers`` threads."""
    from rfmml.features.btyd import customer_numbers

    keys, lo, rank, _ = customer_numbers(ids)
    end_day = (cut - 1) // _US_PER_DAY
    got = kernel.features(keys, lo, rank, ts, amount, cut, rfm_cut, freq, end_day,
                          keep_repeat=keep_repeat, workers=workers)  # fmt: skip
    if got is None:
        return None
    t0, t1, n, units = got[7:]
    seen = n > 0  # (t0 is the int64 maximum for customers without rows before rfm_cut)
    derived = kernel.rfm_columns(t0[seen], t1[seen], n[seen], units[seen], end_day, 30.0, 365.25,
                                 amount is not None, workers=workers)  # fmt: skip
    return (*got, *derived)


def _check_log(ids: np.ndarray, ts: np.ndarray, amount: np.ndarray | None, label: str) -> None:
    """Threads against one thread: every frequency, cut-offs at the end and inside the log."""
    last = int(ts.max())
    middle = int(np.median(ts))
    for cut, rfm_cut in ((last + 1, last + 1), (middle, middle - 7 * _US_PER_DAY)):
        for freq in (0, 1, 2):
            for keep_repeat in (False, True) if freq == 0 else (False,):
                args = (ids, ts, amount, cut, rfm_cut, freq)
                want = _pass(*args, workers=1, keep_repeat=keep_repeat)
                for workers in (2, 3):
                    got = _pass(*args, workers=workers, keep_repeat=keep_repeat)
                    _same(got, want, f"{label} cut={cut} freq={freq} workers={workers}")


@pytest.fixture(scope="module")
def cdnow(cdnow_tx: pd.DataFrame) -> pd.DataFrame:
    return cdnow_tx[["customer_id", "timestamp", "amount"]]


@pytest.fixture(scope="module")
def retail(online_retail_tx: pd.DataFrame) -> pd.DataFrame:
    """The bundled Online Retail log (18,532 rows), integer ids."""
    tx = online_retail_tx[["customer_id", "timestamp", "amount"]]
    return tx.assign(customer_id=tx["customer_id"].astype("int64"))


def test_cdnow(cdnow: pd.DataFrame) -> None:
    ids, ts, amount = _columns(cdnow)
    _check_log(ids, ts, amount, "cdnow")
    _check_log(ids, ts, None, "cdnow, no amount")
    _check_log(ids * 1_000 + 7, ts, amount, "cdnow, factorised ids")


def test_online_retail(retail: pd.DataFrame) -> None:
    ids, ts, amount = _columns(retail)
    _check_log(ids, ts, amount, "online retail")


def _simulated(seed: int, n_customers: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Customers with 1 to 150 rows (two with thousands: the heap sort), shuffled rows."""
    rng = np.random.default_rng(seed)
    counts = rng.integers(1, 150, n_customers)
    counts[[3, n_customers - 2]] = [3_000, 1_500]
    ids = np.repeat(np.arange(n_customers, dtype=np.int64) * 2 + 100, counts)
    order = rng.permutation(len(ids))
    ts = rng.integers(0, 900 * _US_PER_DAY, len(ids)) + 1_600_000_000_000_000
    amount = np.round(rng.lognormal(3.0, 1.0, len(ids)), 2)
    amount[rng.random(len(ids)) < 0.05] = 0.0
    return ids[order], ts[order], amount[order]


def test_simulated_many_rows() -> None:
    ids, ts, amount = _simulated(3, 400)
    _check_log(ids, ts, amount, "simulated")
    _check_log(ids, ts, None, "simulated, no amount")


def test_edge_cases() -> None:
    ids, ts, amount = _simulated(4, 50)
    # one customer, many rows
    one = np.full(len(ids), 42, np.int64)
    _check_log(one, ts, amount, "one customer")
    # one customer, one row
    _check_log(one[:1], ts[:1], amount[:1], "one row")
    # customers whose every row is after the cut-offs: not in the output
    late = ts + np.where(ids % 3 == 0, 2_000 * _US_PER_DAY, 0)
    _check_log(ids, late, amount, "customers without rows before the cut")
    # repeat spends of 2**53 units or more: NaN monetary values (flag 2), left to the caller
    big = np.where(ids % 7 == 2, 12_345_678.123456789, amount)
    want = _pass(ids, ts, big, int(ts.max()) + 1, int(ts.max()) + 1, 0, workers=1)
    assert want[5] == 2 and np.isnan(want[4]).any() and np.isnan(want[14]).any()
    _check_log(ids, ts, big, "big spends")
    # a customer's spend reaching the guard: None on any number of threads
    guard = np.where(ids == 100 + 2 * 48, 4e9, amount)  # (1,500 rows)
    assert _pass(ids, ts, guard, int(ts.max()) + 1, int(ts.max()) + 1, 0, workers=1) is None
    _check_log(ids, ts, guard, "spend guard")


def test_the_summary_on_threads(cdnow: pd.DataFrame) -> None:
    """The BTYD summary alone (``summarise``, the pandas path of ``btyd_summary``)."""
    from rfmml.features.btyd import customer_numbers

    for ids, ts, amount in (_columns(cdnow), _simulated(7, 300)):
        keys, lo, rank, _ = customer_numbers(ids)
        for amounts in (amount, None):
            for freq in (0, 2):
                args = (keys, lo, rank, ts, amounts, int(np.median(ts)), freq, 10**6)
                want = kernel.summarise(*args, keep_repeat=True)
                for workers in (2, 3):
                    got = kernel.summarise(*args, keep_repeat=True, workers=workers)
                    _same(got, want, f"summarise freq={freq} workers={workers}")


def test_block_ranges_have_as_many_rows() -> None:
    """The blocks of customers are aggregated on ranges of blocks with about as many rows each."""
    from rfmml.features._partition_kernel import partition
    from rfmml.features.btyd import customer_numbers

    ids, ts, _ = _simulated(5, 2_000)
    keys, lo, rank, _ = customer_numbers(ids)
    n_customers = int(keys.max()) - lo + 1
    bounds = partition(keys, lo, rank, ts, None, 2**62, n_customers, 4, [0, len(keys)])[3]
    n_blocks = (n_customers + 15) // 16
    assert len(bounds) == n_blocks + 1 and n_blocks > 200
    most = int(np.diff(bounds).max())  # (one block's rows: how far a range can be off)
    for workers in (1, 2, 3):
        split = kernel._split_blocks(bounds, workers)
        assert split[0] == 0 and split[-1] == n_blocks and len(split) == workers + 1
        for j in range(workers):
            rows = int(bounds[split[j + 1]] - bounds[split[j]])
            assert abs(rows - len(keys) / workers) <= most
    assert kernel._split_blocks(np.zeros(1, np.int64), 2) == [0, 0, 0]  # (no block)


def test_numpy_column_on_threads() -> None:
    rng = np.random.default_rng(6)
    parts = [rng.integers(-(2**62), 2**62, n) for n in (1_000, 0, 3, 20_000, 7)]
    chunked = pa.chunked_array(parts + [np.array([], np.int64)])
    stamps = pa.chunked_array([pa.array(p.astype("datetime64[us]")) for p in parts])
    floats = pa.chunked_array([p / 3.0 for p in parts] + [np.array([np.nan, -0.0])])
    for workers in (1, 2, 3):
        for column, integer, want in ((chunked, True, np.concatenate(parts)),
                                      (stamps, True, np.concatenate(parts)),
                                      (floats, False, floats.to_numpy())):  # fmt: skip
            got = kernel.numpy_column(column, integer=integer, workers=workers)
            assert got.dtype == want.dtype and got.tobytes() == want.tobytes()


def test_an_error_of_a_range_is_raised(monkeypatch: pytest.MonkeyPatch) -> None:
    from rfmml.features._threads import available_workers, run_ranges

    def fail_in_second(j: int, lo: int, hi: int) -> int:
        if j == 1:
            raise ValueError(f"range {lo}-{hi}")
        return hi - lo

    with pytest.raises(ValueError, match="range 5-9"):
        run_ranges(fail_in_second, [0, 5, 9])
    assert run_ranges(fail_in_second, [0, 4]) == [4]
    monkeypatch.setenv("RFMML_THREADS", "1")  # one core: one thread
    assert available_workers() == 1
    monkeypatch.setenv("RFMML_THREADS", "8")
    assert available_workers() == 2


@pytest.mark.parametrize("freq", ["D", "M"])
def test_features_table_on_threads(cdnow: pd.DataFrame, retail: pd.DataFrame, freq: str,
                                   monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    """``customer_features_table`` by the compiled pass stores the same table on threads."""
    from rfmml.data._scan import ScannedLog
    from rfmml.features import combined

    monkeypatch.setattr(combined, "TABLE_COMPILED_MIN_ROWS", 0)
    monkeypatch.setattr(combined, "THREADS_MIN_ROWS", 0)
    for tx in (cdnow, retail):
        log = ScannedLog.from_pandas(tx)
        try:
            tables = []
            for threads in ("1", "2"):  # (two threads on any machine)
                monkeypatch.setenv("RFMML_THREADS", threads)
                table = combined.customer_features_table(log, freq=freq, table=f"t{threads}")
                tables.append(table.relation().to_arrow_table())
                table.drop()
            assert tables[0].num_rows > 0
            assert tables[1].equals(tables[0])
            for a, b in zip(tables[0].columns, tables[1].columns, strict=True):
                assert a.to_numpy().tobytes() == b.to_numpy().tobytes()
        finally:
            log.close()


def test_btyd_summary_on_threads(cdnow: pd.DataFrame, retail: pd.DataFrame,
                                 monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    """``btyd_summary``'s compiled pass on a pandas log gives one thread's summary on two."""
    from rfmml.features import btyd, btyd_summary

    monkeypatch.setattr(btyd, "COMPILED_MIN_ROWS", 0)
    monkeypatch.setattr(btyd, "THREADS_MIN_ROWS", 0)
    for tx in (cdnow, retail):
        summaries = []
        for threads in ("1", "2"):  # (two threads on any machine)
            monkeypatch.setenv("RFMML_THREADS", threads)
            summaries.append(btyd_summary(tx, freq="W"))
        pd.testing.assert_frame_equal(summaries[0], summaries[1], check_exact=True)
        assert len(summaries[0]) == tx["customer_id"].nunique()
