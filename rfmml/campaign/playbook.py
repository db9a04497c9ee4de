"""Playbook: the recommended action, channel and priority of each segment, kept as TOML data.

A playbook file has optional top-level ``name`` and ``description``, a required
``[default]`` table and a ``[segments."<segment name>"]`` table per segment. Each
entry has a required ``action`` (non-empty text), an optional ``channel`` (text)
and an optional ``priority`` (integer >= 1, 1 = contact first); omitted values
come from ``[default]``. The shipped ``rfmml/campaign/playbook.toml`` covers every
segment of the built-in ``rf_grid`` and ``rfm11`` schemes.

Lookup order for a segment: its playbook entry, else the action the scheme
recommends for it (``Scheme.segments["action"]``) with the default channel and
priority, else ``[default]``.

Examples
--------
>>> playbook = load_playbook(None)
>>> playbook.action("Lost")
'suppress from paid campaigns'
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

import pandas as pd

from rfmml._toml import check_table, read_toml
from rfmml.errors import ConfigError
from rfmml.segments import Scheme

__all__ = ["Playbook", "PlaybookEntry", "load_playbook"]

# Keys and value types (tables are checked where they are read).
_TOP_KEYS = {"name": str, "description": str, "default": object, "segments": object}
_ENTRY_KEYS = {"action": str, "channel": str, "priority": int}


@dataclass(frozen=True)
class PlaybookEntry:
    """What to do with one segment.

    Attributes
    ----------
    action : str
        Recommended action.
    channel : str
        Channel to run it on (e.g. ``"email"``, ``"phone"``).
    priority : int
        1 = contact first; larger numbers later.
    """

    action: str
    channel: str
    priority: int


@dataclass(frozen=True)
class Playbook:
    """A validated playbook; build it with :func:`load_playbook`.

    Attributes
    ----------
    default : PlaybookEntry
        Used for segments neither the playbook nor the scheme knows.
    entries : dict of str to PlaybookEntry
        One entry per segment name.
    name, description, source : str
        Metadata; ``source`` is the file (or ``"<builtin>"``) it came from.
    """

    default: PlaybookEntry
    entries: dict[str, PlaybookEntry] = field(default_factory=dict)
    name: str = ""
    description: str = ""
    source: str = "<dict>"

    def entry(self, segment: str, scheme: Scheme | None = None) -> PlaybookEntry:
        """Entry of a segment, with the fallbacks of the module docstring.

        Parameters
        ----------
        segment : str
            Segment name.
        scheme : Scheme, optional
            Scheme the segment comes from; its recommended action is the first
            fallback.

        Returns
        -------
        PlaybookEntry
        """
        segment = str(segment)
        if segment in self.entries:
            return self.entries[segment]
        if scheme is not None and segment in scheme.segments.index:
            return PlaybookEntry(
                action=str(scheme.segments.loc[segment, "action"]),
                channel=self.default.channel,
                priority=self.default.priority,
            )
        return self.default

    def action(self, segment: str, scheme: Scheme | None = None) -> str:
        """Recommended action of a segment (see :meth:`entry`)."""
        return self.entry(segment, scheme).action

    def to_frame(self) -> pd.DataFrame:
        """The playbook as a table: one row per segment plus ``(default)`` last.

        Returns
        -------
        pandas.DataFrame
            Index ``segment``; columns ``action``, ``channel``, ``priority``.
        """
        rows = {**self.entries, "(default)": self.default}
        frame = pd.DataFrame(
            {
                "action": [e.action for e in rows.values()],
                "channel": [e.channel for e in rows.values()],
                "priority": [e.priority for e in rows.values()],
            },
            index=pd.Index(list(rows), name="segment"),
        )
        return frame

    @classmethod
    def from_dict(cls, config: Mapping[str, object], source: str = "<dict>") -> Playbook:
        """Check a parsed playbook (a ``tomllib`` table) named ``source`` in errors; build it.

        Raises
        ------
        ConfigError
            Unknown keys, a missing ``[default]`` or ``action``, or values of the
            wrong type; the message names the offending key (e.g.
            ``segments."At Risk".priority``).
        """
        if not isinstance(config, Mapping):
            raise ConfigError(f"{source}: a playbook must be a table, got {type(config).__name__}.")
        check_table(config, _TOP_KEYS, source)
        raw_default = config.get("default")
        if not isinstance(raw_default, Mapping):
            raise ConfigError(
                f"{source}: a [default] table with at least an action is required, e.g. "
                "[default] action = 'keep in the regular newsletter'."
            )
        default = _entry(raw_default, "default", source, fallback=None)
        raw_segments = config.get("segments", {})
        if not isinstance(raw_segments, Mapping):
            raise ConfigError(
                f'{source}: segments must be tables [segments."<name>"], got {raw_segments!r}.'
            )
        entries = {
            str(name): _entry(value, f"segments.{_quote(name)}", source, fallback=default)
            for name, value in raw_segments.items()
        }
        return cls(
            default=default,
            entries=entries,
            name=str(config.get("name", "")),
            description=str(config.get("description", "")),
            source=source,
        )


def _quote(name: object) -> str:
    return '"' + str(name).replace('"', '\\"') + '"'


def _entry(
    raw: object, where: str, source: str, *, fallback: PlaybookEntry | None
) -> PlaybookEntry:
    table = check_table(raw, _ENTRY_KEYS, f"{source}: {where}")
    action = table.get("action")
    if not isinstance(action, str) or not action.strip():
        raise ConfigError(f"{source}: {where}.action must be non-empty text, got {action!r}.")
    channel = table.get("channel", fallback.channel if fallback else "")
    priority = table.get("priority", fallback.priority if fallback else 1)
    if priority < 1:
        raise ConfigError(
            f"{source}: {where}.priority must be an integer >= 1 (1 = first), got {priority!r}."
        )
    return PlaybookEntry(action=action.strip(), channel=channel.strip(), priority=priority)


def load_playbook(path_or_none: str | Path | Playbook | None = None) -> Playbook:
    """Load the shipped playbook, or a marketer's own TOML file.

    Parameters
    ----------
    path_or_none : str, pathlib.Path, Playbook or None
        ``None`` for the shipped ``rfmml/campaign/playbook.toml``, a path to a
        TOML file (format in the module docstring), or a ``Playbook`` (returned
        unchanged).

    Returns
    -------
    Playbook

    Raises
    ------
    ConfigError
        Unreadable file, invalid TOML, or an invalid playbook (the message names
        the bad key).
    """
    if isinstance(path_or_none, Playbook):
        return path_or_none
    if path_or_none is None:
        source = "<builtin playbook.toml>"
        config = read_toml(resources.files("rfmml.campaign") / "playbook.toml", "playbook")
    else:
        source = str(path_or_none)
        config = read_toml(Path(path_or_none), "playbook")
    return Playbook.from_dict(config, source=source)
