"""Shared fixtures: real CDNOW data and small hand-made logs."""

from __future__ import annotations

import os

import matplotlib
import pandas as pd
import pytest
from hypothesis import settings

from rfmml.data import load_cdnow, load_online_retail

matplotlib.use("Agg")
os.environ.setdefault("MPLBACKEND", "Agg")

# Property tests are deterministic (same examples every run, as fixed seeds are
# elsewhere) and not timed: CI machines are slower and shared.
settings.register_profile("rfmml", deadline=None, derandomize=True, print_blob=True)
settings.load_profile("rfmml")


@pytest.fixture(scope="session")
def cdnow_tx() -> pd.DataFrame:
    """The full CDNOW master log (69,659 rows, 23,570 customers)."""
    return load_cdnow()


@pytest.fixture(scope="session")
def online_retail_tx() -> pd.DataFrame:
    """UCI Online Retail, cleaned, one row per invoice (18,532 rows)."""
    return load_online_retail()


@pytest.fixture
def tiny_tx() -> pd.DataFrame:
    """A hand-made log whose features are worked out by hand in the tests."""
    return pd.DataFrame(
        {
            "customer_id": ["a", "a", "a", "a", "b", "c", "c"],
            "timestamp": pd.to_datetime(
                [
                    "2024-01-01 09:00",
                    "2024-01-01 17:00",  # same day as the first: one period
                    "2024-01-10 12:00",
                    "2024-02-05 08:00",
                    "2024-01-20 10:00",
                    "2024-01-03 10:00",
                    "2024-01-31 23:59",
                ]
            ),
            "amount": [10.0, 5.0, 20.0, 40.0, 7.0, 3.0, 0.0],
        }
    )
