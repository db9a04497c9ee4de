"""Fixtures for the segments tests: real CDNOW features and small hand-made frames.

``cdnow_tx`` (the CDNOW log) comes from ``tests/conftest.py``.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from rfmml.features import rfm_table


@pytest.fixture(scope="session")
def _cdnow_features(cdnow_tx: pd.DataFrame) -> pd.DataFrame:
    return rfm_table(cdnow_tx)


@pytest.fixture
def cdnow_features(_cdnow_features: pd.DataFrame) -> pd.DataFrame:
    """RFM table of the 23,570 CDNOW customers (51% one-time buyers); a fresh copy."""
    return _cdnow_features.copy()


@pytest.fixture
def tiny_features() -> pd.DataFrame:
    """Five customers with distinct values: best to worst on every metric."""
    return pd.DataFrame(
        {
            "recency_days": [3.0, 30.0, 90.0, 200.0, 400.0],
            "n_orders": [8, 4, 3, 2, 1],
            "total_spend": [400.0, 150.0, 80.0, 40.0, 15.0],
        },
        index=pd.Index([101, 102, 103, 104, 105], name="customer_id"),
    )


@pytest.fixture
def grouped_features() -> pd.DataFrame:
    """Two channels on very different spend scales, indexed by (customer_id, channel)."""
    rng = np.random.default_rng(42)
    n = 200
    channel = np.repeat(["store", "web"], n // 2)
    spend = np.where(channel == "store", 1000.0, 10.0) * rng.lognormal(0, 1, n)
    index = pd.MultiIndex.from_arrays([np.arange(n), channel], names=["customer_id", "channel"])
    return pd.DataFrame(
        {
            "recency_days": rng.integers(0, 365, n).astype(float),
            "n_orders": rng.geometric(0.5, n),
            "total_spend": spend,
        },
        index=index,
    )
