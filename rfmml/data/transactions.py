"""Read, validate and clean a transaction log into rfmml's canonical columns.

The canonical frame has one row per purchase event:

``customer_id``
    The customer, as given (strings from CSV files are kept as strings, so
    leading zeros survive).
``timestamp``
    ``datetime64[us]``, time-zone naive, in the log's own wall-clock time.
``amount``
    ``float64`` value of the event (absent when no amount column is mapped).
``order_id`` (optional)
    The order or invoice the row belongs to.
a group column (optional)
    A sales channel, country or sales rep, under the caller's own name.

This module holds the schema, :func:`read_transactions`,
:func:`scan_transactions` and the order of the cleaning steps; the steps
themselves live in private modules by stage: reading files and frames in
:mod:`rfmml.data._files`, parsing timestamps, amounts and ids in
:mod:`rfmml.data._parse`, and the checks that remove or flag rows in
:mod:`rfmml.data._cleaning` (shared with the DuckDB scan,
:mod:`rfmml.data._scan`). Their public names are re-exported here.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, NamedTuple

import pandas as pd

from rfmml._compiled import WARM_MIN_ROWS, in_background, warm_numba
from rfmml.data._cleaning import (
    _DECIMALS,
    OBSERVATION_END_MARGIN_DAYS,
    _between,
    _currencies,
    _cut_end,
    _flag_isolated,
    _net_returns,
    _order_fields,
    _orders,
    _status_values,
    _without_statuses,
    _without_totals_line,
    date_bounds,
    end_cutoff,
)
from rfmml.data._cleaning import ISOLATED_REASON as ISOLATED_REASON
from rfmml.data._cleaning import ISOLATION_GAP_DAYS as ISOLATION_GAP_DAYS
from rfmml.data._cleaning import TOTALS_REASON as TOTALS_REASON
from rfmml.data._cleaning import check_currencies as check_currencies
from rfmml.data._cleaning import copied_orders_note as copied_orders_note
from rfmml.data._cleaning import currency_reason as currency_reason
from rfmml.data._cleaning import future_rows_note as future_rows_note
from rfmml.data._cleaning import isolated_ends as isolated_ends
from rfmml.data._cleaning import isolated_rows_note as isolated_rows_note
from rfmml.data._cleaning import isolation_limit as isolation_limit
from rfmml.data._cleaning import since_reason as since_reason
from rfmml.data._cleaning import until_reason as until_reason
from rfmml.data._files import _check_columns, _load, with_currency_column
from rfmml.data._json import is_json_path
from rfmml.data._parse import AMOUNT_LIMIT as AMOUNT_LIMIT
from rfmml.data._parse import EPOCH_SECONDS as EPOCH_SECONDS
from rfmml.data._parse import ID_PADDING as ID_PADDING
from rfmml.data._parse import (
    _id_case,
    _parse_amounts,
    _plain_ids,
    _trimmed_ids,
    _whole_number_text_ids,
    parse_timestamps,
)
from rfmml.data._parse import amount_limit_error as amount_limit_error
from rfmml.data._parse import check_amount_limit as check_amount_limit
from rfmml.data._parse import id_case_note as id_case_note
from rfmml.data._scan import ScannedLog, Unsupported, scan_parquet
from rfmml.data.report import CleaningReport
from rfmml.errors import DataError

__all__ = [
    "TransactionSchema",
    "Transactions",
    "OBSERVATION_END_MARGIN_DAYS",
    "end_cutoff",
    "parse_timestamps",
    "read_transactions",
    "scan_transactions",
]

logger = logging.getLogger(__name__)

NegativePolicy = Literal["drop", "net", "error"]
Engine = Literal["auto", "duckdb", "pandas"]


@dataclass(frozen=True)
class TransactionSchema:
    """Where the canonical columns come from in the caller's data.

    Parameters
    ----------
    customer : str
        Column holding the customer id.
    timestamp : str
        Column holding the purchase date or time (datetime, or parseable strings).
    amount : str or None
        Column holding the purchase value; ``None`` for logs without values
        (monetary features are then not available), or when the value is
        computed from ``quantity`` and ``price``.
    group : str or None
        Optional column to build features per group (channel, country, ...).
        It keeps its name in the canonical frame.
    order : str or None
        Optional order or invoice id; kept as ``order_id``.
    quantity, price : str or None
        Line-item logs: the amount of a line is ``quantity * price``.
    status : str or None
        Optional order state column (``Financial Status``, ``Status``): rows
        whose state is excluded are removed (see :func:`read_transactions`).
        Not part of the canonical frame.
    currency : str or None
        Optional column of the amounts' currency codes (``Currency``): a log
        in several currencies is refused until one is picked (see
        :func:`read_transactions`). Not part of the canonical frame.
    """

    customer: str = "customer_id"
    timestamp: str = "timestamp"
    amount: str | None = "amount"
    group: str | None = None
    order: str | None = None
    quantity: str | None = None
    price: str | None = None
    status: str | None = None
    currency: str | None = None

    @property
    def has_amount(self) -> bool:
        """Whether the canonical frame has an ``amount`` column."""
        return self.amount is not None or self.price is not None

    @property
    def source_columns(self) -> list[str]:
        """Columns required in the source, in canonical order."""
        cols = [self.customer, self.timestamp, self.amount, self.group, self.order,
                self.quantity, self.price, self.status, self.currency]  # fmt: skip
        return [c for c in cols if c is not None]

    @property
    def renames(self) -> dict[str, str]:
        """Mapping of source column name to canonical name."""
        out = {self.customer: "customer_id", self.timestamp: "timestamp"}
        if self.amount is not None:
            out[self.amount] = "amount"
        if self.order is not None:
            out[self.order] = "order_id"
        if self.quantity is not None:
            out[self.quantity] = "_quantity"
        if self.price is not None:
            out[self.price] = "_price"
        if self.status is not None:
            out[self.status] = "_status"
        if self.currency is not None:
            out[self.currency] = "_currency"
        return out

    @property
    def canonical_columns(self) -> list[str]:
        """Columns of the canonical frame, in order."""
        cols = ["customer_id", "timestamp"]
        if self.has_amount:
            cols.append("amount")
        if self.group is not None:
            cols.append(self.group)
        if self.order is not None:
            cols.append("order_id")
        return cols


class Transactions(NamedTuple):
    """What :func:`read_transactions` returns: the frame and its cleaning report."""

    transactions: Any
    report: CleaningReport


def read_transactions(
    source: Any,
    customer: str = "customer_id",
    timestamp: str = "timestamp",
    amount: str | None = "amount",
    group: str | None = None,
    order: str | None = None,
    *,
    quantity: str | None = None,
    price: str | None = None,
    cancellation_prefix: str | None = None,
    observation_end: Any = None,
    allow_end_beyond_data: bool = False,
    negative_amounts: NegativePolicy = "drop",
    drop_zero_amounts: bool = False,
    drop_duplicates: bool = False,
    timestamp_format: str | None = None,
    dayfirst: bool | None = None,
    encoding: str | None = None,
    separator: str | None = None,
    decimal: str | None = None,
    engine: Engine = "auto",
    status: str | None = None,
    exclude_status: Sequence[str] | str | None = None,
    since: Any = None,
    until: Any = None,
    normalize_ids: bool = False,
    currency: str | None = None,
    currency_column: str | None = None,
) -> Transactions:
    """Load a transaction log into the canonical frame, with a cleaning report.

    Parameters
    ----------
    source : str, pathlib.Path, pandas.DataFrame or polars.DataFrame
        A CSV (``.csv``, ``.tsv``, ``.txt``, ``.gz``) or Parquet path, or a data frame.
    customer, timestamp, amount, group, order : str or None
        The caller's column names for the customer id, purchase time, purchase
        value, optional grouping column and optional order id. ``amount=None``
        loads a log without values. Text amounts may carry one currency
        symbol and thousands separators (``$3,080.00``, ``3 080,00 €`` with
        ``decimal=","``; see :mod:`rfmml.data._amounts`), noted in the report.
        With ``order``, the rows of one order (the lines of an invoice) are
        summed into one row: earliest time, total amount.
    quantity, price : str, optional
        Line-item logs (one row per product line): the amount of a line is
        ``quantity * price``, summed per order when ``order`` is mapped. Map
        both, and leave ``amount`` at its default. Lines with a negative
        quantity are returns.
    cancellation_prefix : str, optional
        Order ids starting with it (``"C"`` in many shop exports) are
        cancellations: their amounts count as negative, whatever their sign,
        and follow ``negative_amounts``. Needs ``order``.
    status, exclude_status : str and sequence of str, optional
        An order state column (a shop export's ``Financial Status`` or
        ``Status``) and the states whose rows are not purchases, e.g.
        ``["refunded", "voided", "cancelled"]`` (or one comma-separated
        string): those rows are removed and counted, first of all steps.
        States are compared without case and surrounding spaces; with
        ``order``, every line of an order with such a state on any line goes
        (exports often write the state on the first line only). A state that
        matches no row is named in a note. Give both or neither.
    currency, currency_column : str, optional
        The currency of the amounts. A column named ``currency`` (any case) is
        recognised, or name it with ``currency_column``: a log whose amounts
        are in several currencies is refused (the error names them, with
        their row counts) unless ``currency`` picks one (``"EUR"``; compared
        without case and spaces); the other rows, blank ones included, are
        removed and counted, first of all steps with ``status``. A log in one
        currency gets a note naming it.
    normalize_ids : bool, default False
        Text customer ids that differ only in case (``Ann@x.com`` and
        ``ann@x.com``) are other customers unless this is True: then every
        text id is lower-cased (ids are always stripped of surrounding
        spaces), and a note counts the rows changed and the ids merged.
        Without it, a note counts the ids that would merge, with examples.
    since, until : date-like, optional
        Rows dated before ``since`` or after ``until`` (a date without a time
        of day includes that whole day) are removed and counted, e.g. the
        mistyped years the report flags: rows a gap of over a year parts from
        the rest of the log, at most 0.1 % of its rows (at least 5) at either
        end (see :func:`isolated_ends`), are kept but flagged, with a note
        and a warning naming the first of them.
    observation_end : date-like, optional
        Rows after it are removed (and counted). A date without a time of day
        includes that whole day. Without it, rows dated after tomorrow (in
        the future) are removed, counted and warned about, so that one
        mistyped year does not move the end of the log.
    allow_end_beyond_data : bool, default False
        An ``observation_end`` more than :data:`OBSERVATION_END_MARGIN_DAYS`
        days after the last transaction is refused (features would count the
        days without data as silence) unless this is True.
    negative_amounts : {"drop", "net", "error"}, default "drop"
        Returns and cancellations. ``"drop"`` removes negative rows; ``"net"``
        subtracts each from the same customer's latest purchase at or before it
        (of several at that time, the largest; the purchase keeps its date, its
        amount is reduced, rounded to 9 decimals, but not below 0; returns with
        no earlier purchase are removed); ``"error"`` raises.
    drop_zero_amounts : bool, default False
        Zero-value rows are purchase events in the BTYD sense (lifetimes and the
        published CDNOW analyses count them), so they are kept and flagged by
        default.
    drop_duplicates : bool, default False
        Identical rows (same customer, time, amount and group; with ``order``,
        two orders that agree on all of these) are kept and flagged by
        default, for the same reason.
    timestamp_format : str, optional
        ``strftime`` format of string dates, e.g. ``"%Y%m%d"``; ``"%s"`` reads
        Unix time (seconds since 1970-01-01 UTC, as UTC wall-clock time).
    dayfirst : bool, optional
        Order of dates written ``01/03/2010``. Inferred from the whole column
        when omitted (a first field above 12 proves day-first); a column of
        ambiguous dates only is refused until this is set.
    encoding : str, optional
        Text encoding of a CSV file (default UTF-8), e.g. ``"latin-1"``.
    separator : str, optional
        Field separator of a CSV file; by default the first of ``,`` ``;``
        tab ``|`` that yields the mapped columns.
    decimal : str, optional
        Decimal mark of the numbers in a CSV file, ``"."`` by default; ``","``
        reads ``2,50`` as 2.5 (the comma is then never taken as the separator).
    engine : {"auto", "duckdb", "pandas"}, default "auto"
        Who reads and cleans a file. ``"auto"`` cleans Parquet files in
        DuckDB (same frame, same report, a fraction of the time and memory)
        and CSV files with pandas; ``"duckdb"`` also tries DuckDB first and
        ``"pandas"`` always uses the pandas path. Steps DuckDB does not take
        (see :mod:`rfmml.data._scan`: text or time-zone timestamps, text
        amounts, float order ids, ``negative_amounts="net"``, CSV files) fall
        back to pandas, with a note in the report. Frames are always
        cleaned by pandas.

    Returns
    -------
    Transactions
        A named tuple ``(transactions, report)``: the canonical frame (pandas,
        or polars when a polars frame came in) and the :class:`CleaningReport`.
        A text file's last row that sums the others (a report's totals line:
        no customer id or timestamp, or an id such as ``Total``, and an amount
        equal to the sum of the rows above) is removed, counted. Float
        customer and order ids that are whole numbers come back as
        integers (``12346.0`` -> ``12346``), other float ids as text. A CSV's
        customer ids are text; when every one is a whole number written with
        a fraction (``12346.0``, ``12346,0``: an export of integer ids with
        gaps), the fraction is dropped (``12346``) and a note says so, so that
        exports with and without gaps join.

    Raises
    ------
    DataError
        Missing columns (the message lists those available), an empty,
        unreadable or wrongly encoded file, empty input, unparseable dates
        or amounts (counted, first values quoted), ambiguous or mixed
        day/month order, an observation end far past the data, or negative
        amounts with ``negative_amounts="error"``.
    TypeError
        If ``source`` is of an unsupported type.

    Examples
    --------
    >>> tx, report = read_transactions(
    ...     "orders.csv", customer="CustomerID", timestamp="InvoiceDate", amount="Revenue"
    ... )  # doctest: +SKIP
    >>> tx, report = read_transactions(
    ...     "lines.csv", customer="CustomerID", timestamp="InvoiceDate", order="InvoiceNo",
    ...     quantity="Quantity", price="UnitPrice", cancellation_prefix="C",
    ... )  # doctest: +SKIP
    """
    return _read_transactions(
        source,
        customer,
        timestamp,
        amount,
        group,
        order,
        quantity=quantity,
        price=price,
        cancellation_prefix=cancellation_prefix,
        observation_end=observation_end,
        allow_end_beyond_data=allow_end_beyond_data,
        negative_amounts=negative_amounts,
        drop_zero_amounts=drop_zero_amounts,
        drop_duplicates=drop_duplicates,
        timestamp_format=timestamp_format,
        dayfirst=dayfirst,
        encoding=encoding,
        separator=separator,
        decimal=decimal,
        engine=engine,
        status=status,
        exclude_status=exclude_status,
        since=since,
        until=until,
        normalize_ids=normalize_ids,
        currency=currency,
        currency_column=currency_column,
        lazy=False,
    )


def scan_transactions(
    source: Any,
    customer: str = "customer_id",
    timestamp: str = "timestamp",
    amount: str | None = "amount",
    group: str | None = None,
    order: str | None = None,
    **options: Any,
) -> Transactions:
    """Like :func:`read_transactions`, but the cleaned log stays in DuckDB.

    Takes the same arguments. The cleaned rows are not copied into pandas:
    the returned :class:`~rfmml.data.ScannedLog` is read by
    :func:`rfmml.features.btyd_summary`, :func:`rfmml.features.rfm_table` and
    :func:`rfmml.features.customer_features` inside DuckDB, and
    ``.to_pandas()`` gives the frame :func:`read_transactions` returns. Logs
    cleaned by the pandas path (frames, CSV files, the steps listed under
    ``engine``) are handed to DuckDB after cleaning.

    Returns
    -------
    Transactions
        ``(ScannedLog, CleaningReport)``; call ``.close()`` on the log when done.
    """
    return _read_transactions(source, customer, timestamp, amount, group, order,
                              **options, lazy=True)  # fmt: skip


def _read_transactions(
    source: Any,
    customer: str,
    timestamp: str,
    amount: str | None,
    group: str | None,
    order: str | None,
    *,
    quantity: str | None = None,
    price: str | None = None,
    cancellation_prefix: str | None = None,
    observation_end: Any = None,
    allow_end_beyond_data: bool = False,
    negative_amounts: NegativePolicy = "drop",
    drop_zero_amounts: bool = False,
    drop_duplicates: bool = False,
    timestamp_format: str | None = None,
    dayfirst: bool | None = None,
    encoding: str | None = None,
    separator: str | None = None,
    decimal: str | None = None,
    engine: Engine = "auto",
    status: str | None = None,
    exclude_status: Sequence[str] | str | None = None,
    since: Any = None,
    until: Any = None,
    normalize_ids: bool = False,
    currency: str | None = None,
    currency_column: str | None = None,
    lazy: bool = False,
    keep_negative: bool = False,
    allow_empty: bool = False,
) -> Transactions:
    # keep_negative (CustomerState with negative_amounts="net"): negative rows are left
    # in, neither dropped nor netted; the caller nets them against its stored purchases.
    # allow_empty (CustomerState batches): a batch that cleaning empties (only returns)
    # comes back as an empty frame with its report instead of an error
    if engine not in ("auto", "duckdb", "pandas"):
        raise ValueError(f"engine must be 'auto', 'duckdb' or 'pandas', got {engine!r}")
    if negative_amounts not in ("drop", "net", "error"):
        raise ValueError(
            f"negative_amounts must be 'drop', 'net' or 'error', got {negative_amounts!r}"
        )
    if (quantity is None) != (price is None):
        raise DataError(
            "map both quantity= and price= for a line-item log (amount = quantity x price), "
            f"got quantity={quantity!r}, price={price!r}"
        )
    if price is not None:
        if amount not in (None, "amount"):
            raise DataError(f"map either amount= ({amount!r}) or quantity= and price=, not both")
        amount = None
    if cancellation_prefix is not None and order is None:
        raise DataError("cancellation_prefix= needs the order id column: map order=")
    excluded = _status_values(status, exclude_status)
    since_ts, until_ts = date_bounds(since, until)
    schema = TransactionSchema(customer, timestamp, amount, group, order, quantity, price,
                               status, currency_column)  # fmt: skip
    used = schema.source_columns
    twice = sorted({c for c in used if used.count(c) > 1})
    if twice:
        raise DataError(
            f"column(s) {twice} are mapped to more than one of customer, timestamp, amount, "
            "group, order, quantity, price and status; map each to its own column"
        )
    fallback = None
    if status is not None and engine == "duckdb" and isinstance(source, str | Path):
        fallback = "read and cleaned by pandas: DuckDB does not take status="
    elif (
        status is None and engine != "pandas" and not keep_negative
        and isinstance(source, str | Path)
    ):  # fmt: skip
        scanned = _scan_file(Path(source), schema, engine, cancellation_prefix, observation_end,
                             allow_end_beyond_data, negative_amounts, drop_zero_amounts,
                             drop_duplicates, since_ts, until_ts, normalize_ids,
                             currency)  # fmt: skip
        if isinstance(scanned, Transactions):
            if lazy:
                return scanned
            log, report = scanned
            try:
                return Transactions(log.to_pandas(), report)
            finally:
                log.close()
        fallback = scanned
    frame, kind, schema = _load(source, schema, encoding, separator, decimal)
    report = CleaningReport(rows_in=len(frame))
    if frame.empty:
        where = repr(str(source)) if isinstance(source, str | Path) else "the transaction log"
        raise DataError(f"{where} is empty (0 rows)")
    frame = frame.rename(columns=schema.renames).reset_index(drop=True)
    if isinstance(source, str | Path) and kind == "pandas" and schema.amount is not None:
        if Path(source).suffix.lower() not in {".parquet", ".pq"}:
            frame = _without_totals_line(frame, decimal, report)
    if status is not None:
        frame = _without_statuses(frame, status, excluded, report)
    if order is not None:
        frame = _order_fields(frame, amount is not None and price is None, report)
    frame = _currencies(frame, schema.currency, currency, schema.has_amount, report)

    ids = frame["customer_id"]
    no_id = ids.isna()
    if ids.dtype == object or pd.api.types.is_string_dtype(ids.dtype):
        no_id |= ids.astype("string").str.strip().fillna("") == ""
    report.remove("missing customer_id", int(no_id.sum()))
    frame = frame.loc[~no_id]
    frame, note = _trimmed_ids(frame)
    if note:
        report.notes.append(note)
    frame, note = _id_case(frame, normalize_ids)
    if note:
        report.notes.append(note)
    frame = frame.assign(customer_id=_plain_ids(frame["customer_id"]))
    if isinstance(source, str | Path) and Path(source).suffix.lower() not in {".parquet", ".pq"}:
        # a text file (CSV): every column is text, float-written ids included
        frame, note = _whole_number_text_ids(frame, decimal or ".")
        if note:
            report.notes.append(note)
    if order is not None and pd.api.types.is_float_dtype(frame["order_id"].dtype):
        known = frame["order_id"].notna()
        plain = _plain_ids(frame.loc[known, "order_id"])
        whole = pd.api.types.is_integer_dtype(plain.dtype)
        order_ids = plain.reindex(frame.index).astype("Int64" if whole else object)
        frame = frame.assign(order_id=order_ids)
    if group is not None:
        no_group = frame[group].isna()
        report.remove(f"missing {group}", int(no_group.sum()))
        frame = frame.loc[~no_group]

    parsed, tz = parse_timestamps(frame["timestamp"], schema.timestamp, timestamp_format, dayfirst)
    if tz == "several UTC offsets":
        report.notes.append("timestamps with several UTC offsets kept at their own wall-clock time")
    elif tz is not None and tz.startswith("UTC (") and tz.endswith(" since 1970-01-01)"):
        unit = tz[len("UTC (") : -len(" since 1970-01-01)")]  # EPOCH_ZONE, or a finer unit
        report.notes.append(
            f"timestamps read as {unit} since 1970-01-01 UTC, in UTC wall-clock time"
        )
        report.time_zone = "UTC"
    elif tz is not None:
        report.notes.append(f"timestamps in time zone {tz} converted to its wall-clock time")
        report.time_zone = str(tz)
    frame = frame.assign(timestamp=parsed)
    no_time = frame["timestamp"].isna()
    report.remove("missing timestamp", int(no_time.sum()))
    frame = frame.loc[~no_time]

    if price is not None and quantity is not None:
        line = _parse_amounts(frame["_quantity"], quantity, decimal, report.notes) * (
            _parse_amounts(frame["_price"], price, decimal, report.notes)
        )
        frame = frame.drop(columns=["_quantity", "_price"]).assign(amount=line.round(_DECIMALS))
        no_amount = frame["amount"].isna()
        report.remove(f"missing {quantity} or {price}", int(no_amount.sum()))
        frame = frame.loc[~no_amount]
    elif amount is not None:
        frame = frame.assign(amount=_parse_amounts(frame["amount"], amount, decimal, report.notes))
        no_amount = frame["amount"].isna()
        report.remove("missing amount", int(no_amount.sum()))
        frame = frame.loc[~no_amount]

    frame = _between(frame, since_ts, until_ts, report)
    frame = _cut_end(frame, observation_end, allow_end_beyond_data, report)
    _flag_isolated(frame, report.rows_in, report)

    if cancellation_prefix is not None:
        cancelled = (
            frame["order_id"].astype("string").str.startswith(cancellation_prefix).fillna(False)
        )
        if schema.has_amount:
            credit = -frame["amount"].abs()
            frame = frame.assign(amount=frame["amount"].where(~cancelled, credit))
            report.notes.append(
                f"{int(cancelled.sum()):,} rows of cancellation orders (id starting with "
                f"{cancellation_prefix!r}) count as returns"
            )
        else:
            report.remove(f"cancellation order (id starting with {cancellation_prefix!r})",
                          int(cancelled.sum()))  # fmt: skip
            frame = frame.loc[~cancelled]
    if order is not None:
        frame = _orders(frame, group, schema.has_amount, report)

    if schema.has_amount and not keep_negative:
        negative = frame["amount"] < 0
        n_negative = int(negative.sum())
        if negative_amounts == "error" and n_negative:
            first = frame.loc[negative, "customer_id"].iloc[0]
            raise DataError(
                f"column {schema.amount or price!r}: {n_negative} of {len(frame)} rows are "
                f"negative (first customer_id={first!r}); use negative_amounts='drop' or 'net'"
            )
        if negative_amounts == "drop":
            report.remove("negative amount (return or cancellation)", n_negative)
            frame = frame.loc[~negative]
        elif negative_amounts == "net":
            keys = ["customer_id"] + ([group] if group is not None else [])
            frame = _net_returns(frame, keys, report)

        zero = frame["amount"] == 0
        if drop_zero_amounts:
            report.remove("zero amount", int(zero.sum()))
            frame = frame.loc[~zero]
        else:
            report.flag("zero amount", int(zero.sum()))

    same = [c for c in schema.canonical_columns if c != "order_id"]
    repeated = frame.duplicated(subset=same, keep="first")
    if drop_duplicates:
        report.remove("identical to an earlier row", int(repeated.sum()))
        frame = frame.loc[~repeated]
    else:
        report.flag("identical to an earlier row", int(repeated.sum()))

    if frame.empty and not allow_empty:
        raise DataError(f"no transactions left after cleaning:\n{report}")
    frame = frame.loc[:, schema.canonical_columns].reset_index(drop=True)
    if order is not None:
        frame = frame.sort_values(["timestamp", "customer_id"], kind="stable", ignore_index=True)
    report.rows_out = len(frame)
    if fallback is not None:
        report.notes.append(fallback)
    report.check()
    if lazy:
        return Transactions(ScannedLog.from_pandas(frame), report)
    if report.rows_removed or report.rows_merged:
        logger.info("read_transactions cleaned the log:\n%s", report)
    if kind == "polars":
        import polars as pl

        return Transactions(pl.from_pandas(frame), report)
    return Transactions(frame, report)


def _scan_file(
    path: Path,
    schema: TransactionSchema,
    engine: str,
    cancellation_prefix: str | None,
    observation_end: Any,
    allow_end_beyond_data: bool,
    negative_amounts: str,
    drop_zero_amounts: bool,
    drop_duplicates: bool,
    since: pd.Timestamp | None = None,
    until: pd.Timestamp | None = None,
    normalize_ids: bool = False,
    currency: str | None = None,
) -> Transactions | str | None:
    """Clean a Parquet file in DuckDB; return why not (a report note) or ``None`` (CSV, auto)."""
    suffix = path.suffix.lower()
    if suffix not in {".parquet", ".pq"} or not path.is_file():
        if engine == "duckdb" and path.is_file():
            kind = "JSON" if is_json_path(path) else "CSV"
            return f"read and cleaned by pandas: {kind} files are parsed by pandas"
        return None
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        metadata = pq.read_metadata(path)
    except (pa.ArrowInvalid, OSError):
        return None  # the pandas path raises its own message
    available = metadata.schema.to_arrow_schema().names
    _check_columns(schema, available, str(path))
    schema = with_currency_column(schema, available)
    if metadata.num_rows >= WARM_MIN_ROWS:  # its features will be computed by compiled loops
        in_background(warm_numba)
    try:
        log, report = scan_parquet(
            path,
            {**schema.renames, **({schema.group: schema.group} if schema.group else {})},
            group=schema.group,
            has_amount=schema.has_amount,
            quantity=schema.quantity,
            price=schema.price,
            amount=schema.amount,
            cancellation_prefix=cancellation_prefix,
            observation_end=observation_end,
            allow_end_beyond_data=allow_end_beyond_data,
            negative_amounts=negative_amounts,
            drop_zero_amounts=drop_zero_amounts,
            drop_duplicates=drop_duplicates,
            canonical=schema.canonical_columns,
            since=since,
            until=until,
            normalize_ids=normalize_ids,
            currency_column=schema.currency,
            currency=currency,
        )
    except Unsupported as exc:
        return f"read and cleaned by pandas: DuckDB does not take {exc}"
    if report.rows_removed or report.rows_merged:
        logger.info("read_transactions cleaned the log:\n%s", report)
    return Transactions(log, report)
