"""TOML tables: read, check keys and value types, write back.

One place for what the experiment config, segment schemes and campaign playbooks
all do with their TOML: read a file into a table (a syntax error becomes one
:class:`~rfmml.errors.ConfigError` line), refuse unknown keys and values of the
wrong type with a message naming the key and what is allowed, and (for configs)
write a table back as TOML so that reading it gives the same table.
"""

from __future__ import annotations

import datetime as dt
import json
import tomllib
from collections.abc import Mapping
from typing import Any

from rfmml.errors import ConfigError

__all__ = ["check_keys", "check_table", "dumps", "read_toml"]

#: What each accepted type is called in messages.
_KIND_NAMES = {
    str: "text",
    int: "an integer",
    float: "a number",
    bool: "true or false",
    list: "a list",
    dict: "a table",
    type(None): "absent",
}


def read_toml(path: Any, what: str) -> dict[str, Any]:
    """Parse a TOML file; ``what`` names it in the error (e.g. ``"playbook"``).

    ``path`` is a :class:`pathlib.Path` or an :mod:`importlib.resources` traversable.

    Raises
    ------
    ConfigError
        The file cannot be read or is not valid TOML.
    """
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read {what} file {str(path)!r}: {exc}") from exc
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{what} {str(path)!r} is not valid TOML: {exc}") from exc


def check_keys(table: Mapping[str, Any], allowed: Any, where: str) -> None:
    """Refuse keys of ``table`` not in ``allowed``, naming them and the allowed ones."""
    unknown = sorted(set(table) - set(allowed))
    if unknown:
        raise ConfigError(f"unknown key(s) {unknown} in {where}; allowed: {sorted(allowed)}")


def _is(value: Any, kind: type) -> bool:
    if kind is float:
        return isinstance(value, int | float) and not isinstance(value, bool)
    if kind is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if kind is dict:
        return isinstance(value, Mapping)
    if kind is type(None):
        return value is None
    return isinstance(value, kind)


def check_table(
    table: object,
    spec: Mapping[str, type | tuple[type, ...]],
    where: str,
    *,
    required: tuple[str, ...] = (),
) -> dict[str, Any]:
    """Check a TOML table: a mapping, known keys, required keys, value types.

    Parameters
    ----------
    table : object
        The parsed table.
    spec : mapping of str to type or tuple of types
        Allowed keys and the types each accepts (``str``, ``int``, ``float``
        (ints accepted), ``bool``, ``list``, ``dict``, ``type(None)``); ``bool``
        never passes as a number.
    where : str
        How messages name the table, e.g. ``"[data]"`` or ``'segments."Lost"'``.
    required : tuple of str
        Keys that must be present.

    Returns
    -------
    dict
        The table as a plain dict.

    Raises
    ------
    ConfigError
        Not a table, an unknown or missing key, or a value of another type.
    """
    if not isinstance(table, Mapping):
        raise ConfigError(f"{where} must be a table, got {table!r}")
    check_keys(table, spec, where)
    for key, value in table.items():
        allowed = spec[key]
        kinds: tuple[type, ...] = allowed if isinstance(allowed, tuple) else (allowed,)
        if not any(_is(value, kind) for kind in kinds):
            names = " or ".join(
                _KIND_NAMES.get(k, k.__name__) for k in kinds if k is not type(None)
            )
            raise ConfigError(f"{where}.{key} must be {names}, got {value!r}")
    missing = [key for key in required if key not in table]
    if missing:
        raise ConfigError(f"missing required key(s) {missing} in {where}")
    return dict(table)


# --------------------------------------------------------------------------- writing


def _value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)  # a TOML basic string
    if isinstance(value, dt.date | dt.datetime):
        return value.isoformat()
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_value(v) for v in value) + "]"
    if isinstance(value, Mapping):
        items = ", ".join(f"{_key(k)} = {_value(v)}" for k, v in value.items() if v is not None)
        return "{ " + items + " }" if items else "{}"
    raise TypeError(f"cannot write {type(value).__name__} {value!r} as TOML")


def _key(key: str) -> str:
    bare = key.replace("_", "").replace("-", "").isalnum() and key.isascii()
    return key if bare else json.dumps(key)


def _is_table_list(value: Any) -> bool:
    return isinstance(value, list) and bool(value) and all(isinstance(v, Mapping) for v in value)


def dumps(table: Mapping[str, Any]) -> str:
    """A table as TOML text: scalars first, then ``[tables]``, then ``[[arrays of tables]]``.

    ``None`` values are left out (TOML has no null), so read back they take their
    default. Tables inside a section are written inline.
    """
    lines: list[str] = []
    for key, value in table.items():
        if value is not None and not isinstance(value, Mapping) and not _is_table_list(value):
            lines.append(f"{_key(key)} = {_value(value)}")
    for key, value in table.items():
        if isinstance(value, Mapping):
            lines += ["", f"[{_key(key)}]"]
            lines += [f"{_key(k)} = {_value(v)}" for k, v in value.items() if v is not None]
    for key, value in table.items():
        if _is_table_list(value):
            for entry in value:
                lines += ["", f"[[{_key(key)}]]"]
                lines += [f"{_key(k)} = {_value(v)}" for k, v in entry.items() if v is not None]
    return "\n".join(lines).lstrip("\n") + "\n"
