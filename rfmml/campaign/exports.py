"""Exports: spreadsheet-safe CSV, salted id hashing, and the predictions files.

Spreadsheet applications run a cell that begins with ``=``, ``+``, ``-`` or ``@``
as a formula (CSV injection: ``=HYPERLINK(...)`` in a customer id or a product
name). Following the OWASP "CSV Injection" guidance, :func:`neutralize_cells`
prefixes such text cells, and those beginning with a tab or a carriage return,
with a single quote, so the spreadsheet shows them as text. Numeric columns are
left alone: ``-3.5`` in a float column is a number, not a formula.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import re
from collections.abc import Collection, Iterable, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from rfmml._documents import encode, replacing, write_document
from rfmml._threads import thread_count
from rfmml.campaign import _csv, _parquet
from rfmml.campaign._background import BackgroundCalls, BackgroundFile
from rfmml.errors import DataError

__all__ = [
    "FORMULA_TRIGGERS",
    "HASH_COLUMN",
    "hash_customer_ids",
    "neutralize_cells",
    "read_predictions",
    "replacing",
    "to_safe_csv",
    "write_predictions",
    "write_predictions_chunks",
]

#: First characters that make a spreadsheet treat a text cell as a formula.
FORMULA_TRIGGERS = ("=", "+", "-", "@", "\t", "\r")

#: Name of the column holding hashed customer ids in exports.
HASH_COLUMN = "customer_id_sha256"

#: Threads encoding a predictions file's row groups at most (one chunk of rows each, held
#: while it is encoded: memory grows with them); fewer where fewer cores may be used.
PARQUET_WORKERS = 2
#: Cores a streamed export leaves to the scoring of the next chunks (its two threads):
#: the row groups are encoded on the cores past these, else on one writing thread. On
#: two cores a second encoding thread only competes with the scoring (10M-row job:
#: the stage 1.39-1.51 s against 1.29-1.35, 0.4 CPU s more).
SCORING_CORES = 2

PREDICTIONS_FORMAT = "rfmml-predictions"
PREDICTIONS_FORMAT_VERSION = 1
_FORMATS = ("parquet", "csv")


def _neutralize_value(value: object) -> object:
    if isinstance(value, str) and value.startswith(FORMULA_TRIGGERS):
        return "'" + value
    return value


def _is_text_column(series: pd.Series) -> bool:
    dtype = series.dtype
    if isinstance(dtype, pd.CategoricalDtype):
        dtype = dtype.categories.dtype
    return not (
        pd.api.types.is_numeric_dtype(dtype)
        or pd.api.types.is_bool_dtype(dtype)
        or pd.api.types.is_datetime64_any_dtype(dtype)
        or pd.api.types.is_timedelta64_dtype(dtype)
    )


def neutralize_cells(frame: pd.DataFrame) -> pd.DataFrame:
    """Copy of ``frame`` whose text cells cannot run as spreadsheet formulas.

    Every text cell (in object, string or categorical columns, and the column
    names) beginning with one of :data:`FORMULA_TRIGGERS` (``=``, ``+``, ``-``,
    ``@``, tab, carriage return) gets a leading single quote: ``"=1+2"`` becomes
    ``"'=1+2"`` and ``"-1+2"`` becomes ``"'-1+2"``. Numbers are not text and stay
    as they are, negative ones included, even in object columns.

    Parameters
    ----------
    frame : pandas.DataFrame
        Any frame; the input is not modified.

    Returns
    -------
    pandas.DataFrame
        Same shape and index; changed text columns become object dtype.

    References
    ----------
    OWASP, "CSV Injection", https://owasp.org/www-community/attacks/CSV_Injection
    """
    if not isinstance(frame, pd.DataFrame):
        raise TypeError(f"neutralize_cells expects a pandas DataFrame, got {type(frame).__name__}.")
    out = frame.copy()
    for position in range(out.shape[1]):
        column = out.iloc[:, position]
        if not _is_text_column(column):
            continue
        if isinstance(column.dtype, pd.CategoricalDtype) and not any(
            isinstance(c, str) and c.startswith(FORMULA_TRIGGERS) for c in column.cat.categories
        ):
            continue  # no category can be a formula: skip the per-cell scan
        values = column.to_numpy(dtype=object, na_value=None)
        risky = np.fromiter(
            (isinstance(v, str) and v.startswith(FORMULA_TRIGGERS) for v in values),
            dtype=bool,
            count=len(values),
        )
        if risky.any():
            fixed = values.copy()
            fixed[risky] = ["'" + v for v in values[risky]]
            out.isetitem(position, pd.Series(fixed, index=out.index, dtype=object))
    out.columns = [_neutralize_value(c) for c in out.columns]
    return out


def _flat(frame: pd.DataFrame) -> pd.DataFrame:
    """The frame with its index as leading columns unless they are columns already."""
    index = frame.index
    if isinstance(index, pd.RangeIndex) and index.names == [None]:
        return frame.reset_index(drop=True)
    names = [n for n in index.names if n is not None]
    if len(names) == index.nlevels and all(n in frame.columns for n in names):
        return frame.reset_index(drop=True)
    return frame.reset_index()


# 15 significant digits: what a float64 holds exactly, without the binary noise of the
# 16th and 17th (100.50000000000001 is written 100.5)
_CSV_FLOAT = "%.15g"


def _tidy_ids(frame: pd.DataFrame) -> pd.DataFrame:
    """Float ``*_id`` columns of whole numbers as integers (``12346``, not ``12346.0``)."""
    out = frame
    for position in range(frame.shape[1]):
        column = frame.iloc[:, position]
        if not (pd.api.types.is_float_dtype(column.dtype) and str(column.name).endswith("_id")):
            continue
        values = column.to_numpy(dtype="float64", na_value=np.nan)
        finite = values[np.isfinite(values)]
        if np.array_equal(finite, np.round(finite)):
            out = out.copy() if out is frame else out
            out.isetitem(position, column.astype("Int64"))
    return out


def to_safe_csv(frame: pd.DataFrame, path: str | Path) -> Path:
    """Write a spreadsheet-safe UTF-8 CSV (see :func:`neutralize_cells`).

    Rows end with CRLF as in RFC 4180, so a cell holding a line break or a
    carriage return is quoted and reads back as one cell. Floats are written
    with 15 significant digits (``100.5``, not ``100.50000000000001``); a float ``*_id`` column of
    whole numbers is written as integers (``12346``, not ``12346.0``). The
    file is written through a temporary file and renamed (:func:`replacing`).

    A named index is written as leading column(s) unless the frame already holds
    them as columns (as :func:`~rfmml.campaign.score_customers` tables do); an
    unnamed default index is not written.

    Parameters
    ----------
    frame : pandas.DataFrame
        Table to write.
    path : str or pathlib.Path
        Destination file; parent directories are created.

    Returns
    -------
    pathlib.Path
        The written path.
    """
    path = Path(path)
    tidy = _tidy_ids(_flat(frame))
    with replacing(path) as temporary:
        # the DuckDB writer (same bytes) pays ~20 ms to start: small tables take pandas
        if len(tidy) >= _DUCKDB_CSV_ROWS and _csv.write_csv(tidy, temporary):
            return path  # it neutralises the text cells itself
        safe = neutralize_cells(tidy)
        if not _write_csv_fast(safe, temporary):
            safe.to_csv(
                temporary,
                index=False,
                encoding="utf-8",
                lineterminator="\r\n",
                float_format=_CSV_FLOAT,
            )
    return path


_CSV_CHUNK = 200_000
#: Rows from which :func:`to_safe_csv` writes through DuckDB (:mod:`rfmml.campaign._csv`)
_DUCKDB_CSV_ROWS = 20_000
#: A text cell holding one of these characters is quoted (RFC 4180)
_NEEDS_QUOTES = re.compile(r'[",\r\n]').search


def _csv_cells(column: pd.Series) -> list[str] | None:
    """The CSV text of one column as pandas writes it, or ``None`` for kinds left to pandas."""
    dtype = column.dtype
    if isinstance(dtype, pd.CategoricalDtype):
        if not pd.api.types.is_string_dtype(dtype.categories.dtype) or column.isna().any():
            return None
        column = column.astype(object)
        dtype = column.dtype
    if isinstance(dtype, np.dtype) and dtype.kind == "b":
        return ["True" if v else "False" for v in column.tolist()]
    if pd.api.types.is_float_dtype(dtype) and isinstance(dtype, np.dtype):
        return ["" if v != v else _CSV_FLOAT % v for v in column.tolist()]
    if pd.api.types.is_integer_dtype(dtype):
        if column.isna().any():
            return ["" if v is pd.NA else str(v) for v in column.tolist()]
        return [str(v) for v in column.tolist()]
    if pd.api.types.is_string_dtype(dtype) or (isinstance(dtype, np.dtype) and dtype.kind == "O"):
        values = column.tolist()
        if not all(isinstance(v, str) for v in values):
            return None
        # one compiled search per cell: what pandas' str.contains runs per cell too,
        # without its per-call cost (lists of a few customers are written by the hundred)
        for i, value in enumerate(values):
            if _NEEDS_QUOTES(value) is not None:
                values[i] = '"' + value.replace('"', '""') + '"'
        return values
    return None


def _write_csv_fast(frame: pd.DataFrame, path: Path) -> bool:
    """Write ``frame`` as pandas' ``to_csv`` would (same bytes), in chunks of rows.

    pandas formats each float through ``float_format`` in a slow per-cell path;
    here each column of a chunk becomes its text in one pass and the rows are
    joined once. Returns ``False``, writing nothing, when a column is of a kind
    left to pandas (dates, mixed objects, categories of numbers).
    """
    for position in range(frame.shape[1]):  # check the kinds before writing anything
        if _csv_cells(frame.iloc[:0, position]) is None:
            return False
    header = [str(c) for c in frame.columns]
    header_cells = _csv_cells(pd.Series(header, dtype=object))
    if header_cells is None:
        return False
    with open(path, "w", encoding="utf-8", newline="") as out:
        out.write(",".join(header_cells) + "\r\n")
        for start in range(0, len(frame), _CSV_CHUNK):
            chunk = frame.iloc[start : start + _CSV_CHUNK]
            columns = [_csv_cells(chunk.iloc[:, i]) for i in range(chunk.shape[1])]
            if any(c is None for c in columns):  # a chunk with missing categories
                return False
            out.write("".join(",".join(row) + "\r\n" for row in zip(*columns, strict=True)))
    return True


def hash_customer_ids(ids: Iterable[Any], salt: str) -> pd.Series:
    """Salted SHA-256 of customer ids, for sharing lists outside the data team.

    ``hash = sha256((salt + ":" + str(customer_id)).encode("utf-8")).hexdigest()``

    The same id and salt always give the same 64-character lowercase hex string,
    so a partner given the salt can match lists, and two runs with one salt give
    joinable files. Customer ids are short and guessable, so keep the salt
    secret: anyone holding it can hash candidate ids and reverse the mapping.
    Integer ids hash as their decimal text (``1`` and ``"1"`` match).

    Parameters
    ----------
    ids : iterable
        Customer ids (a Series or Index keeps its index in the result).
    salt : str
        Secret, non-empty text.

    Returns
    -------
    pandas.Series
        Hex digests named ``customer_id_sha256``.

    Raises
    ------
    ValueError
        If ``salt`` is missing or empty, or an id is missing.
    TypeError
        If ``salt`` is not text.
    """
    if salt is None or (isinstance(salt, str) and not salt):
        raise ValueError(
            "hash_customer_ids needs a non-empty salt (a secret string shared only with the "
            "people who must match ids); without one, ids could be recovered by hashing guesses."
        )
    if not isinstance(salt, str):
        raise TypeError(f"salt must be text (str), got {type(salt).__name__}.")
    if isinstance(ids, pd.Series):
        index, values = ids.index, ids.to_numpy(dtype=object)
    elif isinstance(ids, pd.Index):
        index, values = None, ids.to_numpy(dtype=object)
    else:
        index, values = None, np.asarray(list(ids), dtype=object)
    missing = pd.isna(values)
    if missing.any():
        raise ValueError(
            f"hash_customer_ids: {int(missing.sum())} of {len(values)} customer ids are missing; "
            "drop them before hashing."
        )
    prefix = (salt + ":").encode("utf-8")
    digests = [hashlib.sha256(prefix + _id_text(v).encode("utf-8")).hexdigest() for v in values]
    return pd.Series(digests, index=index, name=HASH_COLUMN, dtype=object)


def _id_text(value: object) -> str:
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and value.is_integer():
        value = int(value)  # 12346.0 hashes as 12346, as the integer id does
    return str(value)


def _json_safe(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_safe(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return encode(value)  # the document codec's convention: NaN null, inf "inf"
    if value is None or isinstance(value, bool | int | float | str):
        return value
    return str(value)


def _check_formats(formats: Sequence[str]) -> tuple[str, ...]:
    if isinstance(formats, str):
        formats = (formats,)
    chosen = tuple(formats)
    bad = [f for f in chosen if f not in _FORMATS]
    if bad or not chosen:
        raise ValueError(
            f"formats must be a non-empty subset of {list(_FORMATS)}, got {list(chosen)}."
        )
    return chosen


def _output_folder(
    out_dir: str | Path, fingerprints: Any, formats: Sequence[str]
) -> tuple[tuple[str, ...], Path]:
    """Check the fingerprints and formats of a predictions write; create its folder."""
    if not isinstance(fingerprints, Mapping):
        raise TypeError(
            "fingerprints must be a dict of name -> fingerprint, e.g. "
            f"{{'bgnbd': model.training_fingerprint_}}, got {type(fingerprints).__name__}."
        )
    chosen = _check_formats(formats)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    return chosen, out


def write_predictions(
    table: pd.DataFrame,
    out_dir: str | Path,
    *,
    fingerprints: dict,
    formats: Sequence[str] = ("parquet", "csv"),
) -> dict[str, Path]:
    """Write a predictions table as Parquet and spreadsheet-safe CSV, with metadata.

    Files in ``out_dir``: ``predictions.parquet`` (types kept; the index is
    stored as the leading column(s), see :func:`read_predictions`),
    ``predictions.csv`` (:func:`to_safe_csv`) and ``predictions.meta.json``::

        {"format": "rfmml-predictions", "format_version": 1,
         "rfmml_version": "...", "created": "<UTC ISO 8601>",
         "n_rows": ..., "columns": [...], "index": ["customer_id", ...],
         "fingerprints": {...}, "scoring": {<table.attrs>}, "files": {...}}

    Parameters
    ----------
    table : pandas.DataFrame
        Output of :func:`~rfmml.campaign.score_customers` (any frame works).
    out_dir : str or pathlib.Path
        Destination folder (created).
    fingerprints : dict
        Model and data fingerprints recorded in the metadata, e.g.
        ``{"bgnbd": bgnbd.training_fingerprint_, "transactions": "sha256:..."}``.
    formats : sequence of {"parquet", "csv"}
        Table formats to write; the metadata file is always written.

    Returns
    -------
    dict of str to pathlib.Path
        ``"parquet"``, ``"csv"`` (those requested) and ``"meta"``.

    Raises
    ------
    TypeError
        If ``fingerprints`` is not a dict.
    ValueError
        Unknown formats.
    """
    if not isinstance(table, pd.DataFrame):
        raise TypeError(f"write_predictions expects a DataFrame, got {type(table).__name__}.")
    chosen, out = _output_folder(out_dir, fingerprints, formats)
    flat = _flat(table)
    index_names = [n for n in table.index.names if n is not None]
    if isinstance(table.index, pd.RangeIndex) and not index_names:
        index_names = []
    paths: dict[str, Path] = {}
    if "parquet" in chosen:
        paths["parquet"] = out / "predictions.parquet"
        with replacing(paths["parquet"]) as temporary:
            # in chunks (no second whole copy), their row groups encoded on the writer's threads
            workers = min(thread_count(), PARQUET_WORKERS)
            _parquet.write_parquet(flat, temporary, workers=workers)
    if "csv" in chosen:
        paths["csv"] = to_safe_csv(flat, out / "predictions.csv")
    meta = {
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "n_rows": len(flat),
        "columns": [str(c) for c in flat.columns],
        "index": index_names,
        "fingerprints": _json_safe(dict(fingerprints)),
        "scoring": _json_safe(dict(table.attrs)),
        "files": {k: p.name for k, p in paths.items()},
    }
    paths["meta"] = out / "predictions.meta.json"
    with replacing(paths["meta"]) as temporary:
        write_document(temporary, PREDICTIONS_FORMAT, PREDICTIONS_FORMAT_VERSION, meta)
    return paths


def write_predictions_chunks(
    chunks: Iterable[pd.DataFrame],
    out_dir: str | Path,
    *,
    fingerprints: dict,
    formats: Sequence[str] = ("parquet", "csv"),
    integer_ids: Collection[str] = (),
    n_rows_hint: int | None = None,
    as_text: Collection[str] = (),
) -> tuple[dict[str, Path], int, list[str]]:
    """:func:`write_predictions` of a table that comes in chunks of rows, one chunk in memory.

    Each chunk (consecutive rows of one predictions table, same columns and
    ``attrs``) is appended to ``predictions.parquet`` (one row group per chunk)
    and ``predictions.csv`` as it comes; the files are those
    :func:`write_predictions` writes for the concatenated table (same Parquet
    content, same CSV bytes), and ``predictions.meta.json`` counts every row.

    Parameters
    ----------
    chunks : iterable of pandas.DataFrame
        The table's rows, in order (at least one chunk).
    out_dir : str or pathlib.Path
        Destination folder (created).
    fingerprints : dict
        As :func:`write_predictions`.
    formats : sequence of {"parquet", "csv"}
        Table formats to write.
    integer_ids : collection of str
        Float ``*_id`` columns holding only whole numbers in the whole table:
        written as integers in the CSV (what :func:`to_safe_csv` decides from all
        rows, which a chunk cannot).
    n_rows_hint : int, optional
        The table's rows, when known: a table of at most
        :data:`rfmml.campaign._parquet.CHUNK_ROWS` rows gets its ``attrs`` in the
        Parquet schema, as :func:`write_predictions` writes it.
    as_text : collection of str
        Columns that the chunks hold as categoricals of text but the files
        store as text: the files are those of the same chunks with these
        columns as strings (the default string dtype), and the Parquet encoder
        takes each chunk's labels and codes instead of one string per customer
        (:class:`~rfmml.campaign._parquet.ParquetChunks`).

    Returns
    -------
    paths : dict of str to pathlib.Path
        ``"parquet"``, ``"csv"`` (those requested) and ``"meta"``.
    n_rows : int
        Rows written.
    columns : list of str
        Columns of the files.
    """
    chosen, out = _output_folder(out_dir, fingerprints, formats)
    paths: dict[str, Path] = {}
    n_rows = 0
    first: pd.DataFrame | None = None
    attrs: dict = {}
    with contextlib.ExitStack() as stack:
        parquet = csv = None
        # the Parquet chunks and the CSV lines are encoded in two background threads (and
        # the CSV bytes written in a third) while the caller scores the next chunk: their
        # loops release Python's lock (see _background)
        background = csv_calls = None
        if "parquet" in chosen:
            paths["parquet"] = out / "predictions.parquet"
            small = n_rows_hint is not None and n_rows_hint <= _parquet.CHUNK_ROWS
            temporary = stack.enter_context(replacing(paths["parquet"]))
            # several chunks: each encoded on one of the writer's threads (at most that many
            # held), their row groups joined into the file in order; else one writing thread
            spare = thread_count() - SCORING_CORES
            workers = 1 if small else max(1, min(spare, PARQUET_WORKERS))
            parquet = _parquet.ParquetChunks(temporary, with_attrs=small, workers=workers,
                                             as_text=as_text)  # fmt: skip
            stack.callback(parquet.close)
            if workers == 1:  # depth 0: one chunk in the thread at a time, one here (memory)
                background = stack.enter_context(BackgroundCalls(depth=0, name="rfmml-parquet"))
        if "csv" in chosen:
            paths["csv"] = out / "predictions.csv"
            handle = stack.enter_context(open(stack.enter_context(replacing(paths["csv"])), "wb"))
            csv = _csv.CsvChunks(stack.enter_context(BackgroundFile(handle)))
            stack.callback(csv.close)
            csv_calls = stack.enter_context(BackgroundCalls(depth=0, name="rfmml-csv"))
        for chunk in chunks:
            if not isinstance(chunk, pd.DataFrame):
                raise TypeError(f"chunks must be DataFrames, got {type(chunk).__name__}.")
            flat = _flat(chunk)
            if first is None:
                first = chunk.iloc[:0]
            attrs = dict(chunk.attrs)
            if parquet is not None:
                # converted here (in chunk order), encoded and written in the threads
                if background is not None:
                    background.submit(parquet.write_arrow, parquet.arrow(flat))
                else:
                    parquet.write_arrow(parquet.arrow(flat))
            if csv is not None:
                # its own frame object (the columns shared): the two threads read it apart
                tidy = flat.copy(deep=False)
                for name in integer_ids:
                    if name in tidy.columns and pd.api.types.is_float_dtype(tidy[name].dtype):
                        tidy[name] = tidy[name].astype("Int64")
                assert csv_calls is not None
                csv_calls.submit(csv.write, tidy)
            n_rows += len(flat)
            del flat, chunk
        if first is None:
            raise DataError("write_predictions_chunks: no chunks (0 rows) to write.")
        if parquet is not None:
            if background is not None:
                background.close()
            parquet.close()
        if csv_calls is not None:
            csv_calls.close()
    index_names = [n for n in first.index.names if n is not None]
    if isinstance(first.index, pd.RangeIndex) and not index_names:
        index_names = []
    columns = [str(c) for c in _flat(first).columns]
    meta = {
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "n_rows": n_rows,
        "columns": columns,
        "index": index_names,
        "fingerprints": _json_safe(dict(fingerprints)),
        "scoring": _json_safe(attrs),
        "files": {k: p.name for k, p in paths.items()},
    }
    paths["meta"] = out / "predictions.meta.json"
    with replacing(paths["meta"]) as temporary:
        write_document(temporary, PREDICTIONS_FORMAT, PREDICTIONS_FORMAT_VERSION, meta)
    return paths, n_rows, columns


def _predictions_file(path: str | Path) -> Path:
    """The ``predictions.parquet`` at ``path``: the file itself, or the one in that folder.

    Raises
    ------
    DataError
        No such file.
    """
    path = Path(path)
    if path.is_dir():
        path = path / "predictions.parquet"
    if not path.is_file():
        raise DataError(
            f"no predictions file at {str(path)!r}; write one with write_predictions first."
        )
    return path


def read_predictions(
    path: str | Path, columns: Sequence[str] | None = None, *, text_as_category: bool = False
) -> pd.DataFrame:
    """Read back a ``predictions.parquet`` written by :func:`write_predictions`.

    Parameters
    ----------
    path : str or pathlib.Path
        The Parquet file or the folder holding it. When
        ``predictions.meta.json`` sits beside it, its ``index`` restores the
        customer index (the key columns stay as columns too) and its ``scoring``
        becomes ``attrs``.
    columns : sequence of str, optional
        Read only these columns (those absent from the file are skipped) and
        the index keys; default every column. Reading a few columns of a large
        file takes a fraction of the memory.
    text_as_category : bool, default False
        Text columns other than the index keys (segment, action, ...) as pandas
        categoricals: one small integer per row instead of one string, the
        same values.

    Returns
    -------
    pandas.DataFrame

    Raises
    ------
    DataError
        If the file does not exist or is not Parquet, or the metadata is not rfmml's.
    """
    path = _predictions_file(path)
    meta_path = path.with_name(path.name.removesuffix(".parquet") + ".meta.json")
    meta = None
    if meta_path.is_file():
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
        if not isinstance(meta, dict) or meta.get("format") != PREDICTIONS_FORMAT:
            raise DataError(
                f"{meta_path} is not rfmml predictions metadata "
                f'(missing "format": "{PREDICTIONS_FORMAT}").'
            )
    try:
        table = _read_parquet_columns(path, columns, meta, text_as_category)
    except (OSError, ValueError) as exc:
        raise DataError(f"cannot read predictions from {str(path)!r}: {exc}") from exc
    if meta is not None:
        keys = [k for k in meta.get("index", []) if k in table.columns]
        if keys:
            table.index = (
                pd.Index(table[keys[0]], name=keys[0])
                if len(keys) == 1
                else pd.MultiIndex.from_frame(table[keys])
            )
        table.attrs = dict(meta.get("scoring", {}))
    return table


def _read_parquet_columns(
    path: Path, columns: Sequence[str] | None, meta: dict | None, text_as_category: bool
) -> pd.DataFrame:
    """``pd.read_parquet(path)``, of some columns (and the index keys), text as categoricals."""
    if columns is None and not text_as_category:
        return pd.read_parquet(path)
    import pyarrow as pa
    import pyarrow.parquet as pq

    schema = pq.read_schema(path)  # read once: the columns kept and the text ones
    index = set((meta or {}).get("index", []))
    if columns is not None:
        wanted = set(columns) | index
        columns = [c for c in schema.names if c in wanted]  # the file's order, as pandas
    if not text_as_category:
        return pd.read_parquet(path, columns=columns)
    text = [  # labels, not the customer keys: read as dictionaries, never as strings
        f.name for f in schema
        if f.name not in index and (columns is None or f.name in columns)
        and (pa.types.is_string(f.type) or pa.types.is_large_string(f.type))
    ]  # fmt: skip
    arrow = pq.read_table(path, columns=columns, read_dictionary=text)
    # column by column, each Arrow column freed once converted: about one copy at a time
    return arrow.to_pandas(split_blocks=True, self_destruct=True)
