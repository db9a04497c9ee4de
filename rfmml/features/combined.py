"""The BTYD summary and the classic RFM table from one aggregation pass.

Both tables are per-customer aggregates of the same rows: the summary counts
purchase periods and their values, the RFM table first and last purchases,
rows and spend. On DuckDB (pandas input on the default engine, a
:class:`~rfmml.data.ScannedLog`) one statement groups the log by customer and
period once and derives both tables from those per-period rows, instead of two
passes over the log. Other inputs, and logs with an ``order_id`` column (the
RFM table counts distinct orders, which per-period rows cannot add up), call
:func:`~rfmml.features.btyd_summary` and :func:`~rfmml.features.rfm_table`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from rfmml._compiled import compiled_module, has_numba, in_background
from rfmml.data.transactions import end_cutoff
from rfmml.errors import DataError
from rfmml.features._engine import (
    as_timestamp,
    check_freq,
    columns_of,
    fetch_frame,
    next_period_start,
    open_frame,
    period_start,
    scalar,
    scalar_period,
)
from rfmml.features._threads import THREADS_MIN_ROWS, available_workers
from rfmml.features.btyd import (
    _SQL_PERIOD,
    _has_amount,
    _keys,
    _required,
    _sql_monetary,
    _sql_periods,
    _sql_units_to_double,
    _stamp,
    narrow_first,
    sql_spend_units,
)
from rfmml.features.btyd import btyd_summary as _btyd_summary
from rfmml.features.classic import DAYS_PER_YEAR
from rfmml.features.classic import rfm_table as _rfm_table

__all__ = ["FeaturesTable", "customer_features", "customer_features_table"]


def customer_features(
    tx: Any,
    observation_end: Any = None,
    freq: str = "D",
    group: str | None = None,
    *,
    min_tenure_days: float = 90.0,
    engine: str | None = None,
) -> tuple[Any, Any]:
    """The classic RFM table and the BTYD summary of a log, in one pass where possible.

    Parameters
    ----------
    tx : pandas.DataFrame, ScannedLog, polars.DataFrame, duckdb relation or pyspark DataFrame
        Canonical transactions (see :func:`rfmml.data.read_transactions` and
        :func:`rfmml.data.scan_transactions`).
    observation_end : date-like, optional
        The "as of" date of both tables; defaults to the last transaction.
    freq : {"D", "W", "M"}, default "D"
        Period unit of the summary.
    group : str, optional
        Column to build both tables within.
    min_tenure_days : float, default 90
        Floor on the exposure of the RFM table's annual rates.
    engine : {"duckdb", "polars"}, optional
        Engine for pandas input (DuckDB by default).

    Returns
    -------
    features, summary
        Equal to ``rfm_table(tx, observation_end, group,
        min_tenure_days=min_tenure_days)`` and ``btyd_summary(tx,
        observation_end, freq, group)``, in the same types and with the same
        ``attrs`` (sums may differ in the last bits of a float: the single
        pass adds per-period sums).
    """
    check_freq(freq)
    if not min_tenure_days > 0:
        raise ValueError(f"min_tenure_days must be positive, got {min_tenure_days!r}")
    columns = columns_of(tx)
    single = (
        "order_id" not in columns
        and engine in (None, "duckdb")
        and (isinstance(tx, pd.DataFrame) or type(tx).__name__ == "ScannedLog")
    )
    if not single:
        features = _rfm_table(tx, observation_end, group, min_tenure_days=min_tenure_days,
                              engine=engine)  # fmt: skip
        summary = _btyd_summary(tx, observation_end, freq, group, engine=engine)
        return features, summary
    keys = _keys(group)
    with_amount = _has_amount(tx)
    frame = open_frame(tx, _required(group, with_amount), engine)
    import narwhals as nw

    if observation_end is None:
        end = scalar(frame.lazy, nw.col("timestamp").max())
    else:
        end = as_timestamp(observation_end, "observation_end")

    def collect(narrow: bool) -> pd.DataFrame:
        sql = _combined_sql(end, freq, keys, with_amount, float(min_tenure_days),
                            every_row_observed=observation_end is None,
                            narrow=narrow)  # fmt: skip
        return frame.collect_sql(frame.lazy.to_native().query("tx", sql), keys)

    both = narrow_first(collect)  # 64-bit period spends; 128-bit ones when they overflow
    btyd_cols = ["frequency", "recency", "T"] + (["monetary_value"] if with_amount else [])
    summary = both.loc[:, btyd_cols]
    rfm_cols = [c for c in both.columns if c not in btyd_cols and c != "_rfm"]
    features = both.loc[both["_rfm"].to_numpy(), rfm_cols]
    features["n_orders"] = features["n_orders"].astype("int64")
    for column in ("first_purchase", "last_purchase"):
        features[column] = features[column].astype("datetime64[us]")
    _stamp(features, observation_end=end, min_tenure_days=min_tenure_days)
    _stamp(summary, freq=freq, observation_end=end)
    return features, summary


def _combined_sql(end: pd.Timestamp, freq: str, keys: list[str], with_amount: bool,
                  min_tenure: float, every_row_observed: bool = False,
                  narrow: bool = False) -> str:  # fmt: skip
    """One DuckDB statement: per customer and period, then both tables' columns.

    With ``every_row_observed`` (the observation end is the log's last timestamp,
    so every row lies before the RFM table's cut-off) the RFM table's values are
    the summary's, computed once: no filtered duplicates of the per-period
    aggregates (the same integers, so the same values bit for bit). With
    ``narrow`` the per-period spends are 64-bit (:func:`~rfmml.features.btyd.sql_spend_units`).
    """
    key_list = ", ".join(f'"{k}"' for k in keys)
    btyd_cut = pd.Timestamp(next_period_start(end, freq)).isoformat(sep=" ")
    rfm_cut = end_cutoff(end).isoformat(sep=" ")
    end_start = f"DATE '{period_start(end, freq).date()}'"
    end_day = scalar_period(end, "D")
    in_rfm = f"\"timestamp\" < TIMESTAMP '{rfm_cut}'"
    only = "" if every_row_observed else f" FILTER (WHERE {in_rfm})"
    per_values = [
        f'min("timestamp"){only} AS t0',
        f'max("timestamp"){only} AS t1',
        f"count(*){only} AS n",
    ]
    if with_amount:
        # exact integer sums (btyd.sql_spend_units): DuckDB adds a group's values in parallel
        # in no fixed order; these sums do not depend on it, and equal Spark's bit for bit
        per_values.append(f"{sql_spend_units(narrow=narrow)} AS s")
        if not every_row_observed:  # the RFM table's spend: up to its cut-off
            per_values.append(f"{sql_spend_units(only, narrow=narrow)} AS rs")
    day = "(CAST({} AS DATE) - DATE '1970-01-01')"
    tenure = f"({end_day} - {day.format('min(t0)')})::DOUBLE"
    exposure = (
        f"((CASE WHEN {tenure} > {min_tenure!r} THEN {tenure} ELSE {min_tenure!r} END) "
        f"/ {DAYS_PER_YEAR!r})"
    )
    out = [
        "(count(*) - 1)::DOUBLE AS frequency",
        f"{_sql_periods('min(p)', 'max(p)', freq)}::DOUBLE AS recency",
        f'{_sql_periods("min(p)", end_start, freq)}::DOUBLE AS "T"',
    ]
    if with_amount:
        out.append(f"{_sql_monetary()} AS monetary_value")
    spend = _sql_units_to_double(f"coalesce(sum({'s' if every_row_observed else 'rs'}), 0)")
    out += [
        f"({end_day} - {day.format('max(t1)')})::DOUBLE AS recency_days",
        "sum(n)::BIGINT AS n_orders",
    ]
    if with_amount:
        out += [
            f"{spend}::DOUBLE AS total_spend",
            f"({spend} / sum(n))::DOUBLE AS avg_order_value",
        ]
    out += [
        "min(t0) AS first_purchase",
        "max(t1) AS last_purchase",
        f"{tenure} AS tenure_days",
        f"(sum(n) / {exposure})::DOUBLE AS orders_per_year",
    ]
    if with_amount:
        out.append(f"({spend} / {exposure})::DOUBLE AS spend_per_year")
    out.append("sum(n) > 0 AS _rfm")
    return f"""
        WITH per AS (
            SELECT {key_list}, {_SQL_PERIOD[freq]} AS p, {", ".join(per_values)}
            FROM tx WHERE "timestamp" < TIMESTAMP '{btyd_cut}'
            GROUP BY ALL
        )
        SELECT {key_list}, {", ".join(out)}
        FROM per GROUP BY ALL ORDER BY {key_list}
    """


#: Log rows per partition of :func:`customer_features_table`: the per-period level of
#: the aggregation holds about one group per row; at 10M rows its hash tables fit the
#: 2 GiB budget (measured: 1.7 GiB), at 50M rows they spilled to disk (80 CPU s
#: against 8.3 at 10M).
PARTITION_ROWS = 10_000_000
#: DuckDB memory budget while and after building the table: the partitions fit in
#: it, and the cleaned log and the features table beyond it go to the spill folder.
TABLE_MEMORY = 2 * 2**30
#: Largest features table (bytes of its columns) the compiled pass keeps in memory as
#: Arrow, registered with the connection, rather than copying it into a DuckDB table
#: (the copy took 0.19-0.35 s at 3.4M customers, 366 MB; reading chunks back from
#: Arrow is a slice). Larger tables go to DuckDB, which can move them to disk.
IN_MEMORY_MAX_BYTES = 2**30


def _fill_staging(con: Any, staging: str, sql: str, source: str, key_list: str,
                  parts: int) -> None:  # fmt: skip
    """Run ``sql`` on each of ``parts`` hash partitions of ``source``, into table ``staging``."""
    for part in range(parts):
        where = "" if parts == 1 else f" WHERE hash({key_list}) % {parts} = {part}"
        # the statement reads "tx": the log (or one hash partition of its customers)
        body = sql.replace("FROM tx", f"FROM (SELECT * FROM {source}{where})", 1)
        body = body.rsplit("ORDER BY", 1)[0]
        if part == 0:
            con.execute(f'CREATE TEMP TABLE "{staging}" AS {body}')
        else:
            con.execute(f'INSERT INTO "{staging}" {body}')


@dataclass
class FeaturesTable:
    """The classic features and the BTYD summary of every customer, in a DuckDB table.

    Built by :func:`customer_features_table`; one row per customer (and group),
    in the order of the keys (the order :func:`customer_features` gives), with
    the columns of both tables (``first_purchase`` and ``last_purchase`` as
    DuckDB timestamps). Nothing is held in pandas.

    Attributes
    ----------
    connection : duckdb.DuckDBPyConnection
        The connection holding the table (the scanned log's).
    table : str
        Table name.
    keys : list of str
        ``customer_id`` and the group column, when there is one.
    feature_columns, summary_columns : list of str
        Columns of the RFM table and of the BTYD summary.
    feature_attrs, summary_attrs : dict
        The ``attrs`` :func:`customer_features` gives each table.
    n_rows : int
        Customers (rows).
    distinct_rows : dict
        Sorted distinct rows of some summary columns with every customer's row
        among them, left by :func:`rfmml.campaign.streaming.fit_on_table` for the
        scoring of the same table (which takes them); emptied by :meth:`drop`.
    """

    connection: Any
    table: str
    keys: list[str]
    feature_columns: list[str]
    summary_columns: list[str]
    feature_attrs: dict[str, Any]
    summary_attrs: dict[str, Any]
    n_rows: int
    #: Distinct rows of some summary columns and every customer's row among them, by
    #: column names, kept by whoever computed them for the next user of the same table
    #: (:mod:`rfmml.campaign.streaming`: the fit's grouping, then the scoring's codes).
    distinct_rows: dict[tuple[str, ...], Any] = field(
        default_factory=dict, init=False, repr=False, compare=False
    )
    #: The table's columns when they are held in memory (a ``pyarrow.Table`` registered
    #: with the connection under :attr:`table`, read by SQL as a view), else None.
    arrow: Any = field(default=None, repr=False, compare=False)

    def relation(self, columns: list[str] | None = None) -> Any:
        """The table (or some of its columns) as a lazy DuckDB relation, in key order."""
        cols = columns if columns is not None else [*self.keys, *self.feature_columns,
                                                    *self.summary_columns]  # fmt: skip
        names = ", ".join(f'"{c}"' for c in cols)
        # stored in key order; scanned in insertion order (preserve_insertion_order is set)
        self.connection.execute("SET preserve_insertion_order = true")
        return self.connection.sql(f'SELECT {names} FROM "{self.table}"')

    def to_pandas(self) -> tuple[pd.DataFrame, pd.DataFrame]:
        """``(features, summary)`` in pandas, as :func:`customer_features` returns them."""
        both = fetch_frame(self.relation(), self.keys)
        return _split(both, self.summary_columns, self.feature_attrs, self.summary_attrs)

    def drop(self) -> None:
        """Drop the table (the connection stays open)."""
        self.distinct_rows.clear()
        self.arrow = None
        forget_table(self.connection, self.table)


def forget_table(con: Any, name: str) -> None:
    """Drop the table ``name`` of ``con``, or unregister the Arrow table of that name."""
    import duckdb

    con.unregister(name)  # a registered Arrow table (nothing when there is none)
    try:
        con.execute(f'DROP TABLE IF EXISTS "{name}"')
    except duckdb.CatalogException:  # a view of that name
        con.execute(f'DROP VIEW IF EXISTS "{name}"')


def _split(both: pd.DataFrame, btyd_cols: list[str], feature_attrs: dict[str, Any],
           summary_attrs: dict[str, Any]) -> tuple[pd.DataFrame, pd.DataFrame]:  # fmt: skip
    """The features and the summary of one frame holding the columns of both."""
    summary = both.loc[:, btyd_cols]
    rfm_cols = [c for c in both.columns if c not in btyd_cols and c != "_rfm"]
    rfm = both.loc[both["_rfm"].to_numpy(), rfm_cols] if "_rfm" in both.columns else both[rfm_cols]
    features = rfm.copy() if rfm is both else rfm
    features["n_orders"] = features["n_orders"].astype("int64")
    for column in ("first_purchase", "last_purchase"):
        features[column] = features[column].astype("datetime64[us]")
    features.attrs = dict(feature_attrs)
    summary.attrs = dict(summary_attrs)
    return features, summary


def _check_shared(n_both: int, missing: int) -> None:
    """The errors of a features table whose customers lack RFM rows, or of an empty log."""
    if missing:
        raise DataError(
            f"features and summary share {n_both - missing} of {n_both} customers; "
            "build both from the same transactions and observation end"
        )
    if n_both == 0:
        raise DataError("the transaction log is empty (0 rows)")


def _staged_table(con: Any, staging: str, table: str, key_list: str) -> int:
    """Table ``table`` from the statement's partitions in ``staging``, sorted; its rows."""
    missing = con.sql(f'SELECT count(*) FROM "{staging}" WHERE NOT _rfm').fetchall()[0][0]
    n_both = con.sql(f'SELECT count(*) FROM "{staging}"').fetchall()[0][0]
    _check_shared(int(n_both), int(missing))
    con.execute("SET preserve_insertion_order = true")
    con.execute(
        f'CREATE TEMP TABLE "{table}" AS SELECT * EXCLUDE (_rfm) FROM "{staging}" '
        f"ORDER BY {key_list}"
    )
    con.execute(f'DROP TABLE "{staging}"')
    return int(n_both)


#: Log rows from which :func:`customer_features_table` takes the compiled pass
#: (:mod:`rfmml.features._features_kernel`) rather than the DuckDB statement: below it
#: importing numba and loading the compiled loops cost what the pass saves (measured,
#: fresh processes, the features stage of a uniform log: 1M rows 0.68-0.69 CPU s
#: against the statement's 0.50-0.56; 2M rows, 0.68M customers, 0.62-0.68 against
#: 1.34-1.44; 10M rows 1.4-1.7 against 9.7-11.1). One partition's rows
#: (``partition_rows``) at a time: the pass holds the log's columns, their partition
#: by block of customers and the customers' columns at once (10M rows, 3.4M
#: customers: peak 1.20 GiB above the imports against the statement's 1.77), which
#: for a whole larger log grows beyond the partitioned statement (20M rows, 15M
#: customers: 4.2 GiB against 2.3); a larger log is passed one range of customer ids
#: at a time (:func:`_table_compiled_parts`; the 50M-row btyd log: 14.0 s against the
#: partitioned statement's 47.3, 100M rows 58.6 s against 107.7, the job's peak
#: 3.3 GiB either way).
TABLE_COMPILED_MIN_ROWS = 2_000_000
_INTEGER_TYPES = ("TINYINT", "SMALLINT", "INTEGER", "BIGINT", "UTINYINT", "USMALLINT",
                  "UINTEGER", "UBIGINT")  # fmt: skip


def _table_compiled_eligible(log: Any, group: str | None, n_log: int) -> bool:
    """Whether the compiled pass can build the features table of a scanned log.

    A log of :data:`TABLE_COMPILED_MIN_ROWS` rows or more, no group, integer
    customer ids, microsecond timestamps, double amounts, numba installed. A
    log of several partitions is passed one range of customer ids at a time
    (:func:`_table_compiled_parts`).
    """
    if group is not None or n_log < TABLE_COMPILED_MIN_ROWS:
        return False
    rows = log.connection.sql(f"DESCRIBE {log.table}").fetchall()
    types = {r[0]: r[1] for r in rows}
    if types.get("customer_id") not in _INTEGER_TYPES or types.get("timestamp") != "TIMESTAMP":
        return False
    if "amount" in types and types["amount"] != "DOUBLE":
        return False
    return has_numba()  # imported by the pass itself (or its warm-up), not here


def _warm_compiled_pass(freq: str, with_amount: bool) -> None:
    """Load the compiled pass's loops for ``freq`` by running it on a two-customer log.

    The same calls with the same argument types as a real log's pass, so
    numba loads (from its disk cache) every loop that pass will call.
    """
    import pyarrow as pa

    if compiled_module("rfmml.features._features_kernel") is None:
        return
    columns = {
        "customer_id": pa.array([0, 1, 1], pa.int64()),
        "timestamp": pa.array([0, 86_400_000_000, 172_800_000_000], pa.timestamp("us")),
    }
    if with_amount:
        columns["amount"] = pa.array([1.0, 2.0, 3.5], pa.float64())
    workers = available_workers()  # the loops of the threaded pass too
    log = list(_log_columns(pa.table(columns), with_amount, workers))
    _compiled_columns(log, pa.int64(), pd.Timestamp("1970-01-10"), freq, 90.0, workers)


def _pass_workers(n_rows: int) -> int:
    """The threads of the compiled pass: as many as can be used from :data:`THREADS_MIN_ROWS`."""
    return available_workers() if n_rows >= THREADS_MIN_ROWS else 1


def _log_columns(fetched: Any, with_amount: bool, workers: int) -> tuple[Any, Any, Any]:
    """A log's customer ids, microseconds and amounts (or None) from Arrow columns (no NULLs).

    Numpy copies (:func:`rfmml.features._features_kernel.numpy_column`, on
    ``workers`` threads): the caller can free the Arrow columns before the pass.
    """
    import pyarrow as pa

    from rfmml.features import _features_kernel as kernel

    ids = fetched.column("customer_id")
    if ids.type == pa.int64():
        ids = kernel.numpy_column(ids, integer=True, workers=workers)
    else:
        ids = ids.to_numpy()
    ts = kernel.numpy_column(fetched.column("timestamp"), integer=True, workers=workers)
    amount = None
    if with_amount:
        amount = kernel.numpy_column(fetched.column("amount"), integer=False, workers=workers)
    return ids, ts, amount


def _compiled_columns(log: list[Any], id_type: Any, end: pd.Timestamp, freq: str,
                      min_tenure: float, workers: int) -> Any:  # fmt: skip
    """The features table (Arrow) of a log's columns by the compiled pass.

    See :func:`_table_compiled`. ``log``: the ids, microseconds and amounts
    (or None) of :func:`_log_columns`, emptied here so that the columns are
    freed once the pass no longer needs them; ``id_type`` is the Arrow type
    of the stored ids. None when a customer's spend reaches the kernel's
    guard. ``workers`` threads.
    """
    import numpy as np
    import pyarrow as pa

    from rfmml.features import _features_kernel as kernel
    from rfmml.features.btyd import customer_numbers, exact_monetary

    ids, ts, amount = log
    log.clear()
    with_amount = amount is not None
    keys, lo, rank, uniques = customer_numbers(ids)
    cut = int(np.datetime64(next_period_start(end, freq), "us").astype(np.int64))
    rfm_cut = int(np.datetime64(end_cutoff(end), "us").astype(np.int64))
    args = (keys, lo, rank, ts, amount, cut, rfm_cut, "DWM".index(freq), scalar_period(end, freq))
    result = kernel.features(*args, workers=workers)
    if result is None:
        return None
    customer, frequency, recency, age, monetary, flag, _, t0, t1, n, units = result
    _check_shared(len(customer), int(np.count_nonzero(n == 0)))
    if flag == 2:  # repeat spends of 2**53 units or more: through their decimal text
        repeat = kernel.features(*args, keep_repeat=True, workers=workers)[6]
        exact_monetary(monetary, frequency, repeat)
    del args, keys, rank, ts, amount, ids
    derived = kernel.rfm_columns(t0, t1, n, units, scalar_period(end, "D"), min_tenure,
                                 DAYS_PER_YEAR, with_amount, workers=workers)  # fmt: skip
    recency_days, tenure, per_year, spend, average, spend_year = derived
    for k in np.flatnonzero(np.isnan(spend)):  # 2**53 units or more: their decimal text
        spend[k] = float(f"{int(units[k])}e-9")
        average[k] = spend[k] / float(n[k])
        spend_year[k] = spend[k] / (max(tenure[k], min_tenure) / DAYS_PER_YEAR)
    columns: dict[str, Any] = {
        "customer_id": customer if uniques is None else uniques[customer],
        "frequency": frequency,
        "recency": recency,
        "T": age,
    }
    if with_amount:
        columns["monetary_value"] = monetary
    columns["recency_days"] = recency_days
    columns["n_orders"] = n
    if with_amount:
        columns["total_spend"] = spend
        columns["avg_order_value"] = average
    columns["first_purchase"] = t0.view("datetime64[us]")
    columns["last_purchase"] = t1.view("datetime64[us]")
    columns["tenure_days"] = tenure
    columns["orders_per_year"] = per_year
    if with_amount:
        columns["spend_per_year"] = spend_year
    built = pa.Table.from_arrays(
        [pa.array(v, type=id_type if k == "customer_id" else None) for k, v in columns.items()],
        names=list(columns),
    )
    del columns
    return built


def _table_compiled(con: Any, source: str, table: str, end: pd.Timestamp, freq: str,
                    with_amount: bool, min_tenure: float, held: Any = None) -> Any:  # fmt: skip
    """The features table of ``source`` by the compiled pass; its rows or columns, or None.

    The columns are fetched through Arrow, computed by
    :func:`rfmml.features._features_kernel.features` with the statement's
    arithmetic (exact integer spends converted as ``_sql_units_to_double``,
    days as whole-day differences, the exposure floored at ``min_tenure``) and
    stored from Arrow in the statement's names, types and order (``held``: the
    Arrow table behind ``source``, whose columns are read as they are): registered as
    ``table`` and returned (a ``pyarrow.Table``) up to :data:`IN_MEMORY_MAX_BYTES`,
    else copied into a DuckDB table of that name (its rows returned). None (nothing
    created) when a column holds NULLs or a customer's spend reaches the
    kernel's guard: the statement then sums it in 128 bits. From
    :data:`THREADS_MIN_ROWS` rows the copies and loops run on
    :func:`~rfmml.features._threads.available_workers` threads (ranges of rows,
    then of blocks of customers), which give one thread's values bit for bit.
    """
    cols = _pass_columns(with_amount)
    if held is not None:
        fetched = held.select(cols)
    else:
        fetched = con.sql(f"SELECT {_names(cols)} FROM {source}").to_arrow_table()
    if fetched.num_rows == 0:
        return None
    held_columns, fetched = [fetched], None  # the pass's own reference, freed in it
    built = _passed(held_columns, end, freq, with_amount, min_tenure)
    if built is None:
        return None
    con.execute("SET preserve_insertion_order = true")
    if built.nbytes <= IN_MEMORY_MAX_BYTES:
        con.register(table, built)
        return built
    _store(con, table, built, append=False)
    return len(built)


def _pass_columns(with_amount: bool) -> list[str]:
    """The log columns the compiled pass reads."""
    return ["customer_id", "timestamp"] + (["amount"] if with_amount else [])


def _names(cols: list[str]) -> str:
    return ", ".join(f'"{c}"' for c in cols)


def _passed(fetched: list[Any], end: pd.Timestamp, freq: str, with_amount: bool,
            min_tenure: float) -> Any:  # fmt: skip
    """The compiled pass of fetched log columns (Arrow); None on NULLs or without numba.

    ``fetched`` holds the caller's only reference to the Arrow table and is
    emptied here once its columns are copied for the pass (240 MB at 10M rows,
    freed before the pass).
    """
    cols = _pass_columns(with_amount)
    if any(fetched[0].column(c).null_count for c in cols):
        return None
    if compiled_module("rfmml.features._features_kernel") is None:
        return None
    table = fetched.pop()
    workers = _pass_workers(table.num_rows)
    id_type = table.schema.field("customer_id").type
    log = list(_log_columns(table, with_amount, workers))
    del table
    return _compiled_columns(log, id_type, end, freq, min_tenure, workers)


def _store(con: Any, table: str, built: Any, append: bool) -> None:
    """Copy Arrow table ``built`` into DuckDB table ``table`` (created, or appended to)."""
    view = f"{table}_arrow"
    con.register(view, built)
    try:
        if append:
            con.execute(f'INSERT INTO "{table}" SELECT * FROM "{view}"')
        else:
            con.execute(f'CREATE TEMP TABLE "{table}" AS SELECT * FROM "{view}"')
    finally:
        con.unregister(view)


def _table_compiled_parts(
    con: Any, source: str, table: str, end: pd.Timestamp, freq: str, with_amount: bool,
    min_tenure: float, parts: int,
) -> int | None:  # fmt: skip
    """:func:`_table_compiled` of a log of several partitions, one range of ids at a time.

    The customer ids are cut into ``parts`` ranges of about equal rows (DuckDB's
    ``approx_quantile``); each range's rows are fetched, passed (the pass holds
    one partition's columns, as for a log of one partition) and appended to
    DuckDB table ``table`` in the order of the ranges: each range comes sorted
    by customer id, so the table is in the order of the keys without a sort
    of the whole table (the statement's partitions are hashes of the ids,
    sorted at the end). The rows of the table, or None (no table left) when a
    range holds NULLs or a spend past the kernel's guard: the statement then
    builds the whole table.
    """
    shares = ", ".join(str(k / parts) for k in range(1, parts))
    cuts, no_id = con.sql(
        f"SELECT approx_quantile(customer_id, [{shares}]), count(*) - count(customer_id) "
        f"FROM {source}"
    ).fetchall()[0]
    if no_id:
        return None  # rows without an id are in no range: the statement takes them
    bounds = sorted(set(cuts or []))
    edges = [None, *bounds, None]
    n_rows = 0
    created = False
    done = False
    try:
        for lo, hi in zip(edges[:-1], edges[1:], strict=True):
            where = " AND ".join(
                [f"customer_id >= {lo}"] * (lo is not None)
                + [f"customer_id < {hi}"] * (hi is not None)
            )
            fetched = con.sql(
                f"SELECT {_names(_pass_columns(with_amount))} FROM {source}"
                + (f" WHERE {where}" if where else "")
            ).to_arrow_table()
            if fetched.num_rows == 0:
                continue
            held_columns, fetched = [fetched], None  # the pass's own reference, freed in it
            built = _passed(held_columns, end, freq, with_amount, min_tenure)
            if built is None:
                return None
            con.execute("SET preserve_insertion_order = true")
            _store(con, table, built, append=created)
            created = True
            n_rows += len(built)
            del built
        done = created
    finally:
        if not done:  # an error, a range the pass cannot take, or no rows: no table left
            con.execute(f'DROP TABLE IF EXISTS "{table}"')
    return n_rows if done else None


def customer_features_table(
    log: Any,
    observation_end: Any = None,
    freq: str = "D",
    group: str | None = None,
    *,
    min_tenure_days: float = 90.0,
    table: str = "customer_features",
    partition_rows: int | None = None,
) -> FeaturesTable:
    """:func:`customer_features` of a scanned log, kept in a DuckDB table of its connection.

    The same statement as :func:`customer_features` (so the same values, bit for
    bit), run on hash partitions of the customers when the log is large (each
    partition's per-period aggregation then fits DuckDB's memory budget instead of
    spilling), and stored sorted by the keys for :mod:`rfmml.campaign` to score in
    chunks. A log with integer customer ids and no group, from
    :data:`TABLE_COMPILED_MIN_ROWS` rows on, is aggregated instead by a compiled
    pass over its columns (:mod:`rfmml.features._features_kernel`, about six
    times less CPU at 10M rows) that stores the statement's table bit for bit
    (a log of several partitions one range of customer ids at a time); from
    :data:`THREADS_MIN_ROWS` rows its loops run on two threads where the
    process may use two cores (the same table).

    Parameters
    ----------
    log : ScannedLog
        A cleaned log (:func:`rfmml.data.scan_transactions`) without ``order_id``.
    observation_end, freq, group, min_tenure_days
        As :func:`customer_features`.
    table : str
        Name of the table (replaced if it exists).
    partition_rows : int, optional
        Log rows per partition; default :data:`PARTITION_ROWS`.

    Notes
    -----
    The log's connection gets a memory budget of :data:`TABLE_MEMORY` (DuckDB
    moves what does not fit, the cleaned log included, to its spill folder).

    Returns
    -------
    FeaturesTable

    Raises
    ------
    DataError
        A customer with purchases counted by the summary but not by the RFM table
        (the two would not join), or an empty log.
    TypeError
        ``log`` is not a scanned log, or has an ``order_id`` column.
    """
    check_freq(freq)
    if not min_tenure_days > 0:
        raise ValueError(f"min_tenure_days must be positive, got {min_tenure_days!r}")
    if type(log).__name__ != "ScannedLog" or "order_id" in columns_of(log):
        raise TypeError(
            "customer_features_table takes a ScannedLog (rfmml.data.scan_transactions) "
            "without an order_id column; use customer_features for other inputs"
        )
    keys = _keys(group)
    with_amount = _has_amount(log)
    frame = open_frame(log, _required(group, with_amount))
    import narwhals as nw

    if observation_end is None:
        end = scalar(frame.lazy, nw.col("timestamp").max())
    else:
        end = as_timestamp(observation_end, "observation_end")
    con = log.connection
    n_log = len(log)
    per_part = int(partition_rows or PARTITION_ROWS)
    parts = max(1, -(-n_log // per_part))
    # bounded: DuckDB keeps at most this much of the log and the table in memory
    con.execute(f"SET memory_limit = '{TABLE_MEMORY}B'")
    source = f"(SELECT {', '.join(chr(34) + c + chr(34) for c in _required(group, with_amount))} "
    source += f"FROM {log.table})"
    key_list = ", ".join(f'"{k}"' for k in keys)
    forget_table(con, table)
    staging = f"{table}_parts"

    def fill(narrow: bool) -> None:
        con.execute(f'DROP TABLE IF EXISTS "{staging}"')
        sql = _combined_sql(end, freq, keys, with_amount, float(min_tenure_days),
                            every_row_observed=observation_end is None,
                            narrow=narrow)  # fmt: skip
        _fill_staging(con, staging, sql, source, key_list, parts)

    compiled = None
    if _table_compiled_eligible(log, group, n_log):
        # numba loads the pass's loops while DuckDB hands over the log's columns
        in_background(lambda: _warm_compiled_pass(freq, with_amount))
        if parts == 1:
            compiled = _table_compiled(con, log.table, table, end, freq, with_amount,
                                       float(min_tenure_days),
                                       held=getattr(log, "arrow", None))  # fmt: skip
        else:
            compiled = _table_compiled_parts(con, log.table, table, end, freq, with_amount,
                                             float(min_tenure_days), parts)  # fmt: skip
    arrow = None
    if compiled is None:
        narrow_first(fill)  # 64-bit period spends; 128-bit ones when they overflow
        n_both = _staged_table(con, staging, table, key_list)
    elif isinstance(compiled, int):
        n_both = compiled
    else:
        arrow, n_both = compiled, len(compiled)
    btyd_cols = ["frequency", "recency", "T"] + (["monetary_value"] if with_amount else [])
    names = [r[0] for r in con.sql(f'DESCRIBE "{table}"').fetchall()]
    rfm_cols = [c for c in names if c not in (*keys, *btyd_cols)]
    feature_attrs: dict[str, Any] = {}
    summary_attrs: dict[str, Any] = {}
    probe = pd.DataFrame()
    _stamp(probe, observation_end=end, min_tenure_days=min_tenure_days)
    feature_attrs.update(probe.attrs)
    probe = pd.DataFrame()
    _stamp(probe, freq=freq, observation_end=end)
    summary_attrs.update(probe.attrs)
    return FeaturesTable(con, table, keys, rfm_cols, btyd_cols, feature_attrs, summary_attrs,
                         int(n_both), arrow=arrow)  # fmt: skip
