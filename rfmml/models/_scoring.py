"""Scoring of the BG/NBD, MBG/NBD and Pareto/NBD through compiled row loops.

:class:`KernelScoringModel` gives the three models a faster
``probability_alive``, ``expected_purchases`` and ``alive_and_expected`` for
pandas summaries with plain numeric columns. Block by block, a vectorised
loop (:func:`rfmml.models._kernels.count_valid`) makes the row checks of
:func:`rfmml.models._validation.check_summary` and finds the largest
frequency and age; in whole-number summaries (``btyd_summary`` in days,
weeks or months) the logarithms of ``alpha + T`` and the terms of each
distinct ``(frequency, age)`` pair are then looked up in tables indexed by
the values themselves (grown as the blocks need them): the pairs are marked
while the block is in cache, their terms (the hypergeometric factor of the
expected purchases, Pareto/NBD's tail integrals) evaluated once per pair,
and the per-customer arithmetic runs on the block
(:mod:`rfmml.models._kernels`). The BG/NBD and MBG/NBD factor of the pairs
is the closed form of the reference formula in compiled loops around numpy's
``log`` and ``exp`` (:func:`_if_alive_terms`), with ``2F1`` by a compiled
Gauss series that reproduces :func:`scipy.special.hyp2f1` where scipy sums
that series (:func:`gauss_hyp2f1`); the reference formula evaluates the
pairs where it takes another route. The values are those of the reference
formulas: the same floating-point operations in the same order, so the same
values to the last bit (tests/models/test_kernels.py).

Summaries of fewer than :data:`KERNEL_MIN_ROWS` customers take the numpy
paths: the first call in a process imports numba and loads the compiled loops
from its disk cache (about 0.3-0.9 s; compiling them when there is no cache
takes a few seconds), more than the loops save on small summaries.

Everything else takes the reference path: the base methods when a row fails
the checks (they raise the error, with the same message) and for Spark
frames or columns of other types; the row functions of the base (without
checking the rows again) for per-customer horizons and summaries whose
values do not fit tables (continuous-time ages).

numba is imported on the first call, not with :mod:`rfmml.models`; without
numba every call takes the base's numpy paths (the same values).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, ClassVar

import numpy as np
import pandas as pd
from scipy.special import expit, hyp2f1

from rfmml._compiled import compiled_module
from rfmml.features._spark import is_spark
from rfmml.models._base import PurchaseModel
from rfmml.models._summary_checks import check_time_unit

__all__ = [
    "KernelScoringModel",
    "bg_alive_rows",
    "pareto_alive_rows",
    "check_rows",
    "gauss_hyp2f1",
]

#: Smaller summaries take the numpy paths: importing numba (and loading the compiled
#: loops from its cache) costs more than the loops save on them. Read at call time.
KERNEL_MIN_ROWS = 10_000
#: Frequencies and ages below this (whole numbers) index the tables.
TABLE_MAX = 2**22
#: Largest pair table: this many entries per customer, or at least DENSE_MIN (each
#: table of pair terms then costs at most 8 bytes per customer).
#: Read at call time (tests raise it to cover large frequencies and ages).
DENSE_PER_ROW = 1
DENSE_MIN = 2**18


def _kernels() -> Any:
    """:mod:`rfmml.models._kernels`, imported on first use; None without numba."""
    return compiled_module("rfmml.models._kernels")


def _gauss_hyp2f1(A, B, C, z) -> np.ndarray:
    """:func:`scipy.special.hyp2f1` elementwise; the compiled series where it has the same values.

    :func:`rfmml.models._kernels.gauss_hyp2f1` evaluates the elements where
    scipy sums the plain Gauss series (after Euler's transformation for
    ``C - A - B <= -1``): positive parameters and ``0 <= z <= 0.9``, with the
    same operations in the same order; scipy evaluates the rest.
    """
    A, B, C, z = np.broadcast_arrays(*(np.asarray(v, dtype=float) for v in (A, B, C, z)))
    flat = [np.ascontiguousarray(v).reshape(-1) for v in (A, B, C, z)]
    out = np.empty(len(flat[0]))
    _kernels().gauss_hyp2f1(*flat, out)
    rest = np.isnan(out)
    if rest.any():
        out[rest] = hyp2f1(*(v[rest] for v in flat))
    return out.reshape(A.shape)


#: Arguments on which the compiled series must give scipy's values before it is used:
#: both routes (with and without Euler's transformation, -1 < C - A - B < 0 too), small
#: and large parameters, z up to 0.9.
_PROBE = (
    np.array([0.525, 0.525, 30.525, 2.5, 0.05, 5.0, 2.0, 0.3, 7.0, 120.0]),
    np.array([2.614, 2.614, 32.614, 0.7, 0.15, 3.2, 51.0, 0.9, 0.4, 80.0]),
    np.array([2.505, 2.505, 32.505, 2.9, 0.1, 7.5, 70.0, 1.0, 9.0, 300.0]),
    np.array([0.05, 0.5, 0.12, 0.3, 0.9, 0.75, 0.2, 0.6, 0.85, 0.4]),
)


@functools.cache
def gauss_hyp2f1() -> Callable[..., np.ndarray]:
    """The evaluator of ``2F1`` for the expected purchases: :func:`_gauss_hyp2f1`, or scipy's.

    The compiled series is used when it reproduces :func:`scipy.special.hyp2f1`
    to the last bit on :data:`_PROBE` (it follows scipy's algorithm, which a
    later scipy could change); else scipy's function.
    """
    if _kernels() is None:
        return hyp2f1
    with np.errstate(all="ignore"):
        same = np.array_equal(_gauss_hyp2f1(*_PROBE), hyp2f1(*_PROBE))
    return _gauss_hyp2f1 if same else hyp2f1


def _if_alive_terms(t: float, x, T, r, alpha, a, b, reference) -> np.ndarray:
    """``bgnbd_expected_purchases_if_alive(t, x, T, r, alpha, a, b)`` of pairs, compiled.

    The closed form's arithmetic in compiled loops (:func:`rfmml.models._kernels.if_alive_parts`
    and the next two) and its logarithms and exponential by numpy, as
    :func:`rfmml.models._formulas.bgnbd_expected_purchases_if_alive` takes
    them, so the same values; ``reference(x, T)`` (the formula) evaluates the
    pairs where that function takes another route (Euler's transformation of
    ``ln 2F1``, the integral form, a value clipped at 0) and, when the
    compiled series is not scipy's (:func:`gauss_hyp2f1`), all of them.
    """
    if gauss_hyp2f1() is not _gauss_hyp2f1:
        return reference(x, T)
    from rfmml.models import _formulas as F

    K = _kernels()
    aT, aT_t, f, log_g, out = (np.empty(len(x)) for _ in range(5))
    K.if_alive_parts(x, T, t, r, alpha, a, b, aT, aT_t, f)
    with np.errstate(all="ignore"):
        log_f = np.log(f)
        K.if_alive_log_g(x, r, log_f, np.log(aT), np.log(aT_t), log_g)
        g = np.exp(log_g, out=log_g)
    other = np.empty(len(x), dtype=np.bool_)
    bounds = (F._C_MIN, F._A_NEAR_ONE, F._ONE_MINUS_G_MIN)
    if K.if_alive_finish(x, t, a, b, log_f, g, *bounds, out, other):
        out[other] = reference(x[other], T[other])
    return out


def _counted(K: Any, x, t_x, T) -> tuple[int, int, float, float]:
    """:func:`rfmml.models._kernels.count_valid` of some rows, maxima as floats."""
    n_ok, n_keyed, x_bits, T_bits = K.count_valid(
        x, t_x, T, x.view(np.int64), T.view(np.int64), float(TABLE_MAX)
    )
    top_x, top_T = np.array([x_bits, T_bits], dtype=np.int64).view(np.float64)
    return n_ok, n_keyed, float(top_x), float(top_T)


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
    n_ok, n_keyed, top_x, top_T = _counted(_kernels(), x, t_x, T)
    if n_ok < len(x):
        return None
    if n_keyed < len(x):
        return 0, 0
    return int(top_x) + 1, int(top_T) + 1


def _table_limit(n_rows: int) -> int:
    return max(DENSE_PER_ROW * n_rows, DENSE_MIN)


def pair_table_fits(n_x: int, n_T: int, n_rows: int) -> bool:
    """Whether the ``(x, T)`` pairs get a table of ``n_x * n_T`` entries."""
    return 0 < n_x * n_T <= _table_limit(n_rows)


class _Tables:
    """Tables indexed by whole frequencies and ages, grown as blocks of rows need them.

    ``log_aT[u] = ln(alpha + u)``; ``lead[x] = lead_of(x)`` (BG/NBD and
    MBG/NBD, see :func:`rfmml.models._kernels.bg_log_odds`); ``present``,
    the marks of the ``(x, u)`` pairs (:func:`rfmml.models._kernels.mark_pairs`),
    while its size fits :func:`pair_table_fits` (else None: no pair terms).
    """

    def __init__(self, n_rows: int, alpha: float, lead_of, pairs: bool):
        self.n_rows, self.alpha, self.lead_of = n_rows, alpha, lead_of
        self.n_x = self.n_T = 0
        self.log_aT = np.empty(0)
        self.lead = np.empty(0)
        # marks of the (x, T) pairs, and of the (x, t_x) pairs (Pareto/NBD)
        self.present: np.ndarray | None = np.zeros((0, 0), dtype=np.uint8) if pairs else None
        self.present_t_x = np.zeros((0, 0), dtype=np.uint8)

    def cover(self, top_x: float, top_T: float) -> None:
        """Extend the tables to frequencies ``<= top_x`` and ages ``<= top_T``."""
        n_x, n_T = max(self.n_x, int(top_x) + 1), max(self.n_T, int(top_T) + 1)
        if n_T > self.n_T:  # the same values as one np.log over 0 .. n_T - 1
            more = np.log(self.alpha + np.arange(self.n_T, n_T, dtype=float))
            self.log_aT = np.concatenate([self.log_aT, more])
        if n_x > self.n_x and self.lead_of is not None:
            more = self.lead_of(np.arange(self.n_x, n_x, dtype=float))
            self.lead = np.concatenate([self.lead, more])
        if self.present is not None and (n_x, n_T) != (self.n_x, self.n_T):
            if pair_table_fits(n_x, n_T, self.n_rows):
                self.present = self._grown(self.present, n_x, n_T)
                self.present_t_x = self._grown(self.present_t_x, n_x, n_T)
            else:
                self.present = None
        self.n_x, self.n_T = n_x, n_T

    def _grown(self, marks: np.ndarray, n_x: int, n_T: int) -> np.ndarray:
        grown = np.zeros((n_x, n_T), dtype=np.uint8)
        grown[: self.n_x, : self.n_T] = marks
        return grown

    def mark(self, K: Any, x, t_x, T, with_t_x: bool) -> None:
        """Mark the pairs of these rows (:func:`rfmml.models._kernels.mark_pairs`)."""
        if self.present is not None:
            flat_t_x = self.present_t_x.reshape(-1)
            K.mark_pairs(x, t_x, T, self.n_T, self.present.reshape(-1), flat_t_x, with_t_x)

    def marked(self, with_t_x: bool = False):
        """The keys of the marked pairs, their ``x`` and ``u``, and which are ``(x, T)`` pairs.

        Returns
        -------
        keys, x, u : numpy.ndarray
        of_T : numpy.ndarray of bool
            The key is an ``(x, T)`` pair (else only an ``(x, t_x)`` pair).
        """
        assert self.present is not None
        flat = self.present.reshape(-1)
        marks = flat | self.present_t_x.reshape(-1) if with_t_x else flat
        keys = np.empty(len(marks), dtype=np.int64)
        keys = keys[: _kernels().marked_keys(marks, keys)]
        x_u, u = np.divmod(keys, self.n_T)
        return keys, x_u.astype(float), u.astype(float), flat[keys] == 1

    def marked_T(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The keys of the marked ``(x, T)`` pairs and their ``x`` and ``T`` (floats), one loop."""
        assert self.present is not None
        marks = self.present.reshape(-1)
        keys = np.empty(len(marks), dtype=np.int64)
        x_u, u = np.empty(len(marks)), np.empty(len(marks))
        m = _kernels().marked_pairs(marks, self.n_T, keys, x_u, u)
        return keys[:m], x_u[:m], u[:m]


def _blocks(n: int, size: int):
    return (slice(start, min(start + size, n)) for start in range(0, n, size))


def _checked_blocks(K: Any, x, t_x, T, tables: _Tables, with_t_x: bool, mark: bool = True):
    """Blocks of rows checked, tables covering them, pairs marked (``mark`` and ``tables.present``).

    Yields the block's slice; stops early, yielding None, at the first block
    with a row that ``check_summary`` refuses or that has no table entries.
    """
    for rows in _blocks(len(x), K.BLOCK_ROWS):
        xb, tb, Tb = x[rows], t_x[rows], T[rows]
        n_ok, n_keyed, top_x, top_T = _counted(K, xb, tb, Tb)
        limit = _table_limit(len(x))  # tables of frequencies and ages: as pair tables
        if n_keyed < len(xb) or max(top_x, top_T) >= limit:
            yield None
            return
        tables.cover(top_x, top_T)
        if mark:
            tables.mark(K, xb, tb, Tb, with_t_x)
        yield rows


#: what the row functions return when a block has values without table entries
NO_TABLE = "no table"


def bg_alive_rows(
    x,
    t_x,
    T,
    theta: tuple[float, ...],
    *,
    modified: bool,
    horizon: float | None = None,
    if_alive: Callable[..., np.ndarray] | None = None,
    want_alive: bool = True,
):
    """P(alive) of the BG/NBD or MBG/NBD per row and, with ``horizon``, the expected purchases.

    Each block of rows is checked (:func:`rfmml.models._kernels.count_valid`)
    and, while it is in cache, scored: the log-odds of being inactive from
    the tables (:func:`rfmml.models._kernels.bg_log_odds`), numpy's ``exp``,
    ``1 / (1 + e)`` (BG/NBD: scipy's ``expit``). With a horizon the ``(x,
    T)`` pairs are marked in the loop of the log-odds
    (:func:`rfmml.models._kernels.bg_log_odds_marked`) and the MBG/NBD
    odds are kept; after the blocks the factor given alive is evaluated once
    per pair (:func:`_if_alive_terms`) and one pass finishes the rows
    (``1 / (1 + e)`` and the product, :func:`rfmml.models._kernels.finish_product`
    or ``finish_alive_and_product``; BG/NBD: :func:`rfmml.models._kernels.product`).
    Without ``want_alive`` the expected purchases are written over the odds
    (one array of rows); with it both are the rows of one ``(2, n)`` array
    (:func:`_columns_frame`).

    Parameters
    ----------
    x, t_x, T : numpy.ndarray
        Frequency, recency and age (float64, contiguous).
    theta : tuple of float
        ``r, alpha, a, b``.
    modified : bool
        MBG/NBD (else BG/NBD).
    horizon : float, optional
        One horizon for every customer.
    if_alive : callable, optional
        The model's ``expected_purchases_if_alive`` formula (called with
        ``gauss_hyp2f1=``, :func:`gauss_hyp2f1`).
    want_alive : bool, default True
        Also return P(alive) when the expected purchases are returned.

    Returns
    -------
    tuple or str or None
        ``(alive, expected)``: ``expected`` None without ``horizon`` or when
        the pairs do not fit a table (P(alive) is then returned), ``alive``
        None when not wanted. :data:`NO_TABLE` when a row fails the checks of
        ``check_summary`` or some value is not a whole number below
        :data:`TABLE_MAX` (the rows after it are not checked: the caller
        checks them all, :func:`check_rows`).
    """
    K = _kernels()
    r, alpha, a, b = theta
    n = len(x)

    def lead_of(levels: np.ndarray) -> np.ndarray:
        if modified:  # ln(b + x)
            return np.log(levels + b)
        # ln(a / (b + x - 1)), -inf at x = 0 (P(alive) = 1)
        lead = np.log(a) - np.log(b + (np.maximum(levels, 1.0) - 1.0))
        return np.where(levels > 0, lead, -np.inf)

    pairs = horizon is not None and if_alive is not None
    tables = _Tables(n, alpha, lead_of, pairs)
    # P(alive) of every row; with pairs and modified, first the odds of being inactive
    # (finished with the expected purchases); without want_alive, the expected purchases
    # are written over it
    # both outputs as the rows of one block: one pandas block, no copy (_columns_frame)
    pair_block = np.empty((2, n)) if pairs and want_alive else None
    alive = np.empty(n) if pair_block is None else pair_block[0]
    z = np.empty(min(n, K.BLOCK_ROWS))
    log_a = float(np.log(a))
    odds_end = 0  # alive[:odds_end] holds odds
    with np.errstate(over="ignore"):
        for rows in _checked_blocks(K, x, t_x, T, tables, False, mark=False):
            if rows is None:
                return NO_TABLE
            zb = z[: rows.stop - rows.start]
            odds_args = (tables.log_aT, tables.lead, r, log_a, modified, zb)
            if tables.present is None:
                K.bg_log_odds(x[rows], t_x[rows], T[rows], *odds_args)
            else:  # and the (x, T) pairs marked
                marks = (tables.n_T, tables.present.reshape(-1))
                K.bg_log_odds_marked(x[rows], t_x[rows], T[rows], *odds_args, *marks)
            if modified and pairs and tables.present is not None:
                # the odds, finished in the pass of the expected purchases
                np.exp(zb, out=alive[rows])
                odds_end = rows.stop
            elif modified:  # 1 / (1 + e^z), as mbgnbd_probability_alive
                if odds_end:  # the pairs outgrew their table: finish the odds so far
                    K.finish_alive(alive[:odds_end], alive[:odds_end])
                    odds_end = 0
                np.exp(zb, out=zb)
                K.finish_alive(zb, alive[rows])
            else:  # scipy's expit(-z), as bgnbd_probability_alive
                expit(np.negative(zb, out=zb), out=alive[rows])
    if if_alive is None or horizon is None or tables.present is None:
        return alive, None
    keys, x_T, T_T = tables.marked_T()
    factor = np.empty(tables.n_x * tables.n_T)

    assert horizon is not None

    def reference(x_u: np.ndarray, u: np.ndarray) -> np.ndarray:
        assert if_alive is not None
        return if_alive(horizon, x_u, u, *theta, gauss_hyp2f1=gauss_hyp2f1())

    # MBG/NBD's factor is the BG/NBD one with b + 1 (mbgnbd_expected_purchases_if_alive)
    b_if_alive = b + 1.0 if modified else b
    factor[keys] = _if_alive_terms(horizon, x_T, T_T, r, alpha, a, b_if_alive, reference)
    expected = alive if pair_block is None else pair_block[1]
    if not modified:
        K.product(x, T, tables.n_T, factor, alive, expected)
    elif want_alive:  # alive holds the odds: P(alive) written over them
        K.finish_alive_and_product(x, T, tables.n_T, alive, factor, alive, expected)
    else:
        K.finish_product(x, T, tables.n_T, alive, factor, expected)
    return (alive if want_alive else None), expected


def pareto_alive_rows(
    x,
    t_x,
    T,
    theta: tuple[float, ...],
    *,
    horizon: float | None = None,
    want_alive: bool = True,
):
    """P(alive) of the Pareto/NBD per row and, with ``horizon``, the expected purchases.

    The terms of :func:`rfmml.models._formulas_pareto.pareto_nbd_alive_and_expected`:
    ``ln I(u)`` with the factor ``alpha^r beta^s`` (``K(u)`` of
    :func:`rfmml.models._formulas_pareto._log_tail_terms`) once per distinct
    ``(x, t_x)`` and ``(x, T)`` pair (the same function of ``(x, u)`` for both),
    ``ln s - E1`` (with the same factor) and the factor given alive once per
    ``(x, T)`` pair, the rest per row: one pass checks the rows and marks
    the pairs, a second one scores them.

    Parameters
    ----------
    x, t_x, T
        As for :func:`bg_alive_rows`.
    theta : tuple of float
        ``r, alpha, s, beta``.
    horizon, want_alive
        As for :func:`bg_alive_rows`.

    Returns
    -------
    tuple or str or None
        ``(alive, expected)`` as for :func:`bg_alive_rows`; :data:`NO_TABLE`
        also when the pairs do not fit a table.
    """
    from rfmml.models import _formulas_pareto as F

    K = _kernels()
    r, alpha, s, beta = theta
    n = len(x)
    tables = _Tables(n, alpha, None, True)
    for rows in _checked_blocks(K, x, t_x, T, tables, True):
        if rows is None or tables.present is None:
            return NO_TABLE
    keys, x_u, u, ages = tables.marked(with_t_x=True)
    n_T, size = tables.n_T, tables.n_x * tables.n_T
    log_i = np.empty(size)
    # ln I and E1 both with the factor alpha^r beta^s (no terms of order r ln(alpha))
    log_i[keys] = F._log_tail_terms(x_u, u, r, alpha, s, beta, False)[0]
    keys_T, x_T, T_T = keys[ages], x_u[ages], u[ages]
    lead = np.empty(size)
    lead[keys_T] = np.log(s) - F._log_alive_term(x_T, T_T, r, alpha, s, beta)
    factor = None
    if horizon is not None:
        factor = np.empty(size)
        factor[keys_T] = F.pareto_nbd_expected_purchases_if_alive(horizon, x_T, T_T, *theta)
    alive = np.empty(n) if want_alive or factor is None else None
    expected = None if factor is None else np.empty(n)
    y = np.empty(min(n, K.BLOCK_ROWS))
    with np.errstate(over="ignore", divide="ignore"):
        for rows in _blocks(n, K.BLOCK_ROWS):
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


#: The columns of ``alive_and_expected`` (copied into each frame: an Index's name can be set).
_BOTH_COLUMNS = pd.Index(["probability_alive", "expected_purchases"])


def _columns_frame(alive: np.ndarray, expected: np.ndarray, index: pd.Index) -> pd.DataFrame:
    """The frame of ``alive_and_expected``, without copying the arrays.

    When they are the two rows of one ``(2, n)`` array (as
    :func:`bg_alive_rows` allocates them) the frame is built from it as one
    block: the 2-D
    constructor with a ready column index takes about a quarter of the time
    of the one from a dict (which infers the labels' string dtype again).
    """
    block = alive.base
    if (
        isinstance(block, np.ndarray)
        and block is expected.base
        and block.shape == (2, len(alive))
        and block.flags.c_contiguous
        and alive.ctypes.data == block.ctypes.data
        and expected.ctypes.data == block.ctypes.data + block.strides[0]
    ):
        return pd.DataFrame(block.T, index=index, columns=_BOTH_COLUMNS.copy(), copy=False)
    return pd.DataFrame(  # copy=False: two columns, not one stacked block (a copy)
        {"probability_alive": alive, "expected_purchases": expected}, index=index, copy=False
    )


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

        Call it once the model is known to be fitted (``_theta``).

        Only the frame-level checks of ``check_summary`` are made here (a frame,
        not empty, the columns present, numeric numpy dtypes, valid weights);
        the rows are checked by :func:`check_rows`.
        """
        if is_spark(X) or not isinstance(X, pd.DataFrame) or len(X) == 0:
            return None
        if len(X) < KERNEL_MIN_ROWS or _kernels() is None:
            return None
        labels = X.columns
        names = list(self.fit_columns) + (["weights"] if "weights" in labels else [])
        arrays = []
        for name in names:
            if name not in labels:
                return None
            col = X[name]  # a frame when the label repeats: no dtype
            dtype = getattr(col, "dtype", None)
            if not isinstance(dtype, np.dtype) or dtype.kind not in "fiu":
                return None
            arrays.append(np.ascontiguousarray(col.to_numpy(dtype=np.float64)))
        if len(arrays) > len(self.fit_columns):
            w = arrays.pop()
            if not (w.min() > 0 and w.max() < np.inf):
                return None
        return tuple(arrays)

    def _accept(self, X: pd.DataFrame, columns: tuple[np.ndarray, ...]) -> None:
        """The checks of the base's ``_columns`` after ``check_summary`` (rows valid)."""
        self._check_columns(X, dict(zip(self.fit_columns, columns, strict=True)))
        if self._strict_summary:
            check_time_unit(X, getattr(self, "freq_", None), self.kind)

    def _kernel_rows(self, columns, theta, horizon: float | None, want_alive: bool = True):
        """``(alive, expected)`` by the kernels (see :func:`bg_alive_rows`), or :data:`NO_TABLE`."""
        x, t_x, T = columns
        if self._kernel == "pareto":
            return pareto_alive_rows(x, t_x, T, theta, horizon=horizon, want_alive=want_alive)
        return bg_alive_rows(
            x,
            t_x,
            T,
            theta,
            modified=self._kernel == "mbg",
            horizon=horizon,
            if_alive=self._formula("expected_purchases_if_alive"),
            want_alive=want_alive,
        )

    def _scored(self, X: Any, t, want_alive: bool | None):
        """``(alive or None, expected or None)``; None when the base should run (and raise).

        ``want_alive=None``: P(alive) only.
        """
        theta = self._theta()  # NotFittedError first, as in the base
        columns = self._plain_columns(X)
        if columns is None:
            return None
        horizon = _scalar_horizon(t) if want_alive is not None else None
        # without one valid horizon (per customer, or invalid: the base raises it after the
        # rows are checked) the kernels give P(alive), the same values as with one
        out = self._kernel_rows(columns, theta, horizon, bool(want_alive) or horizon is None)
        if out is NO_TABLE and check_rows(*columns) is None:
            return None  # a row fails the checks: the base raises the error
        self._accept(X, columns)
        alive, expected = (None, None) if out is NO_TABLE else out
        if expected is not None or (want_alive is None and alive is not None):
            return alive, expected
        # the base's row functions on the checked rows (the horizon is checked here)
        x, t_x, T = columns
        if want_alive is None:
            return self._alive_rows(x, t_x, T, theta), None
        horizons = self._purchase_horizon(t, len(X))
        if alive is not None:  # P(alive) from the kernels, the factor per distinct row
            return alive, self._expected_rows(x, t_x, T, horizons, theta, alive=alive)
        if want_alive:
            return self._alive_and_expected_rows(x, t_x, T, horizons, theta)
        return None, self._expected_rows(x, t_x, T, horizons, theta)

    # ------------------------------------------------------------------ methods
    def probability_alive(self, X: pd.DataFrame) -> pd.Series:
        out = self._scored(X, None, want_alive=None)
        if out is None:
            return super().probability_alive(X)
        # copy=False: a new pandas object copies the array otherwise (copy-on-write)
        return pd.Series(out[0], index=X.index, name="probability_alive", copy=False)

    def expected_purchases(self, X: pd.DataFrame, t) -> pd.Series:
        out = self._scored(X, t, want_alive=False)
        if out is None:
            return super().expected_purchases(X, t)
        return pd.Series(out[1], index=X.index, name="expected_purchases", copy=False)

    def alive_and_expected(self, X: pd.DataFrame, t) -> pd.DataFrame:
        out = self._scored(X, t, want_alive=True)
        if out is None:
            return super().alive_and_expected(X, t)
        return _columns_frame(out[0], out[1], X.index)

    probability_alive.__doc__ = PurchaseModel.probability_alive.__doc__
    expected_purchases.__doc__ = PurchaseModel.expected_purchases.__doc__
    alive_and_expected.__doc__ = PurchaseModel.alive_and_expected.__doc__
