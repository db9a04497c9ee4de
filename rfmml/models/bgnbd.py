"""The BG/NBD model of repeat purchasing (Fader, Hardie & Lee 2005)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from rfmml.models import _formulas as F
from rfmml.models._base import StandardErrorWarning, as_horizon
from rfmml.models._grouping import map_rows
from rfmml.models._registry import register_model
from rfmml.models._scoring import KernelScoringModel

__all__ = ["BetaGeoNBD", "StandardErrorWarning"]

PARAM_NAMES = ("r", "alpha", "a", "b")


@register_model
class BetaGeoNBD(KernelScoringModel):
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

    kind = "BetaGeoNBD"
    param_names = PARAM_NAMES
    fit_columns = ("frequency", "recency", "T")
    #: recency and T are divided by max(T) during the fit (maximum age 1), as
    #: lifetimes does, so that alpha is of order 1 and the penalizer means the
    #: same thing as lifetimes' ``penalizer_coef``.
    time_columns = ("recency", "T")
    time_params = ("alpha",)

    _kernel = "bg"
    _formulas, _formula_prefix = F, "bgnbd"
    _expected_given_alive = _in_order = True

    # ---------------------------------------------------------- likelihood
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
    def _probability_alive(self, c: dict[str, np.ndarray], theta) -> np.ndarray:
        return self._alive_rows(c["frequency"], c["recency"], c["T"], theta)

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
        x, t_x, T = self._columns(X, "probability_repeat_purchase")
        theta = self._theta()
        p = map_rows(
            lambda *c: F.bgnbd_probability_repeat_purchase(*c, *theta),
            as_horizon(t, len(X)),
            x,
            t_x,
            T,
            unique=False,
        )
        return pd.Series(p, index=X.index, name="probability_repeat_purchase")
