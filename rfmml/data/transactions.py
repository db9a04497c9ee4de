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
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, NamedTuple

import numpy as np
import pandas as pd

from rfmml.data.report import CleaningReport
from rfmml.errors import DataError

__all__ = [
    "TransactionSchema",
    "Transactions",
    "end_cutoff",
    "parse_timestamps",
    "read_transactions",
]

logger = logging.getLogger(__name__)

NegativePolicy = Literal["drop", "net", "error"]
_SHOW = 5  # offending values quoted in an error message


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
        (monetary features are then not available).
    group : str or None
        Optional column to build features per group (channel, country, ...).
        It keeps its name in the canonical frame.
    order : str or None
        Optional order or invoice id; kept as ``order_id``.
    """

    customer: str = "customer_id"
    timestamp: str = "timestamp"
    amount: str | None = "amount"
    group: str | None = None
    order: str | None = None

    @property
    def source_columns(self) -> list[str]:
        """Columns required in the source, in canonical order."""
        cols = [self.customer, self.timestamp, self.amount, self.group, self.order]
        return [c for c in cols if c is not None]

    @property
    def renames(self) -> dict[str, str]:
        """Mapping of source column name to canonical name."""
        out = {self.customer: "customer_id", self.timestamp: "timestamp"}
        if self.amount is not None:
            out[self.amount] = "amount"
        if self.order is not None:
            out[self.order] = "order_id"
        return out

    @property
    def canonical_columns(self) -> list[str]:
        """Columns of the canonical frame, in order."""
        cols = ["customer_id", "timestamp"]
        if self.amount is not None:
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


def _load(source: Any, schema: TransactionSchema) -> tuple[pd.DataFrame, str]:
    """Load ``source`` as a pandas frame of the mapped columns; return it and its kind."""
    if isinstance(source, str | Path):
        path = Path(source)
        if not path.exists():
            raise DataError(f"transaction file {str(path)!r} does not exist")
        suffix = path.suffix.lower()
        if suffix in {".parquet", ".pq"}:
            import pyarrow.parquet as pq

            available = pq.read_schema(path).names
            _check_columns(schema, available, str(path))
            return pd.read_parquet(path, columns=schema.source_columns), "pandas"
        if suffix in {".csv", ".txt", ".tsv", ".gz"}:
            sep = "\t" if suffix == ".tsv" else ","
            head = pd.read_csv(path, sep=sep, nrows=0)
            _check_columns(schema, list(head.columns), str(path))
            dtypes = {schema.customer: str}
            if schema.order is not None:
                dtypes[schema.order] = str
            frame = pd.read_csv(
                path, sep=sep, usecols=schema.source_columns, dtype=dtypes, keep_default_na=True
            )
            return frame, "pandas"
        raise DataError(
            f"cannot read {str(path)!r}: expected a .csv, .tsv, .txt or .parquet file, "
            f"got suffix {suffix!r}"
        )
    if isinstance(source, pd.DataFrame):
        _check_columns(schema, list(source.columns), "the DataFrame")
        return source.loc[:, schema.source_columns].copy(), "pandas"
    module = type(source).__module__.split(".")[0]
    if module == "polars":
        import polars as pl

        if isinstance(source, pl.LazyFrame):
            source = source.collect()
        _check_columns(schema, list(source.columns), "the polars DataFrame")
        return source.select(schema.source_columns).to_pandas(), "polars"
    raise TypeError(
        "read_transactions takes a CSV or Parquet path, a pandas DataFrame or a polars "
        f"DataFrame; got {type(source).__name__}. For Spark or DuckDB data, pass the frame "
        "with canonical column names straight to rfmml.features."
    )


def _check_columns(schema: TransactionSchema, available: list[str], where: str) -> None:
    missing = [c for c in schema.source_columns if c not in available]
    if missing:
        raise DataError(
            f"column(s) {missing} not found in {where}; available columns: {list(available)}. "
            "Map your own names with customer=, timestamp=, amount=, group=, order=."
        )


def _quote(values: pd.Series) -> str:
    return ", ".join(repr(v) for v in values.head(_SHOW).tolist())


_OFFSET = r"(?:Z|[+-]\d{2}:?\d{2})$"


def _parse_text(text: pd.Series, missing: pd.Series, timestamp_format: str | None) -> pd.Series:
    """Parse date strings; unparseable ones become NaT (counted by the caller)."""
    try:
        parsed = pd.to_datetime(text, format=timestamp_format, errors="coerce")
    except (ValueError, TypeError):
        parsed = pd.to_datetime(text, format="mixed", errors="coerce")
    if timestamp_format is None and (parsed.isna() & ~missing).any():
        # pandas infers one format from the first value; retry element-wise
        parsed = pd.to_datetime(text, format="mixed", errors="coerce")
    return parsed


def parse_timestamps(
    values: pd.Series, column: str = "timestamp", timestamp_format: str | None = None
) -> tuple[pd.Series, str | None]:
    """Parse a column of dates or times into naive ``datetime64[us]`` wall-clock time.

    Accepts datetimes of any resolution, time-zone aware datetimes (converted to
    the wall-clock time of their own zone, so a purchase at 23:30 local time
    stays on its local day), strings, and ``datetime.date`` objects.

    Parameters
    ----------
    values : pandas.Series
        The raw column.
    column : str
        Name used in error messages.
    timestamp_format : str, optional
        ``strftime`` format for string dates; inferred when omitted.

    Returns
    -------
    parsed : pandas.Series
        ``datetime64[us]`` values, NaT where the input was missing.
    tz : str or None
        The time zone the values carried, if any.

    Raises
    ------
    DataError
        If some non-missing values cannot be parsed; the message counts them and
        quotes the first few.
    """
    tz = None
    if isinstance(values.dtype, pd.DatetimeTZDtype):
        tz = str(values.dtype.tz)
        parsed = values.dt.tz_localize(None)
    elif pd.api.types.is_datetime64_dtype(values.dtype):
        parsed = values
    else:
        missing = values.isna() | (values.astype("string").str.strip() == "")
        raw = values.where(~missing)
        if pd.api.types.is_numeric_dtype(values.dtype) and timestamp_format is None:
            raise DataError(
                f"column {column!r} holds numbers ({values.dtype}), not dates; pass "
                "timestamp_format= (e.g. '%Y%m%d') or convert epoch numbers first"
            )
        text = raw.astype("string")
        try:
            parsed = _parse_text(text, missing, timestamp_format)
        except ValueError:
            # Several UTC offsets (a log that crosses a daylight-saving change):
            # keep each value's own wall-clock time, as for a single time zone.
            text = text.str.replace(_OFFSET, "", regex=True)
            parsed = _parse_text(text, missing, timestamp_format)
            tz = "several UTC offsets"
        if isinstance(parsed.dtype, pd.DatetimeTZDtype):
            tz = str(parsed.dtype.tz)
            parsed = parsed.dt.tz_localize(None)
        bad = parsed.isna() & ~missing
        if bad.any():
            raise DataError(
                f"column {column!r}: {int(bad.sum())} of {len(values)} values do not parse as "
                f"dates (first: {_quote(values[bad])}). Pass timestamp_format= to say how "
                "they are written."
            )
    return parsed.astype("datetime64[us]"), tz


def _parse_amounts(values: pd.Series, column: str) -> pd.Series:
    if pd.api.types.is_bool_dtype(values.dtype):
        raise DataError(f"column {column!r} holds booleans, not amounts")
    if pd.api.types.is_numeric_dtype(values.dtype):
        parsed = values.astype("float64")
        missing = parsed.isna()
    else:
        missing = values.isna() | (values.astype("string").str.strip() == "")
        parsed = pd.to_numeric(values.where(~missing), errors="coerce").astype("float64")
        bad = parsed.isna() & ~missing
        if bad.any():
            raise DataError(
                f"column {column!r}: {int(bad.sum())} of {len(values)} values are not numbers "
                f"(first: {_quote(values[bad])}). Remove currency symbols and thousands "
                "separators before loading."
            )
    infinite = np.isinf(parsed.to_numpy())
    if infinite.any():
        raise DataError(
            f"column {column!r}: {int(infinite.sum())} of {len(values)} values are infinite"
        )
    return parsed


def end_cutoff(end: pd.Timestamp) -> pd.Timestamp:
    """The exclusive cut-off an observation end implies.

    A date without a time of day includes that whole day; a timestamp includes
    itself. Rows with ``timestamp < end_cutoff(end)`` are observed.
    """
    if end == end.normalize():
        return end + pd.Timedelta(days=1)
    return end + pd.Timedelta(1, "us")


def _net_returns(
    frame: pd.DataFrame, keys: list[str], report: CleaningReport
) -> pd.DataFrame:
    """Fold each negative row into the customer's latest purchase at or before it."""
    negative = frame["amount"] < 0
    if not negative.any():
        report.merge("return netted against an earlier purchase", 0)
        return frame
    purchases = frame.loc[~negative].copy()
    purchases["_row"] = np.arange(len(purchases))
    returns = frame.loc[negative, [*keys, "timestamp", "amount"]].copy()
    returns["_order"] = np.arange(len(returns))
    for key in keys:  # merge_asof needs comparable key dtypes on both sides
        returns[key] = returns[key].astype(purchases[key].dtype)
    matched = pd.merge_asof(
        returns.sort_values("timestamp"),
        purchases[[*keys, "timestamp", "_row"]].sort_values("timestamp"),
        on="timestamp",
        by=keys,
        direction="backward",
    )
    unmatched = matched["_row"].isna()
    report.remove("return without an earlier purchase by the same customer", int(unmatched.sum()))
    hit = matched.loc[~unmatched]
    report.merge("return netted against an earlier purchase", len(hit))
    credit = hit.groupby(hit["_row"].astype("int64"))["amount"].sum()
    amounts = purchases["amount"].to_numpy().copy()
    amounts[credit.index.to_numpy()] += credit.to_numpy()
    wiped = amounts < 0
    if wiped.any():
        report.notes.append(
            f"{int(wiped.sum())} purchases had returns larger than their value; "
            "their amount was set to 0 (the excess return value is not carried further)"
        )
    purchases["amount"] = np.maximum(amounts, 0.0)
    return purchases.drop(columns="_row")


def read_transactions(
    source: Any,
    customer: str = "customer_id",
    timestamp: str = "timestamp",
    amount: str | None = "amount",
    group: str | None = None,
    order: str | None = None,
    *,
    observation_end: Any = None,
    negative_amounts: NegativePolicy = "drop",
    drop_zero_amounts: bool = False,
    drop_duplicates: bool = False,
    timestamp_format: str | None = None,
) -> Transactions:
    """Load a transaction log into the canonical frame, with a cleaning report.

    Parameters
    ----------
    source : str, pathlib.Path, pandas.DataFrame or polars.DataFrame
        A CSV (``.csv``, ``.tsv``, ``.txt``) or Parquet path, or a data frame.
    customer, timestamp, amount, group, order : str or None
        The caller's column names for the customer id, purchase time, purchase
        value, optional grouping column and optional order id. ``amount=None``
        loads a log without values.
    observation_end : date-like, optional
        Rows after it are removed (and counted). A date without a time of day
        includes that whole day.
    negative_amounts : {"drop", "net", "error"}, default "drop"
        Returns and cancellations. ``"drop"`` removes negative rows; ``"net"``
        subtracts each from the same customer's latest purchase at or before it
        (the purchase keeps its date, its amount is reduced but not below 0;
        returns with no earlier purchase are removed); ``"error"`` raises.
    drop_zero_amounts : bool, default False
        Zero-value rows are purchase events in the BTYD sense (lifetimes and the
        published CDNOW analyses count them), so they are kept and flagged by
        default.
    drop_duplicates : bool, default False
        Identical rows (same customer, time, amount, group and order) are kept
        and flagged by default, for the same reason.
    timestamp_format : str, optional
        ``strftime`` format of string dates, e.g. ``"%Y%m%d"``.

    Returns
    -------
    Transactions
        A named tuple ``(transactions, report)``: the canonical frame (pandas,
        or polars when a polars frame came in) and the :class:`CleaningReport`.

    Raises
    ------
    DataError
        Missing columns (the message lists those available), empty input,
        unparseable dates or amounts (counted, first values quoted), or
        negative amounts with ``negative_amounts="error"``.
    TypeError
        If ``source`` is of an unsupported type.

    Examples
    --------
    >>> tx, report = read_transactions(
    ...     "orders.csv", customer="CustomerID", timestamp="InvoiceDate", amount="Revenue"
    ... )  # doctest: +SKIP
    """
    if negative_amounts not in ("drop", "net", "error"):
        raise ValueError(
            f"negative_amounts must be 'drop', 'net' or 'error', got {negative_amounts!r}"
        )
    schema = TransactionSchema(customer, timestamp, amount, group, order)
    used = schema.source_columns
    twice = sorted({c for c in used if used.count(c) > 1})
    if twice:
        raise DataError(
            f"column(s) {twice} are mapped to more than one of customer, timestamp, amount, "
            "group and order; map each to its own column"
        )
    frame, kind = _load(source, schema)
    report = CleaningReport(rows_in=len(frame))
    if frame.empty:
        raise DataError("the transaction log is empty (0 rows)")
    frame = frame.rename(columns=schema.renames).reset_index(drop=True)

    ids = frame["customer_id"]
    no_id = ids.isna()
    if ids.dtype == object or pd.api.types.is_string_dtype(ids.dtype):
        no_id |= ids.astype("string").str.strip().fillna("") == ""
    report.remove("missing customer_id", int(no_id.sum()))
    frame = frame.loc[~no_id]
    if group is not None:
        no_group = frame[group].isna()
        report.remove(f"missing {group}", int(no_group.sum()))
        frame = frame.loc[~no_group]

    parsed, tz = parse_timestamps(frame["timestamp"], schema.timestamp, timestamp_format)
    if tz is not None:
        report.notes.append(f"timestamps converted from time zone {tz} to its wall-clock time")
    frame = frame.assign(timestamp=parsed)
    no_time = frame["timestamp"].isna()
    report.remove("missing timestamp", int(no_time.sum()))
    frame = frame.loc[~no_time]

    if amount is not None:
        frame = frame.assign(amount=_parse_amounts(frame["amount"], schema.amount))
        no_amount = frame["amount"].isna()
        report.remove("missing amount", int(no_amount.sum()))
        frame = frame.loc[~no_amount]

    if observation_end is not None:
        end = pd.Timestamp(observation_end)
        end = end.tz_localize(None) if end.tzinfo is not None else end
        cutoff = end_cutoff(end)
        late = frame["timestamp"] >= cutoff
        report.remove(f"after the observation end {end}", int(late.sum()))
        frame = frame.loc[~late]

    if amount is not None:
        negative = frame["amount"] < 0
        n_negative = int(negative.sum())
        if negative_amounts == "error" and n_negative:
            first = frame.loc[negative, "customer_id"].iloc[0]
            raise DataError(
                f"column {schema.amount!r}: {n_negative} of {len(frame)} rows are negative "
                f"(first customer_id={first!r}); use negative_amounts='drop' or 'net'"
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

    repeated = frame.duplicated(subset=schema.canonical_columns, keep="first")
    if drop_duplicates:
        report.remove("identical to an earlier row", int(repeated.sum()))
        frame = frame.loc[~repeated]
    else:
        report.flag("identical to an earlier row", int(repeated.sum()))

    if frame.empty:
        raise DataError(f"no transactions left after cleaning:\n{report}")
    frame = frame.loc[:, schema.canonical_columns].reset_index(drop=True)
    report.rows_out = len(frame)
    report.check()
    if report.rows_removed or report.rows_merged:
        logger.info("read_transactions cleaned the log:\n%s", report)
    if kind == "polars":
        import polars as pl

        return Transactions(pl.from_pandas(frame), report)
    return Transactions(frame, report)
