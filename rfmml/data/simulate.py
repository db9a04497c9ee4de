"""Simulate transaction logs from the BG/NBD and Gamma-Gamma processes.

The purchase process is the BG/NBD story of Fader, Hardie & Lee (2005):
each customer buys at a Poisson rate ``lambda ~ Gamma(r, rate alpha)`` and,
after each repeat purchase, drops out with probability ``p ~ Beta(a, b)``.
Transaction values follow the Gamma-Gamma model of Fader, Hardie & Lee
(2005b): ``nu ~ Gamma(q, rate v)`` per customer and each amount
``~ Gamma(p, rate nu)``. Simulation is vectorised over the customers still
active (one numpy step per purchase number), with a seeded
``numpy.random.Generator`` and no global random state.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd

__all__ = ["simulate_transactions", "DEFAULT_BGNBD_PARAMS_DAYS", "DEFAULT_GAMMA_GAMMA_PARAMS"]

#: CDNOW estimates of Fader, Hardie & Lee (2005) with alpha converted from
#: weeks to days (4.414 * 7).
DEFAULT_BGNBD_PARAMS_DAYS = {"r": 0.243, "alpha": 30.898, "a": 0.793, "b": 2.426}
#: CDNOW spend estimates (Hardie note 025): p, q, v (v is the papers' gamma).
DEFAULT_GAMMA_GAMMA_PARAMS = {"p": 6.25, "q": 3.74, "v": 15.44}


def check_generator(random_state) -> np.random.Generator:
    """Turn ``None``, an int seed or a Generator into a ``numpy.random.Generator``.

    Parameters
    ----------
    random_state : None, int, numpy.random.SeedSequence or numpy.random.Generator
        ``None`` draws fresh entropy; an int makes runs reproducible.

    Returns
    -------
    numpy.random.Generator
    """
    if isinstance(random_state, np.random.Generator):
        return random_state
    if random_state is None or isinstance(random_state, int | np.integer | np.random.SeedSequence):
        return np.random.default_rng(random_state)
    raise TypeError(
        "random_state must be None, an int or a numpy.random.Generator, "
        f"got {type(random_state).__name__}."
    )


def _params(params: Mapping[str, float], names: tuple[str, ...], what: str) -> list[float]:
    missing = [k for k in names if k not in params]
    if missing:
        raise ValueError(f"{what} needs {list(names)}, missing {missing}.")
    values = [float(params[k]) for k in names]
    if not all(np.isfinite(v) and v > 0 for v in values):
        raise ValueError(
            f"{what} must all be finite and > 0, got {dict(zip(names, values, strict=True))}."
        )
    return values


def bgnbd_purchase_process(
    horizon: np.ndarray,
    params: Mapping[str, float],
    rng: np.random.Generator,
    record_times: bool = True,
) -> dict[str, np.ndarray]:
    """Draw repeat purchases of customers observed for ``horizon`` periods after their first.

    Parameters
    ----------
    horizon : numpy.ndarray
        Time from each customer's first purchase to the observation end (T).
    params : mapping
        BG/NBD ``r, alpha, a, b`` (alpha in the time unit of ``horizon``).
    rng : numpy.random.Generator
        Source of randomness.
    record_times : bool, default True
        Also return every repeat purchase (customer index and time).

    Returns
    -------
    dict of str to numpy.ndarray
        ``frequency`` and ``recency`` per customer (time of the last repeat
        purchase, 0 without one), ``lambda`` and ``p`` draws, and when
        ``record_times`` the arrays ``customer`` and ``time`` of all repeat
        purchases, ordered by customer then time.
    """
    r, alpha, a, b = _params(params, ("r", "alpha", "a", "b"), "bgnbd_params")
    horizon = np.asarray(horizon, dtype=float)
    n = horizon.size
    lam = rng.gamma(shape=r, scale=1.0 / alpha, size=n)
    p = rng.beta(a, b, size=n)
    frequency = np.zeros(n, dtype=np.int64)
    recency = np.zeros(n)
    clock = np.zeros(n)
    active = np.arange(n)
    customers, times = [], []
    while active.size:
        with np.errstate(divide="ignore", over="ignore"):
            clock[active] += rng.exponential(size=active.size) / lam[active]
        bought = clock[active] <= horizon[active]
        active = active[bought]
        frequency[active] += 1
        recency[active] = clock[active]
        if record_times:
            customers.append(active)
            times.append(clock[active])
        active = active[rng.random(active.size) >= p[active]]  # survives this purchase
    out = {"frequency": frequency, "recency": recency, "lambda": lam, "p": p}
    if record_times:
        cust = np.concatenate(customers) if customers else np.zeros(0, dtype=np.int64)
        t = np.concatenate(times) if times else np.zeros(0)
        order = np.argsort(cust, kind="stable")  # per customer, times were drawn in order
        out["customer"], out["time"] = cust[order], t[order]
    return out


def simulate_transactions(
    n_customers: int,
    bgnbd_params: Mapping[str, float] | None = None,
    gamma_gamma_params: Mapping[str, float] | None = None,
    start: str | pd.Timestamp = "2020-01-01",
    acquisition_days: float = 84.0,
    observation_days: float = 546.0,
    random_state=None,
) -> pd.DataFrame:
    """Draw a transaction log from the BG/NBD purchase and Gamma-Gamma spend processes.

    Customers make their first purchase at a time uniform over the first
    ``acquisition_days`` after ``start``, then repeat purchases follow the
    BG/NBD process (exponential inter-purchase times in days) until they drop
    out or the observation ends ``observation_days`` after ``start``. Every
    transaction, the first included, gets an amount from the Gamma-Gamma
    process.

    Parameters
    ----------
    n_customers : int
        Number of customers (each has at least one transaction).
    bgnbd_params : mapping, optional
        ``r, alpha, a, b`` with alpha per day. Default
        :data:`DEFAULT_BGNBD_PARAMS_DAYS` (CDNOW, Fader, Hardie & Lee 2005).
    gamma_gamma_params : mapping, optional
        ``p, q, v``. Default :data:`DEFAULT_GAMMA_GAMMA_PARAMS` (CDNOW,
        Hardie note 025).
    start : str or pandas.Timestamp, default "2020-01-01"
        Start of the acquisition window.
    acquisition_days : float, default 84
        Length of the window over which first purchases are spread (12
        weeks, as the CDNOW cohort).
    observation_days : float, default 546
        Time from ``start`` to the end of the observation (78 weeks, as
        CDNOW); must be >= ``acquisition_days``.
    random_state : None, int or numpy.random.Generator
        Seed for reproducible logs.

    Returns
    -------
    pandas.DataFrame
        Columns ``customer_id`` (int64), ``timestamp`` (datetime64[ns]),
        ``amount`` (float64), sorted by customer and time. ``attrs`` holds
        the parameters and the observation end.

    Raises
    ------
    ValueError
        On a non-positive number of customers, window or parameter.

    References
    ----------
    Fader, P. S., Hardie, B. G. S. and Lee, K. L. (2005), "Counting your
    customers the easy way", Marketing Science 24 (2), 275-284.
    Fader, P. S., Hardie, B. G. S. and Lee, K. L. (2005), "RFM and CLV: using
    iso-value curves for customer base analysis", JMR 42 (4), 415-430.
    """
    if int(n_customers) != n_customers or n_customers < 1:
        raise ValueError(f"n_customers must be a positive integer, got {n_customers!r}.")
    if not 0 <= acquisition_days <= observation_days or observation_days <= 0:
        raise ValueError(
            "Need 0 <= acquisition_days <= observation_days and observation_days > 0, got "
            f"acquisition_days={acquisition_days!r}, observation_days={observation_days!r}."
        )
    n = int(n_customers)
    bg = dict(DEFAULT_BGNBD_PARAMS_DAYS if bgnbd_params is None else bgnbd_params)
    gg = dict(DEFAULT_GAMMA_GAMMA_PARAMS if gamma_gamma_params is None else gamma_gamma_params)
    p_shape, q, v = _params(gg, ("p", "q", "v"), "gamma_gamma_params")
    rng = check_generator(random_state)

    birth = rng.uniform(0.0, acquisition_days, size=n)
    draws = bgnbd_purchase_process(observation_days - birth, bg, rng, record_times=True)
    nu = rng.gamma(shape=q, scale=1.0 / v, size=n)

    n_repeat = draws["frequency"]
    counts = n_repeat + 1
    # first purchase of customer i at row offsets[i], its repeats right after
    offsets = np.concatenate([[0], np.cumsum(counts)[:-1]])
    total = int(counts.sum())
    customer = np.repeat(np.arange(n, dtype=np.int64), counts)
    days = np.empty(total)
    days[offsets] = birth
    is_repeat = np.ones(total, dtype=bool)
    is_repeat[offsets] = False
    days[is_repeat] = birth[draws["customer"]] + draws["time"]
    amount = rng.gamma(shape=p_shape, size=total) / nu[customer]

    start_ts = pd.Timestamp(start)
    seconds = np.round(days * 86400.0).astype("int64")
    timestamp = start_ts.to_datetime64().astype("datetime64[s]") + seconds.astype("timedelta64[s]")
    frame = pd.DataFrame(
        {
            "customer_id": customer,
            "timestamp": timestamp.astype("datetime64[ns]"),
            "amount": amount,
        }
    )
    frame.attrs["simulation"] = {
        "bgnbd_params": bg,
        "gamma_gamma_params": gg,
        "start": str(start_ts),
        "observation_end": str(start_ts + pd.Timedelta(days=observation_days)),
        "acquisition_days": float(acquisition_days),
        "observation_days": float(observation_days),
    }
    return frame
