"""A persistent customer state: transactions absorbed batch by batch in a DuckDB file.

:class:`CustomerState` keeps, in one embedded DuckDB database file (a real
database: it survives the process and any DuckDB client can read it):

``rfmml_meta``
    Schema version, the rfmml version that created the file, the column mapping
    and cleaning options of :func:`rfmml.data.read_transactions`, the column
    types and the time zone of the first batch (later batches must match), and
    the read options of the latest applied batch (``dayfirst``, ``encoding``,
    ``separator``, ``decimal``: how the files are written), which later updates
    reuse unless told otherwise. A file written before rfmml stored them has no
    such entry; its first update stores the options it was given.
``rfmml_batches``
    One row per applied batch: its fingerprint (SHA-256 of its cleaned rows,
    order-free), rows read and kept, customers touched, first and last
    timestamp, when it was applied, by which rfmml version, and its cleaning
    report (JSON).
``rfmml_transactions``
    The cleaned transactions, in the canonical columns, with the batch number:
    the rows :func:`~rfmml.data.read_transactions` gives on all batches at once.
``rfmml_customers`` and ``rfmml_customer_groups``
    Aggregates per customer, and per customer and group when the state has a
    group column (first and last purchase, rows, orders, spend, and for each
    period unit D, W, M: first and last period, number of purchase periods and
    the first period's value). An update recomputes both, in its database
    transaction, for the customers its batch touches only.
``rfmml_raw`` and ``rfmml_net`` (``negative_amounts="net"`` only)
    The rows of every batch before returns are netted (negative rows kept),
    and per customer the counts of the netting (returns netted and unmatched,
    purchases wiped, zero amounts, identical rows) for :meth:`CustomerState.cleaning_report`.
``rfmml_segment_history`` and ``rfmml_refreshes``
    Written by :func:`rfmml.refresh.refresh`: who was in which segment when
    (``customer_id``, ``segment``, ``valid_from``, ``valid_to``; an open row
    has no ``valid_to``) and one row per refresh.

:meth:`CustomerState.btyd_summary` and :meth:`CustomerState.rfm_table` give
the same frames as :func:`rfmml.features.btyd_summary` and
:func:`rfmml.features.rfm_table` on the whole log, whatever the order in which
rows arrived. When every stored row lies within the requested observation end
(the default), they read the aggregates, per customer or, with ``group``, per
customer and group: the cost is one pass over the customers, not over the
log. An earlier observation end reads the stored transactions instead (same
result, full cost). :meth:`CustomerState.cleaning_report` counts what one
:func:`~rfmml.data.read_transactions` of all rows would count.

Cleaning is applied batch by batch with the options given at creation. Every
option of :func:`~rfmml.data.read_transactions` acts on a row alone, except
these, which act across batches as they would on the whole log:

- ``order``: lines of one order that arrive in several batches are summed
  into one row;
- ``drop_duplicates=True`` also drops a row identical to one stored by an
  earlier batch;
- ``negative_amounts="net"``: a return is netted against the customer's latest
  purchase at or before it (of several at that time, the largest), whichever
  batch either came in. The state keeps every batch's rows as read, returns
  included (``rfmml_raw``), and an update nets, drops zero amounts and
  identical rows again for the customers it touches, from all their rows: a
  late purchase can take a return stored earlier, a late return can reduce a
  purchase stored earlier.

Known limit: with ``negative_amounts="drop"`` or ``"error"`` the sign of an
order is judged per batch, so an order whose lines are split across batches
and sum to a negative amount only over all of them is not dropped (use
``"net"``, or send an order's lines together).
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
from rfmml.data.transactions import (
    TransactionSchema,
    _read_transactions,
    end_cutoff,
)
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

#: Version of the state file's layout; a file with a larger one is refused. 2: batch
#: reports, per-(customer, group) aggregates, ``negative_amounts="net"``; a file of
#: version 1 is brought to 2 when opened read-write.
SCHEMA_VERSION = 2

_PERIODS = {"D": "day", "W": "week", "M": "month"}
_CLEANING = ("negative_amounts", "drop_zero_amounts", "drop_duplicates", "timestamp_format")
#: How a batch file is written; stored in the state's ``read_options`` meta entry.
_READ_OPTIONS = (
    "dayfirst",
    "encoding",
    "separator",
    "decimal",
    "status",
    "exclude_status",
    "currency",
    "currency_column",
    "normalize_ids",
)
#: Options of one batch only (never stored): the period its rows are kept from.
_BATCH_OPTIONS = ("since", "until")
#: Options of :meth:`CustomerState.create` a later :meth:`CustomerState.update` may
#: change (the file's column names and timestamp format); the canonical columns stay
#: those of the state.
LATER_OPTIONS = ("customer", "timestamp", "amount", "group", "order", "timestamp_format")


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
        removing rows already stored). With ``negative_amounts="net"``, the
        change in :attr:`CustomerState.n_transactions` (returns are folded into
        purchases, so it can be smaller than the batch, or negative with
        ``drop_zero_amounts``).
    customers_touched : int
        Customers whose aggregates were recomputed.
    late_rows : int
        Rows dated before the state's last transaction at the time of the update.
    report : CleaningReport
        The batch's cleaning report (with ``negative_amounts="net"``: as read,
        before returns are netted; :meth:`CustomerState.cleaning_report` counts
        the netting over all batches).
    read_options : dict
        How the batch was read: ``dayfirst``, ``encoding``, ``separator`` and
        ``decimal`` (None: not set, the reader's default or inference).
    notes : list of str
        One line when this call changed an option the state had stored (read
        option or column mapping), naming the old and new values.
    """

    fingerprint: str
    applied: bool
    rows_in: int
    rows_added: int = 0
    customers_touched: int = 0
    late_rows: int = 0
    report: CleaningReport = field(default_factory=CleaningReport)
    read_options: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


def _q(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _batch_fingerprint(frame: pd.DataFrame) -> str:
    """SHA-256 of the sorted row hashes: the same rows in any order give the same value."""
    hashed = np.sort(pd.util.hash_pandas_object(frame, index=False).to_numpy())
    digest = hashlib.sha256(json.dumps(list(frame.columns)).encode())
    digest.update(hashed.tobytes())
    return "sha256:" + digest.hexdigest()


def _raw_fingerprint(source: Any) -> str:
    """SHA-256 of a batch as given: a frame's rows (any order) or the bytes of its file(s)."""
    if isinstance(source, str | Path):
        path = Path(source)
        files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
        digest = hashlib.sha256()
        for file in files:
            with file.open("rb") as handle:
                for block in iter(lambda: handle.read(1 << 20), b""):
                    digest.update(block)
        return "sha256:raw:" + digest.hexdigest()
    frame = source if isinstance(source, pd.DataFrame) else source.to_pandas()
    return _batch_fingerprint(frame.reset_index(drop=True)).replace("sha256:", "sha256:raw:")


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
        negative_amounts : {"drop", "net", "error"}, default "drop"
            Returns policy, as in :func:`rfmml.data.read_transactions`; with
            ``"net"`` a return is netted against the customer's purchase even
            when the two arrive in different batches (see the module notes).
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
        if negative_amounts not in ("drop", "net", "error"):
            raise ValueError(
                f"negative_amounts must be 'drop', 'net' or 'error', got {negative_amounts!r}"
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
                "applied_at TIMESTAMP, rfmml_version VARCHAR, report VARCHAR)"
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
            state = cls(con, path, read_only=read_only)
            if not read_only and int(state._meta["schema_version"]) < SCHEMA_VERSION:
                state._upgrade()
            return state
        except BaseException:
            con.close()
            raise

    def _upgrade(self) -> None:
        """Bring a schema-1 file to schema 2 (batch reports, per-group aggregates)."""
        self._con.begin()
        try:
            self._con.execute("ALTER TABLE rfmml_batches ADD COLUMN IF NOT EXISTS report VARCHAR")
            if self._has_rows() and self._group() is not None:
                self._con.execute(
                    f"CREATE TABLE rfmml_customer_groups AS {self._aggregates_sql(None, True)}"
                )
            self._set_meta("schema_version", SCHEMA_VERSION)
            self._con.commit()
        except BaseException:
            self._con.rollback()
            self._meta = self._read_meta()
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
    def read_options(self) -> dict[str, Any] | None:
        """How batches are read unless :meth:`update` is told otherwise.

        ``dayfirst``, ``encoding``, ``separator``, ``decimal``, ``status`` and
        ``exclude_status`` of the latest applied batch (None values: not set);
        None for a state that has none stored yet (new, or written by an rfmml
        that did not store them).
        """
        stored = self._meta.get("read_options")
        return None if stored is None else dict(stored)

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
        last = self._last()
        if last is None:
            raise DataError(
                f"state {str(self.path)!r} holds no transactions: every row absorbed so far "
                "was a return without an earlier purchase"
            )
        return last

    def _last(self) -> pd.Timestamp | None:
        """The latest stored transaction, None when there is none."""
        if not self._has_rows():
            return None
        value = self._con.execute("SELECT max(last_purchase) FROM rfmml_customers").fetchall()
        return None if value[0][0] is None else pd.Timestamp(value[0][0])

    def batches(self) -> pd.DataFrame:
        """The applied batches, oldest first."""
        return self._con.execute("SELECT * FROM rfmml_batches ORDER BY batch").df()

    def cleaning_report(self) -> CleaningReport:
        """The cleaning report of every row absorbed, as if read in one piece.

        Its counts are those :func:`rfmml.data.read_transactions` reports on
        all the batches' rows at once with the state's options: rows removed
        row by row (missing values, future dates) add up over batches; order
        lines, returns, zero amounts and identical rows are counted on the
        stored rows, across batches. ``rows_out`` is :attr:`n_transactions`.
        Notes are those of the batches, each once.

        Returns
        -------
        CleaningReport
        """
        cleaning = self._meta["cleaning"]
        nets = self._nets()
        out = CleaningReport(time_zone=self.time_zone)
        zero, same = "zero amount", "identical to an earlier row"
        rows = self._con.execute("SELECT batch, report FROM rfmml_batches ORDER BY batch")
        for batch, text in rows.fetchall():
            if text is None:
                out.notes.append(f"batch {batch} was applied by an older rfmml: no counts kept")
                continue
            report = json.loads(text)
            out.rows_in += report["rows_in"]
            for reason, n in report["removed"].items():
                out.remove(reason, n)
            for reason, n in report["merged"].items():
                out.merge(reason, n)
            if not nets and zero in report["flagged"]:
                out.flag(zero, report["flagged"][zero])
            out.notes += [n for n in report["notes"] if n not in out.notes]
        if not self._has_rows():
            return out
        out.rows_out = self.n_transactions
        if nets:
            netted, unmatched, wiped, zeros, copies = (
                int(v or 0)
                for v in self._con.execute(
                    "SELECT sum(returns_netted), sum(returns_unmatched), sum(purchases_wiped), "
                    "sum(zero_amount), sum(identical) FROM rfmml_net"
                ).fetchall()[0]
            )
            if netted + unmatched:
                out.remove("return without an earlier purchase by the same customer", unmatched)
            out.merge("return netted against an earlier purchase", netted)
            if wiped:
                out.notes.append(
                    f"{wiped} purchases had returns larger than their value; "
                    "their amount was set to 0 (the excess return value is not carried further)"
                )
            (out.remove if cleaning["drop_zero_amounts"] else out.flag)(zero, zeros)
            (out.remove if cleaning["drop_duplicates"] else out.flag)(same, copies)
        elif not cleaning["drop_duplicates"]:
            columns = ", ".join(_q(c) for c, _ in self._meta["columns"] if c != "order_id")
            distinct = self._con.execute(
                f"SELECT count(*) FROM (SELECT DISTINCT {columns} FROM rfmml_transactions)"
            ).fetchall()[0][0]
            out.flag(same, out.rows_out - int(distinct))
        return out

    def _has_rows(self) -> bool:
        return self._meta.get("columns") is not None

    # ------------------------------------------------------------------- update
    def _check_writable(self) -> None:
        if self.read_only:
            raise StateError(
                f"state {str(self.path)!r} is open read-only; open it with "
                "CustomerState.open(path) to update it"
            )

    def update(
        self,
        transactions: Any,
        *,
        dayfirst: bool | None = None,
        encoding: str | None = None,
        separator: str | None = None,
        decimal: str | None = None,
        status: str | None = None,
        exclude_status: Any = None,
        currency: str | None = None,
        currency_column: str | None = None,
        normalize_ids: bool | None = None,
        since: Any = None,
        until: Any = None,
        customer: str | None = None,
        timestamp: str | None = None,
        amount: str | None = None,
        group: str | None = None,
        order: str | None = None,
        timestamp_format: str | None = None,
    ) -> StateUpdate:
        """Absorb a batch of transactions.

        The batch is read and cleaned by :func:`rfmml.data.read_transactions`
        with the state's mapping and cleaning options. All changes happen in one
        database transaction: on any error the state is left as it was. A batch
        that cleaning leaves empty (e.g. a day of returns only, with
        ``negative_amounts="drop"``) changes no customer but is recorded, so its
        counts reach :meth:`cleaning_report`; its fingerprint is that of the rows
        or file as given. Only the first batch must leave rows (their types
        define the state's columns).

        The state remembers how its batches are read: the read options
        (``dayfirst``, ``encoding``, ``separator``, ``decimal``, ``status``,
        ``exclude_status``) and the column
        mapping and ``timestamp_format`` are stored with every applied batch, and
        an option left out (None) takes the stored value, so a daily file of the
        same shape needs them once. **An option given explicitly wins**: the
        batch is read with it, it replaces the stored value for later updates,
        and :attr:`StateUpdate.notes` says which options changed (old and new
        value). A state written before rfmml stored read options reads its first
        batch with the options given (as before) and stores them.

        Parameters
        ----------
        transactions : str, pathlib.Path, pandas.DataFrame or polars.DataFrame
            A CSV or Parquet file or a frame, in the columns of the state's mapping.
            Rows may be dated before earlier batches.
        dayfirst, encoding, separator, decimal : optional
            How this batch's file is written, as in
            :func:`rfmml.data.read_transactions` (a day of ``05/03/2024`` dates
            alone cannot tell day-first from month-first: say which). None: the
            stored value (none stored: the reader's default or inference).
        status, exclude_status : optional
            An order state column and the states whose rows are not purchases
            (``"refunded,voided"`` or a list), as in
            :func:`rfmml.data.read_transactions`: those rows are removed and
            counted in the batch's report. Stored like the read options, so
            later batches leave the same states out. None: the stored value.
        currency, currency_column, normalize_ids : optional
            As in :func:`rfmml.data.read_transactions`; stored like the read
            options. None: the stored value. Give ``normalize_ids`` from the
            first batch on: ids stored before it are not lower-cased.
        since, until : date-like, optional
            Rows of this batch dated before ``since`` or after ``until`` are
            removed and counted (this batch only: not stored).
        customer, timestamp, amount, group, order : str, optional
            The batch's column names, when they differ from the stored mapping
            (None: the stored one). Once the state holds rows, a state without
            amounts or orders cannot gain them and the group column cannot change.
        timestamp_format : str, optional
            strftime format of the batch's timestamps (None: the stored one).

        Returns
        -------
        StateUpdate
            ``applied=False`` (and nothing changed, options included) when the
            same batch was applied before.

        Raises
        ------
        DataError
            Bad rows (as :func:`~rfmml.data.read_transactions`), a batch whose
            column types or time zone differ from the state's, or a column
            mapping the state's stored columns cannot take.
        StateError
            If the state is open read-only.
        """
        self._check_writable()
        reading, mapping, cleaning, changes = self._options(
            {"dayfirst": dayfirst, "encoding": encoding, "separator": separator,
             "decimal": decimal, "status": status, "exclude_status": exclude_status,
             "currency": currency, "currency_column": currency_column,
             "normalize_ids": normalize_ids},
            {"customer": customer, "timestamp": timestamp, "amount": amount, "group": group,
             "order": order},
            timestamp_format,
        )  # fmt: skip
        if self._nets():
            # returns are netted by the state, against every stored purchase: read the
            # batch with its negative rows, zero amounts and identical rows left in
            options = dict(cleaning, drop_zero_amounts=False, drop_duplicates=False)
            options["negative_amounts"] = "drop"
            tx, report = _read_transactions(transactions, **mapping, **options, **reading,
                                            since=since, until=until,
                                            keep_negative=True)  # fmt: skip
        else:
            # a batch that cleaning empties (a day of returns only) is recorded, not refused,
            # once the state holds rows (the first batch must give the columns' types)
            tx, report = _read_transactions(
                transactions, **mapping, **cleaning, **reading, since=since, until=until,
                allow_empty=self._has_rows(),
            )  # fmt: skip
        stored = {"read_options": reading, "mapping": mapping, "cleaning": cleaning}
        note = (
            ["options changed from those stored in the state: " + ", ".join(changes)
             + "; the batch is read with the new values, which the state now keeps"]
            if changes else []
        )  # fmt: skip
        if not isinstance(tx, pd.DataFrame):
            tx = tx.to_pandas()
        if tx.empty:
            result = self._record_empty(transactions, report, stored)
        else:
            result = self._update(tx, report, stored)
        result.read_options = dict(reading)
        if result.applied:
            result.notes = note
        elif changes:
            result.notes = [
                "options differ from those stored in the state ("
                + ", ".join(changes)
                + "); the batch was applied before, so the state keeps its stored values"
            ]
        return result

    def _options(
        self, reads: dict[str, Any], columns: dict[str, str | None], timestamp_format: str | None
    ) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any], list[str]]:
        """Read options, mapping and cleaning of a batch: the stored ones, then those given.

        Also returns the changes from the stored values, as ``"name old -> new"``.
        """
        stored = self._meta.get("read_options")
        reading: dict[str, Any] = dict.fromkeys(_READ_OPTIONS) | (stored or {})
        changes = []
        for name, value in reads.items():
            if value is None:
                continue
            if stored is not None and reading[name] != value:
                changes.append(f"{name} {_shown(reading[name])} -> {_shown(value)}")
            reading[name] = value
        mapping = dict(self._meta["mapping"])
        for name, value in columns.items():
            if value is None or value == mapping[name]:
                continue
            if self._has_rows() and (mapping[name] is None or name == "group"):
                had = "no" if mapping[name] is None else f"the column {mapping[name]!r} as"
                raise DataError(
                    f"{name}={value!r}: the state {str(self.path)!r} was created with {had} "
                    f"{name} column and holds rows; a later batch cannot change that (pass "
                    f"{name}={mapping[name]!r} or create a new state)"
                )
            changes.append(f"{name} column {_shown(mapping[name])} -> {value!r}")
            mapping[name] = value
        cleaning = dict(self._meta["cleaning"])
        if timestamp_format is not None and timestamp_format != cleaning["timestamp_format"]:
            old = cleaning["timestamp_format"]
            changes.append(f"timestamp_format {_shown(old)} -> {timestamp_format!r}")
            cleaning["timestamp_format"] = timestamp_format
        return reading, mapping, cleaning, changes

    def _store_options(self, stored: dict[str, dict[str, Any]]) -> None:
        """Keep the batch's read options, mapping and cleaning (in the open transaction)."""
        for key, value in stored.items():
            if self._meta.get(key) != value:
                self._set_meta(key, value)

    def _update(
        self, tx: pd.DataFrame, report: CleaningReport, stored: dict[str, dict[str, Any]]
    ) -> StateUpdate:
        """Apply a batch that cleaning left rows in (after the duplicate and zone checks)."""
        mapping = stored["mapping"]
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
            self._store_options(stored)
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

    def _record_empty(
        self, source: Any, report: CleaningReport, stored: dict[str, dict[str, Any]]
    ) -> StateUpdate:
        """Record a batch that cleaning emptied: its report counts, no row changes.

        Its fingerprint is that of the rows as read (every cleaned batch of returns only
        would otherwise share the fingerprint of an empty frame).
        """
        fp = _raw_fingerprint(source)
        con = self._con
        if con.execute("SELECT 1 FROM rfmml_batches WHERE fingerprint = ?", [fp]).fetchall():
            return StateUpdate(fp, applied=False, rows_in=report.rows_in, report=report)
        con.begin()
        try:
            self._store_options(stored)
            con.execute(
                "INSERT INTO rfmml_batches (batch, fingerprint, rows_in, rows_added, "
                "customers_touched, late_rows, applied_at, rfmml_version, report) "
                "SELECT coalesce(max(batch), 0) + 1, ?, ?, 0, 0, 0, ?, ?, ? FROM rfmml_batches",
                [fp, report.rows_in, pd.Timestamp.now(tz="UTC").tz_localize(None),
                 _rfmml_version(), json.dumps(report.to_dict())],
            )  # fmt: skip
            con.commit()
        except BaseException:
            con.rollback()
            self._meta = self._read_meta()
            raise
        return StateUpdate(fp, True, report.rows_in, 0, 0, 0, report)

    def _apply(
        self, tx: pd.DataFrame, report: CleaningReport, fp: str, zone: str | None
    ) -> StateUpdate:
        con = self._con
        batch = int(
            con.execute("SELECT coalesce(max(batch), 0) + 1 FROM rfmml_batches").fetchall()[0][0]
        )
        previous_end = self._last()
        con.execute(
            "INSERT INTO rfmml_batches (batch, fingerprint, rows_in, applied_at, rfmml_version) "
            "VALUES (?, ?, ?, ?, ?)",
            [batch, fp, report.rows_in, pd.Timestamp.now(tz="UTC").tz_localize(None),
             _rfmml_version()],
        )  # fmt: skip
        report = CleaningReport(**json.loads(json.dumps(report.to_dict())))  # the stored copy
        con.register("_rfmml_batch", tx)
        try:
            columns = self._check_columns(tx)
            cols = ", ".join(_q(c) for c in columns)
            first = not self._has_rows()
            if first:
                for table in ["rfmml_transactions"] + (["rfmml_raw"] if self._nets() else []):
                    con.execute(
                        f"CREATE TABLE {table} AS SELECT {cols}, 0::INTEGER AS _batch "
                        "FROM _rfmml_batch LIMIT 0"
                    )
                self._set_meta("columns", [[c, t] for c, t in self._types("_rfmml_batch")])
                self._set_meta("time_zone", zone)
                self._create_aggregates()
            stored = "rfmml_raw" if self._nets() else "rfmml_transactions"
            before = self.n_transactions
            if self._meta["cleaning"]["drop_duplicates"] and not self._nets():
                new_rows = (
                    f"SELECT {cols} FROM _rfmml_batch EXCEPT SELECT {cols} FROM "
                    "rfmml_transactions WHERE customer_id IN (SELECT customer_id FROM "
                    "_rfmml_batch)"
                )
            else:
                new_rows = f"SELECT {cols} FROM _rfmml_batch"
            inserted = con.execute(
                f"INSERT INTO {stored} ({cols}, _batch) SELECT {cols}, {batch} FROM ({new_rows})"
            ).fetchall()[0][0]
            if self._meta["cleaning"]["drop_duplicates"] and not self._nets():
                report.remove("identical to an earlier row", len(tx) - int(inserted))
            if self._with_order():
                merged = self._merge_split_orders(stored, columns, batch)
                report.merge("order lines summed into one row per order", merged)
            con.execute(
                "CREATE OR REPLACE TEMP TABLE _rfmml_touched AS "
                "SELECT DISTINCT customer_id FROM _rfmml_batch"
            )
            touched = int(con.execute("SELECT count(*) FROM _rfmml_touched").fetchall()[0][0])
            scope = None if first else "_rfmml_touched"  # first batch: every row
            if self._nets():
                self._net(scope, columns)
                added = self.n_transactions - before
            else:
                added = int(
                    con.execute(
                        "SELECT count(*) FROM rfmml_transactions WHERE _batch = ?", [batch]
                    ).fetchall()[0][0]
                )
            for by_group in [False] + ([True] if self._group() is not None else []):
                table = "rfmml_customer_groups" if by_group else "rfmml_customers"
                con.execute(
                    f"DELETE FROM {table} WHERE customer_id IN "
                    "(SELECT customer_id FROM _rfmml_touched)"
                )
                con.execute(f"INSERT INTO {table} {self._aggregates_sql(scope, by_group)}")
            low, high = tx["timestamp"].min(), tx["timestamp"].max()
            late = 0 if previous_end is None else int((tx["timestamp"] < previous_end).sum())
            con.execute(
                "UPDATE rfmml_batches SET rows_added = ?, customers_touched = ?, late_rows = ?, "
                "first_timestamp = ?, last_timestamp = ?, report = ? WHERE batch = ?",
                [added, touched, late, low, high, json.dumps(report.to_dict()), batch],
            )
            con.execute("DROP TABLE _rfmml_touched")
        finally:
            con.unregister("_rfmml_batch")
        return StateUpdate(fp, True, report.rows_in, added, touched, late, report)

    def _net(self, scope: str | None, columns: list[str]) -> None:
        """Net the returns of the customers in ``scope`` again, from their stored rows.

        The same steps as :func:`rfmml.data.read_transactions` with
        ``negative_amounts="net"`` on the whole log: each negative row goes to the
        customer's latest purchase at or before it (of several at that time, the
        largest), whose amount becomes ``max(round(amount + returns, 9), 0)``;
        returns without an earlier purchase are removed; then zero amounts and
        identical rows are dropped or flagged. The clean rows replace those of the
        customers in ``rfmml_transactions``; the counts go to ``rfmml_net``.
        """
        con = self._con
        where = f"WHERE customer_id IN (SELECT customer_id FROM {scope})" if scope else ""
        group = self._group()
        keys = ["customer_id"] + ([group] if group is not None else [])
        match = " AND ".join(f"r.{_q(k)} = t.{_q(k)}" for k in keys)
        key_cols = ", ".join(_q(k) for k in keys)
        same = ", ".join(_q(c) for c in columns if c not in ("order_id", "amount"))
        last = "order_id IS NULL" if self._with_order() else "1"  # order rows are kept first
        con.execute(f"""
            CREATE OR REPLACE TEMP TABLE _rfmml_raw AS
            SELECT rowid AS _rid, * FROM rfmml_raw {where}
        """)
        con.execute(f"""
            CREATE OR REPLACE TEMP TABLE _rfmml_hit AS
            WITH target AS (
                SELECT {key_cols}, "timestamp", arg_max(_rid, amount) AS _rid
                FROM _rfmml_raw WHERE amount >= 0 GROUP BY ALL
            )
            SELECT r.customer_id, r.amount, t._rid
            FROM (SELECT * FROM _rfmml_raw WHERE amount < 0) r
            ASOF LEFT JOIN target t ON {match} AND r."timestamp" >= t."timestamp"
        """)
        con.execute(f"""
            CREATE OR REPLACE TEMP TABLE _rfmml_clean AS
            WITH credit AS (
                SELECT _rid, sum(amount) AS credit FROM _rfmml_hit
                WHERE _rid IS NOT NULL GROUP BY _rid
            ),
            netted AS (
                SELECT p.* EXCLUDE (amount), CASE WHEN c._rid IS NULL THEN p.amount
                    ELSE round(p.amount + c.credit, {_ORDER_DECIMALS}) END AS _net
                FROM (SELECT * FROM _rfmml_raw WHERE amount >= 0) p
                LEFT JOIN credit c ON p._rid = c._rid
            )
            SELECT *, CASE WHEN _net > 0 THEN _net ELSE 0.0 END AS amount, _net < 0 AS _wiped,
                row_number() OVER (PARTITION BY {same}, CASE WHEN _net > 0 THEN _net
                    ELSE 0.0 END ORDER BY {last}) AS _copy
            FROM netted
        """)
        cleaning = self._meta["cleaning"]
        kept = []
        if cleaning["drop_zero_amounts"]:
            kept.append("amount <> 0")
        if cleaning["drop_duplicates"]:
            kept.append("_copy = 1")
        where_kept = ("WHERE " + " AND ".join(kept)) if kept else ""
        counted_copy = "_copy > 1 AND amount <> 0" if cleaning["drop_zero_amounts"] else "_copy > 1"
        if scope is not None:
            for table in ("rfmml_transactions", "rfmml_net"):
                con.execute(
                    f"DELETE FROM {table} WHERE customer_id IN (SELECT customer_id FROM {scope})"
                )
        cols = ", ".join(_q(c) for c in columns)
        con.execute(
            f"INSERT INTO rfmml_transactions ({cols}, _batch) SELECT {cols}, _batch "
            f"FROM _rfmml_clean {where_kept}"
        )
        con.execute(f"""
            INSERT INTO rfmml_net
            SELECT customer_id, sum(netted)::BIGINT, sum(unmatched)::BIGINT, sum(wiped)::BIGINT,
                sum(zero)::BIGINT, sum(copies)::BIGINT
            FROM (
                SELECT customer_id, count(_rid) AS netted, count(*) - count(_rid) AS unmatched,
                    0 AS wiped, 0 AS zero, 0 AS copies
                FROM _rfmml_hit GROUP BY customer_id
                UNION ALL
                SELECT customer_id, 0, 0, count(*) FILTER (_wiped),
                    count(*) FILTER (amount = 0), count(*) FILTER ({counted_copy})
                FROM _rfmml_clean GROUP BY customer_id
            ) GROUP BY customer_id
        """)
        for table in ("_rfmml_raw", "_rfmml_hit", "_rfmml_clean"):
            con.execute(f"DROP TABLE {table}")

    def _merge_split_orders(self, table: str, columns: list[str], batch: int) -> int:
        """One row per order across batches, as :func:`read_transactions` gives on the whole log.

        The loader sums an order's lines into one row (earliest line time, total
        amount) within a batch; when lines of one order arrive in several batches,
        the rows stored for it in ``table`` are merged the same way here. Returns
        the number of rows merged away.
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
            f"{batch}::INTEGER AS _batch FROM {table} "
            f"WHERE ({key_sql}) IN (SELECT DISTINCT {key_sql} FROM {table} "
            f"WHERE _batch = {batch} AND order_id IS NOT NULL) "
            f"GROUP BY {key_sql} HAVING count(*) > 1"
        )
        match = " AND ".join(f"{table}.{_q(k)} = s.{_q(k)}" for k in keys)
        deleted = con.execute(f"DELETE FROM {table} USING _rfmml_split s WHERE {match}")
        n_deleted = int(deleted.fetchall()[0][0])
        cols = ", ".join(_q(c) for c in columns)
        inserted = con.execute(
            f"INSERT INTO {table} ({cols}, _batch) SELECT {cols}, _batch FROM _rfmml_split"
        )
        n_inserted = int(inserted.fetchall()[0][0])
        con.execute("DROP TABLE _rfmml_split")
        return n_deleted - n_inserted

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

    def _group(self) -> str | None:
        group: str | None = self._meta["mapping"]["group"]
        return group

    def _nets(self) -> bool:
        """Whether returns are netted by the state (``negative_amounts="net"`` with amounts)."""
        return self._meta["cleaning"]["negative_amounts"] == "net" and self._with_amount()

    def _create_aggregates(self) -> None:
        """The empty aggregate tables, typed by the first batch's columns."""
        tables = {"rfmml_customers": False}
        if self._group() is not None:
            tables["rfmml_customer_groups"] = True
        for table, by_group in tables.items():
            self._con.execute(
                f"CREATE TABLE {table} AS SELECT * FROM ({self._aggregates_sql(None, by_group)}) "
                "LIMIT 0"
            )
        if self._nets():
            id_type = dict(self._meta["columns"])["customer_id"]
            self._con.execute(
                f"CREATE TABLE rfmml_net (customer_id {id_type}, returns_netted BIGINT, "
                "returns_unmatched BIGINT, purchases_wiped BIGINT, zero_amount BIGINT, "
                "identical BIGINT)"
            )

    def _aggregates_sql(self, touched: str | None, by_group: bool = False) -> str:
        """Aggregates of the stored rows (of the customers in ``touched``).

        Per customer, or per customer and group with ``by_group``.
        """
        where = f"WHERE customer_id IN (SELECT customer_id FROM {touched})" if touched else ""
        group = self._group()
        k = "customer_id" + (f", {_q(group)}" if by_group and group is not None else "")
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
                else f"(SELECT {k}, {trunc} AS p{suma} FROM days GROUP BY ALL)"
            )
            first_a = f", arg_min(a, p) AS first_amount_{freq}" if amount else ""
            per_freq.append(
                f"{freq.lower()} AS (SELECT {k}, min(p) AS first_{freq}, "
                f"max(p) AS last_{freq}, count(*) AS n_{freq}{first_a} FROM {source} GROUP BY ALL)"
            )
        total = ', sum("amount") AS total_spend' if amount else ""
        return f"""
            WITH rows AS (SELECT * FROM rfmml_transactions {where}),
            days AS (SELECT {k}, CAST("timestamp" AS DATE) AS p{a} FROM rows GROUP BY ALL),
            per_row AS (
                SELECT {k}, min("timestamp") AS first_purchase,
                    max("timestamp") AS last_purchase, count(*) AS n_rows,
                    {orders} AS n_orders{total}
                FROM rows GROUP BY ALL
            ),
            {", ".join(per_freq)}
            SELECT * FROM per_row JOIN d USING ({k}) JOIN w USING ({k}) JOIN m USING ({k})
        """

    # ----------------------------------------------------------------- features
    def _require_rows(self) -> pd.Timestamp:
        return self.last_timestamp

    def _aggregates_table(self, group: str | None) -> str | None:
        """The table of aggregates for ``group`` (None: the state has none, read the rows)."""
        if group is not None and group != self._group():
            raise DataError(
                f"group={group!r}: the state's transactions have no such column (its group "
                f"column is {self._group()!r})"
            )
        if group is None:
            return "rfmml_customers"
        return "rfmml_customer_groups" if self._table_exists("rfmml_customer_groups") else None

    def _query(
        self, observation_end: Any, group: str | None, engine: str | None
    ) -> tuple[pd.Timestamp, pd.Timestamp, list[str], str | None, str]:
        """Last stored time, end, keys, aggregates table (None: the rows) and keys as SQL.

        What :meth:`btyd_summary` and :meth:`rfm_table` both start from.
        """
        _check_engine(engine)
        last = self._require_rows()
        end = last if observation_end is None else as_timestamp(observation_end, "observation_end")
        keys = ["customer_id"] if group is None else ["customer_id", group]
        return last, end, keys, self._aggregates_table(group), ", ".join(_q(k) for k in keys)

    def _rows_relation(self) -> duckdb.DuckDBPyRelation:
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
        last, end, keys, table, key_sql = self._query(observation_end, group, engine)
        if table is None or last >= pd.Timestamp(next_period_start(end, freq)):
            out = btyd_summary(self._rows_relation(), end, freq, group)
        else:
            end_start = f"DATE '{period_start(end, freq).date()}'"
            monetary = (
                f", CASE WHEN n_{freq} > 1 THEN (total_spend - first_amount_{freq}) / "
                f"(n_{freq} - 1) ELSE 0.0 END::DOUBLE AS monetary_value"
                if self._with_amount()
                else ""
            )
            out = self._con.sql(f"""
                SELECT {key_sql}, (n_{freq} - 1)::DOUBLE AS frequency,
                    {_sql_periods(f"first_{freq}", f"last_{freq}", freq)}::DOUBLE AS recency,
                    {_sql_periods(f"first_{freq}", end_start, freq)}::DOUBLE AS "T"{monetary}
                FROM {table} ORDER BY {key_sql}
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
        last, end, keys, table, key_sql = self._query(observation_end, group, engine)
        if table is None or last >= end_cutoff(end):
            relation = rfm_table(self._rows_relation(), end, group, min_tenure_days=min_tenure_days)
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
                SELECT {key_sql},
                    ({end_day} - {day.format("last_purchase")})::DOUBLE AS recency_days,
                    n_orders::BIGINT AS n_orders, {spend}
                    first_purchase, last_purchase, {tenure} AS tenure_days,
                    (n_orders / {exposure})::DOUBLE AS orders_per_year{per_year}
                FROM {table} ORDER BY {key_sql}
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


def _shown(value: Any) -> str:
    """An option's value in a message (None: not set)."""
    return "(not set)" if value is None else repr(value)


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
