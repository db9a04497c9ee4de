"""The BG/BB model for discrete transaction opportunities (Fader, Hardie & Shang 2010)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from rfmml.errors import DataError
from rfmml.models import _formulas_bgbb as F
from rfmml.models._base import PurchaseModel, as_horizon
from rfmml.models._registry import register_model
from rfmml.models._summary_checks import (
    check_opportunities,
)

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
    tol, max_iter : float, int, default 1e-10, 1000
        Optimiser tolerance and iteration cap, as for :class:`rfmml.models.BetaGeoNBD`.

    Attributes
    ----------
    params_ : pandas.Series
        Fitted ``alpha, beta, gamma, delta``.
    log_likelihood_, summary_, n_customers_, n_unique_rows_, convergence_, freq_
        As for :class:`rfmml.models.BetaGeoNBD`; so are ``training_fingerprint_``
        and ``fit_date_``.

    References
    ----------
    Fader, P. S., Hardie, B. G. S. and Shang, J. (2010), "Customer-base
    analysis in a discrete-time noncontractual setting", Marketing Science
    29 (6), 1086-1108.
    """

    kind = "BetaGeoBetaBinom"
    param_names = ("alpha", "beta", "gamma", "delta")
    fit_columns = COLUMNS

    _formulas, _formula_prefix = F, "bgbb"

    # ---------------------------------------------------------- likelihood
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

    # ---------------------------------------------------------- discrete checks
    def _check_columns(self, X: pd.DataFrame, columns: dict[str, np.ndarray]) -> None:
        check_opportunities(X, columns)

    def _purchase_horizon(self, t, n: int) -> np.ndarray:
        # t counts whole future opportunities
        return _whole(as_horizon(t, n), "t")

    def _purchase_count(self, n) -> np.ndarray:
        return _whole(n, "n")

    def _opportunity_count(self, t):
        return _whole(t, "t")
