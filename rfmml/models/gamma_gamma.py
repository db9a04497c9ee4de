"""The Gamma-Gamma model of spend per transaction (Fader, Hardie & Lee 2005b)."""

from __future__ import annotations

import warnings
from datetime import UTC, datetime

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator
from sklearn.utils.validation import check_is_fitted

from rfmml.errors import DataError
from rfmml.models import _formulas as F
from rfmml.models._fitting import fit_log_params, parameter_table, subsample_step
from rfmml.models._grouping import fingerprint, unique_rows
from rfmml.models._json_io import JSONPersistence
from rfmml.models._validation import check_summary, first_id
from rfmml.models.bgnbd import StandardErrorWarning

__all__ = ["GammaGamma", "FrequencyMonetaryCorrelationWarning", "CORRELATION_THRESHOLD"]

PARAM_NAMES = ("p", "q", "v")
#: |Pearson correlation| between frequency and monetary_value of repeat
#: customers above which GammaGamma.fit warns. The model assumes the two are
#: independent; Fader & Hardie (note 025) check this on CDNOW (0.11). 0.3 is a
#: conventional "moderate correlation" cut-off.
CORRELATION_THRESHOLD = 0.3


class FrequencyMonetaryCorrelationWarning(UserWarning):
    """Frequency and monetary value are correlated, against the Gamma-Gamma assumption."""


class GammaGamma(JSONPersistence, BaseEstimator):
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
    tol : float, default 1e-10
        Gradient tolerance of the optimiser on the mean objective.
    max_iter : int, default 1000
        Iteration cap per starting point.

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
    training_fingerprint_ : str
        SHA-256 of the sorted unique training rows and their counts.
    fit_date_ : str
        ISO 8601 UTC time of the fit.

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

    def fit(self, X: pd.DataFrame, y=None) -> GammaGamma:
        """Fit the model to the repeat customers of a summary.

        Parameters
        ----------
        X : pandas.DataFrame
            Columns ``frequency``, ``monetary_value`` (mean value of the
            repeat purchases), optional ``weights``. Rows with frequency 0
            are ignored.
        y : None
            Ignored.

        Returns
        -------
        GammaGamma
            The fitted estimator.

        Raises
        ------
        DataError
            If no customer has a repeat purchase, a repeat customer has
            monetary_value <= 0, or the input is otherwise invalid.
        ConvergenceError
            If no starting point converges.
        """
        if not np.isscalar(self.penalizer) or not self.penalizer >= 0:
            raise ValueError(f"penalizer must be a number >= 0, got {self.penalizer!r}.")
        cols = check_summary(X, ("frequency", "monetary_value"), what="GammaGamma.fit")
        repeat = cols["frequency"] > 0
        if not repeat.any():
            raise DataError(
                f"GammaGamma.fit needs customers with frequency > 0 (repeat purchases), but all "
                f"{len(X)} customers are one-time buyers. The model learns spend from repeat "
                "purchases; use a longer observation period."
            )
        if self.zero_spend not in ("error", "exclude"):
            raise ValueError(
                f"zero_spend must be 'error' or 'exclude', got {self.zero_spend!r}."
            )
        bad = repeat & (cols["monetary_value"] <= 0)
        self.n_excluded_ = 0
        if bad.any() and self.zero_spend == "exclude":
            self.n_excluded_ = int(bad.sum())
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
                f"{int(bad.sum())} of {int(repeat.sum())} repeat customers have "
                "monetary_value <= 0 "
                f"(first customer_id={first!r}). Drop them, net returns out before summarising, "
                "or fit with GammaGamma(zero_spend='exclude')."
            )
        x_all = cols["frequency"][repeat]
        m_all = cols["monetary_value"][repeat]
        w_all = cols["weights"][repeat]
        corr = _weighted_corr(x_all, m_all, w_all)
        if np.isfinite(corr) and abs(corr) > CORRELATION_THRESHOLD:
            warnings.warn(
                f"frequency and monetary_value of repeat customers have Pearson correlation "
                f"{corr:.2f} (|r| > {CORRELATION_THRESHOLD}). The Gamma-Gamma model assumes they "
                "are independent; its spend predictions may be biased.",
                FrequencyMonetaryCorrelationWarning,
                stacklevel=2,
            )

        rows, w = unique_rows({"frequency": x_all, "monetary_value": m_all}, w_all)
        x, m = rows["frequency"], rows["monetary_value"]
        data = F.gamma_gamma_prepare(x, m, w)
        pen = float(self.penalizer)

        def make_objective(prepared):
            n = prepared.n

            def objective(log_theta):
                theta = np.exp(log_theta)
                ll, grad = F.gamma_gamma_total_log_likelihood_and_gradient(*theta, prepared)
                return -ll / n + pen * theta @ theta, (-grad / n + 2.0 * pen * theta) * theta

            return objective

        mean_m = float(np.average(m, weights=w))
        starts = [
            np.full(3, 0.1),  # lifetimes' default start
            np.log([2.0, 3.0, 2.0 * mean_m]),  # population mean v p / (q - 1) equal to mean spend
            np.zeros(3),
            np.log([10.0, 10.0, 10.0 * mean_m]),
        ]
        step = subsample_step(len(x))
        subsample = None if step is None else F.gamma_gamma_prepare(x[::step], m[::step], w[::step])
        outcome, hess, warm = fit_log_params(
            make_objective,
            data,
            subsample,
            starts,
            model="GammaGamma",
            tol=self.tol,
            max_iter=self.max_iter,
        )
        n = data.n
        params = np.exp(outcome.log_params)
        table, ok = parameter_table(PARAM_NAMES, params, hess)
        if not ok:
            warnings.warn(
                "The Hessian of the Gamma-Gamma log-likelihood is not positive definite at the "
                "optimum, so standard errors are NaN. Consider more repeat customers or a small "
                "penalizer.",
                StandardErrorWarning,
                stacklevel=2,
            )
        self.params_ = pd.Series(params, index=list(PARAM_NAMES), name="GammaGamma")
        self.summary_ = table
        self.log_likelihood_ = float(
            F.gamma_gamma_total_log_likelihood_and_gradient(*params, data)[0]
        )
        self.n_customers_ = int(n) if float(n).is_integer() else float(n)
        self.n_unique_rows_ = len(x)
        self.correlation_ = float(corr)
        self.convergence_ = outcome.diagnostics(PARAM_NAMES, np.exp(outcome.start), warm)
        self.freq_ = X.attrs.get("freq")
        self.training_fingerprint_ = fingerprint({"frequency": x, "monetary_value": m}, w)
        self.fit_date_ = datetime.now(UTC).isoformat(timespec="seconds")
        return self

    def _theta(self) -> tuple[float, float, float]:
        check_is_fitted(self)
        p = self.params_
        return float(p["p"]), float(p["q"]), float(p["v"])

    @property
    def population_mean_spend(self) -> float:
        """Mean transaction value of the population, ``v p / (q - 1)`` (infinite when q <= 1)."""
        p, q, v = self._theta()
        return v * p / (q - 1.0) if q > 1 else float("inf")

    def expected_spend(self, X: pd.DataFrame) -> pd.Series:
        """Conditional expected average transaction value (note 025, eq. 5).

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
        c = check_summary(X, ("frequency", "monetary_value"), what="expected_spend")
        x = c["frequency"]
        m = np.where(x > 0, c["monetary_value"], 0.0)
        return pd.Series(
            F.gamma_gamma_expected_spend(x, m, *theta), index=X.index, name="expected_spend"
        )

    def log_likelihood(self, X: pd.DataFrame) -> pd.Series:
        """Per-customer log-likelihood (note 025, eq. 3); NaN for frequency 0.

        Parameters
        ----------
        X : pandas.DataFrame
            Columns ``frequency`` and ``monetary_value``.

        Returns
        -------
        pandas.Series
        """
        theta = self._theta()
        c = check_summary(X, ("frequency", "monetary_value"), what="log_likelihood")
        x = c["frequency"]
        with np.errstate(all="ignore"):
            ll = F.gamma_gamma_log_likelihood(x, c["monetary_value"], *theta)
        return pd.Series(np.where(x > 0, ll, np.nan), index=X.index, name="log_likelihood")


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
