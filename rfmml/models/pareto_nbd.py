"""The Pareto/NBD model of repeat purchasing (Schmittlein, Morrison & Colombo 1987)."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd

from rfmml.errors import DataError
from rfmml.models import _formulas_pareto as F
from rfmml.models._base import PurchaseModel, as_horizon
from rfmml.models._grouping import map_rows
from rfmml.models._registry import register_model
from rfmml.models._summary_checks import check_repeat_buyers, check_time_unit
from rfmml.models._validation import check_summary

__all__ = ["ParetoNBD"]

COLUMNS = ("frequency", "recency", "T")


@register_model
class ParetoNBD(PurchaseModel):
    """Pareto/NBD model: Poisson purchases and an exponential lifetime, both gamma-mixed.

    While alive a customer buys at rate ``lambda ~ Gamma(r, alpha)``; his
    lifetime is exponential with rate ``mu ~ Gamma(s, beta)``, so he may
    drop out at any time, also before a first repeat purchase (Schmittlein,
    Morrison & Colombo 1987). Fitted by maximum likelihood on
    log-parameters with the analytic gradient, on unique (frequency, recency,
    T) rows with counts as weights; the likelihood is written with a
    bounded hypergeometric factor (:mod:`rfmml.models._formulas_pareto`) and
    stays finite for any frequency and age.

    Parameters
    ----------
    penalizer : float, default 0.0
        L2 penalty added to the mean negative log-likelihood:
        ``penalizer * (r**2 + (alpha u)**2 + s**2 + (beta u)**2)``, ``u = 1 / max(T)``.
        lifetimes' ``ParetoNBDFitter`` adds its ``penalizer_coef`` to the
        *total* negative log-likelihood (divided by the mean weight), so
        ``penalizer = penalizer_coef / n_customers`` reaches its optimum.
    initial_params : mapping of str to float, optional
        Starting values for ``r, alpha, s, beta`` (alpha and beta in the
        summary's time unit), tried before the built-in starting points.
    tol : float, default 1e-10
        Gradient tolerance of the optimiser on the mean objective.
    max_iter : int, default 1000
        Iteration cap per starting point.

    Attributes
    ----------
    params_ : pandas.Series
        Fitted ``r, alpha, s, beta`` (alpha, beta in the summary's time unit).
    log_likelihood_ : float
        Total (unpenalised) log-likelihood at ``params_``.
    summary_ : pandas.DataFrame
        ``estimate, std_error, lower_95, upper_95`` per parameter (Hessian at
        the optimum, delta method).
    n_customers_, n_unique_rows_, convergence_, freq_, training_fingerprint_, fit_date_
        As for :class:`rfmml.models.BetaGeoNBD`.

    References
    ----------
    Schmittlein, D. C., Morrison, D. G. and Colombo, R. (1987), "Counting your
    customers: who are they and what will they do next?", Management Science
    33 (1), 1-24.

    Fader, P. S., Hardie, B. G. S. and Lee, K. L. (2005), "A note on deriving
    the Pareto/NBD model and related expressions",
    http://brucehardie.com/notes/009/
    """

    kind = "ParetoNBD"
    param_names = ("r", "alpha", "s", "beta")
    fit_columns = COLUMNS
    time_columns = ("recency", "T")
    time_params = ("alpha", "beta")

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
        check_repeat_buyers(X, columns["frequency"], "ParetoNBD")
        return super()._select_rows(X, columns)

    def _prepare(self, rows, weights) -> F.ParetoNBDData:
        return F.pareto_nbd_prepare(rows["frequency"], rows["recency"], rows["T"], weights)

    def _log_likelihood(self, theta, data: F.ParetoNBDData):
        # note 009 eq. (18) in the bounded form, summed with weights, and its gradient
        r, alpha, s, beta = theta
        return F.pareto_nbd_total_log_likelihood_and_gradient(r, alpha, s, beta, data)

    def _starting_points(self, data: F.ParetoNBDData) -> list[np.ndarray]:
        T_mean = max(float(data.T.mean()), 1e-3)
        return [
            np.ones(4),  # lifetimes' start (Nelder-Mead around 1)
            np.array([0.5, T_mean, 0.5, T_mean]),  # near the CDNOW estimates, rescaled
            np.full(4, 0.1),
            np.array([2.0, 10.0, 2.0, 10.0]),
        ]

    # ---------------------------------------------------------- predictions
    def _columns(self, X: pd.DataFrame, what: str) -> tuple[np.ndarray, ...]:
        self._theta()  # NotFittedError first
        c = check_summary(X, COLUMNS, what=what)
        check_time_unit(X, self.freq_, "ParetoNBD")
        return c["frequency"], c["recency"], c["T"]

    def probability_alive(self, X: pd.DataFrame) -> pd.Series:
        """Probability that each customer is still alive at ``T`` (note 009, eqs. 36-37).

        Parameters
        ----------
        X : pandas.DataFrame
            Columns ``frequency``, ``recency``, ``T``.

        Returns
        -------
        pandas.Series
            Aligned to ``X.index``. Below 1 for one-time buyers too.
        """
        x, t_x, T = self._columns(X, "probability_alive")
        theta = self._theta()
        p = map_rows(lambda *c: F.pareto_nbd_probability_alive(*c, *theta), x, t_x, T)
        return pd.Series(p, index=X.index, name="probability_alive")

    def expected_purchases(self, X: pd.DataFrame, t) -> pd.Series:
        """Expected purchases in the next ``t`` periods given each history (note 009, eq. 41).

        Parameters
        ----------
        X : pandas.DataFrame
            Columns ``frequency``, ``recency``, ``T``.
        t : float or array_like
            Horizon in the summary's time unit, one value or one per customer.

        Returns
        -------
        pandas.Series
        """
        x, t_x, T = self._columns(X, "expected_purchases")
        theta = self._theta()
        horizon = as_horizon(t, len(X))
        e = map_rows(lambda *c: F.pareto_nbd_expected_purchases(*c, *theta), horizon, x, t_x, T)
        return pd.Series(e, index=X.index, name="expected_purchases")

    def probability_no_purchase(self, X: pd.DataFrame, t) -> pd.Series:
        """Probability of no purchase in ``(T, T + t]`` given each history.

        See :func:`rfmml.models._formulas_pareto.pareto_nbd_probability_no_purchase`;
        ``t = inf`` gives the probability of never buying again.

        Parameters
        ----------
        X : pandas.DataFrame
            Columns ``frequency``, ``recency``, ``T``.
        t : float or array_like
            Horizon (``>= 0``, ``inf`` allowed), one value or one per customer.

        Returns
        -------
        pandas.Series
        """
        x, t_x, T = self._columns(X, "probability_no_purchase")
        theta = self._theta()
        horizon = as_horizon(t, len(X))
        p = map_rows(
            lambda *c: F.pareto_nbd_probability_no_purchase(*c, *theta), horizon, x, t_x, T
        )
        return pd.Series(p, index=X.index, name="probability_no_purchase")

    def expected_purchases_new_customer(self, t):
        """Expected purchases of a new customer in ``(0, t]`` (note 009, eq. 27).

        Parameters
        ----------
        t : float or array_like
            Horizon(s) in the training summary's time unit.

        Returns
        -------
        float or numpy.ndarray
        """
        out = F.pareto_nbd_expected_purchases_new_customer(t, *self._theta())
        return float(out) if np.ndim(out) == 0 else out

    def probability_of_purchases(self, n, t):
        """Probability that a new customer makes exactly ``n`` purchases in ``(0, t]``.

        See :func:`rfmml.models._formulas_pareto.pareto_nbd_probability_of_purchases`.

        Parameters
        ----------
        n : int or array_like of int
        t : float or array_like

        Returns
        -------
        float or numpy.ndarray
        """
        n_arr = np.asarray(n)
        if (n_arr < 0).any() or (n_arr != np.floor(n_arr)).any():
            raise DataError(f"n must hold non-negative integers, got {n!r}.")
        out = F.pareto_nbd_probability_of_purchases(n_arr, t, *self._theta())
        return float(out) if np.ndim(out) == 0 else out

    def log_likelihood(self, X: pd.DataFrame) -> pd.Series:
        """Per-customer log-likelihood at the fitted parameters (note 009, eq. 18).

        Parameters
        ----------
        X : pandas.DataFrame
            Columns ``frequency``, ``recency``, ``T``.

        Returns
        -------
        pandas.Series
        """
        x, t_x, T = self._columns(X, "log_likelihood")
        theta = self._theta()
        ll = map_rows(lambda *c: F.pareto_nbd_log_likelihood(*c, *theta), x, t_x, T, unique=False)
        return pd.Series(ll, index=X.index, name="log_likelihood")
