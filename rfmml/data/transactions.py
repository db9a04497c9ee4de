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

import contextlib
import logging
import lzma
import re
import warnings
import zipfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, NamedTuple

import numpy as np
import pandas as pd

from rfmml._compiled import WARM_MIN_ROWS, in_background, warm_numba
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


_SEPARATORS = (",", ";", "\t", "|")


#: The separator of a file whose columns are aligned with spaces.
_WHITESPACE = r"\s+"

#: Compressed text files pandas reads by their suffix (``orders.csv.gz``).
_COMPRESSED = frozenset({".gz", ".zip", ".bz2", ".xz"})


def _read_csv(path: Path, schema: TransactionSchema, encoding: str | None,
              separator: str | None,
              decimal: str | None = None) -> tuple[pd.DataFrame, TransactionSchema]:  # fmt: skip
    """Read the mapped columns of a delimited text file, finding its separator.

    Returns the frame and the schema (with a recognised currency column).
    """
    where = repr(str(path))
    encoding = encoding or _utf16_bom(path) or "utf-8"
    decimal = decimal or "."
    if len(decimal) != 1 or decimal.isalnum() or decimal.isspace():
        raise DataError(f"decimal= must be one mark such as '.' or ',', got {decimal!r}")
    if separator is not None:
        if separator == decimal:
            raise DataError(
                f"separator and decimal mark are both {decimal!r}; a CSV with decimal commas "
                "separates its fields with something else (often ';')"
            )
        candidates: tuple[str, ...] = (separator,)
    elif path.suffix.lower() == ".tsv":
        candidates = ("\t", *_SEPARATORS)
    else:
        candidates = _SEPARATORS
    candidates = tuple(c for c in candidates if c != decimal)
    best: list[str] = []
    sep = candidates[0]
    try:
        for candidate in candidates:
            header = list(pd.read_csv(path, sep=candidate, nrows=0, encoding=encoding).columns)
            if all(c in header for c in schema.source_columns):
                sep, best = candidate, header
                break
            if len(header) > len(best):
                sep, best = candidate, header
        if separator is None and len(best) == 1 and len(str(best[0]).split()) > 1:
            # one column whose name holds spaces: columns aligned with spaces (a text
            # dump such as CDNOW_master.txt), read with runs of whitespace as the separator
            header = list(pd.read_csv(path, sep=_WHITESPACE, nrows=0, encoding=encoding).columns)
            if len(header) > 1:
                sep, best = _WHITESPACE, header
                candidates = (*candidates, "whitespace")
        if not all(c in best for c in schema.source_columns):
            missing = [c for c in schema.source_columns if c not in best]
            tried = (
                "separator " + repr(sep)
                if separator
                else ("separators " + ", ".join(repr(c) for c in candidates))
            )
            raise DataError(
                f"column(s) {missing} not found in {where} (tried {tried}); columns read: "
                f"{best}.{_close_names(missing, best)}{_likely_mapping(schema, missing, best)} "
                "Map your own names with customer=, timestamp=, amount= (CLI --customer, "
                "--timestamp, --amount), or name the separator with separator= (CLI "
                "--separator)."
            )
        schema = with_currency_column(schema, best)
        dtypes = {schema.customer: str}
        if schema.order is not None:
            dtypes[schema.order] = str
        frame = pd.read_csv(
            path, sep=sep, usecols=schema.source_columns, dtype=dtypes, encoding=encoding,
            decimal=decimal,
        )  # fmt: skip
        # pandas cuts a row with more fields than the header to the selected columns
        # without a word (an unquoted 1,234.50 becomes an amount of 1): refuse such rows
        # (with whitespace as the separator pandas itself refuses them)
        n_wide, first = 0, ""
        if sep != _WHITESPACE:
            n_wide, first = _rows_wider_than_header(path, sep, encoding, len(best))
        if n_wide:
            raise DataError(
                f"transaction file {where}: {n_wide:,} of {len(frame):,} rows have more fields "
                f"than the header's {len(best)} (first: {first[:80]!r}); a separator inside "
                "an unquoted value (a thousands separator as in 1,234.50, or a comma in a "
                "text field) shifts the columns. Quote such values in the export, or name the "
                "separator with separator= (CLI --separator)"
            )
        return frame, schema
    except pd.errors.EmptyDataError:
        raise DataError(f"transaction file {where} is empty (no header, no rows)") from None
    except UnicodeDecodeError as exc:
        raise DataError(
            f"transaction file {where} is not valid {encoding} text (it holds byte "
            f"0x{exc.object[exc.start : exc.start + 1].hex()}); pass "
            "encoding= (CLI --encoding), e.g. 'latin-1' or 'cp1252'"
        ) from None
    except LookupError:
        raise DataError(f"unknown text encoding {encoding!r} for {where}") from None
    except pd.errors.ParserError as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else "parser error"
        raise DataError(
            f"transaction file {where} is not a well-formed table with separator {sep!r} "
            f"({first}); name the separator with separator= (CLI --separator)"
        ) from None


def _utf16_bom(path: Path) -> str | None:
    """``"utf-16"`` for a text file that starts with a UTF-16 byte-order mark, else None.

    Spreadsheets save "Unicode text" so; read as UTF-8 its first byte is refused.
    """
    if path.suffix.lower() in _COMPRESSED:
        return None
    try:
        with path.open("rb") as file:
            start = file.read(2)
    except OSError:
        return None
    return "utf-16" if start in (b"\xff\xfe", b"\xfe\xff") else None


def _ascii_bytes(encoding: str) -> bool:
    """Whether every byte below 0x80 of ``encoding`` text is that ASCII character."""
    import codecs

    name = codecs.lookup(encoding).name
    if name in ("utf-8", "utf-8-sig"):
        return True
    try:  # single-byte code pages (cp1252, latin-1): one character per byte
        return len(bytes(range(256)).decode(name, errors="replace")) == 256 and (
            bytes(range(128)).decode(name) == "".join(map(chr, range(128)))
        )
    except (UnicodeDecodeError, LookupError):
        return False


def _n_fields(line: str, sep: str) -> int:
    """Fields of one CSV line: separators outside double quotes, plus one."""
    quoted, n = False, 1
    for char in line:
        if char == '"':
            quoted = not quoted
        elif char == sep and not quoted:
            n += 1
    return n


#: Errors of a file the width check cannot read (it then does not judge the file).
_UNREADABLE = (OSError, ValueError, UnicodeError, EOFError, zipfile.BadZipFile, lzma.LZMAError)


@contextlib.contextmanager
def _decompressed(path: Path) -> Iterator[Any]:
    """What Arrow's CSV reader reads for ``path``: the path, or a stream of its text.

    Arrow decompresses ``.gz`` and ``.bz2`` files by their suffix but reads a
    ``.zip`` or ``.xz`` file as bytes (no rows): those are opened here, a zip
    archive's one file as pandas reads it.
    """
    suffix = path.suffix.lower()
    if suffix == ".xz":
        with lzma.open(path, "rb") as stream:
            yield stream
    elif suffix == ".zip":
        with zipfile.ZipFile(path) as archive:
            names = archive.namelist()
            if len(names) != 1:  # pandas refuses these before the check runs
                raise ValueError(f"{len(names)} files in {str(path)!r}")
            with archive.open(names[0]) as stream:
                yield stream
    else:
        yield path


def _rows_wider_than_header(path: Path, sep: str, encoding: str,
                            n_columns: int) -> tuple[int, str]:  # fmt: skip
    """Count a CSV's data rows with more fields than its header; return it and the first.

    One pass of Arrow's CSV parser (quotes and quoted line breaks as pandas reads
    them) that converts no column; the rows are only counted, by a second pass,
    when the first finds a row of another width. A file Arrow cannot parse
    (an archive it does not open, quoting it reads otherwise) is not judged:
    ``(0, "")``.
    """
    import pyarrow as pa
    import pyarrow.csv as pcsv

    names = [f"f{i}" for i in range(n_columns)]
    convert = pcsv.ConvertOptions(include_columns=names[:1], column_types={names[0]: pa.binary()})

    def scan(encoding: str | None, handler: Any = None) -> None:
        read = pcsv.ReadOptions(column_names=names, skip_rows=1, encoding=encoding or "utf8")
        parse = pcsv.ParseOptions(delimiter=sep, newlines_in_values=True,
                                  invalid_row_handler=handler)  # fmt: skip
        with (
            _decompressed(path) as source,
            pcsv.open_csv(
                source, read_options=read, parse_options=parse, convert_options=convert
            ) as reader,
        ):
            for _ in reader:
                pass

    try:  # the bytes as they are (no transcoding) where the separators are ASCII bytes
        scan(None if _ascii_bytes(encoding) else encoding)
        return 0, ""
    except (pa.ArrowException, *_UNREADABLE):
        pass
    wide: list[str] = []

    def handler(row: Any) -> str:
        # empty fields after the last column (a separator ending each line) carry nothing
        if (
            row.actual_columns > row.expected_columns
            and _n_fields(row.text.rstrip("\r\n").rstrip(sep + " "), sep) > n_columns
        ):
            wide.append(row.text)
        return "skip"

    try:
        scan(encoding, handler)
    except (pa.ArrowException, *_UNREADABLE):
        return 0, ""
    return len(wide), (wide[0].rstrip("\r\n") if wide else "")


def _load(source: Any, schema: TransactionSchema, encoding: str | None = None,
          separator: str | None = None,
          decimal: str | None = None) -> tuple[pd.DataFrame, str, TransactionSchema]:  # fmt: skip
    """Load ``source`` as a pandas frame of the mapped columns; return it, its kind, the schema.

    The schema returned has the source's currency column when one is recognised
    (:func:`with_currency_column`).
    """
    if isinstance(source, str | Path):
        path = Path(source)
        if not path.exists():
            raise DataError(f"transaction file {str(path)!r} does not exist")
        if path.is_dir():
            raise DataError(
                f"{str(path)!r} is a folder; expected a CSV or Parquet file (for a partitioned "
                "Parquet folder, read it with pandas or polars and pass the frame)"
            )
        suffix = path.suffix.lower()
        if suffix in {".parquet", ".pq"}:
            import pyarrow as pa
            import pyarrow.parquet as pq

            try:
                available = pq.read_schema(path).names
            except (pa.ArrowInvalid, OSError) as exc:
                raise DataError(
                    f"{str(path)!r} is not a readable Parquet file ({str(exc).splitlines()[0]})"
                ) from None
            _check_columns(schema, available, str(path))
            schema = with_currency_column(schema, available)
            return pd.read_parquet(path, columns=schema.source_columns), "pandas", schema
        if suffix in {".csv", ".txt", ".tsv", *_COMPRESSED}:
            frame, schema = _read_csv(path, schema, encoding, separator, decimal)
            return frame, "pandas", schema
        if suffix in {".xlsx", ".xlsm", ".xls", ".ods"}:
            raise DataError(
                f"cannot read {str(path)!r}: a spreadsheet is not read directly; save the sheet "
                "as CSV, or read it with pandas.read_excel and pass the DataFrame"
            )
        raise DataError(
            f"cannot read {str(path)!r}: expected a .csv, .tsv, .txt (also compressed: "
            f"{', '.join(sorted(_COMPRESSED))}) or .parquet file, got suffix {suffix!r}"
        )
    if isinstance(source, pd.DataFrame):
        _check_columns(schema, list(source.columns), "the DataFrame")
        schema = with_currency_column(schema, list(source.columns))
        return source.loc[:, schema.source_columns].copy(), "pandas", schema
    module = type(source).__module__.split(".")[0]
    if module == "polars":
        import polars as pl

        if isinstance(source, pl.LazyFrame):
            source = source.collect()
        _check_columns(schema, list(source.columns), "the polars DataFrame")
        schema = with_currency_column(schema, list(source.columns))
        return source.select(schema.source_columns).to_pandas(), "polars", schema
    raise TypeError(
        "read_transactions takes a CSV or Parquet path, a pandas DataFrame or a polars "
        f"DataFrame; got {type(source).__name__}. For Spark or DuckDB data, pass the frame "
        "with canonical column names straight to rfmml.features."
    )


def with_currency_column(schema: TransactionSchema, available: list[Any]) -> TransactionSchema:
    """``schema`` with the source's currency column, when it has one and none is mapped.

    A column named ``currency`` (any case, spaces around) is recognised, as an
    export's ``Currency`` column; one mapped to another role is left alone.
    """
    if schema.currency is not None:
        return schema
    named = [c for c in available if str(c).strip().casefold() == "currency"]
    if len(named) != 1 or named[0] in schema.source_columns:
        return schema
    import dataclasses

    return dataclasses.replace(schema, currency=named[0])


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


def _check_columns(schema: TransactionSchema, available: list[str], where: str) -> None:
    missing = [c for c in schema.source_columns if c not in available]
    if missing:
        raise DataError(
            f"column(s) {missing} not found in {where}; available columns: {list(available)}."
            f"{_close_names(missing, list(available))}"
            f"{_likely_mapping(schema, missing, list(available))} Map your own names with "
            "customer=, timestamp=, amount=, group=, order= (or quantity= and price=; CLI "
            "--customer, --timestamp, ...)."
        )


#: Words in an export's column names that say which column plays which role.
_ROLE_WORDS = {
    "customer": ("customer", "client", "email", "e-mail", "kunde", "buyer", "member",
                 "account", "contact", "user"),
    "timestamp": ("date", "time", "created", "datum", "ordered", "paid"),
    "amount": ("total", "amount", "revenue", "value", "betrag", "sales", "spend", "umsatz",
               "price", "sum"),
}  # fmt: skip


def _likely_mapping(schema: TransactionSchema, missing: list[str], available: list[Any]) -> str:
    """A hint naming the export's columns that look like the missing customer, time and amount."""
    import shlex

    picked: list[str] = []
    used = set(schema.source_columns)
    for role, words in _ROLE_WORDS.items():
        if getattr(schema, role) not in missing:
            continue
        for held in available:
            text = str(held).casefold()
            if held not in used and any(word in text for word in words):
                picked.append(f"--{role} {shlex.quote(str(held))}")
                used.add(held)
                break
    if not picked or len(available) < 2:
        return ""
    return f" Likely: {' '.join(picked)}."


def _close_names(missing: list[str], available: list[Any]) -> str:
    """A hint naming the columns that differ from a mapped name only in spaces or capitals."""
    pairs = []
    for name in missing:
        key = str(name).strip().casefold()
        pairs += [f"{held!r} for {name!r}" for held in available
                  if str(held).strip().casefold() == key]  # fmt: skip
    if not pairs:
        return ""
    return f" Differing only in spaces or capitals: {', '.join(pairs)}; map the name as written."


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
        parsed, tz = _epoch_seconds(values, column), EPOCH_ZONE
    else:
        missing = values.isna() | (values.astype("string").str.strip() == "")
        raw = values.where(~missing)
        if pd.api.types.is_numeric_dtype(values.dtype) and timestamp_format is None:
            numbers = pd.to_numeric(raw, errors="coerce").dropna()
            serial = ""
            if len(numbers) and numbers.between(*_SERIAL_DAYS).all():
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


def _epoch_seconds(values: pd.Series, column: str) -> pd.Series:
    """Seconds since 1970-01-01 UTC (numbers or their text) as naive UTC datetimes."""
    numbers, missing = _text_numbers(values)
    bad = numbers.isna() & ~missing
    if bad.any():
        raise DataError(
            f"column {column!r}: {int(bad.sum())} of {len(values)} values are not seconds since "
            f"1970-01-01 (first: {_quote(values[bad])}); timestamp_format={EPOCH_SECONDS!r} "
            "reads Unix time"
        )
    seconds = numbers.to_numpy()
    with np.errstate(invalid="ignore"):
        large = np.abs(seconds) >= _EPOCH_LIMIT
    if large.any():
        raise DataError(
            f"column {column!r}: {int(large.sum())} of {len(values)} values are past the year "
            f"5000 as seconds since 1970-01-01 (first: {_quote(values[large])}); they look like "
            "milliseconds or microseconds: divide them to seconds first"
        )
    micros = np.round(seconds * 1e6)
    stamps = pd.Series(micros, index=values.index).astype("Int64").astype("datetime64[us]")
    return stamps


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
    first = ids[changed].iloc[0]
    note = (
        f"customer_id: {int(changed.sum()):,} ids had leading or trailing spaces, removed "
        f"({first!r} -> {first.strip(ID_PADDING)!r}), so that they join the customer's other rows"
    )
    return frame.assign(customer_id=trimmed), note


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


def future_rows_note(n_future: int, n_rows: int, tomorrow, customer_id, timestamp) -> str:
    """The cleaning note (and warning) for rows dated after ``tomorrow``."""
    return (
        f"removed {n_future:,} of {n_rows:,} rows dated in the future (after "
        f"{tomorrow.date()}; first: customer_id={customer_id!r} at "
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
    if n_early:
        customer, stamp = first_early or (None, None)
        parts.append(
            f"{n_early:,} of {n_rows:,} rows are dated over a year before the rest of the log, "
            f"which starts {start.date()} (first: customer_id={customer!r} at {stamp}); drop "
            f"them with since='{start.date()}' (CLI --since {start.date()})"
        )
    if n_late:
        customer, stamp = first_late or (None, None)
        parts.append(
            f"{n_late:,} of {n_rows:,} rows are dated over a year after the rest of the log, "
            f"which ends {end.date()} (first: customer_id={customer!r} at {stamp}); drop them "
            f"with until='{end.date()}' (CLI --until {end.date()})"
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
#: Largest magnitude of an amount. Spend is summed exactly in units of 1e-9 (the
#: features, on DuckDB and Spark alike); 1e15 keeps every sum within that
#: arithmetic and is far above any purchase in any currency.
AMOUNT_LIMIT = 1e15
OBSERVATION_END_MARGIN_DAYS = 90
"""How far an observation end may lie past the last transaction without an explicit opt-in."""


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
    elif tz == EPOCH_ZONE:
        report.notes.append(
            "timestamps read as seconds since 1970-01-01 UTC, in UTC wall-clock time"
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
        from rfmml.data._scan import ScannedLog

        return Transactions(ScannedLog.from_pandas(frame), report)
    if report.rows_removed or report.rows_merged:
        logger.info("read_transactions cleaned the log:\n%s", report)
    if kind == "polars":
        import polars as pl

        return Transactions(pl.from_pandas(frame), report)
    return Transactions(frame, report)


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
        what = "customer id, time or total" if order_amounts else "customer id or time"
        what += " (or currency)" if "_currency" in frame.columns else ""
        report.notes.append(
            f"{int(filled.sum()):,} order lines without their order's {what} (exports write "
            "them on an order's first line only) took them from the order's other lines"
        )
    return frame


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
        report.notes.append(
            f"{column}: no row has the state(s) {unmatched} (states in the log: "
            f"{held[: _SHOW * 2]}{', ...' if len(held) > _SHOW * 2 else ''}); check their spelling"
        )
    return frame.loc[~hit].drop(columns="_status")


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
    last = frame["timestamp"].max()
    gap = end - last
    if gap > pd.Timedelta(days=OBSERVATION_END_MARGIN_DAYS):
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
    return frame


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
    from rfmml.data._scan import Unsupported, scan_parquet

    suffix = path.suffix.lower()
    if suffix not in {".parquet", ".pq"} or not path.is_file():
        if engine == "duckdb" and path.is_file():
            return "read and cleaned by pandas: CSV files are parsed by pandas"
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
