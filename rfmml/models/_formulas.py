"""Closed forms and likelihoods of the BG/NBD and Gamma-Gamma models.

Pure, vectorised functions of numpy arrays (or scalars) written with the
papers' symbols: ``x`` repeat purchases, ``t_x`` time of the last repeat
purchase, ``T`` age of the customer, ``t`` a future horizon, BG/NBD
parameters ``r, alpha, a, b`` and Gamma-Gamma parameters ``p, q, v``
(``v`` is the paper's gamma). Nothing here validates input: the estimators
and public functions do that at the boundary.

References
----------
.. [FHL05] Fader, P. S., Hardie, B. G. S. and Lee, K. L. (2005), "Counting
   your customers the easy way: an alternative to the Pareto/NBD model",
   Marketing Science 24 (2), 275-284.
.. [FH13] Fader, P. S. and Hardie, B. G. S. (2013), "Overcoming the BG/NBD
   model's #NUM! error problem", http://brucehardie.com/notes/027/
.. [FH08] Fader, P. S., Hardie, B. G. S. and Lee, K. L. (2008), "Computing
   P(alive) using the BG/NBD model", http://brucehardie.com/notes/021/
.. [FH07] Fader, P. S. and Hardie, B. G. S. (2007), "Deriving the
   conditional PMF of the BG/NBD model" / FHL05 eq. (8) for P(X(t) = x).
.. [FHL05b] Fader, P. S., Hardie, B. G. S. and Lee, K. L. (2005), "RFM and
   CLV: using iso-value curves for customer base analysis", Journal of
   Marketing Research 42 (4), 415-430.
.. [FH13b] Fader, P. S. and Hardie, B. G. S. (2013), "The Gamma-Gamma model
   of monetary value", http://brucehardie.com/notes/025/
"""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np
import pandas as pd
from scipy.special import betaln, digamma, expit, gammaln, hyp2f1, roots_jacobi, roots_legendre

from rfmml._compiled import compiled_module
from rfmml.models._grouping import frequency_levels, whole_levels
from rfmml.models._row_sums import compiled_row_sums, sum_parts

__all__ = [
    "bgnbd_log_likelihood",
    "BGNBDData",
    "bgnbd_prepare",
    "bgnbd_total_log_likelihood_and_gradient",
    "bg_level_blocks",
    "bg_level_terms",
    "bg_gamma_block",
    "bg_time_block",
    "bg_row_sums",
    "bg_total_and_gradient",
    "bgnbd_probability_alive",
    "bgnbd_expected_purchases",
    "bgnbd_expected_purchases_if_alive",
    "bgnbd_expected_purchases_new_customer",
    "bgnbd_future_survival",
    "IfAliveSumTable",
    "bgnbd_if_alive_sum_table",
    "bgnbd_if_alive_sum",
    "bgnbd_probability_of_purchases",
    "bgnbd_probability_repeat_purchase",
    "gamma_gamma_log_likelihood",
    "GammaGammaData",
    "gamma_gamma_prepare",
    "gamma_gamma_total_log_likelihood_and_gradient",
    "gamma_gamma_expected_order_value",
]


def _log_alive_odds(x, t_x, T, r, alpha, a, b):
    """Log of the odds dead/alive, ``-inf`` when ``x == 0``.

    The term ``a / (b + x - 1) * ((alpha + T) / (alpha + t_x)) ** (r + x)`` of
    FH08 eq. (2), in logs so that it never overflows.
    """
    x = np.asarray(x, dtype=float)
    with np.errstate(divide="ignore"):
        # b + (x - 1), not (b + x) - 1, which loses b when b is below ~1e-16 x
        log_c4 = np.where(x > 0, np.log(a) - np.log(b + (np.maximum(x, 1.0) - 1.0)), -np.inf)
    return log_c4 + (r + x) * (np.log(alpha + T) - np.log(alpha + t_x))


def bgnbd_log_likelihood(x, t_x, T, r, alpha, a, b):
    """Per-customer BG/NBD log-likelihood.

    Expression (4) of Fader & Hardie (2013) [FH13], the numerically stable
    form of eq. (6) in Fader, Hardie & Lee (2005) [FHL05]:
    ``ln L = D1 + D2 + ln(C3 + C4)``, evaluated here as
    ``D1 + r ln(alpha) - (r + x) ln(alpha + T) + ln(1 + C4 / C3)`` so that no
    term can underflow to ``ln(0)``.

    Parameters
    ----------
    x, t_x, T : array_like
        Repeat purchases, time of the last repeat purchase, age.
    r, alpha, a, b : float
        BG/NBD parameters.

    Returns
    -------
    numpy.ndarray
        One log-likelihood per customer.
    """
    x = np.asarray(x, dtype=float)
    return (
        bg_gamma_block(r, a, b, x, 0)
        + bg_time_block(r, alpha, x, T)
        + np.logaddexp(0.0, _log_alive_odds(x, t_x, T, r, alpha, a, b))
    )


def bg_time_block(r, alpha, x, T):
    """``r ln(alpha) - (r + x) ln(alpha + T)`` as ``-r ln(1 + T / alpha) - x ln(alpha + T)``.

    The same value, without the cancellation of two terms of order
    ``r ln(alpha)`` when ``r`` and ``alpha`` are large (a degenerate fit's ridge).
    """
    T = np.asarray(T, dtype=float)
    return -r * np.log1p(T / alpha) - x * np.log(alpha + T)


def bg_gamma_block(r, a, b, x, shift: int):
    """Per customer, ``ln Gamma(r + x) - ln Gamma(r) + ln B(a, b + x + shift) - ln B(a, b)``.

    From the per-frequency values of :func:`bg_level_blocks` (sums over
    ``j < x`` for whole frequencies: accurate for large ``r`` and ``b``).
    """
    x = np.asarray(x, dtype=float)
    levels, index = np.unique(x, return_inverse=True)
    return bg_level_blocks(r, a, b, levels, shift)[0][index.reshape(x.shape)]


#: Rows per block of the numpy row-wise part of the (M)BG/NBD likelihood (the
#: width of its eight work buffers, 64 MiB at most): the path of summaries below
#: LIKELIHOOD_KERNEL_MIN_ROWS prepared rows, or without numba; beyond it the sums
#: are accumulated block by block.
LIKELIHOOD_BLOCK_ROWS = 2**20


class BGNBDData(NamedTuple):
    """Unique customer rows prepared once for repeated likelihood evaluations."""

    x: np.ndarray
    t_x: np.ndarray
    T: np.ndarray
    weights: np.ndarray
    n: float
    x_levels: np.ndarray
    level_weights: np.ndarray
    level_index: np.ndarray
    rx_weights: np.ndarray  # weights * x, for the r + x terms
    T_levels: np.ndarray | None  # distinct T values when few (whole periods), else None
    T_index: np.ndarray | None
    t_x_levels: np.ndarray | None
    t_x_index: np.ndarray | None
    scratch: np.ndarray | None  # (8, block) work buffers of the numpy sums (else made per call)


#: Values :func:`_levels` looks at before hashing a whole column: with more
#: than a quarter distinct among them (continuous time), the column is not
#: hashed at all (a hash of 10M distinct floats costs about a second and the
#: memory of several columns, for nothing).
_LEVELS_SAMPLE = 2**16


def _levels(values: np.ndarray) -> tuple[np.ndarray | None, np.ndarray | None]:
    """Distinct values and an index into them, when there are few of them."""
    if len(values) > 4 * _LEVELS_SAMPLE:
        sample = values[:: len(values) // _LEVELS_SAMPLE]
        if len(pd.unique(sample)) > len(sample) // 4:
            return None, None
    whole = whole_levels(values)  # whole periods: a table of their range, no hashing
    if whole is not None:
        levels, index = whole
    else:
        index, levels = pd.factorize(values, sort=False)
    if len(levels) > len(values) // 4:
        return None, None
    return np.asarray(levels, dtype=float), index


def _time_levels(fields: dict, index: np.ndarray, levels_of) -> dict[str, Any]:
    """The level index, ``weights * x``, levels of ``T`` and ``t_x`` (BG/NBD and MBG/NBD)."""
    T_levels, T_index = levels_of(fields["T"])
    t_x_levels, t_x_index = levels_of(fields["t_x"])
    return {
        "level_index": index,
        "rx_weights": fields["weights"] * fields["x"],
        "T_levels": T_levels,
        "T_index": T_index,
        "t_x_levels": t_x_levels,
        "t_x_index": t_x_index,
    }


def bgnbd_prepare(x, t_x, T, weights) -> BGNBDData:
    """Group the rows for :func:`bgnbd_total_log_likelihood_and_gradient`.

    Frequencies are grouped into levels; so are ``T`` and ``t_x`` when they
    take few distinct values (whole days, weeks or months, as summaries
    usually hold), so that their logarithms are computed once per value.

    Parameters
    ----------
    x, t_x, T, weights : numpy.ndarray
        (Unique) customer rows and how many customers each stands for.

    Returns
    -------
    BGNBDData
    """
    fields, index = frequency_levels(weights, x=x, t_x=t_x, T=T)
    return BGNBDData(
        **fields,
        **_time_levels(fields, index, _levels),
        scratch=None  # the compiled loop needs no buffers
        if _uses_compiled_sums(len(fields["x"]))
        else np.empty((8, min(len(fields["x"]), LIKELIHOOD_BLOCK_ROWS))),
    )


def _rows(index: np.ndarray | None, rows: slice) -> np.ndarray | None:
    return None if index is None else index[rows]


def _log1p_and_inverse(alpha, values, levels, index, out_log, out_inv):
    """``ln(1 + values / alpha)`` and ``1 / (alpha + values)`` into buffers, per level if any."""
    if levels is None:
        np.divide(values, alpha, out=out_log)
        np.log1p(out_log, out=out_log)
        np.add(alpha, values, out=out_inv)
        np.divide(1.0, out_inv, out=out_inv)
    else:
        # mode="clip": the indices are valid (np.unique's), and numpy buffers ``out``
        # under the default mode="raise" (an extra pass: 3x the time of the gather)
        np.take(np.log1p(levels / alpha), index, out=out_log, mode="clip")
        np.take(1.0 / (alpha + levels), index, out=out_inv, mode="clip")


#: Largest frequency for which the gamma-function blocks are sums over
#: ``j < x`` (:func:`bg_level_terms`); beyond it, differences of ``gammaln``.
RISING_SUM_MAX = 4096


def bg_level_blocks(r, a, b, x_levels, shift: int):
    """The gamma-function block of the (M)BG/NBD likelihood per frequency, and its derivatives.

    ``D1(x) = ln Gamma(r + x) - ln Gamma(r) + ln B(a, b + x + shift) - ln B(a, b)``
    (FH13 eq. 4 with ``shift = 0``; [BDF07] appendix A with ``shift = 1``).
    For whole frequencies up to :data:`RISING_SUM_MAX` it is summed as
    ``sum_(j<x) ln(r + j) - sum_(j<x+shift) ln(1 + a / (b + j))`` (Gamma's
    recurrence), with derivatives ``sum 1 / (r + j)``, ``-sum 1 / (a + b + j)``
    and ``sum a / ((b + j) (a + b + j))``: accurate where ``r`` or ``b`` run
    to 1e10 (a degenerate fit's ridge), where differences of ``gammaln`` of
    order ``r ln r`` lose every digit. Other frequencies take those differences
    and digamma.

    Parameters
    ----------
    x_levels : numpy.ndarray
        Distinct frequencies, sorted.

    Returns
    -------
    tuple of numpy.ndarray
        ``D1``, ``dD1/dr``, ``dD1/da``, ``dD1/db`` per level.
    """
    xl = np.asarray(x_levels, dtype=float)
    top = float(xl[-1]) + shift if len(xl) else 0.0
    if len(xl) and top <= RISING_SUM_MAX and np.all(xl == np.floor(xl)) and xl[0] >= 0:
        j = np.arange(top)
        k = xl.astype(np.intp)

        def at(terms: np.ndarray, levels: np.ndarray) -> np.ndarray:
            return np.concatenate(([0.0], np.cumsum(terms)))[levels]

        d1 = at(np.log(r + j), k) - at(np.log1p(a / (b + j)), k + shift)
        d_r = at(1.0 / (r + j), k)
        d_a = -at(1.0 / (a + b + j), k + shift)
        d_b = at(a / ((b + j) * (a + b + j)), k + shift)
        return d1, d_r, d_a, d_b
    xs = xl + shift
    d1 = gammaln(r + xl) - gammaln(r) + gammaln(a + b) + gammaln(b + xs) - gammaln(b)
    d1 -= gammaln(a + b + xs)
    psi_ab, psi_abx = digamma(a + b), digamma(a + b + xs)
    d_r = digamma(r + xl) - digamma(r)
    d_a = psi_ab - psi_abx
    d_b = psi_ab + digamma(b + xs) - digamma(b) - psi_abx
    return d1, d_r, d_a, d_b


def bg_level_terms(r, a, b, x_levels, level_weights, shift: int):
    """:func:`bg_level_blocks` summed with the level weights ``W_k``.

    Returns
    -------
    tuple
        ``(sum_k W_k D1(x_k), dD1/dr, dD1/da, dD1/db)``, the derivatives summed
        with the weights too.
    """
    wl = level_weights
    return tuple(float(wl @ v) for v in bg_level_blocks(r, a, b, x_levels, shift))


def bgnbd_total_log_likelihood_and_gradient(r, alpha, a, b, data: BGNBDData):
    """Weighted total BG/NBD log-likelihood and its gradient in (r, alpha, a, b).

    Same expression as :func:`bgnbd_log_likelihood` (FH13 eq. 4) summed with
    weights, written as ``D1 - r ln(1 + T / alpha) - x ln(alpha + T) + ln(1 + e^z)``
    with ``z = ln(a / (b + x - 1)) + (r + x) ln((alpha + T) / (alpha + t_x))``
    (``r ln(alpha) - (r + x) ln(alpha + T)`` rearranged so that no two terms
    of order ``r ln(alpha)`` cancel: on a degenerate fit's ridge, ``r`` and
    ``alpha`` run to 1e10 and beyond). Every term that depends on ``x`` only
    is evaluated once per distinct frequency: the gamma-function block ``D1``
    (``sum_i w_i D1(x_i) = sum_k W_k D1(x_k)`` over levels ``x_k`` with total
    weight ``W_k``, :func:`bg_level_terms`) and ``ln(a / (b + x - 1))``;
    ``ln(1 + T / alpha)`` and ``ln(1 + t_x / alpha)`` once per distinct value
    when there are few (see :func:`bgnbd_prepare`). The gradient is the
    analytic derivative (the derivative of ``ln(1 + e^z)`` is
    ``e^z / (1 + e^z) = 1 - P(alive)``).

    Parameters
    ----------
    r, alpha, a, b : float
        BG/NBD parameters.
    data : BGNBDData
        From :func:`bgnbd_prepare`.

    Returns
    -------
    total : float
        ``sum_i w_i ln L_i``.
    gradient : numpy.ndarray
        Derivatives of ``total`` with respect to ``(r, alpha, a, b)``.
    """
    xl = data.x_levels
    b_x1 = b + (np.maximum(xl, 1.0) - 1.0)
    # ln C4 per level; x == 0 has no C4 term: a very negative finite value makes
    # e^z exactly 0 without the nan that -inf would give in z - min(z, 36)
    log_c4_level = np.where(xl > 0, np.log(a) - np.log(b_x1), -1e6)
    level_terms = (*bg_level_terms(r, a, b, xl, data.level_weights, 0), 1.0 / b_x1)
    sums, ws_level = bg_row_sums(r, alpha, log_c4_level, data)
    return bg_total_and_gradient(r, alpha, a, data, level_terms, sums, ws_level)


#: Prepared rows from which the BG/NBD and MBG/NBD likelihoods take their
#: row-wise sums from the compiled loop (:func:`rfmml.models._kernels.bg_likelihood_sums`);
#: fewer take the numpy expression (importing numba costs more than the loop
#: saves on them). Read at call time.
LIKELIHOOD_KERNEL_MIN_ROWS = 10_000


def _compiled_loops() -> Any:
    """:mod:`rfmml.models._kernels`, imported on first use; None without numba."""
    return compiled_module("rfmml.models._kernels")


def _uses_compiled_sums(rows: int) -> bool:
    return rows >= LIKELIHOOD_KERNEL_MIN_ROWS and _compiled_loops() is not None


_NO_INDEX = np.empty(0, dtype=np.intp)
_NO_LEVELS = np.empty(0)


def _shifted_levels(alpha, levels, index):
    """``ln(1 + level / alpha)``, ``1 / (alpha + level)`` and the index; empty without levels."""
    if levels is None:
        return _NO_INDEX, _NO_LEVELS, _NO_LEVELS
    return index, np.log1p(levels / alpha), 1.0 / (alpha + levels)


def compiled_bg_row_sums(
    r, alpha, log_c4_level, data: BGNBDData, parts: int
) -> tuple[np.ndarray, np.ndarray]:
    """:func:`bg_row_sums` from the compiled loop in ``parts`` threads (the same bits for any).

    See :func:`rfmml.models._row_sums.compiled_row_sums`.
    """
    args = (
        float(r), float(alpha), data.x, data.weights, data.level_index,
        np.asarray(log_c4_level, dtype=float),
        data.T, *_shifted_levels(alpha, data.T_levels, data.T_index),
        data.t_x, *_shifted_levels(alpha, data.t_x_levels, data.t_x_index),
    )  # fmt: skip
    return compiled_row_sums(_compiled_loops(), args, data.level_index, len(data.x_levels), parts)


def bg_row_sums(r, alpha, log_c4_level, data: BGNBDData) -> tuple[np.ndarray, np.ndarray]:
    """The row-wise sums of the (M)BG/NBD likelihood and gradient.

    With ``L(v) = ln(1 + v / alpha)``, ``d = L(T) - L(t_x) = ln((alpha + T)
    / (alpha + t_x))``, ``z = log_c4_level[level] + (r + x) d`` and
    ``s = e^z / (1 + e^z)``: ``sum w L(T)``, ``sum w x L(T)``,
    ``sum w ln(1 + e^z)``, ``sum w s d``, ``sum w s (r + x) / (alpha + T)``,
    ``sum w s (r + x) / (alpha + t_x)``, ``sum w / (alpha + T)``,
    ``sum w x / (alpha + T)``, and ``sum w s`` per frequency level. From
    :data:`LIKELIHOOD_KERNEL_MIN_ROWS` prepared rows on, one compiled pass
    (:func:`rfmml.models._kernels.bg_likelihood_sums`), on several threads
    from :data:`rfmml.models._row_sums.LIKELIHOOD_THREAD_ROWS` rows per thread
    on when the process may use several cores (the same values, bit for bit,
    with any number of threads); else
    numpy, in blocks of at most :data:`LIKELIHOOD_BLOCK_ROWS` rows.

    Returns
    -------
    sums : numpy.ndarray
        The eight sums.
    ws_level : numpy.ndarray
        ``sum w s`` per frequency level.
    """
    log_c4_level = np.asarray(log_c4_level, dtype=float)
    if _uses_compiled_sums(len(data.x)):
        return compiled_bg_row_sums(r, alpha, log_c4_level, data, sum_parts(len(data.x)))
    sums = np.zeros(8)
    ws_level = np.zeros(len(data.x_levels))
    # Written into preallocated buffers: with millions of rows, fresh temporaries
    # cost as much in page faults as the arithmetic itself. Blocks of at most
    # LIKELIHOOD_BLOCK_ROWS rows (the buffers' width) keep the buffers bounded.
    x, w = data.x, data.weights
    scratch = data.scratch
    if scratch is None:  # prepared for MBG/NBD or for the compiled loop: buffers made here
        scratch = np.empty((8, min(len(x), LIKELIHOOD_BLOCK_ROWS)))
    block = scratch.shape[1]
    for start in range(0, len(x), max(block, 1)):
        rows = slice(start, start + block)
        m = len(x[rows])
        log_aT, inv_aT, log_atx, inv_atx, z, tmp, ez, one_ez = scratch[:, :m]
        w_b, x_b = w[rows], x[rows]
        _log1p_and_inverse(alpha, data.T[rows], data.T_levels,
                           _rows(data.T_index, rows), log_aT, inv_aT)  # fmt: skip
        _log1p_and_inverse(alpha, data.t_x[rows], data.t_x_levels,
                           _rows(data.t_x_index, rows), log_atx, inv_atx)  # fmt: skip
        dlog = np.subtract(log_aT, log_atx, out=log_atx)  # ln((alpha + T) / (alpha + t_x))
        level_index = data.level_index[rows]
        np.take(log_c4_level, level_index, out=z, mode="clip")  # valid indices, unbuffered
        np.add(x_b, r, out=tmp)  # r + x
        np.multiply(tmp, dlog, out=ez)
        np.add(z, ez, out=z)  # z = ln C4 + (r + x) ln((alpha + T) / (alpha + t_x))
        # ln(1 + e^z) == z to double precision for z > 36; cap before exp to avoid overflow
        np.minimum(z, 36.0, out=tmp)
        np.exp(tmp, out=ez)
        np.subtract(z, tmp, out=z)  # z - min(z, 36), 0 unless z > 36
        np.add(ez, 1.0, out=one_ez)
        np.divide(ez, one_ez, out=ez)  # s = e^z / (1 + e^z) = 1 - P(alive); 0 where x == 0
        np.log(one_ez, out=one_ez)
        np.add(one_ez, z, out=one_ez)  # softplus(z) = ln(1 + e^z)
        np.multiply(w_b, ez, out=ez)  # w s
        rx_w = data.rx_weights[rows]
        sums[0] += w_b @ log_aT
        sums[1] += rx_w @ log_aT
        sums[2] += w_b @ one_ez
        ws_level += np.bincount(level_index, weights=ez, minlength=len(ws_level))
        sums[3] += ez @ dlog
        np.add(x_b, r, out=tmp)
        np.multiply(ez, tmp, out=tmp)  # w s (r + x)
        sums[4] += tmp @ inv_aT
        sums[5] += tmp @ inv_atx
        sums[6] += w_b @ inv_aT
        sums[7] += rx_w @ inv_aT
    return sums, ws_level


def bg_total_and_gradient(r, alpha, a, data: BGNBDData, level_terms, sums, ws_level):
    """The (M)BG/NBD total log-likelihood and gradient from level terms and row sums.

    ``total = sum_k W_k D1_k - r sum w ln(1 + T / alpha) - sum w x ln(alpha + T)
    + sum w ln(1 + e^z)`` (FH13 eq. 4 summed; [BDF07] appendix A with its own
    ``D1`` and ``z``), with ``sum w x ln(alpha + T) = ln(alpha) sum w x +
    sum w x ln(1 + T / alpha)``, and its derivatives.

    Parameters
    ----------
    data : BGNBDData
        The prepared rows (their total weight and ``sum w x``).
    level_terms : tuple
        ``(sum_k W_k D1_k, dD1/dr, dD1/da, dD1/db, inverse)``: the weighted
        gamma-function block and its derivatives (:func:`bg_level_terms`),
        and ``1 / (b + x - 1)`` (BG/NBD) or ``1 / (b + x)`` (MBG/NBD) per level.
    sums, ws_level : numpy.ndarray
        The row sums of :func:`bg_row_sums`.
    """
    d1_total, g_r, g_a, g_b, inv_b_level = level_terms
    n, sum_wx = data.n, data.level_weights @ data.x_levels  # sum w x
    sum_w_l1p_T = sums[0]
    sum_wx_log_aT = np.log(alpha) * sum_wx + sums[1]  # sum w x ln(alpha + T)
    total = d1_total - r * sum_w_l1p_T - sum_wx_log_aT + sums[2]
    sum_w_rx_inv_aT = sums[7] + r * sums[6]
    grad = np.array(
        [
            g_r - sum_w_l1p_T + sums[3],
            n * r / alpha - sum_w_rx_inv_aT + sums[4] - sums[5],
            g_a + ws_level.sum() / a,
            g_b - ws_level @ inv_b_level,
        ]
    )
    return float(total), grad


def bgnbd_probability_alive(x, t_x, T, r, alpha, a, b):
    """Probability that a customer with history ``(x, t_x, T)`` is still alive.

    Eq. (2) of Fader, Hardie & Lee (2008) [FH08]:
    ``P(alive) = 1 / (1 + delta(x > 0) a / (b + x - 1) ((alpha + T) / (alpha + t_x)) ** (r + x))``,
    computed as ``expit(-log odds)``; exactly 1 when ``x == 0``.

    Returns
    -------
    numpy.ndarray
        Probabilities in [0, 1].
    """
    return expit(-_log_alive_odds(x, t_x, T, r, alpha, a, b))


def _log_hyp2f1_direct_or_euler(A, B, C, z, gauss_hyp2f1=hyp2f1):
    with np.errstate(all="ignore"):
        out = np.array(np.log(gauss_hyp2f1(A, B, C, z)), dtype=float)
        bad = ~np.isfinite(out)
        if bad.any():
            Ab, Bb, Cb, zb = A[bad], B[bad], C[bad], z[bad]
            log_f = np.log(gauss_hyp2f1(Cb - Ab, Cb - Bb, Cb, zb))
            out[bad] = log_f + (Cb - Ab - Bb) * np.log1p(-zb)
    return out


def _log_hyp2f1(A, B, C, z, gauss_hyp2f1=hyp2f1):
    """``ln 2F1(A, B; C; z)`` with Euler's transformation where the direct series fails.

    Euler: ``2F1(A, B; C; z) = (1 - z) ** (C - A - B) 2F1(C - A, C - B; C; z)``
    (Abramowitz & Stegun 15.3.3), used where scipy returns inf or nan. scipy
    also returns nan near ``z = 1`` when ``C - A - B`` is an integer (e.g.
    BG/NBD parameters with ``a - r`` an integer); there the function is
    continuous in ``C`` and we average the values at ``C (1 +- 1e-9)``
    (relative error of order 1e-9). ``gauss_hyp2f1`` evaluates ``2F1``:
    :func:`scipy.special.hyp2f1`, or a function with its values.
    """
    A, B, C, z = (
        np.array(v, dtype=float)
        for v in np.broadcast_arrays(*(np.asarray(v, dtype=float) for v in (A, B, C, z)))
    )
    out = _log_hyp2f1_direct_or_euler(A, B, C, z, gauss_hyp2f1)
    bad = ~np.isfinite(out)
    if bad.any():
        Ab, Bb, Cb, zb = A[bad], B[bad], C[bad], z[bad]
        up = _log_hyp2f1_direct_or_euler(Ab, Bb, Cb * (1 + 1e-9), zb, gauss_hyp2f1)
        down = _log_hyp2f1_direct_or_euler(Ab, Bb, Cb * (1 - 1e-9), zb, gauss_hyp2f1)
        out[bad] = 0.5 * (up + down)
    return out


def bgnbd_future_survival(t, x, T, r, alpha, a, b, *, gauss_hyp2f1=hyp2f1):
    """Hypergeometric factor of the conditional expectation, FHL05 eq. (10).

    ``G(t) = ((alpha + T) / (alpha + T + t)) ** (r + x)
    2F1(r + x, b + x; a + b + x - 1; t / (alpha + T + t))``, so that
    ``E[Y(t) | x, t_x, T] = (a + b + x - 1) / (a - 1) (1 - G(t)) P(alive)``.
    It depends on ``(t, x, T)`` only, not on ``t_x``, which lets callers
    evaluate it once per distinct ``(x, T)`` pair. ``G(0) == 1``.

    This is the closed form only: it is evaluated through ``ln 2F1`` and is
    NaN where ``2F1 < 0``, which can happen when ``a + b + x - 1 <= 0``.
    :func:`bgnbd_expected_purchases_if_alive` is finite for all parameters.
    ``gauss_hyp2f1`` evaluates ``2F1``: :func:`scipy.special.hyp2f1`, or a
    function with its values (the compiled scoring passes one).

    Returns
    -------
    numpy.ndarray
    """
    x = np.asarray(x, dtype=float)
    t = np.asarray(t, dtype=float)
    aT = alpha + np.asarray(T, dtype=float)
    z = t / (aT + t)
    c = a + b + (x - 1.0)  # x - 1 first: exact, and b survives when a + b is tiny
    log_2f1 = _log_hyp2f1(r + x, b + x, c, z, gauss_hyp2f1)
    log_g = log_2f1 + (r + x) * (np.log(aT) - np.log(aT + t))
    return np.exp(log_g)


#: Gauss nodes per piece of the composite rule in
#: :func:`_bgnbd_expected_purchases_if_alive_integral`. Each piece is at most
#: as long as the distance to the nearest singularity of its smooth factor,
#: so the Gauss error falls like (3 + 8 ** 0.5) ** (-2 n), about 1e-30 for n = 20.
_QUAD_NODES = 20
#: ``|a - 1|`` below which the closed form is replaced by the integral: its
#: lead factor ``(a + b + x - 1) / (a - 1)`` multiplies ``1 - G`` of the same
#: small order, so its relative error grows like 1e-14 / |a - 1| (measured:
#: 1e-10 at |a - 1| = 1e-4, 2e-8 at 1e-6, 3e-5 at 1e-9).
_A_NEAR_ONE = 1e-4
#: ``c = a + b + x - 1`` below which the closed form is replaced by the
#: integral: scipy's 2F1 with ``c`` near 0 is accurate to ~1e-15 down to
#: c = 1e-12 but can be off by percents (or infinite) at c = 1e-14.
_C_MIN = 1e-8
#: ``|1 - G(t)|`` below which the closed form is replaced by the integral: the
#: difference has a rounding error of ~1e-16, so its relative error is
#: 1e-16 / |1 - G| (1e-12 at the threshold; 100% for t ~ 1e-16).
_ONE_MINUS_G_MIN = 1e-4


#: Largest end exponent given its own Gauss-Jacobi piece. The end piece is
#: at most ``1 / (A + B + 2)`` long, so for a larger exponent ``e`` it holds
#: a fraction of the Beta mass below ``(e / (e + 1)) ** (e + 1) / e ** (e + 1)``,
#: under 1e-150: the piece is left out (scipy's weights would overflow anyway).
_MAX_END_EXPONENT = 100.0


def _gauss_jacobi_piece(n, e, h):
    """Gauss-Jacobi rule ``int_0^h q ** e g(q) dq ~ sum_i w_i g(q_i)``.

    Returns
    -------
    q, log_w : numpy.ndarray
        Nodes in ``(0, h)`` and log-weights (empty for ``e > 100``, see
        ``_MAX_END_EXPONENT``).
    log_missed : float
        Log of the rule's error for ``g = 1 / q``,
        ``h ** e / e - sum_i w_i / q_i``, i.e. of the mass of ``q ** (e - 1)``
        near 0 that no node sees (``-inf`` if none). That error is >= 0:
        ``1 / q`` is a mixture of exponentials ``exp(-s q)``, for each of
        which the Gauss rule errs low (positive even derivatives).
    """
    if e > _MAX_END_EXPONENT:
        return np.empty(0), np.empty(0), -np.inf
    y, w = roots_jacobi(n, 0.0, e)  # weight (1 + y) ** e on [-1, 1]
    v = 0.5 * (1.0 + y)  # nodes on (0, 1)
    log_w_unit = np.log(w) - (e + 1.0) * np.log(2.0)
    missed_unit = 1.0 / e - np.exp(log_w_unit - np.log(v)).sum()
    log_missed = np.log(missed_unit) + e * np.log(h) if missed_unit > 0.0 else -np.inf
    return h * v, log_w_unit + (e + 1.0) * np.log(h), log_missed


def _gauss_legendre_dyadic(n, levels, max_length):
    """Gauss-Legendre on ``[2 ** -(j + 1), 2 ** -j]``, j = 1..levels-1, cut to ``max_length``.

    Returns
    -------
    q, log_w : numpy.ndarray
        Nodes and log-weights.
    """
    y, w = roots_legendre(n)
    lo = 2.0 ** -np.arange(2.0, levels + 1.0)  # left ends; each piece has length lo
    parts = np.ceil(lo / max_length).astype(int)  # equal sub-pieces per dyadic piece
    starts = np.concatenate([lo[j] * (1.0 + np.arange(k) / k) for j, k in enumerate(parts)] or [[]])
    lengths = np.repeat(lo / parts, parts)
    q = (starts[:, None] + lengths[:, None] * 0.5 * (1.0 + y[None, :])).ravel()
    return q, (np.log(0.5 * lengths)[:, None] + np.log(w)[None, :]).ravel()


def _beta_rule(A, B, u_max, n=_QUAD_NODES):
    """A quadrature rule for ``E[k(P)]``, ``P ~ Beta(A + 1, B + 1)``.

    Composite Gauss rule on [0, 1]: Gauss-Jacobi with weight ``p ** A`` on
    ``[0, h0]`` and with weight ``(1 - p) ** B`` on ``[1 - h1, 1]``, so that
    the endpoint behaviour of the Beta density is integrated exactly, and
    Gauss-Legendre on dyadic pieces ``[2 ** -(j+1), 2 ** -j]`` (and their
    mirror images about 1/2) in between. ``h0 <= 1 / max(u_max, A + B + 2)``
    and ``h1 <= 1 / (A + B + 2)``: a factor varying on a short scale near an
    end (``k``, singular at ``p = -1 / u``; ``(1 - p) ** B`` for large
    ``B``) is smooth on every piece relative to the piece's length. Pieces
    longer than four standard deviations of Beta(A + 1, B + 1) at its widest,
    ``2 / sqrt(A + B + 3)``, are cut into equal parts, so that a narrow
    bulk in the middle (``A`` and ``B`` both large) is resolved too.

    Returns
    -------
    p, one_minus_p, weights : numpy.ndarray
        Nodes, ``1 - p`` to full precision, and weights (summing to 1 up to
        the rule's error).
    missed_0, missed_1 : float
        ``E[1 / P] - sum_j w_j / p_j`` and ``E[1 / (1 - P)] - sum_j w_j / (1 - p_j)``:
        the rule's errors for the two functions that are not smooth, from
        its end pieces (the other pieces integrate them to ~1e-30).
    """
    width = A + B + 2.0
    levels_0 = max(1, int(np.ceil(np.log2(max(u_max, width)))))
    levels_1 = max(1, int(np.ceil(np.log2(width))))
    max_length = 2.0 / np.sqrt(width + 1.0)
    # left end: p = q, density p ** A (1 - p) ** B
    q0, lw0, log_missed_0 = _gauss_jacobi_piece(n, A, 2.0**-levels_0)
    q0d, lw0d = _gauss_legendre_dyadic(n, levels_0, max_length)
    p_left = np.concatenate([q0, q0d])
    lw_left = np.concatenate([lw0, lw0d + A * np.log(q0d)]) + B * np.log1p(-p_left)
    # right end: 1 - p = q
    q1, lw1, log_missed_1 = _gauss_jacobi_piece(n, B, 2.0**-levels_1)
    q1d, lw1d = _gauss_legendre_dyadic(n, levels_1, max_length)
    q_right = np.concatenate([q1, q1d])
    lw_right = np.concatenate([lw1, lw1d + B * np.log(q1d)]) + A * np.log1p(-q_right)
    p = np.concatenate([p_left, 1.0 - q_right])
    one_minus_p = np.concatenate([1.0 - p_left, q_right])
    log_norm = betaln(A + 1.0, B + 1.0)
    weights = np.exp(np.concatenate([lw_left, lw_right]) - log_norm)
    # The weights sum to 1 up to ~1e-30 in exact arithmetic; in floating point,
    # ln B(A + 1, B + 1) and A ln p + B ln(1 - p) of magnitude ~A + B carry
    # rounding errors of (A + B) 1e-16, which this division removes.
    total = weights.sum()
    missed_0 = np.exp(log_missed_0 - log_norm) / total
    missed_1 = np.exp(log_missed_1 - log_norm) / total
    return p, one_minus_p, weights / total, missed_0, missed_1


#: ``u max(r + x, 1)`` up to which :func:`_bgnbd_expected_purchases_if_alive_integral`
#: sums the moment series instead of the quadrature: each term is then at
#: most half the one before, so the alternating sum keeps at least half of
#: its first term (no cancellation) and the truncation error is below the
#: first term left out.
_SERIES_MAX = 0.5
#: terms of the moment series are added until one is below this fraction of
#: the sum (at most _SERIES_TERMS terms: 0.5 ** 60 < 1e-18)
_SERIES_RTOL = 1e-17
_SERIES_TERMS = 60


def _bgnbd_if_alive_moment_series(u, s, A, B):
    """``E[f(P)]``, ``P ~ Beta(A, B)``, by its moment series, for ``u max(s, 1) <= 1/2``.

    With ``f(p) = (1 - (1 + p u) ** -s) / p`` (see
    :func:`bgnbd_expected_purchases_if_alive`, Notes), the binomial series
    ``f(p) = sum_k (-1) ** (k + 1) (s)_k / k! u ** k p ** (k - 1)``
    (``(s)_k`` the rising factorial) converges for ``p u < 1`` and, with the
    Beta moments ``E[P ** m] = (A)_m / (A + B)_m``, gives
    ``E[f(P)] = sum_k c_k``, ``c_1 = s u``,
    ``c_(k+1) = -c_k u (s + k) / (k + 1) (A + k - 1) / (A + B + k - 1)``.
    For ``u max(s, 1) <= 1/2`` every ratio is at most 1/2 in absolute value,
    so the alternating sum is at least ``c_1 / 2``, the rounding error of
    the sum is a few ulps and the truncation error is below the first term
    left out (below ``_SERIES_RTOL`` of the sum). Typical of daily
    horizons, where ``u = t / (alpha + T)`` is small: a handful of terms
    instead of a quadrature rule of hundreds of nodes per value.

    Parameters
    ----------
    u : numpy.ndarray
        ``t / (alpha + T)``, finite, ``>= 0``, with ``u max(s, 1) <= 1/2``.
    s, A, B : float
        ``r + x``, ``a``, ``b + x``.

    Returns
    -------
    numpy.ndarray
    """
    term = s * u
    total = term.copy()
    active = np.flatnonzero(term > 0.0)
    for k in range(1, _SERIES_TERMS):
        if not len(active):
            break
        ratio = -(s + k) / (k + 1.0) * (A + k - 1.0) / (A + B + k - 1.0)
        step = term[active] * (ratio * u[active])
        term[active] = step
        total[active] += step
        active = active[np.abs(step) > _SERIES_RTOL * np.abs(total[active])]
    return total


def _bgnbd_expected_purchases_if_alive_integral(t, x, T, r, alpha, a, b):
    """``E[Y(t) | alive at T, x, T]`` from its integral over the dropout probability.

    See :func:`bgnbd_expected_purchases_if_alive`, Notes, for the formula.
    Broadcasts ``t, x, T``; per distinct ``x``, the distinct
    ``u = t / (alpha + T)`` with ``u max(r + x, 1) <= 1/2`` are summed as the
    moment series (:func:`_bgnbd_if_alive_moment_series`; a handful of
    terms, exact to rounding), the others integrated by one rule (fine
    enough for the largest finite ``u`` among its rows), applied in chunks of
    at most 2 ** 21 node evaluations. Measured
    (tests/models/test_degenerate_params.py): series and rule agree to
    3e-14 relative where both apply.

    Returns
    -------
    numpy.ndarray
    """
    t, x, T = np.broadcast_arrays(*(np.asarray(v, dtype=float) for v in (t, x, T)))
    shape = t.shape
    u_all = (t / (alpha + T)).ravel()
    x_all = x.ravel()
    out = np.full(u_all.shape, np.nan)
    for x_level in np.unique(x_all[~np.isnan(x_all)]):
        rows = np.flatnonzero(x_all == x_level)
        A, B, s = a, b + x_level, r + x_level
        u, inverse = np.unique(u_all[rows], return_inverse=True)
        finite = np.isfinite(u)
        u_max = u[finite].max() if finite.any() else 0.0
        e = np.empty(u.shape)
        series = u * max(s, 1.0) <= _SERIES_MAX  # False for NaN and inf
        e[series] = _bgnbd_if_alive_moment_series(u[series], s, A, B)
        quad = np.flatnonzero(~series)
        e[quad] = _bgnbd_if_alive_rule(u[quad], s, A, B, u_max) if len(quad) else 0.0
        # t = inf: E[1 / P] = (A + B - 1) / (A - 1) for A > 1, else infinite
        e[np.isposinf(u)] = (A + B - 1.0) / (A - 1.0) if A > 1.0 else np.inf
        out[rows] = e[inverse]
    return out.reshape(shape)


def _bgnbd_if_alive_rule(u, s, A, B, u_max):
    """``E[f(P)]``, ``P ~ Beta(A, B)``, by the composite Gauss rule of :func:`_beta_rule`.

    See :func:`bgnbd_expected_purchases_if_alive`, Notes; the rule is fine
    enough for ``u <= u_max``.

    Returns
    -------
    numpy.ndarray
    """
    p, one_minus_p, w, missed_0, missed_1 = _beta_rule(A, B, u_max)
    # E[f(P)] = c0 f(0) + c1 f(1) + sum_j c_j f(p_j): the split-off
    # f(0) (1 - p) + f(1) p + p (1 - p) k(p) (Notes) with the rule for
    # E[k(P')] substituted, i.e. one rule for Beta(A, B) with weights >= 0
    # summing to 1. c0 = B / (A + B) - sum_j c_j (1 - p_j) equals C missed_0
    # (E[1 / P'] = (A + B + 1) / A) up to the smooth pieces' ~1e-30 error;
    # taken in that form, as the difference would leave a rounding error of
    # 1e-16 f(0) = 1e-16 (r + x) u. Likewise c1 = C missed_1.
    C = A * B / ((A + B) * (A + B + 1.0))
    c = C * w / (p * one_minus_p)
    c0, c1 = C * missed_0, C * missed_1
    e = np.empty(u.shape)
    chunk = max(1, 2**21 // len(p))
    for start in range(0, len(u), chunk):
        uc = u[start : start + chunk]
        with np.errstate(invalid="ignore"):
            f0 = s * uc
            f1 = -np.expm1(-s * np.log1p(uc))
            f = -np.expm1(-s * np.log1p(uc[:, None] * p[None, :])) / p[None, :]
            e[start : start + chunk] = c0 * f0 + c1 * f1 + f @ c
    return e


def bgnbd_expected_purchases_if_alive(t, x, T, r, alpha, a, b, *, gauss_hyp2f1=hyp2f1):
    """Expected repeat purchases in the next ``t`` periods of a customer alive at ``T``.

    The conditional expectation of FHL05 eq. (10) without its probability
    alive: ``E[Y(t) | x, t_x, T] = P(alive) E[Y(t) | alive, x, T]``, and for a
    new customer (``x = 0, T = 0``) eq. (7), ``E[X(t)]``.

    Closed form (FHL05 eqs. 7 and 10):
    ``E[Y(t) | alive, x, T] = (a + b + x - 1) / (a - 1) [1 - G(t)]`` with
    ``G`` from :func:`bgnbd_future_survival`. It is kept wherever it is
    reliable, and the integral it comes from (Notes) is evaluated instead
    where it is not finite, where ``c = a + b + x - 1 < 1e-8`` (for
    ``c <= 0``, i.e. ``x == 0`` with ``a + b <= 1``, ``2F1`` can be negative
    and its logarithm NaN; for ``0 < c < 1e-12`` scipy's 2F1 loses accuracy)
    where ``|a - 1| < 1e-4`` (``a = 1`` is a removable singularity of the
    lead factor; the closed form's rounding error grows like
    ``1e-14 / |a - 1|``) and where ``0 < |1 - G(t)| < 1e-4`` (very short
    horizons, where ``1 - G`` keeps few correct digits).

    Parameters
    ----------
    t : array_like
        Horizon (>= 0), in periods.
    x, T : array_like
        Repeat purchases and age; broadcast with ``t``.
    r, alpha, a, b : float
        BG/NBD parameters.
    gauss_hyp2f1 : callable, default scipy.special.hyp2f1
        Evaluates ``2F1(A, B; C; z)`` elementwise: scipy's function, or one
        with the same values (see :func:`bgnbd_future_survival`).

    Returns
    -------
    numpy.ndarray
        Finite and >= 0 for finite ``t``; non-decreasing in ``t``.

    Notes
    -----
    Alive at ``T`` after ``x`` purchases, the posterior is
    ``lambda ~ Gamma(r + x, alpha + T)`` and ``p ~ Beta(a, b + x)``,
    independent (FHL05 sec. 3 and eq. 10's derivation), and a customer with
    ``(lambda, p)`` makes ``E[Y(t) | lambda, p] = (1 - exp(-lambda p t)) / p``
    purchases in expectation (geometric dropout after each Poisson purchase).
    Integrating ``lambda`` out, with ``K = alpha + T``, ``s = r + x``,
    ``u = t / K``::

        E[Y(t) | alive, x, T] = E[f(P)],   P ~ Beta(A, B),  A = a,  B = b + x,
        f(p) = (1 - (1 + p u) ** -s) / p = -expm1(-s log1p(p u)) / p,

    smooth on [0, 1] with ``f(0) = s u`` and ``f(1) = 1 - (1 + u) ** -s``.
    The Beta density is singular at an end when ``A < 1`` or ``B < 1`` and
    concentrates all its mass at ``p = 0`` as ``a -> 0``; splitting off the
    end values, ``f(p) = f(0) (1 - p) + f(1) p + p (1 - p) k(p)`` gives::

        E[f(P)] = f(0) B / (A + B) + f(1) A / (A + B)
                  + A B / ((A + B) (A + B + 1)) E[k(P')],  P' ~ Beta(A + 1, B + 1),

    with ``k`` smooth. The last expectation is a composite Gauss rule with
    Gauss-Jacobi weights at both ends (:func:`_beta_rule`; 20 nodes per
    piece, one rule per distinct ``x``). As ``a -> 0`` it tends to
    ``s u = (r + x) t / (alpha + T)``, the Poisson expectation of a customer
    who never drops out. Evaluated as one rule with non-negative weights on
    ``f(0), f(1), f(p_j)``, so it inherits ``f``'s monotonicity in ``t``.
    Measured (tests/models/test_degenerate_params.py): within 4e-15 of the
    exact moment series where that converges, within 1e-13 of adaptive
    quadrature, and within 7e-12 (CDNOW) to 2e-10 of the closed form where
    both apply, the difference being the closed form's rounding error.

    References
    ----------
    .. [FHL05] Fader, Hardie & Lee (2005), eqs. (7) and (10).
    """
    t, x, T = np.broadcast_arrays(*(np.asarray(v, dtype=float) for v in (t, x, T)))
    c = a + b + (x - 1.0)
    with np.errstate(all="ignore"):
        g = bgnbd_future_survival(t, x, T, r, alpha, a, b, gauss_hyp2f1=gauss_hyp2f1)
        # E >= 0; for t -> 0 the product of two near-zero factors can round to -1e-17
        out = np.array(np.maximum(c / (a - 1.0) * (1.0 - g), 0.0))
        # 1 - G ~ t for short horizons: below 1e-4 the difference keeps too few digits
        short = (t > 0.0) & (np.abs(1.0 - g) < _ONE_MINUS_G_MIN)
    bad = ~np.isfinite(out) | (c < _C_MIN) | (abs(a - 1.0) < _A_NEAR_ONE) | short
    bad &= ~(np.isnan(t) | np.isnan(x) | np.isnan(T))
    if bad.any():
        integral = _bgnbd_expected_purchases_if_alive_integral
        out[bad] = integral(t[bad], x[bad], T[bad], r, alpha, a, b)
    return out


#: Chebyshev nodes per piece and piece width in ``ln(alpha + T)`` of
#: :class:`IfAliveSumTable`. In ``w = ln(alpha + T)`` the sum is analytic in the
#: strip ``|Im w| < pi/2`` at least (see the class Notes); a piece of half-width
#: ``h = 1/8`` lies inside a Bernstein ellipse of parameter ``rho ~ 2 (pi / 2) /
#: (2 h) ~ 12`` within a strip of half-width ``pi / 4`` where the integrand is
#: bounded, so 20 nodes leave an error of order ``rho ** -20 ~ 1e-21``
#: relative. Measured (tests/models/test_chunking.py): within 1e-13 of the
#: direct evaluation on CDNOW and simulated summaries.
_TABLE_NODES = 20
_TABLE_PIECE = 0.25


class IfAliveSumTable(NamedTuple):
    """``sum_k w_k E[Y(t_k) | alive, x, T]`` as Chebyshev pieces in ``ln(alpha + T)`` per ``x``.

    Built by :func:`bgnbd_if_alive_sum_table`, evaluated by
    :func:`bgnbd_if_alive_sum`.

    Notes
    -----
    With ``K = alpha + T``, ``E[Y(t) | alive, x, T] = E[f(P)]`` with
    ``f(p) = (1 - (1 + p t / K) ** -(r + x)) / p`` (see
    :func:`bgnbd_expected_purchases_if_alive`, Notes). As a function of
    ``w = ln K`` it is analytic wherever ``1 + p t e ** -w`` stays off the
    negative real axis for every ``p`` in [0, 1], i.e. for ``|Im w| < pi``,
    and for ``|Im w| <= pi / 4`` the real part of ``1 + p t e ** -w`` is
    >= 1, so ``|(1 + p t e ** -w) ** -(r + x)| <= 1`` and the integrand is
    bounded by a small multiple of its value on the real axis. A weighted
    sum over horizons ``t_k`` has the same strip, so it is a function of one
    variable per frequency that Chebyshev interpolation on short pieces
    represents to rounding error: one table per distinct ``x`` replaces one
    closed-form evaluation per customer and horizon (the CLV of customers
    with continuous ``T``, where no two customers share a row).
    """

    x_levels: np.ndarray  # sorted distinct frequencies
    w0: float  # ln(alpha + T_min)
    width: float  # piece width in ln(alpha + T)
    n_pieces: int
    coef: np.ndarray  # (levels * n_pieces, _TABLE_NODES) Chebyshev coefficients
    alpha: float


def bgnbd_if_alive_sum_table(t, weights, x_levels, T_min, T_max, r, alpha, a, b):
    """Tabulate ``sum_k w_k E[Y(t_k) | alive, x, T]`` for ``T`` in ``[T_min, T_max]``.

    See :class:`IfAliveSumTable`. The values at the nodes are those of
    :func:`bgnbd_expected_purchases_if_alive` (FHL05 eqs. 7 and 10, or the
    integral form), so the table inherits its accuracy in every parameter
    regime.

    Parameters
    ----------
    t, weights : array_like
        Horizons ``t_k`` and their weights ``w_k`` (e.g. discount factors of
        the CLV sum, or one horizon with weight 1).
    x_levels : array_like
        The frequencies the table will be asked about.
    T_min, T_max : float
        Range of ``T``.
    r, alpha, a, b : float
        BG/NBD parameters.

    Returns
    -------
    IfAliveSumTable
    """
    t = np.asarray(t, dtype=float)
    weights = np.asarray(weights, dtype=float)
    levels = np.unique(np.asarray(x_levels, dtype=float))
    w0, w1 = np.log(alpha + T_min), np.log(alpha + T_max)
    n_pieces = max(1, int(np.ceil((w1 - w0) / _TABLE_PIECE)))
    width = max((w1 - w0) / n_pieces, 1e-300)
    n = _TABLE_NODES
    theta_j = np.pi * (np.arange(n) + 0.5) / n
    y = np.cos(theta_j)  # Chebyshev points of the first kind on [-1, 1]
    K = np.exp(w0 + width * (np.arange(n_pieces)[:, None] + 0.5 * (y[None, :] + 1.0)))
    # values at the nodes: levels x pieces x nodes, one horizon at a time
    values = np.zeros((len(levels), n_pieces, n))
    x_grid = levels[:, None, None]
    for t_k, w_k in zip(t, weights, strict=True):
        if w_k != 0.0:
            values += w_k * bgnbd_expected_purchases_if_alive(
                t_k, x_grid, K[None, :, :] - alpha, r, alpha, a, b
            )
    # c_m = (2 / n) sum_j f(y_j) cos(m theta_j), c_0 halved
    cosines = np.cos(np.outer(np.arange(n), theta_j))  # (m, j)
    coef = (2.0 / n) * values.reshape(-1, n) @ cosines.T
    coef[:, 0] *= 0.5
    return IfAliveSumTable(levels, float(w0), float(width), n_pieces, coef, float(alpha))


def bgnbd_if_alive_sum(table: IfAliveSumTable, x, T):
    """Evaluate a :class:`IfAliveSumTable` per customer (Clenshaw's recurrence).

    Parameters
    ----------
    table : IfAliveSumTable
    x, T : numpy.ndarray
        Frequencies (among ``table.x_levels``) and ages within the table's range.

    Returns
    -------
    numpy.ndarray
    """
    level = np.searchsorted(table.x_levels, np.asarray(x, dtype=float))
    w = (np.log(table.alpha + np.asarray(T, dtype=float)) - table.w0) / table.width
    piece = np.clip(np.floor(w), 0, table.n_pieces - 1)
    y = 2.0 * (w - piece) - 1.0  # [-1, 1] within the piece
    rows = level * table.n_pieces + piece.astype(np.int64)
    coef = table.coef
    two_y = 2.0 * y
    b1 = np.zeros(len(y))
    b2 = np.zeros(len(y))
    for m in range(coef.shape[1] - 1, 0, -1):
        b1, b2 = two_y * b1 - b2 + coef[rows, m], b1
    return y * b1 - b2 + coef[rows, 0]


def bgnbd_expected_purchases(t, x, t_x, T, r, alpha, a, b):
    """Expected repeat purchases in the next ``t`` periods given the history.

    Eq. (10) of Fader, Hardie & Lee (2005) [FHL05]:
    ``E[Y(t) | x, t_x, T] = (a + b + x - 1) / (a - 1) [1 - G(t)] / (1 + C)``
    with ``G`` from :func:`bgnbd_future_survival` and ``1 / (1 + C)`` the
    probability alive (:func:`bgnbd_probability_alive`); the first factors
    are :func:`bgnbd_expected_purchases_if_alive`, which uses the integral
    form where the closed form fails (``a + b + x - 1 <= 0``, ``a`` near 1,
    very short horizons).

    Returns
    -------
    numpy.ndarray
        Finite and >= 0 for finite inputs.
    """
    return bgnbd_expected_purchases_if_alive(t, x, T, r, alpha, a, b) * bgnbd_probability_alive(
        x, t_x, T, r, alpha, a, b
    )


def bgnbd_expected_purchases_new_customer(t, r, alpha, a, b):
    """Expected repeat purchases of a new customer in ``(0, t]``.

    Eq. (7) of Fader, Hardie & Lee (2005) [FHL05]:
    ``E[X(t)] = (a + b - 1) / (a - 1) [1 - (alpha / (alpha + t)) ** r
    2F1(r, b; a + b - 1; t / (alpha + t))]``, which is
    :func:`bgnbd_expected_purchases_if_alive` at ``x = 0, T = 0``.

    The series needs ``a + b > 1`` (and ``a != 1``, a removable
    singularity); outside that range, and wherever the closed form is not
    finite, the integral form ``E[f(P)]``, ``P ~ Beta(a, b)``, of
    :func:`bgnbd_expected_purchases_if_alive` is used, so the result is
    finite and >= 0 for every ``a, b > 0`` and finite ``t``.

    Returns
    -------
    numpy.ndarray
    """
    t = np.asarray(t, dtype=float)
    return bgnbd_expected_purchases_if_alive(t, 0.0, 0.0, r, alpha, a, b)


def _log_nb_front(r, alpha, n_levels):
    """``ln(Gamma(r + n) / (Gamma(r) n!)) - n ln(alpha)`` per level ``n``.

    For whole levels up to :data:`RISING_SUM_MAX` the sum
    ``sum_(j<n) ln((r + j) / alpha) - ln n!``: each term rounded once, accurate for
    any ``r`` and ``alpha`` (on the purchase ridge ``r / alpha`` stays fixed while
    ``ln Gamma(r + n) - ln Gamma(r)`` and ``n ln(alpha)`` are each ~``n ln r``); other
    levels take ``gammaln``.
    """
    nl = np.asarray(n_levels, dtype=float)
    top = float(nl.max()) if nl.size else 0.0
    if nl.size and top <= RISING_SUM_MAX and nl.min() >= 0 and np.all(nl == np.floor(nl)):
        j = np.arange(top)
        rising = np.concatenate(([0.0], np.cumsum(np.log((r + j) / alpha))))
        return rising[nl.astype(np.intp)] - gammaln(nl + 1.0)
    return gammaln(r + nl) - gammaln(r) - gammaln(nl + 1.0) - nl * np.log(alpha)


def nbd_count_terms(n, t, r, alpha):
    """The negative binomial terms of ``P(X(t) = n)`` for the BG/NBD and MBG/NBD.

    With ``NB(j; t) = Gamma(r + j) / (Gamma(r) j!) (alpha / (alpha + t)) ** r
    (t / (alpha + t)) ** j``: ``ln NB(n; t)`` split as ``ln p0 + rest`` and the
    tail ``1 - sum_(j<n) NB(j; t)`` (one cumulative sum for all ``n``).

    As in :func:`~rfmml.models._formulas_pareto.pareto_nbd_probability_of_purchases`,
    ``ln p0 = -r ln(1 + t / alpha)`` and ``rest = F(n) + n (ln t - ln(1 + t / alpha))``
    with ``F(n) = sum_(j<n) ln((r + j) / alpha) - ln n!`` (:func:`_log_nb_front`): no
    terms of order ``r ln(alpha)`` or ``ln Gamma(r)`` are formed, so the terms keep
    their digits where ``r, alpha`` run to infinity at a fixed ``r / alpha`` (Poisson
    purchases).

    Returns
    -------
    n : numpy.ndarray
        ``n`` broadcast against ``t``, flattened (float).
    shape : tuple
        The broadcast shape.
    log_p0, log_nb_n : numpy.ndarray
        ``r ln(alpha / (alpha + t))`` and the rest of ``ln NB(n; t)``.
    tail : numpy.ndarray
        The tail, >= 0 (rounding can take it to -1e-17: clipped).
    """
    n, t = np.broadcast_arrays(np.asarray(n, dtype=float), np.asarray(t, dtype=float))
    shape = n.shape
    n, t = n.reshape(-1), t.reshape(-1)
    log_1p = np.log1p(t / alpha)
    log_p0 = -r * log_1p
    with np.errstate(divide="ignore"):
        log_z = np.log(t) - log_1p  # ln(t / (alpha + t)) + ln(alpha), alpha in F(n)

    def log_nb_term(j, log_z):
        # F(j) + j ln(t / (1 + t / alpha)) with 0 ** 0 == 1
        with np.errstate(invalid="ignore"):
            power = np.where(j > 0, j * log_z, 0.0)
        return _log_nb_front(r, alpha, j) + power

    # partial sums over j = 0 .. n - 1 of the NB terms, one cumulative sum for all n
    n_max = int(n.max()) if n.size else 0
    j = np.arange(max(n_max, 1), dtype=float)[:, None]
    terms = np.exp(log_nb_term(j, log_z[None, :]) + log_p0[None, :])
    cums = np.vstack([np.zeros((1, n.size)), np.cumsum(terms, axis=0)])
    partial = cums[n.astype(int), np.arange(n.size)]
    return n, shape, log_p0, log_nb_term(n, log_z), np.maximum(1.0 - partial, 0.0)


def bgnbd_probability_of_purchases(n, t, r, alpha, a, b):
    """Probability that a new customer makes exactly ``n`` repeat purchases in ``(0, t]``.

    Eq. (8) of Fader, Hardie & Lee (2005) [FHL05]:
    ``P(X(t) = n) = B(a, b + n) / B(a, b) Gamma(r + n) / (Gamma(r) n!)
    (alpha / (alpha + t)) ** r (t / (alpha + t)) ** n
    + delta(n > 0) B(a + 1, b + n - 1) / B(a, b)
    [1 - (alpha / (alpha + t)) ** r
    sum_{j=0}^{n-1} Gamma(r + j) / (Gamma(r) j!) (t / (alpha + t)) ** j]``.

    Parameters
    ----------
    n : array_like of int
        Number of repeat purchases.
    t : array_like
        Horizon, in periods.
    r, alpha, a, b : float
        BG/NBD parameters.

    Returns
    -------
    numpy.ndarray
    """
    n, shape, log_p0, log_nb_n, tail = nbd_count_terms(n, t, r, alpha)
    first = np.exp(betaln(a, b + n) - betaln(a, b) + log_p0 + log_nb_n)
    b_n1 = b + (np.maximum(n, 1.0) - 1.0)
    second = np.where(n > 0, np.exp(betaln(a + 1.0, b_n1) - betaln(a, b)) * tail, 0.0)
    return (first + second).reshape(shape)


def bgnbd_probability_repeat_purchase(t, x, t_x, T, r, alpha, a, b):
    """Probability of at least one repeat purchase in the next ``t`` periods.

    Derived from the BG/NBD assumptions of Fader, Hardie & Lee (2005)
    [FHL05]: dropout only happens right after a purchase, so a customer
    alive at ``T`` buys again in ``(T, T + t]`` with probability
    ``1 - exp(-lambda t)``; given ``x`` and alive at ``T`` the posterior of
    ``lambda`` is Gamma(r + x, alpha + T) (the alive branch of FHL05 eq. 3).
    Integrating gives
    ``P(Y(t) > 0 | x, t_x, T) = P(alive) [1 - ((alpha + T) / (alpha + T + t)) ** (r + x)]``.

    Returns
    -------
    numpy.ndarray
    """
    x = np.asarray(x, dtype=float)
    aT = alpha + np.asarray(T, dtype=float)
    # log of ((alpha + T) / (alpha + T + t)) ** (r + x) without the cancellation of a
    # difference of logs when t << alpha + T
    log_no_buy = -(r + x) * np.log1p(np.asarray(t, dtype=float) / aT)
    return bgnbd_probability_alive(x, t_x, T, r, alpha, a, b) * -np.expm1(log_no_buy)


def quantile_given_alive(q, q_over_alive, x, T, r, alpha):
    """Time to the next purchase at quantile ``q`` when, alive, a customer buys as Poisson.

    For the BG/NBD and MBG/NBD a customer alive at ``T`` drops out only right
    after a purchase, so ``P(no purchase in t) = 1 - P(alive) (1 - g(t))``
    with ``g(t) = ((alpha + T) / (alpha + T + t)) ** (r + x)`` (see
    :func:`bgnbd_probability_no_purchase`). Setting it to ``1 - q`` gives
    ``g(t) = 1 - q / P(alive)``, so
    ``t = (alpha + T) (exp(-ln(1 - q / P(alive)) / (r + x)) - 1)``, evaluated
    with ``log1p`` and ``expm1``; ``+inf`` where ``q / P(alive) >= 1`` (the
    probability of never buying again is at least ``1 - q``).

    Parameters
    ----------
    q : float
        Quantile in (0, 1).
    q_over_alive : numpy.ndarray
        ``q / P(alive)`` per row (``inf`` where ``P(alive) = 0``).
    x, T : array-like
        Repeat purchases and age.
    r, alpha : float
        Purchase-rate parameters.

    Returns
    -------
    numpy.ndarray
    """
    ratio = np.asarray(q_over_alive, dtype=float)
    aT = alpha + np.asarray(T, dtype=float)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        t = aT * np.expm1(-np.log1p(-np.minimum(ratio, 1.0)) / (r + np.asarray(x, dtype=float)))
    return np.where(ratio < 1.0, t, np.inf)


def bgnbd_next_purchase_quantile(q, x, t_x, T, r, alpha, a, b):
    """Time until the next purchase at quantile ``q``, closed form (:func:`quantile_given_alive`).

    ``q / P(alive) = q (1 + e^z)`` with ``z`` the log odds of being dead
    (:func:`_log_alive_odds`, the terms :func:`bgnbd_probability_no_purchase`
    uses), so the root of ``bgnbd_probability_no_purchase(t) = 1 - q`` that
    :meth:`PurchaseModel.next_purchase_quantile` would otherwise search for.

    Returns
    -------
    numpy.ndarray
    """
    with np.errstate(over="ignore"):
        ratio = q * (1.0 + np.exp(_log_alive_odds(x, t_x, T, r, alpha, a, b)))
    return quantile_given_alive(q, ratio, x, T, r, alpha)


def bgnbd_probability_no_purchase(t, x, t_x, T, r, alpha, a, b):
    """Probability of no purchase in ``(T, T + t]`` given the history ``(x, t_x, T)``.

    From the BG/NBD assumptions of Fader, Hardie & Lee (2005) [FHL05]: a
    customer who is dead at ``T`` never buys again, and one alive at ``T``
    buys at rate ``lambda`` with posterior Gamma(r + x, alpha + T) (the alive
    term ``(1 - p) ** x lambda ** x exp(-lambda T)`` of FHL05 eq. (3) times
    the Gamma prior), so ``P(0 purchases in t | alive) =
    ((alpha + T) / (alpha + T + t)) ** (r + x)``. Hence
    ``P(no purchase) = (1 - P(alive)) + P(alive) ((alpha + T) / (alpha + T + t)) ** (r + x)``
    with ``P(alive)`` from FH08 eq. (2), evaluated from the log alive odds
    so that neither term loses precision. ``t = inf`` gives
    ``1 - P(alive)``, the probability of never buying again.

    Returns
    -------
    numpy.ndarray
        Probabilities in [0, 1], non-increasing in ``t``; 1 at ``t = 0``.
    """
    x = np.asarray(x, dtype=float)
    aT = alpha + np.asarray(T, dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        log_g = -(r + x) * np.log1p(np.asarray(t, dtype=float) / aT)  # no cancellation
    log_odds = _log_alive_odds(x, t_x, T, r, alpha, a, b)
    p = expit(log_odds) + expit(-log_odds) * np.exp(log_g)
    return np.clip(p, 0.0, 1.0)


def gamma_gamma_log_likelihood(x, m, p, q, v):
    """Per-customer Gamma-Gamma log-likelihood of the mean spend ``m`` over ``x`` transactions.

    Eq. (3) of Fader & Hardie (2013) note 025 [FH13b] (the marginal
    distribution of ``zbar`` in Fader, Hardie & Lee 2005b [FHL05b]), with the
    paper's ``gamma`` called ``v``:
    ``ln f = ln Gamma(p x + q) - ln Gamma(p x) - ln Gamma(q) + q ln v
    + (p x - 1) ln m + p x ln x - (p x + q) ln(v + x m)``.

    Returns
    -------
    numpy.ndarray
    """
    x = np.asarray(x, dtype=float)
    m = np.asarray(m, dtype=float)
    px = p * x
    return (
        gammaln(px + q)
        - gammaln(px)
        - gammaln(q)
        + q * np.log(v)
        + (px - 1.0) * np.log(m)
        + px * np.log(x)
        - (px + q) * np.log(v + x * m)
    )


class GammaGammaData(NamedTuple):
    """Repeat customers' rows prepared once for repeated likelihood evaluations."""

    x: np.ndarray
    m: np.ndarray
    weights: np.ndarray
    n: float
    x_levels: np.ndarray
    level_weights: np.ndarray
    xm: np.ndarray
    wx: np.ndarray
    sum_wx_log_xm: float  # sum w x (ln m + ln x)
    sum_w_log_m: float
    scratch: np.ndarray  # (2, rows) work buffers


def gamma_gamma_prepare(x, m, weights) -> GammaGammaData:
    """Precompute the parameter-free terms of :func:`gamma_gamma_total_log_likelihood_and_gradient`.

    Parameters
    ----------
    x, m, weights : numpy.ndarray
        Frequencies (> 0), mean spends (> 0) and customers per row.

    Returns
    -------
    GammaGammaData
    """
    fields, _ = frequency_levels(weights, x=x, m=m)
    x, m, weights = fields["x"], fields["m"], fields["weights"]
    wx = weights * x
    log_m = np.log(m)
    return GammaGammaData(
        **fields,
        xm=x * m,
        wx=wx,
        sum_wx_log_xm=float(wx @ (log_m + np.log(x))),
        sum_w_log_m=float(weights @ log_m),
        scratch=np.empty((2, len(x))),
    )


def gamma_gamma_total_log_likelihood_and_gradient(p, q, v, data: GammaGammaData):
    """Weighted total Gamma-Gamma log-likelihood and its gradient in (p, q, v).

    :func:`gamma_gamma_log_likelihood` (FH13b eq. 3) summed with weights;
    the gamma-function terms depend on ``x`` only and are evaluated once per
    distinct frequency, the parameter-free sums once in
    :func:`gamma_gamma_prepare`; one logarithm per row remains.

    Returns
    -------
    total : float
    gradient : numpy.ndarray
        Derivatives with respect to ``(p, q, v)``.
    """
    xl, wl, n = data.x_levels, data.level_weights, data.n
    pxl = p * xl
    gam = wl @ (gammaln(pxl + q) - gammaln(pxl)) - n * gammaln(q)
    psi_pxq = digamma(pxl + q)
    g_p_gam = wl @ (xl * (psi_pxq - digamma(pxl)))
    g_q_gam = wl @ psi_pxq - n * digamma(q)

    log_vxm, inv_vxm = data.scratch
    np.add(v, data.xm, out=inv_vxm)
    np.log(inv_vxm, out=log_vxm)
    np.divide(1.0, inv_vxm, out=inv_vxm)
    sum_wx_log_vxm = data.wx @ log_vxm
    sum_w_log_vxm = data.weights @ log_vxm
    total = (
        gam
        + n * q * np.log(v)
        + p * data.sum_wx_log_xm
        - data.sum_w_log_m
        - p * sum_wx_log_vxm
        - q * sum_w_log_vxm
    )
    grad = np.array(
        [
            g_p_gam + data.sum_wx_log_xm - sum_wx_log_vxm,
            g_q_gam + n * np.log(v) - sum_w_log_vxm,
            n * q / v - p * (data.wx @ inv_vxm) - q * (data.weights @ inv_vxm),
        ]
    )
    return float(total), grad


def gamma_gamma_expected_order_value(x, m, p, q, v):
    """Conditional expected average transaction value.

    Eq. (5) of Fader & Hardie (2013) note 025 [FH13b] (eq. 2 of FHL05b):
    ``E[M | p, q, v, m, x] = (v + m x) p / (p x + q - 1)``, a weighted mean of
    the population mean ``v p / (q - 1)`` and the customer's mean ``m``.
    Equals the population mean when ``x == 0``.

    Returns
    -------
    numpy.ndarray
    """
    x = np.asarray(x, dtype=float)
    m = np.asarray(m, dtype=float)
    weight = p * x / (p * x + q - 1.0)
    population_mean = v * p / (q - 1.0)
    return (1.0 - weight) * population_mean + weight * m
