"""A pandas frame written to Parquet in chunks of rows, as ``DataFrame.to_parquet`` writes it.

``to_parquet`` converts the whole frame to one Arrow table before writing,
which for tens of millions of scored customers is a second copy of the table.
:func:`write_parquet` converts and writes one chunk of rows at a time with
one schema (the first chunk's, pandas metadata included), so the file reads
back as the same frame (:func:`pandas.read_parquet`) and the extra memory is
one chunk.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd

__all__ = ["CHUNK_ROWS", "ParquetChunks", "write_parquet"]

#: Rows per chunk (and per row group) of :func:`write_parquet`.
CHUNK_ROWS = 1_000_000


def write_parquet(frame: pd.DataFrame, path: Path, chunk_rows: int = CHUNK_ROWS) -> None:
    """Write ``frame`` (without its index) to ``path`` one chunk of rows at a time.

    Parameters
    ----------
    frame : pandas.DataFrame
        The flat table; its index is not written.
    path : pathlib.Path
        Destination file.
    chunk_rows : int
        Rows converted to Arrow at a time (one row group each).

    Notes
    -----
    When a later chunk does not fit the first chunk's Arrow types (an object
    column missing throughout the first chunk, say), the file is written again
    in one piece by ``to_parquet``.
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    if len(frame) <= chunk_rows:
        frame.to_parquet(path, index=False)
        return
    first = pa.Table.from_pandas(frame.iloc[:chunk_rows], preserve_index=False)
    schema = first.schema
    try:
        with pq.ParquetWriter(path, schema) as writer:
            writer.write_table(first, row_group_size=chunk_rows)
            del first
            for start in range(chunk_rows, len(frame), chunk_rows):
                chunk = frame.iloc[start : start + chunk_rows]
                table = pa.Table.from_pandas(chunk, schema=schema, preserve_index=False)
                writer.write_table(table, row_group_size=chunk_rows)
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
    """

    def __init__(self, path: Path, with_attrs: bool = False) -> None:
        self.path = path
        self.with_attrs = with_attrs
        self._writer: Any = None
        self._schema: Any = None

    def write(self, frame: pd.DataFrame) -> None:
        """Append ``frame`` (without its index)."""
        import pyarrow as pa
        import pyarrow.parquet as pq

        if self._writer is None:
            table = pa.Table.from_pandas(frame, preserve_index=False)
            if self.with_attrs and frame.attrs:
                import json

                extra = {"PANDAS_ATTRS": json.dumps(frame.attrs)}
                table = table.replace_schema_metadata({**table.schema.metadata, **extra})
            self._schema = table.schema
            self._writer = pq.ParquetWriter(self.path, self._schema)
        else:
            table = pa.Table.from_pandas(frame, schema=self._schema, preserve_index=False)
        self._writer.write_table(table, row_group_size=max(len(frame), 1))

    def close(self) -> None:
        """Finish the file."""
        if self._writer is not None:
            self._writer.close()
            self._writer = None
