"""The BG/NBD model of repeat purchasing (Fader, Hardie & Lee 2005)."""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from datetime import UTC, datetime

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator
from sklearn.utils.validation import check_is_fitted

from rfmml.errors import DataError
from rfmml.models import _formulas as F
from rfmml.models._fitting import fit_log_params, parameter_table, subsample_step
from rfmml.models._grouping import fingerprint, group_rows, unique_rows
from rfmml.models._json_io import JSONPersistence
from rfmml.models._validation import check_summary

__all__ = ["BetaGeoNBD", "StandardErrorWarning"]

PARAM_NAMES = ("r", "alpha", "a", "b")
#: recency and T are divided by max(T) during the fit (maximum age 1), as
#: lifetimes does, so that alpha is of order 1 and the penalizer means the
#: same thing as lifetimes' ``penalizer_coef``.
TIME_SCALE = 1.0


class StandardErrorWarning(UserWarning):
    """The Hessian at the optimum is not positive definite; standard errors are NaN."""


def _as_t(t, n: int, name: str = "t") -> np.ndarray:
    arr = np.asarray(t.to_numpy() if isinstance(t, pd.Series) else t, dtype=float)
    if arr.ndim == 0:
        arr = np.full(n, float(arr))
    if arr.shape != (n,):
        raise DataError(
            f"{name} must be a scalar or have one value per customer ({n}), got shape {arr.shape}."
        )
    if np.isnan(arr).any() or (arr < 0).any():
        raise DataError(
            f"{name} must be >= 0 and not NaN; "
            f"{int((np.isnan(arr) | (arr < 0)).sum())} values are not."
        )
    return arr


class BetaGeoNBD(JSONPersistence, BaseEstimator):
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

    # ------------------------------------------------------------------ fit
    def fit(self, X: pd.DataFrame, y=None) -> BetaGeoNBD:
        """Fit the model to a customer summary.

        Parameters
        ----------
        X : pandas.DataFrame
            Columns ``frequency`` (integer repeat purchases), ``recency``,
            ``T`` (same time unit), optional ``weights`` (customers per row).
        y : None
            Ignored.

        Returns
        -------
        BetaGeoNBD
            The fitted estimator.

        Raises
        ------
        DataError
            On invalid input (see :func:`check_summary`).
        ConvergenceError
            If no starting point converges.
        """
        if not np.isscalar(self.penalizer) or not self.penalizer >= 0:
            raise ValueError(f"penalizer must be a number >= 0, got {self.penalizer!r}.")
        cols = check_summary(X, ("frequency", "recency", "T"), what="BetaGeoNBD.fit")
        rows, w = unique_rows({k: cols[k] for k in ("frequency", "recency", "T")}, cols["weights"])
        x, t_x, T = rows["frequency"], rows["recency"], rows["T"]
        t_max = T.max()
        if t_max <= 0:
            raise DataError(
                f"T must be > 0 for at least one customer, but all {len(X)} customers have T == 0. "
                "Is the observation end after the first purchases?"
            )
        scale = TIME_SCALE / t_max
        unscaled = F.bgnbd_prepare(x, t_x, T, w)
        data = unscaled._replace(
            t_x=unscaled.t_x * scale,
            T=unscaled.T * scale,
            **{
                k: getattr(unscaled, k) * scale
                for k in ("T_levels", "t_x_levels")
                if getattr(unscaled, k) is not None
            },
        )
        pen = float(self.penalizer)

        def make_objective(prepared):
            n = prepared.n

            def objective(log_theta):
                theta = np.exp(log_theta)
                ll, grad = F.bgnbd_total_log_likelihood_and_gradient(*theta, prepared)
                value = -ll / n + pen * theta @ theta
                return value, (-grad / n + 2.0 * pen * theta) * theta

            return objective

        starts = []
        if self.initial_params is not None:
            init = np.array([float(self.initial_params[k]) for k in PARAM_NAMES])
            init[1] *= scale
            starts.append(np.log(init))
        starts += [
            np.full(4, 0.1),  # lifetimes' default start
            np.log([0.5, max(data.T.mean(), 1e-3), 0.8, 2.5]),  # near typical published values
            np.zeros(4),
            np.log([0.1, 0.1, 0.1, 0.1]),
            np.log([2.0, 10.0, 2.0, 10.0]),
        ]
        step = subsample_step(len(x)) if self.initial_params is None else None
        subsample = (
            None
            if step is None
            else F.bgnbd_prepare(x[::step], data.t_x[::step], data.T[::step], w[::step])
        )
        outcome, hess, warm = fit_log_params(
            make_objective,
            data,
            subsample,
            starts,
            model="BetaGeoNBD",
            tol=self.tol,
            max_iter=self.max_iter,
        )
        n = data.n
        theta = np.exp(outcome.log_params)
        params = theta.copy()
        params[1] /= scale
        table, ok = parameter_table(PARAM_NAMES, params, hess)
        if not ok:
            warnings.warn(
                "The Hessian of the BG/NBD log-likelihood is not positive definite at the optimum, "
                "so standard errors are NaN. The parameters may be poorly identified (e.g. very "
                "few repeat buyers); consider more data or a small penalizer.",
                StandardErrorWarning,
                stacklevel=2,
            )
        self.params_ = pd.Series(params, index=list(PARAM_NAMES), name="BetaGeoNBD")
        self.summary_ = table
        self.log_likelihood_ = float(
            F.bgnbd_total_log_likelihood_and_gradient(*params, unscaled)[0]
        )
        self.n_customers_ = int(n) if float(n).is_integer() else float(n)
        self.n_unique_rows_ = len(x)
        start = np.exp(np.asarray(outcome.start))
        start[1] /= scale
        self.convergence_ = outcome.diagnostics(PARAM_NAMES, start, warm)
        self.freq_ = X.attrs.get("freq")
        self.training_fingerprint_ = fingerprint({"frequency": x, "recency": t_x, "T": T}, w)
        self.fit_date_ = datetime.now(UTC).isoformat(timespec="seconds")
        return self

    # ---------------------------------------------------------- predictions
    def _theta(self) -> tuple[float, float, float, float]:
        check_is_fitted(self)
        p = self.params_
        return float(p["r"]), float(p["alpha"]), float(p["a"]), float(p["b"])

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
        p = F.bgnbd_probability_alive(c["frequency"], c["recency"], c["T"], *theta)
        return pd.Series(p, index=X.index, name="probability_alive")

    def expected_purchases(self, X: pd.DataFrame, t) -> pd.Series:
        """Expected repeat purchases in the next ``t`` periods, given each history.

        Eq. (10) of Fader, Hardie & Lee (2005), with its integral form where
        the closed form fails (see
        :func:`rfmml.models._formulas.bgnbd_expected_purchases_if_alive`).
        Everything but the probability alive depends on (frequency, T, t)
        only and is evaluated once per distinct triple, then broadcast back.

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
        t_arr = _as_t(t, len(X))
        if_alive = self._expected_if_alive(c["frequency"], c["T"], t_arr, theta)
        p_alive = F.bgnbd_probability_alive(c["frequency"], c["recency"], c["T"], *theta)
        return pd.Series(if_alive * p_alive, index=X.index, name="expected_purchases")

    @staticmethod
    def _expected_if_alive(x, T, t, theta) -> np.ndarray:
        # E[Y(t) | alive, x, T] once per distinct (x, T[, t])
        if np.all(t == t[0]):
            codes, first = group_rows(x, T)
            tu = np.full(len(first), t[0])
        else:
            codes, first = group_rows(x, T, t)
            tu = t[first]
        return F.bgnbd_expected_purchases_if_alive(tu, x[first], T[first], *theta)[codes]

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
        p = F.bgnbd_probability_repeat_purchase(
            _as_t(t, len(X)), c["frequency"], c["recency"], c["T"], *theta
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
        ll = F.bgnbd_log_likelihood(c["frequency"], c["recency"], c["T"], *theta)
        return pd.Series(ll, index=X.index, name="log_likelihood")
