"""Segment-migration forecast: scenario probabilities, matrix and entering lists by hand."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from rfmml.errors import DataError
from rfmml.evaluation.migration import forecast_migration
from rfmml.models import BetaGeoNBD, simulate_bgnbd
from rfmml.segments import RFMScorer, RuleSegmenter
from rfmml.segments.forecast import predicted_transition_matrix, segment_probabilities

# R: bought within 30 / 60 / 120 / 180 days; F: 2 / 3 / 5 / 8 orders (as the CDNOW config)
SCORER = RFMScorer(
    method="thresholds",
    thresholds={"R": [30, 60, 120, 180], "F": [2, 3, 5, 8], "M": [30, 60, 120, 250]},
)


def _segmenter(features: pd.DataFrame) -> RuleSegmenter:
    return RuleSegmenter("rf_grid", scorer=SCORER).fit(features)


def _features() -> pd.DataFrame:
    return pd.DataFrame(
        {"recency_days": [5.0, 100.0], "n_orders": [9.0, 4.0], "total_spend": [300.0, 80.0]},
        index=pd.Index(["a", "b"], name="customer_id"),
    )


def test_segment_probabilities_add_scenarios_landing_in_the_same_segment():
    now = _features()
    seg = _segmenter(now)
    assert seg.predict(now).tolist() == ["Champions", "Needs Attention"]
    stay = now.assign(recency_days=now["recency_days"] + 90)  # a -> R 3 (Loyal), b -> At Risk
    buy = now.assign(recency_days=[10.0, 10.0], n_orders=now["n_orders"] + 1)
    probs = segment_probabilities(seg, [(stay, np.array([0.2, 0.7])), (buy, np.array([0.8, 0.3]))])
    assert probs.loc["a", "Loyal"] == pytest.approx(0.2)
    assert probs.loc["a", "Champions"] == pytest.approx(0.8)
    assert probs.loc["b", "At Risk"] == pytest.approx(0.7)
    assert probs.loc["b", "Champions"] == pytest.approx(0.3)  # R 5, F 4 (5 orders)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0)
    matrix = predicted_transition_matrix(seg.predict(now), probs)
    assert matrix.loc["Needs Attention", "At Risk"] == pytest.approx(0.7)
    with pytest.raises(DataError, match="sum to 1"):
        segment_probabilities(seg, [(stay, np.array([0.5, 0.5]))])


def test_forecast_migration_on_a_fitted_model():
    summary = simulate_bgnbd(400, T=52.0, params={"r": 0.5, "alpha": 5.0, "a": 0.5, "b": 2.0},
                             random_state=3)  # fmt: skip
    summary = summary[["frequency", "recency", "T"]].assign(monetary_value=20.0)
    model = BetaGeoNBD().fit(summary)
    features = pd.DataFrame(
        {
            "recency_days": 7.0 * (summary["T"] - summary["recency"]),
            "n_orders": summary["frequency"] + 1,
            "total_spend": 20.0 * (summary["frequency"] + 1),
        },
        index=summary.index,
    )
    seg = _segmenter(features)
    fc = forecast_migration(model, summary, features, seg, 91, freq="W")
    np.testing.assert_allclose(fc.probabilities.sum(axis=1), 1.0)
    # the probability of staying put is the model's probability of no purchase
    p0 = model.probability_no_purchase(summary, 13.0)
    quiet = features["recency_days"] + 91 > 180  # R 1 either way if no purchase
    one_timers = quiet & (features["n_orders"] == 1)
    assert fc.probabilities.loc[one_timers, "Hibernating"].to_numpy() == pytest.approx(
        p0[one_timers].to_numpy()
    )
    entering = fc.entering("At Risk", min_probability=0.3)
    assert (entering["segment"] != "At Risk").all()
    assert (entering["probability"] >= 0.3).all()
    with pytest.raises(DataError, match="not one of"):
        fc.entering("Nobody")
    table = fc.table()
    assert list(table.columns) == ["segment", "predicted_segment", "probability"]
