"""The BG/BB model for discrete transaction opportunities (Fader, Hardie & Shang 2010)."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd

from rfmml.errors import DataError
from rfmml.models import _formulas_bgbb as F
from rfmml.models._base import PurchaseModel, as_horizon
from rfmml.models._grouping import map_rows
from rfmml.models._registry import register_model
from rfmml.models._summary_checks import (
    check_opportunities,
    check_repeat_buyers,
    check_time_unit,
)
from rfmml.models._validation import check_summary

__all__ = ["BetaGeoBetaBinom"]

COLUMNS = ("frequency", "recency", "T")


def _whole(values, name: str) -> np.ndarray:
    """Opportunity counts must be whole numbers (``inf`` allowed where documented)."""
    arr = np.asarray(values, dtype=float)
    finite = arr[np.isfinite(arr)]
    if (finite != np.floor(finite)).any() or (arr < 0).any():
        raise DataError(
            f"{name} counts transaction opportunities for the BG/BB model and must hold "
            f"non-negative integers, got {values!r}."
        )
    return arr


@register_model
class BetaGeoBetaBinom(PurchaseModel):
    """Beta-geometric/beta-binomial (BG/BB) model for discrete transaction opportunities.

    At each opportunity (a year with a possible donation, a weekly issue, a
    yearly event) an alive customer transacts with probability
    ``p ~ Beta(alpha, beta)``; before each opportunity he drops out with
    probability ``theta ~ Beta(gamma, delta)`` (Fader, Hardie & Shang 2010).
    The summary counts opportunities, not time: ``T`` is the number of
    opportunities ``n`` after the first transaction, ``recency`` the last
    opportunity with a transaction (0 if none) and ``frequency`` the number
    of opportunities with one, all integers with
    ``frequency <= recency <= T``. Horizons ``t`` of the predictions are
    numbers of future opportunities.

    Parameters
    ----------
    penalizer : float, default 0.0
        L2 penalty added to the mean negative log-likelihood,
        ``penalizer * (alpha**2 + beta**2 + gamma**2 + delta**2)``; exactly
        lifetimes' ``BetaGeoBetaBinomFitter(penalizer_coef)``.
    initial_params : mapping of str to float, optional
        Starting values for ``alpha, beta, gamma, delta``.
    tol : float, default 1e-10
        Gradient tolerance of the optimiser on the mean objective.
    max_iter : int, default 1000
        Iteration cap per starting point.

    Attributes
    ----------
    params_ : pandas.Series
        Fitted ``alpha, beta, gamma, delta``.
    log_likelihood_ : float
        Total (unpenalised) log-likelihood at ``params_``.
    summary_ : pandas.DataFrame
        ``estimate, std_error, lower_95, upper_95`` per parameter.
    n_customers_, n_unique_rows_, convergence_, freq_, training_fingerprint_, fit_date_
        As for :class:`rfmml.models.BetaGeoNBD`.

    References
    ----------
    Fader, P. S., Hardie, B. G. S. and Shang, J. (2010), "Customer-base
    analysis in a discrete-time noncontractual setting", Marketing Science
    29 (6), 1086-1108.
    """

    kind = "BetaGeoBetaBinom"
    param_names = ("alpha", "beta", "gamma", "delta")
    fit_columns = COLUMNS

    def __init__(
        self,
        penalizer: float = 0.0,
        initial_params: Mapping[str, float] | None = None,
        tol: float = 1e-10,
        max_iter: int = 1000,
    ):
        self.penalizer = penalizer
        self.initial_params = initial_params
        self.tol = tol
        self.max_iter = max_iter

    # ---------------------------------------------------------- likelihood
    def _select_rows(self, X, columns):
        check_opportunities(X, columns)
        check_repeat_buyers(X, columns["frequency"], "BetaGeoBetaBinom")
        return super()._select_rows(X, columns)

    def _prepare(self, rows, weights) -> F.BGBBData:
        return F.bgbb_prepare(rows["frequency"], rows["recency"], rows["T"], weights)

    def _log_likelihood(self, theta, data: F.BGBBData):
        # FHS10 eq. (5) summed with weights, and its gradient
        alpha, beta, gamma, delta = theta
        return F.bgbb_total_log_likelihood_and_gradient(alpha, beta, gamma, delta, data)

    def _starting_points(self, data: F.BGBBData) -> list[np.ndarray]:
        return [
            np.exp(np.full(4, 0.1)),
            np.array([1.2, 0.75, 0.66, 2.8]),  # near the donations estimates
            np.ones(4),
            np.full(4, 0.5),
            np.array([2.0, 2.0, 2.0, 2.0]),
        ]

    # ---------------------------------------------------------- predictions
    def _columns(self, X: pd.DataFrame, what: str) -> tuple[np.ndarray, ...]:
        self._theta()  # NotFittedError first
        c = check_summary(X, COLUMNS, what=what)
        check_opportunities(X, c)
        check_time_unit(X, self.freq_, "BetaGeoBetaBinom")
        return c["frequency"], c["recency"], c["T"]

    def probability_alive(self, X: pd.DataFrame) -> pd.Series:
        """Probability that each customer is alive at opportunity ``T + 1`` (FHS10 eq. 11).

        Parameters
        ----------
        X : pandas.DataFrame
            Columns ``frequency``, ``recency``, ``T`` (opportunities).

        Returns
        -------
        pandas.Series
        """
        x, t_x, n = self._columns(X, "probability_alive")
        theta = self._theta()
        p = map_rows(lambda *c: F.bgbb_probability_alive(*c, *theta), x, t_x, n)
        return pd.Series(p, index=X.index, name="probability_alive")

    def expected_purchases(self, X: pd.DataFrame, t) -> pd.Series:
        """Expected transactions in the next ``t`` opportunities (FHS10 eq. 13).

        Parameters
        ----------
        X : pandas.DataFrame
            Columns ``frequency``, ``recency``, ``T`` (opportunities).
        t : int or array_like of int
            Number of future opportunities, one value or one per customer.

        Returns
        -------
        pandas.Series
        """
        x, t_x, n = self._columns(X, "expected_purchases")
        m = _whole(as_horizon(t, len(X)), "t")
        theta = self._theta()
        horizon = m
        e = map_rows(lambda *c: F.bgbb_expected_purchases(*c, *theta), horizon, x, t_x, n)
        return pd.Series(e, index=X.index, name="expected_purchases")

    def probability_no_purchase(self, X: pd.DataFrame, t) -> pd.Series:
        """Probability of no transaction in the next ``t`` opportunities.

        See :func:`rfmml.models._formulas_bgbb.bgbb_probability_no_purchase`.
        ``t`` counts whole opportunities: a non-integer ``t`` means the
        opportunities within it (``floor(t)``), so that the base's quantiles
        of the time to the next transaction are whole numbers of
        opportunities; ``t = inf`` gives the probability of never transacting
        again.

        Parameters
        ----------
        X : pandas.DataFrame
            Columns ``frequency``, ``recency``, ``T`` (opportunities).
        t : float or array_like
            Future opportunities (``>= 0``, ``inf`` allowed).

        Returns
        -------
        pandas.Series
        """
        x, t_x, n = self._columns(X, "probability_no_purchase")
        theta = self._theta()
        horizon = as_horizon(t, len(X))
        p = map_rows(lambda *c: F.bgbb_probability_no_purchase(*c, *theta), horizon, x, t_x, n)
        return pd.Series(p, index=X.index, name="probability_no_purchase")

    def expected_purchases_new_customer(self, t):
        """Expected transactions of a new customer in the first ``t`` opportunities (FHS10 eq. 9).

        Parameters
        ----------
        t : int or array_like of int

        Returns
        -------
        float or numpy.ndarray
        """
        out = F.bgbb_expected_purchases_new_customer(_whole(t, "t"), *self._theta())
        return float(out) if np.ndim(out) == 0 else out

    def probability_of_purchases(self, n, t):
        """Probability that a new customer makes exactly ``n`` transactions in ``t`` opportunities.

        FHS10 eq. (7).

        Parameters
        ----------
        n : int or array_like of int
        t : int or array_like of int

        Returns
        -------
        float or numpy.ndarray
        """
        out = F.bgbb_probability_of_purchases(_whole(n, "n"), _whole(t, "t"), *self._theta())
        return float(out) if np.ndim(out) == 0 else out

    def log_likelihood(self, X: pd.DataFrame) -> pd.Series:
        """Per-customer log-likelihood at the fitted parameters (FHS10 eq. 5).

        Parameters
        ----------
        X : pandas.DataFrame
            Columns ``frequency``, ``recency``, ``T`` (opportunities).

        Returns
        -------
        pandas.Series
        """
        x, t_x, n = self._columns(X, "log_likelihood")
        theta = self._theta()
        ll = map_rows(lambda *c: F.bgbb_log_likelihood(*c, *theta), x, t_x, n, unique=False)
        return pd.Series(ll, index=X.index, name="log_likelihood")
