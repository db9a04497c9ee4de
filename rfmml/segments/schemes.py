"""Rule schemes: segment maps over R, F, M and FM scores, kept as TOML data.

A scheme file has top-level ``name``, ``description``, ``n_scores`` (default 5),
an optional ``default`` segment, a ``[[segments]]`` list (``name``,
``description``, ``action``; the list order is the display order) and an ordered
``[[rules]]`` list. Each rule names a ``segment`` and constrains any of the score
keys ``R``, ``F``, ``M``, ``FM`` to one score (``R = 5``) or an inclusive range
(``F = [2, 3]``); an omitted key matches every score. The first matching rule
wins; cells no rule matches get ``default``. Without a default every cell must be
matched, and loading lists the cells that are not.

Built-in schemes ship in ``rfmml/segments/schemes``: ``rf_grid`` (10 segments on
R x F) and ``rfm11`` (11 segments on R x FM).

Examples
--------
>>> scheme = load_scheme("rf_grid")
>>> scheme.segments.loc["Champions", "action"]
'VIP reward'
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from rfmml._toml import check_keys, check_table, read_toml
from rfmml.errors import ConfigError, DataError

__all__ = ["Rule", "Scheme", "load_scheme", "builtin_schemes"]

SCORE_KEYS = ("R", "F", "M", "FM")
_TOP_KEYS = {"name", "description", "n_scores", "default", "segments", "rules"}
_SEGMENT_KEYS = {"name", "description", "action"}
_RULE_KEYS = {"segment", *SCORE_KEYS}


@dataclass(frozen=True)
class Rule:
    """One rule of a scheme: a segment and inclusive score ranges.

    Attributes
    ----------
    segment : str
        Segment assigned when the rule matches.
    ranges : tuple of (str, int, int)
        ``(score_key, low, high)`` constraints; keys not listed match any score.
    """

    segment: str
    ranges: tuple[tuple[str, int, int], ...]

    def matches(self, cell: Mapping[str, int]) -> bool:
        """Whether a cell (score key -> score) satisfies every range of the rule."""
        return all(lo <= cell[key] <= hi for key, lo, hi in self.ranges)


def _entries(config: Mapping[str, object], key: str, source: str) -> list:
    """The ``[[key]]`` tables of a scheme; at least one is required."""
    raw = config.get(key)
    if not isinstance(raw, list) or not raw:
        raise ConfigError(f"{source}: {key} must be a non-empty list of [[{key}]].")
    return raw


def _parse_range(value: object, key: str, n_scores: int) -> tuple[int, int]:
    if isinstance(value, bool):
        raise ConfigError(f"{key}: expected a score or [low, high], got {value!r}.")
    if isinstance(value, int):
        lo = hi = value
    elif (
        isinstance(value, list)
        and len(value) == 2
        and all(isinstance(v, int) and not isinstance(v, bool) for v in value)
    ):
        lo, hi = value
    else:
        raise ConfigError(f"{key}: expected a score or [low, high] of integers, got {value!r}.")
    if not 1 <= lo <= hi <= n_scores:
        raise ConfigError(
            f"{key}: range [{lo}, {hi}] must satisfy 1 <= low <= high <= n_scores={n_scores}."
        )
    return lo, hi


@dataclass(repr=False, eq=False)
class Scheme:
    """A validated segment scheme; build it with :func:`load_scheme`.

    Attributes
    ----------
    name, description : str
    n_scores : int
        Scores run from 1 to ``n_scores``.
    segments : pandas.DataFrame
        One row per segment (index ``segment``, display order) with ``description``
        and ``action`` columns.
    rules : tuple of Rule
        The ordered rules (first match wins).
    default : str or None
        Segment for cells no rule matches.
    axes : tuple of str
        Score keys the rules use, in ``R, F, M, FM`` order (e.g. ``("R", "F")``).
    """

    name: str
    description: str
    n_scores: int
    segments: pd.DataFrame
    rules: tuple[Rule, ...]
    default: str | None
    axes: tuple[str, ...] = field(init=False)
    _codes: np.ndarray = field(init=False)

    def __post_init__(self) -> None:
        used = {key for rule in self.rules for key, _, _ in rule.ranges}
        self.axes = tuple(k for k in SCORE_KEYS if k in used) or ("R",)
        self._codes = self._build_lookup()

    def __repr__(self) -> str:
        return (
            f"Scheme(name={self.name!r}, axes={self.axes}, n_scores={self.n_scores}, "
            f"segments={len(self.segments)})"
        )

    def require_score_columns(self, columns: Any) -> None:
        """Raise :class:`DataError` unless ``columns`` hold every score key of the scheme."""
        missing = [k for k in self.axes if k not in columns]
        if missing:
            raise DataError(
                f"scheme {self.name!r} needs score column(s) {missing}; available columns "
                f"are {list(map(str, columns))}. Score with RFMScorer first."
            )

    @property
    def segment_names(self) -> list[str]:
        """Segment names in display order."""
        return list(self.segments.index)

    def _cells(self) -> list[tuple[int, ...]]:
        return list(itertools.product(range(1, self.n_scores + 1), repeat=len(self.axes)))

    def _build_lookup(self) -> np.ndarray:
        """Segment code of every cell of the axes grid; raise on uncovered cells."""
        names = self.segment_names
        position = {n: i for i, n in enumerate(names)}
        codes = np.full(self.n_scores ** len(self.axes), -1, dtype=np.int64)
        uncovered = []
        for flat, cell in enumerate(self._cells()):
            values = dict(zip(self.axes, cell, strict=True))
            hit = next((r.segment for r in self.rules if r.matches(values)), self.default)
            if hit is None:
                uncovered.append("".join(f"{k}{v}" for k, v in values.items()))
            else:
                codes[flat] = position[hit]
        if uncovered:
            shown = ", ".join(uncovered[:30]) + (" ..." if len(uncovered) > 30 else "")
            raise ConfigError(
                f"scheme {self.name!r}: {len(uncovered)} score cell(s) match no rule and "
                f"there is no default: {shown}. Add rules for them or set default = '...'."
            )
        return codes

    @classmethod
    def from_dict(cls, config: Mapping[str, object], source: str = "<dict>") -> Scheme:
        """Validate a parsed scheme (the table ``tomllib`` reads) and build it.

        ``source`` says where it came from in error messages.

        Raises
        ------
        ConfigError
            Unknown keys, bad ranges, unknown segments or uncovered cells; the
            message names the offending key (e.g. ``rules[3].F``).
        """
        check_keys(config, _TOP_KEYS, source)
        name = config.get("name", Path(source).stem)
        n_scores = config.get("n_scores", 5)
        if isinstance(n_scores, bool) or not isinstance(n_scores, int) or not 2 <= n_scores <= 20:
            raise ConfigError(f"{source}: n_scores must be an integer in 2..20, got {n_scores!r}.")
        rows = []
        for i, seg in enumerate(_entries(config, "segments", source)):
            where = f"{source}: segments[{i}]"
            check_table(seg, dict.fromkeys(_SEGMENT_KEYS, str), where)
            for key in sorted(_SEGMENT_KEYS):
                if not isinstance(seg.get(key), str) or not seg[key].strip():
                    raise ConfigError(f"{where}.{key} must be a non-empty string.")
            rows.append(seg)
        segments = pd.DataFrame(rows).set_index("name")[["description", "action"]]
        segments.index.name = "segment"
        dupes = segments.index[segments.index.duplicated()].unique().tolist()
        if dupes:
            raise ConfigError(f"{source}: segments.name repeated: {dupes}.")
        known = set(segments.index)

        rules = []
        for i, rule in enumerate(_entries(config, "rules", source)):
            where = f"{source}: rules[{i}]"
            check_table(rule, dict.fromkeys(_RULE_KEYS, (str, int, list)), where)
            segment = rule.get("segment")
            if segment not in known:
                raise ConfigError(
                    f"{where}.segment {segment!r} is not declared in [[segments]]; "
                    f"declared: {sorted(known)}."
                )
            ranges = tuple(
                (key, *_parse_range(rule[key], f"{where}.{key}", n_scores))
                for key in SCORE_KEYS
                if key in rule
            )
            rules.append(Rule(segment=segment, ranges=ranges))
        default = config.get("default")
        if default is not None and (not isinstance(default, str) or default not in known):
            raise ConfigError(
                f"{source}: default {default!r} is not declared in [[segments]]; "
                f"declared: {sorted(known)}."
            )
        return cls(
            name=str(name),
            description=str(config.get("description", "")),
            n_scores=n_scores,
            segments=segments,
            rules=tuple(rules),
            default=default,
        )

    def label(self, scores: pd.DataFrame) -> pd.Series:
        """Segment of each customer from its scores.

        Parameters
        ----------
        scores : pandas.DataFrame
            Integer score columns for every key in ``axes`` (``R``, ``F``, ``M``,
            ``FM``), e.g. the output of :class:`RFMScorer`.

        Returns
        -------
        pandas.Series
            Categorical named ``"segment"`` with the scheme's segments as categories
            (display order), aligned to ``scores.index``.

        Raises
        ------
        DataError
            Missing score columns, missing values or scores outside 1..n_scores.
        """
        if not isinstance(scores, pd.DataFrame):
            raise TypeError(f"Scheme.label expects a DataFrame, got {type(scores).__name__}.")
        self.require_score_columns(scores.columns)
        n = self.n_scores
        flat = np.zeros(len(scores), dtype=np.int64)
        for key in self.axes:
            column = scores[key]
            if isinstance(column.dtype, np.dtype) and column.dtype.kind in "iu":  # RFMScorer
                values = column.to_numpy()
                bad = (values < 1) | (values > n)
            else:
                values = pd.to_numeric(column, errors="coerce").to_numpy(dtype=float)
                bad = np.isnan(values) | (values < 1) | (values > n) | (values != np.round(values))
            if bad.any():
                raise DataError(
                    f"scheme {self.name!r}: column {key!r} has {int(bad.sum())} of "
                    f"{len(scores)} values that are missing or not integers in 1..{n}."
                )
            flat = flat * n + (values.astype(np.int64) - 1)
        codes = self._codes[flat]
        labels = pd.Categorical.from_codes(codes, categories=self.segment_names)
        return pd.Series(labels, index=scores.index, name="segment")

    def grid(self) -> pd.DataFrame:
        """The scheme as a table: first axis on rows (high to low), second on columns.

        Returns
        -------
        pandas.DataFrame
            For a two-axis scheme, e.g. rows ``R`` = n..1 and columns ``F`` = 1..n,
            holding segment names.

        Raises
        ------
        ConfigError
            If the scheme does not use exactly two score keys.
        """
        if len(self.axes) != 2:
            raise ConfigError(
                f"scheme {self.name!r} uses {len(self.axes)} score keys {self.axes}; "
                f"grid() needs exactly two."
            )
        n = self.n_scores
        row_key, col_key = self.axes
        cells = pd.DataFrame(self._cells(), columns=list(self.axes))
        cells["segment"] = np.asarray(self.segment_names, dtype=object)[self._codes]
        table = cells.pivot(index=row_key, columns=col_key, values="segment")
        return table.loc[list(range(n, 0, -1)), list(range(1, n + 1))]


def builtin_schemes() -> list[str]:
    """Names of the schemes shipped with rfmml."""
    folder = resources.files("rfmml.segments") / "schemes"
    return sorted(p.name[:-5] for p in folder.iterdir() if p.name.endswith(".toml"))


def load_scheme(name_or_path: str | Path | Scheme) -> Scheme:
    """Load and validate a built-in scheme by name, or a user scheme from a TOML file.

    Parameters
    ----------
    name_or_path : str, pathlib.Path or Scheme
        A built-in name (``"rf_grid"``, ``"rfm11"``), a path to a ``.toml`` file,
        or a ``Scheme`` (returned unchanged).

    Returns
    -------
    Scheme

    Raises
    ------
    ConfigError
        Unknown name, unreadable file, invalid TOML, or an invalid scheme.
    """
    if isinstance(name_or_path, Scheme):
        return name_or_path
    text = str(name_or_path)
    if isinstance(name_or_path, str) and "/" not in text and not text.endswith(".toml"):
        if text not in builtin_schemes():
            raise ConfigError(
                f"unknown scheme {text!r}; built-in schemes are {builtin_schemes()}, "
                f"or pass a path to a .toml file."
            )
        config = read_toml(resources.files("rfmml.segments") / "schemes" / f"{text}.toml", "scheme")
    else:
        config = read_toml(Path(name_or_path), "scheme")
    return Scheme.from_dict(config, source=text)
