"""Fixtures for the model tests: the CDNOW calibration sample and fitted models."""

from __future__ import annotations

import pandas as pd
import pytest
from lifetimes import BetaGeoFitter, GammaGammaFitter

from rfmml.data import load_cdnow_summary
from rfmml.models import BetaGeoNBD, GammaGamma


@pytest.fixture(scope="session")
def cdnow_summary() -> pd.DataFrame:
    """The 2,357 CDNOW customers (weeks) with mean repeat spend (``zbar``)."""
    return load_cdnow_summary()


@pytest.fixture(scope="session")
def cdnow_bgnbd(cdnow_summary) -> BetaGeoNBD:
    return BetaGeoNBD().fit(cdnow_summary)


@pytest.fixture(scope="session")
def cdnow_gamma_gamma(cdnow_summary) -> GammaGamma:
    return GammaGamma().fit(cdnow_summary)


@pytest.fixture(scope="session")
def lifetimes_bgnbd(cdnow_summary) -> BetaGeoFitter:
    s = cdnow_summary
    return BetaGeoFitter().fit(s["frequency"], s["recency"], s["T"])


@pytest.fixture(scope="session")
def lifetimes_gamma_gamma(cdnow_summary) -> GammaGammaFitter:
    repeat = cdnow_summary[cdnow_summary["frequency"] > 0]
    return GammaGammaFitter().fit(repeat["frequency"], repeat["monetary_value"])
