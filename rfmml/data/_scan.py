"""Clean a Parquet transaction log inside DuckDB: the fast path of ``read_transactions``.

The steps and their order are those of the pandas path in
:mod:`rfmml.data.transactions` (which stays the reference, ``engine="pandas"``):
rows of another currency than ``currency=``, missing customer ids, missing
group, missing timestamps, missing amounts, rows outside ``since``/``until``,
rows after the observation end (or in the future), isolated timestamps
(flagged), cancellation orders, order lines summed per order, negative
amounts, zero amounts, identical rows; ids that differ only in case are
counted (or lower-cased with ``normalize_ids``). Each
removed row is counted under the same reason, so the :class:`CleaningReport`
is the same.

What DuckDB does not express here, the pandas path does (the caller falls
back and says so in the report's notes): CSV files (pandas' text parsing:
separator and encoding sniffing, ``NA`` strings), timestamps held as text or
with a time zone, amounts held as text, float order ids, order lines that
lack their order's customer id, time, total or currency (filled from the
order), and ``negative_amounts="net"``. Any condition that ends in an error (infinite
amounts, negative amounts with ``"error"``, an observation end far past the
data, nothing left) is also handed to the pandas path, which raises its own
message.
"""

from __future__ import annotations

import functools
import tempfile
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from rfmml._compiled import WARM_MIN_ROWS
from rfmml._threads import Started
from rfmml._threads import start as start_on_pool
from rfmml.data._cleaning import (
    ISOLATED_REASON,
    ISOLATION_GAP_DAYS,
    OBSERVATION_END_MARGIN_DAYS,
    check_currencies,
    copied_orders_note,
    currency_reason,
    end_cutoff,
    future_rows_note,
    isolated_ends,
    isolated_rows_note,
    isolation_limit,
    since_reason,
    until_reason,
)
from rfmml.data._parse import _CASE_EXAMPLES, AMOUNT_LIMIT, ID_PADDING, id_case_note
from rfmml.data.report import CleaningReport

__all__ = ["ScannedLog", "Unsupported", "scan_parquet"]

_DECIMALS = 9
_TIMES = ("TIMESTAMP", "TIMESTAMP_NS", "TIMESTAMP_MS", "TIMESTAMP_S", "DATE")
_INTS = ("TINYINT", "SMALLINT", "INTEGER", "BIGINT", "UTINYINT", "USMALLINT", "UINTEGER",
         "UBIGINT", "HUGEINT")  # fmt: skip
_FLOATS = ("FLOAT", "DOUBLE")
_BYTES_PER_ROW = 64
_MIN_BUDGET = 2 * 2**30
# repeated rows: up to HASHES_AT_ONCE rows, their hashes sorted at once (128 MiB); past it,
# in passes of about HASHES_PER_PASS (32 MiB)
HASHES_AT_ONCE = 2**24
HASHES_PER_PASS = 2**22
# from this many hashes they are sorted by the compiled radix sort (see _radix)
RADIX_MIN_VALUES = WARM_MIN_ROWS
# At most this many rows are stored whole with their reasons (one read, see _read_once): more
# would pass DuckDB's budget, spill to disk and be read back for each statistic.
ONE_READ_MAX_ROWS = _MIN_BUDGET // _BYTES_PER_ROW


class Unsupported(Exception):
    """A step DuckDB does not take here; the message says which (for the report's notes)."""


@dataclass
class ScannedLog:
    """A cleaned transaction log held by DuckDB: canonical columns, not yet in pandas.

    Attributes
    ----------
    connection : duckdb.DuckDBPyConnection
        The connection owning the cleaned table (closed with :meth:`close`).
    table : str
        Name of the cleaned table in ``connection``.
    columns : list of str
        Canonical columns, in order.
    order_by : str
        SQL ordering that reproduces the pandas path's row order.
    order_int64_nullable : bool
        Whether ``order_id`` comes back as pandas ``Int64`` (the pandas path
        reads integer ids with gaps as floats and turns them into ``Int64``).
    n_pandas_copies : int
        How many times :meth:`to_pandas` built the whole log as one pandas
        frame (a check that a job kept the log in DuckDB; :meth:`iter_pandas`
        reads a chunk at a time and is not counted).
    arrow : pyarrow.Table or None
        The Arrow table behind ``table`` when the rows are held in Arrow
        (registered in ``connection`` under that name, read by SQL as a
        table), else None (a DuckDB table). :meth:`materialize` makes it a
        DuckDB table (for statements that change rows), :meth:`release`
        frees the rows either way.
    arrow_in_order : bool
        Whether :attr:`arrow` holds the rows in the log's order (``order_by``
        ``_row``, ascending): :meth:`to_pandas` and :meth:`iter_pandas` then
        read them as they are instead of sorting them.
    """

    connection: Any
    table: str
    columns: list[str]
    order_by: str
    order_int64_nullable: bool = False
    n_pandas_copies: int = field(default=0, init=False, compare=False)
    arrow: Any = field(default=None, compare=False, repr=False)
    arrow_in_order: bool = field(default=False, compare=False, repr=False)

    @classmethod
    def from_pandas(cls, frame: pd.DataFrame) -> ScannedLog:
        """Hand a cleaned pandas frame to DuckDB (a copy in DuckDB's own table)."""
        con = connect(len(frame))
        con.register("_frame", frame)
        con.sql(
            "CREATE TEMP TABLE clean AS SELECT *, 0 AS _loose, row_number() OVER () AS _row "
            "FROM _frame"
        )
        con.unregister("_frame")
        nullable = "order_id" in frame.columns and str(frame["order_id"].dtype) == "Int64"
        return cls(con, "clean", list(frame.columns), "_row", nullable)

    @property
    def relation(self) -> Any:
        """The cleaned rows as a DuckDB relation of the canonical columns (lazy)."""
        cols = ", ".join(_q(c) for c in self.columns)
        return self.connection.sql(f"SELECT {cols} FROM {self.table}")

    def __len__(self) -> int:
        return int(self.connection.sql(f"SELECT count(*) FROM {self.table}").fetchall()[0][0])

    def to_pandas(self) -> pd.DataFrame:
        """The cleaned log as the pandas frame ``read_transactions`` returns."""
        self.n_pandas_copies += 1
        if self._ordered_arrow():
            return self._as_pandas(self.arrow.select(self.columns))
        cols = ", ".join(_q(c) for c in self.columns)
        arrow = self.connection.sql(
            f"SELECT {cols} FROM {self.table} ORDER BY {self.order_by}"
        ).to_arrow_table()
        return self._as_pandas(arrow)

    def _ordered_arrow(self) -> bool:
        """Whether the rows are held in Arrow in the log's order (read without sorting)."""
        return self.arrow is not None and self.order_by == "_row" and self.arrow_in_order

    def iter_pandas(self, chunk_rows: int = 1_000_000) -> Iterator[pd.DataFrame]:
        """The rows of :meth:`to_pandas`, in the same order and types, a chunk at a time.

        Parameters
        ----------
        chunk_rows : int
            Rows per chunk (DuckDB may hand back somewhat fewer).

        Yields
        ------
        pandas.DataFrame
            Consecutive chunks; concatenated, they equal :meth:`to_pandas`
            (with a default index restarting at 0 in each chunk).
        """
        if self._ordered_arrow():
            held = self.arrow.select(self.columns)
            for start in range(0, held.num_rows, chunk_rows):
                yield self._as_pandas(held.slice(start, chunk_rows))
            return
        cols = ", ".join(_q(c) for c in self.columns)
        reader = self.connection.sql(
            f"SELECT {cols} FROM {self.table} ORDER BY {self.order_by}"
        ).to_arrow_reader(chunk_rows)
        for batch in reader:
            if batch.num_rows:
                yield self._as_pandas(batch)

    def _as_pandas(self, arrow: Any) -> pd.DataFrame:
        frame = arrow.to_pandas()
        frame["timestamp"] = frame["timestamp"].astype("datetime64[us]")
        for column in frame.columns:  # pandas' own string dtype, as pd.read_parquet gives
            if isinstance(frame[column].dtype, pd.StringDtype):
                frame[column] = frame[column].astype(pd.StringDtype(na_value=np.nan))
        if "order_id" in frame.columns and self.order_int64_nullable:
            frame["order_id"] = frame["order_id"].astype("Int64")
        return frame

    def materialize(self) -> None:
        """Hold the rows in a DuckDB table of the same name (a no-op when they are).

        Rows held in Arrow (:attr:`arrow`) are read by SQL, but only a table
        takes ``DELETE`` or ``ALTER``: call this before changing rows.
        """
        if self.arrow is None:
            return
        con, copy = self.connection, "_rfmml_materialized"
        con.execute(f"CREATE TEMP TABLE {copy} AS SELECT * FROM {self.table}")
        con.unregister(self.table)
        con.execute(f"ALTER TABLE {copy} RENAME TO {self.table}")
        self.arrow = None

    def release(self) -> None:
        """Free the cleaned rows (a job done reading the log); the connection stays open.

        The name :attr:`table` is then free for a view or table of the same rows
        (elsewhere: a file); the log cannot be read until one is made.
        """
        if self.arrow is not None:
            self.connection.unregister(self.table)
            self.arrow = None
        else:
            self.connection.execute(f"DROP TABLE {self.table}")

    def close(self) -> None:
        """Close the DuckDB connection (the table is gone afterwards)."""
        self.arrow = None
        self.connection.close()


def _stamp_sql(stamp: pd.Timestamp) -> str:
    return f"TIMESTAMP {_lit(stamp.isoformat(sep=' '))}"


def _q(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _lit(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def connect(n_rows_hint: int = 0) -> Any:
    """A DuckDB connection with rfmml's settings (memory budget, spill folder)."""
    import duckdb

    con = duckdb.connect()
    con.execute("SET preserve_insertion_order = false")
    budget = max(_MIN_BUDGET, _BYTES_PER_ROW * n_rows_hint)
    con.execute(f"SET memory_limit = '{budget}B'")
    spill = Path(tempfile.gettempdir()) / "rfmml-duckdb"
    con.execute(f"SET temp_directory = {_lit(spill.as_posix())}")
    return con


def _read_once(con: Any, path: Path, columns: list[str]) -> bool:
    """Whether to store every row of the log once, each with its reason for removal.

    One read of the file instead of two (a pass for the statistics, then the
    kept rows stored) saves about 0.15 of 1.2 CPU seconds at 10M rows when no
    row is removed; when rows are removed, the kept ones are then copied,
    which costs more than it saves and holds both copies (10M rows, a sixth
    removed: 1.4 against 1.2 CPU seconds, 0.89 against 0.61 GiB). So the log
    is read once when the file's own statistics promise no missing value
    (null or NaN) in ``columns`` in any row group, and it has at most
    :data:`ONE_READ_MAX_ROWS` rows (the caller also asks for no observation
    end: rows after it are common). The result is the same either way; a
    row removed all the same (dated in the future, a blank text id) only
    costs the copy.
    """
    inside = f"path_in_schema IN ({', '.join(_lit(c) for c in columns)})"
    n_rows, n_groups, n_cells, n_counted, n_missing = con.sql(
        f"""SELECT sum(row_group_num_rows) FILTER (WHERE column_id = 0),
            count(DISTINCT row_group_id), count(*) FILTER (WHERE {inside}),
            count(stats_null_count) FILTER (WHERE {inside}),
            coalesce(sum(stats_null_count) FILTER (WHERE {inside}), 0)
            + coalesce(sum(stats_nan_count) FILTER (WHERE {inside}), 0)
        FROM parquet_metadata({_lit(path.as_posix())})"""
    ).fetchall()[0]
    if n_rows is None or n_rows > ONE_READ_MAX_ROWS:
        return False
    return n_cells == n_counted == n_groups * len(columns) and n_missing == 0


def _repeated_rows(
    con: Any, table: str, columns: list[str], where: str, n_rows: int,
    max_hashes: int = HASHES_AT_ONCE, per_pass: int = HASHES_PER_PASS, *,
    hashed: str | None = None, hash_bits: int = 64, hashes: SharedHashes | None = None,
) -> int:  # fmt: skip
    """Rows of ``table`` (``where``) identical in ``columns`` to an earlier row: exact.

    Identical rows have the same 64-bit ``hash`` of those columns (the hash
    DuckDB groups by: NULLs, NaNs and signed zeros hash alike), so only rows
    whose hash occurs more than once can repeat another. The hashes (8 bytes
    a row) are sorted in NumPy, and only the rows whose hash repeats are
    compared on their values by DuckDB (a DISTINCT over them). At 10M rows
    without repeats this is about 0.3 CPU seconds against 2 for a DISTINCT
    over every row, which holds them all in a hash table.

    Parameters
    ----------
    con : duckdb.DuckDBPyConnection
        The connection holding ``table``.
    table, where : str
        The rows to look at (``where`` is an SQL condition).
    columns : list of str
        The columns that make two rows identical.
    n_rows : int
        How many rows ``where`` selects (sets the number of passes).
    max_hashes, per_pass : int
        Up to ``max_hashes`` rows, their hashes are sorted in one pass.
        Past it (where DuckDB may be using all its budget), the hashes are
        stored in a DuckDB table (spilled to disk past the budget) and sorted
        in passes of about ``per_pass``, one range of hash values each, so the
        memory outside DuckDB's budget stays small (at 100M rows: 32 passes,
        about 13 CPU seconds against 23 for the DISTINCT).
    hashed : str, optional
        A column of ``table`` read instead of hashing the rows again: in the
        rows ``where`` selects, a function of ``hash(columns)`` (rows with the
        same values hold the same value), such as its top ``hash_bits`` bits;
        in the others, anything (their row numbers, say). Values shared by
        rows that are not identical only add rows to the exact comparison.
    hash_bits : int
        The width of the ``hashed`` values (the passes split on their top bits).
    hashes : SharedHashes, optional
        :class:`SharedHashes` of every row's ``hashed`` value, started
        beforehand (used when there are at most ``max_hashes`` rows; no
        statement reads them).
    """
    names = ", ".join(_q(c) for c in columns)
    if hashed is None:
        hashed, hash_bits = f"hash({names})", 64
    else:
        hashed = _q(hashed)
    started = hashes if n_rows <= max_hashes else None
    bits = 0
    hashes_of = f"SELECT {hashed} AS h FROM {table} WHERE {where}"
    if n_rows > max_hashes:  # the hashes stored once (8 bytes a row), read in passes
        bits = min(int(np.ceil(np.log2(n_rows / per_pass))), hash_bits)
        con.execute(f"CREATE TEMP TABLE _rfmml_row_hashes AS {hashes_of}")
        hashes_of = "SELECT h FROM _rfmml_row_hashes"
    shared = []
    try:
        for part in range(2**bits):  # the top bits of the hash pick the pass
            if started is not None:  # every row's (those not selected: see above)
                shared.append(started.result())
                continue
            sql = f"{hashes_of} WHERE h >> {hash_bits - bits} = {part}" if bits else hashes_of
            # through Arrow: fetchnumpy converts on one thread, a masked array (3x slower)
            shared.append(_shared_hashes(con.sql(sql).to_arrow_table().column(0)))
    finally:
        if hashes is not None:
            hashes.wait()  # never left running
        if bits:
            con.execute("DROP TABLE IF EXISTS _rfmml_row_hashes")
    repeats = np.concatenate(shared)
    if not len(repeats):
        return 0
    con.register("_rfmml_shared_hashes", pd.DataFrame({"h": repeats}))
    try:
        rows = (
            f"SELECT {names} FROM {table} WHERE {where} "
            f"AND {hashed} IN (SELECT h FROM _rfmml_shared_hashes)"
        )
        n_shared, n_distinct = con.sql(  # the rows read once (materialized), counted twice
            f"WITH shared AS MATERIALIZED ({rows}) SELECT (SELECT count(*) FROM shared), "
            "(SELECT count(*) FROM (SELECT DISTINCT * FROM shared))"
        ).fetchall()[0]
    finally:
        con.unregister("_rfmml_shared_hashes")
    return int(n_shared - n_distinct)


def _radix(n_values: int) -> Any:
    """The compiled radix sort's module (:mod:`rfmml._radix`) for ``n_values`` values, or None.

    None without numba, and below :data:`RADIX_MIN_VALUES` values: a scan of a
    log that large loads numba in the background anyway (its features take the
    compiled loops), while a smaller one would load it (0.5 s) for a sort of a
    few milliseconds.
    """
    if n_values < RADIX_MIN_VALUES:
        return None
    from rfmml._compiled import compiled_module

    return compiled_module("rfmml._radix")


def _sorted_values(hashes: Any) -> np.ndarray:
    """The values of ``hashes`` (an Arrow column of integers) in a new array, ascending.

    Unsigned values are sorted by the compiled radix sort where numba is
    installed, from :data:`RADIX_MIN_VALUES` values (10M 32-bit values: 0.1 s
    against 0.65 s for ``numpy.sort``).
    """
    values = hashes.to_numpy()
    values = values.copy() if not values.flags.writeable else values
    radix = _radix(len(values)) if values.dtype.kind == "u" else None
    if radix is not None:
        radix.radix_sort(values, 0, values.dtype.itemsize * 8, np.empty_like(values))
    else:
        values.sort()
    return values


def _repeats(values: np.ndarray) -> np.ndarray:
    """The values that occur more than once in ``values`` (ascending), ascending."""
    again = values[1:] == values[:-1]
    return np.unique(values[1:][again])


def _shared_hashes(hashes: Any) -> np.ndarray:
    """The values that occur more than once in ``hashes`` (an Arrow column), ascending."""
    return _repeats(_sorted_values(hashes))


class SharedHashes:
    """:func:`_shared_hashes` of an Arrow column, sorted on the pool while the caller goes on.

    With the compiled radix sort (numba, from :data:`RADIX_MIN_VALUES` values),
    the column is sorted in one task (10M 32-bit values: 0.1 s). Otherwise each
    half is sorted by numpy on a pool thread and :meth:`result` merges the two
    ascending halves (numpy's stable sort, a timsort, merges two runs in one
    linear pass): at 10M values, 0.2 s for the halves and 0.05 s for the merge
    against 0.4 s for one sort on one thread. With one thread, the sorts run in
    :meth:`result`.

    Parameters
    ----------
    hashes : pyarrow.ChunkedArray or pyarrow.Array
        Unsigned integers; not changed.
    """

    def __init__(self, hashes: Any) -> None:
        if _radix(len(hashes)) is not None:
            parts = [hashes]
        else:
            half = len(hashes) // 2
            parts = [hashes.slice(0, half), hashes.slice(half)]
        self._halves: list[Started[np.ndarray]] = [
            start_on_pool(functools.partial(_sorted_values, part)) for part in parts
        ]

    def result(self) -> np.ndarray:
        """The values that occur more than once, ascending (waiting for the sorts)."""
        sorted_parts = [half.result() for half in self._halves]
        if len(sorted_parts) == 1:
            return _repeats(sorted_parts[0])
        merged = np.concatenate(sorted_parts)
        merged.sort(kind="stable")
        return _repeats(merged)

    def wait(self) -> None:
        """Wait until both halves are sorted (nothing is raised)."""
        for half in self._halves:
            half.wait()


def _log_ends(con: Any, table: str, first: Any, last: Any, limit: int) -> tuple[Any, Any]:
    """The ``limit + 1`` earliest and latest kept timestamps, where a gap could isolate some.

    :func:`isolated_ends` looks for a gap of over :data:`ISOLATION_GAP_DAYS`
    days among the ``limit + 1`` earliest (latest) timestamps; when that many
    rows lie within that many days of the first (last) one, no such gap can
    exist, so one count of each side (about 0.01 s at 10M rows) stands in for
    the top-k query (about 0.3 s at 10M rows, 10,001 values a side), which is
    run only for a side that could hold a gap. An empty list stands for a
    side without one.
    """
    gap = f"INTERVAL {ISOLATION_GAP_DAYS} DAY"
    n_early, n_late = con.sql(
        f'SELECT count_if("timestamp" <= {_stamp_sql(pd.Timestamp(first))} + {gap}), '
        f'count_if("timestamp" >= {_stamp_sql(pd.Timestamp(last))} - {gap}) '
        f"FROM {table} WHERE _reason = 0"
    ).fetchall()[0]
    sides: list[Any] = []
    for n_near, top in ((n_early, "min"), (n_late, "max")):
        if n_near > limit:  # the limit + 1 nearest all within a gap of the end: no gap
            sides.append([])
            continue
        sides.append(
            con.sql(
                f'SELECT {top}("timestamp", {limit + 1}) FROM {table} WHERE _reason = 0'
            ).fetchall()[0][0]
        )
    return sides[0], sides[1]


def _lines_lacking_order_fields(con: Any, no_id: str, order_amounts: bool,
                                currency: bool) -> bool:  # fmt: skip
    """Whether an order has lines with and lines without its customer id, time (or total).

    The pandas path fills such lines from their order (``_order_fields``).
    """
    pairs = [no_id, '"timestamp" IS NULL']
    if order_amounts:
        pairs.append("(amount IS NULL OR isnan(CAST(amount AS DOUBLE)))")
    if currency:
        pairs.append("coalesce(trim(CAST(_currency AS VARCHAR)), '') = ''")
    having = " OR ".join(f"(count_if({c}) > 0 AND count_if(NOT ({c})) > 0)" for c in pairs)
    found = con.sql(
        f"SELECT count(*) FROM (SELECT order_id FROM src WHERE order_id IS NOT NULL "
        f"GROUP BY order_id HAVING {having} LIMIT 1)"
    ).fetchall()[0][0]
    return bool(found)


def _id_case(con: Any, no_id: str, normalize: bool) -> str:
    """The note on text ids that differ only in case (as the pandas path's ``_id_case``).

    Asked only when some id has a capital (or ``normalize``): one grouping of
    the distinct ids (their first row kept for the examples), then their
    lower-cased values counted, so the rows are grouped once.
    """
    con.execute(
        "CREATE TEMP TABLE _rfmml_ids AS SELECT customer_id, min(_row) AS _first, "
        f"count_if(customer_id <> lower(customer_id)) AS _changed FROM src WHERE NOT {no_id} "
        "GROUP BY customer_id"
    )
    try:
        n_ids, n_keys, n_changed = con.sql(
            "SELECT count(*), count(DISTINCT lower(customer_id)), coalesce(sum(_changed), 0) "
            "FROM _rfmml_ids"
        ).fetchall()[0]
        if n_ids == n_keys and not normalize:
            return ""
        several = con.sql(
            """SELECT list(customer_id), min(_first) AS _first FROM _rfmml_ids
            GROUP BY lower(customer_id) HAVING count(*) > 1 ORDER BY _first"""
        ).fetchall()
    finally:
        con.execute("DROP TABLE _rfmml_ids")
    examples = [list(row[0]) for row in several[:_CASE_EXAMPLES]]
    return id_case_note(int(n_ids), int(n_keys), len(several), int(n_changed), examples,
                        normalize)  # fmt: skip


def scan_parquet(
    path: Path,
    renames: dict[str, str],
    *,
    group: str | None,
    has_amount: bool,
    quantity: str | None,
    price: str | None,
    amount: str | None,
    cancellation_prefix: str | None,
    observation_end: Any,
    allow_end_beyond_data: bool,
    negative_amounts: str,
    drop_zero_amounts: bool,
    drop_duplicates: bool,
    canonical: list[str],
    since: pd.Timestamp | None = None,
    until: pd.Timestamp | None = None,
    normalize_ids: bool = False,
    currency_column: str | None = None,
    currency: str | None = None,
) -> tuple[ScannedLog, CleaningReport]:
    """Clean a Parquet log in DuckDB; raise :class:`Unsupported` where pandas must do it.

    Parameters mirror :func:`rfmml.data.read_transactions` (already validated
    by it); ``renames`` maps source to canonical names (``_quantity`` and
    ``_price`` for line items).
    """
    if negative_amounts == "net":
        raise Unsupported("negative_amounts='net' (returns netted with pandas merge_asof)")
    con = connect()
    try:
        return _scan(con, path, renames, group, has_amount, quantity, price, amount,
                     cancellation_prefix, observation_end, allow_end_beyond_data,
                     negative_amounts, drop_zero_amounts, drop_duplicates,
                     canonical, since, until, normalize_ids, currency_column,
                     currency)  # fmt: skip
    except BaseException:
        con.close()
        raise


def _scan(con: Any, path: Path, renames: dict[str, str], group: str | None,
          has_amount: bool, quantity: str | None, price: str | None, amount: str | None,
          prefix: str | None, observation_end: Any, allow_beyond: bool,
          negative_amounts: str, drop_zero: bool, drop_duplicates: bool,
          canonical: list[str], since: pd.Timestamp | None, until: pd.Timestamp | None,
          normalize_ids: bool, currency_column: str | None,
          currency: str | None) -> tuple[ScannedLog, CleaningReport]:  # fmt: skip
    source = f"read_parquet({_lit(path.as_posix())}, file_row_number = true)"
    select = ", ".join(f"{_q(src)} AS {_q(dst)}" for src, dst in renames.items())
    con.execute(f"CREATE TEMP VIEW src AS SELECT {select}, file_row_number AS _row FROM {source}")
    types = dict(con.sql("SELECT column_name, column_type FROM (DESCRIBE src)").fetchall())

    id_type = types["customer_id"]
    if id_type in _FLOATS:
        customer = "CAST(customer_id AS BIGINT)"
        whole = con.sql(
            "SELECT bool_and(isfinite(customer_id) AND customer_id = round(customer_id) "
            "AND abs(customer_id) < 9007199254740992) FROM src WHERE customer_id IS NOT NULL "
            "AND NOT isnan(customer_id)"
        ).fetchall()[0][0]
        if whole is False:
            raise Unsupported("float customer ids that are not whole numbers")
        no_id = "(customer_id IS NULL OR isnan(customer_id))"
    elif id_type in _INTS:
        customer, no_id = "CAST(customer_id AS BIGINT)", "customer_id IS NULL"
    elif id_type == "VARCHAR":
        customer = "lower(customer_id)" if normalize_ids else "customer_id"
        no_id = r"(customer_id IS NULL OR regexp_full_match(customer_id, '\s*'))"
    else:
        raise Unsupported(f"customer ids of type {id_type}")
    if types["timestamp"] not in _TIMES:
        raise Unsupported(f"timestamps of type {types['timestamp']} (parsed by pandas)")
    order_nullable = False
    if "order_id" in types:
        if types["order_id"] not in (*_INTS, "VARCHAR"):
            raise Unsupported(f"order ids of type {types['order_id']}")
        order_nullable = types["order_id"] in _INTS
    value_cols = (
        ["_quantity", "_price"] if quantity is not None else (["amount"] if has_amount else [])
    )
    for col in value_cols:
        kind = types[col]
        if not (kind in _INTS or kind in _FLOATS or kind.startswith("DECIMAL")):
            raise Unsupported(f"amounts of type {kind} (parsed by pandas)")

    if quantity is not None:
        value = "round(CAST(_quantity AS DOUBLE) * CAST(_price AS DOUBLE), 9)"
        amount_reason = f"missing {quantity} or {price}"
    elif has_amount:
        value = "CAST(amount AS DOUBLE)"
        amount_reason = "missing amount"
    else:
        value = "NULL"
        amount_reason = ""

    if observation_end is None:
        tomorrow = pd.Timestamp.now().normalize() + pd.Timedelta(days=1)
        cut = end_cutoff(tomorrow)
        end_reason = f"dated in the future (after {tomorrow.date()})"
        end = None
    else:
        end = pd.Timestamp(observation_end)
        end = end.tz_localize(None) if end.tzinfo is not None else end
        cut = end_cutoff(end)
        shown = end.date() if end == end.normalize() else end
        end_reason = f"after the observation end {shown}"
    cut_sql = f"TIMESTAMP {_lit(cut.isoformat(sep=' '))}"

    code, currency_note = None, ""
    if currency_column is not None:
        held = con.sql(
            "SELECT nullif(upper(trim(CAST(_currency AS VARCHAR))), ''), count(*) FROM src "
            "GROUP BY 1"
        ).fetchall()
        code, currency_note = check_currencies(currency_column, dict(held), currency, has_amount)
    cases = [f"WHEN {no_id} THEN 1"]
    if code is not None:
        cases.insert(
            0,
            f"WHEN coalesce(upper(trim(CAST(_currency AS VARCHAR))) <> {_lit(code)}, true) THEN 8",
        )
    if group is not None:
        cases.append(f"WHEN {_q(group)} IS NULL THEN 2")
    cases.append('WHEN "timestamp" IS NULL THEN 3')
    if has_amount:
        cases.append("WHEN _v IS NULL OR isnan(_v) THEN 4")
    if since is not None:
        cases.append(f'WHEN "timestamp" < {_stamp_sql(since)} THEN 6')
    if until is not None:
        cases.append(f'WHEN "timestamp" >= {_stamp_sql(end_cutoff(until))} THEN 7')
    cases.append(f'WHEN "timestamp" >= {cut_sql} THEN 5')
    keep_cols = [c for c in canonical if c not in ("customer_id", "timestamp", "amount")]
    extra = "".join(f", {_q(c)}" for c in keep_cols)
    con.execute(
        f"""CREATE TEMP VIEW flagged AS
        SELECT {customer} AS customer_id, CAST("timestamp" AS TIMESTAMP) AS "timestamp",
               _v AS amount{extra}, _row,
               CASE {" ".join(cases)} ELSE 0 END AS _reason
        FROM (SELECT *, {value} AS _v FROM src)"""
    )
    # one read (every row stored with its reason, the statistics from memory) or two (the
    # statistics stream over the file, then the kept rows or orders are stored)
    checked = [src for src, dst in renames.items() if dst != "order_id"]
    whole_rows = "order_id" not in canonical and observation_end is None
    whole_rows = whole_rows and _read_once(con, path, checked)
    stats_source = "flagged"
    staged = None
    shared_hashes: SharedHashes | None = None
    conditions = []
    if has_amount:
        if negative_amounts == "drop":
            conditions.append("amount >= 0")
        if drop_zero:
            conditions.append("amount <> 0")
    same = [c for c in canonical if c != "order_id"]
    same_sql = ", ".join(_q(c) for c in same)
    if whole_rows:  # held in Arrow: 0.07 s less than a DuckDB table at 10M rows, and the
        # features then read its columns as they are (a DuckDB table is copied out, 0.1 s)
        stored = ", ".join(_q(c) for c in canonical)
        # in the file's order (DuckDB keeps it at no measurable cost here): the rows are then
        # in the cleaned log's order, read as they are by to_pandas and iter_pandas. The
        # top 32 bits of the hash of a kept row's values come along (the repeated rows'
        # check, _repeated_rows: hashed in this read on DuckDB's threads, not in a second
        # pass over the rows; 32 bits sort in 0.6 of the time of 64, and the few values
        # shared by chance, about 12K pairs at 10M rows, only add rows to the exact
        # comparison); a row not kept holds its row number (the check leaves it out)
        kept_row = " AND ".join(["_reason = 0", *conditions])
        con.execute("SET preserve_insertion_order = true")
        staged = con.sql(
            f"SELECT {stored}, 0 AS _loose, _row, _reason::UTINYINT AS _reason, "
            f"CASE WHEN {kept_row} THEN (hash({same_sql}) >> 32)::UINTEGER "
            f"ELSE (_row % {2**32})::UINTEGER END AS _hash "
            "FROM flagged"
        ).to_arrow_table()
        con.execute("SET preserve_insertion_order = false")
        con.register("stage", staged)
        stats_source = "stage"
        if staged.num_rows <= HASHES_AT_ONCE:  # sorted on the pool during the statistics
            shared_hashes = SharedHashes(staged.column("_hash"))
    starts = (
        f"starts_with(CAST(order_id AS VARCHAR), {_lit(prefix)})" if prefix is not None else None
    )
    import pyarrow.parquet as pq

    limit = isolation_limit(pq.read_metadata(path).num_rows)
    stats = con.sql(
        """SELECT count(*),
            count_if(_reason = 1), count_if(_reason = 2), count_if(_reason = 3),
            count_if(_reason = 4), count_if(_reason = 5),
            max("timestamp") FILTER (WHERE _reason = 0),
            arg_min(customer_id, _row) FILTER (WHERE _reason = 5),
            arg_min("timestamp", _row) FILTER (WHERE _reason = 5)"""
        + (
            f", count_if(_reason = 0 AND NOT (isfinite(amount) AND abs(amount) < {AMOUNT_LIMIT!r}))"
            if has_amount
            else ", 0"
        )
        + (", count_if(order_id IS NULL)" if order_nullable else ", 0")
        + (
            f", count_if(_reason <> 1 AND length(customer_id) <> length(trim(customer_id, "
            f"{_lit(ID_PADDING)})))"
            if id_type == "VARCHAR"
            else ", 0"
        )
        + ", count_if(_reason = 0)"
        + (f", count_if(_reason = 0 AND {starts})" if starts is not None else ", 0")
        + ", count_if(_reason = 6), count_if(_reason = 7), count_if(_reason = 8)"
        + (
            ", count_if(_reason <> 1 AND customer_id <> lower(customer_id))"
            if id_type == "VARCHAR" and not normalize_ids
            else ", 0"
        )
        + ', min("timestamp") FILTER (WHERE _reason = 0), NULL'  # (isolated rows' check)
        + (
            ", count_if(order_id IS NOT NULL AND _reason IN (1, 3, 4, 8))"
            if "order_id" in canonical
            else ", 0"
        )
        + f" FROM {stats_source}"
    ).fetchall()[0]
    if stats[11]:
        raise Unsupported("customer ids with spaces around them (trimmed by pandas)")
    lacking = stats[20] or ("order_id" in canonical and currency_column is not None)
    if lacking and _lines_lacking_order_fields(
        con, no_id, has_amount and quantity is None, currency_column is not None
    ):
        raise Unsupported("order lines without their order's customer id, time or total "
                          "(taken from the order's other lines by pandas)")  # fmt: skip
    rows_in, n_id, n_group, n_time, n_amount, n_late, last, first_id, first_ts, n_inf = stats[:10]
    order_nullable = order_nullable and bool(stats[10])
    if rows_in == 0 or n_inf:
        raise Unsupported("an error condition (reported by the pandas path)")
    report = CleaningReport(rows_in=int(rows_in))
    if code is not None:
        report.remove(currency_reason(str(currency_column), code), stats[16])
    if currency_note:
        report.notes.append(currency_note)
    if id_type == "VARCHAR" and (normalize_ids or stats[17]):
        note = _id_case(con, no_id, normalize_ids)
        if note:
            report.notes.append(note)
    report.remove("missing customer_id", n_id)
    if group is not None:
        report.remove(f"missing {group}", n_group)
    report.remove("missing timestamp", n_time)
    if has_amount:
        report.remove(amount_reason, n_amount)
    n_since, n_until, n_currency, _cased = stats[14:18]
    if since is not None:
        report.remove(since_reason(since), n_since)
    if until is not None:
        report.remove(until_reason(until), n_until)
    report.remove(end_reason, n_late)
    if end is None:
        if n_late:
            n_before = rows_in - n_currency - n_id - n_group - n_time - n_amount - n_since - n_until
            message = future_rows_note(n_late, n_before, tomorrow, first_id, pd.Timestamp(first_ts))
            report.notes.append(message)
            warnings.warn(message, UserWarning, stacklevel=6)
    elif last is not None:
        last_ts = pd.Timestamp(last)
        gap = end - last_ts
        if gap > pd.Timedelta(days=OBSERVATION_END_MARGIN_DAYS):
            if not allow_beyond:
                raise Unsupported("an error condition (reported by the pandas path)")
            report.notes.append(
                f"observation end {end.date()} is {gap.days:,} days after the last "
                f"transaction ({last_ts}), as allowed"
            )
    if last is None:
        raise Unsupported("an error condition (reported by the pandas path)")
    if limit >= 1 and stats[12] > 1:
        lowest, highest = _log_ends(con, stats_source, stats[18], last, limit)
        n_early, start, n_isolated_late, stop = isolated_ends(lowest, highest, limit)
        if n_early or n_isolated_late:
            report.flag(ISOLATED_REASON, n_early + n_isolated_late)
            firsts: list[tuple[Any, Any] | None] = []
            for bound, side in ((start, "<"), (stop, ">")):
                if bound is None:
                    firsts.append(None)
                    continue
                condition = f'"timestamp" {side} {_stamp_sql(bound)}'
                row_id, row_ts = con.sql(
                    f'SELECT arg_min(customer_id, _row), arg_min("timestamp", _row) '
                    f"FROM {stats_source} WHERE _reason = 0 AND {condition}"
                ).fetchall()[0]
                firsts.append((row_id, pd.Timestamp(row_ts)))
            message = isolated_rows_note(n_early, start, firsts[0], n_isolated_late, stop,
                                         firsts[1], int(stats[12]))  # fmt: skip
            report.notes.append(message)
            warnings.warn(message, UserWarning, stacklevel=6)

    n_kept, n_cancel = stats[12], stats[13]
    if whole_rows:
        alive = "_reason = 0"  # the rows removed so far stay in stage until clean is made
    else:
        alive = "true"
        kept = "SELECT * EXCLUDE (_reason) FROM flagged WHERE _reason = 0"
        n_lines = n_kept
    if starts is not None:
        if has_amount:
            kept = f"SELECT * REPLACE (CASE WHEN {starts} THEN -abs(amount) ELSE amount END " \
                   f"AS amount) FROM ({kept})"  # fmt: skip
            report.notes.append(
                f"{int(n_cancel):,} rows of cancellation orders (id starting with "
                f"{prefix!r}) count as returns"
            )
        else:
            report.remove(f"cancellation order (id starting with {prefix!r})", n_cancel)
            kept = f"SELECT * FROM ({kept}) WHERE NOT coalesce({starts}, false)"
            n_lines -= n_cancel
    cols = ", ".join(_q(c) for c in canonical)
    if "order_id" in canonical:
        keys = ["order_id", "customer_id"] + ([group] if group is not None else [])
        key_sql = ", ".join(_q(k) for k in keys)
        total = ", round(sum(amount), 9) AS amount" if has_amount else ", NULL AS amount"
        # the pandas path puts orders (in order of first line) before rows without an order
        merged = f"""SELECT {key_sql}, min("timestamp") AS "timestamp"{total}, min(_row) AS _row,
                   0 AS _loose
            FROM ({kept}) WHERE order_id IS NOT NULL GROUP BY {key_sql}
            UNION ALL BY NAME
            SELECT {key_sql}, "timestamp", amount, _row, 1 AS _loose
            FROM ({kept}) WHERE order_id IS NULL"""
        order = "_loose, _row"
        final_order = '"timestamp", customer_id, _loose, _row'
        values = '"timestamp", amount' if has_amount else '"timestamp"'
        n_copied, n_several, first_copied = con.sql(f"""
            SELECT count(*) FILTER (_distinct = 1), count(*),
                arg_min(order_id, _first) FILTER (_distinct = 1) FROM (
                SELECT {key_sql}, min(_row) AS _first, count(DISTINCT ({values})) AS _distinct
                FROM ({kept}) WHERE order_id IS NOT NULL GROUP BY {key_sql}
                HAVING count(*) > 1)
        """).fetchall()[0]  # fmt: skip
        if n_copied and 2 * n_copied >= n_several:  # as the pandas path (copied_orders_note)
            report.notes.append(copied_orders_note(int(n_copied), first_copied))
        con.execute(f"CREATE TEMP TABLE stage AS SELECT {cols}, _loose, _row FROM ({merged})")
    else:
        order = final_order = "_row"
        if not whole_rows:
            con.execute(
                f"CREATE TEMP TABLE stage AS SELECT {cols}, 0 AS _loose, _row FROM ({kept})"
            )

    where = " AND ".join(conditions) or "true"
    negative, zero = ("amount < 0", "amount = 0") if has_amount else ("false", "false")
    n_stored, n_rows, n_neg, n_zero, n_after = con.sql(
        f"SELECT count(*), count_if({alive}), count_if({alive} AND {negative}), "
        f"count_if({alive} AND {zero}), count_if({alive} AND {where}) FROM stage"
    ).fetchall()[0]
    if "order_id" in canonical:
        report.merge("order lines summed into one row per order", int(n_lines - n_rows))
    if has_amount:
        if negative_amounts == "error" and n_neg:
            raise Unsupported("an error condition (reported by the pandas path)")
        if negative_amounts == "drop":
            report.remove("negative amount (return or cancellation)", n_neg)
        if drop_zero:
            report.remove("zero amount", n_zero)
        else:
            report.flag("zero amount", n_zero)
    where = f"{alive} AND {where}"
    n_repeated = _repeated_rows(con, "stage", same, where, int(n_after),
                                hashed="_hash" if staged is not None else None,
                                hash_bits=32, hashes=shared_hashes)  # fmt: skip
    n_out = int(n_after)
    if drop_duplicates:
        report.remove("identical to an earlier row", n_repeated)
        n_out -= n_repeated
        if n_repeated:
            where += f" QUALIFY row_number() OVER (PARTITION BY {same_sql} ORDER BY {order}) = 1"
    else:
        report.flag("identical to an earlier row", n_repeated)
    if n_out == 0:
        raise Unsupported("an error condition (reported by the pandas path)")
    held = None
    if n_out == n_stored:  # nothing to remove: stage is the cleaned table (no copy)
        if staged is not None:
            con.unregister("stage")
            held = staged.drop_columns(["_reason", "_hash"])
            con.register("clean", held)
        else:
            con.execute("ALTER TABLE stage RENAME TO clean")
    else:
        con.execute(
            f"CREATE TEMP TABLE clean AS SELECT {cols}, _loose, _row FROM stage WHERE {where}"
        )
        if staged is not None:
            con.unregister("stage")
        else:
            con.execute("DROP TABLE stage")
    del staged
    report.rows_out = n_out
    report.check()
    log = ScannedLog(con, "clean", list(canonical), final_order, order_nullable, arrow=held,
                     arrow_in_order=held is not None)  # fmt: skip
    return log, report
