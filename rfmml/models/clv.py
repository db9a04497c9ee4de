"""Customer lifetime value from a fitted BG/NBD and Gamma-Gamma pair."""

from __future__ import annotations

import numpy as np
import pandas as pd

from rfmml.errors import DataError
from rfmml.features import FREQS
from rfmml.models import _formulas as F
from rfmml.models._grouping import group_rows
from rfmml.models._validation import check_summary
from rfmml.models.bgnbd import BetaGeoNBD
from rfmml.models.gamma_gamma import GammaGamma

__all__ = ["customer_lifetime_value", "resolve_freq"]


def resolve_freq(freq: str | None, summary: pd.DataFrame, model, where: str) -> str | None:
    """The one time unit that ``freq``, the summary and a fitted model agree on.

    ``model`` is any fitted model (its ``freq_``). Any of the three may be
    unknown (``None``); those that are known must be equal and one of
    :data:`rfmml.features.FREQS`.

    Raises
    ------
    DataError
        An unknown unit, or units that disagree (``where`` starts the message).
    """
    known = {
        "freq": freq,
        "summary.attrs['freq']": summary.attrs.get("freq"),
        f"{type(model).__name__}.freq_ (its training summary)": getattr(model, "freq_", None),
    }
    given = {k: v for k, v in known.items() if v is not None}
    for source, value in given.items():
        if value not in FREQS:
            raise DataError(f"{where}: {source} is {value!r}; expected one of {FREQS}.")
    if len(set(given.values())) > 1:
        raise DataError(
            f"{where}: time units disagree: {given}. horizon (and discount_rate) are per "
            "period of the summary, so the summary, the fitted BG/NBD and freq must use one unit."
        )
    return next(iter(given.values()), None)


def customer_lifetime_value(
    bgnbd: BetaGeoNBD,
    gamma_gamma: GammaGamma,
    summary: pd.DataFrame,
    horizon: int,
    discount_rate: float,
    freq: str | None = None,
) -> pd.Series:
    """Discounted expected spend of each customer over the next ``horizon`` periods.

    ``CLV_i = E[M_i] * sum_{k=1}^{horizon} (E[Y_i(k)] - E[Y_i(k-1)]) / (1 + discount_rate) ** k``

    where ``E[Y_i(k)]`` is the BG/NBD conditional expected number of repeat
    purchases in the next ``k`` periods (Fader, Hardie & Lee 2005, eq. 10)
    and ``E[M_i]`` the Gamma-Gamma conditional expected spend (Fader & Hardie
    note 025, eq. 5); purchases in period ``k`` are discounted by ``k``
    whole periods (the discrete-time DCF of Fader, Hardie & Lee 2005b).

    Time units are those of the summary, nothing else: with a weekly summary
    (``freq="W"``) ``horizon=52`` means 52 weeks and ``discount_rate`` is the
    weekly rate (``(1 + annual) ** (1 / 52) - 1``). There is no hidden
    conversion to months.

    ``E[Y_i(k)]`` is ``P(alive) E[Y(k) | alive, x, T]``; the second factor
    (:func:`rfmml.models._formulas.bgnbd_expected_purchases_if_alive`: the
    closed form, or its integral form where that fails) is evaluated once
    per k = 0..horizon and distinct (frequency, T) pair, the probability
    alive once per customer.

    Parameters
    ----------
    bgnbd : BetaGeoNBD
        Fitted purchase model.
    gamma_gamma : GammaGamma
        Fitted spend model.
    summary : pandas.DataFrame
        Columns ``frequency``, ``recency``, ``T``, ``monetary_value``.
    horizon : int
        Number of future periods (>= 1), in the summary's time unit.
    discount_rate : float
        Discount rate per period (>= 0).
    freq : {"D", "W", "M"}, optional
        Time unit of the summary. Checked against ``summary.attrs["freq"]``
        and the unit the BG/NBD model was fitted in, when those are known.

    Returns
    -------
    pandas.Series
        CLV per customer (>= 0), aligned to ``summary.index``, named ``clv``.

    Raises
    ------
    DataError
        On invalid input or inconsistent time units.
    """
    theta = tuple(bgnbd.get_fitted_params().values())
    spend_theta = tuple(gamma_gamma.get_fitted_params().values())
    if isinstance(horizon, bool) or not float(horizon).is_integer() or horizon < 1:
        raise DataError(f"horizon must be a whole number of periods >= 1, got {horizon!r}.")
    if not np.isfinite(discount_rate) or discount_rate < 0:
        raise DataError(f"discount_rate must be a per-period rate >= 0, got {discount_rate!r}.")
    unit = resolve_freq(freq, summary, bgnbd, "customer_lifetime_value")
    c = check_summary(
        summary, ("frequency", "recency", "T", "monetary_value"), what="customer_lifetime_value"
    )
    x, T = c["frequency"], c["T"]
    r, alpha, a, b = theta

    codes, first = group_rows(x, T)
    xu, Tu = x[first], T[first]
    steps = np.arange(int(horizon) + 1, dtype=float)
    # E[Y(k) | alive, x, T], k = 0..horizon, per distinct (x, T)
    e = F.bgnbd_expected_purchases_if_alive(
        steps[:, None], xu[None, :], Tu[None, :], r, alpha, a, b
    )
    discount = (1.0 + discount_rate) ** -steps[1:]
    # sum_k (E[Y(k)] - E[Y(k-1)]) / (1 + d)^k per distinct (x, T): purchases made in period k
    per_pair = discount @ (e[1:] - e[:-1])
    p_alive = F.bgnbd_probability_alive(x, c["recency"], T, *theta)
    m = np.where(x > 0, c["monetary_value"], 0.0)
    spend = F.gamma_gamma_expected_order_value(x, m, *spend_theta)
    clv = np.maximum(spend * p_alive * per_pair[codes], 0.0)
    out = pd.Series(clv, index=summary.index, name="clv")
    out.attrs["freq"] = unit
    out.attrs["horizon"] = int(horizon)
    out.attrs["discount_rate"] = float(discount_rate)
    return out
