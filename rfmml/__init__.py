"""rfmml: customer value from transaction logs.

RFM features, rule-based and learned segments, BG/NBD and Gamma-Gamma models,
MLflow experiments that compare segmentations, and campaign-ready outputs.
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("rfmml")
except PackageNotFoundError:  # pragma: no cover - running from a source tree
    __version__ = "0.0.0"

__all__ = ["__version__"]
