"""Fixtures for the model tests: the CDNOW calibration sample, fitted models, lifetimes oracles.

The lifetimes fitters are fitted once per session but every test gets its own
deep copy, so a test that sets an oracle's parameters (e.g. to compare
formulas at rfmml's parameters) cannot turn another test's parity check
into a comparison of rfmml with itself.
"""

from __future__ import annotations

import copy

import numpy as np
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
def _lifetimes_bgnbd_fitted(cdnow_summary) -> BetaGeoFitter:
    s = cdnow_summary
    return BetaGeoFitter().fit(s["frequency"], s["recency"], s["T"])


@pytest.fixture(scope="session")
def _lifetimes_gamma_gamma_fitted(cdnow_summary) -> GammaGammaFitter:
    repeat = cdnow_summary[cdnow_summary["frequency"] > 0]
    return GammaGammaFitter().fit(repeat["frequency"], repeat["monetary_value"])


@pytest.fixture()
def lifetimes_bgnbd(_lifetimes_bgnbd_fitted) -> BetaGeoFitter:
    """lifetimes' BG/NBD fit of CDNOW: this test's own copy."""
    return copy.deepcopy(_lifetimes_bgnbd_fitted)


@pytest.fixture()
def lifetimes_gamma_gamma(_lifetimes_gamma_gamma_fitted) -> GammaGammaFitter:
    """lifetimes' Gamma-Gamma fit of the CDNOW repeat customers: this test's own copy."""
    return copy.deepcopy(_lifetimes_gamma_gamma_fitted)


def _oracle_log_likelihood(model, oracle, summary: pd.DataFrame) -> float:
    theirs = np.log(oracle.params_[list(model.params_.index)].to_numpy())
    if isinstance(oracle, BetaGeoFitter):
        x, t_x, T = (summary[c].to_numpy() for c in ("frequency", "recency", "T"))
        return -len(x) * BetaGeoFitter._negative_log_likelihood(
            theirs, x, t_x, T, np.ones_like(x), 0.0
        )
    repeat = summary[summary["frequency"] > 0]
    x, m = repeat["frequency"].to_numpy(), repeat["monetary_value"].to_numpy()
    return -len(x) * GammaGammaFitter._negative_log_likelihood(theirs, x, m, np.ones_like(x), 0.0)


@pytest.fixture(scope="session")
def assert_lifetimes_parity():
    """``check(model, oracle, summary)``: same optimum as the lifetimes fitter ``oracle``.

    Parameters agree to 1e-4 relative (both optimisers stop within ~1e-6 of
    the optimum), the log-likelihood of the oracle's parameters under
    lifetimes' own objective equals rfmml's to 1e-6, and so do the standard
    errors to 1e-4 (lifetimes uses autograd, rfmml differences its analytic
    gradient). Raises AssertionError otherwise.
    """

    def check(model, oracle, summary: pd.DataFrame) -> None:
        names = list(model.params_.index)
        np.testing.assert_allclose(
            model.params_.to_numpy(), oracle.params_[names].to_numpy(), rtol=1e-4
        )
        assert model.log_likelihood_ == pytest.approx(
            _oracle_log_likelihood(model, oracle, summary), rel=1e-6
        )
        np.testing.assert_allclose(
            model.summary_["std_error"].to_numpy(),
            oracle.standard_errors_[names].to_numpy(),
            rtol=1e-4,
        )

    return check


def _gradient_matches_central_differences(total_and_gradient, theta, data) -> None:
    """A likelihood's analytic gradient against central differences of its total.

    Step ``1e-5`` relative: truncation ``(1e-5) ** 2`` relative, rounding about
    ``1e-16 * |total| / 1e-5`` absolute (totals up to a few 1e4).
    """
    theta = np.asarray(theta, dtype=float)
    _, grad = total_and_gradient(*theta, data)
    for i in range(len(theta)):
        h = 1e-5 * theta[i]
        up, down = theta.copy(), theta.copy()
        up[i] += h
        down[i] -= h
        fd = (total_and_gradient(*up, data)[0] - total_and_gradient(*down, data)[0]) / (2 * h)
        assert grad[i] == pytest.approx(fd, rel=1e-6, abs=1e-3), f"parameter {i}"


@pytest.fixture
def gradient_matches_central_differences():
    """The check of :func:`_gradient_matches_central_differences`, for the formula tests."""
    return _gradient_matches_central_differences
