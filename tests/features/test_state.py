"""CustomerState: exact against a rebuild, idempotent, atomic, and clear about bad input."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import duckdb
import numpy as np
import pandas as pd
import pytest

from rfmml.data import read_transactions
from rfmml.errors import DataError, StateError
from rfmml.features import CustomerState, btyd_summary, rfm_table
from rfmml.features.state import SCHEMA_VERSION


def _batches(tx: pd.DataFrame, n: int, seed: int) -> list[pd.DataFrame]:
    """Random batches, applied in an order where later batches hold earlier-dated rows."""
    labels = np.random.default_rng(seed).integers(0, n, len(tx))
    return [tx[labels == i] for i in np.random.default_rng(seed + 1).permutation(n)]


def _assert_same_features(state: CustomerState, tx: pd.DataFrame, **kwargs) -> None:
    for freq in ("D", "W", "M"):
        pd.testing.assert_frame_equal(
            state.btyd_summary(freq=freq, **kwargs), btyd_summary(tx, freq=freq, **kwargs)
        )
    pd.testing.assert_frame_equal(state.rfm_table(**kwargs), rfm_table(tx, **kwargs))


def test_state_equals_rebuild_on_cdnow_in_random_batches(cdnow_tx, tmp_path):
    tx = cdnow_tx[["customer_id", "timestamp", "amount"]]
    with CustomerState.create(tmp_path / "state.duckdb") as state:
        updates = [state.update(batch) for batch in _batches(tx, 5, seed=7)]
        assert sum(u.late_rows for u in updates) > 10_000  # late-arriving rows are exercised
        again = state.update(_batches(tx, 5, seed=7)[2].iloc[::-1])  # same rows, other order
        assert not again.applied
        assert state.n_transactions == len(tx)
        assert state.n_batches == 5
        _assert_same_features(state, tx)
        # an earlier end reads the stored rows, a later one the aggregates: both exact
        _assert_same_features(state, tx, observation_end="1997-09-30")
        _assert_same_features(state, tx, observation_end="1999-01-15")


def test_state_survives_the_process_and_other_tools_read_it(cdnow_tx, tmp_path):
    path = tmp_path / "state.duckdb"
    tx = cdnow_tx[["customer_id", "timestamp", "amount"]]
    first, second = _batches(tx, 2, seed=3)
    with CustomerState.create(path) as state:
        state.update(first)
    with CustomerState.open(path) as state:
        state.update(second)
    code = textwrap.dedent(f"""
        import duckdb
        con = duckdb.connect({str(path)!r}, read_only=True)
        print(con.execute("SELECT count(*), count(DISTINCT customer_id) FROM rfmml_transactions").fetchall())
    """)  # noqa: E501
    shown = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert shown.stdout.strip() == f"[({len(tx)}, {tx['customer_id'].nunique()})]"
    with CustomerState.open(path, read_only=True) as state:
        pd.testing.assert_frame_equal(state.btyd_summary(freq="W"), btyd_summary(tx, freq="W"))


def test_orders_split_across_batches_and_groups_on_online_retail(tmp_path):
    from rfmml.data import load_online_retail

    lines = load_online_retail(lines=True)
    source = lines[["customer_id", "timestamp", "amount", "order_id", "country"]]
    options = {"group": "country", "order": "order_id"}
    tx, _ = read_transactions(source, **options)
    with CustomerState.create(tmp_path / "retail.duckdb", **options) as state:
        for batch in _batches(source, 4, seed=11):  # an invoice's lines land in several batches
            state.update(batch)
        _assert_same_features(state, tx)
        for freq in ("D", "M"):
            pd.testing.assert_frame_equal(
                state.btyd_summary(freq=freq, group="country"),
                btyd_summary(tx, freq=freq, group="country"),
            )
        pd.testing.assert_frame_equal(
            state.rfm_table(group="country"), rfm_table(tx, group="country")
        )


def test_drop_duplicates_also_drops_rows_stored_by_earlier_batches(cdnow_tx, tmp_path):
    tx = cdnow_tx[["customer_id", "timestamp", "amount"]]
    first, second = _batches(tx, 2, seed=5)
    overlap = pd.concat([second, first.iloc[:500]])  # 500 rows sent again in the next batch
    whole, report = read_transactions(pd.concat([first, overlap]), drop_duplicates=True)
    removed = report.removed["identical to an earlier row"]
    assert removed >= 500
    with CustomerState.create(tmp_path / "s.duckdb", drop_duplicates=True) as state:
        state.update(first)
        update = state.update(overlap)
        assert update.rows_added < len(overlap) - 500
        assert state.n_transactions == len(whole)
        _assert_same_features(state, whole)


def test_net_returns_are_refused_with_the_reason(tmp_path):
    with pytest.raises(ValueError, match="negative_amounts='net' is not supported"):
        CustomerState.create(tmp_path / "s.duckdb", negative_amounts="net")
    assert not (tmp_path / "s.duckdb").exists()


def test_a_batch_failing_midway_leaves_every_table_unchanged(cdnow_tx, tmp_path):
    tx = cdnow_tx[["customer_id", "timestamp", "amount"]]
    with CustomerState.create(tmp_path / "s.duckdb") as state:
        state.update(tx.iloc[:1000])
        before = state.tables()
        # ids as text: read and fingerprinted fine, refused once the rows meet the stored table
        bad = tx.iloc[1000:2000].assign(customer_id=lambda d: "c" + d["customer_id"].astype(str))
        message = (
            r"column 'customer_id': the batch's 1000 rows hold VARCHAR but the state holds "
            r"BIGINT \(first customer_id='c"
        )
        with pytest.raises(DataError, match=message):
            state.update(bad)
        after = state.tables()
        assert list(after) == list(before)
        for name in before:
            pd.testing.assert_frame_equal(after[name], before[name])
        assert state.update(tx.iloc[1000:2000]).applied  # and the state still works


def test_a_batch_in_another_time_zone_is_refused(tmp_path):
    stamps = pd.date_range("2024-03-01", periods=6, freq="13h", tz="Europe/Paris")
    aware = pd.DataFrame({"customer_id": [1, 2, 1, 3, 2, 1], "timestamp": stamps,
                          "amount": [5.0, 6, 7, 8, 9, 10]})  # fmt: skip
    with CustomerState.create(tmp_path / "s.duckdb") as state:
        state.update(aware.iloc[:3])
        assert state.time_zone == "Europe/Paris"
        before = state.tables()
        naive = aware.iloc[3:].assign(timestamp=lambda d: d["timestamp"].dt.tz_localize(None))
        with pytest.raises(DataError, match=r"column 'timestamp': the batch's 3 timestamps are "
                           r"in naive wall-clock time .* state's are in time zone Europe/Paris "
                           r"\(first customer_id=3\)"):  # fmt: skip
            state.update(naive)
        utc = aware.iloc[3:].assign(timestamp=lambda d: d["timestamp"].dt.tz_convert("UTC"))
        with pytest.raises(DataError, match="batch's 3 timestamps are in time zone UTC"):
            state.update(utc)
        for name, table in state.tables().items():
            pd.testing.assert_frame_equal(table, before[name])
        assert state.update(aware.iloc[3:]).applied


def test_a_batch_without_a_mapped_column_is_refused(tiny_tx, tmp_path):
    with CustomerState.create(tmp_path / "s.duckdb") as state:
        state.update(tiny_tx.iloc[:4])
        before = state.tables()
        with pytest.raises(DataError, match=r"column\(s\) \['amount'\] not found"):
            state.update(tiny_tx.iloc[4:].drop(columns="amount"))
        for name, table in state.tables().items():
            pd.testing.assert_frame_equal(table, before[name])


def test_a_state_from_a_newer_rfmml_is_refused(tiny_tx, tmp_path):
    path = tmp_path / "s.duckdb"
    with CustomerState.create(path) as state:
        state.update(tiny_tx)
    con = duckdb.connect(str(path))
    con.execute(
        "UPDATE rfmml_meta SET value = ? WHERE key = 'schema_version'",
        [json.dumps(SCHEMA_VERSION + 1)],
    )
    con.execute("UPDATE rfmml_meta SET value = '\"9.0\"' WHERE key = 'rfmml_version'")
    con.close()
    with pytest.raises(StateError, match=rf"written by rfmml 9.0 \(state schema "
                       rf"{SCHEMA_VERSION + 1}\); .* upgrade rfmml"):  # fmt: skip
        CustomerState.open(path)


def test_not_a_state_and_missing_file(tmp_path):
    other = tmp_path / "other.duckdb"
    duckdb.connect(str(other)).close()
    with pytest.raises(StateError, match="not an rfmml customer state"):
        CustomerState.open(other)
    with pytest.raises(StateError, match="does not exist"):
        CustomerState.open(tmp_path / "missing.duckdb")
    with pytest.raises(StateError, match="already exists"):
        CustomerState.create(other)


def test_read_only_state_refuses_updates(tiny_tx, tmp_path):
    path = tmp_path / "s.duckdb"
    CustomerState.create(path).close()
    with CustomerState.open(path, read_only=True) as state:
        with pytest.raises(StateError, match="is open read-only; open it with"):
            state.update(tiny_tx)
        with pytest.raises(DataError, match="holds no transactions yet"):
            state.btyd_summary()


def test_state_locked_by_another_process(tiny_tx, tmp_path):
    path = tmp_path / "s.duckdb"
    with CustomerState.create(path) as state:
        state.update(tiny_tx)
    holder = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(f"""
            import sys, duckdb
            con = duckdb.connect({str(path)!r})
            print("open", flush=True)
            sys.stdin.read()
        """)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert holder.stdout.readline().strip() == "open"
        with pytest.raises(StateError, match="is locked by another process"):
            CustomerState.open(path)
    finally:
        holder.communicate("")
    with CustomerState.open(path) as state:  # released: opens again, unchanged
        assert state.n_transactions == len(tiny_tx)


def test_segment_history_opens_and_closes_rows(tiny_tx, tmp_path):
    with CustomerState.create(tmp_path / "s.duckdb") as state:
        state.update(tiny_tx)
        first = pd.Series({"a": "loyal", "b": "new", "c": "new"})
        assert state.record_segments(first, "2024-02-05") == {"entered": 3, "closed": 0}
        assert state.record_segments(first, "2024-02-06") == {"entered": 0, "closed": 0}
        second = pd.Series({"a": "loyal", "b": "lapsing"})  # b moved, c left every list
        assert state.record_segments(second, "2024-03-01") == {"entered": 1, "closed": 2}
        history = state.segment_history()
        assert history.to_dict("records") == [
            {"customer_id": "a", "segment": "loyal", "valid_from": pd.Timestamp("2024-02-05"),
             "valid_to": pd.NaT},
            {"customer_id": "b", "segment": "new", "valid_from": pd.Timestamp("2024-02-05"),
             "valid_to": pd.Timestamp("2024-03-01")},
            {"customer_id": "b", "segment": "lapsing", "valid_from": pd.Timestamp("2024-03-01"),
             "valid_to": pd.NaT},
            {"customer_id": "c", "segment": "new", "valid_from": pd.Timestamp("2024-02-05"),
             "valid_to": pd.Timestamp("2024-03-01")},
        ]  # fmt: skip
        assert state.current_segments().to_dict() == {"a": "loyal", "b": "lapsing"}


def test_group_must_be_the_state_group_column(tiny_tx, tmp_path):
    with CustomerState.create(tmp_path / "s.duckdb") as state:
        state.update(tiny_tx)
        with pytest.raises(DataError, match="group='channel': the state's transactions have no"):
            state.rfm_table(group="channel")
        with pytest.raises(ValueError, match="engine='polars': a CustomerState computes in its"):
            state.btyd_summary(engine="polars")
        pd.testing.assert_frame_equal(state.rfm_table(engine="duckdb"), rfm_table(tiny_tx))


def test_logs_without_amounts_and_with_missing_order_ids(cdnow_tx, tmp_path):
    tx = cdnow_tx[["customer_id", "timestamp"]].assign(
        order_id=[None if i % 7 == 0 else f"o{i // 2}" for i in range(len(cdnow_tx))]
    )
    options = {"amount": None, "order": "order_id"}
    clean, _ = read_transactions(tx, **options)
    with CustomerState.create(tmp_path / "s.duckdb", **options) as state:
        for batch in _batches(tx, 3, seed=2):
            state.update(batch)
        summary = state.btyd_summary(freq="W")
        assert list(summary.columns) == ["frequency", "recency", "T"]
        _assert_same_features(state, clean)
