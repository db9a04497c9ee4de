"""A pandas frame written to Parquet in chunks of rows, as ``DataFrame.to_parquet`` writes it.

``to_parquet`` converts the whole frame to one Arrow table before writing,
which for tens of millions of scored customers is a second copy of the table.
:func:`write_parquet` converts and writes one chunk of rows at a time with
one schema (the first chunk's, pandas metadata included), so the file reads
back as the same frame (:func:`pandas.read_parquet`) and the extra memory is
one chunk.

The chunks are encoded with settings chosen per column from the first chunk
(:func:`writer_options`), which change how the values are stored, not what
reads back: a dictionary of values only where values repeat (a float column
with a distinct value in most rows is stored plain, without first hashing
every value into a dictionary that overflows and falls back to plain), and
min/max statistics for the number and time columns, not for text and
categorical ones (comparing every string of a chunk was a tenth of the
writing time, and the min and max labels of a million customers rarely let a
reader skip a row group).
"""

from __future__ import annotations

from collections.abc import Collection
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

if TYPE_CHECKING:
    import pyarrow as pa

__all__ = [
    "CHUNK_ROWS",
    "MAX_DISTINCT",
    "SAMPLE_ROWS",
    "ParquetChunks",
    "write_parquet",
    "writer_options",
]

#: Rows per chunk (and per row group) of :func:`write_parquet`.
CHUNK_ROWS = 1_000_000

#: Rows of the first chunk (evenly spread) whose distinct values decide a
#: column's dictionary, and whose bytes its compression (:func:`writer_options`):
#: 12 ms for the 20 columns of a million scored customers (65,536 rows: 45 ms, the
#: same choices), before the first chunk is handed to the encoder.
SAMPLE_ROWS = 16_384
#: Most share of a column's sampled values that are distinct for the column to be
#: stored with a dictionary (:func:`writer_options`).
MAX_DISTINCT = 0.25
#: The codec of the columns written compressed (pyarrow's default).
CODEC = "snappy"
#: Least share of a plain column's sampled bytes the codec must save for the column to
#: be compressed (:func:`writer_options`).
MIN_SAVING = 0.1


def writer_options(table: pa.Table) -> dict[str, Any]:
    """Per-column ``pyarrow.parquet.ParquetWriter`` options chosen from a first chunk.

    Parameters
    ----------
    table : pyarrow.Table
        The first chunk of rows.

    Returns
    -------
    dict
        ``use_dictionary`` and ``write_statistics``: the Parquet columns (leaf
        paths) written with a dictionary and with statistics; ``compression``:
        each column's codec (``"snappy"`` or ``"none"``).

    Notes
    -----
    A dictionary is used for categorical (Arrow dictionary) and boolean
    columns, and for a text, number or time column when at most
    :data:`MAX_DISTINCT` of the values of an evenly spread sample of
    :data:`SAMPLE_ROWS` rows are distinct; a column with more distinct values
    is stored plain. Hashing every value into a dictionary of tens of thousands
    of values costs more than it saves: for a million scored customers the
    total spend (66 % of the sample distinct, 68K values) took 37 ms with a
    dictionary and 21 ms plain (2.3 and 4.8 MB), the expected order value
    (52 %, 177K values, more than the dictionary page holds: it falls back to
    plain) 51 ms and 21 ms (4.2 and 5.2 MB), where the whole chunk took
    0.31 s. Statistics (min, max, null count) are written for every column but
    text (string, binary) and categorical ones. The columns of nested types
    (lists, structs) keep pyarrow's defaults: dictionary and statistics.
    Columns are compressed with Snappy (pyarrow's default codec), but for a
    number or time column stored plain whose sampled values Snappy shrinks by
    less than :data:`MIN_SAVING` (most digits of probabilities, expected
    purchases or CLV repeat nothing): compressing those cost a third of the
    encoding time (0.12 of 0.40 CPU s for a million scored customers) to
    save 2 % of their bytes. None of this changes the values, types or
    metadata read back.
    """
    import pyarrow as pa

    rows = table.num_rows
    sample = None
    if rows > SAMPLE_ROWS:
        sample = pa.array(np.linspace(0, rows - 1, SAMPLE_ROWS).astype(np.int64))
    dictionary: list[str] = []
    statistics: list[str] = []
    compression: dict[str, str] = {}
    for field, column in zip(table.schema, table.columns, strict=True):
        kind = field.type
        if isinstance(kind, pa.BaseExtensionType):
            kind = kind.storage_type
        if pa.types.is_nested(kind):
            leaves = _leaf_paths(field)
            dictionary += leaves
            statistics += leaves
            compression.update(dict.fromkeys(leaves, CODEC))
            continue
        labels = pa.types.is_dictionary(kind)
        text = any(getattr(pa.types, test, _never)(kind) for test in _TEXT_TESTS)
        if not (labels or text):
            statistics.append(field.name)
        plain = not (labels or pa.types.is_boolean(kind))  # else always a dictionary
        values = column.take(sample) if plain and sample is not None else column  # read twice
        if plain and not _repeats(values):
            compression[field.name] = CODEC if _compresses(values) else "none"
        else:
            dictionary.append(field.name)
            compression[field.name] = CODEC
    return {"use_dictionary": dictionary, "write_statistics": statistics,
            "compression": compression}  # fmt: skip


#: ``pyarrow.types`` tests of the text and binary types (the views from pyarrow 16).
_TEXT_TESTS = (
    "is_string", "is_large_string", "is_string_view",
    "is_binary", "is_large_binary", "is_binary_view", "is_fixed_size_binary",
)  # fmt: skip


def _as_text_schema(schema: pa.Schema, frame: pd.DataFrame, texts: dict[str, Any]) -> pa.Schema:
    """``schema`` (of ``frame``'s chunk) with the ``texts`` columns as their labels' text.

    Each such column's Arrow field and its entry in the ``pandas`` metadata are
    those the labels as text (dtypes ``texts``) convert to: the conversion of
    the chunk's first row of those columns alone; every other field and entry
    is kept as it is.
    """
    import json

    import pyarrow as pa

    head = pa.Table.from_pandas(frame[list(texts)].iloc[:1].astype(texts), preserve_index=False)
    meta = dict(schema.metadata or {})
    pandas_meta = json.loads(meta[b"pandas"])
    entries = {e["name"]: e for e in json.loads(head.schema.metadata[b"pandas"])["columns"]}
    pandas_meta["columns"] = [entries.get(e["name"], e) for e in pandas_meta["columns"]]
    meta[b"pandas"] = json.dumps(pandas_meta).encode()
    fields = [head.schema.field(f.name) if f.name in texts else f for f in schema]
    return pa.schema(fields, metadata=meta)


def _text_labels(column: pd.Series) -> bool:
    """Whether ``column`` is a categorical of text labels (a string dtype, or objects)."""
    dtype = column.dtype
    if not isinstance(dtype, pd.CategoricalDtype):
        return False
    labels = dtype.categories
    if isinstance(labels.dtype, pd.StringDtype):
        return True
    return labels.dtype == object and pd.api.types.infer_dtype(labels, skipna=False) == "string"


def _never(kind: pa.DataType) -> bool:
    return False


def _repeats(values: pa.ChunkedArray) -> bool:
    """Whether at most :data:`MAX_DISTINCT` of the (sampled) ``values`` are distinct."""
    import pyarrow as pa
    import pyarrow.compute as pc

    try:
        distinct = pc.count_distinct(values, mode="all").as_py()
    except (pa.ArrowNotImplementedError, pa.ArrowTypeError):  # no hash kernel: the default
        return True
    return bool(distinct <= MAX_DISTINCT * len(values))


def _compresses(values: pa.ChunkedArray) -> bool:
    """Whether :data:`CODEC` saves at least :data:`MIN_SAVING` of the (sampled) values' bytes.

    Only columns of fixed-width values without nulls are tried (their values
    are the page's bytes); any other column is compressed.
    """
    import pyarrow as pa

    values = values.combine_chunks() if isinstance(values, pa.ChunkedArray) else values
    kind = values.type
    fixed = pa.types.is_integer(kind) or pa.types.is_floating(kind) or pa.types.is_temporal(kind)
    if not fixed or values.null_count or len(values) == 0:
        return True
    raw = values.buffers()[1]
    raw = raw.slice(values.offset * kind.bit_width // 8, len(values) * kind.bit_width // 8)
    return pa.compress(raw, CODEC, asbytes=False).size <= (1 - MIN_SAVING) * raw.size


def _leaf_paths(field: pa.Field) -> list[str]:
    """The Parquet column paths of a (nested) Arrow field, as ``ParquetWriter`` names them."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    sink = pa.BufferOutputStream()
    pq.write_table(pa.schema([field]).empty_table(), sink)
    schema = pq.read_metadata(pa.BufferReader(sink.getvalue())).schema
    return [schema.column(i).path for i in range(len(schema))]


def write_parquet(frame: pd.DataFrame, path: Path, chunk_rows: int = CHUNK_ROWS,
                  workers: int = 1) -> None:  # fmt: skip
    """Write ``frame`` (without its index) to ``path`` one chunk of rows at a time.

    Parameters
    ----------
    frame : pandas.DataFrame
        The flat table; its index is not written.
    path : pathlib.Path
        Destination file.
    chunk_rows : int
        Rows converted to Arrow at a time (one row group each).
    workers : int
        Threads encoding the row groups (:class:`ParquetChunks`): the same file.

    Notes
    -----
    The chunks are encoded with :func:`writer_options` of the first chunk. A
    frame of at most ``chunk_rows`` rows is written by ``to_parquet`` (pyarrow's
    default encodings, ``attrs`` kept). When a later chunk does not fit the
    first chunk's Arrow types (an object column missing throughout the first
    chunk, say), the file is written again in one piece by ``to_parquet``.
    """
    import pyarrow as pa

    if len(frame) <= chunk_rows:
        frame.to_parquet(path, index=False)
        return
    writer = ParquetChunks(path, workers=workers)
    try:
        try:
            for start in range(0, len(frame), chunk_rows):
                writer.write_arrow(writer.arrow(frame.iloc[start : start + chunk_rows]))
        finally:
            writer.close()
    except (pa.ArrowInvalid, pa.ArrowTypeError, ValueError):
        frame.to_parquet(path, index=False)


class ParquetChunks:
    """Append pandas chunks to one Parquet file with the first chunk's schema.

    The file :func:`write_parquet` writes for the concatenated chunks (one row
    group per chunk: chunks of :data:`CHUNK_ROWS` rows give the same row groups).

    Parameters
    ----------
    path : pathlib.Path
        Destination file (written when the first chunk comes).
    with_attrs : bool
        Store the first chunk's ``attrs`` in the schema metadata, as
        ``DataFrame.to_parquet`` does (:func:`write_parquet` writes a table of at
        most ``chunk_rows`` rows with ``to_parquet``, a longer one without them).
    workers : int
        Threads encoding the row groups (see :meth:`write_arrow`).
    as_text : collection of str
        Categorical columns of text the file stores as text: it reads back as
        if the chunks had held those labels as strings (the default string
        dtype), which is also what the file's bytes hold. The encoder is given
        each chunk's categories and codes (its dictionary page and indices)
        instead of hashing one string per row.

    Notes
    -----
    pyarrow records the Arrow schema of the encoded chunks in the file's
    metadata (``ARROW:schema``, and pandas' ``pandas``): with ``as_text``
    columns, :meth:`close` replaces those two by the schema of the text columns
    (:func:`~rfmml.campaign._parquet_parts.replace_key_values`).
    """

    def __init__(self, path: Path, with_attrs: bool = False, workers: int = 1,
                 as_text: Collection[str] = ()) -> None:  # fmt: skip
        self.path = path
        self.with_attrs = with_attrs
        self.workers = int(workers)
        self.as_text = frozenset(as_text)
        self._writer: Any = None
        self._parts: Any = None
        self._schema: Any = None
        self._declared: Any = None  # the schema the file states, when not the encoded one
        self._options: dict[str, list[str]] = {}

    def arrow(self, frame: pd.DataFrame) -> pa.Table:
        """``frame`` (without its index) as the Arrow table the file takes.

        The first chunk fixes the schema (and the writer's per-column options);
        later chunks are converted to it. Called in chunk order; what
        :meth:`write_arrow` is then given may be written in another thread
        while the caller converts the next chunk.
        """
        import pyarrow as pa

        if self._schema is None:
            table = self._with_attrs(pa.Table.from_pandas(frame, preserve_index=False), frame)
            texts = {  # each column's labels in their own text dtype
                c: frame[c].cat.categories.dtype
                for c in frame.columns
                if c in self.as_text and _text_labels(frame[c])
            }
            if texts:  # the schema of the same rows with those columns as text
                self._declared = _as_text_schema(table.schema, frame, texts)
            self._schema = table.schema
            self._options = writer_options(table)
            return table
        return pa.Table.from_pandas(frame, schema=self._schema, preserve_index=False)

    def _with_attrs(self, table: pa.Table, frame: pd.DataFrame) -> pa.Table:
        if self.with_attrs and frame.attrs:
            import json

            extra = {"PANDAS_ATTRS": json.dumps(frame.attrs)}
            table = table.replace_schema_metadata({**table.schema.metadata, **extra})
        return table

    def write_arrow(self, table: pa.Table) -> None:
        """Append a table made by :meth:`arrow` (one row group; the file opened at the first).

        With ``workers`` above 1 the table is handed to
        :class:`~rfmml.campaign._parquet_parts.ParquetParts`, which encodes it on
        one of that many threads (this call waits only while all of them are
        busy) and joins the row groups into the same file, byte for byte.
        """
        import pyarrow.parquet as pq

        if self.workers > 1:
            if self._parts is None:
                from rfmml.campaign._parquet_parts import ParquetParts

                self._parts = ParquetParts(self.path, self._schema, self._options, self.workers)
            self._parts.submit(table)
            return
        if self._writer is None:
            self._writer = pq.ParquetWriter(self.path, self._schema, **self._options)
        self._writer.write_table(table, row_group_size=max(table.num_rows, 1))

    def write(self, frame: pd.DataFrame) -> None:
        """Append ``frame`` (without its index)."""
        self.write_arrow(self.arrow(frame))

    def close(self) -> None:
        """Finish the file (waiting for the parts still encoded)."""
        finished = self._parts is not None or self._writer is not None
        if self._parts is not None:
            parts, self._parts = self._parts, None
            parts.close()
        if self._writer is not None:
            self._writer.close()
            self._writer = None
        if finished and self._declared is not None:
            import base64

            from rfmml.campaign._parquet_parts import replace_key_values

            declared, self._declared = self._declared, None
            values = dict(declared.metadata or {})
            values[b"ARROW:schema"] = base64.b64encode(declared.serialize().to_pybytes())
            replace_key_values(Path(self.path), values)
