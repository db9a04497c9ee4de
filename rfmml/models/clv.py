"""Customer lifetime value from a fitted purchase model and a Gamma-Gamma spend model."""

from __future__ import annotations

import numpy as np
import pandas as pd

from rfmml.errors import DataError
from rfmml.features import FREQS
from rfmml.models import _formulas as F
from rfmml.models._base import PurchaseModel
from rfmml.models._grouping import map_rows, rows_repeat
from rfmml.models._validation import check_summary
from rfmml.models.bgnbd import BetaGeoNBD
from rfmml.models.gamma_gamma import GammaGamma, expected_order_value_rows

__all__ = ["customer_lifetime_value", "lifetime_value", "resolve_freq", "CLV_CHUNK_ELEMENTS"]

#: Expectations (customers x periods) one chunk of the CLV sum holds: the
#: horizon is summed per chunk of ``CLV_CHUNK_ELEMENTS // (horizon + 1)``
#: distinct rows, never as one horizon x customers matrix (about 2 MiB per
#: temporary, some ten temporaries in the hypergeometric and quadrature paths).
CLV_CHUNK_ELEMENTS = 2**18


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
    purchase_model: PurchaseModel,
    gamma_gamma: GammaGamma,
    summary: pd.DataFrame,
    horizon: int,
    discount_rate: float,
    freq: str | None = None,
) -> pd.Series:
    """Discounted expected spend of each customer over the next ``horizon`` periods.

    ``CLV_i = E[M_i] * sum_{k=1}^{horizon} (E[Y_i(k)] - E[Y_i(k-1)]) / (1 + discount_rate) ** k``

    where ``E[Y_i(k)]`` is the purchase model's conditional expected number
    of repeat purchases in the next ``k`` periods (BG/NBD: Fader, Hardie &
    Lee 2005, eq. 10) and ``E[M_i]`` the Gamma-Gamma conditional expected
    order value (Fader & Hardie note 025, eq. 5); purchases in period ``k``
    are discounted by ``k`` whole periods (the discrete-time DCF of Fader,
    Hardie & Lee 2005b).

    Time units are those of the summary, nothing else: with a weekly summary
    (``freq="W"``) ``horizon=52`` means 52 weeks and ``discount_rate`` is the
    weekly rate (``(1 + annual) ** (1 / 52) - 1``). There is no hidden
    conversion to months.

    For BG/NBD, ``E[Y_i(k)]`` is ``P(alive) E[Y(k) | alive, x, T]``; the second
    factor (:func:`rfmml.models._formulas.bgnbd_expected_purchases_if_alive`:
    the closed form, or its integral form where that fails) is evaluated once
    per k = 0..horizon and distinct (frequency, T) pair, the probability
    alive once per customer; when (frequency, T) rows do not repeat
    (continuous T), the discounted sum is interpolated in ``ln(alpha + T)``
    per frequency instead (:class:`rfmml.models._formulas.IfAliveSumTable`,
    within 1e-12 of the direct sum). Other purchase models are asked for
    ``expected_purchases`` once per k on the distinct summary rows. The sum
    over k is taken per chunk of rows (:data:`CLV_CHUNK_ELEMENTS`, through
    :func:`rfmml.models._grouping.map_rows`), so memory does not grow with
    horizon x customers.

    Parameters
    ----------
    purchase_model : PurchaseModel
        Fitted purchase model (e.g. :class:`BetaGeoNBD`).
    gamma_gamma : GammaGamma
        Fitted spend model.
    summary : pandas.DataFrame
        The purchase model's columns (``frequency``, ``recency``, ``T``) and
        ``monetary_value``.
    horizon : int
        Number of future periods (>= 1), in the summary's time unit.
    discount_rate : float
        Discount rate per period (>= 0).
    freq : {"D", "W", "M"}, optional
        Time unit of the summary. Checked against ``summary.attrs["freq"]``
        and the unit the purchase model was fitted in, when those are known.

    Returns
    -------
    pandas.Series
        CLV per customer (>= 0), aligned to ``summary.index``, named ``clv``.

    Raises
    ------
    DataError
        On invalid input or inconsistent time units.
    """
    purchase_model.get_fitted_params()
    gamma_gamma.get_fitted_params()
    if isinstance(horizon, bool) or not float(horizon).is_integer() or horizon < 1:
        raise DataError(f"horizon must be a whole number of periods >= 1, got {horizon!r}.")
    if not np.isfinite(discount_rate) or discount_rate < 0:
        raise DataError(f"discount_rate must be a per-period rate >= 0, got {discount_rate!r}.")
    unit = resolve_freq(freq, summary, purchase_model, "customer_lifetime_value")
    return lifetime_value(purchase_model, gamma_gamma, summary, int(horizon), discount_rate, unit)


def lifetime_value(
    purchase_model: PurchaseModel,
    gamma_gamma: GammaGamma,
    summary: pd.DataFrame,
    horizon: int,
    discount_rate: float,
    unit: str | None,
) -> pd.Series:
    """:func:`customer_lifetime_value` with ``horizon``, ``discount_rate`` and ``unit`` trusted.

    For callers that validated them already (e.g. ``score_customers``); the
    summary is still checked.
    """
    columns = tuple(dict.fromkeys((*purchase_model.fit_columns, "frequency", "monetary_value")))
    c = check_summary(summary, columns, what="customer_lifetime_value")
    x = c["frequency"]
    per_customer = discounted_purchases(purchase_model, c, horizon, discount_rate)
    spend = expected_order_value_rows(
        x, c["monetary_value"], tuple(gamma_gamma.get_fitted_params().values())
    )
    spend *= per_customer
    clv = np.maximum(spend, 0.0, out=spend)
    out = pd.Series(clv, index=summary.index, name="clv")
    out.attrs["freq"] = unit
    out.attrs["horizon"] = int(horizon)
    out.attrs["discount_rate"] = float(discount_rate)
    return out


def discounted_purchases(
    purchase_model: PurchaseModel,
    c: dict[str, np.ndarray],
    horizon: int,
    discount_rate: float,
    *,
    tabulate: bool | None = None,
) -> np.ndarray:
    """Discounted expected purchases over ``horizon`` periods, per row of checked columns.

    ``sum_k (E[Y(k)] - E[Y(k-1)]) / (1 + d)^k`` for ``k = 1..horizon``: the
    purchase part of the CLV (:func:`lifetime_value` multiplies it by the
    expected order value). Without discount (``d = 0``) the sum is
    ``E[Y(horizon)]``, the model's ``expected_purchases``, computed as such.
    ``c`` holds the purchase model's columns and ``frequency``, as
    :func:`~rfmml.models._validation.check_summary` returns them.
    BG/NBD rows of continuous ``T`` that rarely repeat are summed from a table
    per frequency (``tabulate=None`` decides by :func:`rows_repeat`; ``False``
    evaluates every row, as a caller holding distinct rows of a larger table
    needs to give that table's per-row values).
    """
    if discount_rate == 0.0:
        # undiscounted, the sum telescopes: E[Y(horizon)] - E[Y(0)] = E[Y(horizon)], the
        # model's expected purchases themselves (one evaluation, not horizon + 1; and the
        # CLV is then the expected order value times the expected_purchases column)
        rows = pd.DataFrame({k: c[k] for k in purchase_model.fit_columns}, copy=False)
        return purchase_model.expected_purchases(rows, int(horizon)).to_numpy(copy=True)
    x = c["frequency"]
    steps = np.arange(int(horizon) + 1, dtype=float)
    discount = (1.0 + discount_rate) ** -steps[1:]
    # rows per chunk: a chunk holds a (horizon + 1) x rows block of expectations
    block = max(1, CLV_CHUNK_ELEMENTS // len(steps))
    if type(purchase_model) is BetaGeoNBD:  # its closed form, once per distinct (x, T)
        theta = tuple(purchase_model.get_fitted_params().values())

        def discounted_if_alive(x: np.ndarray, T: np.ndarray) -> np.ndarray:
            # E[Y(k) | alive, x, T], k = 0..horizon, for this chunk's rows
            e = F.bgnbd_expected_purchases_if_alive(steps[:, None], x[None, :], T[None, :], *theta)
            # sum_k (E[Y(k)] - E[Y(k-1)]) / (1 + d)^k: purchases in period k, discounted,
            # added period by period, not as a BLAS product: the product's rounding depended
            # on a row's place in the call (so on the chunking), and OpenBLAS's own threads,
            # woken on chunks the pool already computes in parallel, spun beside them
            total = np.zeros(e.shape[1])
            for k in range(1, len(steps)):
                total += discount[k - 1] * (e[k] - e[k - 1])
            return total

        T = c["T"]
        if tabulate is None:
            tabulate = not rows_repeat(x, T)
        if not tabulate:
            per_customer = map_rows(discounted_if_alive, x, T, chunk_rows=block)
        else:
            # continuous T: the sum is one smooth function of ln(alpha + T) per frequency,
            # tabulated once; summation by parts gives its weights:
            # sum_k d_k (E(k) - E(k-1)) = sum_k (d_k - d_{k+1}) E(k), d_{horizon+1} = 0, E(0) = 0
            weights = discount - np.append(discount[1:], 0.0)
            table = F.bgnbd_if_alive_sum_table(
                steps[1:], weights, pd.unique(x), T.min(), T.max(), *theta
            )
            per_customer = map_rows(
                lambda x, T: F.bgnbd_if_alive_sum(table, x, T), x, T, unique=False
            )
        per_customer *= purchase_model._probability_alive(c, theta)
    else:
        keys = purchase_model.fit_columns

        def discounted(*cols: np.ndarray) -> np.ndarray:
            rows = pd.DataFrame(dict(zip(keys, cols, strict=True)))
            total = np.zeros(len(rows))
            previous = purchase_model.expected_purchases(rows, 0.0).to_numpy()
            for k in range(1, len(steps)):
                current = purchase_model.expected_purchases(rows, steps[k]).to_numpy()
                total += discount[k - 1] * (current - previous)
                previous = current
            return total

        per_customer = map_rows(discounted, *(c[k] for k in keys), chunk_rows=block)
    return per_customer
