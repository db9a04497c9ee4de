"""Input checks for customer summary frames, shared by the models.

Every check raises :class:`rfmml.errors.DataError` naming the column, the
number of offending rows and the first offending customer id.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import pandas as pd

from rfmml.errors import DataError

__all__ = ["check_summary", "first_id"]


def first_id(index: pd.Index, mask: np.ndarray):
    """The index label of the first row where ``mask`` holds, as a plain Python value."""
    label = index[np.flatnonzero(mask)[0]]
    return label.item() if isinstance(label, np.generic) else label


def _bad_rows(summary: pd.DataFrame, mask: np.ndarray, column: str, rule: str, hint: str) -> None:
    n_bad = int(mask.sum())
    if n_bad:
        first = first_id(summary.index, mask)
        raise DataError(
            f"{column} must be {rule}, but {n_bad} of {len(summary)} customers violate this "
            f"(first customer_id={first!r}). {hint}"
        )


#: Rows per block of the elementwise checks: their boolean and float temporaries
#: stay in cache instead of costing a page fault per 4 KiB on million-row columns.
_BLOCK = 2**14


def _any_in_blocks(rule: Callable[[slice], np.ndarray], n: int) -> bool:
    """Whether ``rule(rows)`` (a boolean array for a slice of rows) holds anywhere."""
    return any(bool(rule(slice(i, i + _BLOCK)).any()) for i in range(0, n, _BLOCK))


def require_summary_columns(found: Sequence[Any], columns: Sequence[str], what: str) -> None:
    """Raise :class:`DataError` when a summary (pandas or Spark) lacks model columns."""
    missing = [c for c in columns if c not in found]
    if missing:
        raise DataError(
            f"{what} needs columns {list(columns)}, but {missing} are missing "
            f"(found {list(found)}). Build the frame with rfmml.features.btyd_summary "
            "or rename your columns."
        )


def check_summary(
    summary: pd.DataFrame,
    columns: Sequence[str] = ("frequency", "recency", "T"),
    *,
    what: str = "the model",
    weights: bool = True,
) -> dict[str, np.ndarray]:
    """Validate a BTYD summary frame and return its columns as float arrays.

    Parameters
    ----------
    summary : pandas.DataFrame
        One row per customer with at least ``columns``; an optional
        ``weights`` column counts the customers a row stands for.
    columns : sequence of str
        Required columns among ``frequency``, ``recency``, ``T``,
        ``monetary_value``.
    what : str
        Name of the caller, used in messages.
    weights : bool, default True
        Return ``weights`` also when the frame has none (ones); with False
        it is returned only when the frame has the column.

    Returns
    -------
    dict of str to numpy.ndarray
        The required columns plus ``weights`` (ones when absent, unless
        ``weights=False``), float64.

    Raises
    ------
    TypeError
        If ``summary`` is not a DataFrame.
    DataError
        If the frame is empty, a column is missing or not numeric, or holds
        NaN, infinite, negative or non-integer (frequency) values, recency
        exceeds T, recency is not 0 for customers without repeat purchases,
        or weights are not positive.
    """
    if not isinstance(summary, pd.DataFrame):
        raise TypeError(
            f"{what} expects a pandas DataFrame with columns {list(columns)}, "
            f"got {type(summary).__name__}. Build one with rfmml.features.btyd_summary."
        )
    if len(summary) == 0:
        raise DataError(
            f"{what} got an empty summary frame (0 customers). Check the date range and "
            "filters used to build it."
        )
    require_summary_columns(list(summary.columns), columns, what)
    names = list(columns) + (["weights"] if "weights" in summary.columns else [])
    out: dict[str, np.ndarray] = {}
    for name in names:
        col = summary[name]
        if not (pd.api.types.is_numeric_dtype(col) and not pd.api.types.is_bool_dtype(col)):
            raise DataError(
                f"{name} must be numeric, but has dtype {col.dtype}. Convert it with "
                "pandas.to_numeric."
            )
        values = col.to_numpy(dtype=np.float64, na_value=np.nan)
        # two reductions when all is well: min and max are NaN if any value is NaN
        if not (values.min() >= 0 and values.max() < np.inf):
            _bad_rows(summary, np.isnan(values), name, "a number (not NaN)", "Fill or drop them.")
            _bad_rows(summary, np.isinf(values), name, "finite", "Drop infinite values.")
            _bad_rows(summary, values < 0, name, ">= 0", "Negative values are not valid here.")
        out[name] = values
    if "weights" in out:
        if out["weights"].min() <= 0:
            _bad_rows(
                summary, out["weights"] <= 0, "weights", "> 0", "Drop rows with no customers."
            )
    elif weights:
        out["weights"] = np.ones(len(summary))
    if "frequency" in out:
        x = out["frequency"]
        if _any_in_blocks(lambda b: np.floor(x[b]) != x[b], len(x)):
            _bad_rows(
                summary,
                x != np.floor(x),
                "frequency",
                "an integer (a count of repeat purchase periods)",
                "Did you pass a rate or a mean instead of a count?",
            )
    if (
        "recency" in out
        and "T" in out
        and _any_in_blocks(lambda b: out["recency"][b] > out["T"][b], len(summary))
    ):
        _bad_rows(
            summary,
            out["recency"] > out["T"],
            "recency",
            "<= T",
            "Are recency and T in the same time unit and measured from the first purchase?",
        )
    if (
        "recency" in out
        and "frequency" in out
        and _any_in_blocks(
            lambda b: (out["frequency"][b] == 0) & (out["recency"][b] != 0), len(summary)
        )
    ):
        _bad_rows(
            summary,
            (out["frequency"] == 0) & (out["recency"] != 0),
            "recency",
            "0 for customers with frequency 0",
            "recency is the time from the first to the last repeat purchase.",
        )
    return out
