"""Parsing stage of :mod:`rfmml.data.transactions`: timestamps, amounts and ids.

Turns the raw columns of a loaded log into typed values: dates and times
(:func:`parse_timestamps`: day/month order, UTC offsets, Unix seconds),
amounts (numbers or their text, the amount limit) and customer ids (float ids
as written, padding trimmed, ids that differ only in case, whole numbers
written with a fraction), with the notes and errors every engine shares.
"""

from __future__ import annotations

import re
import warnings
from typing import Any

import numpy as np
import pandas as pd

from rfmml.errors import DataError

_SHOW = 5  # offending values quoted in an error message


def _quote(values: pd.Series) -> str:
    return ", ".join(repr(v) for v in values.head(_SHOW).tolist())


_OFFSET = r"(?:Z|[+-]\d{2}:?\d{2})$"


# day and month first (either order), then the year: 01/03/2010, 1.3.10, 13-02-2010 10:15
_DAY_MONTH_HINT = r"^\s*\d{1,2}[/.\-]\d{1,2}[/.\-]\d"
_DAY_MONTH = (
    r"^\s*(?P<a>\d{1,2})(?P<sep1>[/.\-])(?P<b>\d{1,2})(?P<sep2>[/.\-])"
    r"(?P<year>\d{4}|\d{2})(?P<rest>[\sT].*)?$"
)


def _day_month_order(
    text: pd.Series, column: str, dayfirst: bool | None
) -> tuple[pd.Series, bool | None]:
    """Rewrite ``dd/mm/yyyy``-style values as ISO dates, with one order for the column.

    The order is read from the whole column at once: a first field above 12
    proves day-first, a second field above 12 proves month-first. A column
    with both, or with ambiguous values only (both fields <= 12 and unequal)
    and no ``dayfirst``, is refused: guessing per row is what turns
    01/03/2010 into 3 January beside 13/02/2010 read as 13 February.
    Vectorised with Arrow compute kernels (RE2), no per-row Python.

    Returns the rewritten text and the order used (``None`` when no value has
    the day/month form).
    """
    import pyarrow as pa
    import pyarrow.compute as pc

    values = pa.array(text, type=pa.large_string(), from_pandas=True)
    if isinstance(values, pa.ChunkedArray):
        values = values.combine_chunks()
    if not pc.any(pc.match_substring_regex(values, _DAY_MONTH_HINT)).as_py():
        return text, dayfirst
    parts = pc.extract_regex(values, _DAY_MONTH)
    field = {name: pc.struct_field(parts, name) for name in ("a", "sep1", "b", "sep2", "year")}
    same_sep = pc.equal(field["sep1"], field["sep2"])
    matched_arrow = pc.fill_null(pc.and_(pc.is_valid(parts), same_sep), False)
    first = pc.cast(field["a"], pa.int16())
    second = pc.cast(field["b"], pa.int16())

    def mask(condition: Any) -> pd.Series:
        both = pc.fill_null(pc.and_(matched_arrow, condition), False)
        return pd.Series(np.asarray(both), index=text.index)

    matched = mask(True)
    day_first = mask(pc.greater(first, 12))
    month_first = mask(pc.greater(second, 12))
    n = int(matched.sum())
    if n == 0:
        return text, dayfirst
    if day_first.any() and month_first.any():
        raise DataError(
            f"column {column!r} mixes day-first and month-first dates: {int(day_first.sum())} "
            f"of {n} values have a first field above 12 (first: {_quote(text[day_first])}) and "
            f"{int(month_first.sum())} a second field above 12 (first: "
            f"{_quote(text[month_first])}); fix the export or pass timestamp_format="
        )
    if dayfirst is True and month_first.any():
        raise DataError(
            f"column {column!r}: dayfirst=True, but {int(month_first.sum())} of {n} values have "
            f"a month above 12 that way (first: {_quote(text[month_first])}); the column is "
            "month-first (dayfirst=False)"
        )
    if dayfirst is False and day_first.any():
        raise DataError(
            f"column {column!r}: dayfirst=False, but {int(day_first.sum())} of {n} values have "
            f"a month above 12 that way (first: {_quote(text[day_first])}); the column is "
            "day-first (dayfirst=True)"
        )
    if dayfirst is None:
        if day_first.any():
            dayfirst = True
        elif month_first.any():
            dayfirst = False
        else:
            ambiguous = mask(pc.not_equal(first, second))
            if ambiguous.any():
                raise DataError(
                    f"column {column!r}: none of the {n} day/month dates has a field above 12 "
                    f"(first: {_quote(text[ambiguous].head(1))}), so each reads as day-first or "
                    "as month-first; say which with dayfirst=True or False (CLI --dayfirst / "
                    "--monthfirst, config [data] dayfirst) or timestamp_format= (e.g. '%d/%m/%Y')"
                )
            dayfirst = True  # every value reads the same either way
    day, month = (field["a"], field["b"]) if dayfirst else (field["b"], field["a"])
    year = field["year"]

    # strptime's %y pivot for two-digit years: 69-99 -> 19xx, 00-68 -> 20xx
    def s(value: str) -> Any:
        return pa.scalar(value, pa.large_string())

    century = pc.if_else(pc.greater_equal(pc.cast(year, pa.int16()), 69), s("19"), s("20"))
    year = pc.if_else(pc.equal(pc.utf8_length(year), 2),
                      pc.binary_join_element_wise(century, year, s("")), year)  # fmt: skip
    rest = pc.fill_null(pc.struct_field(parts, "rest"), s(""))
    iso = pc.binary_join_element_wise(
        year, pc.utf8_lpad(month, 2, "0"), pc.utf8_lpad(day, 2, "0"), s("-")
    )
    iso = pc.binary_join_element_wise(iso, rest, s(""))
    rewritten = pc.if_else(matched_arrow, iso, values)
    # positional, not aligned: ``text`` keeps the labels of the rows left after cleaning
    rewritten_text = pd.Series(rewritten.to_numpy(zero_copy_only=False), dtype="string")
    return rewritten_text.set_axis(text.index), dayfirst


def _parse_text(text: pd.Series, missing: pd.Series, timestamp_format: str | None) -> pd.Series:
    """Parse date strings; unparseable ones become NaT (counted by the caller)."""
    with warnings.catch_warnings():
        # "Could not infer format": the element-wise fallback is deliberate here
        warnings.simplefilter("ignore", UserWarning)
        return _to_datetime(text, missing, timestamp_format)


def _to_datetime(text: pd.Series, missing: pd.Series, timestamp_format: str | None) -> pd.Series:
    try:
        parsed = pd.to_datetime(text, format=timestamp_format, errors="coerce")
    except (ValueError, TypeError):
        parsed = pd.to_datetime(text, format="mixed", errors="coerce")
    if timestamp_format is None and (parsed.isna() & ~missing).any():
        # pandas infers one format from the first value; retry element-wise
        # (day/month order is already fixed for the whole column)
        parsed = pd.to_datetime(text, format="mixed", errors="coerce")
    return parsed


def parse_timestamps(
    values: pd.Series,
    column: str = "timestamp",
    timestamp_format: str | None = None,
    dayfirst: bool | None = None,
) -> tuple[pd.Series, str | None]:
    """Parse a column of dates or times into naive ``datetime64[us]`` wall-clock time.

    Accepts datetimes of any resolution, time-zone aware datetimes (converted to
    the wall-clock time of their own zone, so a purchase at 23:30 local time
    stays on its local day), strings, and ``datetime.date`` objects.

    Dates written with the day and month first (``01/03/2010``, ``1.3.10``)
    are read in one order for the whole column: a value whose first field is
    above 12 proves day-first, one whose second field is above 12 proves
    month-first. The check is one vectorised pass over the column.

    Parameters
    ----------
    values : pandas.Series
        The raw column.
    column : str
        Name used in error messages.
    timestamp_format : str, optional
        ``strftime`` format for string dates; inferred when omitted. ``"%s"``
        reads Unix time: seconds since 1970-01-01 UTC (numbers or their text),
        as UTC wall-clock time.
    dayfirst : bool, optional
        Order of ``dd/mm`` dates; inferred from the column when omitted.
        Ignored when ``timestamp_format`` is given.

    Returns
    -------
    parsed : pandas.Series
        ``datetime64[us]`` values, NaT where the input was missing.
    tz : str or None
        The time zone the values carried, if any.

    Raises
    ------
    DataError
        If some non-missing values cannot be parsed (the message counts them and
        quotes the first few), if the column mixes day-first and month-first
        dates, contradicts ``dayfirst``, or has only ambiguous day/month dates
        and no ``dayfirst``.
    """
    tz = None
    if isinstance(values.dtype, pd.DatetimeTZDtype):
        tz = str(values.dtype.tz)
        parsed = values.dt.tz_localize(None)
    elif pd.api.types.is_datetime64_dtype(values.dtype):
        parsed = values
    elif timestamp_format == EPOCH_SECONDS:
        parsed, unit = _epoch_seconds(values, column)
        tz = EPOCH_ZONE if unit == "seconds" else f"UTC ({unit} since 1970-01-01)"
    else:
        missing = values.isna() | (values.astype("string").str.strip() == "")
        raw = values.where(~missing)
        if pd.api.types.is_numeric_dtype(values.dtype) and timestamp_format is None:
            numbers = pd.to_numeric(raw, errors="coerce").dropna()
            serial = ""
            guess = epoch_unit(numbers.to_numpy(dtype=float)) if len(numbers) else None
            if guess is None and len(numbers) and numbers.between(1e8, _EPOCH_LIMIT).all():
                guess = "seconds"  # 1973 to 5138
            if guess is not None:
                first = float(numbers.iloc[0])
                factor = _EPOCH_UNITS.get(guess, 1.0)
                day = (pd.Timestamp(0) + pd.Timedelta(seconds=first / factor)).date()
                serial = (
                    f"; they look like Unix time in {guess} ({first:.0f} is {day}): pass "
                    f"timestamp_format={EPOCH_SECONDS!r} (CLI --timestamp-format {EPOCH_SECONDS})"
                )
            elif len(numbers) and numbers.between(*_SERIAL_DAYS).all():
                first = float(numbers.iloc[0])
                day = (_SERIAL_ORIGIN + pd.Timedelta(days=int(first))).date()
                serial = (
                    f"; they look like spreadsheet day numbers ({first:g} is {day}): format "
                    "the column as dates in the spreadsheet before saving the CSV"
                )
            raise DataError(
                f"column {column!r} holds numbers ({values.dtype}), not dates; pass "
                f"timestamp_format= (CLI --timestamp-format; e.g. '%Y%m%d', or "
                f"{EPOCH_SECONDS!r} for seconds since 1970-01-01 UTC){serial}"
            )
        text = raw.astype("string")
        if timestamp_format is None:
            text, dayfirst = _day_month_order(text, column, dayfirst)
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


#: Spreadsheet day numbers (day 1 is 1900-01-01, counted from 1899-12-30) of the years
#: 1927-2173: numbers a date column holds when a spreadsheet saved it unformatted.
_SERIAL_DAYS = (10_000, 99_999)
_SERIAL_ORIGIN = pd.Timestamp("1899-12-30")

#: ``timestamp_format`` of Unix time: seconds since 1970-01-01 UTC (``date +%s``).
EPOCH_SECONDS = "%s"
EPOCH_ZONE = "UTC (seconds since 1970-01-01)"
_EPOCH_LIMIT = 1e11  # seconds: the year 5138; larger values are milliseconds or finer


def _text_numbers(values: pd.Series) -> tuple[pd.Series, pd.Series]:
    """A column's numbers (numbers or their text) as floats, and its missing cells.

    Blank text counts as missing; a cell that is neither missing nor a number
    is NaN in the numbers and not missing (the caller's error).
    """
    missing = values.isna() | (values.astype("string").str.strip().fillna("") == "")
    return pd.to_numeric(values.where(~missing), errors="coerce").astype("float64"), missing


#: Finer units of Unix time, by the factor from seconds (a column is read in one of them
#: when every value is past the year 5000 as seconds and before it in that unit).
_EPOCH_UNITS = {"milliseconds": 1e3, "microseconds": 1e6, "nanoseconds": 1e9}


def epoch_unit(numbers: np.ndarray) -> str | None:
    """The finer unit of Unix time every value is in, or None (seconds, or mixed units).

    Values of seconds past :data:`_EPOCH_LIMIT` (the year 5138) are not
    seconds; when every value is, and every value divided by one factor of
    :data:`_EPOCH_UNITS` is below the limit, that is the unit (the smallest
    such factor: 8.5e11 is milliseconds, 1997-01-01).
    """
    finite = np.abs(numbers[np.isfinite(numbers)])
    if not len(finite) or finite.min() < _EPOCH_LIMIT:
        return None
    for unit, factor in _EPOCH_UNITS.items():
        if finite.max() / factor < _EPOCH_LIMIT:
            return unit
    return None


def not_unix_time_error(column: str, n_bad: int, n_rows: int, shown: str) -> DataError:
    """The error on values of a Unix time column that are not numbers (every engine)."""
    return DataError(
        f"column {column!r}: {n_bad} of {n_rows} values are not seconds since 1970-01-01 "
        f"(first: {shown}); timestamp_format={EPOCH_SECONDS!r} reads Unix time"
    )


def mixed_units_error(column: str, n_large: int, n_rows: int, shown: str) -> DataError:
    """The error on a Unix time column of seconds and a finer unit mixed (every engine)."""
    return DataError(
        f"column {column!r}: {n_large} of {n_rows} values are past the year 5000 as seconds "
        f"since 1970-01-01 (first: {shown}), the others not: seconds and a finer unit mixed? "
        "Convert them to one unit first"
    )


def _epoch_seconds(values: pd.Series, column: str) -> tuple[pd.Series, str]:
    """Unix time (numbers or their text) as naive UTC datetimes, and its unit.

    Seconds since 1970-01-01 UTC, or a finer unit (:func:`epoch_unit`) when
    every value is in it.
    """
    numbers, missing = _text_numbers(values)
    bad = numbers.isna() & ~missing
    if bad.any():
        raise not_unix_time_error(column, int(bad.sum()), len(values), _quote(values[bad]))
    seconds = numbers.to_numpy()
    with np.errstate(invalid="ignore"):
        large = np.abs(seconds) >= _EPOCH_LIMIT
    unit = epoch_unit(seconds[~missing.to_numpy()])
    if unit is not None:  # every value a finer unit (JSON and JavaScript write milliseconds)
        seconds = seconds / _EPOCH_UNITS[unit]
    elif large.any():
        raise mixed_units_error(column, int(large.sum()), len(values), _quote(values[large]))
    micros = np.round(seconds * 1e6)
    stamps = pd.Series(micros, index=values.index).astype("Int64").astype("datetime64[us]")
    return stamps, unit or "seconds"


def _parse_amounts(values: pd.Series, column: str, decimal: str | None = None,
                   notes: list[str] | None = None) -> pd.Series:  # fmt: skip
    """A column's amounts as float64; text as exports write it (``$3,080.00``) is read.

    How written amounts were read (symbol, separators) is appended to ``notes``.
    """
    from rfmml.data._amounts import written_amounts

    if pd.api.types.is_bool_dtype(values.dtype):
        raise DataError(f"column {column!r} holds booleans, not amounts")
    if pd.api.types.is_numeric_dtype(values.dtype):
        parsed = values.astype("float64")
        missing = parsed.isna()
    else:
        parsed, missing = _text_numbers(values)
        bad = parsed.isna() & ~missing
        if bad.any():
            written, note = written_amounts(values[bad], column, decimal or ".")
            parsed = parsed.where(~bad, written.reindex(parsed.index))
            bad = parsed.isna() & ~missing
            if note and notes is not None and not bad.any():
                notes.append(note)
        if bad.any():
            raise DataError(
                f"column {column!r}: {int(bad.sum())} of {len(values)} values are not numbers "
                f"(first: {_quote(values[bad])}). {_number_hint(values[bad])}"
            )
    infinite = np.isinf(parsed.to_numpy())
    if infinite.any():
        raise DataError(
            f"column {column!r}: {int(infinite.sum())} of {len(values)} values are infinite"
        )
    check_amount_limit(parsed, column)
    return parsed


def amount_limit_error(column: str, n_bad: int, n: int, largest: Any) -> DataError:
    """The one-line error for amounts beyond :data:`AMOUNT_LIMIT` (every engine says this)."""
    return DataError(
        f"column {column!r}: {n_bad} of {n} values are {AMOUNT_LIMIT:,.0f} or more in size "
        f"(largest: {largest!r}); no purchase is that large: check the column mapping, the "
        "unit or how the numbers were parsed"
    )


def check_amount_limit(amounts: pd.Series, column: str = "amount") -> None:
    """Refuse amounts whose magnitude reaches :data:`AMOUNT_LIMIT` (NaN passes)."""
    if amounts.dtype == np.float64 and len(amounts):  # common case: no copy, no temporary
        plain = amounts.to_numpy()
        if plain.min() > -AMOUNT_LIMIT and plain.max() < AMOUNT_LIMIT:  # NaN: compared False
            return
    values = amounts.to_numpy(dtype=float, na_value=np.nan)
    with np.errstate(invalid="ignore"):
        big = np.abs(values) >= AMOUNT_LIMIT
    if big.any():
        flagged = values[big]
        largest = flagged[np.argmax(np.abs(flagged))].item()
        raise amount_limit_error(column, int(big.sum()), len(values), largest)


def _number_hint(bad: pd.Series) -> str:
    bare = bad.astype("string").str.replace(r"[^\d,.\-]", "", regex=True)
    if bare.str.fullmatch(r"-?\d+,\d+").fillna(False).any():
        return (
            "They look like decimal commas (2,50): pass decimal=',' (CLI --decimal ',', "
            'config [data] decimal = ",") for a CSV, or convert them to points.'
        )
    return (
        "Amounts are read as numbers, with at most one currency symbol and thousands "
        "separators that the column proves (1,234.50); convert other text first."
    )


def _plain_ids(ids: pd.Series) -> pd.Series:
    """Float ids (Parquet and pandas turn integer ids with gaps into floats) as written.

    Whole numbers become ``int64`` (``12346.0`` -> ``12346``), so that a CRM can
    join them; other float ids become their text, unchanged.
    """
    if not pd.api.types.is_float_dtype(ids.dtype):
        return ids
    values = ids.to_numpy(dtype="float64", na_value=np.nan)
    whole = np.isfinite(values) & (values == np.round(values)) & (np.abs(values) < 2.0**53)
    if whole.all():
        return pd.Series(values.astype("int64"), index=ids.index, name=ids.name)
    return ids.astype(str)


#: Whitespace trimmed from the ends of text customer ids (the DuckDB scan trims the same).
ID_PADDING = " \t\r\n"


def _trimmed_ids(frame: pd.DataFrame) -> tuple[pd.DataFrame, str]:
    """Text customer ids without the spaces around them, and a note counting those trimmed.

    A fixed-width or spreadsheet export pads some ids (``'  00123 '``); kept, they
    would make two customers of one. Ids that are not all text are left alone.
    """
    ids = frame["customer_id"]
    if not (ids.dtype == object or pd.api.types.is_string_dtype(ids.dtype)) or ids.empty:
        return frame, ""
    if pd.api.types.infer_dtype(ids, skipna=True) != "string":
        return frame, ""
    trimmed = ids.str.strip(ID_PADDING)
    changed = (trimmed != ids).to_numpy()
    if not changed.any():
        return frame, ""
    note = trimmed_ids_note(int(changed.sum()), ids[changed].iloc[0])
    return frame.assign(customer_id=trimmed), note


def trimmed_ids_note(n_ids: int, first: str) -> str:
    """The cleaning note on text ids trimmed of spaces (every engine says this)."""
    return (
        f"customer_id: {n_ids:,} ids had leading or trailing spaces, removed "
        f"({first!r} -> {first.strip(ID_PADDING)!r}), so that they join the customer's other rows"
    )


#: Customers whose several spellings a case note quotes.
_CASE_EXAMPLES = 2


def id_case_note(n_ids: int, n_keys: int, n_groups: int, n_rows_changed: int,
                 examples: list[list[str]], normalized: bool) -> str:  # fmt: skip
    """The cleaning note on text ids that differ only in case (every engine says this).

    ``n_ids`` distinct ids are ``n_keys`` once lower-cased; ``n_groups`` of
    those are written several ways; ``examples`` lists the spellings of the
    first of them (in order of their first row).
    """
    shown = "; ".join(" / ".join(repr(v) for v in sorted(group)) for group in examples)
    n_merged = n_ids - n_keys
    if normalized:
        if not n_merged:
            return (
                f"customer_id: normalize_ids lower-cased the ids of {n_rows_changed:,} rows; "
                "no two ids merged"
            )
        return (
            f"customer_id: normalize_ids lower-cased the ids of {n_rows_changed:,} rows; "
            f"{n_merged:,} ids written in other case merged into {n_groups:,} customers "
            f"(e.g. {shown})"
        )
    return (
        f"customer_id: {n_merged:,} ids differ from another only in upper/lower case "
        f"({n_groups:,} customers written several ways, e.g. {shown}) and count as other "
        "customers; pass normalize_ids=True (CLI --normalize-ids, config [data] normalize_ids) "
        "to lower-case the ids so that they join"
    )


def _text_ids(ids: pd.Series) -> bool:
    """Whether ``ids`` are text (the ids case and spaces apply to)."""
    if not (ids.dtype == object or pd.api.types.is_string_dtype(ids.dtype)) or ids.empty:
        return False
    return bool(pd.api.types.infer_dtype(ids, skipna=True) == "string")


def _id_case(frame: pd.DataFrame, normalize: bool) -> tuple[pd.DataFrame, str]:
    """Count the text ids that differ only in case; lower-case them with ``normalize``.

    Arrow kernels (``utf8_lower``, as DuckDB's ``lower``; distinct counts):
    rows whose id has a capital are counted first, and only when two ids
    merge are the distinct ids listed (in order of first appearance, for the
    examples).
    """
    import pyarrow as pa
    import pyarrow.compute as pc

    ids = frame["customer_id"]
    if not _text_ids(ids):
        return frame, ""
    spelled = pa.array(ids, type=pa.large_string(), from_pandas=True)
    ascii_only = bool(pc.all(pc.string_is_ascii(spelled)).as_py() is not False)
    lowered = pc.ascii_lower(spelled) if ascii_only else pc.utf8_lower(spelled)
    n_rows_changed = int(pc.sum(pc.not_equal(spelled, lowered)).as_py() or 0)
    if not n_rows_changed and not normalize:
        return frame, ""

    def distinct(values: Any) -> int:  # pandas' hash table: faster than count_distinct here
        return int(pd.Series(pd.arrays.ArrowExtensionArray(values)).nunique())

    n_ids, n_keys = distinct(spelled), distinct(lowered)
    examples: list[list[str]] = []
    n_several = 0
    if n_ids != n_keys:
        uniques = pd.unique(ids.dropna())  # in order of first appearance
        low = np.asarray(pc.utf8_lower(pa.array(uniques, type=pa.large_string())), dtype=object)
        key_codes, keys = pd.factorize(low)
        several = np.flatnonzero(np.bincount(key_codes, minlength=len(keys)) > 1)
        n_several = len(several)
        examples = [[str(v) for v in uniques[key_codes == key]] for key in several[:_CASE_EXAMPLES]]
    if not normalize and not n_several:
        return frame, ""
    note = id_case_note(n_ids, n_keys, n_several, n_rows_changed, examples, normalize)
    if normalize:
        merged = pd.Series(lowered.to_numpy(zero_copy_only=False), index=ids.index)
        frame = frame.assign(customer_id=merged.astype(ids.dtype))
    return frame, note


def _whole_number_text_ids(frame: pd.DataFrame, decimal: str) -> tuple[pd.DataFrame, str]:
    """A CSV's customer ids that are all whole numbers written as decimals, as integers' text.

    A spreadsheet or pandas export writes an integer id column that has gaps
    as floats (``17850.0``; ``17850,0`` with a decimal comma), while an export
    of the same customers without gaps writes ``17850``: two files of one
    customer base would not join. When every id of the column is such a
    whole number (digits, the decimal mark, zeros), the fraction is dropped
    (``17850.0`` -> ``17850``), as float ids are (:func:`_plain_ids`), and a
    cleaning note says so. Any other id (``007``, ``C-12``, ``1.5``) leaves
    the column unchanged.

    Returns
    -------
    frame : pandas.DataFrame
    note : str
        The cleaning note, or ``""`` when nothing changed.
    """
    ids = frame["customer_id"]
    if not (ids.dtype == object or pd.api.types.is_string_dtype(ids.dtype)) or ids.empty:
        return frame, ""
    mark = re.escape(decimal)
    text = ids.astype("string").str.strip()
    parts = text.str.extract(rf"^([+-]?\d+){mark}0+$", expand=False)
    if parts.isna().any():
        return frame, ""
    ids = pd.Series(parts.to_numpy(dtype=object), index=ids.index, dtype=ids.dtype)
    first = str(text.iloc[0])
    note = (
        f"customer_id: every id is a whole number written with a fraction ({first!r}); "
        f"read without it ({str(ids.iloc[0])!r}), so that exports with and without it join"
    )
    return frame.assign(customer_id=ids), note


#: Largest magnitude of an amount. Spend is summed exactly in units of 1e-9 (the
#: features, on DuckDB and Spark alike); 1e15 keeps every sum within that
#: arithmetic and is far above any purchase in any currency.
AMOUNT_LIMIT = 1e15
