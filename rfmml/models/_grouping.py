"""Collapse identical customer rows to unique rows with counts.

Customers with the same (frequency, recency, T) have the same likelihood and
the same predictions, so fitting and scoring work on unique rows. Rows are
grouped with a hash (``pandas.factorize`` per column, then on the combined
integer key), which is linear in the number of rows; ``numpy.unique(axis=0)``
sorts and is much slower on millions of rows.
"""

from __future__ import annotations

import hashlib

import numpy as np
import pandas as pd

__all__ = ["group_rows", "fingerprint"]


def group_rows(*columns: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Group identical rows of several equal-length 1-d arrays.

    Parameters
    ----------
    *columns : numpy.ndarray
        The columns that together identify a row.

    Returns
    -------
    codes : numpy.ndarray
        For each input row, the index of its unique row.
    first : numpy.ndarray
        For each unique row, the position of one input row holding it.
    """
    key = None
    n_key = 1
    for col in columns:
        codes, uniques = pd.factorize(np.asarray(col), sort=False)
        if key is None:
            key, n_key = codes.astype(np.int64), len(uniques)
            continue
        if n_key * len(uniques) >= 2**62:  # keep the combined key inside int64
            key, kept = pd.factorize(key, sort=False)
            key, n_key = key.astype(np.int64), len(kept)
        key = key * len(uniques) + codes
        n_key *= len(uniques)
    codes, uniques = pd.factorize(key, sort=False)
    first = np.empty(len(uniques), dtype=np.int64)
    first[codes] = np.arange(len(codes), dtype=np.int64)
    return codes, first


def fingerprint(columns: dict[str, np.ndarray], weights: np.ndarray) -> str:
    """SHA-256 of the sorted unique rows and their counts.

    The same customers in any row order (or already collapsed to unique rows
    with weights) give the same fingerprint.

    Parameters
    ----------
    columns : dict of str to numpy.ndarray
        Unique rows, one array per column.
    weights : numpy.ndarray
        How many customers each unique row stands for.

    Returns
    -------
    str
        ``"sha256:<hex digest>"``.
    """
    arrays = [np.asarray(v, dtype=np.float64) for v in columns.values()]
    order = np.lexsort(arrays[::-1])
    digest = hashlib.sha256()
    for name, arr in zip(columns, arrays, strict=True):
        digest.update(name.encode())
        digest.update(np.ascontiguousarray(arr[order]).tobytes())
    digest.update(np.ascontiguousarray(np.asarray(weights, dtype=np.float64)[order]).tobytes())
    return "sha256:" + digest.hexdigest()
