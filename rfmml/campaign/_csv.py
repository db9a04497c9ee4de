"""Spreadsheet-safe CSV text built by DuckDB from Arrow batches, streamed to a file.

:func:`write_csv` writes the bytes pandas' ``to_csv`` writes for
:func:`rfmml.campaign.to_safe_csv` (``float_format="%.15g"``, CRLF line ends,
``True``/``False``, empty cells for missing values, RFC 4180 quoting, text
cells that could run as formulas prefixed with a single quote), without a
Python object per cell: each chunk of rows goes to Arrow, one DuckDB
statement turns every row into its line of text (``printf('%.15g', x)`` is
C's ``%.15g``, which Python's ``%`` operator also is), and the bytes of the
resulting Arrow string array are written as they are. Large frames take
compiled loops instead, the same bytes: float cells by
:mod:`rfmml.campaign._floattext` (no ``printf`` per cell), integer cells by
:mod:`rfmml.campaign._linetext`, which also joins each row's cells into its
line (no string value per cell and per line); the bytes go to the file in a
background thread (:mod:`rfmml.campaign._background`). Memory is bounded by
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

from collections.abc import Iterator
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np
import pandas as pd

from rfmml._compiled import compiled_module
from rfmml.campaign._background import BackgroundFile

__all__ = ["CHUNK_ROWS", "CsvChunks", "column_kind", "column_sql", "write_csv"]

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


def column_kind(column: pd.Series) -> tuple[str, str] | None:
    """How the CSV writer formats ``column``: its kind and format, or ``None`` (pandas writes it).

    Parameters
    ----------
    column : pandas.Series
        The whole column (formats that depend on every value, such as dates,
        are chosen from all of it).

    Returns
    -------
    tuple of (str, str) or None
        ``("text", "")``, ``("bool", "")``, ``("float", "")``, ``("int", "")``,
        ``("nullable_int", "")`` or ``("datetime", strftime format)``.
    """
    dtype = column.dtype
    if isinstance(dtype, pd.CategoricalDtype):
        if pd.api.types.infer_dtype(dtype.categories, skipna=False) != "string":
            return None
        return "text", ""
    if isinstance(dtype, pd.StringDtype):
        return "text", ""
    if isinstance(dtype, np.dtype):
        if dtype.kind == "b":
            return "bool", ""
        if dtype.kind == "f":
            return "float", ""
        if dtype.kind in "iu":
            return "int", ""
        if dtype.kind == "M":
            fmt = _datetime_format(column.to_numpy())
            return None if fmt is None else ("datetime", fmt)
        if dtype.kind == "O":
            if pd.api.types.infer_dtype(column, skipna=False) != "string":
                return None
            return "text", ""
        return None
    if pd.api.types.is_integer_dtype(dtype):  # pandas nullable integers
        return "nullable_int", ""
    return None


def column_sql(column: pd.Series, ref: str) -> str | None:
    """SQL turning column ``ref`` into its CSV cells as pandas writes them, or ``None``.

    Parameters
    ----------
    column : pandas.Series
        The whole column (:func:`column_kind`).
    ref : str
        The quoted column reference in SQL.

    Returns
    -------
    str or None
        A VARCHAR expression, or ``None`` for a kind this writer leaves to pandas.
    """
    kind = column_kind(column)
    return None if kind is None else _kind_sql(kind, ref)


def _kind_sql(kind: tuple[str, str], ref: str) -> str:
    """The SQL of a column of kind ``kind`` (:func:`column_kind`) referenced as ``ref``."""
    name, fmt = kind
    if name == "text":
        return _text_sql(ref)
    if name == "bool":
        return f"CASE WHEN {ref} THEN 'True' ELSE 'False' END"
    if name == "float":
        return f"coalesce(printf('%.15g', CAST({ref} AS DOUBLE)), '')"
    if name == "int":
        return f"CAST({ref} AS VARCHAR)"
    if name == "datetime":
        return f"coalesce(strftime({ref}, '{fmt}'), '')"
    return f"coalesce(CAST({ref} AS VARCHAR), '')"  # nullable integers


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


#: Rows of a frame from which its lines are built by the compiled loops
#: (:mod:`rfmml.campaign._floattext`, :mod:`rfmml.campaign._linetext`) rather than by
#: DuckDB (the same bytes), by what the process has loaded: importing numba and
#: loading the float loop take about 2 s, loading it once numba is imported about
#: 0.35 s, and the float loop alone saves about 0.5 us a row of a scored table
#: (eight float columns).
COMPILED_FLOAT_ROWS = {"nothing": 4_000_000, "numba": 700_000, "loop": 1}


def _compiled_floats(n_rows: int) -> bool:
    """Whether a frame of ``n_rows`` rows takes the compiled loops (never without numba)."""
    import sys

    loaded = ("loop" if "rfmml.campaign._floattext" in sys.modules
              else "numba" if "numba" in sys.modules else "nothing")  # fmt: skip
    if n_rows < COMPILED_FLOAT_ROWS[loaded]:
        return False
    return all(compiled_module(f"rfmml.campaign.{name}") is not None
               for name in ("_floattext", "_linetext"))  # fmt: skip


def _pandas_batches(frame: pd.DataFrame, chunk_rows: int, expressions: list[str]) -> Iterator[Any]:
    """Arrow batches of ``frame``'s rows, its text columns as their cells (:func:`text_cells`)."""
    import pyarrow as pa

    names = [f"c{i}" for i in range(frame.shape[1])] + ["_i"]
    text = {i for i, sql in enumerate(expressions) if sql == _text_sql(_q(f"c{i}"))}
    for start in range(0, len(frame), chunk_rows):
        chunk = frame.iloc[start : start + chunk_rows]
        arrays = [pa.array(chunk.iloc[:, i], from_pandas=True) for i in range(chunk.shape[1])]
        arrays = [text_cells(a) if i in text else a for i, a in enumerate(arrays)]
        arrays.append(pa.array(np.arange(len(chunk), dtype=np.int64)))
        yield pa.RecordBatch.from_arrays(arrays, names=names)


def _ranges(array: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """An Arrow text array (large strings or a dictionary of them) as byte ranges.

    Returns the bytes the cells lie in and each row's start and end in them;
    a null is an empty range (an empty cell).
    """
    import pyarrow as pa

    indices = None
    if pa.types.is_dictionary(array.type):
        indices, values = array.indices, array.dictionary
    else:
        values = array
    if not pa.types.is_large_string(values.type):
        values = values.cast(pa.large_string())
    if len(values) == 0:  # no text at all (a dictionary of nothing: every row null)
        nothing = np.zeros(len(array), dtype=np.int64)
        return np.zeros(0, dtype=np.uint8), nothing, nothing
    offsets_buffer, data_buffer = values.buffers()[1:3]
    offsets = np.frombuffer(offsets_buffer, dtype=np.int64)[
        values.offset : values.offset + len(values) + 1
    ]
    data = (np.frombuffer(data_buffer, dtype=np.uint8) if data_buffer is not None
            else np.zeros(0, dtype=np.uint8))  # fmt: skip
    if indices is None:
        starts, ends = offsets[:-1], offsets[1:]
    else:
        codes = indices.fill_null(0).to_numpy(zero_copy_only=False)
        starts, ends = offsets[:-1][codes], offsets[1:][codes]
    if array.null_count:
        empty = array.is_null().to_numpy(zero_copy_only=False)
        ends = np.where(empty, starts, ends)
    return data, starts, ends


_BOOL_TEXT = np.frombuffer(b"FalseTrue", dtype=np.uint8)


def _cell_ranges(
    values: pd.Series, kind: tuple[str, str], scratch: dict[str, np.ndarray]
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The CSV cells of one column's rows as byte ranges (:func:`_ranges`), by its kind."""
    import pyarrow as pa
    import pyarrow.compute as pc

    name, fmt = kind
    if name == "float":
        from rfmml.campaign._floattext import g15_cells

        return _ranges(g15_cells(values.to_numpy(), scratch))
    if name == "bool":
        true = values.to_numpy(dtype=bool)
        return _BOOL_TEXT, np.where(true, 5, 0), np.where(true, 9, 5)
    if name == "int" and values.dtype.kind == "i":
        from rfmml.campaign._linetext import int_cells

        return int_cells(values.to_numpy(), scratch)
    if name in ("int", "nullable_int"):
        return _ranges(pa.array(values, from_pandas=True).cast(pa.large_string()))
    if name == "datetime":
        # a column repeats few dates: each distinct one formatted once
        stamps = pa.array(values.to_numpy().astype("datetime64[s]"), from_pandas=True)
        distinct = stamps.dictionary_encode()
        text = pc.strftime(distinct.dictionary, format=fmt)
        return _ranges(pa.DictionaryArray.from_arrays(distinct.indices, text))
    return _ranges(text_cells(pa.array(values, from_pandas=True)))


def _write_lines(
    frame: pd.DataFrame,
    kinds: list[tuple[str, str]],
    out: BackgroundFile,
    scratch: dict[int, dict[str, np.ndarray]],
    chunk_rows: int = CHUNK_ROWS,
) -> None:
    """Append the lines of ``frame`` to ``out``, joined by the compiled loop (:mod:`._linetext`).

    The same bytes as the DuckDB statement of :func:`_lines_sql` (tests): each
    column's cells as byte ranges (:func:`_cell_ranges`), the lines of a chunk
    of rows joined into a buffer of ``out``'s pool, written in its thread.
    """
    from rfmml.campaign._linetext import join_lines, line_bytes

    k = len(kinds)
    for start in range(0, len(frame), chunk_rows):
        chunk = frame.iloc[start : start + chunk_rows]
        n = len(chunk)
        parts = []
        for i, kind in enumerate(kinds):
            parts.append(_cell_ranges(chunk.iloc[:, i], kind, scratch.setdefault(i, {})))
        sizes = [len(p[0]) for p in parts]
        data = scratch.setdefault(-1, {})
        if len(data.get("bytes", ())) < sum(sizes):
            data["bytes"] = np.empty(int(sum(sizes) * 1.25) + 64, dtype=np.uint8)
        if data.get("starts", np.empty((0, 0))).shape != (n, k):
            for key in ("starts", "ends", "by_column"):
                data[key] = np.empty((n, k), dtype=np.int64)
        joined, starts, ends = data["bytes"], data["starts"], data["ends"]
        # filled column by column (contiguous), then transposed: a row's cells side by side
        by_column = data["by_column"].reshape(k, n)
        for target, side in ((starts, 1), (ends, 2)):
            base = 0
            for j, part in enumerate(parts):
                np.add(part[side], base, out=by_column[j])
                base += len(part[0])
            target[...] = by_column.T
        base = 0
        for cells, _, _ in parts:
            joined[base : base + len(cells)] = cells
            base += len(cells)
        del parts
        buffer = out.buffer(line_bytes(starts, ends))
        used = join_lines(joined, starts, ends, buffer)
        out.write_buffer(buffer, used)


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
    kinds = frame_columns_kinds(frame)
    if kinds is None:
        return False
    with open(path, "wb") as out:
        writer = CsvChunks(out, chunk_rows)
        try:
            writer._write(frame, kinds)  # formats chosen on the whole frame, written in chunks
        finally:
            writer.close()
    return True


def frame_columns_kinds(frame: pd.DataFrame) -> list[tuple[str, str]] | None:
    """The kind of every column (:func:`column_kind`), or None when one is not handled.

    MultiIndex columns are not handled: pandas writes one header row per level.
    """
    if isinstance(frame.columns, pd.MultiIndex):
        return None
    kinds = []
    for i in range(frame.shape[1]):
        kind = column_kind(frame.iloc[:, i])
        if kind is None:
            return None
        kinds.append(kind)
    return kinds


def _expressions(kinds: list[tuple[str, str]]) -> list[str]:
    """The SQL of each column of the batches (columns ``c0``, ``c1``, ...), by kind."""
    return [_kind_sql(kind, _q(f"c{i}")) for i, kind in enumerate(kinds)]


def frame_columns_sql(frame: pd.DataFrame) -> list[str] | None:
    """The SQL of every column (:func:`column_sql`), or None when one is not handled."""
    kinds = frame_columns_kinds(frame)
    return None if kinds is None else _expressions(kinds)


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
    out : binary file or BackgroundFile
        Destination, open for writing (a file is written through a
        :class:`~rfmml.campaign._background.BackgroundFile` of its own, closed by
        :meth:`close`).
    chunk_rows : int
        Rows formatted at a time.
    """

    def __init__(self, out: BinaryIO | BackgroundFile, chunk_rows: int = CHUNK_ROWS) -> None:
        self.chunk_rows = chunk_rows
        # the kernel takes the bytes in a thread while the next rows are formatted
        self._owned = not isinstance(out, BackgroundFile)
        self.out = BackgroundFile(out) if not isinstance(out, BackgroundFile) else out
        self._expressions: list[str] | None = None
        self._kinds: list[tuple[str, str]] | None = None
        self._pandas = False
        self._con: Any = None
        self._started = False
        self._scratch: dict[int, dict[str, np.ndarray]] = {}

    def write(self, frame: pd.DataFrame) -> None:
        """Append the rows of ``frame`` (flat, not neutralised; the header with the first)."""
        self._write(frame, frame_columns_kinds(frame) if not self._pandas else None)

    def _write(self, frame: pd.DataFrame, kinds: list[tuple[str, str]] | None) -> None:
        """:meth:`write` with the frame's :func:`frame_columns_kinds` already known."""
        if not self._started:
            self._started = True
            self._kinds = kinds
            self._pandas = kinds is None
            if kinds is not None:
                self._expressions = _expressions(kinds)
                self.out.write(_header(list(frame.columns)))
        elif not self._pandas and kinds != self._kinds:
            raise RuntimeError(
                "CSV chunks: a column's kind or format changed from one chunk to the next "
                "(e.g. dates with and without a time of day); write the table in one piece"
            )
        if self._pandas:
            self._write_pandas(frame)
            return
        assert self._expressions is not None and self._kinds is not None
        if _compiled_floats(len(frame)):
            _write_lines(frame, self._kinds, self.out, self._scratch, self.chunk_rows)
            return
        if self._con is None:
            import duckdb

            self._con = duckdb.connect()
            self._con.execute("SET preserve_insertion_order = true")
        sql = _lines_sql(self._expressions)
        for batch in _pandas_batches(frame, self.chunk_rows, self._expressions):
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
        """Wait for the queued bytes, release the DuckDB connection (the file stays open)."""
        if self._con is not None:
            self._con.close()
            self._con = None
        self._scratch.clear()
        if self._owned:
            self.out.close()
