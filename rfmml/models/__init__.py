"""Probabilistic customer-base models: purchases, Gamma-Gamma spend, CLV.

Purchase models: BG/NBD (``BetaGeoNBD``), Pareto/NBD (``ParetoNBD``), MBG/NBD
(``ModifiedBetaGeoNBD``, one-time buyers can be inactive) and, for discrete
transaction opportunities, BG/BB (``BetaGeoBetaBinom``).

Every model is a scikit-learn style estimator on the maximum-likelihood base
(:class:`MaximumLikelihoodModel`; purchase models share
:class:`PurchaseModel`), fitted on a customer summary (``frequency``,
``recency``, ``T``, ``monetary_value``); ``customer_lifetime_value``
combines a purchase and a spend model. Fitted models save to JSON and load
back with ``load_model``; model kinds are looked up in a registry
(:func:`model_kinds`).
"""

from rfmml.models._base import MaximumLikelihoodModel, PurchaseModel, StandardErrorWarning
from rfmml.models._registry import model_class, model_kinds, register_model
from rfmml.models.bgbb import BetaGeoBetaBinom
from rfmml.models.bgnbd import BetaGeoNBD
from rfmml.models.clv import customer_lifetime_value
from rfmml.models.gamma_gamma import (
    CORRELATION_THRESHOLD,
    FrequencyMonetaryCorrelationWarning,
    GammaGamma,
)
from rfmml.models.mbgnbd import ModifiedBetaGeoNBD
from rfmml.models.pareto_nbd import ParetoNBD
from rfmml.models.persistence import load_model, save_model
from rfmml.models.simulate import (
    simulate_bgbb,
    simulate_bgnbd,
    simulate_gamma_gamma,
    simulate_mbgnbd,
    simulate_pareto_nbd,
)

__all__ = [
    "BetaGeoNBD",
    "ParetoNBD",
    "ModifiedBetaGeoNBD",
    "BetaGeoBetaBinom",
    "GammaGamma",
    "MaximumLikelihoodModel",
    "PurchaseModel",
    "customer_lifetime_value",
    "load_model",
    "save_model",
    "model_class",
    "model_kinds",
    "register_model",
    "simulate_bgnbd",
    "simulate_gamma_gamma",
    "simulate_pareto_nbd",
    "simulate_mbgnbd",
    "simulate_bgbb",
    "FrequencyMonetaryCorrelationWarning",
    "StandardErrorWarning",
    "CORRELATION_THRESHOLD",
]
