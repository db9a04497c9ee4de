"""The BG/NBD model of repeat purchasing (Fader, Hardie & Lee 2005)."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd

from rfmml.errors import DataError
from rfmml.models import _formulas as F
from rfmml.models._base import PurchaseModel, StandardErrorWarning, as_horizon
from rfmml.models._grouping import map_rows
from rfmml.models._registry import register_model
from rfmml.models._validation import check_summary

__all__ = ["BetaGeoNBD", "StandardErrorWarning"]

PARAM_NAMES = ("r", "alpha", "a", "b")


@register_model
class BetaGeoNBD(PurchaseModel):
    """Beta-geometric/negative binomial (BG/NBD) model of repeat purchases.

    Each customer buys at a Poisson rate ``lambda ~ Gamma(r, alpha)`` while
    alive and drops out after any repeat purchase with probability
    ``p ~ Beta(a, b)`` (Fader, Hardie & Lee 2005). Fitted by maximum
    likelihood on log-parameters with the analytic gradient, on unique
    (frequency, recency, T) rows with counts as weights, using the
    numerically stable likelihood of Fader & Hardie (2013).

    Parameters
    ----------
    penalizer : float, default 0.0
        L2 penalty added to the mean negative log-likelihood:
        ``penalizer * (r**2 + (alpha * s)**2 + a**2 + b**2)`` with the time
        rescaling ``s = 1 / max(T)``. This is exactly lifetimes'
        ``penalizer_coef``, so both libraries reach the same optimum.
    initial_params : mapping of str to float, optional
        Starting values for ``r, alpha, a, b`` (alpha in the summary's time
        unit), tried before the built-in starting points.
    tol : float, default 1e-10
        Gradient tolerance of the optimiser on the mean objective.
    max_iter : int, default 1000
        Iteration cap per starting point.

    Attributes
    ----------
    params_ : pandas.Series
        Fitted ``r, alpha, a, b`` (alpha in the summary's time unit).
    log_likelihood_ : float
        Total (unpenalised) log-likelihood at ``params_``.
    n_customers_ : int or float
        Sum of the weights (the number of customers).
    n_unique_rows_ : int
        Distinct (frequency, recency, T) rows the fit used.
    summary_ : pandas.DataFrame
        ``estimate, std_error, lower_95, upper_95`` per parameter, from the
        Hessian of the log-likelihood at the optimum (delta method).
    convergence_ : dict
        ``success, n_iter, message, start`` (the starting point used, natural
        scale) and ``attempts`` (every start tried).
    freq_ : str or None
        ``summary.attrs["freq"]`` of the training frame (D, W or M), if set.
    training_fingerprint_ : str
        SHA-256 of the sorted unique training rows and their counts.
    fit_date_ : str
        ISO 8601 UTC time of the fit.

    References
    ----------
    Fader, P. S., Hardie, B. G. S. and Lee, K. L. (2005), "Counting your
    customers the easy way: an alternative to the Pareto/NBD model",
    Marketing Science 24 (2), 275-284.

    Fader, P. S. and Hardie, B. G. S. (2013), "Overcoming the BG/NBD model's
    #NUM! error problem", http://brucehardie.com/notes/027/
    """

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

    kind = "BetaGeoNBD"
    param_names = PARAM_NAMES
    fit_columns = ("frequency", "recency", "T")
    #: recency and T are divided by max(T) during the fit (maximum age 1), as
    #: lifetimes does, so that alpha is of order 1 and the penalizer means the
    #: same thing as lifetimes' ``penalizer_coef``.
    time_columns = ("recency", "T")
    time_params = ("alpha",)

    # ---------------------------------------------------------- likelihood
    def _prepare(self, rows, weights) -> F.BGNBDData:
        return F.bgnbd_prepare(rows["frequency"], rows["recency"], rows["T"], weights)

    def _rescale(self, data: F.BGNBDData, rows, weights, scale: float) -> F.BGNBDData:
        # same levels, only the time values change: no second grouping
        return data._replace(
            t_x=data.t_x * scale,
            T=data.T * scale,
            **{
                k: getattr(data, k) * scale
                for k in ("T_levels", "t_x_levels")
                if getattr(data, k) is not None
            },
        )

    def _log_likelihood(self, theta: np.ndarray, data: F.BGNBDData):
        # FH 2013 expression (4), summed over unique rows with weights, and its gradient
        r, alpha, a, b = theta
        return F.bgnbd_total_log_likelihood_and_gradient(r, alpha, a, b, data)

    def _starting_points(self, data: F.BGNBDData) -> list[np.ndarray]:
        return [
            np.exp(np.full(4, 0.1)),  # lifetimes' default start (log-parameters 0.1)
            np.array([0.5, max(data.T.mean(), 1e-3), 0.8, 2.5]),  # near typical published values
            np.ones(4),
            np.full(4, 0.1),
            np.array([2.0, 10.0, 2.0, 10.0]),
        ]

    # ---------------------------------------------------------- predictions
    def probability_alive(self, X: pd.DataFrame) -> pd.Series:
        """Probability that each customer is still active (Fader, Hardie & Lee 2008, eq. 2).

        Parameters
        ----------
        X : pandas.DataFrame
            Columns ``frequency``, ``recency``, ``T``.

        Returns
        -------
        pandas.Series
            Aligned to ``X.index``; exactly 1 for customers with frequency 0.
        """
        theta = self._theta()
        c = check_summary(X, ("frequency", "recency", "T"), what="probability_alive")
        p = self._probability_alive(c, theta)
        return pd.Series(p, index=X.index, name="probability_alive")

    @staticmethod
    def _probability_alive(c: dict[str, np.ndarray], theta) -> np.ndarray:
        # FH08 eq. (2), elementwise and cheap: chunked in order, not collapsed
        return map_rows(
            lambda x, t_x, T: F.bgnbd_probability_alive(x, t_x, T, *theta),
            c["frequency"],
            c["recency"],
            c["T"],
            unique=False,
        )

    def expected_purchases(self, X: pd.DataFrame, t) -> pd.Series:
        """Expected repeat purchases in the next ``t`` periods, given each history.

        Eq. (10) of Fader, Hardie & Lee (2005), with its integral form where
        the closed form fails (see
        :func:`rfmml.models._formulas.bgnbd_expected_purchases_if_alive`).
        Everything but the probability alive depends on (frequency, T, t)
        only and is evaluated once per distinct triple when rows repeat, in
        bounded chunks either way (:func:`rfmml.models._grouping.map_rows`).

        Parameters
        ----------
        X : pandas.DataFrame
            Columns ``frequency``, ``recency``, ``T``.
        t : float or array_like
            Horizon in the summary's time unit, one value or one per customer.

        Returns
        -------
        pandas.Series
            Aligned to ``X.index``.
        """
        theta = self._theta()
        c = check_summary(X, ("frequency", "recency", "T"), what="expected_purchases")
        t_arr = as_horizon(t, len(X))
        # E[Y(t) | alive, x, T] once per distinct (t, x, T), times P(alive) per customer
        expected = map_rows(
            lambda t, x, T: F.bgnbd_expected_purchases_if_alive(t, x, T, *theta),
            t_arr,
            c["frequency"],
            c["T"],
        )
        expected *= self._probability_alive(c, theta)
        return pd.Series(expected, index=X.index, name="expected_purchases")

    def expected_purchases_new_customer(self, t):
        """Expected repeat purchases of a new customer in ``(0, t]`` (FHL 2005, eq. 7).

        Parameters
        ----------
        t : float or array_like
            Horizon(s) in the training summary's time unit.

        Returns
        -------
        float or numpy.ndarray
        """
        out = F.bgnbd_expected_purchases_new_customer(t, *self._theta())
        return float(out) if np.ndim(out) == 0 else out

    def probability_of_purchases(self, n, t):
        """Probability that a new customer makes exactly ``n`` repeat purchases in ``(0, t]``.

        Eq. (8) of Fader, Hardie & Lee (2005).

        Parameters
        ----------
        n : int or array_like of int
            Number of repeat purchases.
        t : float or array_like
            Horizon in the training summary's time unit.

        Returns
        -------
        float or numpy.ndarray
        """
        n_arr = np.asarray(n)
        if (n_arr < 0).any() or (n_arr != np.floor(n_arr)).any():
            raise DataError(f"n must hold non-negative integers, got {n!r}.")
        out = F.bgnbd_probability_of_purchases(n_arr, t, *self._theta())
        return float(out) if np.ndim(out) == 0 else out

    def probability_no_purchase(self, X: pd.DataFrame, t) -> pd.Series:
        """Probability of no purchase in the next ``t`` periods, given each history.

        ``(1 - P(alive)) + P(alive) ((alpha + T) / (alpha + T + t)) ** (r + x)``
        (see :func:`rfmml.models._formulas.bgnbd_probability_no_purchase`);
        ``t = inf`` gives the probability of never buying again,
        ``1 - probability_alive``.

        Parameters
        ----------
        X : pandas.DataFrame
            Columns ``frequency``, ``recency``, ``T``.
        t : float or array_like
            Horizon in the summary's time unit (``>= 0``, ``inf`` allowed),
            one value or one per customer.

        Returns
        -------
        pandas.Series
            Aligned to ``X.index``.
        """
        theta = self._theta()
        c = check_summary(X, ("frequency", "recency", "T"), what="probability_no_purchase")
        p = map_rows(
            lambda t, x, t_x, T: F.bgnbd_probability_no_purchase(t, x, t_x, T, *theta),
            as_horizon(t, len(X)),
            c["frequency"],
            c["recency"],
            c["T"],
            unique=False,
        )
        return pd.Series(p, index=X.index, name="probability_no_purchase")

    def probability_repeat_purchase(self, X: pd.DataFrame, t) -> pd.Series:
        """Probability of at least one repeat purchase in the next ``t`` periods.

        See :func:`rfmml.models._formulas.bgnbd_probability_repeat_purchase`.

        Parameters
        ----------
        X : pandas.DataFrame
            Columns ``frequency``, ``recency``, ``T``.
        t : float or array_like
            Horizon, one value or one per customer.

        Returns
        -------
        pandas.Series
        """
        theta = self._theta()
        c = check_summary(X, ("frequency", "recency", "T"), what="probability_repeat_purchase")
        p = map_rows(
            lambda t, x, t_x, T: F.bgnbd_probability_repeat_purchase(t, x, t_x, T, *theta),
            as_horizon(t, len(X)),
            c["frequency"],
            c["recency"],
            c["T"],
            unique=False,
        )
        return pd.Series(p, index=X.index, name="probability_repeat_purchase")

    def log_likelihood(self, X: pd.DataFrame) -> pd.Series:
        """Per-customer log-likelihood at the fitted parameters (FH 2013, expression 4).

        Parameters
        ----------
        X : pandas.DataFrame
            Columns ``frequency``, ``recency``, ``T``.

        Returns
        -------
        pandas.Series
            Aligned to ``X.index`` (not multiplied by ``weights``).
        """
        theta = self._theta()
        c = check_summary(X, ("frequency", "recency", "T"), what="log_likelihood")
        ll = map_rows(
            lambda x, t_x, T: F.bgnbd_log_likelihood(x, t_x, T, *theta),
            c["frequency"],
            c["recency"],
            c["T"],
            unique=False,
        )
        return pd.Series(ll, index=X.index, name="log_likelihood")
