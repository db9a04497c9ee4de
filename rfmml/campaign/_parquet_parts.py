"""One Parquet file from row groups encoded on several threads.

pyarrow's Parquet writer encodes a row group's columns one after the other on
the calling thread, and a file's row groups one after the other: for the
predictions of 3.3M customers (20 columns) that is 0.8 CPU s on one core,
the pace of the scoring stage of a streamed run. Here each chunk of rows is
written by its own ``pyarrow.parquet.ParquetWriter`` as a complete one-row-
group file in memory, on a pool of threads (the encoder releases Python's
lock), and the parts are joined into one file in chunk order: the bytes
between a part's leading ``PAR1`` and its footer (its column chunks, as
written) are appended to the file, and the footer is the first part's, with
the row groups of every part, their byte offsets moved to where the part's
bytes now lie and their ordinals renumbered (:func:`joined_footer`).

A footer is Thrift's compact protocol (the Parquet format's
``FileMetaData``); :func:`read_struct` and :func:`write_struct` read and
write it as nested lists of fields, whatever the fields are, so the fields
this module does not change are written back as they were read. The file is
the one a single writer writes for the same chunks and options: the same
bytes (tests).
"""

from __future__ import annotations

import struct
import threading
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any, BinaryIO

__all__ = [
    "ParquetParts", "Unjoinable", "joined_footer", "read_struct", "replace_key_values",
    "write_struct",
]  # fmt: skip

_MAGIC = b"PAR1"

# compact protocol types
_STOP, _TRUE, _FALSE, _BYTE, _I16, _I32, _I64, _DOUBLE, _BINARY, _LIST, _SET, _MAP, _STRUCT = range(
    13
)
_UUID = 13

# Parquet FileMetaData, RowGroup, ColumnChunk and ColumnMetaData field ids (parquet.thrift)
_FILE_SCHEMA, _FILE_NUM_ROWS, _FILE_ROW_GROUPS, _FILE_KEY_VALUES = 2, 3, 4, 5
_FILE_ENCRYPTION = (8, 9)  # encryption_algorithm, footer_signing_key_metadata
_GROUP_COLUMNS, _GROUP_FILE_OFFSET, _GROUP_ORDINAL = 1, 5, 7
_CHUNK_FILE_PATH, _CHUNK_FILE_OFFSET, _CHUNK_META = 1, 2, 3
_CHUNK_OFFSETS = (4, 6)  # offset_index_offset, column_index_offset
_CHUNK_ENCRYPTION = (8, 9)  # crypto_metadata, encrypted_column_metadata
_META_OFFSETS = (9, 10, 11, 14)  # data, index and dictionary page offsets, bloom filter


class Unjoinable(ValueError):
    """Parts that cannot be joined into one file (encrypted, or with other schemas)."""


# ---------------------------------------------------------------------------- compact protocol
def _varint(data: bytes, pos: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        byte = data[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return result, pos
        shift += 7


def _zigzag(value: int) -> int:
    return (value >> 1) ^ -(value & 1)


def _put_varint(out: bytearray, value: int) -> None:
    while value > 0x7F:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)


def _put_zigzag(out: bytearray, value: int) -> None:
    _put_varint(out, (value << 1) ^ (value >> 63))


def _read_value(data: bytes, pos: int, kind: int) -> tuple[Any, int]:
    if kind in (_TRUE, _FALSE):  # a list's boolean: one byte
        return data[pos] == _TRUE, pos + 1
    if kind == _BYTE:
        return struct.unpack_from("<b", data, pos)[0], pos + 1
    if kind in (_I16, _I32, _I64):
        raw, pos = _varint(data, pos)
        return _zigzag(raw), pos
    if kind == _DOUBLE:
        return struct.unpack_from("<d", data, pos)[0], pos + 8
    if kind == _BINARY:
        size, pos = _varint(data, pos)
        return bytes(data[pos : pos + size]), pos + size
    if kind == _UUID:
        return bytes(data[pos : pos + 16]), pos + 16
    if kind in (_LIST, _SET):
        head = data[pos]
        pos += 1
        size, element = head >> 4, head & 0x0F
        if size == 15:
            size, pos = _varint(data, pos)
        items = []
        for _ in range(size):
            item, pos = _read_value(data, pos, element)
            items.append(item)
        return (element, items), pos
    if kind == _MAP:
        size, pos = _varint(data, pos)
        if not size:
            return (0, 0, []), pos
        types = data[pos]
        pos += 1
        pairs = []
        for _ in range(size):
            key, pos = _read_value(data, pos, types >> 4)
            value, pos = _read_value(data, pos, types & 0x0F)
            pairs.append((key, value))
        return (types >> 4, types & 0x0F, pairs), pos
    if kind == _STRUCT:
        return read_struct(data, pos)
    raise Unjoinable(f"Parquet footer: unknown Thrift type {kind} at byte {pos}")


def read_struct(data: bytes, pos: int = 0) -> tuple[list[list[Any]], int]:
    """A compact-protocol struct at ``pos``: its fields ``[id, type, value]`` and the end.

    A boolean field's value is its type (``1`` true, ``2`` false); a list or set
    is ``(element type, items)``, a map ``(key type, value type, pairs)``, a
    struct its own list of fields.
    """
    fields: list[list[Any]] = []
    last = 0
    while True:
        head = data[pos]
        pos += 1
        kind = head & 0x0F
        if kind == _STOP:
            return fields, pos
        delta = head >> 4
        if delta:
            field = last + delta
        else:
            raw, pos = _varint(data, pos)
            field = _zigzag(raw)
        if kind in (_TRUE, _FALSE):
            value: Any = kind
        else:
            value, pos = _read_value(data, pos, kind)
        fields.append([field, kind, value])
        last = field


def _write_value(out: bytearray, kind: int, value: Any) -> None:
    if kind in (_TRUE, _FALSE):
        out.append(_TRUE if value else _FALSE)
    elif kind == _BYTE:
        out += struct.pack("<b", value)
    elif kind in (_I16, _I32, _I64):
        _put_zigzag(out, value)
    elif kind == _DOUBLE:
        out += struct.pack("<d", value)
    elif kind == _BINARY:
        _put_varint(out, len(value))
        out += value
    elif kind == _UUID:
        out += value
    elif kind in (_LIST, _SET):
        element, items = value
        if len(items) < 15:
            out.append((len(items) << 4) | element)
        else:
            out.append(0xF0 | element)
            _put_varint(out, len(items))
        for item in items:
            _write_value(out, element, item)
    elif kind == _MAP:
        key_kind, value_kind, pairs = value
        _put_varint(out, len(pairs))
        if pairs:
            out.append((key_kind << 4) | value_kind)
            for key, item in pairs:
                _write_value(out, key_kind, key)
                _write_value(out, value_kind, item)
    elif kind == _STRUCT:
        out += write_struct(value)
    else:
        raise Unjoinable(f"Parquet footer: unknown Thrift type {kind}")


def write_struct(fields: list[list[Any]]) -> bytes:
    """The compact-protocol bytes of a struct read by :func:`read_struct`."""
    out = bytearray()
    last = 0
    for field, kind, value in fields:
        delta = field - last
        if 0 < delta <= 15:
            out.append((delta << 4) | kind)
        else:
            out.append(kind)
            _put_zigzag(out, field)
        if kind not in (_TRUE, _FALSE):
            _write_value(out, kind, value)
        last = field
    out.append(_STOP)
    return bytes(out)


# --------------------------------------------------------------------------- joining the parts
def _field(fields: list[list[Any]], field: int) -> list[Any] | None:
    for item in fields:
        if item[0] == field:
            return item
    return None


def _split(part: Any) -> tuple[memoryview, list[list[Any]]]:
    """A one-file part's bytes between ``PAR1`` and its footer, and the footer's fields."""
    part = memoryview(part).cast("B")  # bytes as 0..255 (an Arrow buffer's view is signed)
    if len(part) < 12 or part[:4] != _MAGIC or part[-4:] != _MAGIC:
        raise Unjoinable("a part is not a Parquet file (no PAR1 at both ends)")
    size = struct.unpack_from("<I", part, len(part) - 8)[0]
    start = len(part) - 8 - size
    footer, end = read_struct(part, start)
    if end != len(part) - 8:
        raise Unjoinable("a part's footer does not end where its length says")
    if any(_field(footer, f) is not None for f in _FILE_ENCRYPTION):
        raise Unjoinable("an encrypted part")
    return part[4:start], footer


def _moved(group: list[list[Any]], shift: int, ordinal: int) -> list[list[Any]]:
    """A row group's fields with its byte offsets moved by ``shift``, numbered ``ordinal``."""
    # an offset of 0 is unset (the byte at 0 is PAR1): pyarrow writes the deprecated
    # ColumnChunk.file_offset as 0
    for item in group:
        if item[0] == _GROUP_FILE_OFFSET and item[2] > 0:
            item[2] += shift
        elif item[0] == _GROUP_ORDINAL:
            item[2] = ordinal
        elif item[0] == _GROUP_COLUMNS:
            for chunk in item[2][1]:
                for entry in chunk:
                    if entry[0] == _CHUNK_FILE_PATH or entry[0] in _CHUNK_ENCRYPTION:
                        raise Unjoinable("a part's column chunk lies in another file or is "
                                         "encrypted")  # fmt: skip
                    if entry[0] == _CHUNK_FILE_OFFSET or entry[0] in _CHUNK_OFFSETS:
                        entry[2] += shift if entry[2] > 0 else 0
                    elif entry[0] == _CHUNK_META:
                        for meta in entry[2]:
                            if meta[0] in _META_OFFSETS and meta[2] > 0:
                                meta[2] += shift
    return group


def joined_footer(footers: list[list[list[Any]]], sizes: list[int]) -> bytes:
    """The footer of the file made of parts with these footers and body sizes, in order.

    The first part's footer (schema, key-value metadata, writer) with the row
    groups of every part, their byte offsets moved by the bytes of the parts
    before it and their ordinals renumbered, and the rows of all.
    """
    first = footers[0]
    schema = write_struct([f for f in first if f[0] == _FILE_SCHEMA])
    joined: list[list[Any]] = []
    rows = 0
    shift = 0
    for footer, size in zip(footers, sizes, strict=True):
        if write_struct([f for f in footer if f[0] == _FILE_SCHEMA]) != schema:
            raise Unjoinable("the parts have different schemas")
        groups = _field(footer, _FILE_ROW_GROUPS)
        for group in groups[2][1] if groups is not None else []:
            joined.append(_moved(group, shift, len(joined)))
        count = _field(footer, _FILE_NUM_ROWS)
        rows += count[2] if count is not None else 0
        shift += size
    out = []
    for item in first:
        if item[0] == _FILE_NUM_ROWS:
            out.append([item[0], item[1], rows])
        elif item[0] == _FILE_ROW_GROUPS:
            out.append([item[0], item[1], (item[2][0], joined)])
        else:
            out.append(item)
    return write_struct(out)


def replace_key_values(path: Path, values: dict[bytes, bytes]) -> None:
    """Set key-value metadata of the finished Parquet file at ``path``, in place.

    The values of the keys given replace those in the footer (keys not there
    are added after the others); every other field of the footer is written
    back as it was read, and the column chunks before it are not touched.

    Raises
    ------
    Unjoinable
        Not a Parquet file, or an encrypted one.
    """
    with open(path, "r+b") as file:
        file.seek(0, 2)
        end = file.tell()
        if end < 12:
            raise Unjoinable("not a Parquet file (shorter than its two PAR1)")
        file.seek(end - 8)
        tail = file.read(8)
        size = struct.unpack_from("<I", tail)[0]
        if tail[4:] != _MAGIC or size > end - 12:
            raise Unjoinable("not a Parquet file (no PAR1 at the end)")
        start = end - 8 - size
        file.seek(start)
        footer, stop = read_struct(file.read(size))
        if stop != size:
            raise Unjoinable("the footer does not end where its length says")
        if any(_field(footer, f) is not None for f in _FILE_ENCRYPTION):
            raise Unjoinable("an encrypted file")
        pairs = _field(footer, _FILE_KEY_VALUES)
        if pairs is None:
            pairs = [_FILE_KEY_VALUES, _LIST, (_STRUCT, [])]
            footer.append(pairs)
            footer.sort(key=lambda item: item[0])
        left = dict(values)
        for pair in pairs[2][1]:
            key = _field(pair, 1)
            if key is not None and key[2] in left:
                value = _field(pair, 2)
                if value is None:
                    pair.append([2, _BINARY, left.pop(key[2])])
                else:
                    value[2] = left.pop(key[2])
        pairs[2][1].extend([[1, _BINARY, k], [2, _BINARY, v]] for k, v in left.items())
        out = write_struct(footer)
        file.seek(start)
        file.write(out + struct.pack("<I", len(out)) + _MAGIC)
        file.truncate()


def _room(table: Any) -> int:
    """Bytes set aside for a part: the table's data and 16 MiB (pages, dictionaries, footer)."""
    return int(table.nbytes) + (16 << 20)


class ParquetParts:
    """Chunks of rows encoded as Parquet on a pool of threads, joined into one file in order.

    Parameters
    ----------
    path : pathlib.Path
        The file (written as the parts come, finished by :meth:`close`).
    schema : pyarrow.Schema
        The schema of every chunk.
    options : dict
        ``pyarrow.parquet.ParquetWriter`` options (the same for every part).
    workers : int
        Threads encoding parts; :meth:`submit` waits while that many parts
        are encoded and not yet written (which bounds the memory held).
    """

    def __init__(self, path: Path, schema: Any, options: dict[str, Any], workers: int = 2) -> None:
        self.path = Path(path)
        self.schema = schema
        self.options = dict(options)
        self._pool = ThreadPoolExecutor(max(1, int(workers)), thread_name_prefix="rfmml-parquet")
        self._slots = threading.Semaphore(max(1, int(workers)))
        self._turn = threading.Condition()
        self._next = 0  # the part whose bytes go to the file next
        self._count = 0
        self._footers: list[list[list[Any]]] = []
        self._sizes: list[int] = []
        self._futures: list[Future[None]] = []
        self._error: BaseException | None = None
        self._reported = False
        self._buffers = threading.local()  # each encoding thread's reused buffer
        self._file: BinaryIO | None = open(self.path, "wb")  # noqa: SIM115 - closed by close()
        self._file.write(_MAGIC)

    def submit(self, table: Any) -> None:
        """Encode ``table`` (one row group) on the pool; its bytes follow the parts before it."""
        self._raise()
        self._slots.acquire()
        number = self._count
        self._count += 1
        self._futures.append(self._pool.submit(self._part, number, table))

    def _part(self, number: int, table: Any) -> None:
        import pyarrow as pa
        import pyarrow.parquet as pq

        data: Any = b""
        failed = None
        try:
            if self._error is None:  # after an error nothing more is encoded
                data = self._encoded(table, pa, pq)
        except BaseException as exc:  # raised in the caller's thread
            failed = exc
        del table
        with self._turn:  # the parts' bytes go to the file in their order
            self._turn.wait_for(lambda: self._next == number)
        try:
            if failed is not None:
                raise failed
            if self._error is None:
                body, footer = _split(data)
                assert self._file is not None
                self._file.write(body)
                self._footers.append(footer)
                self._sizes.append(len(body))
        except BaseException as exc:
            if self._error is None:
                self._error = exc
        finally:
            with self._turn:
                self._next += 1
                self._turn.notify_all()
            self._slots.release()

    def _encoded(self, table: Any, pa: Any, pq: Any) -> memoryview:
        """``table`` as a one-row-group Parquet file, in this thread's reused buffer.

        A buffer of :func:`_room` bytes, kept by the thread for its next part (its
        bytes are in the file before the thread takes another part): no fresh
        memory, and so no page faults, per part. A part that does not fit (an
        encoding larger than its data and the margin) is written to a growing
        buffer instead.
        """
        room = _room(table)
        held = getattr(self._buffers, "buffer", None)
        if held is None or held.size < room:
            held = self._buffers.buffer = pa.allocate_buffer(room)
        sink = pa.FixedSizeBufferWriter(held)
        try:
            with pq.ParquetWriter(sink, self.schema, **self.options) as writer:
                writer.write_table(table, row_group_size=max(table.num_rows, 1))
            return memoryview(held)[: sink.tell()]
        except OSError as exc:  # "Write out of bounds"
            if "out of bounds" not in str(exc):
                raise
        grown = pa.BufferOutputStream()
        with pq.ParquetWriter(grown, self.schema, **self.options) as writer:
            writer.write_table(table, row_group_size=max(table.num_rows, 1))
        return memoryview(grown.getvalue())

    def _raise(self) -> None:
        if self._error is not None and not self._reported:
            self._reported = True  # raised once: closing after it raises nothing more
            raise self._error

    def close(self) -> None:
        """Wait for every part, write the joined footer and close the file.

        After an error (raised here or by :meth:`submit`) the file is closed
        without a footer; a later call does nothing.
        """
        if self._file is None:
            return
        try:
            for future in self._futures:
                future.result()
            self._pool.shutdown()
            self._raise()
            if self._error is None:
                footer = joined_footer(self._footers, self._sizes)
                self._file.write(footer)
                self._file.write(struct.pack("<I", len(footer)))
                self._file.write(_MAGIC)
        finally:
            self._pool.shutdown()
            if self._file is not None:
                self._file.close()
                self._file = None
