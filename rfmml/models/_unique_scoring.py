"""Evaluate a per-customer prediction once per distinct input row.

Customers with the same (frequency, recency, T[, horizon]) get the same
prediction; summaries in whole periods repeat rows a lot (a daily summary of
100k customers has ~40k distinct rows, a BG/BB summary of opportunities a
few hundred), so predictions are computed on the distinct rows and gathered
back.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from rfmml.models._grouping import group_rows

__all__ = ["on_unique_rows"]


def on_unique_rows(fn: Callable[..., np.ndarray], *columns: np.ndarray) -> np.ndarray:
    """``fn(*columns)`` evaluated on the distinct rows of ``columns`` only.

    Parameters
    ----------
    fn : callable
        Elementwise in its array arguments (one output per row).
    *columns : numpy.ndarray
        Equal-length 1-d arrays; a column whose values are all equal is
        passed to ``fn`` as that single value.

    Returns
    -------
    numpy.ndarray
        One value per input row.
    """
    varying = [c for c in columns if len(c) and not np.all(c == c[0])]
    if not varying:
        return np.broadcast_to(fn(*(c[:1] for c in columns)), columns[0].shape).copy()
    codes, first = group_rows(*varying)
    if len(first) == len(columns[0]):
        return np.asarray(fn(*columns))
    return np.asarray(fn(*(c[first] for c in columns)))[codes]
