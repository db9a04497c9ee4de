"""Scoring of the BG/NBD, MBG/NBD and Pareto/NBD through compiled row loops.

:class:`KernelScoringModel` gives the three models a faster
``probability_alive``, ``expected_purchases`` and ``alive_and_expected`` for
pandas summaries with plain numeric columns. One pass over the rows
(:func:`rfmml.models._kernels.count_valid`) makes the row checks of
:func:`rfmml.models._validation.check_summary` and finds the largest
frequency and age. In whole-number summaries (``btyd_summary`` in days,
weeks or months) the logarithms of ``alpha + T`` and the terms of each
distinct ``(frequency, age)`` pair are then looked up in tables indexed by
the values themselves: the pairs are marked in one more pass, their terms
(the hypergeometric factor of the expected purchases, Pareto/NBD's tail
integrals) evaluated once per pair by the reference formulas, and the
per-customer arithmetic runs in cache-sized blocks
(:mod:`rfmml.models._kernels`). The values are those of the reference
formulas: the same floating-point operations in the same order
(tests/models/test_kernels.py).

Everything else takes the reference path: the base methods when a row fails
the checks (they raise the error, with the same message) and for Spark
frames or columns of other types; the row functions of the base (without
checking the rows again) for per-customer horizons and summaries whose
values do not fit tables (continuous-time ages).

numba is imported on the first call, not with :mod:`rfmml.models`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar

import numpy as np
import pandas as pd

from rfmml.features._spark import is_spark
from rfmml.models._base import PurchaseModel
from rfmml.models._summary_checks import check_time_unit

__all__ = ["KernelScoringModel", "bg_alive_rows", "pareto_alive_rows", "check_rows"]

#: Frequencies and ages below this (whole numbers) index the tables.
TABLE_MAX = 2**22
#: Largest pair table: this many entries per customer, or at least DENSE_MIN.
#: Read at call time (tests raise it to cover large frequencies and ages).
DENSE_PER_ROW = 4
DENSE_MIN = 2**18


def _kernels() -> Any:
    from rfmml.models import _kernels

    return _kernels


def check_rows(x: np.ndarray, t_x: np.ndarray, T: np.ndarray) -> tuple[int, int] | None:
    """The row checks of ``check_summary`` and the table sizes, in one pass.

    Parameters
    ----------
    x, t_x, T : numpy.ndarray
        Frequency, recency and age (float64, contiguous).

    Returns
    -------
    tuple or None
        None when a row fails the checks; ``(0, 0)`` when some value is not a
        whole number below :data:`TABLE_MAX` (no tables); else the sizes of
        the tables of frequencies and ages, ``max + 1``.
    """
    n_ok, n_keyed, x_bits, T_bits = _kernels().count_valid(
        x, t_x, T, x.view(np.int64), T.view(np.int64), float(TABLE_MAX)
    )
    if n_ok < len(x):
        return None
    if n_keyed < len(x):
        return 0, 0
    top_x, top_T = np.array([x_bits, T_bits], dtype=np.int64).view(np.float64)
    return int(top_x) + 1, int(top_T) + 1


def pair_table_fits(n_x: int, n_T: int, n_rows: int) -> bool:
    """Whether the ``(x, T)`` pairs get a table of ``n_x * n_T`` entries."""
    size = n_x * n_T
    return 0 < size <= max(DENSE_PER_ROW * n_rows, DENSE_MIN)


def _marked_pairs(K: Any, x, t_x, T, n_x: int, n_T: int, with_t_x: bool):
    """The marks of the pairs (:func:`rfmml.models._kernels.mark_pairs`), their keys, x and u."""
    present = np.zeros(n_x * n_T, dtype=np.uint8)
    K.mark_pairs(x, t_x, T, n_T, present, with_t_x)
    keys = np.flatnonzero(present)
    x_u, u = np.divmod(keys, n_T)
    return present, keys, x_u.astype(float), u.astype(float)


def bg_alive_rows(
    x,
    t_x,
    T,
    n_x: int,
    n_T: int,
    theta: tuple[float, ...],
    *,
    modified: bool,
    horizon: float | None = None,
    if_alive: Callable[..., np.ndarray] | None = None,
    want_alive: bool = True,
):
    """P(alive) of the BG/NBD or MBG/NBD per row and, with ``horizon``, the expected purchases.

    Parameters
    ----------
    x, t_x, T : numpy.ndarray
        Frequency, recency and age: rows that passed :func:`check_rows`.
    n_x, n_T : int
        The table sizes :func:`check_rows` returned (not 0).
    theta : tuple of float
        ``r, alpha, a, b``.
    modified : bool
        MBG/NBD (else BG/NBD).
    horizon : float, optional
        One horizon for every customer: also the expected purchases,
        ``if_alive(horizon, x, T, *theta)`` (once per distinct ``(x, T)``)
        times P(alive), when the pairs fit a table (:func:`pair_table_fits`).
    if_alive : callable, optional
        The model's ``expected_purchases_if_alive`` formula.
    want_alive : bool, default True
        Also return P(alive) when the expected purchases are returned.

    Returns
    -------
    alive, expected : numpy.ndarray or None
        ``expected`` None without ``horizon`` or a pair table; ``alive``
        None when not wanted and ``expected`` is returned.
    """
    K = _kernels()
    r, alpha, a, b = theta
    n = len(x)
    log_aT = np.log(alpha + np.arange(n_T, dtype=float))
    levels = np.arange(n_x, dtype=float)
    if modified:
        lead = np.log(levels + b)
    else:  # ln(a / (b + x - 1)), -inf at x = 0 (P(alive) = 1)
        lead = np.log(a) - np.log(b + (np.maximum(levels, 1.0) - 1.0))
        lead[0] = -np.inf
    factor = None
    if horizon is not None and if_alive is not None and pair_table_fits(n_x, n_T, n):
        present, keys, x_T, T_T = _marked_pairs(K, x, t_x, T, n_x, n_T, False)
        factor = np.empty(len(present))
        factor[keys] = if_alive(horizon, x_T, T_T, *theta)
    # P(alive) of every row only when asked for: otherwise it stays in the block
    # buffer (one fresh output array less)
    alive = np.empty(n) if want_alive or factor is None else None
    expected = None if factor is None else np.empty(n)
    z = np.empty(min(n, K.BLOCK_ROWS))
    log_a = float(np.log(a))
    with np.errstate(over="ignore"):
        for start in range(0, n, K.BLOCK_ROWS):
            rows = slice(start, start + K.BLOCK_ROWS)
            xb, Tb = x[rows], T[rows]
            zb = z[: len(xb)]
            K.bg_log_odds(xb, t_x[rows], Tb, log_aT, lead, r, log_a, modified, zb)
            np.exp(zb, out=zb)  # the odds of being inactive
            alive_b = zb if alive is None else alive[rows]
            if expected is None:
                K.finish_alive(zb, alive_b)
            else:
                K.finish_alive_and_product(xb, Tb, n_T, zb, factor, alive_b, expected[rows])
    return alive, expected


def pareto_alive_rows(
    x,
    t_x,
    T,
    n_x: int,
    n_T: int,
    theta: tuple[float, ...],
    *,
    horizon: float | None = None,
    want_alive: bool = True,
):
    """P(alive) of the Pareto/NBD per row and, with ``horizon``, the expected purchases.

    The terms of :func:`rfmml.models._formulas_pareto.pareto_nbd_alive_and_expected`:
    ``ln I(u)`` (:func:`~rfmml.models._formulas_pareto.pareto_log_tail_integral`)
    once per distinct ``(x, t_x)`` and ``(x, T)`` pair (the same function of
    ``(x, u)`` for both), ``ln s - E1`` and the factor given alive once per
    ``(x, T)`` pair, the rest per row.

    Parameters
    ----------
    x, t_x, T, n_x, n_T
        As for :func:`bg_alive_rows`; the pairs must fit a table
        (:func:`pair_table_fits`).
    theta : tuple of float
        ``r, alpha, s, beta``.
    horizon, want_alive
        As for :func:`bg_alive_rows`.

    Returns
    -------
    alive, expected : numpy.ndarray or None
    """
    from rfmml.models import _formulas_pareto as F

    K = _kernels()
    r, alpha, s, beta = theta
    n = len(x)
    present, keys, x_u, u = _marked_pairs(K, x, t_x, T, n_x, n_T, True)
    log_i = np.empty(len(present))
    log_i[keys] = F.pareto_log_tail_integral(u, alpha, beta, r + x_u, s + 1.0)[0]
    ages = present[keys] >= 2
    keys_T, x_T, T_T = keys[ages], x_u[ages], u[ages]
    e1 = -(r + x_T) * np.log(alpha + T_T) - s * np.log(beta + T_T)
    lead = np.empty(len(present))
    lead[keys_T] = np.log(s) - e1
    factor = None
    if horizon is not None:
        factor = np.empty(len(present))
        factor[keys_T] = F.pareto_nbd_expected_purchases_if_alive(horizon, x_T, T_T, *theta)
    alive = np.empty(n) if want_alive or factor is None else None
    expected = None if factor is None else np.empty(n)
    y = np.empty(min(n, K.BLOCK_ROWS))
    with np.errstate(over="ignore", divide="ignore"):
        for start in range(0, n, K.BLOCK_ROWS):
            rows = slice(start, start + K.BLOCK_ROWS)
            xb, tb, Tb = x[rows], t_x[rows], T[rows]
            yb = y[: len(xb)]
            K.pareto_minus_delta(xb, tb, Tb, n_T, log_i, yb)
            np.expm1(yb, out=yb)
            np.negative(yb, out=yb)
            np.log(yb, out=yb)  # ln(1 - e^(-Delta)), -inf at Delta = 0
            K.pareto_log_odds(xb, tb, Tb, n_T, log_i, lead, yb)
            np.exp(yb, out=yb)  # the odds of being inactive
            alive_b = yb if alive is None else alive[rows]
            if expected is None:
                K.finish_alive(yb, alive_b)
            else:
                K.finish_alive_and_product(xb, Tb, n_T, yb, factor, alive_b, expected[rows])
    return alive, expected


def _scalar_horizon(t) -> float | None:
    """``t`` when it is one finite number >= 0, else None (arrays, NaN, inf, negatives)."""
    if isinstance(t, pd.Series) or np.ndim(t) != 0 or isinstance(t, bool):
        return None
    try:
        value = float(t)
    except (TypeError, ValueError):
        return None
    return value if 0.0 <= value < np.inf else None


class KernelScoringModel(PurchaseModel):
    """A :class:`~rfmml.models._base.PurchaseModel` scored by the compiled row loops.

    The base of the BG/NBD, MBG/NBD and Pareto/NBD: ``probability_alive``,
    ``expected_purchases`` and ``alive_and_expected`` take the kernels where
    they apply and the base's paths otherwise, and for every error (see the
    module docstring).
    """

    #: which rows function scores the model: "bg", "mbg" or "pareto"
    _kernel: ClassVar[str] = ""

    def _plain_columns(self, X: Any) -> tuple[np.ndarray, ...] | None:
        """The summary columns as float64 arrays when the fast path applies, else None.

        Only the frame-level checks of ``check_summary`` are made here (a frame,
        not empty, the columns present, numeric numpy dtypes, valid weights);
        the rows are checked by :func:`check_rows`.
        """
        self._theta()  # NotFittedError first, as in the base
        if is_spark(X) or not isinstance(X, pd.DataFrame) or len(X) == 0:
            return None
        names = list(self.fit_columns) + (["weights"] if "weights" in X.columns else [])
        arrays = []
        for name in names:
            if name not in X.columns:
                return None
            col = X[name]
            if not isinstance(col, pd.Series) or not isinstance(col.dtype, np.dtype):
                return None
            if col.dtype.kind not in "fiu":
                return None
            arrays.append(np.ascontiguousarray(col.to_numpy(dtype=np.float64)))
        if len(arrays) > len(self.fit_columns):
            w = arrays.pop()
            if not (w.min() > 0 and w.max() < np.inf):
                return None
        return tuple(arrays)

    def _checked(self, X: Any) -> tuple[tuple[np.ndarray, ...], tuple[int, int]] | None:
        """Columns and table sizes of a summary that passes the checks of the base's ``_columns``.

        None when the base should run instead (and raise, for invalid rows).
        """
        columns = self._plain_columns(X)
        if columns is None:
            return None
        sizes = check_rows(*columns)
        if sizes is None:
            return None
        self._check_columns(X, dict(zip(self.fit_columns, columns, strict=True)))
        if self._strict_summary:
            check_time_unit(X, self.freq_, self.kind)
        return columns, sizes

    def _kernel_rows(self, columns, sizes, horizon, want_alive=True):
        """``(alive, expected)`` by the kernels (see :func:`bg_alive_rows`), or None."""
        x, t_x, T = columns
        n_x, n_T = sizes
        theta = self._theta()
        if self._kernel == "pareto":
            if not pair_table_fits(n_x, n_T, len(x)):
                return None
            return pareto_alive_rows(
                x, t_x, T, n_x, n_T, theta, horizon=horizon, want_alive=want_alive
            )
        if not n_x:
            return None
        return bg_alive_rows(
            x,
            t_x,
            T,
            n_x,
            n_T,
            theta,
            modified=self._kernel == "mbg",
            horizon=horizon,
            if_alive=self._formula("expected_purchases_if_alive"),
            want_alive=want_alive,
        )

    def _scored(self, X: Any, t, want_alive: bool):
        """``(alive or None, expected)`` of a checked summary; None when the base should run."""
        checked = self._checked(X)
        if checked is None:
            return None
        columns, sizes = checked
        horizon = _scalar_horizon(t)
        out = None if horizon is None else self._kernel_rows(columns, sizes, horizon, want_alive)
        alive, expected = (None, None) if out is None else out
        if expected is not None:
            return alive, expected
        # the base's row functions: the rows are checked, the horizon is checked here
        x, t_x, T = columns
        horizons = self._purchase_horizon(t, len(X))
        theta = self._theta()
        if alive is not None:  # P(alive) from the kernels, the factor per distinct row
            return alive, self._expected_rows(x, t_x, T, horizons, theta, alive=alive)
        if want_alive:
            return self._alive_and_expected_rows(x, t_x, T, horizons, theta)
        return None, self._expected_rows(x, t_x, T, horizons, theta)

    # ------------------------------------------------------------------ methods
    def probability_alive(self, X: pd.DataFrame) -> pd.Series:
        checked = self._checked(X)
        if checked is None:
            return super().probability_alive(X)
        columns, sizes = checked
        out = self._kernel_rows(columns, sizes, None)
        x, t_x, T = columns
        alive = self._alive_rows(x, t_x, T, self._theta()) if out is None else out[0]
        return pd.Series(alive, index=X.index, name="probability_alive")

    def expected_purchases(self, X: pd.DataFrame, t) -> pd.Series:
        out = self._scored(X, t, want_alive=False)
        if out is None:
            return super().expected_purchases(X, t)
        return pd.Series(out[1], index=X.index, name="expected_purchases")

    def alive_and_expected(self, X: pd.DataFrame, t) -> pd.DataFrame:
        out = self._scored(X, t, want_alive=True)
        if out is None:
            return super().alive_and_expected(X, t)
        return pd.DataFrame(  # copy=False: two columns, not one stacked block (a copy)
            {"probability_alive": out[0], "expected_purchases": out[1]},
            index=X.index,
            copy=False,
        )

    probability_alive.__doc__ = PurchaseModel.probability_alive.__doc__
    expected_purchases.__doc__ = PurchaseModel.expected_purchases.__doc__
    alive_and_expected.__doc__ = PurchaseModel.alive_and_expected.__doc__
