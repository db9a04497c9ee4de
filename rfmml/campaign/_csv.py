"""Spreadsheet-safe CSV text built by DuckDB from Arrow batches, streamed to a file.

:func:`write_csv` writes the bytes pandas' ``to_csv`` writes for
:func:`rfmml.campaign.to_safe_csv` (``float_format="%.15g"``, CRLF line ends,
``True``/``False``, empty cells for missing values, RFC 4180 quoting, text
cells that could run as formulas prefixed with a single quote), without a
Python object per cell: each chunk of rows goes to Arrow, one DuckDB
statement turns every row into its line of text (``printf('%.15g', x)`` is
C's ``%.15g``, which Python's ``%`` operator also is), and the bytes of the
resulting Arrow string array are written as they are (the float cells of large
frames come formatted by a compiled loop instead, :mod:`rfmml.campaign._floattext`,
the same bytes without a ``printf`` per cell). Memory is bounded by
one chunk of rows. Text cells are prepared in Arrow before (:func:`text_cells`:
quoted and neutralised once per distinct value of a categorical or of a
dictionary-encoded column, not per row; about a quarter of DuckDB's time on
scored tables went to doing that per row).

Column kinds handled: numpy floats, integers and booleans, pandas nullable
integers, text (object columns holding only ``str``, pandas string columns,
categoricals of text) and naive datetimes whose values are all whole days or
all whole seconds. Any other kind returns ``False`` before anything is
written, and the caller writes with pandas.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np
import pandas as pd

from rfmml._compiled import compiled_module

__all__ = ["CHUNK_ROWS", "CsvChunks", "column_sql", "write_csv", "write_csv_batches"]

#: Rows per chunk converted to Arrow and formatted by DuckDB. Small enough that the
#: memory of one chunk's lines (about 200 bytes a row for scored tables) is reused
#: by the next instead of being fresh memory each time: with 500,000 rows a chunk,
#: five times as many page faults for the same CPU time outside them.
CHUNK_ROWS = 65_536

_NS_PER_DAY = 86_400 * 10**9
_NS_PER_SECOND = 10**9


def _q(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _text_sql(column: str) -> str:
    """A text cell whose Arrow values are already its CSV text (:func:`text_cells`)."""
    return f"coalesce(CAST({column} AS TEXT), '')"


#: a first character that could run as a formula (``exports.FORMULA_TRIGGERS``)
_TRIGGER_REGEX = r"^[=+\-@\t\r]"
#: characters that make a cell quoted (RFC 4180, as pandas' ``to_csv`` quotes)
_QUOTE_REGEX = '[",\r\n]'


def _text_values(values: Any) -> Any:
    """Arrow strings as CSV cells: formula triggers prefixed with ``'``, quoted if needed.

    A value starting with one of ``FORMULA_TRIGGERS`` gets a leading ``'``; one
    holding a double quote, comma, CR or LF is enclosed in double quotes with its
    double quotes doubled; nulls stay null. When no value needs either, the
    values pass through as they are.
    """
    import pyarrow as pa
    import pyarrow.compute as pc

    values = values.cast(pa.large_string())
    may_trigger, may_quote = _may_change(values)
    none = pa.scalar("", pa.large_string())  # the separator of the joins
    trigger = pc.match_substring_regex(values, _TRIGGER_REGEX) if may_trigger else None
    if trigger is not None and pc.any(trigger).as_py():
        prefix = pa.scalar("'", pa.large_string())
        values = pc.if_else(trigger, pc.binary_join_element_wise(prefix, values, none), values)
    quote = pc.match_substring_regex(values, _QUOTE_REGEX) if may_quote or may_trigger else None
    if quote is not None and pc.any(quote).as_py():
        mark = pa.scalar('"', pa.large_string())
        doubled = pc.replace_substring(values, '"', '""')
        values = pc.if_else(quote, pc.binary_join_element_wise(mark, doubled, mark, none), values)
    return values


#: bytes a value may start with to be a formula trigger, and bytes that make it quoted
_TRIGGER_BYTES = np.isin(np.arange(256), [ord(c) for c in "=+-@\t\r"])
_QUOTE_BYTES = (b'"', b",", b"\r", b"\n")


def _may_change(values: Any) -> tuple[bool, bool]:
    """Whether some value of a large-string array may start with a trigger, or need quotes.

    Read from the array's buffers (every value's first byte; all bytes) without
    a pass per value: ``False`` means no value does; ``True`` that one may
    (the bytes of a null slot count too), and the exact test follows.
    """
    offsets_buffer, data_buffer = values.buffers()[1:3]
    if data_buffer is None or len(values) == 0:
        return False, False
    offsets = np.frombuffer(offsets_buffer, dtype=np.int64)[
        values.offset : values.offset + len(values) + 1
    ]
    data = np.frombuffer(data_buffer, dtype=np.uint8)
    starts = offsets[:-1][np.diff(offsets) > 0]
    trigger = bool(_TRIGGER_BYTES[data[starts]].any())
    body = data[offsets[0] : offsets[-1]].tobytes()
    return trigger, any(mark in body for mark in _QUOTE_BYTES)


def text_cells(array: Any) -> Any:
    """The CSV cells of an Arrow text column (strings, or a dictionary of strings).

    A dictionary array keeps its indices and gets its dictionary formatted:
    once per distinct value instead of once per row. Strings that may need a
    change are dictionary-encoded first; others pass through as they are.

    Parameters
    ----------
    array : pyarrow.Array
        Strings, or a dictionary array of strings.

    Returns
    -------
    pyarrow.Array
        The cell text of every row (null where missing), same length.
    """
    import pyarrow as pa

    if not pa.types.is_dictionary(array.type):
        array = array.cast(pa.large_string())
        if not any(_may_change(array)):
            return array
        # text columns repeat few values (labels, actions): each formatted once
        array = array.dictionary_encode()
    return pa.DictionaryArray.from_arrays(array.indices, _text_values(array.dictionary))


def _datetime_format(values: np.ndarray) -> str | None:
    """The ``to_csv`` format pandas gives a naive datetime column, or ``None`` if not handled."""
    ns = values.astype("datetime64[ns]").view(np.int64)
    ns = ns[~np.isnat(values)]
    if np.all(ns % _NS_PER_DAY == 0):
        return "%Y-%m-%d"
    if np.all(ns % _NS_PER_SECOND == 0):
        return "%Y-%m-%d %H:%M:%S"
    return None


def column_sql(column: pd.Series, ref: str) -> str | None:
    """SQL turning column ``ref`` into its CSV cells as pandas writes them, or ``None``.

    Parameters
    ----------
    column : pandas.Series
        The whole column (formats that depend on every value, such as dates,
        are chosen from all of it).
    ref : str
        The quoted column reference in SQL.

    Returns
    -------
    str or None
        A VARCHAR expression, or ``None`` for a kind this writer leaves to pandas.
    """
    dtype = column.dtype
    if isinstance(dtype, pd.CategoricalDtype):
        if pd.api.types.infer_dtype(dtype.categories, skipna=False) != "string":
            return None
        return _text_sql(ref)
    if isinstance(dtype, pd.StringDtype):
        return _text_sql(ref)
    if isinstance(dtype, np.dtype):
        if dtype.kind == "b":
            return f"CASE WHEN {ref} THEN 'True' ELSE 'False' END"
        if dtype.kind == "f":
            return _float_sql(ref)
        if dtype.kind in "iu":
            return f"CAST({ref} AS VARCHAR)"
        if dtype.kind == "M":
            fmt = _datetime_format(column.to_numpy())
            return None if fmt is None else f"coalesce(strftime({ref}, '{fmt}'), '')"
        if dtype.kind == "O":
            if pd.api.types.infer_dtype(column, skipna=False) != "string":
                return None
            return _text_sql(ref)
        return None
    if pd.api.types.is_integer_dtype(dtype):  # pandas nullable integers
        return f"coalesce(CAST({ref} AS VARCHAR), '')"
    return None


def _header(names: list[Any]) -> bytes:
    from rfmml.campaign.exports import FORMULA_TRIGGERS

    cells = []
    for name in names:
        text = str(name)
        if isinstance(name, str) and name.startswith(FORMULA_TRIGGERS):
            text = "'" + text
        if any(c in text for c in '",\r\n'):
            text = '"' + text.replace('"', '""') + '"'
        cells.append(text)
    return (",".join(cells) + "\r\n").encode("utf-8")


def _string_bytes(array: Any) -> memoryview:
    """The UTF-8 bytes of an Arrow string array's values, back to back (no copy)."""
    import pyarrow as pa

    if not (pa.types.is_string(array.type) or pa.types.is_large_string(array.type)):
        array = array.cast(pa.large_string())
    buffers = array.buffers()
    width = np.int64 if pa.types.is_large_string(array.type) else np.int32
    offsets = np.frombuffer(buffers[1], dtype=width)
    start, end = int(offsets[array.offset]), int(offsets[array.offset + len(array)])
    if buffers[2] is None:
        return memoryview(b"")
    return memoryview(buffers[2])[start:end]


def _lines_sql(expressions: list[str]) -> str:
    parts = ", ',', ".join(expressions)
    # ORDER BY: DuckDB may hand back a scan of some Arrow columns (dictionaries) out of order
    return f"SELECT concat({parts}, chr(13), chr(10)) AS line FROM batch ORDER BY _i"


def write_csv_batches(
    batches: Iterable[Any], expressions: list[str], names: list[Any], out: BinaryIO
) -> int:
    """Write the header and the lines of Arrow record batches; return the rows written.

    Parameters
    ----------
    batches : iterable of pyarrow.RecordBatch
        The rows, in the order given by their int64 column ``_i``.
    expressions : list of str
        One SQL expression per column (:func:`column_sql`), over ``batch``.
    names : list
        Column names for the header (text names neutralised, then quoted, here).
    out : binary file
        Destination, open for writing.
    """
    import duckdb

    out.write(_header(names))
    sql = _lines_sql(expressions)
    rows = 0
    con = duckdb.connect()
    try:
        con.execute("SET preserve_insertion_order = true")
        for batch in batches:
            con.register("batch", batch)
            lines = con.sql(sql).to_arrow_table().column("line")
            con.unregister("batch")
            for chunk in lines.chunks:
                out.write(_string_bytes(chunk))
            rows += batch.num_rows
    finally:
        con.close()
    return rows


def _float_sql(ref: str) -> str:
    return f"coalesce(printf('%.15g', CAST({ref} AS DOUBLE)), '')"


#: Rows of a frame from which its float cells are formatted by the compiled loop
#: (:mod:`rfmml.campaign._floattext`) rather than by DuckDB's ``printf`` (the same
#: bytes), by what the process has loaded: importing numba and loading the loop
#: take about 2 s, loading the loop once numba is imported about 0.35 s, and the
#: loop saves about 0.5 us a row of a scored table (eight float columns).
COMPILED_FLOAT_ROWS = {"nothing": 4_000_000, "numba": 700_000, "loop": 1}


def _compiled_floats(n_rows: int) -> bool:
    """Whether a frame of ``n_rows`` rows takes the compiled loop (never without numba)."""
    import sys

    loaded = ("loop" if "rfmml.campaign._floattext" in sys.modules
              else "numba" if "numba" in sys.modules else "nothing")  # fmt: skip
    if n_rows < COMPILED_FLOAT_ROWS[loaded]:
        return False
    return compiled_module("rfmml.campaign._floattext") is not None


def _batch_sql(expressions: list[str], compiled: bool = True) -> list[str]:
    """The expressions over :func:`_pandas_batches`' batches: float columns as their text."""
    if not compiled:
        return expressions
    return [_text_sql(_q(f"c{i}")) if sql == _float_sql(_q(f"c{i}")) else sql
            for i, sql in enumerate(expressions)]  # fmt: skip


def _pandas_batches(
    frame: pd.DataFrame,
    chunk_rows: int,
    expressions: list[str],
    scratch: dict[int, dict[str, np.ndarray]] | None = None,
    compiled: bool = True,
) -> Iterator[Any]:
    """Arrow batches of ``frame``'s rows, text columns as their cells (:func:`text_cells`).

    With ``compiled``, float columns come as their text too (the bytes of
    ``printf('%.15g')`` without a ``printf`` per cell,
    :func:`~rfmml.campaign._floattext.g15_cells`): the batches
    are read with :func:`_batch_sql` of ``expressions``. Their text is written in
    ``scratch`` (one entry per column, kept between calls): a batch is valid until
    the next one is asked for.
    """
    import pyarrow as pa

    names = [f"c{i}" for i in range(frame.shape[1])] + ["_i"]
    text = {i for i, sql in enumerate(expressions) if sql == _text_sql(_q(f"c{i}"))}
    floats: set[int] = set()
    if compiled:
        from rfmml.campaign._floattext import g15_cells

        floats = {i for i, sql in enumerate(expressions) if sql == _float_sql(_q(f"c{i}"))}
    scratch = {} if scratch is None else scratch
    for start in range(0, len(frame), chunk_rows):
        chunk = frame.iloc[start : start + chunk_rows]
        arrays = [g15_cells(chunk.iloc[:, i].to_numpy(), scratch.setdefault(i, {})) if i in floats
                  else pa.array(chunk.iloc[:, i], from_pandas=True)
                  for i in range(chunk.shape[1])]  # fmt: skip
        arrays = [text_cells(a) if i in text else a for i, a in enumerate(arrays)]
        arrays.append(pa.array(np.arange(len(chunk), dtype=np.int64)))
        yield pa.RecordBatch.from_arrays(arrays, names=names)


def write_csv(frame: pd.DataFrame, path: Path, chunk_rows: int = CHUNK_ROWS) -> bool:
    """Write ``frame`` as spreadsheet-safe CSV, as pandas would; ``False`` if a kind is not handled.

    The frame's text cells are neutralised here (the caller passes it
    un-neutralised); nothing is written when ``False`` is returned.

    Parameters
    ----------
    frame : pandas.DataFrame
        The flat table (no index written).
    path : pathlib.Path
        Destination file.
    chunk_rows : int
        Rows per Arrow chunk.

    Returns
    -------
    bool
        Whether the file was written.
    """
    expressions = frame_columns_sql(frame)
    if expressions is None:
        return False
    names = list(frame.columns)
    with open(path, "wb") as out:
        compiled = _compiled_floats(len(frame))
        batches = _pandas_batches(frame, chunk_rows, expressions, compiled=compiled)
        write_csv_batches(batches, _batch_sql(expressions, compiled), names, out)
    return True


def frame_columns_sql(frame: pd.DataFrame) -> list[str] | None:
    """The SQL of every column (:func:`column_sql`), or None when one is not handled.

    MultiIndex columns are not handled: pandas writes one header row per level.
    """
    if isinstance(frame.columns, pd.MultiIndex):
        return None
    expressions = []
    for i in range(frame.shape[1]):
        sql = column_sql(frame.iloc[:, i], _q(f"c{i}"))
        if sql is None:
            return None
        expressions.append(sql)
    return expressions


class CsvChunks:
    """Append pandas chunks to one spreadsheet-safe CSV: the bytes :func:`write_csv` writes.

    The SQL of each column is chosen on the first chunk (:func:`column_sql`) and
    must be the same for every later chunk (a date column whose values are whole
    days in one chunk and not in another would be written in two formats; that
    raises). When a kind is not handled, every chunk goes through pandas' ``to_csv``
    (neutralised cells, the header once), which writes the same bytes for chunks as
    for the whole table.

    Parameters
    ----------
    out : binary file
        Destination, open for writing.
    """

    def __init__(self, out: BinaryIO) -> None:
        self.out = out
        self._expressions: list[str] | None = None
        self._pandas = False
        self._con: Any = None
        self._started = False
        self._scratch: dict[int, dict[str, np.ndarray]] = {}

    def write(self, frame: pd.DataFrame) -> None:
        """Append the rows of ``frame`` (flat, not neutralised; the header with the first)."""
        if not self._started:
            self._started = True
            self._expressions = frame_columns_sql(frame)
            self._pandas = self._expressions is None
            if not self._pandas:
                import duckdb

                self.out.write(_header(list(frame.columns)))
                self._con = duckdb.connect()
                self._con.execute("SET preserve_insertion_order = true")
        elif not self._pandas and frame_columns_sql(frame) != self._expressions:
            raise RuntimeError(
                "CSV chunks: a column's kind or format changed from one chunk to the next "
                "(e.g. dates with and without a time of day); write the table in one piece"
            )
        if self._pandas:
            self._write_pandas(frame)
            return
        assert self._expressions is not None
        compiled = _compiled_floats(len(frame))
        sql = _lines_sql(_batch_sql(self._expressions, compiled))
        batches = _pandas_batches(frame, CHUNK_ROWS, self._expressions, self._scratch, compiled)
        for batch in batches:
            self._con.register("batch", batch)
            lines = self._con.sql(sql).to_arrow_table().column("line")
            self._con.unregister("batch")
            for chunk in lines.chunks:
                self.out.write(_string_bytes(chunk))

    def _write_pandas(self, frame: pd.DataFrame) -> None:
        import io

        from rfmml.campaign.exports import _CSV_FLOAT, neutralize_cells

        text = io.StringIO()
        neutralize_cells(frame).to_csv(
            text, index=False, header=self.out.tell() == 0, encoding="utf-8",
            lineterminator="\r\n", float_format=_CSV_FLOAT,
        )  # fmt: skip
        self.out.write(text.getvalue().encode("utf-8"))

    def close(self) -> None:
        """Release the DuckDB connection (the file stays open: the caller's)."""
        if self._con is not None:
            self._con.close()
            self._con = None
        self._scratch.clear()
