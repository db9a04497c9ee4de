"""The DuckDB cleaning path gives the pandas path's frame and report, step by step."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from rfmml.data import load_cdnow, online_retail_path, read_transactions, simulate_transactions
from rfmml.data.transactions import scan_transactions
from rfmml.errors import DataError

RETAIL = dict(customer="CustomerID", timestamp="InvoiceDate", order="InvoiceNo",
              quantity="Quantity", price="UnitPrice", cancellation_prefix="C")  # fmt: skip


def _both(source: Any, **kwargs: Any) -> tuple[Any, Any]:
    with warnings.catch_warnings(record=True) as w_pandas:
        warnings.simplefilter("always")
        ref = read_transactions(source, engine="pandas", **kwargs)
    with warnings.catch_warnings(record=True) as w_duck:
        warnings.simplefilter("always")
        new = read_transactions(source, engine="duckdb", **kwargs)
    assert [str(w.message) for w in w_pandas] == [str(w.message) for w in w_duck]
    assert {w.filename for w in [*w_pandas, *w_duck]} <= {__file__}  # the caller's line
    return ref, new


def assert_same(ref: Any, new: Any, *, fallback: bool = False) -> None:
    """Same frame (column by column, dtypes included) and the same report."""
    assert list(new.transactions.columns) == list(ref.transactions.columns)
    for column in ref.transactions.columns:
        pd.testing.assert_series_equal(
            new.transactions[column],
            ref.transactions[column],
            check_exact=column != "amount",
            rtol=1e-12,
        )
    notes = [n for n in new.report.notes if not n.startswith("read and cleaned by pandas")]
    assert any(n.startswith("read and cleaned by pandas") for n in new.report.notes) == fallback
    assert new.report.to_frame().equals(ref.report.to_frame())
    assert notes == ref.report.notes


@pytest.fixture(scope="module")
def cdnow_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("logs") / "cdnow.parquet"
    load_cdnow().to_parquet(path)
    return path


@pytest.fixture(scope="module")
def simulated_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    tx = simulate_transactions(3_000, random_state=3)
    rng = np.random.default_rng(0)
    tx["channel"] = rng.choice(["web", "shop", None], len(tx), p=[0.6, 0.39, 0.01])
    tx.loc[rng.choice(len(tx), 40, replace=False), "amount"] = 0.0
    tx.loc[rng.choice(len(tx), 30, replace=False), "amount"] = -5.0
    tx.loc[rng.choice(len(tx), 20, replace=False), "amount"] = np.nan
    tx["customer_id"] = tx["customer_id"].astype(str)
    tx.loc[rng.choice(len(tx), 10, replace=False), "customer_id"] = " "
    tx = pd.concat([tx, tx.sample(50, random_state=1)], ignore_index=True)
    path = tmp_path_factory.mktemp("logs") / "simulated.parquet"
    tx.to_parquet(path)
    return path


@pytest.mark.parametrize("options", [
    {}, {"drop_duplicates": True}, {"drop_zero_amounts": True},
    {"observation_end": "1998-03-31"}, {"observation_end": "1997-12-31 12:00"},
])  # fmt: skip
def test_cdnow(cdnow_file: Path, options: dict) -> None:
    assert_same(*_both(cdnow_file, **options))


@pytest.mark.parametrize("options", [
    {}, {"drop_duplicates": True}, {"drop_zero_amounts": True}, {"group": "channel"},
    {"group": "channel", "drop_duplicates": True, "observation_end": "2021-03-01"},
])  # fmt: skip
def test_simulated(simulated_file: Path, options: dict) -> None:
    assert_same(*_both(simulated_file, **options))


@pytest.mark.parametrize("options", [
    {}, {"drop_duplicates": True}, {"observation_end": "2011-06-30"},
    {"cancellation_prefix": None}, {"group": "Country"},
])  # fmt: skip
def test_online_retail_lines(options: dict) -> None:
    """Float customer ids, line items summed per invoice, cancellations."""
    kwargs = {**RETAIL, **options}
    if kwargs["cancellation_prefix"] is None:
        kwargs.pop("cancellation_prefix")
    assert_same(*_both(online_retail_path(), **kwargs))


def test_online_retail_without_amounts() -> None:
    """Cancellation orders are removed (counted) when there are no amounts."""
    ref, new = _both(online_retail_path(), customer="CustomerID", timestamp="InvoiceDate",
                     amount=None, order="InvoiceNo", cancellation_prefix="C")  # fmt: skip
    assert ref.report.removed["cancellation order (id starting with 'C')"] > 0
    assert_same(ref, new)


def test_future_rows_are_removed_and_warned(tmp_path: Path) -> None:
    tx = load_cdnow().head(500)
    tx.loc[[3, 7], "timestamp"] = pd.Timestamp("2999-01-01")
    path = tmp_path / "future.parquet"
    tx.to_parquet(path)
    ref, new = _both(path)
    assert ref.report.removed[next(k for k in ref.report.removed if "future" in k)] == 2
    assert_same(ref, new)


def test_net_returns_fall_back_to_pandas_with_a_note(simulated_file: Path) -> None:
    ref, new = _both(simulated_file, negative_amounts="net")
    assert_same(ref, new, fallback=True)


def test_text_dates_fall_back_to_pandas_with_a_note(tmp_path: Path) -> None:
    tx = load_cdnow().head(300)
    tx["timestamp"] = tx["timestamp"].dt.strftime("%d/%m/%Y")
    path = tmp_path / "text.parquet"
    tx.to_parquet(path)
    ref, new = _both(path)
    assert_same(ref, new, fallback=True)


def test_errors_are_the_pandas_messages(tmp_path: Path) -> None:
    tx = load_cdnow().head(300)
    tx.loc[5, "amount"] = -1.0
    path = tmp_path / "negative.parquet"
    tx.to_parquet(path)
    messages = []
    for engine in ("pandas", "duckdb"):
        with pytest.raises(DataError) as caught:
            read_transactions(path, negative_amounts="error", engine=engine)
        messages.append(str(caught.value))
    assert messages[0] == messages[1]
    for engine in ("pandas", "duckdb"):
        with pytest.raises(DataError, match="days after the last transaction"):
            read_transactions(path, observation_end="2005-01-01", engine=engine)


def test_auto_is_duckdb_for_parquet_and_scan_stays_in_duckdb(cdnow_file: Path) -> None:
    ref = read_transactions(cdnow_file, engine="pandas")
    auto = read_transactions(cdnow_file)
    assert_same(ref, auto)
    log, report = scan_transactions(cdnow_file)
    try:
        assert len(log) == report.rows_out == len(ref.transactions)
        pd.testing.assert_frame_equal(log.to_pandas(), ref.transactions)
    finally:
        log.close()


def test_scan_of_a_frame_cleans_with_pandas() -> None:
    tx = load_cdnow()
    ref = read_transactions(tx)
    log, report = scan_transactions(tx)
    try:
        assert report.to_frame().equals(ref.report.to_frame())
        pd.testing.assert_frame_equal(log.to_pandas(), ref.transactions)
    finally:
        log.close()


@pytest.mark.parametrize("source", ["cdnow", "retail"])
def test_chunks_make_up_the_frame_and_its_fingerprint(cdnow_file: Path, source: str) -> None:
    """iter_pandas: to_pandas a chunk at a time (types, order), the same fingerprint."""
    from rfmml.pipeline import fingerprint

    if source == "cdnow":
        log, _ = scan_transactions(cdnow_file)
    else:  # order ids, text groups
        log, _ = scan_transactions(online_retail_path(), **RETAIL, group="Country")
    try:
        whole = log.to_pandas()
        chunks = list(log.iter_pandas(chunk_rows=2_048))
        assert len(chunks) > 1
        joined = pd.concat(chunks, ignore_index=True)
        pd.testing.assert_frame_equal(joined, whole)
        assert fingerprint(log.iter_pandas(chunk_rows=2_048)) == fingerprint(whole)
    finally:
        log.close()


@pytest.fixture(scope="module")
def cleaning_files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """CDNOW lines: nothing to remove; rows removed at every step; no missing values but
    returns, zeros, repeats and future rows; order lines."""
    folder = tmp_path_factory.mktemp("cleaning")
    rng = np.random.default_rng(5)
    tx = load_cdnow().drop(columns="n_items").head(4_000)
    tidy = tx[tx["amount"] > 0].drop_duplicates().reset_index(drop=True)
    messy = tx.assign(customer_id=tx["customer_id"].astype("Int64"))
    for column, n, value in [("customer_id", 20, pd.NA), ("amount", 7, np.nan),
                             ("timestamp", 5, pd.Timestamp("2999-01-01")),
                             ("amount", 9, -3.0), ("amount", 9, 0.0)]:  # fmt: skip
        messy.loc[rng.choice(len(messy), n, replace=False), column] = value
    messy["channel"] = rng.choice(["web", "shop", None], len(messy), p=[0.6, 0.39, 0.01])
    again = messy.sample(60, random_state=2)
    zero = messy.iloc[[10]].assign(amount=0.0)
    messy = pd.concat([messy, again, again.head(5), zero, zero.assign(amount=-0.0)])
    complete = pd.concat([tidy, tidy.sample(40, random_state=4)], ignore_index=True)
    for n, value in [(9, -3.0), (9, 0.0)]:
        complete.loc[rng.choice(len(complete), n, replace=False), "amount"] = value
    complete.loc[rng.choice(len(complete), 3, replace=False), "timestamp"] = pd.Timestamp(
        "2999-01-01"
    )
    orders = tidy.assign(order_id=pd.array(np.arange(len(tidy)) // 3, dtype="Int64"))
    orders["customer_id"] = orders.groupby("order_id")["customer_id"].transform("first")
    orders.loc[rng.choice(len(orders), 30, replace=False), "order_id"] = pd.NA
    returns = orders.copy()
    returns.loc[rng.choice(len(returns), 10, replace=False), "amount"] = -2.0
    returns = pd.concat([returns, returns.sample(20, random_state=3)], ignore_index=True)
    returns["order_id"] = returns["order_id"].astype("string")
    returns.loc[returns.index[::50], "order_id"] = "C" + returns["order_id"]
    paths = {}
    for name, frame in [("tidy", tidy), ("messy", messy), ("complete", complete),
                        ("orders", orders), ("returns", returns)]:  # fmt: skip
        paths[name] = folder / f"{name}.parquet"
        # without pandas' metadata: integer columns with gaps, as other writers store them
        table = pa.Table.from_pandas(frame, preserve_index=False).replace_schema_metadata(None)
        pq.write_table(table, paths[name])
    return paths


@pytest.mark.parametrize(("name", "options"), [
    ("tidy", {}), ("tidy", {"drop_duplicates": True}), ("tidy", {"drop_zero_amounts": True}),
    ("tidy", {"amount": None}), ("tidy", {"observation_end": "1997-03-01"}),
    ("messy", {}), ("messy", {"drop_duplicates": True}),
    ("messy", {"drop_duplicates": True, "drop_zero_amounts": True}),
    ("messy", {"group": "channel", "drop_duplicates": True}),
    ("messy", {"amount": None, "drop_duplicates": True}),
    ("complete", {}), ("complete", {"drop_duplicates": True, "drop_zero_amounts": True}),
    ("complete", {"amount": None, "drop_duplicates": True}),
    ("orders", {"order": "order_id"}), ("orders", {"order": "order_id", "amount": None}),
    ("returns", {"order": "order_id", "cancellation_prefix": "C"}),
    ("returns", {"order": "order_id", "cancellation_prefix": "C", "amount": None}),
    ("returns", {"order": "order_id", "drop_duplicates": True}),
])  # fmt: skip
def test_cleaned_table_whether_rows_are_removed_or_not(
    cleaning_files: dict[str, Path], name: str, options: dict
) -> None:
    """The pandas path's frame and report when nothing, some steps or every step removes rows.

    The cleaned table is the only one left in the connection, with the
    canonical columns and the two ordering columns.
    """
    ref, new = _both(cleaning_files[name], **options)
    assert_same(ref, new)
    report = ref.report
    removed = sum(report.removed.values())
    if name == "tidy" and "observation_end" not in options:
        assert removed == 0 and report.rows_out == report.rows_in
    if name == "messy":
        assert report.removed["missing customer_id"] == 20
        same = "identical to an earlier row"
        assert report.flagged.get(same, 0) + report.removed.get(same, 0) > 60
    if name in ("orders", "returns"):
        assert sum(report.merged.values()) > 0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        log, _ = scan_transactions(cleaning_files[name], **options)
    try:
        tables = log.connection.sql("SELECT table_name FROM duckdb_tables()").fetchall()
        views = log.connection.sql(  # (the scan's views of the file, src and flagged, stay)
            f"SELECT view_name FROM duckdb_views() WHERE view_name = '{log.table}'"
        ).fetchall()
        assert tables + views == [(log.table,)]  # no other table left behind
        assert bool(views) == (log.arrow is not None)  # rows held in Arrow: a view of them
        if name == "tidy" and not options:  # read once, nothing removed: held in Arrow
            assert log.arrow is not None
        layout = log.connection.sql(f"DESCRIBE {log.table}").fetchall()
        assert [r[0] for r in layout] == [*ref.transactions.columns, "_loose", "_row"]
        assert [r[1] for r in layout[-2:]] == ["INTEGER", "BIGINT"]
    finally:
        log.close()


@pytest.mark.parametrize(("max_hashes", "per_pass"), [(2**24, 2**22), (300, 300), (1000, 200)])
def test_repeated_rows_in_one_or_many_passes(
    cleaning_files: dict[str, Path], max_hashes: int, per_pass: int
) -> None:
    """The count of rows identical to an earlier one is pandas' ``duplicated``, in any passes."""
    from rfmml.data._scan import SharedHashes, _repeated_rows, connect

    path = cleaning_files["messy"]
    frame = pd.read_parquet(path)
    con = connect()
    try:
        con.execute(f"CREATE TEMP TABLE t AS SELECT * FROM read_parquet('{path.as_posix()}')")
        for columns in (["customer_id", "timestamp", "amount"],
                        ["customer_id", "timestamp", "amount", "channel"],
                        ["customer_id"], ["channel"]):  # fmt: skip
            for where, kept in (("true", frame), ("amount > 0", frame[frame["amount"] > 0])):
                expected = int(kept.duplicated(subset=columns).sum())
                assert expected > 0
                assert (
                    _repeated_rows(con, "t", columns, where, len(kept), max_hashes, per_pass)
                    == expected
                )
                # the hashes read from a column (as the scan's one read stores them): the
                # rows not selected hold their row numbers; the top bits of the hash only
                # (as the scan stores 32, and 4 so that most values are shared by chance)
                names = ", ".join(f'"{c}"' for c in columns)
                for bits, kind in ((64, "UBIGINT"), (32, "UINTEGER"), (4, "UTINYINT")):
                    con.execute(
                        f"CREATE OR REPLACE TEMP TABLE h AS SELECT *, CASE WHEN {where} "
                        f"THEN (hash({names}) >> {64 - bits})::{kind} "
                        f"ELSE ((row_number() OVER ()) % {2**bits})::{kind} END AS _hash FROM t"
                    )
                    column = con.sql("SELECT _hash FROM h").to_arrow_table().column(0)
                    for hashes in (SharedHashes(column), None):
                        got = _repeated_rows(con, "h", columns, where, len(kept), max_hashes,
                                             per_pass, hashed="_hash", hash_bits=bits,
                                             hashes=hashes)  # fmt: skip
                        assert got == expected, (bits, hashes)
    finally:
        con.close()


@pytest.mark.parametrize("n", [0, 1, 2, 3, 1001])
@pytest.mark.parametrize("chunks", [1, 3])
@pytest.mark.parametrize("compiled", [True, False])
@pytest.mark.parametrize("kind", [pa.uint32(), pa.uint64()])
def test_shared_hashes_are_the_values_repeated_anywhere(
    n: int, chunks: int, compiled: bool, kind: pa.DataType, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Sorted by the radix sort, or in two halves merged: the values repeated in the column."""
    from rfmml.data import _scan
    from rfmml.data._scan import SharedHashes

    if not compiled:  # as without numba or for fewer values: numpy's sort, in two halves
        assert _scan._radix(n) is None  # (a test log's hashes are fewer)
    else:
        monkeypatch.setattr(_scan, "RADIX_MIN_VALUES", 0)
        if _scan._radix(n) is None:
            pytest.skip("numba is not installed")
    rng = np.random.default_rng(n + chunks)
    values = rng.integers(0, max(n // 3, 1), n).astype(kind.to_pandas_dtype())
    values[: n // 4] += np.iinfo(values.dtype).max - max(n // 3, 1)  # high bits set, too
    column = pa.chunked_array(np.array_split(values, chunks), type=kind)
    unique, counts = np.unique(values, return_counts=True)
    np.testing.assert_array_equal(SharedHashes(column).result(), unique[counts > 1])
    np.testing.assert_array_equal(column.to_numpy(), values)  # the column is not changed


@pytest.mark.parametrize(("name", "options"), [
    ("tidy", {}), ("tidy", {"amount": None}), ("messy", {"drop_duplicates": True}),
    ("messy", {"group": "channel", "drop_zero_amounts": True}),
])  # fmt: skip
def test_large_logs_read_twice_give_the_same_table(
    cleaning_files: dict[str, Path], name: str, options: dict, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Past ONE_READ_MAX_ROWS the statistics stream over the file and only kept rows are stored."""
    from rfmml.data import _scan

    monkeypatch.setattr(_scan, "ONE_READ_MAX_ROWS", 100)
    ref, new = _both(cleaning_files[name], **options)
    assert_same(ref, new)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        log, _ = scan_transactions(cleaning_files[name], **options)
    try:
        layout = log.connection.sql(f"DESCRIBE {log.table}").fetchall()
        assert [r[0] for r in layout] == [*ref.transactions.columns, "_loose", "_row"]
    finally:
        log.close()


@pytest.mark.parametrize("options", [{}, {"since": "1997-01-01"}, {"until": "1998-01-31"},
                                     {"since": "1997-02-01", "until": "1997-12-31 12:00",
                                      "observation_end": "1997-12-31"}])  # fmt: skip
def test_isolated_dates_since_and_until(tmp_path: Path, options: dict) -> None:
    """Mistyped years are flagged, since= and until= drop rows alike in both readers."""
    tx = load_cdnow().head(4_000)
    tx.loc[[10, 20], "timestamp"] = pd.Timestamp("1897-02-03")
    tx.loc[[3_000], "timestamp"] = pd.Timestamp("2001-03-04 10:00")
    path = tmp_path / "typos.parquet"
    tx.to_parquet(path)
    ref, new = _both(path, **options)
    assert_same(ref, new)
    if not options:
        assert ref.report.flagged["dated over a year apart from the rest of the log"] == 3


@pytest.mark.parametrize("side", ["start", "end"])
@pytest.mark.parametrize("past_a_year", [pd.Timedelta(0), pd.Timedelta(1, "us")])
@pytest.mark.parametrize("n_far", [1, 5, 6])  # at 4,000 rows up to 5 rows may be isolated
def test_rows_a_year_apart_exactly_or_just_over(
    tmp_path: Path, side: str, past_a_year: pd.Timedelta, n_far: int
) -> None:
    """The gap must exceed a year, and hold at most the limit's rows, in both readers.

    The DuckDB reader counts the rows within a year of either end before it
    looks at the ends' timestamps one by one: a gap of a year to the microsecond
    and a sixth far row are where that count decides.
    """
    tx = load_cdnow().head(4_000).copy()
    far = tx.index[100 : 100 + n_far]
    rest = tx["timestamp"].drop(far)
    gap = pd.Timedelta(days=365) + past_a_year
    tx.loc[far, "timestamp"] = rest.min() - gap if side == "start" else rest.max() + gap
    path = tmp_path / "ends.parquet"
    tx.to_parquet(path)
    ref, new = _both(path)
    assert_same(ref, new)
    flagged = ref.report.flagged.get("dated over a year apart from the rest of the log", 0)
    assert flagged == (n_far if past_a_year and n_far <= 5 else 0)


@pytest.mark.parametrize("options", [{}, {"normalize_ids": True}])
def test_ids_differing_in_case(tmp_path: Path, options: dict) -> None:
    """Email ids written in two cases are counted (and merged) alike in both readers."""
    tx = load_cdnow().head(3_000)
    tx["customer_id"] = "Buyer" + tx["customer_id"].astype(str) + "@Mail.example"
    tx.loc[tx.index[::7], "customer_id"] = tx["customer_id"].str.lower()
    tx.loc[tx.index[5], "customer_id"] = None
    path = tmp_path / "emails.parquet"
    tx.to_parquet(path)
    ref, new = _both(path, **options)
    assert_same(ref, new)
    assert any("upper/lower case" in n or "normalize_ids" in n for n in ref.report.notes)


def test_a_currency_column(tmp_path: Path) -> None:
    """Several currencies are refused alike; a picked one keeps its rows alike."""
    tx = load_cdnow().head(3_000)
    tx["currency"] = np.where(np.arange(len(tx)) % 9 == 0, "USD", "EUR")
    path = tmp_path / "currencies.parquet"
    tx.to_parquet(path)
    messages = []
    for engine in ("pandas", "duckdb"):
        with pytest.raises(DataError) as caught:
            read_transactions(path, engine=engine)
        messages.append(str(caught.value))
    assert messages[0] == messages[1] and "'EUR' (2,666 rows), 'USD' (334 rows)" in messages[0]
    ref, new = _both(path, currency="USD")
    assert_same(ref, new)
    assert ref.report.removed["currency not 'USD'"] == 2_666


def test_order_fields_on_the_first_line_only_fall_back_to_pandas(tmp_path: Path) -> None:
    """Lines that take their order's customer and time are read alike (by pandas)."""
    tx = load_cdnow().head(600).drop(columns="n_items").reset_index(drop=True)
    lines = tx.loc[tx.index.repeat(2)].reset_index(names="order_id")
    later = lines.duplicated("order_id").to_numpy()
    lines.loc[later, ["customer_id", "timestamp"]] = None
    lines.loc[later, "amount"] = 1.0
    lines.to_parquet(tmp_path / "first_line.parquet")
    ref, new = _both(tmp_path / "first_line.parquet", order="order_id")
    assert_same(ref, new, fallback=True)
    assert ref.report.removed["missing customer_id"] == 0


def test_the_currency_on_the_first_line_only_falls_back_to_pandas(tmp_path: Path) -> None:
    tx = load_cdnow().head(600).drop(columns="n_items").reset_index(drop=True)
    lines = tx.loc[tx.index.repeat(2)].reset_index(names="order_id")
    lines["currency"] = np.where(lines.duplicated("order_id"), None, "EUR")
    lines.to_parquet(tmp_path / "first_line.parquet")
    for options in ({}, {"currency": "EUR"}):
        ref, new = _both(tmp_path / "first_line.parquet", order="order_id", **options)
        assert_same(ref, new, fallback=True)


def test_rows_held_in_arrow_become_a_table_to_change_and_are_released(
    cleaning_files: dict[str, Path],
) -> None:
    """materialize() makes the Arrow rows a DuckDB table (same rows); release() frees either."""
    log, _ = scan_transactions(cleaning_files["tidy"])
    try:
        assert log.arrow is not None
        before = log.to_pandas()
        log.materialize()
        assert log.arrow is None
        assert log.connection.sql("SELECT table_name FROM duckdb_tables()").fetchall() == [
            (log.table,)
        ]
        pd.testing.assert_frame_equal(log.to_pandas(), before)
        first = before["customer_id"].iloc[0]
        log.connection.execute(f"DELETE FROM {log.table} WHERE customer_id = {first}")
        assert len(log) == int((before["customer_id"] != first).sum())
        log.release()
        assert log.connection.sql("SELECT table_name FROM duckdb_tables()").fetchall() == []
    finally:
        log.close()
    held, _ = scan_transactions(cleaning_files["tidy"])
    try:
        held.release()
        assert held.arrow is None
        with pytest.raises(duckdb.CatalogException):
            held.connection.sql(f"SELECT count(*) FROM {held.table}").fetchall()
    finally:
        held.close()


def test_a_log_held_in_arrow_is_in_the_file_order_across_row_groups(tmp_path: Path) -> None:
    """Read on two threads from 40 row groups, the held rows keep the file's order.

    to_pandas and iter_pandas then read them without sorting: the pandas reader's frame,
    row for row, and the same chunks.
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    tx = load_cdnow()
    path = tmp_path / "groups.parquet"
    pq.write_table(pa.Table.from_pandas(tx, preserve_index=False), path, row_group_size=1_000)
    ref = read_transactions(path, engine="pandas")
    log, _ = scan_transactions(path)
    try:
        assert log.arrow is not None and log.arrow_in_order
        rows = log.arrow.column("_row").to_numpy()
        assert (np.diff(rows) > 0).all()
        whole = log.to_pandas()
        pd.testing.assert_frame_equal(whole, ref.transactions)
        chunks = list(log.iter_pandas(chunk_rows=7_000))
        assert [len(c) for c in chunks[:-1]] == [7_000] * (len(chunks) - 1)
        pd.testing.assert_frame_equal(pd.concat(chunks, ignore_index=True), whole)
        log.materialize()  # a DuckDB table: read by sorting on _row, the same frame
        pd.testing.assert_frame_equal(log.to_pandas(), whole)
    finally:
        log.close()
