"""One aggregation pass gives the same RFM table and BTYD summary as two."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import pandas as pd
import pytest

from rfmml.data import load_cdnow, load_online_retail, scan_transactions, simulate_transactions
from rfmml.features import btyd_summary, customer_features, rfm_table


def _check(tx: Any, reference: pd.DataFrame, end: Any, freq: str, group: str | None) -> None:
    features, summary = customer_features(tx, end, freq, group, min_tenure_days=30)
    want_features = rfm_table(reference, end, group, min_tenure_days=30)
    want_summary = btyd_summary(reference, end, freq, group)
    for got, want in ((features, want_features), (summary, want_summary)):
        assert list(got.columns) == list(want.columns)
        for column in want.columns:
            pd.testing.assert_series_equal(got[column], want[column], check_exact=False,
                                           rtol=1e-12)  # fmt: skip
        assert got.attrs == want.attrs


@pytest.mark.parametrize("freq", ["D", "W", "M"])
@pytest.mark.parametrize("end", [None, "1998-03-31", "1997-12-31 12:00", "1997-06-15"])
def test_cdnow(freq: str, end: Any) -> None:
    tx = load_cdnow()
    _check(tx, tx, end, freq, None)
    _check(tx.drop(columns="amount"), tx.drop(columns="amount"), end, freq, None)


@pytest.mark.parametrize("freq", ["D", "W"])
def test_online_retail_by_country(freq: str) -> None:
    tx = load_online_retail()
    _check(tx, tx, "2011-09-30", freq, "country")  # order_id: two passes
    single = tx.drop(columns="order_id")
    _check(single, single, "2011-09-30", freq, "country")
    _check(single, single, None, freq, None)


def test_simulated_log_scanned_in_duckdb(tmp_path: Path) -> None:
    tx = simulate_transactions(2_000, random_state=5)
    path = tmp_path / "sim.parquet"
    tx.to_parquet(path)
    log, _ = scan_transactions(path)
    try:
        reference = log.to_pandas()
        for freq in ("D", "W", "M"):
            _check(log, reference, None, freq, None)
            _check(log, reference, "2020-06-30", freq, None)
        pd.testing.assert_frame_equal(
            btyd_summary(log, freq="W"), btyd_summary(reference, freq="W")
        )
        pd.testing.assert_frame_equal(rfm_table(log), rfm_table(reference))
    finally:
        log.close()


def test_spend_sums_do_not_change_between_runs() -> None:
    """DuckDB adds in parallel; compensated sums keep every run's last bit the same."""
    rng = np.random.default_rng(5)
    n = 1_500_000  # a dozen row groups, added by several threads
    tx = pd.DataFrame({
        "customer_id": rng.integers(0, 100_000, n),
        "timestamp": pd.Timestamp("2022-01-01")
        + pd.to_timedelta(rng.integers(0, 3 * 365 * 86_400, n), unit="s"),
        "amount": np.round(rng.lognormal(3.0, 1.0, n), 2),
    })  # fmt: skip
    runs = [customer_features(tx, freq="D") for _ in range(3)]
    for features, summary in runs[1:]:
        for column in ("total_spend", "avg_order_value", "spend_per_year"):
            np.testing.assert_array_equal(features[column], runs[0][0][column], err_msg=column)
        np.testing.assert_array_equal(summary["monetary_value"], runs[0][1]["monetary_value"])


def test_period_spend_beyond_64_bits(tmp_path: Path) -> None:
    # one customer-day spends 1e19 (10,000 purchases just below the 1e15 the data checks
    # allow): its 64-bit per-period sum overflows and the statement is redone with
    # 128-bit ones, so the values are still those of the two-pass tables
    from rfmml.features.combined import customer_features_table

    n = 10_000
    stamps = pd.Timestamp("2020-01-01 10:00") + pd.to_timedelta(np.arange(n), unit="s")
    tx = pd.DataFrame(
        {
            "customer_id": np.r_[np.ones(n, dtype=np.int64), [1, 2, 2]],
            "timestamp": np.r_[stamps.to_numpy(), pd.to_datetime(
                ["2020-02-03 09:00", "2020-01-05 09:00", "2020-03-01 09:00"]).to_numpy()],
            "amount": np.r_[np.full(n, 999_999_999_999_999.9), [12.5, 3.25, 4.0]],
        }
    )  # fmt: skip
    _check(tx, tx, None, "D", None)
    path = tmp_path / "big.parquet"
    tx.to_parquet(path)
    log, _ = scan_transactions(path)
    try:
        features, summary = customer_features_table(log, freq="D").to_pandas()
        assert features.loc[1, "total_spend"] > 2.0**63
        pd.testing.assert_frame_equal(summary, btyd_summary(tx, freq="D"))
        pd.testing.assert_series_equal(features["total_spend"],
                                       rfm_table(tx)["total_spend"])  # fmt: skip
    finally:
        log.close()


@pytest.fixture(scope="module")
def table_cases() -> dict[str, pd.DataFrame]:
    """Logs with integer ids: CDNOW, an Online Retail slice, a simulated log, big spends."""
    cdnow = load_cdnow()[["customer_id", "timestamp", "amount"]]
    retail = load_online_retail().iloc[:8_000]
    retail = retail.assign(customer_id=retail["customer_id"].astype("int64"))
    sim = simulate_transactions(1_500, random_state=11)[["customer_id", "timestamp", "amount"]]
    sim = sim.assign(timestamp=sim["timestamp"].astype("datetime64[us]"))  # as scanned logs
    rich = cdnow.assign(amount=cdnow["amount"].where(cdnow["customer_id"] % 50 != 3,
                                                     123456789.123456789))  # fmt: skip
    return {
        "cdnow": cdnow,
        "cdnow sparse ids": cdnow.assign(customer_id=cdnow["customer_id"] * 1000 + 7),
        "online retail": retail[["customer_id", "timestamp", "amount"]],
        "simulated": sim,
        "big spends": rich,  # repeat and total spends past 2**53 units of 1e-9
    }


def _stored(log: Any, compiled: bool, monkeypatch: pytest.MonkeyPatch, **kwargs: Any) -> Any:
    """The features table as Arrow and its DuckDB column types, by the pass asked for.

    Or the message of the ``DataError`` it raises.
    """
    from rfmml.errors import DataError
    from rfmml.features import combined

    monkeypatch.setattr(combined, "TABLE_COMPILED_MIN_ROWS", 0 if compiled else 10**12)
    try:
        table = combined.customer_features_table(log, table="t_" + str(compiled), **kwargs)
    except DataError as exc:
        return str(exc), None, None
    types = log.connection.sql(f'DESCRIBE "{table.table}"').fetchall()
    values = table.relation().to_arrow_table()
    in_memory = table.arrow is not None
    table.drop()
    assert table.arrow is None and table.distinct_rows == {}
    with pytest.raises(duckdb.CatalogException):  # dropped or unregistered
        log.connection.sql(f'SELECT * FROM "{table.table}"')
    table.arrow = in_memory  # (for the caller to check which was made)
    return table, types, values


@pytest.mark.parametrize("freq", ["D", "W", "M"])
@pytest.mark.parametrize("in_memory", [True, False])
def test_compiled_table_equals_the_statement(table_cases, freq, in_memory, monkeypatch) -> None:
    """The compiled pass stores the statement's table: columns, types, values, row order.

    Kept in memory as Arrow (registered with the connection) or copied into a
    DuckDB table (past ``IN_MEMORY_MAX_BYTES``): the same table either way.
    """
    from rfmml.data._scan import ScannedLog
    from rfmml.features import combined

    monkeypatch.setattr(combined, "IN_MEMORY_MAX_BYTES", 2**30 if in_memory else 0)

    for name, tx in table_cases.items():
        for columns, end in ((["customer_id", "timestamp", "amount"], None),
                             (["customer_id", "timestamp"], "1997-06-15 12:00"),
                             (["customer_id", "timestamp", "amount"], "2011-03-31")):  # fmt: skip
            log = ScannedLog.from_pandas(tx[columns])
            try:
                kwargs = {"observation_end": end, "freq": freq, "min_tenure_days": 30.0}
                if end is not None and tx["timestamp"].min() > pd.Timestamp(end):
                    continue  # (no row observed)
                got, got_types, got_values = _stored(log, True, monkeypatch, **kwargs)
                want, want_types, want_values = _stored(log, False, monkeypatch, **kwargs)
                if isinstance(want, str):  # rows in the end's week or month after the end
                    assert got == want, name
                    continue
                assert got_types == want_types, name
                assert got_values.equals(want_values), (name, end)  # bit for bit, in order
                assert (got.feature_columns, got.summary_columns, got.n_rows) == (
                    want.feature_columns, want.summary_columns, want.n_rows)  # fmt: skip
                assert (got.feature_attrs, got.summary_attrs) == (
                    want.feature_attrs, want.summary_attrs)  # fmt: skip
                # the compiled pass did build it (no fall-back to the statement)
                monkeypatch.setattr(combined, "TABLE_COMPILED_MIN_ROWS", 0)
                assert combined._table_compiled_eligible(log, None, len(log))
                resolved = tx["timestamp"].max() if end is None else pd.Timestamp(end)
                built = combined._table_compiled(log.connection, log.table, "probe", resolved,
                                                 freq, "amount" in columns, 30.0)  # fmt: skip
                if in_memory:  # the columns, registered under the table's name
                    assert built.num_rows == want.n_rows and got.arrow is True
                    assert log.connection.sql('SELECT count(*) FROM "probe"').fetchall()[0][0] == (
                        want.n_rows
                    )
                    log.connection.unregister("probe")
                else:
                    assert built == want.n_rows and got.arrow is False
                    log.connection.execute('DROP TABLE "probe"')
            finally:
                log.close()


@pytest.mark.parametrize("freq", ["D", "W", "M"])
@pytest.mark.parametrize("with_amount", [True, False])
def test_warm_up_loads_the_compiled_pass_loops(freq: str, with_amount: bool) -> None:
    """The background warm-up runs the pass on a tiny log without error and loads its loops.

    Its errors are swallowed on the background thread, so only this test would
    notice a warm-up that broke (and no longer took anything off the first call).
    """
    from rfmml.features import _features_kernel as kernel
    from rfmml.features import combined

    combined._warm_compiled_pass(freq, with_amount)
    assert kernel._blocks.signatures and kernel._rfm_range.signatures


def test_in_background_runs_the_work_and_swallows_its_errors() -> None:
    from rfmml._compiled import in_background, warm_numba

    seen: list[int] = []
    in_background(lambda: seen.append(1)).join()
    in_background(lambda: 1 / 0).join()  # a warm-up's error stays on its thread
    assert seen == [1]
    warm_numba()
    import rfmml._jit

    assert rfmml._jit._ready.signatures


@pytest.mark.parametrize("partition_rows", [5_000, 20_000])
def test_compiled_parts_equal_the_statement(table_cases, partition_rows, monkeypatch) -> None:
    """A log of several partitions is passed one range of ids at a time: the same table.

    Columns, types, values and row order of the statement's partitioned table,
    bit for bit; the ranges' tables are appended in order (no sort at the end).
    """
    from rfmml.data._scan import ScannedLog
    from rfmml.features import combined

    built: list[int | None] = []  # what each call of the ranged pass returned
    real = combined._table_compiled_parts

    def spy(*args: Any, **kwargs: Any) -> int | None:
        built.append(real(*args, **kwargs))
        return built[-1]

    monkeypatch.setattr(combined, "_table_compiled_parts", spy)
    ranged = []
    for name, tx in table_cases.items():
        log = ScannedLog.from_pandas(tx)
        try:
            built.clear()
            kwargs = {"freq": "W", "min_tenure_days": 30.0, "partition_rows": partition_rows}
            got, got_types, got_values = _stored(log, True, monkeypatch, **kwargs)
            monkeypatch.setattr(combined, "TABLE_COMPILED_MIN_ROWS", 0)
            parts = -(-len(log) // partition_rows)
            if parts > 1 and combined._table_compiled_eligible(log, None, len(log)):
                assert len(built) == 1 and (built[0] is not None or name == "big spends"), name
            else:  # one partition, or ids, times or amounts of other types
                assert built == [], name
            want, want_types, want_values = _stored(log, False, monkeypatch, **kwargs)
            assert got_types == want_types, name
            assert got_values.equals(want_values), name  # bit for bit, in order
            assert got.n_rows == want.n_rows == tx["customer_id"].nunique()
            if built and built[0] is not None:
                assert got.arrow is False  # a DuckDB table, appended range by range
                ranged.append(name)
        finally:
            log.close()
    assert {"cdnow", "cdnow sparse ids"} <= set(ranged)


def test_compiled_parts_leave_rows_without_an_id_to_the_statement(monkeypatch) -> None:
    """Rows without a customer id fall in no range of ids: the statement builds the table."""
    from rfmml.data._scan import ScannedLog
    from rfmml.features import combined

    tx = load_cdnow()[["customer_id", "timestamp", "amount"]]
    tx = tx.assign(customer_id=tx["customer_id"].astype("Int64"))
    tx.loc[tx.index[:3], "customer_id"] = pd.NA
    log = ScannedLog.from_pandas(tx)
    try:
        con = log.connection
        assert con.sql(
            f"SELECT count(*) FROM {log.table} WHERE customer_id IS NULL"
        ).fetchall() == [(3,)]
        monkeypatch.setattr(combined, "TABLE_COMPILED_MIN_ROWS", 0)
        assert combined._table_compiled_eligible(log, None, len(log))
        end = pd.Timestamp(tx["timestamp"].max())
        assert combined._table_compiled_parts(con, log.table, "probe", end, "W", True, 30.0,
                                              4) is None  # fmt: skip
        with pytest.raises(duckdb.CatalogException):
            con.sql('SELECT * FROM "probe"')
        kwargs = {"freq": "W", "min_tenure_days": 30.0, "partition_rows": 20_000}
        got, got_types, got_values = _stored(log, True, monkeypatch, **kwargs)
        want, want_types, want_values = _stored(log, False, monkeypatch, **kwargs)
        if isinstance(want, str):  # the statement's error, both ways
            assert got == want
        else:
            assert got_types == want_types and got_values.equals(want_values)
    finally:
        log.close()
