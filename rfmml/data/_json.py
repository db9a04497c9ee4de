"""Reading a JSON log: JSON Lines (one order per line) or one array of records.

Exports from shop and CRM APIs (and ``COPY ... TO 'x.json'`` of most
databases) come as JSON Lines, ``.jsonl`` / ``.ndjson``, or as one JSON array
of objects, ``.json``; either may be compressed (``.gz``, ``.bz2``, ``.xz``,
``.zip``). :func:`read_json_frame` reads both into a pandas frame with the
values as written (text stays text, numbers stay numbers: the reader's own
parsing of ids, times and amounts then applies, as for a CSV) and nested
objects flattened into dotted column names (``{"customer": {"email": ...}}``
gives the column ``customer.email``), so they can be mapped like any column.
"""

from __future__ import annotations

import bz2
import gzip
import io
import lzma
import zipfile
from pathlib import Path
from typing import IO, Any

import pandas as pd

from rfmml.errors import DataError

__all__ = ["JSON_SUFFIXES", "is_json_path", "read_json_frame"]

#: Suffixes of a JSON log (before a compression suffix, if any).
JSON_SUFFIXES = frozenset({".json", ".jsonl", ".ndjson"})

_OPENERS = {".gz": gzip.open, ".bz2": bz2.open, ".xz": lzma.open}


def is_json_path(path: Path) -> bool:
    """Whether ``path`` names a JSON log (``orders.jsonl``, ``orders.json.gz``, ...)."""
    suffixes = [s.lower() for s in path.suffixes]
    if suffixes and suffixes[-1] in {*_OPENERS, ".zip"}:
        suffixes = suffixes[:-1]
    return bool(suffixes) and suffixes[-1] in JSON_SUFFIXES


def _open(path: Path) -> IO[bytes]:
    """The decompressed bytes of ``path`` (a zip archive must hold one file)."""
    suffix = path.suffix.lower()
    if suffix in _OPENERS:
        opener: Any = _OPENERS[suffix]
        stream: IO[bytes] = opener(path, "rb")
        return stream
    if suffix == ".zip":
        archive = zipfile.ZipFile(path)
        names = [n for n in archive.namelist() if not n.endswith("/")]
        if len(names) != 1:
            archive.close()
            raise DataError(
                f"{str(path)!r} holds {len(names)} files; expected one JSON file in the archive"
            )
        return archive.open(names[0])
    return open(path, "rb")


def _first_character(path: Path) -> str:
    """The first character that is not white space (or a byte order mark); '' if none."""
    with _open(path) as stream:
        while block := stream.read(4096):
            text = block.lstrip().lstrip(b"\xef\xbb\xbf").lstrip()
            if text:
                return chr(text[0])
    return ""


def read_json_frame(path: Path) -> pd.DataFrame:
    """Read a JSON Lines file or a JSON array of records as a flat pandas frame.

    Parameters
    ----------
    path : pathlib.Path
        A ``.json``, ``.jsonl`` or ``.ndjson`` file, possibly compressed.

    Returns
    -------
    pandas.DataFrame
        One row per record; nested objects flattened into ``parent.child``
        columns; values as written (no date or number guessing).

    Raises
    ------
    DataError
        The file is empty, is not JSON records (a number, a list of lists, a
        single object), or has a malformed line (named by its number).
    """
    first = _first_character(path)
    if first not in ("{", "["):
        shown = "an empty file" if not first else f"text starting with {first!r}"
        raise DataError(
            f"{str(path)!r} is not a JSON log: expected one object per line (JSON Lines) or "
            f"an array of objects, found {shown}"
        )
    with _open(path) as stream:
        text = io.TextIOWrapper(stream, encoding="utf-8-sig")
        try:
            frame = pd.read_json(text, lines=first == "{", orient="records", dtype=False)
        except (ValueError, TypeError) as exc:  # TypeError: a line that is not an object
            whole = _one_object(path) if first == "{" else None  # an indented table?
            if whole is None:
                raise DataError(
                    f"{str(path)!r} is not readable JSON records ({_where(path, first)}: "
                    f"{str(exc).splitlines()[0]})"
                ) from None
            frame = pd.DataFrame([whole])
    if not isinstance(frame, pd.DataFrame) or frame.empty and not len(frame.columns):
        raise DataError(f"{str(path)!r} holds no JSON records")
    if first == "{" and len(frame) == 1:  # one object: a whole table in one of pandas' layouts
        table = _table_of({str(k): v for k, v in frame.iloc[0].items()})
        if table is not None:
            frame = table
    frame.columns = [str(c) for c in frame.columns]
    nested = [c for c in frame.columns if frame[c].map(lambda v: isinstance(v, dict)).any()]
    for column in nested:  # each object column in place of its fields (missing: empty)
        fields = pd.json_normalize(
            [v if isinstance(v, dict) else {} for v in frame[column]], sep="."
        ).add_prefix(f"{column}.")
        fields.index = frame.index
        at = frame.columns.get_loc(column)
        frame = pd.concat([frame.iloc[:, :at], fields, frame.iloc[:, at + 1 :]], axis=1)
    return frame


def _one_object(path: Path) -> dict | None:
    """The file as one JSON object (an indented document), or None."""
    import json

    with _open(path) as stream:
        try:
            value = json.load(io.TextIOWrapper(stream, encoding="utf-8-sig"))
        except ValueError:
            return None
    return value if isinstance(value, dict) else None


def _digits(keys: list[str]) -> bool:
    return all(k.lstrip("-").isdigit() for k in keys)


def _table_of(whole: dict) -> pd.DataFrame | None:
    """A table written as one object (``DataFrame.to_json``'s layouts), or None (a record).

    ``{"columns": [...], "data": [[...]]}`` (split), ``{"schema": ..., "data":
    [{...}]}`` (table), ``{column: {row: value}}`` (columns, pandas' default)
    and ``{row: {column: value}}`` (index); the last two are told apart by
    which keys are row numbers (neither or both: one record of nested objects).
    """
    data = whole.get("data")
    if isinstance(data, list) and isinstance(whole.get("columns"), list):
        return pd.DataFrame(data, columns=[str(c) for c in whole["columns"]])
    if isinstance(data, list) and isinstance(whole.get("schema"), dict):
        frame = pd.DataFrame.from_records(data)
        if whole["schema"].get("primaryKey") == ["index"] and "index" in frame.columns:
            frame = frame.drop(columns="index")
        return frame
    if not whole or not all(isinstance(v, dict) and v for v in whole.values()):
        return None  # a record (some fields nested, some not)
    outer = list(whole)
    inner = list(dict.fromkeys(k for v in whole.values() for k in v))
    if _digits(inner) and not _digits(outer):  # {column: {row: value}}
        return pd.DataFrame({c: pd.Series(whole[c]) for c in outer}).reindex(inner)
    if _digits(outer) and not _digits(inner):  # {row: {column: value}}
        return pd.DataFrame.from_records([whole[r] for r in outer])
    return None  # one record whose fields are all objects


def _where(path: Path, first: str) -> str:
    """The first line that is not a JSON object (JSON Lines), or 'the array'."""
    if first == "[":
        return "the array"
    import json

    with _open(path) as stream:
        for number, raw in enumerate(io.TextIOWrapper(stream, encoding="utf-8-sig"), start=1):
            if not raw.strip():
                continue
            try:
                value = json.loads(raw)
            except ValueError:
                return f"line {number}"
            if not isinstance(value, dict):
                return f"line {number} is not an object"
    return "a line"
