"""rfmml: customer value from transaction logs.

RFM features, rule-based and learned segments, BG/NBD and Gamma-Gamma models,
MLflow experiments that compare segmentations, and campaign-ready outputs.

The most used names are available at the top level (``rfmml.btyd_summary``,
``rfmml.BetaGeoNBD``, ...); they are imported on first use, so ``import rfmml``
stays cheap and never imports MLflow.
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version
from typing import Any

from rfmml._lazy import load_attribute

try:
    __version__ = version("rfmml")
except PackageNotFoundError:  # pragma: no cover - running from a source tree
    __version__ = "0.0.0"

_LAZY = {
    "read_transactions": "rfmml.data",
    "load_cdnow": "rfmml.data",
    "load_online_retail": "rfmml.data",
    "simulate_transactions": "rfmml.data",
    "btyd_summary": "rfmml.features",
    "calibration_holdout": "rfmml.features",
    "rfm_table": "rfmml.features",
    "CustomerState": "rfmml.features",
    "RFMScorer": "rfmml.segments",
    "RuleSegmenter": "rfmml.segments",
    "KMeansSegmenter": "rfmml.segments",
    "segment_profile": "rfmml.segments",
    "segment_transitions": "rfmml.segments",
    "BetaGeoNBD": "rfmml.models",
    "GammaGamma": "rfmml.models",
    "customer_lifetime_value": "rfmml.models",
    "score_customers": "rfmml.campaign",
    "build_report": "rfmml.report",
    "disable_transparent_huge_pages": "rfmml._process",
    "keep_freed_memory": "rfmml._process",
    "single_thread_blas": "rfmml._process",
    "run_experiment": "rfmml.pipeline",
}

__all__ = ["__version__", *_LAZY]


def __getattr__(name: str) -> Any:
    """Import a public name from its stage on first use."""
    return load_attribute(__name__, _LAZY, globals(), name)


def __dir__() -> list[str]:
    return sorted(__all__)
