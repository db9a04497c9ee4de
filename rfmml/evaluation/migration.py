r"""Forecast segment migration from a fitted purchase model and spend model.

For each customer the purchase model gives the probability of no purchase in
the next ``horizon_days`` and the expected number of purchases; two scenarios
follow:

- **no purchase** (probability :math:`\pi_0 = P(N_h = 0)`): recency grows by
  the horizon, orders and spend stay;
- **at least one purchase** (probability :math:`1 - \pi_0`): the customer
  makes :math:`k = E[N_h] / (1 - \pi_0)` purchases (the mean given at least
  one), spread evenly over the horizon, so recency becomes
  :math:`h / (k + 1)`; orders grow by :math:`k` and spend by :math:`k` times
  the spend model's expected order value.

The segmenter fitted now labels both scenarios
(:func:`rfmml.segments.forecast.segment_probabilities`): each customer gets a
probability per segment, a most likely segment, and the predicted transition
matrix averages those probabilities within today's segments.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from rfmml.errors import DataError
from rfmml.segments.forecast import predicted_transition_matrix, segment_probabilities

__all__ = ["PERIOD_DAYS", "MigrationForecast", "forecast_migration"]

#: Days in one period of each ``freq`` (a month as 365.25 / 12 days).
PERIOD_DAYS = {"D": 1.0, "W": 7.0, "M": 365.25 / 12}


@dataclass(frozen=True)
class MigrationForecast:
    """Segments now and their predicted distribution ``horizon_days`` later.

    Attributes
    ----------
    current : pandas.Series
        Segment of each customer now.
    probabilities : pandas.DataFrame
        Probability of each segment at the horizon (rows sum to 1).
    horizon_days : float
    """

    current: pd.Series
    probabilities: pd.DataFrame
    horizon_days: float

    @property
    def predicted(self) -> pd.Series:
        """Most likely segment of each customer at the horizon."""
        return self.probabilities.idxmax(axis=1).rename("predicted_segment")

    @property
    def probability(self) -> pd.Series:
        """Probability of the most likely segment."""
        return self.probabilities.max(axis=1).rename("probability")

    def matrix(self) -> pd.DataFrame:
        """Predicted transition matrix: rows today's segment, columns the horizon's, shares."""
        return predicted_transition_matrix(self.current, self.probabilities)

    def table(self) -> pd.DataFrame:
        """One row per customer: ``segment``, ``predicted_segment``, ``probability``."""
        return pd.DataFrame(
            {
                "segment": self.current.astype(str),
                "predicted_segment": self.predicted,
                "probability": self.probability,
            }
        )

    def entering(self, segment: str, min_probability: float = 0.5) -> pd.DataFrame:
        """Customers not in ``segment`` now who will probably be in it at the horizon.

        Parameters
        ----------
        segment : str
            E.g. ``"At Risk"``.
        min_probability : float, default 0.5
            Keep customers whose probability of being in ``segment`` is at least this.

        Returns
        -------
        pandas.DataFrame
            ``segment`` (now) and ``probability`` (of ``segment`` at the
            horizon), most probable first.

        Raises
        ------
        DataError
            ``segment`` is not one of the segments.
        """
        if segment not in self.probabilities.columns:
            raise DataError(f"segment {segment!r} is not one of {list(self.probabilities.columns)}")
        p = self.probabilities[segment]
        keep = (self.current.astype(str) != segment) & (p >= min_probability)
        out = pd.DataFrame({"segment": self.current.astype(str)[keep], "probability": p[keep]})
        return out.sort_values("probability", ascending=False, kind="stable")


def forecast_migration(
    purchase_model: Any,
    summary: pd.DataFrame,
    features: pd.DataFrame,
    segmenter: Any,
    horizon_days: float,
    *,
    spend_model: Any = None,
    freq: str | None = None,
) -> MigrationForecast:
    """Predict each customer's segment ``horizon_days`` after the features' date.

    Parameters
    ----------
    purchase_model : fitted purchase model
        Any of :mod:`rfmml.models` (``expected_purchases``,
        ``probability_no_purchase``), fitted in periods of ``freq``.
    summary : pandas.DataFrame
        BTYD summary at the same date (``frequency``, ``recency``, ``T``,
        ``monetary_value``), same index as ``features``.
    features : pandas.DataFrame
        :func:`rfmml.features.rfm_table` at that date (``recency_days``,
        ``n_orders``, ``total_spend``).
    segmenter : fitted RuleSegmenter or KMeansSegmenter
        Fitted on ``features`` (or earlier); labels today and both scenarios.
    horizon_days : float
        How far ahead, in days.
    spend_model : fitted GammaGamma, optional
        Expected order value of new purchases; without it, each customer's
        average order value so far.
    freq : {"D", "W", "M"}, optional
        Period of the summary; default ``summary.attrs["freq"]``, else ``"D"``.

    Returns
    -------
    MigrationForecast

    Raises
    ------
    DataError
        Misaligned frames or a non-positive horizon.
    """
    if not horizon_days > 0:
        raise DataError(f"horizon_days must be positive, got {horizon_days!r}")
    if not summary.index.equals(features.index):
        raise DataError("summary and features must have the same customers in the same order")
    unit = freq or summary.attrs.get("freq") or "D"
    if unit not in PERIOD_DAYS:
        raise DataError(f"freq = {unit!r}; allowed: {list(PERIOD_DAYS)}")
    t = horizon_days / PERIOD_DAYS[unit]
    p0 = np.clip(purchase_model.probability_no_purchase(summary, t).to_numpy(dtype=float), 0, 1)
    expected = purchase_model.expected_purchases(summary, t).to_numpy(dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        k = np.where(p0 < 1, expected / (1.0 - p0), 1.0)
    k = np.maximum(k, 1.0)
    if spend_model is not None:
        order_value = spend_model.expected_order_value(summary).to_numpy(dtype=float)
    else:
        order_value = (features["total_spend"] / features["n_orders"]).to_numpy(dtype=float)
    stay = features.copy()
    stay["recency_days"] = features["recency_days"].to_numpy(dtype=float) + horizon_days
    buy = features.copy()
    buy["recency_days"] = horizon_days / (k + 1.0)
    buy["n_orders"] = features["n_orders"].to_numpy(dtype=float) + k
    if "total_spend" in features:
        buy["total_spend"] = features["total_spend"].to_numpy(dtype=float) + k * order_value
    current = segmenter.predict(features).astype(str)
    probabilities = segment_probabilities(segmenter, [(stay, p0), (buy, 1.0 - p0)])
    return MigrationForecast(
        current=current, probabilities=probabilities, horizon_days=horizon_days
    )
