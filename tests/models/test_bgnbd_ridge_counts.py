"""BG/NBD and MBG/NBD count probabilities of a new customer on the purchase ridge.

When ``r`` and ``alpha`` run to infinity at a fixed ``lambda = r / alpha`` the gamma
purchase rates collapse onto ``lambda``: ``NB(j; t) -> Poisson(j; lambda t)`` (the
gamma-Poisson mixture of Fader, Hardie & Lee 2005, sec. 3, with a point mass). In
FHL05 eq. (8) that gives

    P(X(t) = n) = B(a, b + n) / B(a, b) Pois(n; lambda t)
                  + [n > 0] B(a + 1, b + n - 1) / B(a, b) P(Pois(lambda t) >= n)

(for the MBG/NBD, Batislam, Denizel & Filiztekin 2007, ``n + 1`` and ``n`` in the
betas and no ``[n > 0]``). The distance to it is ``O(n ** 2 / r)``; at ``r = 1e12``
``r ln(alpha)`` is ~3e13, so the terms must not be formed from it.
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy.special import betaln, gammaln
from scipy.stats import poisson

from rfmml.models._formulas import bgnbd_probability_of_purchases
from rfmml.models._formulas_mbgnbd import mbgnbd_probability_of_purchases

A, B, LAM = 0.79, 2.43, 0.03  # CDNOW-like dropout, purchases per week
N = np.arange(41.0)


def _poisson_limit(t, shift):
    m = LAM * t
    stay = np.exp(betaln(A, B + N + shift) - betaln(A, B))
    drop = np.exp(betaln(A + 1.0, B + np.maximum(N + shift - 1.0, 0.0)) - betaln(A, B))
    drop = np.where(N + shift > 0, drop, 0.0)
    return stay * poisson.pmf(N, m) + drop * poisson.sf(N - 1.0, m)


def _gammaln_form(t, r, alpha, a, b, shift):
    """FHL05 eq. (8) (``shift = 1``: its MBG/NBD counterpart) with differences of gammaln."""
    log_nb = (gammaln(r + N) - gammaln(r) - gammaln(N + 1.0)
              + r * np.log(alpha / (alpha + t)) + N * np.log(t / (alpha + t)))  # fmt: skip
    nb = np.exp(log_nb)
    tail = 1.0 - np.concatenate(([0.0], np.cumsum(nb)[:-1]))
    stay = np.exp(betaln(a, b + N + shift) - betaln(a, b))
    drop = np.exp(betaln(a + 1.0, b + np.maximum(N + shift - 1.0, 0.0)) - betaln(a, b))
    return stay * nb + np.where(N + shift > 0, drop, 0.0) * tail


FUNCTIONS = [(bgnbd_probability_of_purchases, 0), (mbgnbd_probability_of_purchases, 1)]


@pytest.mark.parametrize(("fn", "shift"), FUNCTIONS)
@pytest.mark.parametrize("t", [10.0, 52.0])
def test_probability_of_purchases_tends_to_the_poisson_limit_on_the_ridge(fn, shift, t):
    limit = _poisson_limit(t, shift)
    got = fn(N, t, 1e12, 1e12 / LAM, A, B)
    shown = limit >= 1e-6  # below, 1 - sum_(j<n) NB(j; t) is a difference near 1
    np.testing.assert_allclose(
        got[shown], limit[shown], rtol=1e-8
    )  # differences of gammaln: 1e-1 off


@pytest.mark.parametrize(("fn", "shift"), FUNCTIONS)
@pytest.mark.parametrize("theta", [(0.243, 4.414, 0.793, 2.426), (2.5, 40.0, 0.3, 5.0)])
def test_probability_of_purchases_off_the_ridge_is_the_gammaln_form(fn, shift, theta):
    for t in (1.0, 39.0):
        expected = _gammaln_form(t, *theta, shift)
        shown = expected >= 1e-4  # the tail's cancellation is the same in both, not its digits
        np.testing.assert_allclose(fn(N, t, *theta)[shown], expected[shown], rtol=1e-13)
