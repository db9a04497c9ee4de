"""The report's tables on small hand-made frames, worked out by hand."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from rfmml.errors import ConfigError, DataError
from rfmml.report import (
    grid_cells,
    history_by_period,
    segment_summary,
    segments_by_period,
    top_share,
)
from rfmml.segments import Scheme, load_scheme


@pytest.fixture
def scored() -> pd.DataFrame:
    """Five customers in two segments; A holds 80 of the 100 spent."""
    return pd.DataFrame(
        {
            "customer_id": ["a", "b", "c", "d", "e"],
            "total_spend": [50.0, 30.0, 10.0, 6.0, 4.0],
            "segment": ["A", "A", "B", "B", "B"],
            "probability_alive": [0.9, 0.7, 0.5, 0.4, 0.3],
            "clv": [100.0, 60.0, 10.0, 5.0, 0.0],
            "clv_lower": [80.0, 50.0, 5.0, 2.0, 0.0],
            "clv_upper": [130.0, 70.0, 20.0, 9.0, 1.0],
            "action": ["reward", "reward", "win back", "win back", "win back"],
            "action_channel": ["email", "email", "phone", "phone", "phone"],
        }
    ).set_index("customer_id", drop=False)


def test_segment_summary_by_hand(scored):
    table = segment_summary(scored)
    assert list(table.index) == ["A", "B"]
    assert table["customers"].tolist() == [2, 3]
    assert table["revenue"].tolist() == [80.0, 20.0]
    assert table["customer_share"].tolist() == pytest.approx([0.4, 0.6])
    assert table["revenue_share"].tolist() == pytest.approx([0.8, 0.2])
    assert table["cumulative_revenue_share"].tolist() == pytest.approx([0.8, 1.0])
    assert table["cumulative_customer_share"].tolist() == pytest.approx([0.4, 1.0])
    # top 20% of A's 2 customers is ceil(0.4) = 1 customer: 50 of 80
    assert table["top20_revenue_share"].tolist() == pytest.approx([50 / 80, 10 / 20])
    assert table["mean_probability_alive"].tolist() == pytest.approx([0.8, 0.4])
    assert table["clv"].tolist() == [160.0, 15.0]
    assert table["clv_lower"].tolist() == [130.0, 7.0]
    assert table["clv_upper"].tolist() == [200.0, 30.0]
    assert table["mean_clv"].tolist() == pytest.approx([80.0, 5.0])
    assert table["action"].tolist() == ["reward", "win back"]
    assert table["action_channel"].tolist() == ["email", "phone"]
    assert "mean_probability_no_purchase" not in table.columns
    assert "expected_purchases" not in table.columns


def test_segment_summary_needs_its_columns(scored):
    with pytest.raises(DataError, match=r"segment_summary: missing column\(s\) \['cluster_name'\]"):
        segment_summary(scored, by="cluster_name")


def test_top_share():
    assert top_share(pd.Series([50.0, 30.0, 10.0, 6.0, 4.0])) == pytest.approx(0.5)
    assert top_share(pd.Series([1.0] * 10)) == pytest.approx(0.2)
    assert np.isnan(top_share(pd.Series([0.0, 0.0])))
    assert np.isnan(top_share(pd.Series([], dtype=float)))


def test_grid_cells_recompute_fm_and_cover_every_cell():
    frame = pd.DataFrame(
        {
            "R": [5, 5, 1],
            "F": [5, 4, 1],
            "M": [5, 5, 2],  # FM = (F + M + 1) // 2 = 5, 5, 2
            "total_spend": [100.0, 60.0, 2.0],
            "clv": [10.0, 6.0, 0.0],
        }
    )
    cells = grid_cells(frame, load_scheme("rfm11"))
    assert len(cells) == 25
    assert cells.attrs == {"row_key": "R", "column_key": "FM"}
    assert cells[["row_score", "column_score"]].iloc[0].tolist() == [5, 1]
    top = cells[(cells["row_score"] == 5) & (cells["column_score"] == 5)].iloc[0]
    assert (top["segment"], top["customers"], top["mean_spend"], top["mean_clv"]) == (
        "Champions",
        2,
        80.0,
        8.0,
    )
    low = cells[(cells["row_score"] == 1) & (cells["column_score"] == 2)].iloc[0]
    assert (low["customers"], low["mean_spend"]) == (1, 2.0)
    assert cells["customers"].sum() == 3
    assert cells.loc[cells["customers"] == 0, "mean_spend"].isna().all()


def test_grid_cells_need_two_axes():
    scheme = Scheme.from_dict(
        {"name": "one", "n_scores": 2,
         "segments": [{"name": "x", "description": "d", "action": "a"},
                      {"name": "y", "description": "d", "action": "a"}],
         "rules": [{"R": 1, "segment": "x"}, {"R": 2, "segment": "y"}]}
    )  # fmt: skip
    with pytest.raises(ConfigError, match="uses 1 score keys"):
        grid_cells(pd.DataFrame({"R": [1], "total_spend": [1.0]}), scheme)


def test_segments_by_period_by_hand(tiny_tx):
    predictions = pd.DataFrame({"customer_id": ["a", "b"], "segment": ["Loyal", "New"]}).set_index(
        "customer_id", drop=False
    )
    table = segments_by_period(tiny_tx, predictions)
    # a: Jan 10+5+20, Feb 40; b: Jan 7; c is not scored and is left out
    expected = pd.DataFrame(
        {
            "period": ["2024-01", "2024-01", "2024-02"],
            "segment": ["Loyal", "New", "Loyal"],
            "customers": [1, 1, 1],
            "revenue": [35.0, 7.0, 40.0],
            "orders": [3, 1, 1],
        }
    )
    pd.testing.assert_frame_equal(table, expected, check_dtype=False)


def test_segments_by_period_matches_customer_and_group(tiny_tx):
    tx = tiny_tx.assign(channel=["web", "web", "shop", "shop", "web", "web", "web"])
    predictions = pd.DataFrame(
        {"customer_id": ["a", "a", "c"], "channel": ["web", "shop", "web"],
         "segment": ["Loyal", "Lost", "New"]}
    ).set_index(["customer_id", "channel"], drop=False)  # fmt: skip
    table = segments_by_period(tx, predictions, freq="Q")
    got = table.set_index("segment")[["customers", "revenue"]].to_dict("index")
    assert got == {
        "Loyal": {"customers": 1, "revenue": 15.0},
        "Lost": {"customers": 1, "revenue": 60.0},
        "New": {"customers": 1, "revenue": 3.0},
    }
    assert set(table["period"]) == {"2024Q1"}


def test_history_by_period():
    history = pd.DataFrame(
        {"customer_id": [1, 2, 1], "segment": ["A", "A", "B"],
         "snapshot": pd.to_datetime(["2024-01-31", "2024-01-31", "2024-02-29"])}
    )  # fmt: skip
    table = history_by_period(history)
    assert table.to_dict("list") == {
        "period": ["2024-01-31", "2024-02-29"],
        "segment": ["A", "B"],
        "customers": [2, 1],
    }
    with pytest.raises(DataError, match="none of the date columns"):
        history_by_period(history.drop(columns="snapshot"))


def test_report_package_does_not_import_mlflow():
    import subprocess
    import sys

    code = "import sys, rfmml.report; print('mlflow' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_actions_only_when_each_label_has_one(scored):
    clusters = scored.assign(cluster_name=["X", "Y", "X", "Y", "Y"])
    table = segment_summary(clusters, by="cluster_name")
    assert "action" not in table.columns and "action_channel" not in table.columns
    assert table["customers"].to_dict() == {"Y": 3, "X": 2}


@pytest.mark.parametrize(
    "name", ["cdnow", "online_retail", "grouped", "text_ids", "categorical", "listed_twice"]
)
def test_segments_by_period_in_duckdb_equals_pandas(name, monkeypatch):
    from rfmml.data import ScannedLog, load_cdnow, load_online_retail
    from rfmml.features import rfm_table
    from rfmml.segments import RuleSegmenter

    group = None
    if name == "cdnow":
        tx = load_cdnow()
    else:
        tx = load_online_retail().drop(columns=["order_id"])
        if name == "grouped":
            group = "country"
        else:
            tx = tx.drop(columns=["country"])
        if name == "text_ids":
            tx = tx.assign(customer_id="c" + tx["customer_id"].astype(str))
    features = rfm_table(tx, group=group)
    segments = RuleSegmenter("rfm11").fit(features).transform(features)["segment"]
    predictions = segments.to_frame()
    for i, level in enumerate(predictions.index.names):
        predictions.insert(i, level, predictions.index.get_level_values(level))
    predictions = predictions.iloc[::2]  # customers left out of the predictions are left out
    if name == "listed_twice":  # a customer listed twice keeps its first row
        again = predictions.iloc[:300].assign(segment=predictions["segment"].iloc[300:600].values)
        predictions = pd.concat([predictions, again])
    if name == "categorical":  # as the report reads them: categories not in text order
        categories = sorted(predictions["segment"].unique(), reverse=True)
        labels = pd.Categorical(predictions["segment"], categories=categories)
        predictions = predictions.assign(segment=labels)
    log = ScannedLog.from_pandas(tx)
    with monkeypatch.context() as patch:  # the log must not come to pandas
        patch.setattr(ScannedLog, "to_pandas", lambda self: pytest.fail("to_pandas called"))
        try:
            fast = segments_by_period(log, predictions)
        finally:
            log.close()
    slow = segments_by_period(tx, predictions.assign(segment=predictions["segment"].astype(str)))
    assert len(fast) > 10
    pd.testing.assert_frame_equal(fast, slow, check_exact=False, rtol=1e-12)


@pytest.fixture(scope="module")
def cdnow_scored() -> pd.DataFrame:
    """CDNOW customers with rfm11 segments, scores and playbook actions (text columns)."""
    from rfmml.campaign.playbook import load_playbook
    from rfmml.data import load_cdnow
    from rfmml.features import rfm_table
    from rfmml.segments import RuleSegmenter

    features = rfm_table(load_cdnow())
    table = RuleSegmenter("rfm11").fit(features).transform(features)
    table["total_spend"] = features["total_spend"]
    table["probability_alive"] = np.linspace(0.0, 1.0, len(table))
    playbook = load_playbook()
    table["action"] = [playbook.entry(s).action for s in table["segment"]]
    table["action_channel"] = [playbook.entry(s).channel for s in table["segment"]]
    return table.reset_index()


def test_report_tables_of_categorical_labels_equal_those_of_text(cdnow_scored):
    """The report reads labels as categoricals and small-int scores: the same tables."""
    text = cdnow_scored.assign(
        **{c: cdnow_scored[c].astype(str) for c in ("segment", "action", "action_channel")}
    )
    compact = cdnow_scored.assign(
        **{c: pd.Categorical(cdnow_scored[c],
                             categories=sorted(cdnow_scored[c].unique(), reverse=True))
           for c in ("segment", "action", "action_channel")},
        **{c: cdnow_scored[c].astype(np.int8) for c in ("R", "F", "M")},
    )  # fmt: skip
    assert text["segment"].nunique() > 5
    pd.testing.assert_frame_equal(segment_summary(compact), segment_summary(text))
    scheme = load_scheme("rfm11")
    pd.testing.assert_frame_equal(grid_cells(compact, scheme), grid_cells(text, scheme))


def test_segments_by_period_of_a_scanned_log_in_quarters(tiny_tx):
    from rfmml.data import ScannedLog

    predictions = pd.DataFrame({"customer_id": ["a", "b"], "segment": ["Loyal", "New"]})
    log = ScannedLog.from_pandas(tiny_tx)
    try:
        table = segments_by_period(log, predictions.set_index("customer_id", drop=False),
                                   freq="Q")  # fmt: skip
    finally:
        log.close()
    assert table["period"].tolist() == ["2024Q1", "2024Q1"]


def test_segments_by_period_revenue_has_the_same_digits_in_any_row_order() -> None:
    """The monthly revenue of a scanned log does not depend on the order rows are added in."""
    from rfmml.data import ScannedLog, load_cdnow
    from rfmml.features import rfm_table
    from rfmml.segments import RuleSegmenter

    tx = load_cdnow()
    features = rfm_table(tx)
    predictions = RuleSegmenter("rfm11").fit(features).transform(features)[["segment"]]
    predictions.insert(0, "customer_id", predictions.index)
    tables = []
    for seed in (None, 1, 2):
        rows = tx if seed is None else tx.sample(frac=1.0, random_state=seed)
        log = ScannedLog.from_pandas(rows.reset_index(drop=True))
        try:
            tables.append(segments_by_period(log, predictions))
        finally:
            log.close()
    for other in tables[1:]:
        pd.testing.assert_frame_equal(other, tables[0], check_exact=True)
    slow = segments_by_period(tx, predictions.assign(segment=predictions["segment"].astype(str)))
    pd.testing.assert_frame_equal(tables[0], slow, check_exact=False, rtol=1e-12)
