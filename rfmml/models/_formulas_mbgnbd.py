"""Likelihood and closed forms of the MBG/NBD model.

The modified BG/NBD of Batislam, Denizel & Filiztekin (2007) differs from
the BG/NBD in one assumption: a customer may also drop out right after the
first purchase, at time 0, so one-time buyers can be inactive. With ``x``
repeat purchases a customer has survived ``x + 1`` coin flips instead of
``x``; every expression is the BG/NBD one with ``b`` moved by one in the
right places. Symbols as in :mod:`rfmml.models._formulas` (``r, alpha, a,
b``, ``x, t_x, T``, ``t``). Nothing here validates input.

References
----------
.. [BDF07] Batislam, E. P., Denizel, M. and Filiztekin, A. (2007),
   "Empirical validation and comparison of models for customer base
   analysis", International Journal of Research in Marketing 24 (3),
   201-209.
.. [WH08] Wagner, U. and Hoppe, D. (2008), "Erratum on the MBG/NBD model",
   International Journal of Research in Marketing 25 (3), 225-226.
.. [FHL05] Fader, P. S., Hardie, B. G. S. and Lee, K. L. (2005), "Counting
   your customers the easy way", Marketing Science 24 (2), 275-284.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy.special import betaln, hyp2f1

from rfmml.models._formulas import (
    BGNBDData,
    _time_levels,
    bg_gamma_block,
    bg_level_terms,
    bg_row_sums,
    bg_time_block,
    bg_total_and_gradient,
    bgnbd_expected_purchases_if_alive,
    nbd_count_terms,
    quantile_given_alive,
)
from rfmml.models._grouping import frequency_levels

__all__ = [
    "mbgnbd_log_likelihood",
    "MBGNBDData",
    "mbgnbd_prepare",
    "mbgnbd_total_log_likelihood_and_gradient",
    "mbgnbd_probability_alive",
    "mbgnbd_expected_purchases",
    "mbgnbd_expected_purchases_if_alive",
    "mbgnbd_expected_purchases_new_customer",
    "mbgnbd_probability_no_purchase",
    "mbgnbd_probability_of_purchases",
]


def _log_dead_odds(x, t_x, T, r, alpha, a, b):
    """``ln[a / (b + x) ((alpha + T) / (alpha + t_x)) ** (r + x)]``, defined for every ``x``."""
    x = np.asarray(x, dtype=float)
    return np.log(a) - np.log(b + x) + (r + x) * (np.log(alpha + T) - np.log(alpha + t_x))


def mbgnbd_log_likelihood(x, t_x, T, r, alpha, a, b):
    """Per-customer MBG/NBD log-likelihood.

    Appendix A of Batislam, Denizel & Filiztekin (2007) [BDF07] as corrected
    by Wagner & Hoppe (2008) [WH08]:
    ``L = B(a, b + x + 1) / B(a, b) Gamma(r + x) alpha ** r / (Gamma(r)
    (alpha + T) ** (r + x)) [1 + a / (b + x) ((alpha + T) / (alpha + t_x)) ** (r + x)]``,
    the last factor taken as ``ln(1 + e^z)`` (no overflow; the same stable
    arrangement as Fader & Hardie's note 027 for the BG/NBD).

    Returns
    -------
    numpy.ndarray
    """
    x = np.asarray(x, dtype=float)
    return (
        bg_gamma_block(r, a, b, x, 1)  # ln Gamma(r + x) / Gamma(r) + ln B(a, b + x + 1) / B(a, b)
        + bg_time_block(r, alpha, x, T)  # r ln(alpha) - (r + x) ln(alpha + T)
        + np.logaddexp(0.0, _log_dead_odds(x, t_x, T, r, alpha, a, b))
    )


#: MBG/NBD fits on the same prepared rows as BG/NBD (without its block buffers).
MBGNBDData = BGNBDData


def _levels(values: np.ndarray) -> tuple[np.ndarray | None, np.ndarray | None]:
    """Distinct values and an index into them, when there are few (at most a quarter)."""
    index, levels = pd.factorize(values, sort=False)
    if len(levels) > len(values) // 4:
        return None, None
    return np.asarray(levels, dtype=float), index


def mbgnbd_prepare(x, t_x, T, weights) -> MBGNBDData:
    """Group the rows for :func:`mbgnbd_total_log_likelihood_and_gradient`.

    Frequencies are grouped into levels; so are ``T`` and ``t_x`` when they
    take few distinct values (summaries in whole periods), so that their
    logarithms are taken once per value and gathered.

    Returns
    -------
    MBGNBDData
    """
    fields, index = frequency_levels(weights, x=x, t_x=t_x, T=T)
    return MBGNBDData(**fields, **_time_levels(fields, index, _levels), scratch=None)


def mbgnbd_total_log_likelihood_and_gradient(r, alpha, a, b, data: MBGNBDData):
    """Weighted total MBG/NBD log-likelihood and its gradient in (r, alpha, a, b).

    :func:`mbgnbd_log_likelihood` summed with weights, written as
    ``D1 - r ln(1 + T / alpha) - x ln(alpha + T) + ln(1 + e^z)``,
    ``z = ln(a / (b + x)) + (r + x) ln((alpha + T) / (alpha + t_x))``, the
    arrangement of :func:`rfmml.models._formulas.bgnbd_total_log_likelihood_and_gradient`
    with the MBG/NBD's ``D1`` (``B(a, b + x + 1)`` for ``B(a, b + x)``) and
    ``ln(a / (b + x))`` for every frequency, 0 included. The gradient is
    analytic (the derivative of ``ln(1 + e^z)`` is ``e^z / (1 + e^z) = 1 -
    P(alive)``).

    Returns
    -------
    total : float
    gradient : numpy.ndarray
        Derivatives with respect to ``(r, alpha, a, b)``.
    """
    xl = data.x_levels
    log_c4_level = np.log(a) - np.log(b + xl)
    level_terms = (*bg_level_terms(r, a, b, xl, data.level_weights, 1), 1.0 / (b + xl))
    sums, ws_level = bg_row_sums(r, alpha, log_c4_level, data)
    return bg_total_and_gradient(r, alpha, a, data, level_terms, sums, ws_level)


def mbgnbd_probability_alive(x, t_x, T, r, alpha, a, b):
    """Probability that a customer with history ``(x, t_x, T)`` is alive at ``T``.

    Eq. (5) of Appendix A in [BDF07]:
    ``P(alive) = 1 / (1 + a / (b + x) ((alpha + T) / (alpha + t_x)) ** (r + x))``,
    below 1 for one-time buyers too (``x = 0``: ``b / (a + b)`` at ``T = 0``).

    Evaluated as ``1 / (1 + e^z)`` with the log-odds
    ``z = ln a - ln(b + x) + (r + x) (ln(alpha + T) - ln(alpha + t_x))``,
    in place on two buffers: the same operations as ``scipy.special.expit(-z)``
    (``1 / (1 + exp(z))``, 0 where ``e^z`` overflows), without its scalar
    loop and the temporaries of each step.

    Returns
    -------
    numpy.ndarray
    """
    x, t_x, T = np.broadcast_arrays(*(np.asarray(v, dtype=float) for v in (x, t_x, T)))
    z = np.array(np.add(T, alpha), dtype=float)  # arrays, also for scalar input
    np.log(z, out=z)  # ln(alpha + T)
    u = np.array(np.add(t_x, alpha), dtype=float)
    z -= np.log(u, out=u)  # ln((alpha + T) / (alpha + t_x))
    z *= np.add(x, r, out=u)  # (r + x) ln(...)
    z -= np.log(np.add(x, b, out=u), out=u)
    z += np.log(a)  # z: the log-odds of being inactive
    with np.errstate(over="ignore"):
        np.exp(z, out=z)
    z += 1.0
    np.reciprocal(z, out=z)
    return z if z.ndim else z[()]


def mbgnbd_expected_purchases(t, x, t_x, T, r, alpha, a, b):
    """Expected repeat purchases in ``(T, T + t]`` given the history.

    Wagner & Hoppe (2008) [WH08]:
    ``E[Y(t) | x, t_x, T] = P(alive) (a + b + x) / (a - 1)
    [1 - ((alpha + T) / (alpha + T + t)) ** (r + x)
    2F1(r + x, b + x + 1; a + b + x; t / (alpha + T + t))]``.
    Alive after ``x`` repeat purchases, ``p ~ Beta(a, b + x + 1)``: the
    factor after ``P(alive)`` is the BG/NBD one (FHL05 eq. 10) with ``b + 1``
    for ``b``, evaluated by
    :func:`rfmml.models._formulas.bgnbd_expected_purchases_if_alive` (closed
    form, integral form where it fails).

    Returns
    -------
    numpy.ndarray
    """
    if_alive = mbgnbd_expected_purchases_if_alive(t, x, T, r, alpha, a, b)
    return if_alive * mbgnbd_probability_alive(x, t_x, T, r, alpha, a, b)


def mbgnbd_expected_purchases_if_alive(t, x, T, r, alpha, a, b, *, gauss_hyp2f1=hyp2f1):
    """Expected repeat purchases in ``(T, T + t]`` of a customer alive at ``T``.

    The factor of :func:`mbgnbd_expected_purchases` after ``P(alive)``; it
    depends on ``(t, x, T)`` only. ``gauss_hyp2f1`` as for
    :func:`rfmml.models._formulas.bgnbd_expected_purchases_if_alive`.

    Returns
    -------
    numpy.ndarray
    """
    return bgnbd_expected_purchases_if_alive(
        t, x, T, r, alpha, a, b + 1.0, gauss_hyp2f1=gauss_hyp2f1
    )


def mbgnbd_expected_purchases_new_customer(t, r, alpha, a, b):
    """Expected repeat purchases of a new customer in ``(0, t]``.

    [BDF07] (as used by [WH08]):
    ``E[X(t)] = b / (a - 1) [1 - (alpha / (alpha + t)) ** r
    2F1(r, b + 1; a + b; t / (alpha + t))]``,
    i.e. the survival of the first coin flip, ``b / (a + b)``, times the
    expectation of a customer alive at 0 with ``p ~ Beta(a, b + 1)``.

    Returns
    -------
    numpy.ndarray
    """
    t = np.asarray(t, dtype=float)
    return b / (a + b) * bgnbd_expected_purchases_if_alive(t, 0.0, 0.0, r, alpha, a, b + 1.0)


def mbgnbd_probability_no_purchase(t, x, t_x, T, r, alpha, a, b):
    """Probability of no repeat purchase in ``(T, T + t]`` given the history.

    A customer alive at ``T`` can only drop out right after a purchase, so
    he buys again within ``t`` with probability ``1 - exp(-lambda t)``; alive
    at ``T``, ``lambda ~ Gamma(r + x, alpha + T)`` ([BDF07]'s likelihood,
    alive branch). Hence
    ``P(no purchase) = 1 - P(alive) [1 - ((alpha + T) / (alpha + T + t)) ** (r + x)]``.

    Returns
    -------
    numpy.ndarray
    """
    x = np.asarray(x, dtype=float)
    aT = alpha + np.asarray(T, dtype=float)
    t = np.asarray(t, dtype=float)
    buy = -np.expm1(-(r + x) * np.log1p(t / aT))
    return 1.0 - mbgnbd_probability_alive(x, t_x, T, r, alpha, a, b) * buy


def mbgnbd_next_purchase_quantile(q, x, t_x, T, r, alpha, a, b):
    """Time until the next purchase at quantile ``q``, closed form.

    :func:`mbgnbd_probability_no_purchase` has the BG/NBD's form, so its root
    at ``1 - q`` is :func:`rfmml.models._formulas.quantile_given_alive` with
    this model's ``P(alive)``.

    Returns
    -------
    numpy.ndarray
    """
    alive = mbgnbd_probability_alive(x, t_x, T, r, alpha, a, b)
    with np.errstate(divide="ignore"):
        ratio = q / alive
    return quantile_given_alive(q, ratio, x, T, r, alpha)


def mbgnbd_probability_of_purchases(n, t, r, alpha, a, b):
    """Probability that a new customer makes exactly ``n`` repeat purchases in ``(0, t]``.

    [BDF07] (the BG/NBD's FHL05 eq. 8 with the extra coin flip at 0):
    ``P(X(t) = n) = B(a, b + n + 1) / B(a, b) NB(n; t)
    + B(a + 1, b + n) / B(a, b) [1 - sum_(j<n) NB(j; t)]``, with
    ``NB(j; t) = Gamma(r + j) / (Gamma(r) j!) (alpha / (alpha + t)) ** r (t / (alpha + t)) ** j``;
    at ``n = 0`` the second term is the probability ``a / (a + b)`` of
    dropping out at once.

    Returns
    -------
    numpy.ndarray
    """
    n, shape, log_p0, log_nb_n, tail = nbd_count_terms(n, t, r, alpha)
    first = np.exp(betaln(a, b + n + 1.0) - betaln(a, b) + log_p0 + log_nb_n)
    second = np.exp(betaln(a + 1.0, b + n) - betaln(a, b)) * tail
    return (first + second).reshape(shape)
