"""Backtest metrics against hand computations on tiny arrays."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from rfmml.evaluation.backtest import (
    backtest_metrics,
    brier_score,
    calibration_error,
    decile_calibration,
    decile_calibration_error,
    gini,
    lift_quality,
    mae,
    migration_tvd,
    rmse,
    spend_mae,
    tracking_mape,
)
from rfmml.evaluation.metrics import BACKTEST_METRICS

Y = np.array([0.0, 1.0, 3.0, 0.0])
P = np.array([0.5, 1.0, 2.0, 0.5])


def test_mae_and_rmse_by_hand():
    # errors 0.5, 0, -1, 0.5
    assert mae(Y, P) == pytest.approx((0.5 + 0 + 1 + 0.5) / 4)
    assert rmse(Y, P) == pytest.approx(math.sqrt((0.25 + 0 + 1 + 0.25) / 4))


def test_tracking_mape_skips_periods_without_transactions():
    actual = [0.0, 2.0, 4.0]
    predicted = [1.0, 3.0, 3.0]
    # periods 2 and 3: |3-2|/2 = 0.5, |3-4|/4 = 0.25 -> mean 0.375 -> 37.5 %
    assert tracking_mape(actual, predicted) == pytest.approx(37.5)
    assert math.isnan(tracking_mape([0.0, 0.0], [1.0, 1.0]))


def test_gini_by_hand():
    y = np.array([0.0, 0.0, 1.0, 3.0])
    # ideal order (3, 1, 0, 0): L = 3/4, 1, 1, 1; minus k/n = .5, .5, .25, 0 -> G = 1.25/4
    # model order by p = (0.4, 0.3, 0.2, 0.1): y = 0, 0, 1, 3: L = 0, 0, 1/4, 1
    # minus k/n: -.25, -.5, -.5, 0 -> G = -1.25/4; normalised -1
    assert gini(y, np.array([0.4, 0.3, 0.2, 0.1])) == pytest.approx(-1.0)
    assert gini(y, y) == pytest.approx(1.0)
    # order (1, 3, 0, 0): L = 1/4, 1, 1, 1 -> (-.0, .5, .25, 0) = 0.75/4 -> 0.6
    assert gini(y, np.array([0.0, 0.1, 0.9, 0.5])) == pytest.approx(0.75 / 1.25)


def test_gini_constant_prediction_earns_nothing_and_constant_outcome_is_nan():
    y = np.array([0.0, 0.0, 1.0, 3.0])
    assert gini(y, np.zeros(4)) < 0  # ties: pessimistic order
    assert math.isnan(gini(np.ones(4), np.arange(4.0)))


def test_lift_quality_by_hand():
    y = np.array([10.0, 0.0, 0.0, 0.0, 5.0, 5.0, 0.0, 0.0, 0.0, 0.0])
    # top 20 % = 2 customers; base share 0.2; ideal top two hold 15/20 = 0.75
    # predicted order puts customers 4 and 1 first: shares (5 + 0) / 20 = 0.25
    p = np.array([0.0, 0.8, 0.0, 0.0, 0.9, 0.0, 0.0, 0.0, 0.0, 0.0])
    assert lift_quality(y, p, top=0.2) == pytest.approx((0.25 - 0.2) / (0.75 - 0.2))
    assert lift_quality(y, y, top=0.2) == pytest.approx(1.0)
    with pytest.raises(ValueError, match="top"):
        lift_quality(y, p, top=1.5)


def test_decile_calibration_and_error_by_hand():
    y = np.array([0.0, 1.0, 1.0, 4.0])
    p = np.array([0.0, 2.0, 1.0, 3.0])
    table = decile_calibration(y, p, n_bins=2)
    # sorted by p: (0,0), (1,1) | (2,1), (3,4)
    assert table["predicted"].tolist() == [0.5, 2.5]
    assert table["actual"].tolist() == [0.5, 2.5]
    assert decile_calibration_error(y, p, n_bins=2) == pytest.approx(0.0)
    q = p + 1.0  # every prediction one too high: gap 1 everywhere over mean outcome 1.5
    assert decile_calibration_error(y, q, n_bins=2) == pytest.approx(1 / 1.5)


def test_brier_and_calibration_error_by_hand():
    o = np.array([1.0, 0.0, 1.0, 0.0])
    p = np.array([0.9, 0.1, 0.35, 0.35])
    assert brier_score(o, p) == pytest.approx((0.01 + 0.01 + 0.4225 + 0.1225) / 4)
    # bins: 0.1 -> bin 1 (gap .1), 0.35 x2 -> bin 3 (mean .35 vs .5: gap .15 each),
    # 0.9 -> bin 9 (gap .1): ECE = (0.1 + 2 * 0.15 + 0.1) / 4
    assert calibration_error(o, p) == pytest.approx(0.5 / 4)


def test_spend_mae_on_the_mask_only():
    assert spend_mae([10.0, 20.0, 30.0], [12.0, 0.0, 27.0], [True, False, True]) == 2.5
    assert math.isnan(spend_mae([1.0], [2.0], [False]))


def test_migration_tvd_by_hand():
    realised = pd.DataFrame({"A": [0.5, 0.0], "B": [0.5, 1.0]}, index=["A", "B"])
    predicted = pd.DataFrame({"A": [1.0], "B": [0.0]}, index=["A"])
    # row A: 0.5 (|1-.5| + |0-.5|) = 0.5; row B missing from the prediction: distance 1
    assert migration_tvd(predicted, realised) == pytest.approx(0.75)
    assert migration_tvd(realised, realised) == 0.0


def test_backtest_metrics_names_are_registered():
    frame = pd.DataFrame(
        {
            "actual_purchases": Y,
            "predicted_purchases": P,
            "probability": [0.3, 0.6, 0.9, 0.2],
            "actual_spend": [0.0, 10.0, 12.0, 0.0],
            "predicted_spend": [9.0, 9.0, 9.0, 9.0],
            "spend_observed": [False, True, True, False],
        }
    )
    curve = pd.DataFrame({"actual": [1.0, 4.0], "predicted": [1.5, 4.0]})
    metrics = backtest_metrics(frame, curve)
    assert set(metrics) <= set(BACKTEST_METRICS)
    assert metrics["mae"] == mae(Y, P)
    assert metrics["spend_mae"] == pytest.approx(2.0)
    assert metrics["tracking_mape"] == pytest.approx(25.0)
    assert metrics["gini"] == gini(Y, P)  # no value columns: ranks purchases


def test_mismatched_lengths_raise_one_line():
    with pytest.raises(ValueError, match="same length"):
        mae([1.0, 2.0], [1.0])
