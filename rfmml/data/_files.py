"""Reading stage of :mod:`rfmml.data.transactions`: files and frames into a pandas frame.

Finds a source's mapped columns (with hints when they are missing) and its
currency column, and reads CSV files: separator sniffing, text aligned with
spaces, UTF-16 byte-order marks, compressed files (``.gz``, ``.zip``, ``.bz2``,
``.xz``) and the check for rows wider than the header; also Parquet files,
pandas and polars frames (:func:`_load`). Nothing here parses or cleans values.
"""

from __future__ import annotations

import contextlib
import lzma
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from rfmml.data._json import is_json_path, read_json_frame
from rfmml.errors import DataError

if TYPE_CHECKING:
    from rfmml.data.transactions import TransactionSchema

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
        candidates = ("\t", *(c for c in _SEPARATORS if c != "\t"))
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
        if is_json_path(path):
            frame = read_json_frame(path)
            _check_columns(schema, list(frame.columns), str(path))
            schema = with_currency_column(schema, list(frame.columns))
            return frame.loc[:, schema.source_columns], "pandas", schema
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
            f"{', '.join(sorted(_COMPRESSED))}), .parquet, or JSON (.jsonl, .ndjson, .json) "
            f"file, got suffix {suffix!r}"
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
    "timestamp": ("date", "time", "created", "datum", "ordered", "paid", "purchased", "placed",
                  "when"),
    "amount": ("total", "amount", "revenue", "value", "betrag", "sales", "spend", "umsatz",
               "sum"),
}  # fmt: skip

#: Words of columns that hold dates but not of the purchases (a birthday, a sign-up).
_NOT_ROLE_WORDS = {"timestamp": ("birth", "dob", "signup", "sign-up", "registered", "expir")}

#: Words of the columns of an invoice-line export: quantity, unit price, order id.
_QUANTITY_WORDS = ("quantity", "qty", "menge", "anzahl", "units")
_PRICE_WORDS = ("price", "preis")
_ORDER_WORDS = ("invoice", "receipt", "rechnung", "beleg")
_ORDER_ID_WORDS = ("id", "no", "number", "nr", "#")


def _first_with(available: list[Any], used: set[Any], words: tuple[str, ...],
                unlike: tuple[str, ...] = ()) -> Any:  # fmt: skip
    """The first column not in ``used`` whose name holds one of ``words`` and none of ``unlike``."""
    for held in available:
        text = str(held).casefold()
        if (held not in used and any(word in text for word in words)
                and not any(word in text for word in unlike)):  # fmt: skip
            return held
    return None


def _order_column(available: list[Any], used: set[Any]) -> Any:
    """A column that looks like an order or invoice id (``InvoiceNo``, ``Order ID``)."""
    for held in available:
        text = str(held).casefold()
        if held in used:
            continue
        if any(word in text for word in _ORDER_WORDS) or (
            "order" in text and any(word in text for word in _ORDER_ID_WORDS)
            and not any(word in text for words in _ROLE_WORDS.values() for word in words)
        ):  # fmt: skip
            return held
    return None


def _likely_mapping(schema: TransactionSchema, missing: list[str], available: list[Any]) -> str:
    """A hint naming the export's columns that look like the missing customer, time and amount.

    A missing amount is looked for as a total (``Order Total``, ``Revenue``);
    failing that, an invoice-line export's quantity and unit price columns are
    named (``--quantity Quantity --price UnitPrice``, with ``--order`` for an
    invoice id column), as a unit price is not what a customer spent; a price
    column alone comes last.
    """
    import shlex

    picked: list[str] = []
    used = set(schema.source_columns)

    def pick(option: str, held: Any) -> None:
        picked.append(f"--{option} {shlex.quote(str(held))}")
        used.add(held)

    for role, words in _ROLE_WORDS.items():
        if getattr(schema, role) not in missing:
            continue
        held = _first_with(available, used, words, _NOT_ROLE_WORDS.get(role, ()))
        if held is not None:
            pick(role, held)
            continue
        if role != "amount":
            continue
        quantity = _first_with(available, used, _QUANTITY_WORDS)
        price = _first_with(available, used | {quantity}, _PRICE_WORDS)
        if quantity is not None and price is not None:
            pick("quantity", quantity)
            pick("price", price)
            order = _order_column(available, used) if schema.order is None else None
            if order is not None:
                pick("order", order)
        elif price is not None:
            pick("amount", price)
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
