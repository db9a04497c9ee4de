"""One codec for every JSON document rfmml saves (no pickle).

Models, segmenters, scoring pipelines and prediction metadata are written as
one JSON object with the same envelope::

    {"format": "rfmml.model", "format_version": 2, "rfmml_version": "0.1.0", ...body}

``format`` names the kind of document, ``format_version`` its layout (a
reader refuses a newer one and may translate older ones), ``rfmml_version``
the writing library.

One float convention everywhere: finite floats are JSON numbers written with
``repr`` precision (they read back bit-identical), NaN is ``null``, and
infinities are the strings ``"inf"`` and ``"-inf"`` (strict JSON has neither).
:func:`encode` applies it to a whole body; :func:`decode_float` reads a value
back. This module imports nothing from rfmml except :mod:`rfmml.errors`.

Every file rfmml writes goes through :func:`replacing` (a temporary file beside
the target, renamed into place) and every folder through
:func:`replacing_folder`, so an interrupted write leaves the previous version
whole.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import shutil
from collections.abc import Callable, Iterator, Mapping
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import numpy as np

from rfmml.errors import DataError

__all__ = [
    "encode",
    "decode_float",
    "envelope",
    "write_document",
    "read_document",
    "check_document",
    "rfmml_version",
    "replacing",
    "replacing_folder",
]


def _is_stream(path: Path) -> bool:
    """Whether ``path`` is, or links through, ``/dev`` or ``/proc`` (a process's streams)."""
    resolved = [str(path.absolute())]
    link = path
    for _ in range(40):  # a chain of links, each step read (not the final resolution)
        if not link.is_symlink():
            break
        step = Path(os.readlink(link))
        link = step if step.is_absolute() else link.parent / step
        resolved.append(str(link))
    return any(p == d or p.startswith(d + "/") for p in resolved for d in ("/dev", "/proc"))


@contextlib.contextmanager
def replacing(path: str | Path) -> Iterator[Path]:
    """Write ``path`` through a temporary file beside it, renamed into place at the end.

    An interrupted or failed write leaves the previous file whole (or no
    file), never a truncated one. Parent folders are created. The temporary
    name ends in ``.partial``: writers that infer a format from the suffix
    (``savefig``) must be told the format. An existing device, named pipe or
    other stream (``/dev/null``, ``/dev/stdout`` even when it is redirected to a
    file, anything under ``/dev`` or ``/proc``) is written directly, not
    replaced. A symbolic link to a file keeps the link: the file it points to
    is the one replaced.

    Examples
    --------
    >>> with replacing("out/table.parquet") as temporary:  # doctest: +SKIP
    ...     frame.to_parquet(temporary)
    """
    target = Path(path)
    if target.exists() and ((not target.is_file() and not target.is_dir()) or _is_stream(target)):
        # a device, a pipe or a stream's link (``-o /dev/null``, ``-o /dev/stdout`` to a
        # file): write through it; renaming a file over it would replace the device or link
        yield target
        return
    if target.is_symlink():  # the file it points to is replaced; the link stays
        target = Path(os.path.realpath(target))
    target.parent.mkdir(parents=True, exist_ok=True)
    temporary = target.with_name(f".{target.name}.{os.getpid()}.partial")
    try:
        yield temporary
        _replace(temporary, target)
    finally:
        temporary.unlink(missing_ok=True)


#: A file replaced by :func:`replacing` from this size on is freed in a thread.
FREE_IN_THREAD_BYTES = 64 * 2**20


def _replace(temporary: Path, target: Path) -> None:
    """``os.replace(temporary, target)``; a large file replaced is freed in a thread.

    Freeing a file's blocks and cached pages is the costly part of replacing it
    (0.14 s for a 180 MB ``predictions.parquet``, against microseconds for the
    rename). From :data:`FREE_IN_THREAD_BYTES` the old file keeps a second
    link beside it until the rename is done (the target is replaced
    atomically, as always), and a thread then removes that link, while the
    caller goes on; the interpreter waits for the thread at exit. Where links
    cannot be made, the old file is freed by the rename itself.
    """
    aside = None
    try:
        if target.stat().st_size >= FREE_IN_THREAD_BYTES:
            aside = target.with_name(f".{target.name}.{os.getpid()}.old")
            aside.unlink(missing_ok=True)
            os.link(target, aside)
    except OSError:  # no file to replace, or no links on this file system
        aside = None
    try:
        os.replace(temporary, target)
    except BaseException:
        if aside is not None:
            aside.unlink(missing_ok=True)
        raise
    if aside is not None:
        import threading

        threading.Thread(target=aside.unlink, kwargs={"missing_ok": True},
                         name="rfmml-free-replaced").start()  # fmt: skip


@contextlib.contextmanager
def replacing_folder(path: str | Path) -> Iterator[Path]:
    """Fill a temporary folder beside ``path``; it replaces ``path`` at the end.

    A failure while filling leaves the previous folder untouched. The swap is
    two renames (the old folder aside, the new one in), so at worst a crash
    between them leaves the old folder under ``.<name>.<pid>.old``, never a
    half-written one under ``path``.
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    temporary = target.with_name(f".{target.name}.{os.getpid()}.partial")
    old = target.with_name(f".{target.name}.{os.getpid()}.old")
    shutil.rmtree(temporary, ignore_errors=True)
    temporary.mkdir()
    try:
        yield temporary
        if target.exists():
            os.replace(target, old)
        os.replace(temporary, target)
    finally:
        shutil.rmtree(temporary, ignore_errors=True)
        shutil.rmtree(old, ignore_errors=True)


def rfmml_version() -> str:
    """The installed rfmml version ("0.0.0" when running from a source tree)."""
    try:
        return version("rfmml")
    except PackageNotFoundError:  # pragma: no cover - source tree without metadata
        return "0.0.0"


def encode(value: Any) -> Any:
    """``value`` as JSON-native values under the float convention of this module.

    Mappings (keys as strings), lists, tuples and 1-d or n-d numpy arrays are
    converted recursively; numpy scalars become Python scalars; NaN becomes
    None and infinities the strings ``"inf"`` / ``"-inf"``.

    Returns
    -------
    object
        Something :func:`json.dumps` accepts with ``allow_nan=False``.
    """
    if isinstance(value, Mapping):
        return {str(k): encode(v) for k, v in value.items()}
    if isinstance(value, np.ndarray):
        return encode(value.tolist())
    if isinstance(value, list | tuple):
        return [encode(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float):
        if math.isnan(value):
            return None
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
    return value


def decode_float(value: Any) -> float:
    """A float written by :func:`encode`: None is NaN, ``"inf"``/``"-inf"`` are infinities.

    Raises
    ------
    DataError
        If ``value`` is not a number, None or one of those strings.
    """
    if value is None:
        return float("nan")
    if isinstance(value, str):
        if value in ("inf", "-inf", "nan"):
            return float(value)
        raise DataError(
            f"expected a number, null, 'inf' or '-inf' in a saved document, got {value!r}."
        )
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise DataError(f"expected a number in a saved document, got {value!r}.")
    return float(value)


def envelope(kind: str, version: int, body: Mapping[str, Any]) -> dict[str, Any]:
    """The document: the envelope keys followed by the encoded ``body``.

    Returns
    -------
    dict
    """
    doc = {"format": kind, "format_version": int(version), "rfmml_version": rfmml_version()}
    clash = sorted(set(doc) & set(body))
    if clash:
        raise ValueError(f"document body may not use the envelope keys {clash}.")
    doc.update(encode(dict(body)))
    return doc


def write_document(path: str | Path, kind: str, version: int, body: Mapping[str, Any]) -> Path:
    """Write a document as indented strict JSON (parent folders are created).

    The file is replaced whole (:func:`replacing`).

    Returns
    -------
    pathlib.Path
        The written path.
    """
    path = Path(path)
    text = json.dumps(envelope(kind, version, body), indent=2, allow_nan=False) + "\n"
    with replacing(path) as temporary:
        temporary.write_text(text, encoding="utf-8")
    return path


def check_document(
    doc: Any,
    kind: str,
    version: int,
    *,
    source: str,
    what: str,
    hint: str,
    legacy: Callable[[dict], dict | None] | None = None,
) -> tuple[int, dict]:
    """Check a parsed document's envelope; translate an older layout with ``legacy``.

    Parameters
    ----------
    doc : object
        The parsed JSON.
    kind, version : str, int
        The expected ``format`` and the newest ``format_version`` this reader knows.
    source : str
        Where the document came from (a path), for messages.
    what : str
        What the document holds, e.g. "rfmml model", for messages.
    hint : str
        How to write a valid document, appended to the "not a ..." message.
    legacy : callable, optional
        ``doc -> doc or None``: a document in an older layout translated to the
        current one (or None when it is not one).

    Returns
    -------
    version : int
        The document's ``format_version`` (after translation).
    doc : dict

    Raises
    ------
    DataError
        Not a document of this kind, or a newer format version.
    """
    if isinstance(doc, dict) and doc.get("format") != kind and legacy is not None:
        translated = legacy(doc)
        if translated is not None:
            doc = translated
    if not isinstance(doc, dict) or doc.get("format") != kind:
        raise DataError(f'{source} is not an {what} file (missing "format": "{kind}"). {hint}')
    found = doc.get("format_version", 0)
    if not isinstance(found, int) or found > version:
        raise DataError(
            f"{source} uses {what} format version {found}, newer than this rfmml "
            f"({rfmml_version()}) reads ({version}). Upgrade rfmml."
        )
    return found, doc


def read_document(
    path: str | Path,
    kind: str,
    version: int,
    *,
    what: str,
    hint: str,
    legacy: Callable[[dict], dict | None] | None = None,
) -> tuple[int, dict]:
    """Read and check a document written by :func:`write_document`.

    See :func:`check_document` for the parameters and checks.

    Returns
    -------
    version : int
    doc : dict

    Raises
    ------
    DataError
        A missing file, invalid JSON, not a document of this kind, or a newer
        format version.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path} does not exist or is not a file; expected an {what} file.")
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise DataError(f"{path} is not valid JSON ({exc}); expected an {what} file.") from exc
    return check_document(doc, kind, version, source=str(path), what=what, hint=hint, legacy=legacy)
