"""A persistent customer state: transactions absorbed batch by batch in a DuckDB file.

:class:`CustomerState` keeps, in one embedded DuckDB database file (a real
database: it survives the process and any DuckDB client can read it):

``rfmml_meta``
    Schema version, the rfmml version that created the file, the column mapping
    and cleaning options of :func:`rfmml.data.read_transactions`, the column
    types and the time zone of the first batch (later batches must match).
``rfmml_batches``
    One row per applied batch: its fingerprint (SHA-256 of its cleaned rows,
    order-free), rows read and kept, customers touched, first and last
    timestamp, when it was applied and by which rfmml version.
``rfmml_transactions``
    The cleaned transactions, in the canonical columns, with the batch number.
``rfmml_customers``
    Per-customer aggregates (first and last purchase, rows, orders, spend, and
    for each period unit D, W, M: first and last period, number of purchase
    periods and the first period's value). An update recomputes them only for
    the customers its batch touches.
``rfmml_segment_history`` and ``rfmml_refreshes``
    Written by :func:`rfmml.refresh.refresh`: who was in which segment when
    (``customer_id``, ``segment``, ``valid_from``, ``valid_to``; an open row
    has no ``valid_to``) and one row per refresh.

:meth:`CustomerState.btyd_summary` and :meth:`CustomerState.rfm_table` give
the same frames as :func:`rfmml.features.btyd_summary` and
:func:`rfmml.features.rfm_table` on the whole log, whatever the order in which
rows arrived. When every stored row lies within the requested observation end
(the default), they read the per-customer aggregates, so the cost is one pass
over the customers, not over the log; an earlier observation end or a
``group`` reads the stored transactions instead (same result, full cost).

Cleaning is applied batch by batch with the options given at creation. Every
option of :func:`~rfmml.data.read_transactions` acts on a row alone, except
two, handled as follows: ``drop_duplicates=True`` also drops a row identical
to one stored by an earlier batch (as it would be on the whole log), and
``negative_amounts="net"`` is refused: a return in a later batch would have to
change a purchase stored earlier, which this state does not do yet.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import pandas as pd

from rfmml.data.report import CleaningReport
from rfmml.data.transactions import TransactionSchema, end_cutoff, read_transactions
from rfmml.errors import DataError, StateError
from rfmml.features._engine import (
    as_timestamp,
    check_freq,
    fetch_frame,
    next_period_start,
    period_start,
    scalar_period,
)
from rfmml.features.btyd import _sql_periods, _stamp, btyd_summary
from rfmml.features.classic import DAYS_PER_YEAR, rfm_table

__all__ = ["SCHEMA_VERSION", "CustomerState", "StateUpdate"]

#: Version of the state file's layout; a file with a larger one is refused.
SCHEMA_VERSION = 1

_PERIODS = {"D": "day", "W": "week", "M": "month"}
_CLEANING = ("negative_amounts", "drop_zero_amounts", "drop_duplicates", "timestamp_format")


def _rfmml_version() -> str:
    import rfmml

    return str(rfmml.__version__)


_ORDER_DECIMALS = 9  # the loader rounds summed order amounts to 9 decimals


@dataclass
class StateUpdate:
    """What :meth:`CustomerState.update` did.

    Attributes
    ----------
    fingerprint : str
        ``sha256:`` digest of the batch's cleaned rows (independent of row order).
    applied : bool
        False when a batch with this fingerprint was already applied (nothing changed).
    rows_in : int
        Rows read from the source.
    rows_added : int
        Rows stored (after cleaning; with ``drop_duplicates``, also after
        removing rows already stored).
    customers_touched : int
        Customers whose aggregates were recomputed.
    late_rows : int
        Rows dated before the state's last transaction at the time of the update.
    report : CleaningReport
        The batch's cleaning report.
    """

    fingerprint: str
    applied: bool
    rows_in: int
    rows_added: int = 0
    customers_touched: int = 0
    late_rows: int = 0
    report: CleaningReport = field(default_factory=CleaningReport)


def _q(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _batch_fingerprint(frame: pd.DataFrame) -> str:
    """SHA-256 of the sorted row hashes: the same rows in any order give the same value."""
    hashed = np.sort(pd.util.hash_pandas_object(frame, index=False).to_numpy())
    digest = hashlib.sha256(json.dumps(list(frame.columns)).encode())
    digest.update(hashed.tobytes())
    return "sha256:" + digest.hexdigest()


def _connect(path: Path, read_only: bool) -> duckdb.DuckDBPyConnection:
    """Open the database file, turning lock and permission failures into one line."""
    try:
        return duckdb.connect(str(path), read_only=read_only)
    except duckdb.Error as exc:
        text = str(exc)
        if "lock" in text.lower():
            raise StateError(
                f"state {str(path)!r} is locked by another process; close it there or open "
                "it with CustomerState.open(path, read_only=True) once that process is done"
            ) from None
        if "different configuration" in text:
            raise StateError(
                f"state {str(path)!r} is already open in this process with another mode "
                "(read-only vs read-write); close that CustomerState first"
            ) from None
        if "permission" in text.lower() or "read-only" in text.lower():
            raise StateError(
                f"state {str(path)!r} cannot be written (file permissions); open it with "
                "CustomerState.open(path, read_only=True) to query it"
            ) from None
        raise StateError(f"state {str(path)!r} cannot be opened: {text.splitlines()[0]}") from None


class CustomerState:
    """Customer features kept up to date in an embedded DuckDB database file.

    Create one with :meth:`create`, reopen it with :meth:`open`, absorb new
    transactions with :meth:`update` and read features with
    :meth:`btyd_summary` and :meth:`rfm_table` (same arguments and results as
    the functions of those names on the whole log). Use it as a context manager
    or call :meth:`close`.

    Examples
    --------
    >>> state = CustomerState.create("customers.duckdb")  # doctest: +SKIP
    >>> state.update("orders_2024-06-01.csv")  # doctest: +SKIP
    >>> summary = state.btyd_summary(freq="W")  # doctest: +SKIP
    """

    def __init__(self, connection: duckdb.DuckDBPyConnection, path: Path, read_only: bool):
        self._con = connection
        self.path = path
        self.read_only = read_only
        self._meta = self._read_meta()

    # ------------------------------------------------------------------ opening
    @classmethod
    def create(
        cls,
        path: str | Path,
        customer: str = "customer_id",
        timestamp: str = "timestamp",
        amount: str | None = "amount",
        group: str | None = None,
        order: str | None = None,
        *,
        negative_amounts: str = "drop",
        drop_zero_amounts: bool = False,
        drop_duplicates: bool = False,
        timestamp_format: str | None = None,
    ) -> CustomerState:
        """Create an empty state file with a column mapping and cleaning options.

        Parameters
        ----------
        path : str or pathlib.Path
            The database file to create (must not exist).
        customer, timestamp, amount, group, order : str or None
            Column mapping of every batch, as in :func:`rfmml.data.read_transactions`.
        negative_amounts : {"drop", "error"}, default "drop"
            Returns policy. ``"net"`` is refused (see the module notes).
        drop_zero_amounts, drop_duplicates, timestamp_format
            As in :func:`rfmml.data.read_transactions`.

        Returns
        -------
        CustomerState
            Open read-write.

        Raises
        ------
        StateError
            If ``path`` exists or cannot be written.
        ValueError
            For an unsupported cleaning option.
        """
        if negative_amounts == "net":
            raise ValueError(
                "negative_amounts='net' is not supported by CustomerState: a return in a later "
                "batch would have to reduce a purchase stored earlier; use 'drop' or 'error', "
                "or net returns before the batches reach the state"
            )
        if negative_amounts not in ("drop", "error"):
            raise ValueError(
                f"negative_amounts must be 'drop' or 'error', got {negative_amounts!r}"
            )
        path = Path(path)
        if path.exists():
            raise StateError(
                f"state {str(path)!r} already exists; open it with CustomerState.open(path)"
            )
        schema = TransactionSchema(customer, timestamp, amount, group, order)
        con = _connect(path, read_only=False)
        meta = {
            "schema_version": SCHEMA_VERSION,
            "rfmml_version": _rfmml_version(),
            "created_at": pd.Timestamp.now(tz="UTC").isoformat(),
            "mapping": {
                "customer": schema.customer,
                "timestamp": schema.timestamp,
                "amount": schema.amount,
                "group": schema.group,
                "order": schema.order,
            },
            "cleaning": {
                "negative_amounts": negative_amounts,
                "drop_zero_amounts": bool(drop_zero_amounts),
                "drop_duplicates": bool(drop_duplicates),
                "timestamp_format": timestamp_format,
            },
            "columns": None,
            "time_zone": None,
        }
        try:
            con.begin()
            con.execute("CREATE TABLE rfmml_meta (key VARCHAR PRIMARY KEY, value VARCHAR)")
            con.executemany(
                "INSERT INTO rfmml_meta VALUES (?, ?)",
                [[k, json.dumps(v)] for k, v in meta.items()],
            )
            con.execute(
                "CREATE TABLE rfmml_batches (batch INTEGER PRIMARY KEY, fingerprint VARCHAR "
                "UNIQUE, rows_in BIGINT, rows_added BIGINT, customers_touched BIGINT, "
                "late_rows BIGINT, first_timestamp TIMESTAMP, last_timestamp TIMESTAMP, "
                "applied_at TIMESTAMP, rfmml_version VARCHAR)"
            )
            con.execute(
                "CREATE TABLE rfmml_refreshes (refreshed_at TIMESTAMP, observation_end "
                "TIMESTAMP, model VARCHAR, model_fingerprint VARCHAR, n_customers BIGINT, "
                "segment_changed_share DOUBLE, predicted_purchases DOUBLE, actual_purchases "
                "DOUBLE, refit_advised BOOLEAN, reason VARCHAR)"
            )
            con.commit()
        except BaseException:
            con.rollback()
            con.close()
            path.unlink(missing_ok=True)
            raise
        return cls(con, path, read_only=False)

    @classmethod
    def open(cls, path: str | Path, *, read_only: bool = False) -> CustomerState:
        """Open an existing state file.

        Parameters
        ----------
        path : str or pathlib.Path
            A file written by :meth:`create`.
        read_only : bool, default False
            Open without the right to update (several processes may read at once).

        Raises
        ------
        StateError
            Missing file, not a state, written by a newer rfmml, locked by
            another process, or not writable (without ``read_only``).
        """
        path = Path(path)
        if not path.is_file():
            raise StateError(
                f"state {str(path)!r} does not exist; create it with CustomerState.create(path)"
            )
        con = _connect(path, read_only=read_only)
        try:
            return cls(con, path, read_only=read_only)
        except BaseException:
            con.close()
            raise

    def _read_meta(self) -> dict[str, Any]:
        try:
            rows = self._con.execute("SELECT key, value FROM rfmml_meta").fetchall()
        except duckdb.CatalogException:
            raise StateError(
                f"{str(self.path)!r} is a DuckDB file but not an rfmml customer state "
                "(no rfmml_meta table)"
            ) from None
        meta = {k: json.loads(v) for k, v in rows}
        version = int(meta.get("schema_version", 0))
        if version > SCHEMA_VERSION:
            raise StateError(
                f"state {str(self.path)!r} was written by rfmml {meta.get('rfmml_version')} "
                f"(state schema {version}); this rfmml {_rfmml_version()} reads schema "
                f"{SCHEMA_VERSION} at most: upgrade rfmml"
            )
        return meta

    def close(self) -> None:
        """Close the database connection (the file stays)."""
        self._con.close()

    def __enter__(self) -> CustomerState:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        mode = "read-only" if self.read_only else "read-write"
        return f"CustomerState({str(self.path)!r}, {mode}, {self.n_batches} batches)"

    # --------------------------------------------------------------- properties
    @property
    def connection(self) -> duckdb.DuckDBPyConnection:
        """The open DuckDB connection (for ad-hoc SQL on the ``rfmml_*`` tables)."""
        return self._con

    @property
    def schema(self) -> TransactionSchema:
        """The column mapping every batch is read with."""
        return TransactionSchema(**self._meta["mapping"])

    @property
    def cleaning(self) -> dict[str, Any]:
        """The cleaning options every batch is read with."""
        return dict(self._meta["cleaning"])

    @property
    def time_zone(self) -> str | None:
        """The time zone of the first batch's timestamps (None when naive)."""
        return self._meta.get("time_zone")

    @property
    def n_batches(self) -> int:
        """Batches applied."""
        return int(self._con.execute("SELECT count(*) FROM rfmml_batches").fetchall()[0][0])

    @property
    def n_customers(self) -> int:
        """Customers in the state."""
        if not self._has_rows():
            return 0
        return int(self._con.execute("SELECT count(*) FROM rfmml_customers").fetchall()[0][0])

    @property
    def n_transactions(self) -> int:
        """Cleaned transactions stored."""
        if not self._has_rows():
            return 0
        return int(self._con.execute("SELECT count(*) FROM rfmml_transactions").fetchall()[0][0])

    @property
    def last_timestamp(self) -> pd.Timestamp:
        """The latest stored transaction (the default observation end).

        Raises
        ------
        DataError
            If no batch has been applied.
        """
        if not self._has_rows():
            raise DataError(
                f"state {str(self.path)!r} holds no transactions yet; apply a batch with update()"
            )
        value = self._con.execute("SELECT max(last_timestamp) FROM rfmml_batches").fetchall()[0][0]
        return pd.Timestamp(value)

    def batches(self) -> pd.DataFrame:
        """The applied batches, oldest first."""
        return self._con.execute("SELECT * FROM rfmml_batches ORDER BY batch").df()

    def _has_rows(self) -> bool:
        return self._meta.get("columns") is not None

    # ------------------------------------------------------------------- update
    def _check_writable(self) -> None:
        if self.read_only:
            raise StateError(
                f"state {str(self.path)!r} is open read-only; open it with "
                "CustomerState.open(path) to update it"
            )

    def update(self, transactions: Any) -> StateUpdate:
        """Absorb a batch of transactions.

        The batch is read and cleaned by :func:`rfmml.data.read_transactions`
        with the state's mapping and cleaning options. All changes happen in one
        database transaction: on any error the state is left as it was.

        Parameters
        ----------
        transactions : str, pathlib.Path, pandas.DataFrame or polars.DataFrame
            A CSV or Parquet file or a frame, in the columns of the state's mapping.
            Rows may be dated before earlier batches.

        Returns
        -------
        StateUpdate
            ``applied=False`` (and nothing changed) when the same batch was
            applied before.

        Raises
        ------
        DataError
            Bad rows (as :func:`~rfmml.data.read_transactions`), or a batch whose
            column types or time zone differ from the state's.
        StateError
            If the state is open read-only.
        """
        self._check_writable()
        mapping = self._meta["mapping"]
        tx, report = read_transactions(transactions, **mapping, **self._meta["cleaning"])
        if not isinstance(tx, pd.DataFrame):
            tx = tx.to_pandas()
        zone = report.time_zone
        fp = _batch_fingerprint(tx)
        done = self._con.execute(
            "SELECT batch FROM rfmml_batches WHERE fingerprint = ?", [fp]
        ).fetchall()
        if done:
            return StateUpdate(fp, applied=False, rows_in=report.rows_in, report=report)
        if self._has_rows() and zone != self.time_zone:
            raise DataError(
                f"column {mapping['timestamp']!r}: the batch's {len(tx)} timestamps are in "
                f"{_zone_text(zone)} but the state's are in {_zone_text(self.time_zone)} (first "
                f"customer_id={_first_id(tx)!r}); convert the batch to the state's "
                "time zone first"
            )
        self._con.begin()
        try:
            result = self._apply(tx, report, fp, zone)
            self._con.commit()
        except BaseException as exc:
            self._con.rollback()
            self._meta = self._read_meta()
            if isinstance(exc, duckdb.Error):
                raise StateError(
                    f"state {str(self.path)!r}: the update failed and nothing was changed: "
                    f"{str(exc).splitlines()[0]}"
                ) from exc
            raise
        return result

    def _apply(
        self, tx: pd.DataFrame, report: CleaningReport, fp: str, zone: str | None
    ) -> StateUpdate:
        con = self._con
        batch = int(
            con.execute("SELECT coalesce(max(batch), 0) + 1 FROM rfmml_batches").fetchall()[0][0]
        )
        previous_end = self.last_timestamp if self._has_rows() else None
        con.execute(
            "INSERT INTO rfmml_batches (batch, fingerprint, rows_in, applied_at, rfmml_version) "
            "VALUES (?, ?, ?, ?, ?)",
            [batch, fp, report.rows_in, pd.Timestamp.now(tz="UTC").tz_localize(None),
             _rfmml_version()],
        )  # fmt: skip
        con.register("_rfmml_batch", tx)
        try:
            columns = self._check_columns(tx)
            cols = ", ".join(_q(c) for c in columns)
            if not self._has_rows():
                con.execute(
                    f"CREATE TABLE rfmml_transactions AS SELECT {cols}, 0::INTEGER AS _batch "
                    "FROM _rfmml_batch LIMIT 0"
                )
                self._create_customers()
                self._set_meta("columns", [[c, t] for c, t in self._types("_rfmml_batch")])
                self._set_meta("time_zone", zone)
            if self._meta["cleaning"]["drop_duplicates"]:
                new_rows = (
                    f"SELECT {cols} FROM _rfmml_batch EXCEPT SELECT {cols} FROM "
                    "rfmml_transactions WHERE customer_id IN (SELECT customer_id FROM "
                    "_rfmml_batch)"
                )
            else:
                new_rows = f"SELECT {cols} FROM _rfmml_batch"
            con.execute(
                f"INSERT INTO rfmml_transactions ({cols}, _batch) SELECT {cols}, {batch} "
                f"FROM ({new_rows})"
            )
            added = int(
                con.execute(
                    "SELECT count(*) FROM rfmml_transactions WHERE _batch = ?", [batch]
                ).fetchall()[0][0]
            )
            if self._with_order():
                self._merge_split_orders(columns, batch)
            con.execute(
                "CREATE OR REPLACE TEMP TABLE _rfmml_touched AS "
                "SELECT DISTINCT customer_id FROM _rfmml_batch"
            )
            touched = int(con.execute("SELECT count(*) FROM _rfmml_touched").fetchall()[0][0])
            con.execute(
                "DELETE FROM rfmml_customers WHERE customer_id IN "
                "(SELECT customer_id FROM _rfmml_touched)"
            )
            scope = "_rfmml_touched" if previous_end is not None else None  # first: all rows
            con.execute(f"INSERT INTO rfmml_customers {self._aggregates_sql(scope)}")
            first, last = tx["timestamp"].min(), tx["timestamp"].max()
            late = 0 if previous_end is None else int((tx["timestamp"] < previous_end).sum())
            con.execute(
                "UPDATE rfmml_batches SET rows_added = ?, customers_touched = ?, late_rows = ?, "
                "first_timestamp = ?, last_timestamp = ? WHERE batch = ?",
                [added, touched, late, first, last, batch],
            )
            con.execute("DROP TABLE _rfmml_touched")
        finally:
            con.unregister("_rfmml_batch")
        return StateUpdate(fp, True, report.rows_in, added, touched, late, report)

    def _merge_split_orders(self, columns: list[str], batch: int) -> None:
        """One row per order across batches, as :func:`read_transactions` gives on the whole log.

        The loader sums an order's lines into one row (earliest line time, total
        amount) within a batch; when lines of one order arrive in several batches,
        the rows stored for it are merged the same way here.
        """
        group = self._meta["mapping"]["group"]
        keys = ["order_id", "customer_id"] + ([group] if group is not None else [])
        key_sql = ", ".join(_q(k) for k in keys)
        picks = []
        for c in columns:
            if c in keys:
                picks.append(_q(c))
            elif c == "timestamp":
                picks.append('min("timestamp") AS "timestamp"')
            elif c == "amount":
                picks.append(f'round(sum("amount"), {_ORDER_DECIMALS}) AS "amount"')
            else:
                picks.append(f"any_value({_q(c)}) AS {_q(c)}")
        con = self._con
        con.execute(
            f"CREATE OR REPLACE TEMP TABLE _rfmml_split AS SELECT {', '.join(picks)}, "
            f"{batch}::INTEGER AS _batch FROM rfmml_transactions "
            f"WHERE ({key_sql}) IN (SELECT DISTINCT {key_sql} FROM rfmml_transactions "
            f"WHERE _batch = {batch} AND order_id IS NOT NULL) "
            f"GROUP BY {key_sql} HAVING count(*) > 1"
        )
        match = " AND ".join(f"rfmml_transactions.{_q(k)} = s.{_q(k)}" for k in keys)
        con.execute(f"DELETE FROM rfmml_transactions USING _rfmml_split s WHERE {match}")
        cols = ", ".join(_q(c) for c in columns)
        con.execute(
            f"INSERT INTO rfmml_transactions ({cols}, _batch) SELECT {cols}, _batch "
            "FROM _rfmml_split"
        )
        con.execute("DROP TABLE _rfmml_split")

    def _types(self, relation: str) -> list[tuple[str, str]]:
        rows = self._con.execute(f"DESCRIBE SELECT * FROM {relation}").fetchall()
        return [(r[0], str(r[1])) for r in rows]

    def _check_columns(self, tx: pd.DataFrame) -> list[str]:
        """The batch's canonical columns, checked against the state's names and types."""
        found = self._types("_rfmml_batch")
        stored = self._meta.get("columns")
        if stored is None:
            return [c for c, _ in found]
        expected = {c: t for c, t in stored}
        got = dict(found)
        if list(got) != list(expected):
            raise DataError(
                f"the batch has columns {list(got)} but the state {list(expected)}; "
                "batches must use the state's column mapping"
            )
        for name, kind in expected.items():
            if got[name] != kind:
                raise DataError(
                    f"column {name!r}: the batch's {len(tx)} rows hold {got[name]} but the state "
                    f"holds {kind} (first customer_id={_first_id(tx)!r}); convert "
                    "the column before updating (CSV ids are read as text)"
                )
        return list(expected)

    def _set_meta(self, key: str, value: Any) -> None:
        self._con.execute(
            "INSERT OR REPLACE INTO rfmml_meta VALUES (?, ?)", [key, json.dumps(value)]
        )
        self._meta[key] = value

    def _with_amount(self) -> bool:
        return self._meta["mapping"]["amount"] is not None

    def _with_order(self) -> bool:
        return self._meta["mapping"]["order"] is not None

    def _create_customers(self) -> None:
        self._con.execute(
            "CREATE TABLE rfmml_customers AS "
            "SELECT * FROM (" + self._aggregates_sql(None) + ") LIMIT 0"
        )

    def _aggregates_sql(self, touched: str | None) -> str:
        """Per-customer aggregates of the stored rows (of the customers in ``touched``)."""
        where = f"WHERE customer_id IN (SELECT customer_id FROM {touched})" if touched else ""
        amount = self._with_amount()
        a = ', sum("amount") AS a' if amount else ""
        suma = ", sum(a) AS a" if amount else ""
        orders = (
            "count(DISTINCT order_id) + (count(*) > count(order_id))::BIGINT"
            if self._with_order()
            else "count(*)"
        )
        per_freq = []
        for freq in ("D", "W", "M"):
            trunc = f"CAST(date_trunc('{_PERIODS[freq]}', p) AS DATE)"
            source = (
                "days"
                if freq == "D"
                else f"(SELECT customer_id, {trunc} AS p{suma} FROM days GROUP BY ALL)"
            )
            first_a = f", arg_min(a, p) AS first_amount_{freq}" if amount else ""
            per_freq.append(
                f"{freq.lower()} AS (SELECT customer_id, min(p) AS first_{freq}, "
                f"max(p) AS last_{freq}, count(*) AS n_{freq}{first_a} FROM {source} GROUP BY ALL)"
            )
        total = ', sum("amount") AS total_spend' if amount else ""
        return f"""
            WITH rows AS (SELECT * FROM rfmml_transactions {where}),
            days AS (SELECT customer_id, CAST("timestamp" AS DATE) AS p{a} FROM rows GROUP BY ALL),
            per_row AS (
                SELECT customer_id, min("timestamp") AS first_purchase,
                    max("timestamp") AS last_purchase, count(*) AS n_rows,
                    {orders} AS n_orders{total}
                FROM rows GROUP BY ALL
            ),
            {", ".join(per_freq)}
            SELECT * FROM per_row JOIN d USING (customer_id) JOIN w USING (customer_id)
                JOIN m USING (customer_id)
        """

    # ----------------------------------------------------------------- features
    def _require_rows(self) -> pd.Timestamp:
        return self.last_timestamp

    def _rows_relation(self, group: str | None) -> duckdb.DuckDBPyRelation:
        if group is not None and group != self._meta["mapping"]["group"]:
            raise DataError(
                f"group={group!r}: the state's transactions have no such column (its group "
                f"column is {self._meta['mapping']['group']!r})"
            )
        columns = [c for c, _ in self._meta["columns"]]
        return self._con.sql(f"SELECT {', '.join(_q(c) for c in columns)} FROM rfmml_transactions")

    def btyd_summary(
        self,
        observation_end: Any = None,
        freq: str = "D",
        group: str | None = None,
        *,
        engine: str | None = None,
    ) -> pd.DataFrame:
        """The BTYD summary of every stored transaction.

        Same arguments and result as :func:`rfmml.features.btyd_summary` on the
        whole log (pandas output). ``engine`` can only be ``"duckdb"`` (or None):
        the state is a DuckDB database.

        Raises
        ------
        DataError
            If the state holds no transactions, or ``group`` is not its group column.
        """
        check_freq(freq)
        _check_engine(engine)
        last = self._require_rows()
        end = last if observation_end is None else as_timestamp(observation_end, "observation_end")
        keys = ["customer_id"] if group is None else ["customer_id", group]
        if group is not None or last >= pd.Timestamp(next_period_start(end, freq)):
            out = btyd_summary(self._rows_relation(group), end, freq, group)
        else:
            end_start = f"DATE '{period_start(end, freq).date()}'"
            monetary = (
                f", CASE WHEN n_{freq} > 1 THEN (total_spend - first_amount_{freq}) / "
                f"(n_{freq} - 1) ELSE 0.0 END::DOUBLE AS monetary_value"
                if self._with_amount()
                else ""
            )
            out = self._con.sql(f"""
                SELECT customer_id, (n_{freq} - 1)::DOUBLE AS frequency,
                    {_sql_periods(f"first_{freq}", f"last_{freq}", freq)}::DOUBLE AS recency,
                    {_sql_periods(f"first_{freq}", end_start, freq)}::DOUBLE AS "T"{monetary}
                FROM rfmml_customers ORDER BY customer_id
            """)
        result = fetch_frame(out, keys)
        _stamp(result, freq=freq, observation_end=end)
        return result

    def rfm_table(
        self,
        observation_end: Any = None,
        group: str | None = None,
        *,
        min_tenure_days: float = 90.0,
        engine: str | None = None,
    ) -> pd.DataFrame:
        """The classic RFM table of every stored transaction.

        Same arguments and result as :func:`rfmml.features.rfm_table` on the
        whole log (pandas output); ``engine`` as in :meth:`btyd_summary`.

        Raises
        ------
        DataError
            If the state holds no transactions, or ``group`` is not its group column.
        ValueError
            If ``min_tenure_days`` is not positive.
        """
        if not min_tenure_days > 0:
            raise ValueError(f"min_tenure_days must be positive, got {min_tenure_days!r}")
        _check_engine(engine)
        last = self._require_rows()
        end = last if observation_end is None else as_timestamp(observation_end, "observation_end")
        keys = ["customer_id"] if group is None else ["customer_id", group]
        if group is not None or last >= end_cutoff(end):
            relation = rfm_table(
                self._rows_relation(group), end, group, min_tenure_days=min_tenure_days
            )
            ordered = relation.order(", ".join(_q(k) for k in keys))
            result = ordered.df().set_index(keys)
        else:
            end_day = scalar_period(end, "D")
            day = "(CAST({} AS DATE) - DATE '1970-01-01')"
            tenure = f"({end_day} - {day.format('first_purchase')})::DOUBLE"
            exposure = (
                f"(CASE WHEN {tenure} > {float(min_tenure_days)} THEN {tenure} "
                f"ELSE {float(min_tenure_days)} END / {DAYS_PER_YEAR})"
            )
            spend = (
                "total_spend::DOUBLE AS total_spend, (total_spend / n_orders)::DOUBLE AS "
                "avg_order_value, "
                if self._with_amount()
                else ""
            )
            per_year = (
                f", total_spend / {exposure} AS spend_per_year" if self._with_amount() else ""
            )
            relation = self._con.sql(f"""
                SELECT customer_id,
                    ({end_day} - {day.format("last_purchase")})::DOUBLE AS recency_days,
                    n_orders::BIGINT AS n_orders, {spend}
                    first_purchase, last_purchase, {tenure} AS tenure_days,
                    (n_orders / {exposure})::DOUBLE AS orders_per_year{per_year}
                FROM rfmml_customers ORDER BY customer_id
            """)
            result = fetch_frame(relation, keys)
        _stamp(result, observation_end=end, min_tenure_days=min_tenure_days)
        return result

    # --------------------------------------------------------- segment history
    def _ensure_history(self) -> None:
        id_type = dict(self._meta["columns"])["customer_id"]
        self._con.execute(
            f"CREATE TABLE IF NOT EXISTS rfmml_segment_history (customer_id {id_type}, "
            "segment VARCHAR, valid_from TIMESTAMP, valid_to TIMESTAMP)"
        )

    def current_segments(self) -> pd.Series:
        """Each customer's open segment in the history (empty before the first record)."""
        if not self._table_exists("rfmml_segment_history"):
            return pd.Series(
                [], dtype=object, name="segment", index=pd.Index([], name="customer_id")
            )
        frame = self._con.execute(
            "SELECT customer_id, segment FROM rfmml_segment_history WHERE valid_to IS NULL "
            "ORDER BY customer_id"
        ).df()
        return frame.set_index("customer_id")["segment"].astype(object)

    def segment_history(self) -> pd.DataFrame:
        """The segment history: ``customer_id``, ``segment``, ``valid_from``, ``valid_to``.

        A customer was in ``segment`` from ``valid_from`` (included) to
        ``valid_to`` (excluded); the open row (no ``valid_to``) is the current one.
        """
        if not self._table_exists("rfmml_segment_history"):
            return pd.DataFrame(columns=["customer_id", "segment", "valid_from", "valid_to"])
        return self._con.execute(
            "SELECT * FROM rfmml_segment_history ORDER BY customer_id, valid_from"
        ).df()

    def record_segments(
        self, segments: pd.Series | None, as_of: Any, *, refresh: dict[str, Any] | None = None
    ) -> dict[str, int]:
        """Append the segments valid from ``as_of`` to the history, in one transaction.

        Customers whose open segment differs from ``segments`` (or who are no
        longer in it) get ``valid_to = as_of``; those with a new or changed
        segment get an open row from ``as_of``.

        Parameters
        ----------
        segments : pandas.Series or None
            Segment names indexed by ``customer_id``; None records only ``refresh``
            (models without segments).
        as_of : date-like
            When the segments take effect (the observation end they were scored at).
        refresh : dict, optional
            A row for the ``rfmml_refreshes`` log, written in the same transaction.

        Returns
        -------
        dict
            ``{"entered": n, "closed": n}``: rows opened and rows closed.
        """
        self._check_writable()
        as_of = as_timestamp(as_of, "as_of")
        counts = {"entered": 0, "closed": 0}
        self._con.begin()
        try:
            if segments is not None:
                counts = self._append_history(segments, as_of)
            if refresh is not None:
                names = list(refresh)
                self._con.execute(
                    f"INSERT INTO rfmml_refreshes ({', '.join(names)}) VALUES "
                    f"({', '.join('?' for _ in names)})",
                    [refresh[n] for n in names],
                )
            self._con.commit()
        except BaseException:
            self._con.rollback()
            raise
        return counts

    def _append_history(self, segments: pd.Series, as_of: pd.Timestamp) -> dict[str, int]:
        frame = pd.DataFrame(
            {"customer_id": segments.index.to_numpy(), "segment": segments.astype(str).to_numpy()}
        )
        self._ensure_history()
        self._con.register("_rfmml_segments", frame)
        try:
            changed = (
                "SELECT h.customer_id FROM rfmml_segment_history h LEFT JOIN _rfmml_segments s "
                "ON h.customer_id = s.customer_id WHERE h.valid_to IS NULL AND "
                "(s.segment IS NULL OR s.segment <> h.segment)"
            )
            closed = int(self._con.execute(f"SELECT count(*) FROM ({changed})").fetchall()[0][0])
            self._con.execute(
                f"UPDATE rfmml_segment_history SET valid_to = ? WHERE valid_to IS NULL AND "
                f"customer_id IN ({changed})",
                [as_of],
            ).fetchall()
            opened = self._con.execute(
                "INSERT INTO rfmml_segment_history SELECT s.customer_id, s.segment, ?, NULL "
                "FROM _rfmml_segments s ANTI JOIN (SELECT * FROM rfmml_segment_history WHERE "
                "valid_to IS NULL) h ON s.customer_id = h.customer_id",
                [as_of],
            ).fetchall()[0][0]
        finally:
            self._con.unregister("_rfmml_segments")
        return {"entered": int(opened), "closed": closed}

    def refreshes(self) -> pd.DataFrame:
        """The log of refreshes (see :func:`rfmml.refresh.refresh`), oldest first."""
        return self._con.execute("SELECT * FROM rfmml_refreshes ORDER BY refreshed_at").df()

    def _table_exists(self, name: str) -> bool:
        found = self._con.execute(
            "SELECT count(*) FROM duckdb_tables() WHERE table_name = ? AND NOT temporary", [name]
        ).fetchall()[0][0]
        return bool(found)

    def tables(self) -> dict[str, pd.DataFrame]:
        """Every ``rfmml_*`` table, in full (for inspection and tests)."""
        names = self._con.execute(
            "SELECT table_name FROM duckdb_tables() WHERE table_name LIKE 'rfmml_%' "
            "AND NOT temporary ORDER BY table_name"
        ).fetchall()
        return {n: self._con.execute(f"SELECT * FROM {n}").df() for (n,) in names}


def _zone_text(zone: str | None) -> str:
    return "naive wall-clock time (no time zone)" if zone is None else f"time zone {zone}"


def _first_id(tx: pd.DataFrame) -> Any:
    """The batch's first customer id as a plain Python value (for messages)."""
    return tx["customer_id"].iloc[:1].tolist()[0]


def _check_engine(engine: str | None) -> None:
    if engine not in (None, "duckdb"):
        raise ValueError(
            f"engine={engine!r}: a CustomerState computes in its DuckDB database; "
            "pass engine='duckdb' or leave it out"
        )
