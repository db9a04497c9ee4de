"""Seeded simulators that draw data from the fitted models' generative stories.

``simulate_bgnbd`` draws a customer summary (frequency, recency, T) from the
BG/NBD process of Fader, Hardie & Lee (2005); ``simulate_gamma_gamma`` draws
mean repeat spend from the Gamma-Gamma model (Fader, Hardie & Lee 2005b).
``rfmml.data.simulate.simulate_transactions`` draws a full transaction log
from the same processes.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd

from rfmml.data.simulate import _params, bgnbd_purchase_process, check_generator

__all__ = [
    "simulate_bgnbd",
    "simulate_gamma_gamma",
    "simulate_pareto_nbd",
    "simulate_mbgnbd",
    "simulate_bgbb",
]


def simulate_bgnbd(n: int, T, params: Mapping[str, float], random_state=None) -> pd.DataFrame:
    """Draw a BG/NBD customer summary.

    Parameters
    ----------
    n : int
        Number of customers.
    T : float or array_like
        Age of each customer (time from first purchase to observation end),
        one value for all or one per customer, in the unit of ``alpha``.
    params : mapping
        ``r, alpha, a, b``.
    random_state : None, int or numpy.random.Generator
        Seed.

    Returns
    -------
    pandas.DataFrame
        Columns ``frequency`` (float, integer-valued), ``recency``, ``T``,
        indexed by ``customer_id`` 0..n-1; ``attrs["true_params"]`` keeps the
        parameters and ``lambda``/``p`` draws are in ``attrs["latent"]``.

    References
    ----------
    Fader, P. S., Hardie, B. G. S. and Lee, K. L. (2005), "Counting your
    customers the easy way", Marketing Science 24 (2), 275-284, section 2.
    """
    rng = check_generator(random_state)
    T_arr = _ages(n, T)
    draws = bgnbd_purchase_process(T_arr, params, rng, record_times=False)
    names = ("r", "alpha", "a", "b")
    return _summary_frame(draws["frequency"], draws["recency"], T_arr, params, names, None)


def simulate_gamma_gamma(frequency, params: Mapping[str, float], random_state=None):
    """Draw each customer's mean repeat-transaction value from the Gamma-Gamma model.

    ``nu ~ Gamma(q, rate v)``; the mean of ``x`` values ``~ Gamma(p, rate nu)``
    is ``Gamma(p x, rate x nu)``, drawn directly.

    Parameters
    ----------
    frequency : array_like or pandas.Series
        Number of repeat transactions per customer.
    params : mapping
        ``p, q, v``.
    random_state : None, int or numpy.random.Generator
        Seed.

    Returns
    -------
    numpy.ndarray or pandas.Series
        Mean spend (0 where frequency is 0); a Series named
        ``monetary_value`` when ``frequency`` is a Series.

    References
    ----------
    Fader, P. S. and Hardie, B. G. S. (2013), "The Gamma-Gamma model of
    monetary value", http://brucehardie.com/notes/025/
    """
    rng = check_generator(random_state)
    p, q, v = _params(params, ("p", "q", "v"), "gamma_gamma params")
    x = np.asarray(frequency, dtype=float)
    nu = rng.gamma(shape=q, scale=1.0 / v, size=x.shape)
    pos = x > 0
    out = np.zeros(x.shape)
    out[pos] = rng.gamma(shape=p * x[pos]) / (x[pos] * nu[pos])
    if isinstance(frequency, pd.Series):
        return pd.Series(out, index=frequency.index, name="monetary_value")
    return out


def _summary_frame(frequency, recency, T, params, names, latent) -> pd.DataFrame:
    frame = pd.DataFrame(
        {"frequency": frequency.astype(float), "recency": recency, "T": T},
        index=pd.RangeIndex(len(T), name="customer_id"),
    )
    frame.attrs["true_params"] = {k: float(params[k]) for k in names}
    if latent is not None:
        frame.attrs["latent"] = latent
    return frame


def _ages(n: int, T) -> np.ndarray:
    T_arr = np.broadcast_to(np.asarray(T, dtype=float), (int(n),)).copy()
    if (T_arr < 0).any() or np.isnan(T_arr).any():
        raise ValueError("T must be >= 0 and not NaN.")
    return T_arr


def simulate_pareto_nbd(n: int, T, params: Mapping[str, float], random_state=None) -> pd.DataFrame:
    """Draw a Pareto/NBD customer summary.

    ``lambda ~ Gamma(r, rate alpha)``, ``mu ~ Gamma(s, rate beta)``; the
    lifetime is ``tau ~ Exponential(mu)``. Purchases in ``(0, min(tau, T)]``
    are Poisson with mean ``lambda min(tau, T)``, and given their number
    ``x > 0`` the last one is the maximum of ``x`` uniform times, drawn as
    ``min(tau, T) U ** (1 / x)``.

    Parameters
    ----------
    n, T, random_state
        As for :func:`simulate_bgnbd` (``T`` in the unit of ``alpha`` and ``beta``).
    params : mapping
        ``r, alpha, s, beta``.

    Returns
    -------
    pandas.DataFrame
        Columns ``frequency``, ``recency``, ``T`` indexed by ``customer_id``;
        ``attrs["true_params"]`` and the ``lambda``/``mu`` draws and whether
        each customer is alive at ``T`` (``alive``) in ``attrs["latent"]``.

    References
    ----------
    Schmittlein, D. C., Morrison, D. G. and Colombo, R. (1987), "Counting your
    customers", Management Science 33 (1), 1-24, section 2.
    """
    rng = check_generator(random_state)
    r, alpha, s, beta = _params(params, ("r", "alpha", "s", "beta"), "pareto_nbd params")
    T_arr = _ages(n, T)
    lam = rng.gamma(shape=r, scale=1.0 / alpha, size=T_arr.size)
    mu = rng.gamma(shape=s, scale=1.0 / beta, size=T_arr.size)
    with np.errstate(divide="ignore"):
        tau = rng.exponential(size=T_arr.size) / mu
    window = np.minimum(tau, T_arr)
    x = rng.poisson(lam * window)
    u = rng.random(T_arr.size)
    with np.errstate(divide="ignore"):
        recency = np.where(x > 0, window * u ** (1.0 / np.maximum(x, 1)), 0.0)
    latent = {"lambda": lam, "mu": mu, "alive": tau > T_arr}
    return _summary_frame(x, recency, T_arr, params, ("r", "alpha", "s", "beta"), latent)


def simulate_mbgnbd(n: int, T, params: Mapping[str, float], random_state=None) -> pd.DataFrame:
    """Draw an MBG/NBD customer summary.

    ``lambda ~ Gamma(r, rate alpha)``, ``p ~ Beta(a, b)``. A coin flip with
    probability ``p`` at time 0 ends the relationship at once; otherwise
    purchases arrive as a Poisson process and each is followed by the same
    flip. With ``N ~ Poisson(lambda T)`` arrivals and the fatal purchase
    ``K ~ Geometric(p)``, ``x = min(N, K)``; the last purchase is the ``x``-th
    of ``N`` uniform times, ``T Beta(x, N - x + 1)``.

    Parameters
    ----------
    n, T, params, random_state
        As for :func:`simulate_bgnbd` (``T`` in the unit of ``alpha``).

    Returns
    -------
    pandas.DataFrame
        As :func:`simulate_pareto_nbd` (``lambda``/``p``/``alive`` in ``attrs["latent"]``).

    References
    ----------
    Batislam, E. P., Denizel, M. and Filiztekin, A. (2007), "Empirical
    validation and comparison of models for customer base analysis",
    International Journal of Research in Marketing 24 (3), 201-209.
    """
    rng = check_generator(random_state)
    r, alpha, a, b = _params(params, ("r", "alpha", "a", "b"), "mbgnbd params")
    T_arr = _ages(n, T)
    size = T_arr.size
    lam = rng.gamma(shape=r, scale=1.0 / alpha, size=size)
    p = rng.beta(a, b, size=size)
    dead_at_start = rng.random(size) < p
    arrivals = rng.poisson(lam * T_arr)
    fatal = rng.geometric(np.clip(p, 1e-300, 1.0))
    x = np.where(dead_at_start, 0, np.minimum(arrivals, fatal))
    recency = np.zeros(size)
    pos = x > 0
    recency[pos] = T_arr[pos] * rng.beta(x[pos], arrivals[pos] - x[pos] + 1)
    # alive at T: no dropout at time 0 and the fatal purchase not yet made
    latent = {"lambda": lam, "p": p, "alive": ~dead_at_start & (arrivals < fatal)}
    return _summary_frame(x, recency, T_arr, params, ("r", "alpha", "a", "b"), latent)


def simulate_bgbb(
    n: int, n_opportunities, params: Mapping[str, float], random_state=None
) -> pd.DataFrame:
    """Draw a BG/BB summary of discrete transaction opportunities.

    ``p ~ Beta(alpha, beta)``, ``theta ~ Beta(gamma, delta)``; before each
    opportunity an alive customer drops out with probability ``theta``, at
    each opportunity alive he transacts with probability ``p``.

    Parameters
    ----------
    n, random_state
        As for :func:`simulate_bgnbd`.
    n_opportunities : int or array_like of int
        Opportunities after the first transaction, one value or one per customer.
    params : mapping
        ``alpha, beta, gamma, delta``.

    Returns
    -------
    pandas.DataFrame
        Columns ``frequency`` (opportunities with a transaction), ``recency``
        (the last such opportunity, 0 if none) and ``T`` (opportunities), all
        integer-valued floats; ``p``/``theta`` and whether each customer is
        alive after his ``n`` opportunities (``alive``) in ``attrs["latent"]``.

    References
    ----------
    Fader, P. S., Hardie, B. G. S. and Shang, J. (2010), "Customer-base
    analysis in a discrete-time noncontractual setting", Marketing Science
    29 (6), 1086-1108.
    """
    rng = check_generator(random_state)
    names = ("alpha", "beta", "gamma", "delta")
    al, be, ga, de = _params(params, names, "bgbb params")
    n_opp = _ages(n, n_opportunities)
    if (n_opp != np.floor(n_opp)).any():
        raise ValueError("n_opportunities must hold whole numbers.")
    size = n_opp.size
    p = rng.beta(al, be, size=size)
    theta = rng.beta(ga, de, size=size)
    survived = rng.geometric(np.clip(theta, 1e-300, 1.0)) - 1  # opportunities before dropout
    alive_for = np.minimum(survived, n_opp)
    width = int(n_opp.max()) if size else 0
    frequency = np.zeros(size)
    recency = np.zeros(size)
    for start in range(0, size, 100_000):  # bounded memory: (chunk, width) booleans
        sl = slice(start, start + 100_000)
        j = np.arange(1, width + 1)[None, :]
        buys = (rng.random((len(p[sl]), width)) < p[sl, None]) & (j <= alive_for[sl, None])
        frequency[sl] = buys.sum(axis=1)
        recency[sl] = np.where(buys.any(axis=1), width - np.argmax(buys[:, ::-1], axis=1), 0)
    # alive after the n opportunities (survived each of them)
    latent = {"p": p, "theta": theta, "alive": survived >= n_opp}
    return _summary_frame(frequency, recency, n_opp, params, names, latent)
