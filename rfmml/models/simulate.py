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

__all__ = ["simulate_bgnbd", "simulate_gamma_gamma"]


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
    T_arr = np.broadcast_to(np.asarray(T, dtype=float), (int(n),)).copy()
    if (T_arr < 0).any() or np.isnan(T_arr).any():
        raise ValueError("T must be >= 0 and not NaN.")
    draws = bgnbd_purchase_process(T_arr, params, rng, record_times=False)
    frame = pd.DataFrame(
        {
            "frequency": draws["frequency"].astype(float),
            "recency": draws["recency"],
            "T": T_arr,
        },
        index=pd.RangeIndex(int(n), name="customer_id"),
    )
    frame.attrs["true_params"] = {k: float(params[k]) for k in ("r", "alpha", "a", "b")}
    return frame


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
