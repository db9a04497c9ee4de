"""The MBG/NBD model of repeat purchasing (Batislam, Denizel & Filiztekin 2007)."""

from __future__ import annotations

import numpy as np

from rfmml.models import _formulas_mbgnbd as F
from rfmml.models._registry import register_model
from rfmml.models._scoring import KernelScoringModel

__all__ = ["ModifiedBetaGeoNBD"]

COLUMNS = ("frequency", "recency", "T")


@register_model
class ModifiedBetaGeoNBD(KernelScoringModel):
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
    initial_params, tol, max_iter
        As for :class:`rfmml.models.BetaGeoNBD` (starting values of ``r,
        alpha, a, b``; defaults None, 1e-10 and 1000).

    Attributes
    ----------
    params_ : pandas.Series
        Fitted ``r, alpha, a, b`` (alpha in the summary's time unit).
    log_likelihood_, summary_, n_customers_, n_unique_rows_, convergence_, freq_
        As for :class:`rfmml.models.BetaGeoNBD`; so are ``training_fingerprint_``
        and ``fit_date_``.

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

    _kernel = "mbg"
    _formulas, _formula_prefix = F, "mbgnbd"
    _expected_given_alive = _in_order = True

    # ---------------------------------------------------------- likelihood
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
