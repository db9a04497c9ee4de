"""The Pareto/NBD model of repeat purchasing (Schmittlein, Morrison & Colombo 1987)."""

from __future__ import annotations

import numpy as np

from rfmml.models import _formulas_pareto as F
from rfmml.models._registry import register_model
from rfmml.models._scoring import KernelScoringModel

__all__ = ["ParetoNBD"]

COLUMNS = ("frequency", "recency", "T")


@register_model
class ParetoNBD(KernelScoringModel):
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
    tol, max_iter : float, int, default 1e-10, 1000
        Optimiser tolerance and iteration cap, as for :class:`rfmml.models.BetaGeoNBD`.

    Attributes
    ----------
    params_ : pandas.Series
        Fitted ``r, alpha, s, beta`` (alpha, beta in the summary's time unit).
    log_likelihood_, summary_, n_customers_, n_unique_rows_, convergence_, freq_
        As for :class:`rfmml.models.BetaGeoNBD`; so are ``training_fingerprint_``
        and ``fit_date_``.

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

    _kernel = "pareto"
    _formulas, _formula_prefix = F, "pareto_nbd"
    _expected_given_alive = True

    def _alive_rows(self, x, t_x, T, theta) -> np.ndarray:
        # all customers at once: the formula groups the (x, t_x) and (x, T) pairs over
        # every row (once) and does the per-customer arithmetic in cache-sized blocks
        return F.pareto_nbd_probability_alive(x, t_x, T, *theta)

    # one horizon for everyone (the usual case): the factor given alive is evaluated per
    # (x, T) pair with P(alive)'s pair terms and multiplied in the same blocks, instead of
    # grouping the rows a second time
    def _expected_rows(self, x, t_x, T, horizon, theta, alive=None) -> np.ndarray:
        if alive is None and _constant(horizon):
            return F.pareto_nbd_expected_purchases(float(horizon[0]), x, t_x, T, *theta)
        return super()._expected_rows(x, t_x, T, horizon, theta, alive=alive)

    def _alive_and_expected_rows(self, x, t_x, T, horizon, theta):
        if _constant(horizon):
            return F.pareto_nbd_alive_and_expected(float(horizon[0]), x, t_x, T, *theta)
        return super()._alive_and_expected_rows(x, t_x, T, horizon, theta)

    # ---------------------------------------------------------- likelihood
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


def _constant(values: np.ndarray) -> bool:
    """Whether every value equals the first (one horizon for all customers)."""
    return bool(len(values)) and values[0] == values[-1] and bool(np.all(values == values[0]))
