"""Tracking curves: actual repeat transactions counted by hand, expected computed directly."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from rfmml.errors import DataError
from rfmml.evaluation import repeat_transaction_tracking, tracking_mape
from rfmml.features import btyd_summary, calibration_holdout, calibration_summary
from rfmml.models import BetaGeoNBD, ParetoNBD


@pytest.mark.filterwarnings("ignore::rfmml.models.StandardErrorWarning")
def test_actual_counts_match_a_hand_count(tiny_tx):
    # a: first 01-01 (two orders that day: one period), repeats 01-10 and 02-05
    # b: first 01-20, no repeat; c: first 01-03, repeat 01-31
    model = BetaGeoNBD(initial_params={"r": 0.5, "alpha": 5.0, "a": 0.5, "b": 2.0})
    summary = pd.DataFrame({"frequency": [2.0, 0.0, 1.0], "recency": [35.0, 0.0, 28.0],
                            "T": [40.0, 21.0, 38.0]})  # fmt: skip
    model.fit(summary)
    curves = repeat_transaction_tracking(
        tiny_tx, {"bgnbd": model}, "2024-01-25", "2024-02-09", freq="D"
    )
    assert curves.index[0] == pd.Timestamp("2024-01-01")
    assert curves.index[-1] == pd.Timestamp("2024-02-09")
    repeats = curves["actual"][curves["actual"] > 0]
    assert repeats.to_dict() == {
        pd.Timestamp("2024-01-10"): 1.0,
        pd.Timestamp("2024-01-31"): 1.0,
        pd.Timestamp("2024-02-05"): 1.0,
    }
    assert curves["actual_cumulative"].iloc[-1] == 3.0
    assert curves["holdout"].sum() == 15  # 01-26 to 02-09
    assert curves.attrs["n_customers"] == 3
    # cohort on or before 01-10 only: b (first 01-20) is out, a and c stay
    early = repeat_transaction_tracking(
        tiny_tx, {"bgnbd": model}, "2024-01-10", "2024-02-09", freq="D"
    )
    assert early.attrs["n_customers"] == 2
    assert early["actual_cumulative"].iloc[-1] == 3.0
    # weekly: Monday weeks; a's 01-01 and c's 01-03 share the first week
    weekly = repeat_transaction_tracking(
        tiny_tx, {"bgnbd": model}, "2024-01-25", "2024-02-09", freq="W"
    )
    assert list(weekly.index) == list(pd.date_range("2024-01-01", "2024-02-05", freq="7D"))
    assert weekly["actual"].tolist() == [0.0, 1.0, 0.0, 0.0, 1.0, 1.0]


def test_expected_curve_equals_the_sum_over_customers(cdnow_tx):
    cal_end, obs_end = pd.Timestamp("1997-09-30"), pd.Timestamp("1998-06-30")
    ids = cdnow_tx["customer_id"].drop_duplicates().sample(600, random_state=1)
    tx = cdnow_tx[cdnow_tx["customer_id"].isin(ids)]
    cal = calibration_holdout(tx, cal_end, obs_end, freq="W")
    summary = calibration_summary(cal)
    models = {"bgnbd": BetaGeoNBD().fit(summary), "pareto_nbd": ParetoNBD().fit(summary)}
    curves = repeat_transaction_tracking(tx, models, cal_end, obs_end, freq="W")
    # direct: each customer's first-purchase week, E[X(k - first)] summed over customers
    first = tx.groupby("customer_id")["timestamp"].min()
    first_week = first.dt.normalize() - pd.to_timedelta(first.dt.day_of_week, unit="D")
    for label, model in models.items():
        for week in curves.index[::9]:
            ages = ((week - first_week).dt.days // 7).clip(lower=0).to_numpy(dtype=float)
            direct = sum(model.expected_purchases_new_customer(a) for a in ages)
            assert curves.loc[week, f"{label}_cumulative"] == pytest.approx(direct, rel=1e-10)
    # the actual total equals the repeat periods of the cohort's summary at the end
    full = btyd_summary(tx, observation_end=obs_end, freq="W")
    assert curves["actual_cumulative"].iloc[-1] == full.loc[cal.index, "frequency"].sum()
    # MAPE by hand over the holdout weeks
    hold = curves[curves["holdout"]]
    by_hand = 100 * np.mean(
        np.abs(hold["bgnbd_cumulative"] - hold["actual_cumulative"]) / hold["actual_cumulative"]
    )
    assert tracking_mape(curves, "bgnbd") == pytest.approx(by_hand)


def test_no_cohort_is_an_error(tiny_tx):
    model = BetaGeoNBD(initial_params={"r": 0.5, "alpha": 5.0, "a": 0.5, "b": 2.0})
    with pytest.raises(DataError, match="nothing to track"):
        repeat_transaction_tracking(tiny_tx, {"m": model}, "2023-12-01", "2024-02-09")
