"""The Gamma-Gamma model of spend per transaction (Fader, Hardie & Lee 2005b)."""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import pandas as pd

from rfmml.errors import DataError
from rfmml.features._spark import is_spark
from rfmml.models import _formulas as F
from rfmml.models._base import MaximumLikelihoodModel
from rfmml.models._grouping import map_rows
from rfmml.models._registry import register_model
from rfmml.models._validation import check_summary, first_id

__all__ = [
    "GammaGamma",
    "FrequencyMonetaryCorrelationWarning",
    "CORRELATION_THRESHOLD",
    "expected_order_value_rows",
]

PARAM_NAMES = ("p", "q", "v")
#: |Pearson correlation| between frequency and monetary_value of repeat
#: customers above which GammaGamma.fit warns. The model assumes the two are
#: independent; Fader & Hardie (note 025) check this on CDNOW (0.11). 0.3 is a
#: conventional "moderate correlation" cut-off.
CORRELATION_THRESHOLD = 0.3


class FrequencyMonetaryCorrelationWarning(UserWarning):
    """Frequency and monetary value are correlated, against the Gamma-Gamma assumption."""


@register_model
class GammaGamma(MaximumLikelihoodModel):
    """Gamma-Gamma model of the average transaction value.

    A customer's transaction values are Gamma(p, nu) with
    ``nu ~ Gamma(q, v)`` across customers (``v`` is the papers' gamma and
    lifetimes' ``v``). Fitted on repeat customers (frequency > 0) by maximum
    likelihood on log-parameters with the analytic gradient.

    Parameters
    ----------
    penalizer : float, default 0.0
        L2 penalty ``penalizer * (p**2 + q**2 + v**2)`` added to the mean
        negative log-likelihood (lifetimes' ``penalizer_coef``).
    tol, max_iter : float, int, default 1e-10, 1000
        Optimiser tolerance and iteration cap, as for :class:`rfmml.models.BetaGeoNBD`.

    Attributes
    ----------
    params_ : pandas.Series
        Fitted ``p, q, v``.
    log_likelihood_ : float
        Total (unpenalised) log-likelihood of the repeat customers.
    n_customers_ : int or float
        Number (sum of weights) of repeat customers used in the fit.
    n_unique_rows_ : int
        Distinct (frequency, monetary_value) rows.
    n_excluded_ : int
        Repeat customers left out because their repeat spend is 0
        (``zero_spend="exclude"``; 0 otherwise).
    summary_ : pandas.DataFrame
        ``estimate, std_error, lower_95, upper_95`` per parameter.
    convergence_ : dict
        Optimiser diagnostics and the starting point used.
    correlation_ : float
        Pearson correlation of frequency and monetary_value of repeat customers.
    training_fingerprint_, fit_date_
        As for :class:`rfmml.models.BetaGeoNBD`.

    References
    ----------
    Fader, P. S., Hardie, B. G. S. and Lee, K. L. (2005), "RFM and CLV: using
    iso-value curves for customer base analysis", Journal of Marketing
    Research 42 (4), 415-430.

    Fader, P. S. and Hardie, B. G. S. (2013), "The Gamma-Gamma model of
    monetary value", http://brucehardie.com/notes/025/
    """

    def __init__(
        self,
        penalizer: float = 0.0,
        tol: float = 1e-10,
        max_iter: int = 1000,
        zero_spend: str = "error",
    ):
        self.penalizer = penalizer
        self.zero_spend = zero_spend
        self.tol = tol
        self.max_iter = max_iter

    kind = "GammaGamma"
    param_names = PARAM_NAMES
    fit_columns = ("frequency", "monetary_value")
    saved_attributes = ("correlation_", "n_excluded_")

    def _select_rows(
        self, X: pd.DataFrame, cols: dict[str, np.ndarray]
    ) -> tuple[dict[str, np.ndarray], np.ndarray, dict[str, Any]]:
        """Repeat customers with positive spend; ``n_excluded_`` and ``correlation_``.

        Raises
        ------
        DataError
            If no customer has a repeat purchase, or a repeat customer has
            monetary_value <= 0 (unless ``zero_spend="exclude"``).
        """
        if self.zero_spend not in ("error", "exclude"):
            raise ValueError(f"zero_spend must be 'error' or 'exclude', got {self.zero_spend!r}.")
        repeat = cols["frequency"] > 0
        w_all = cols["weights"]  # customers per row: counts below are customers, not rows

        def customers(mask: np.ndarray) -> int | float:
            total = float(w_all[mask].sum())
            return int(total) if total.is_integer() else total

        if not repeat.any():
            raise DataError(
                f"GammaGamma.fit needs customers with frequency > 0 (repeat purchases), but all "
                f"{customers(np.ones(len(w_all), dtype=bool))} customers are one-time buyers. "
                "The model learns spend from repeat purchases; use a longer observation period."
            )
        bad = repeat & (cols["monetary_value"] <= 0)
        n_excluded: int | float = 0
        if bad.any() and self.zero_spend == "exclude":
            n_excluded = customers(bad)
            repeat = repeat & ~bad
            if not repeat.any():
                raise DataError(
                    "GammaGamma.fit: every repeat customer has monetary_value <= 0; there is "
                    "no spend to model."
                )
        elif bad.any():
            first = first_id(X.index, bad)
            raise DataError(
                f"monetary_value must be > 0 for customers with frequency > 0, but "
                f"{customers(bad)} of {customers(repeat)} repeat customers have "
                "monetary_value <= 0 "
                f"(first customer_id={first!r}). Drop them, net returns out before summarising, "
                "or fit with GammaGamma(zero_spend='exclude')."
            )
        x = cols["frequency"][repeat]
        m = cols["monetary_value"][repeat]
        w = cols["weights"][repeat]
        corr = _weighted_corr(x, m, w)
        if np.isfinite(corr) and abs(corr) > CORRELATION_THRESHOLD:
            warnings.warn(
                f"frequency and monetary_value of repeat customers have Pearson correlation "
                f"{corr:.2f} (|r| > {CORRELATION_THRESHOLD}). The Gamma-Gamma model assumes they "
                "are independent; its spend predictions may be biased.",
                FrequencyMonetaryCorrelationWarning,
                stacklevel=3,
            )
        rows = {"frequency": x, "monetary_value": m}
        return rows, w, {"n_excluded_": n_excluded, "correlation_": float(corr)}

    def _prepare(self, rows, weights) -> F.GammaGammaData:
        return F.gamma_gamma_prepare(rows["frequency"], rows["monetary_value"], weights)

    def _log_likelihood(self, theta: np.ndarray, data: F.GammaGammaData):
        # note 025 eq. (3), summed over unique rows with weights, and its gradient
        p, q, v = theta
        return F.gamma_gamma_total_log_likelihood_and_gradient(p, q, v, data)

    def _starting_points(self, data: F.GammaGammaData) -> list[np.ndarray]:
        mean_m = float(np.average(data.m, weights=data.weights))
        return [
            np.exp(np.full(3, 0.1)),  # lifetimes' default start (log-parameters 0.1)
            np.array([2.0, 3.0, 2.0 * mean_m]),  # population mean v p / (q - 1) = mean spend
            np.ones(3),
            np.array([10.0, 10.0, 10.0 * mean_m]),
        ]

    @property
    def population_mean_spend(self) -> float:
        """Mean transaction value of the population, ``v p / (q - 1)`` (infinite when q <= 1)."""
        p, q, v = self._theta()
        return v * p / (q - 1.0) if q > 1 else float("inf")

    def expected_order_value(self, X: pd.DataFrame) -> pd.Series:
        """Conditional expected order (transaction) value of each customer (note 025, eq. 5).

        Multiply by expected purchases for an expected spend over a horizon.

        Parameters
        ----------
        X : pandas.DataFrame
            Columns ``frequency`` and ``monetary_value``.

        Returns
        -------
        pandas.Series
            Aligned to ``X.index``; the population mean for customers with
            frequency 0.
        """
        theta = self._theta()
        if is_spark(X):  # evaluated in Spark, a Spark frame back
            from rfmml.models._spark import spark_predict

            columns = ("frequency", "monetary_value")
            return spark_predict(self, X, "expected_order_value", "expected_order_value", columns)
        c = check_summary(X, ("frequency", "monetary_value"), what="expected_order_value")
        value = expected_order_value_rows(c["frequency"], c["monetary_value"], theta)
        return pd.Series(value, index=X.index, name="expected_order_value")

    def log_likelihood(self, X: pd.DataFrame) -> pd.Series:
        """Per-customer log-likelihood (note 025, eq. 3); NaN for frequency 0.

        Parameters
        ----------
        X : pandas.DataFrame
            As for :meth:`expected_order_value`.

        Returns
        -------
        pandas.Series
            Aligned to ``X.index`` (not multiplied by ``weights``).
        """
        theta = self._theta()
        c = check_summary(X, ("frequency", "monetary_value"), what="log_likelihood")

        def log_likelihood(x: np.ndarray, m: np.ndarray) -> np.ndarray:
            with np.errstate(all="ignore"):
                ll = F.gamma_gamma_log_likelihood(x, m, *theta)
            return np.where(x > 0, ll, np.nan)

        ll = map_rows(log_likelihood, c["frequency"], c["monetary_value"], unique=False)
        return pd.Series(ll, index=X.index, name="log_likelihood")


def expected_order_value_rows(x: np.ndarray, m: np.ndarray, theta) -> np.ndarray:
    """Note 025 eq. (5) per customer, in bounded chunks; ``m`` is ignored where ``x == 0``.

    Parameters
    ----------
    x, m : numpy.ndarray
        Frequencies and mean repeat spends.
    theta : sequence of float
        ``p, q, v``.

    Returns
    -------
    numpy.ndarray
    """

    def value(x: np.ndarray, m: np.ndarray) -> np.ndarray:
        return F.gamma_gamma_expected_order_value(x, np.where(x > 0, m, 0.0), *theta)

    return map_rows(value, x, m, unique=False)


def _weighted_corr(x: np.ndarray, y: np.ndarray, w: np.ndarray) -> float:
    """Weighted Pearson correlation (centred first, then dot products)."""
    if len(x) < 3:
        return float("nan")
    total = w.sum()
    xc = x - (w @ x) / total
    yc = y - (w @ y) / total
    wx = w * xc
    sxx, syy, sxy = wx @ xc, (w * yc) @ yc, wx @ yc
    return float(sxy / np.sqrt(sxx * syy)) if sxx > 0 and syy > 0 else float("nan")
