"""Probabilistic customer-base models: BG/NBD purchases, Gamma-Gamma spend, CLV.

``BetaGeoNBD`` and ``GammaGamma`` are scikit-learn style estimators fitted
on a customer summary (``frequency``, ``recency``, ``T``,
``monetary_value``); ``customer_lifetime_value`` combines them. Fitted
models save to JSON and load back with ``load_model``.
"""

from rfmml.models.bgnbd import BetaGeoNBD, StandardErrorWarning
from rfmml.models.clv import customer_lifetime_value
from rfmml.models.gamma_gamma import (
    CORRELATION_THRESHOLD,
    FrequencyMonetaryCorrelationWarning,
    GammaGamma,
)
from rfmml.models.persistence import load_model, save_model
from rfmml.models.simulate import simulate_bgnbd, simulate_gamma_gamma

__all__ = [
    "BetaGeoNBD",
    "GammaGamma",
    "customer_lifetime_value",
    "load_model",
    "save_model",
    "simulate_bgnbd",
    "simulate_gamma_gamma",
    "FrequencyMonetaryCorrelationWarning",
    "StandardErrorWarning",
    "CORRELATION_THRESHOLD",
]
