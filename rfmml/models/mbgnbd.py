"""The MBG/NBD model of repeat purchasing (Batislam, Denizel & Filiztekin 2007)."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd

from rfmml.errors import DataError
from rfmml.models import _formulas_mbgnbd as F
from rfmml.models._base import PurchaseModel, as_horizon
from rfmml.models._grouping import map_rows
from rfmml.models._registry import register_model
from rfmml.models._summary_checks import check_repeat_buyers, check_time_unit
from rfmml.models._validation import check_summary

__all__ = ["ModifiedBetaGeoNBD"]

COLUMNS = ("frequency", "recency", "T")


@register_model
class ModifiedBetaGeoNBD(PurchaseModel):
    """Modified BG/NBD (MBG/NBD): the BG/NBD where one-time buyers can also be inactive.

    Poisson purchases at rate ``lambda ~ Gamma(r, alpha)`` while alive; a
    coin flip with dropout probability ``p ~ Beta(a, b)`` at the first
    purchase (time 0) and after every repeat purchase (Batislam, Denizel &
    Filiztekin 2007; Wagner & Hoppe 2008). Unlike the BG/NBD, a customer
    who bought once has ``P(alive) < 1``. Fitted like
    :class:`rfmml.models.BetaGeoNBD`: maximum likelihood on log-parameters,
    analytic gradient, unique rows with counts as weights.

    Parameters
    ----------
    penalizer : float, default 0.0
        L2 penalty added to the mean negative log-likelihood:
        ``penalizer * (r**2 + (alpha u)**2 + a**2 + b**2)``, ``u = 1 / max(T)``;
        exactly lifetimes' ``ModifiedBetaGeoFitter(penalizer_coef)``.
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
    summary_ : pandas.DataFrame
        ``estimate, std_error, lower_95, upper_95`` per parameter.
    n_customers_, n_unique_rows_, convergence_, freq_, training_fingerprint_, fit_date_
        As for :class:`rfmml.models.BetaGeoNBD`.

    References
    ----------
    Batislam, E. P., Denizel, M. and Filiztekin, A. (2007), "Empirical
    validation and comparison of models for customer base analysis",
    International Journal of Research in Marketing 24 (3), 201-209.

    Wagner, U. and Hoppe, D. (2008), "Erratum on the MBG/NBD model",
    International Journal of Research in Marketing 25 (3), 225-226.
    """

    kind = "ModifiedBetaGeoNBD"
    param_names = ("r", "alpha", "a", "b")
    fit_columns = COLUMNS
    time_columns = ("recency", "T")
    time_params = ("alpha",)

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
        check_repeat_buyers(X, columns["frequency"], "ModifiedBetaGeoNBD")
        return super()._select_rows(X, columns)

    def _prepare(self, rows, weights) -> F.MBGNBDData:
        return F.mbgnbd_prepare(rows["frequency"], rows["recency"], rows["T"], weights)

    def _rescale(self, data: F.MBGNBDData, rows, weights, scale: float) -> F.MBGNBDData:
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

    def _log_likelihood(self, theta, data: F.MBGNBDData):
        # [BDF07] appendix A as corrected by [WH08], summed with weights, and its gradient
        r, alpha, a, b = theta
        return F.mbgnbd_total_log_likelihood_and_gradient(r, alpha, a, b, data)

    def _starting_points(self, data: F.MBGNBDData) -> list[np.ndarray]:
        # np.average, not a BLAS dot: outside the fit's thread limit a multithreaded
        # dot on 40k rows costs ~25 ms of thread wake-ups
        mean_T = max(float(np.average(data.T, weights=data.weights)), 1e-3)
        mean_x = max(float(np.average(data.x, weights=data.weights)), 1e-3)
        return [
            # r / alpha matched to the mean purchase rate, a and b near CDNOW's: the
            # optimiser then needs about half the iterations of lifetimes' start
            np.array([0.5, 0.5 * mean_T / mean_x, 0.9, 1.6]),
            np.exp(np.full(4, 0.1)),  # lifetimes' default start (log-parameters 0.1)
            np.ones(4),
            np.full(4, 0.1),
            np.array([2.0, 10.0, 2.0, 10.0]),
        ]

    # ---------------------------------------------------------- predictions
    def _columns(self, X: pd.DataFrame, what: str) -> tuple[np.ndarray, ...]:
        self._theta()  # NotFittedError first
        c = check_summary(X, COLUMNS, what=what)
        check_time_unit(X, self.freq_, "ModifiedBetaGeoNBD")
        return c["frequency"], c["recency"], c["T"]

    def probability_alive(self, X: pd.DataFrame) -> pd.Series:
        """Probability that each customer is still alive at ``T`` ([BDF07] appendix A, eq. 5).

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
        p = _probability_alive(x, t_x, T, self._theta())
        return pd.Series(p, index=X.index, name="probability_alive")

    def expected_purchases(self, X: pd.DataFrame, t) -> pd.Series:
        """Expected repeat purchases in the next ``t`` periods (Wagner & Hoppe 2008).

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
        # the factor after P(alive) depends on (t, x, T) only: once per distinct triple
        if_alive = map_rows(
            lambda *c: F.mbgnbd_expected_purchases_if_alive(*c, *theta), horizon, x, T
        )
        e = if_alive * _probability_alive(x, t_x, T, theta)
        return pd.Series(e, index=X.index, name="expected_purchases")

    def probability_no_purchase(self, X: pd.DataFrame, t) -> pd.Series:
        """Probability of no purchase in ``(T, T + t]`` given each history.

        ``1 - P(alive) [1 - ((alpha + T) / (alpha + T + t)) ** (r + x)]`` (see
        :func:`rfmml.models._formulas_mbgnbd.mbgnbd_probability_no_purchase`);
        ``t = inf`` gives the probability of never buying again, ``1 - P(alive)``.

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
        p = map_rows(
            lambda *c: F.mbgnbd_probability_no_purchase(*c, *theta),
            as_horizon(t, len(X)),
            x,
            t_x,
            T,
            unique=False,
        )
        return pd.Series(p, index=X.index, name="probability_no_purchase")

    def expected_purchases_new_customer(self, t):
        """Expected repeat purchases of a new customer in ``(0, t]`` ([BDF07]).

        Parameters
        ----------
        t : float or array_like
            Horizon(s) in the training summary's time unit.

        Returns
        -------
        float or numpy.ndarray
        """
        out = F.mbgnbd_expected_purchases_new_customer(t, *self._theta())
        return float(out) if np.ndim(out) == 0 else out

    def probability_of_purchases(self, n, t):
        """Probability that a new customer makes exactly ``n`` repeat purchases in ``(0, t]``.

        See :func:`rfmml.models._formulas_mbgnbd.mbgnbd_probability_of_purchases`.

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
        out = F.mbgnbd_probability_of_purchases(n_arr, t, *self._theta())
        return float(out) if np.ndim(out) == 0 else out

    def log_likelihood(self, X: pd.DataFrame) -> pd.Series:
        """Per-customer log-likelihood at the fitted parameters ([BDF07], [WH08]).

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
        ll = map_rows(lambda *c: F.mbgnbd_log_likelihood(*c, *theta), x, t_x, T, unique=False)
        return pd.Series(ll, index=X.index, name="log_likelihood")


def _probability_alive(x: np.ndarray, t_x: np.ndarray, T: np.ndarray, theta) -> np.ndarray:
    """P(alive) per customer (elementwise and cheap: in bounded chunks, in order)."""
    return map_rows(lambda *c: F.mbgnbd_probability_alive(*c, *theta), x, t_x, T, unique=False)
