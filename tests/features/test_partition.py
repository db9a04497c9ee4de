"""The compiled features pass partitions the rows by block of customers: the same values."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pytest

kernel = pytest.importorskip("rfmml.features._features_kernel")
partition_kernel = pytest.importorskip("rfmml.features._partition_kernel")

_US_PER_DAY = 86_400_000_000
_START = np.datetime64("2020-01-01T00:00:00", "us").astype(np.int64)


def _log(seed: int, sparse: bool) -> pd.DataFrame:
    """A shuffled log whose customers leave empty blocks of four and buy only after a cut.

    Compact ids (numbered by themselves) with a gap of 20 ids, or sparse ones
    (factorised, numbered through their rank); customers ``% 5 == 0`` and ``20..27`` buy only
    from 23 August 2021, one customer holds 300 rows, a fifth of the rows are on
    one customer's first day.
    """
    rng = np.random.default_rng(seed)
    ids = np.r_[np.arange(0, 40), np.arange(60, 100)]
    counts = rng.integers(1, 12, len(ids))
    counts[7] = 300
    customer = np.repeat(ids, counts)
    days = rng.integers(0, 900, len(customer))
    days[rng.random(len(customer)) < 0.2] = 0
    late = (customer % 5 == 0) | ((customer >= 20) & (customer < 28))
    days = np.where(late, rng.integers(600, 900, len(customer)), days)
    stamp = _START + days * _US_PER_DAY + rng.integers(0, _US_PER_DAY, len(customer))
    amount = np.round(rng.lognormal(3.0, 1.0, len(customer)), 2)
    amount[rng.random(len(customer)) < 0.05] = 0.0
    if sparse:
        customer = customer * 1_000_003 + 11
    order = rng.permutation(len(customer))
    return pd.DataFrame(
        {
            "customer_id": customer[order].astype(np.int64),
            "timestamp": stamp[order].astype("datetime64[us]"),
            "amount": amount[order],
        }
    )


def _arrays(tx: pd.DataFrame, with_amount: bool) -> tuple[Any, ...]:
    from rfmml.features.btyd import customer_numbers

    ids = tx["customer_id"].to_numpy()
    ts = tx["timestamp"].to_numpy().view(np.int64)
    amount = tx["amount"].to_numpy() if with_amount else None
    keys, lo, rank, _ = customer_numbers(ids)
    return keys, lo, rank, ts, amount


def test_the_partition_keeps_each_block_s_rows_in_the_log_s_order(monkeypatch) -> None:
    """Block ``b`` holds the rows before the cut of customers ``4b..4b+3``, in the log's order."""
    from rfmml.features._btyd_kernel import _units

    for sparse in (False, True):
        tx = _log(1, sparse)
        keys, lo, rank, ts, amount = _arrays(tx, True)
        customer = rank[keys] if len(rank) else keys - lo
        n_customers = int(customer.max()) + 1
        cut = int(_START + 500 * _US_PER_DAY)
        before = ts < cut
        for rows in ([0, len(ts)], [0, 100, len(ts)], [0, 7, 400, len(ts)]):
            local, stamp, units, bounds = partition_kernel.partition(
                keys, lo, rank, ts, amount, cut, n_customers, 2, rows
            )
            assert len(bounds) == (n_customers + 3) // 4 + 1 and bounds[-1] == before.sum()
            for b in range(len(bounds) - 1):
                mine = before & (customer // 4 == b)
                part = slice(bounds[b], bounds[b + 1])
                np.testing.assert_array_equal(local[part], customer[mine] % 4)
                np.testing.assert_array_equal(stamp[part], ts[mine])
                np.testing.assert_array_equal(units[part], [_units(a) for a in amount[mine]])
            empty = np.diff(bounds) == 0
            assert empty.any() and not empty.all(), sparse  # (the gap, customers 20..27)


def _features(tx: pd.DataFrame, with_amount: bool, cut: int, rfm_cut: int, freq: int,
              workers: int, keep_repeat: bool = False) -> Any:  # fmt: skip
    return kernel.features(*_arrays(tx, with_amount), cut, rfm_cut, freq, 10**6,
                           keep_repeat=keep_repeat, workers=workers)  # fmt: skip


def _same(got: Any, want: Any, label: str) -> None:
    assert (got is None) == (want is None), label
    if want is None:
        return
    for j, (g, w) in enumerate(zip(got, want, strict=True)):
        if isinstance(w, np.ndarray):
            assert g.dtype == w.dtype and g.tobytes() == w.tobytes(), (label, j)
        else:
            assert g == w, (label, j)


@pytest.mark.parametrize("sparse", [False, True])
def test_any_block_size_and_workers_give_one_block_s_arrays(sparse: bool, monkeypatch) -> None:
    """Blocks of 1, 2, 4 and 64 customers on 1-3 threads: one block's arrays, bit for bit."""
    tx = _log(2, sparse)
    cuts = [(int(_START + 500 * _US_PER_DAY), int(_START + 480 * _US_PER_DAY)),
            (int(_START + 1_000 * _US_PER_DAY),) * 2]  # fmt: skip
    for cut, rfm_cut in cuts:
        for freq in (0, 1, 2):
            for with_amount in (True, False):
                args = (tx, with_amount, cut, rfm_cut, freq)
                want = _features(*args, workers=1, keep_repeat=True)
                assert want is not None and len(want[0]) > 0
                for size in (1, 2, 4, 64):
                    monkeypatch.setattr(kernel, "BLOCK_CUSTOMERS", size)
                    for workers in (1, 2, 3):
                        got = _features(*args, workers=workers, keep_repeat=True)
                        _same(got, want, f"{cut} {freq} {with_amount} {size} {workers}")
                monkeypatch.undo()


def test_the_block_size_is_a_power_of_two(monkeypatch) -> None:
    monkeypatch.setattr(kernel, "BLOCK_CUSTOMERS", 12)
    with pytest.raises(ValueError, match="power of two, not 12"):
        _features(_log(3, False), True, 2**62, 2**62, 0, workers=1)


_ENDS = {"D": "2021-06-30 12:00", "W": "2021-07-04", "M": "2021-06-30"}  # (ends of periods)


@pytest.mark.parametrize("freq", ["D", "W", "M"])
def test_blocks_store_the_statement_s_table(freq: str, monkeypatch) -> None:
    """Blocks of four customers (empty ones, customers only after the end, sparse ids).

    The features table of the compiled pass on two threads equals the DuckDB
    statement's, bit for bit, with and without amounts.
    """
    from rfmml.data._scan import ScannedLog
    from rfmml.features import combined

    monkeypatch.setattr(kernel, "BLOCK_CUSTOMERS", 4)
    monkeypatch.setattr(combined, "THREADS_MIN_ROWS", 0)
    monkeypatch.setenv("RFMML_THREADS", "2")
    for sparse in (False, True):
        tx = _log(4, sparse)
        for columns in (["customer_id", "timestamp", "amount"], ["customer_id", "timestamp"]):
            log = ScannedLog.from_pandas(tx[columns])
            try:
                tables = []
                for threshold in (0, 10**12):  # the compiled pass, then the statement
                    monkeypatch.setattr(combined, "TABLE_COMPILED_MIN_ROWS", threshold)
                    table = combined.customer_features_table(
                        log, _ENDS[freq], freq=freq, table=f"t{threshold}"
                    )
                    assert (table.arrow is not None) == (threshold == 0)
                    tables.append(table.relation().to_arrow_table())
                    table.drop()
                assert 0 < tables[0].num_rows < tx["customer_id"].nunique()
                assert tables[0].equals(tables[1]), (sparse, columns)
            finally:
                log.close()
