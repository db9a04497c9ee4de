from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from rfmml.errors import ConfigError, DataError
from rfmml.segments import RuleSegmenter, segment_profile, top_revenue_share


@pytest.fixture
def hand() -> tuple[pd.DataFrame, pd.Series]:
    features = pd.DataFrame(
        {
            "recency_days": [10.0, 20.0, 300.0, 400.0],
            "n_orders": [5, 3, 1, 1],
            "total_spend": [600.0, 200.0, 150.0, 50.0],
        },
        index=pd.Index(["a", "b", "c", "d"], name="customer_id"),
    )
    labels = pd.Series(["Top", "Top", "Low", "Low"], index=features.index)
    return features, labels


def test_profile_by_hand(hand):
    features, labels = hand
    profile = segment_profile(features, labels.iloc[::-1])  # any order: aligned by index
    assert list(profile.index) == ["Low", "Top"]
    assert profile.index.name == "segment"
    top = profile.loc["Top"]
    assert top["n_customers"] == 2
    assert top["share"] == 0.5
    assert top["revenue"] == 800.0
    assert top["revenue_share"] == 0.8
    assert top["mean_recency_days"] == 15.0
    assert top["mean_n_orders"] == 4.0
    assert top["mean_total_spend"] == 400.0
    # Top 20% of 4 customers = ceil(0.8) = 1 customer: 600 of 1000.
    assert profile.attrs == {"top_revenue_share": 0.6, "top": 0.2}


def test_profile_with_predictions(hand):
    features, labels = hand
    predictions = pd.DataFrame(
        {"probability_alive": [0.9, 0.7, 0.2, 0.1], "clv": [300.0, 100.0, 10.0, 2.0]},
        index=features.index,
    )
    profile = segment_profile(features, labels, predictions)
    assert profile.loc["Top", "mean_probability_alive"] == pytest.approx(0.8)
    assert profile.loc["Low", "mean_clv"] == 6.0
    assert profile.loc["Low", "total_clv"] == 12.0
    only_clv = segment_profile(features, labels, predictions[["clv"]])
    assert "mean_probability_alive" not in only_clv.columns


def test_profile_keeps_every_scheme_segment_in_order(cdnow_features):
    seg = RuleSegmenter("rf_grid").fit(cdnow_features)
    labels = seg.predict(cdnow_features)
    profile = segment_profile(cdnow_features, labels)
    assert list(profile.index) == seg.scheme_.segment_names
    assert profile["n_customers"].sum() == len(cdnow_features)
    assert profile["share"].sum() == pytest.approx(1.0)
    assert profile["revenue_share"].sum() == pytest.approx(1.0)
    # CDNOW: the whole cohort bought in early 1997, so no one is recent and single-order.
    assert profile.loc["New Customers", "n_customers"] == 0
    assert (
        profile.loc["Champions", "mean_total_spend"]
        > profile.loc["Hibernating", "mean_total_spend"]
    )


def test_top_revenue_share_on_cdnow(cdnow_features):
    spend = np.sort(cdnow_features["total_spend"].to_numpy())[::-1]
    n_top = int(np.ceil(0.2 * len(spend)))
    expected = spend[:n_top].sum() / spend.sum()
    assert top_revenue_share(cdnow_features) == pytest.approx(expected, rel=1e-12)
    assert 0.6 < expected < 0.75  # CDNOW is close to the 80/20 pattern
    assert top_revenue_share(cdnow_features, top=1.0) == pytest.approx(1.0)


def test_profile_per_group(grouped_features):
    labels = RuleSegmenter().fit(grouped_features).predict(grouped_features)
    profile = segment_profile(grouped_features, labels)
    assert profile.index.names == ["channel", "segment"]
    for channel in ("store", "web"):
        block = profile.loc[channel]
        assert block["n_customers"].sum() == 100
        assert block["share"].sum() == pytest.approx(1.0)
        assert block["revenue_share"].sum() == pytest.approx(1.0)
    shares = profile.attrs["top_revenue_share"]
    assert set(shares) == {"store", "web"}
    web = grouped_features.xs("web", level="channel")
    assert shares["web"] == pytest.approx(top_revenue_share(web))


def test_profile_errors(hand):
    features, labels = hand
    with pytest.raises(DataError, match="1 of 4 customers have no label"):
        segment_profile(features, labels.iloc[:3])
    with pytest.raises(DataError, match=r"missing column\(s\) \['n_orders'\]"):
        segment_profile(features.drop(columns="n_orders"), labels)
    with pytest.raises(DataError, match="predictions need a 'probability_alive' or 'clv'"):
        segment_profile(features, labels, pd.DataFrame({"x": [1.0] * 4}, index=features.index))
    partial = pd.DataFrame({"clv": [1.0, 2.0]}, index=features.index[:2])
    with pytest.raises(DataError, match="'clv' is missing for 2 of 4 customers"):
        segment_profile(features, labels, partial)
    with pytest.raises(TypeError, match="labels must be a pandas Series"):
        segment_profile(features, labels.to_numpy())
    with pytest.raises(ConfigError, match=r"top must be in \(0, 1\]"):
        top_revenue_share(features, top=0.0)
    with pytest.raises(DataError, match=r"empty \(0 customers\)"):
        top_revenue_share(features.iloc[:0])
