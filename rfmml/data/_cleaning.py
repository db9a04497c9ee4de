"""Cleaning stage of :mod:`rfmml.data.transactions`: the checks that remove or flag rows.

Currencies, the observation end and future rows, ``since``/``until``,
isolated timestamps, returns (netted), order lines (summed, filled from their
order), excluded statuses and a text file's totals line. The reasons and notes
that the DuckDB scan (:mod:`rfmml.data._scan`) must word the same way are
defined here and imported by it.
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from rfmml.data._parse import _SHOW, _parse_amounts
from rfmml.data.report import CleaningReport
from rfmml.errors import DataError


def currency_reason(column: str, code: str) -> str:
    """The cleaning report's reason for rows of another currency than the one picked."""
    return f"{column} not {code!r}"


def check_currencies(column: str | None, counts: dict[Any, int], pick: str | None,
                     has_amount: bool) -> tuple[str | None, str]:  # fmt: skip
    """Judge a log's currencies; return the code whose rows are kept (or None) and a note.

    Parameters
    ----------
    column : str or None
        The currency column (None: the log has none).
    counts : dict
        Rows per currency code (upper case, stripped; None for a blank cell).
    pick : str or None
        The ``currency=`` the caller asked for.
    has_amount : bool
        Whether the log has amounts (without them currencies do not matter).

    Raises
    ------
    DataError
        ``pick`` without a currency column or without rows in that currency;
        several currencies with amounts and no ``pick``.
    """
    if column is None:
        if pick is not None:
            raise DataError(
                f"currency={pick!r} needs the column of the currencies: map currency_column= "
                "(CLI --currency-column); the log has no column named 'currency'"
            )
        return None, ""
    held = sorted((c for c in counts if c is not None), key=lambda c: (-counts[c], str(c)))
    blank = counts.get(None, 0)
    if pick is not None:
        code = str(pick).strip().upper()
        if code not in counts:
            raise DataError(
                f"currency={pick!r}: column {column!r} has no row in {code} (it holds "
                f"{', '.join(repr(c) for c in held) or 'no currency'})"
            )
        return code, f"amounts in {code} (column {column!r}); rows in other currencies removed"
    if not has_amount or not held:
        return None, ""
    if len(held) > 1:
        shown = ", ".join(f"{c!r} ({counts[c]:,} rows)" for c in held)
        if blank:
            shown += f", blank ({blank:,} rows)"
        raise DataError(
            f"column {column!r} holds {len(held)} currencies: {shown}; amounts in different "
            f"currencies do not add up: pick one with currency={held[0]!r} (CLI --currency "
            f"{held[0]}, config [data] currency), or convert the amounts to one currency first"
        )
    note = f"amounts in {held[0]} (column {column!r})"
    if blank:
        note += f"; {blank:,} rows leave the currency blank"
    return None, note


def _currencies(frame: pd.DataFrame, column: str | None, pick: str | None, has_amount: bool,
                report: CleaningReport) -> pd.DataFrame:  # fmt: skip
    """Refuse several currencies, or keep the picked one's rows (counted); note the currency."""
    if column is None:
        check_currencies(None, {}, pick, has_amount)
        return frame
    codes = frame["_currency"].astype("string").str.strip().str.upper()
    codes = codes.mask(codes == "")
    counts = {(None if pd.isna(k) else str(k)): int(v)
              for k, v in codes.value_counts(dropna=False).items()}  # fmt: skip
    code, note = check_currencies(column, counts, pick, has_amount)
    if code is not None:
        other = (codes != code).fillna(True).to_numpy(dtype=bool)
        report.remove(currency_reason(column, code), int(other.sum()))
        frame = frame.loc[~other]
    if note:
        report.notes.append(note)
    return frame.drop(columns="_currency")


def _shown_id(customer_id: Any) -> str:
    """A customer id as a note quotes it: as the pandas reader's row value gives it.

    The DuckDB and Spark readers fetch integer ids as Python ints; pandas
    rows hold NumPy's (``np.int64(7)``): quoted the same on every engine.
    """
    if isinstance(customer_id, int) and not isinstance(customer_id, bool):
        customer_id = np.int64(customer_id)
    return repr(customer_id)


def future_rows_note(n_future: int, n_rows: int, tomorrow, customer_id, timestamp) -> str:
    """The cleaning note (and warning) for rows dated after ``tomorrow``."""
    return (
        f"removed {n_future:,} of {n_rows:,} rows dated in the future (after "
        f"{tomorrow.date()}; first: customer_id={_shown_id(customer_id)} at "
        f"{timestamp}); fix the dates, or pass observation_end= (CLI "
        "--observation-end) to say where the log ends"
    )


def end_cutoff(end: pd.Timestamp) -> pd.Timestamp:
    """The exclusive cut-off an observation end implies.

    A date without a time of day includes that whole day; a timestamp includes
    itself. Rows with ``timestamp < end_cutoff(end)`` are observed.
    """
    if end == end.normalize():
        return end + pd.Timedelta(days=1)
    return end + pd.Timedelta(1, "us")


#: Rows dated more than this many days apart from the rest of a log are isolated.
ISOLATION_GAP_DAYS = 365
#: The cleaning report's flag of isolated rows (every engine).
ISOLATED_REASON = "dated over a year apart from the rest of the log"


def isolation_limit(n_rows: int) -> int:
    """How many rows at either end of a log may be isolated: a few, never the bulk.

    0.1 % of the log's rows, at least 5, and fewer than a third of them (a
    log of fewer than 4 rows is not judged).
    """
    return min(max(-(-n_rows // 1000), 5), (n_rows - 1) // 3)


_Ends = tuple[int, pd.Timestamp | None, int, pd.Timestamp | None]


def isolated_ends(lowest: Any, highest: Any, limit: int) -> _Ends:
    """The rows at the ends of a log that a gap of over a year parts from the rest.

    The rule: sort the log's timestamps; at the start, take the last gap of
    more than :data:`ISOLATION_GAP_DAYS` days between consecutive timestamps
    that has at most ``limit`` rows (:func:`isolation_limit`) before it: those
    rows are isolated (a mistyped year such as 1921 in a 2021-2023 log); the
    same at the end of the log. A log whose early or late years hold more
    rows than ``limit`` is a log, not a typo, and is not flagged.

    Parameters
    ----------
    lowest, highest : array-like of datetime64
        The ``limit + 1`` earliest timestamps, ascending, and the ``limit + 1``
        latest, descending (fewer for a short log).
    limit : int

    Returns
    -------
    n_early, start, n_late, end
        Rows before ``start`` and after ``end`` are isolated (None: none).
    """
    gap = np.timedelta64(ISOLATION_GAP_DAYS, "D")
    found: list[tuple[int, pd.Timestamp | None]] = []
    for values, sign in ((lowest, 1), (highest, -1)):
        stamps = np.asarray(values, dtype="datetime64[us]")[: limit + 1]
        steps = (stamps[1:] - stamps[:-1]) * sign
        wide = np.flatnonzero(steps > gap)
        if limit < 1 or not len(wide):
            found.append((0, None))
            continue
        n = int(wide[-1]) + 1
        found.append((n, pd.Timestamp(stamps[n])))
    (n_early, start), (n_late, end) = found
    return n_early, start, n_late, end


def isolated_rows_note(n_early: int, start: Any, first_early: tuple[Any, Any] | None,
                       n_late: int, end: Any, first_late: tuple[Any, Any] | None,
                       n_rows: int) -> str:  # fmt: skip
    """The cleaning note (and warning) on isolated rows (every engine says this)."""
    parts = []
    sides = ((n_early, "before", "starts", start, first_early, "since"),
             (n_late, "after", "ends", end, first_late, "until"))  # fmt: skip
    for n, side, edge, day, first, option in sides:
        if n:
            customer, stamp = first or (None, None)
            parts.append(
                f"{n:,} of {n_rows:,} rows are dated over a year {side} the rest of the log, "
                f"which {edge} {day.date()} (first: customer_id={_shown_id(customer)} at "
                f"{stamp}); drop "
                f"them with {option}='{day.date()}' (CLI --{option} {day.date()})"
            )
    return (
        "isolated timestamps, a mistyped year? "
        + "; ".join(parts)
        + ". Kept: they stretch those customers' history (T, tenure); fix the dates or drop them"
    )


def _date_bound(value: Any, name: str) -> pd.Timestamp | None:
    """``since=`` or ``until=`` as a naive timestamp (None when not given)."""
    if value is None:
        return None
    try:
        bound = pd.Timestamp(value)
    except (ValueError, TypeError):
        raise DataError(f"{name}={value!r} is not a date (e.g. '2021-01-01')") from None
    if bound is pd.NaT:
        raise DataError(f"{name}={value!r} is not a date (e.g. '2021-01-01')")
    return bound.tz_localize(None) if bound.tzinfo is not None else bound


def _bound_text(bound: pd.Timestamp) -> str:
    return str(bound.date()) if bound == bound.normalize() else str(bound)


def date_bounds(since: Any, until: Any) -> tuple[pd.Timestamp | None, pd.Timestamp | None]:
    """``since=`` and ``until=`` checked: dates, in order."""
    start, stop = _date_bound(since, "since"), _date_bound(until, "until")
    if start is not None and stop is not None and start >= end_cutoff(stop):
        raise DataError(
            f"since={_bound_text(start)} is after until={_bound_text(stop)}: no row is left"
        )
    return start, stop


def since_reason(since: pd.Timestamp) -> str:
    """The cleaning report's reason for rows before ``since=``."""
    return f"dated before {_bound_text(since)} (since)"


def until_reason(until: pd.Timestamp) -> str:
    """The cleaning report's reason for rows after ``until=``."""
    return f"dated after {_bound_text(until)} (until)"


def _between(frame: pd.DataFrame, since: pd.Timestamp | None, until: pd.Timestamp | None,
             report: CleaningReport) -> pd.DataFrame:  # fmt: skip
    """Remove the rows before ``since`` and after ``until`` (a date includes its day)."""
    if since is not None:
        early = frame["timestamp"] < since
        report.remove(since_reason(since), int(early.sum()))
        frame = frame.loc[~early]
    if until is not None:
        late = frame["timestamp"] >= end_cutoff(until)
        report.remove(until_reason(until), int(late.sum()))
        frame = frame.loc[~late]
    return frame


def _flag_isolated(frame: pd.DataFrame, rows_in: int, report: CleaningReport) -> None:
    """Flag (and warn about) the rows :func:`isolated_ends` finds; they are kept."""
    limit = isolation_limit(rows_in)
    if limit < 1 or len(frame) <= 1:
        return
    # as int64: NumPy partitions datetime64 values on a slow generic path
    stamps = frame["timestamp"].to_numpy(dtype="datetime64[us]").view("int64")
    k = min(limit + 1, len(stamps))
    lowest = np.sort(np.partition(stamps, k - 1)[:k]).view("datetime64[us]")
    highest = np.sort(np.partition(stamps, len(stamps) - k)[len(stamps) - k :])[::-1]
    highest = highest.view("datetime64[us]")
    n_early, start, n_late, end = isolated_ends(lowest, highest, limit)
    if not (n_early or n_late):
        return
    report.flag(ISOLATED_REASON, n_early + n_late)
    firsts = []
    for hit in (
        frame["timestamp"] < start if n_early else None,
        frame["timestamp"] > end if n_late else None,
    ):
        row = frame.loc[hit].iloc[0] if hit is not None else None
        firsts.append(None if row is None else (row["customer_id"], row["timestamp"]))
    message = isolated_rows_note(n_early, start, firsts[0], n_late, end, firsts[1], len(frame))
    report.notes.append(message)
    warnings.warn(message, UserWarning, stacklevel=4)


def _net_returns(frame: pd.DataFrame, keys: list[str], report: CleaningReport) -> pd.DataFrame:
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
    # of several purchases at the same time, the last one sorted, the largest, takes the
    # return: a rule of the values, not of the row order (CustomerState nets by it too)
    ordered = purchases.sort_values(["timestamp", "amount"], kind="stable")
    matched = pd.merge_asof(
        returns.sort_values("timestamp"),
        ordered[[*keys, "timestamp", "_row"]],
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
    rows = credit.index.to_numpy()  # netted amounts rounded like summed orders: no float noise
    amounts[rows] = np.round(amounts[rows] + credit.to_numpy(), _DECIMALS)
    wiped = amounts < 0
    if wiped.any():
        report.notes.append(
            f"{int(wiped.sum())} purchases had returns larger than their value; "
            "their amount was set to 0 (the excess return value is not carried further)"
        )
    purchases["amount"] = np.maximum(amounts, 0.0)
    return purchases.drop(columns="_row")


def copied_orders_note(n_orders: int, first: Any) -> str:
    """The cleaning note on orders whose lines are all one line repeated (every engine).

    Given when such orders are at least half of the orders of several lines: a
    line-item log has a few (two products at one price), a file holding its rows
    twice has nothing else.
    """
    return (
        f"{n_orders:,} orders consist of one line repeated (same customer, time and amount; "
        f"first: order {str(first)!r}), summed into one row each: if the file holds its rows "
        "twice (an export appended to itself), their amounts are doubled; remove the copies "
        "first (drop_duplicates compares whole orders)"
    )


def _orders(frame: pd.DataFrame, group: str | None, has_amount: bool,
            report: CleaningReport) -> pd.DataFrame:  # fmt: skip
    """Sum the lines of each order into one row (earliest line time, total amount).

    Rows without an order id stay rows of their own.
    """
    no_order = frame["order_id"].isna()
    lines = frame.loc[~no_order]
    keys = ["order_id", "customer_id"] + ([group] if group is not None else [])
    agg: dict[str, Any] = {"timestamp": "min"}
    if has_amount:
        agg["amount"] = "sum"
    orders = lines.groupby(keys, sort=False, observed=True).agg(agg).reset_index()
    if has_amount:
        orders["amount"] = orders["amount"].round(_DECIMALS)
    report.merge("order lines summed into one row per order", len(lines) - len(orders))
    values = ["timestamp", "amount"] if has_amount else ["timestamp"]
    distinct = lines.drop_duplicates([*keys, *values])
    single = distinct.loc[~distinct.duplicated(keys, keep=False), keys]  # one distinct line
    repeated = lines.loc[lines.duplicated(keys, keep=False), keys].drop_duplicates()
    copies = repeated.merge(single, on=keys, how="inner")
    if len(copies) and 2 * len(copies) >= len(repeated):
        report.notes.append(copied_orders_note(len(copies), copies["order_id"].iloc[0]))
    return pd.concat([orders, frame.loc[no_order, orders.columns]], ignore_index=True)


_DECIMALS = 9  # computed amounts are rounded here: float noise, not money (0.1 * 3)


OBSERVATION_END_MARGIN_DAYS = 90
"""How far an observation end may lie past the last transaction without an explicit opt-in."""


#: The cleaning report's reason for a text file's totals line.
TOTALS_REASON = "totals line (the last row: its amount is the sum of the others)"
_TOTALS_WORDS = r"(?i)^\s*(?:grand\s*)?(?:totals?|sum|summe|gesamt\w*|totaal|totale|somme|suma)\b"
_TOTALS_MIN_ROWS = 20


def _without_totals_line(frame: pd.DataFrame, decimal: str | None,
                         report: CleaningReport) -> pd.DataFrame:  # fmt: skip
    """Remove a text file's last row when it is a totals line, counted, with a note.

    The rule: a file of more than :data:`_TOTALS_MIN_ROWS` rows whose last row
    has no customer id, no timestamp, or an id such as ``Total`` / ``Summe``,
    and an amount equal (to a cent, or a millionth) to the sum of the amounts
    of the rows above it (or of the positive ones). Such a row is a report's
    footer, not a purchase.
    """
    if len(frame) <= _TOTALS_MIN_ROWS:
        return frame
    last = frame.iloc[-1]
    ident, stamp = last["customer_id"], last["timestamp"]
    blank = [pd.isna(v) or str(v).strip() == "" for v in (ident, stamp)]
    if not (any(blank) or re.match(_TOTALS_WORDS, str(ident))):
        return frame
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            amounts = _parse_amounts(frame["amount"], "amount", decimal)
    except DataError:
        return frame
    value, above = amounts.iloc[-1], amounts.iloc[:-1].dropna()
    if not (value > 0) or above.empty:
        return frame
    sums = (above.sum(), above[above > 0].sum())
    if not any(np.isclose(value, total, rtol=1e-6, atol=0.01) for total in sums):
        return frame
    report.remove(TOTALS_REASON, 1)
    cells = [ident, stamp, last["amount"]]
    gone = [*blank, bool(pd.isna(last["amount"]))]
    shown = ["blank" if g else repr(v) for g, v in zip(gone, cells, strict=True)]
    report.notes.append(
        f"the file's last row (customer_id {shown[0]}, timestamp {shown[1]}, amount "
        f"{shown[2]}) is a totals line: its amount is the sum of the rows above; removed"
    )
    return frame.iloc[:-1]


def _blank(values: pd.Series) -> pd.Series:
    """Missing cells, blank text included."""
    blank = values.isna()
    if values.dtype == object or pd.api.types.is_string_dtype(values.dtype):
        blank |= values.astype("string").str.strip().fillna("") == ""
    return blank


def _order_fields(frame: pd.DataFrame, order_amounts: bool,
                  report: CleaningReport) -> pd.DataFrame:  # fmt: skip
    """Fill an order's lines that lack its customer id, time (or total) from its other lines.

    Exports such as Shopify's write the order's fields on its first line only;
    the other lines (products) would be removed as missing a customer id. A
    blank cell takes the first value of its order's other lines; with an
    order's total as the amount (``order_amounts``: not line items), a line
    without it counts 0 towards the order. Orders with no value on any line
    are left as they are (their lines are then removed and counted).
    """
    orders = frame["order_id"]
    known = orders.notna().to_numpy()
    columns = ["customer_id", "timestamp"] + (["amount"] if order_amounts else [])
    columns += ["_currency"] if "_currency" in frame.columns else []
    blanks = {c: _blank(frame[c]).to_numpy() & known for c in columns}
    if not known.any() or not any(b.any() for b in blanks.values()):
        return frame
    filled = np.zeros(len(frame), dtype=bool)
    frame = frame.copy()
    for column, blank in blanks.items():
        if not blank.any():
            continue
        donors = frame.loc[known & ~blank, ["order_id", column]].drop_duplicates("order_id")
        if column == "amount":  # the order's total is on another line: this one adds 0
            has_total = orders[blank].isin(donors["order_id"]).to_numpy()
            rows = np.flatnonzero(blank)[has_total]
            numeric = pd.api.types.is_numeric_dtype(frame[column].dtype)
            frame.iloc[rows, frame.columns.get_loc(column)] = 0 if numeric else "0"
        else:
            values = orders[blank].map(donors.set_index("order_id")[column])
            found = values.notna().to_numpy()
            rows = np.flatnonzero(blank)[found]
            if frame[column].dtype != values.dtype:
                frame[column] = frame[column].astype(object)
            frame.iloc[rows, frame.columns.get_loc(column)] = values.to_numpy()[found]
        filled[rows] = True
    if filled.any():
        report.notes.append(
            order_fields_note(int(filled.sum()), order_amounts, "_currency" in frame.columns)
        )
    return frame


def order_fields_note(n_filled: int, order_amounts: bool, currency: bool) -> str:
    """The cleaning note on order lines that took their order's fields (every engine).

    ``order_amounts``: the amounts are the orders' totals (not line items);
    ``currency``: a currency column is read.
    """
    what = "customer id, time or total" if order_amounts else "customer id or time"
    what += " (or currency)" if currency else ""
    return (
        f"{n_filled:,} order lines without their order's {what} (exports write "
        "them on an order's first line only) took them from the order's other lines"
    )


def _status_values(status: str | None, exclude_status: Sequence[str] | str | None) -> list[str]:
    """The states ``exclude_status`` names, checked against ``status``."""
    if isinstance(exclude_status, str):
        exclude_status = exclude_status.split(",")
    values = [str(v).strip() for v in exclude_status or () if str(v).strip()]
    if status is None and values:
        raise DataError(
            f"exclude_status={values!r} needs the column that holds the states: map status= "
            "(CLI --status, config [data] status)"
        )
    if status is not None and not values:
        raise DataError(
            f"status={status!r} needs the states whose rows are not purchases: "
            "exclude_status=['refunded', 'voided', ...] (CLI --exclude-status refunded,voided)"
        )
    return values


def _without_statuses(frame: pd.DataFrame, column: str, values: list[str],
                      report: CleaningReport) -> pd.DataFrame:  # fmt: skip
    """Remove the rows (with order ids: the whole orders) of an excluded state; count them."""
    states = frame["_status"].astype("string").str.strip().str.casefold()
    wanted = {v.casefold() for v in values}
    hit = states.isin(wanted).fillna(False).to_numpy(dtype=bool, copy=True)
    if "order_id" in frame.columns and hit.any():
        orders = frame["order_id"]
        excluded_orders = orders[hit].dropna().unique()
        hit |= (orders.isin(excluded_orders) & orders.notna()).to_numpy(dtype=bool)
    shown = ", ".join(repr(v) for v in values)
    report.remove(f"{column} {shown} (not a purchase)", int(hit.sum()))
    seen = set(states.dropna().unique())
    unmatched = [v for v in values if v.casefold() not in seen]
    if unmatched:
        held = sorted(frame["_status"].dropna().astype(str).str.strip().unique())
        report.notes.append(unmatched_states_note(column, unmatched, held))
    return frame.loc[~hit].drop(columns="_status")


def unmatched_states_note(column: str, unmatched: list[str], held: list[str]) -> str:
    """The cleaning note on excluded states no row has, quoting the log's (sorted) states.

    ``held`` needs at most ``2 * _SHOW + 1`` of them (more are shown as ``...``).
    """
    more = ", ..." if len(held) > _SHOW * 2 else ""
    return (
        f"{column}: no row has the state(s) {unmatched} (states in the log: "
        f"{held[: _SHOW * 2]}{more}); check their spelling"
    )


def _cut_end(frame: pd.DataFrame, observation_end: Any, allow_beyond: bool,
             report: CleaningReport) -> pd.DataFrame:  # fmt: skip
    """Remove rows after the observation end (or in the future); check the end's margin."""
    if observation_end is None:
        tomorrow = pd.Timestamp.now().normalize() + pd.Timedelta(days=1)
        future = frame["timestamp"] >= end_cutoff(tomorrow)
        n_future = int(future.sum())
        report.remove(f"dated in the future (after {tomorrow.date()})", n_future)
        if n_future:
            first = frame.loc[future].iloc[0]
            message = future_rows_note(
                n_future, len(frame), tomorrow, first["customer_id"], first["timestamp"]
            )
            report.notes.append(message)
            warnings.warn(message, UserWarning, stacklevel=4)
        return frame.loc[~future]
    end = pd.Timestamp(observation_end)
    end = end.tz_localize(None) if end.tzinfo is not None else end
    late = frame["timestamp"] >= end_cutoff(end)
    shown = end.date() if end == end.normalize() else end
    report.remove(f"after the observation end {shown}", int(late.sum()))
    frame = frame.loc[~late]
    if frame.empty:
        return frame
    check_end_margin(end, frame["timestamp"].max(), allow_beyond, report)
    return frame


def check_end_margin(end: pd.Timestamp, last: pd.Timestamp, allow_beyond: bool,
                     report: CleaningReport) -> None:  # fmt: skip
    """Refuse an observation end over :data:`OBSERVATION_END_MARGIN_DAYS` after the last row.

    With ``allow_beyond`` the end is kept and a note says by how much it passes the data.

    Raises
    ------
    DataError
        The end is too far past ``last`` and ``allow_beyond`` is false.
    """
    gap = end - last
    if gap <= pd.Timedelta(days=OBSERVATION_END_MARGIN_DAYS):
        return
    if not allow_beyond:
        raise DataError(
            f"observation_end {end.date()} is {gap.days:,} days after the last transaction "
            f"({last}); every customer would look silent for those days (P(alive) near 0). "
            f"Use an end within {OBSERVATION_END_MARGIN_DAYS} days of the data, or set "
            "allow_end_beyond_data (config [periods] allow_end_beyond_data = true, CLI "
            "--allow-end-beyond-data) if that is intended"
        )
    report.notes.append(
        f"observation end {end.date()} is {gap.days:,} days after the last transaction "
        f"({last}), as allowed"
    )
