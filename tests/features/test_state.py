"""CustomerState: exact against a rebuild, idempotent, atomic, and clear about bad input."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, assume, example, given, settings
from hypothesis import strategies as st

from rfmml.data import CleaningReport, online_retail_path, read_transactions
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
        _assert_same_report(state, read_transactions(tx).report)
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
    tx, report = read_transactions(source, **options)
    with CustomerState.create(tmp_path / "retail.duckdb", **options) as state:
        for batch in _batches(source, 4, seed=11):  # an invoice's lines land in several batches
            state.update(batch)
        _assert_same_features(state, tx)
        _assert_same_report(state, report)
        _assert_same_group_features(state, tx, "country", ("D", "M"))


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
        _assert_same_report(state, report)


def _channel(tx: pd.DataFrame) -> pd.DataFrame:
    """CDNOW with a sales channel by a fixed rule: most customers buy in both."""
    day = tx["timestamp"].dt.day
    return tx.assign(channel=np.where(day % 3 == 0, "web", "shop"))


def test_group_features_come_from_per_group_aggregates(cdnow_tx, tmp_path):
    tx = _channel(cdnow_tx[["customer_id", "timestamp", "amount"]])
    assert (tx.groupby("customer_id")["channel"].nunique() > 1).sum() > 3000
    with CustomerState.create(tmp_path / "s.duckdb", group="channel") as state:
        for batch in _batches(tx, 4, seed=21):
            state.update(batch)
        assert state.tables()["rfmml_customer_groups"].shape[0] == len(
            tx[["customer_id", "channel"]].drop_duplicates()
        )
        expected = {freq: btyd_summary(tx, freq=freq, group="channel") for freq in "DWM"}
        early = btyd_summary(tx, observation_end="1997-12-31", group="channel")
        expected_rfm = rfm_table(tx, group="channel")
        for freq in "DWM":
            pd.testing.assert_frame_equal(
                state.btyd_summary(freq=freq, group="channel"), expected[freq]
            )
        pd.testing.assert_frame_equal(state.rfm_table(group="channel"), expected_rfm)
        pd.testing.assert_frame_equal(
            state.btyd_summary(observation_end="1997-12-31", group="channel"), early
        )
        # at the default end the stored rows are not read: without them, the same frames
        state.connection.execute("DELETE FROM rfmml_transactions")
        pd.testing.assert_frame_equal(state.btyd_summary(freq="W", group="channel"),
                                      expected["W"])  # fmt: skip
        pd.testing.assert_frame_equal(state.rfm_table(group="channel"), expected_rfm)


def test_a_schema_1_state_is_upgraded_when_opened_for_writing(cdnow_tx, tmp_path):
    tx = _channel(cdnow_tx[["customer_id", "timestamp", "amount"]])
    first, second = _batches(tx, 2, seed=4)
    path = tmp_path / "old.duckdb"
    with CustomerState.create(path, group="channel") as state:
        state.update(first)
    con = duckdb.connect(str(path))  # what rfmml wrote before schema 2
    con.execute("DROP TABLE rfmml_customer_groups")
    con.execute("ALTER TABLE rfmml_batches DROP COLUMN report")
    con.execute("UPDATE rfmml_meta SET value = '1' WHERE key = 'schema_version'")
    con.close()
    with CustomerState.open(path, read_only=True) as state:  # read as it is, rows read
        pd.testing.assert_frame_equal(
            state.rfm_table(group="channel"), rfm_table(first, group="channel")
        )
    with CustomerState.open(path) as state:
        state.update(second)
        assert "rfmml_customer_groups" in state.tables()
        pd.testing.assert_frame_equal(
            state.btyd_summary(group="channel"), btyd_summary(tx, group="channel")
        )
        report = state.cleaning_report()
        assert report.notes[0] == "batch 1 was applied by an older rfmml: no counts kept"
        assert report.rows_in == len(second)


def _assert_same_group_features(state: CustomerState, tx: pd.DataFrame, group: str,
                                freqs: tuple[str, ...]) -> None:  # fmt: skip
    for freq in freqs:
        pd.testing.assert_frame_equal(
            state.btyd_summary(freq=freq, group=group), btyd_summary(tx, freq=freq, group=group)
        )
    pd.testing.assert_frame_equal(state.rfm_table(group=group), rfm_table(tx, group=group))


def _assert_same_report(state: CustomerState, report: CleaningReport) -> None:
    """The state's cleaning report counts what one read of every row counts."""
    own = state.cleaning_report()
    own.check()
    for name in ("rows_in", "rows_out", "removed", "merged", "flagged", "notes"):
        assert getattr(own, name) == getattr(report, name), name


_NET = {"negative_amounts": "net"}
_DAY = pd.Timestamp("2021-03-01")
log_rows = st.lists(
    st.tuples(
        st.sampled_from([1, 2, 3]),  # customer
        st.integers(0, 4),  # day: few, so that purchases share a time with returns
        st.sampled_from([-30.0, -7.5, -0.1, -0.2, 0.0, 0.3, 4.0, 7.5, 12.25, 30.0]),
        st.sampled_from([None, "o1", "o2", "o3", "o4"]),  # order (lines summed per order)
        st.sampled_from(["web", "shop"]),
    ),
    min_size=1,
    max_size=30,
)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@example(  # two purchases at one time, a later return larger than the smaller one
    rows=[(1, 0, 4.0, "o1", "web"), (1, 0, 30.0, "o2", "web"), (1, 2, -7.5, None, "web"),
          (2, 1, 0.3, None, "shop"), (2, 3, -0.1, None, "shop"), (2, 3, -0.2, None, "shop")],
    n_batches=3, seed=5, order=True, group=False, dedupe=False, drop_zero=False,
)  # fmt: skip
@given(
    rows=log_rows,
    n_batches=st.integers(1, 4),
    seed=st.integers(0, 2**16),
    order=st.booleans(),
    group=st.booleans(),
    dedupe=st.booleans(),
    drop_zero=st.booleans(),
)
def test_net_returns_in_batches_in_any_order_equal_one_read(
    rows, n_batches, seed, order, group, dedupe, drop_zero
):
    log = pd.DataFrame(rows, columns=["customer_id", "day", "amount", "order_id", "channel"])
    log = log.assign(timestamp=_DAY + pd.to_timedelta(log.pop("day"), unit="D"))
    options = {
        "order": "order_id" if order else None,
        "group": "channel" if group else None,
        "drop_duplicates": dedupe,
        "drop_zero_amounts": drop_zero,
        **_NET,
    }
    log = log.drop(columns=[c for c, on in (("order_id", order), ("channel", group)) if not on])
    try:
        whole, report = read_transactions(log, **options)
    except DataError:  # every row a return without an earlier purchase: nothing to compare
        return
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, n_batches, len(log))
    batches = [log[labels == i] for i in rng.permutation(n_batches) if (labels == i).any()]
    # a batch with the same rows as an earlier one is taken for that batch sent twice
    assume(len({_rows_key(b) for b in batches}) == len(batches))
    with tempfile.TemporaryDirectory() as folder:
        with CustomerState.create(Path(folder) / "s.duckdb", **options) as state:
            for batch in batches:
                assert state.update(batch).applied
            assert not state.update(batches[0].iloc[::-1]).applied  # the same batch again
            assert state.n_transactions == len(whole)
            for freq in ("D", "M"):
                pd.testing.assert_frame_equal(
                    state.btyd_summary(freq=freq), btyd_summary(whole, freq=freq)
                )
            pd.testing.assert_frame_equal(state.rfm_table(), rfm_table(whole))
            if group:
                pd.testing.assert_frame_equal(
                    state.btyd_summary(group="channel"), btyd_summary(whole, group="channel")
                )
            _assert_same_report(state, report)


def _rows_key(batch: pd.DataFrame) -> tuple:
    return tuple(sorted(map(repr, batch.itertuples(index=False))))


def test_online_retail_returns_netted_across_batches(tmp_path):
    """Cancellation invoices (negative quantities) in other batches than their purchases."""
    raw = pd.read_parquet(online_retail_path())
    log = pd.DataFrame(
        {
            "customer_id": raw["CustomerID"],
            "timestamp": raw["InvoiceDate"],
            "amount": raw["Quantity"] * raw["UnitPrice"],
            "order_id": raw["InvoiceNo"].astype(str),
            "country": raw["Country"],
        }
    )
    options = {"order": "order_id", "group": "country", **_NET}
    whole, report = read_transactions(log, **options)
    assert report.merged["return netted against an earlier purchase"] > 3000
    assert report.removed["return without an earlier purchase by the same customer"] > 100
    with CustomerState.create(tmp_path / "retail.duckdb", **options) as state:
        batches = _batches(log, 4, seed=13)
        for batch in batches:
            state.update(batch)
        assert sum(state.batches()["late_rows"]) > 10_000
        _assert_same_features(state, whole)
        _assert_same_group_features(state, whole, "country", ("D", "W"))
        _assert_same_report(state, report)


def test_a_day_of_returns_only_is_recorded_not_refused(tmp_path):
    """Drop mode: a batch that cleaning empties (returns only) changes no customer, is
    counted in the cleaning report and is applied once; only a first batch must leave rows."""
    raw = pd.read_parquet(online_retail_path())
    log = pd.DataFrame(
        {
            "customer_id": raw["CustomerID"],
            "timestamp": raw["InvoiceDate"],
            "amount": raw["Quantity"] * raw["UnitPrice"],
        }
    ).dropna(subset=["customer_id"])
    returns = log[log["amount"] < 0].iloc[:500]
    sales = log[log["amount"] >= 0].iloc[:20_000]
    with CustomerState.create(tmp_path / "s.duckdb") as state:
        with pytest.raises(DataError, match="no transactions left after cleaning"):
            state.update(returns)  # the first batch defines the columns: refused, nothing kept
        assert state.batches().empty
        state.update(sales)
        before = state.btyd_summary(freq="W")
        path = tmp_path / "returns.csv"
        returns.to_csv(path, index=False)
        for source in (returns, path):
            done = state.update(source)
            assert done.applied and done.rows_added == 0 and done.customers_touched == 0
            assert done.report.removed["negative amount (return or cancellation)"] == 500
        assert not state.update(returns).applied  # the same batch again: not counted twice
        pd.testing.assert_frame_equal(state.btyd_summary(freq="W"), before)
        _, report = read_transactions(pd.concat([sales, returns, returns]))
        # the CSV batch wrote the float ids as 14527.0, read as 14527 and said so
        report.notes.insert(0, _csv_id_note(returns))
        _assert_same_report(state, report)


def _csv_id_note(batch: pd.DataFrame) -> str:
    first = batch["customer_id"].iloc[0]
    return (
        f"customer_id: every id is a whole number written with a fraction ('{first:.1f}'); "
        f"read without it ('{first:.0f}'), so that exports with and without it join"
    )


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


def test_a_state_file_without_write_permission(tiny_tx):
    folder = Path(tempfile.mkdtemp())  # not below pytest's root-only tmp folder
    try:
        folder.chmod(0o755)
        path = folder / "s.duckdb"
        with CustomerState.create(path) as state:
            state.update(tiny_tx)
        path.chmod(0o444)
        before = path.read_bytes()
        # root writes whatever the mode: the child gives up root after its imports
        drop = "os.setgid(65534); os.setuid(65534)" if os.geteuid() == 0 else ""
        code = textwrap.dedent(f"""
            import os, sys
            from rfmml.errors import StateError
            from rfmml.features import CustomerState
            {drop}
            try:
                CustomerState.open(sys.argv[1])
            except StateError as exc:
                print(exc)
            with CustomerState.open(sys.argv[1], read_only=True) as state:
                print(state.n_transactions)
        """)
        shown = subprocess.run([sys.executable, "-c", code, str(path)], capture_output=True,
                               text=True, check=True)  # fmt: skip
        message, count = shown.stdout.strip().splitlines()
        assert message == (
            f"state {str(path)!r} cannot be written (file permissions); open it with "
            "CustomerState.open(path, read_only=True) to query it"
        )
        assert count == str(len(tiny_tx))
        assert path.read_bytes() == before
    finally:
        for file in folder.iterdir():
            file.unlink()
        folder.rmdir()


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


def test_update_remembers_the_mapping_and_refuses_columns_the_state_cannot_take(tiny_tx, tmp_path):
    """Columns named differently are read with the names given and kept; a new group column
    or amounts for a state without them are refused in one line, the state left as it was;
    a batch applied before changes no stored option."""
    with CustomerState.create(tmp_path / "s.duckdb", amount=None) as state:
        first = state.update(tiny_tx.iloc[:4].drop(columns="amount"))
        assert first.notes == [] and state.read_options == dict.fromkeys(
            [
                "dayfirst",
                "encoding",
                "separator",
                "decimal",
                "status",
                "exclude_status",
                "currency",
                "currency_column",
                "normalize_ids",
            ]
        )
        before = state.tables()
        with pytest.raises(DataError, match=r"^group='channel': the state .* was created with "
                           r"no group column and holds rows"):  # fmt: skip
            state.update(tiny_tx.iloc[4:].assign(channel="web"), group="channel")
        with pytest.raises(DataError, match=r"^amount='amount': .* with no amount column"):
            state.update(tiny_tx.iloc[4:], amount="amount")
        for name, table in state.tables().items():
            pd.testing.assert_frame_equal(table, before[name])
        renamed = tiny_tx.iloc[4:].drop(columns="amount").rename(columns={"timestamp": "at"})
        second = state.update(renamed, timestamp="at")
        assert second.notes == [
            "options changed from those stored in the state: timestamp column 'timestamp' -> "
            "'at'; the batch is read with the new values, which the state now keeps"
        ]
        assert state.schema.timestamp == "at"
        again = state.update(tiny_tx.iloc[4:].drop(columns="amount"), timestamp="timestamp")
        assert not again.applied and state.schema.timestamp == "at"
        assert again.notes[0].endswith("the batch was applied before, so the state keeps its "
                                       "stored values")  # fmt: skip
        pd.testing.assert_frame_equal(state.rfm_table(), rfm_table(tiny_tx.drop(columns="amount")))


def test_update_takes_the_readers_new_options(tiny_tx, tmp_path):
    """since= is the batch's own (not stored); currency= is stored and reused."""
    batch = tiny_tx.assign(Currency=["EUR"] * 6 + ["USD"])
    with CustomerState.create(tmp_path / "s.duckdb") as state:
        first = state.update(batch.iloc[:4], since="2024-01-02", currency="eur")
        assert first.report.removed["dated before 2024-01-02 (since)"] == 2
        assert state.read_options["currency"] == "eur"
        assert "since" not in state.read_options
        second = state.update(batch.iloc[4:])  # the stored currency: the USD row goes
        assert second.report.removed["Currency not 'EUR'"] == 1
        assert state.n_transactions == 2 + 2
