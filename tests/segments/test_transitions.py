from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from rfmml.errors import ConfigError, DataError
from rfmml.features import rfm_table
from rfmml.segments import (
    NEW,
    KMeansSegmenter,
    RFMScorer,
    RuleSegmenter,
    segment_transitions,
)

SNAPSHOTS = ["1997-02-28", "1997-09-30", "1998-06-30"]
THRESHOLDS = {"R": [30, 60, 120, 240], "F": [2, 3, 5, 8], "M": [20, 50, 100, 200]}


@pytest.fixture
def tiny_log() -> pd.DataFrame:
    # a: steady buyer; b: lapses; c: arrives after the first snapshot.
    return pd.DataFrame(
        {
            "customer_id": ["a", "a", "a", "b", "c"],
            "timestamp": pd.to_datetime(
                ["2024-01-05", "2024-02-20", "2024-03-25", "2024-01-10", "2024-03-01"]
            ),
            "amount": [30.0, 30.0, 30.0, 25.0, 40.0],
        }
    )


def _threshold_rules() -> RuleSegmenter:
    return RuleSegmenter(scorer=RFMScorer(method="thresholds", thresholds=THRESHOLDS))


def test_tiny_log_by_hand(tiny_log):
    result = segment_transitions(tiny_log, ["2024-01-31", "2024-03-31"], _threshold_rules())
    jan, mar = result.snapshots
    assert result.labels.loc["a", jan] == "New Customers"  # 26 days, 1 order: R5 F1
    assert result.labels.loc["b", jan] == "New Customers"
    assert pd.isna(result.labels.loc["c", jan])  # not acquired yet
    assert result.labels.loc["a", mar] == "Potential Loyalists"  # 6 days, 3 orders: R5 F3
    assert result.labels.loc["b", mar] == "About to Sleep"  # 81 days, 1 order: R3 F1
    assert result.labels.loc["c", mar] == "New Customers"  # 30 days, 1 order: R5 F1
    matrix = result.matrix()
    assert matrix.loc[NEW, "New Customers"] == 1
    assert matrix.loc["New Customers", "Potential Loyalists"] == 1
    assert matrix.loc["New Customers", "About to Sleep"] == 1
    assert matrix.to_numpy().sum() == 3
    assert list(result.entered("Potential Loyalists")) == ["a"]
    assert set(result.left("New Customers")) == {"a", "b"}
    assert list(result.entered("New Customers")) == ["c"]
    assert result.moves.columns.tolist() == [
        "customer_id",
        "snapshot",
        "from_segment",
        "to_segment",
    ]


def test_cdnow_migration_tables_add_up(cdnow_tx):
    result = segment_transitions(cdnow_tx, SNAPSHOTS, RuleSegmenter())
    assert [s.date().isoformat() for s in result.snapshots] == SNAPSHOTS
    n_by_date = [len(rfm_table(cdnow_tx, observation_end=d)) for d in SNAPSHOTS]
    assert result.labels.notna().sum().tolist() == n_by_date
    for prev_n, date, n in zip(n_by_date[:-1], SNAPSHOTS[1:], n_by_date[1:], strict=True):
        counts = result.matrix(date)
        assert counts.to_numpy().sum() == n
        assert counts.loc[NEW].sum() == n - prev_n  # CDNOW: acquired Jan-Mar 1997
        assert counts.drop(index=NEW).sum(axis=1).sum() == prev_n
        rates = result.matrix(date, normalize=True)
        filled = rates.dropna()
        np.testing.assert_allclose(filled.sum(axis=1), 1.0)
        # Every customer whose label changed is in moves, and nobody else.
        changed = result.labels[pd.Timestamp(date)].astype(str) != result.labels[
            result.snapshots[result.snapshots.index(pd.Timestamp(date)) - 1]
        ].astype(str)
        moves = result.moves[result.moves["snapshot"] == pd.Timestamp(date)]
        assert len(moves) == int(changed.sum())
        off_diagonal = counts.to_numpy().sum() - np.trace(counts.drop(index=NEW).to_numpy())
        assert len(moves) == off_diagonal


def test_entered_and_left_match_the_labels(cdnow_tx):
    result = segment_transitions(cdnow_tx, SNAPSHOTS[1:], RuleSegmenter())
    before, after = (result.labels[s] for s in result.snapshots)
    entered = set(result.entered("Champions"))
    left = set(result.left("Champions"))
    expected_in = set(after.index[(after == "Champions") & (before != "Champions")])
    expected_out = set(after.index[(before == "Champions") & (after != "Champions")])
    assert entered == expected_in and len(entered) > 0
    assert left == expected_out and len(left) > 0


def test_fitted_segmenter_is_reused_and_refit_differs(cdnow_tx):
    first = rfm_table(cdnow_tx, observation_end=SNAPSHOTS[0])
    fitted = RuleSegmenter().fit(first)
    reused = segment_transitions(cdnow_tx, SNAPSHOTS, fitted)
    unfitted = segment_transitions(cdnow_tx, SNAPSHOTS, RuleSegmenter())
    pd.testing.assert_frame_equal(reused.labels, unfitted.labels)
    refit = segment_transitions(cdnow_tx, SNAPSHOTS, RuleSegmenter(), refit=True)
    last = refit.snapshots[-1]
    expected = RuleSegmenter().fit_predict(rfm_table(cdnow_tx, observation_end=last))
    assert (refit.labels[last].astype(str) == expected.astype(str)).all()


def test_kmeans_segmenter_gives_named_clusters(cdnow_tx):
    km = KMeansSegmenter(n_clusters=3, random_state=0, sample_size=2000)
    result = segment_transitions(cdnow_tx, SNAPSHOTS[1:], km)
    assert result.labels.iloc[:, 0].cat.categories[0] == "Champions"
    assert result.matrix().to_numpy().sum() == result.labels.iloc[:, 1].notna().sum()


def test_per_group_keys(tiny_log):
    log = tiny_log.assign(channel=["web", "store", "web", "web", "store"])
    result = segment_transitions(
        log, ["2024-01-31", "2024-03-31"], _threshold_rules(), group="channel"
    )
    assert result.labels.index.names == ["customer_id", "channel"]
    assert ("a", "store") in result.labels.index
    entered = result.entered(result.labels.loc[("c", "store"), result.snapshots[-1]])
    assert isinstance(entered, pd.MultiIndex)
    assert ("c", "store") in entered


def test_errors(tiny_log):
    with pytest.raises(ConfigError, match="needs two or more snapshots, got 1"):
        segment_transitions(tiny_log, ["2024-03-31"], _threshold_rules())
    with pytest.raises(ConfigError, match="snapshots must be strictly increasing"):
        segment_transitions(tiny_log, ["2024-03-31", "2024-01-31"], _threshold_rules())
    with pytest.raises(DataError, match="no customer has bought by the snapshot 2023-12-31"):
        segment_transitions(tiny_log, ["2023-12-31", "2024-03-31"], _threshold_rules())
    result = segment_transitions(tiny_log, ["2024-01-31", "2024-03-31"], _threshold_rules())
    with pytest.raises(ConfigError, match="snapshot 2024-01-31 is not one of the later"):
        result.matrix("2024-01-31")
