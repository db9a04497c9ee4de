"""Exceptions raised by rfmml.

Every error says what was expected, what was found and how to fix it. They
subclass the built-in exception a caller would naturally catch (``ValueError``
for bad values, ``RuntimeError`` for failed fits), so ``except ValueError``
keeps working for code that does not know rfmml.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

__all__ = [
    "RFMMLError",
    "DataError",
    "ConvergenceError",
    "ConfigError",
    "StateError",
    "require_columns",
]


class RFMMLError(Exception):
    """Base class of every exception rfmml raises on purpose."""


class DataError(RFMMLError, ValueError):
    """Input data is missing columns, has unparseable or invalid values, or is empty."""


class ConvergenceError(RFMMLError, RuntimeError):
    """A model fit did not reach a valid optimum from any starting point."""


class ConfigError(RFMMLError, ValueError):
    """An experiment configuration or a segment scheme is invalid."""


class StateError(RFMMLError, RuntimeError):
    """A customer state file cannot be opened or changed (locked, read-only, newer format)."""


def require_columns(frame: Any, columns: Sequence[str], where: str, hint: str = "") -> None:
    """Raise :class:`DataError` naming the columns of ``frame`` that are missing.

    The message lists the columns that are there; ``hint`` (a sentence) follows.
    """
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise DataError(
            f"{where}: missing column(s) {missing}; available columns are "
            f"{list(map(str, frame.columns))}.{' ' + hint if hint else ''}"
        )
