"""Exceptions raised by rfmml.

Every error says what was expected, what was found and how to fix it. They
subclass the built-in exception a caller would naturally catch (``ValueError``
for bad values, ``RuntimeError`` for failed fits), so ``except ValueError``
keeps working for code that does not know rfmml.
"""

from __future__ import annotations

__all__ = ["RFMMLError", "DataError", "ConvergenceError", "ConfigError", "StateError"]


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
