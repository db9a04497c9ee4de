from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from rfmml.campaign import (
    export_segment_changes,
    export_segment_lists,
    hash_customer_ids,
    read_predictions,
    segment_changes,
    segment_lists,
    slugify,
    write_predictions,
)
from rfmml.errors import DataError


def test_slugify():
    assert slugify("Can't Lose Them") == "cant_lose_them"
    assert slugify("Champions (2)") == "champions_2"
    assert slugify("Économie / Été") == "economie_ete"
    assert slugify("!!!") == "segment"


def test_segment_lists_add_up(cdnow_table):
    lists = segment_lists(cdnow_table)
    assert list(lists) == list(cdnow_table["segment"].cat.categories)  # display order
    assert sum(len(frame) for frame in lists.values()) == len(cdnow_table) == 23_570
    ids = pd.concat([frame["customer_id"] for frame in lists.values()])
    assert ids.is_unique
    champions = lists["Champions"]
    assert list(champions.columns) == [
        "customer_id", "segment", "action", "clv", "probability_alive",
    ]  # fmt: skip
    assert champions["clv"].is_monotonic_decreasing
    assert (champions["segment"] == "Champions").all()
    assert len(lists["New Customers"]) == 0  # nobody joined in the last months of CDNOW


def test_segment_lists_by_other_columns(cdnow_table):
    by_risk = segment_lists(cdnow_table, by="churn_risk", columns=["customer_id", "churn_risk"])
    assert list(by_risk) == ["low", "medium", "high"]
    assert sum(map(len, by_risk.values())) == len(cdnow_table)
    with pytest.raises(ValueError, match=r"column\(s\) \['nope'\] are not in the table"):
        segment_lists(cdnow_table, columns=["customer_id", "nope"])
    with pytest.raises(ValueError, match="no column 'tier' to split by"):
        segment_lists(cdnow_table, by="tier")
    broken = cdnow_table.copy()
    broken["segment"] = broken["segment"].astype(object)
    broken.iloc[:2, broken.columns.get_loc("segment")] = None
    with pytest.raises(DataError, match="column 'segment' has 2 of 23570 missing values"):
        segment_lists(broken)


def test_export_segment_lists(cdnow_table, tmp_path):
    paths = export_segment_lists(cdnow_table, tmp_path / "lists")
    assert paths["Can't Lose Them"].name == "cant_lose_them.csv"
    assert len(paths) == 10
    total = sum(len(pd.read_csv(p)) for p in paths.values())
    assert total == len(cdnow_table)
    assert pd.read_csv(paths["New Customers"]).columns[0] == "customer_id"  # header only


def test_export_segment_lists_hashed(cdnow_table, tmp_path):
    paths = export_segment_lists(cdnow_table, tmp_path, hash_ids=True, salt="s3cret")
    loyal = pd.read_csv(paths["Loyal"])
    assert "customer_id" not in loyal.columns and loyal.columns[0] == "customer_id_sha256"
    raw = segment_lists(cdnow_table)["Loyal"]["customer_id"]
    assert loyal["customer_id_sha256"].tolist() == hash_customer_ids(raw, "s3cret").tolist()
    with pytest.raises(ValueError, match="hash_ids=True needs a non-empty salt"):
        export_segment_lists(cdnow_table, tmp_path, hash_ids=True)
    with pytest.raises(ValueError, match="a salt was given but hash_ids=False"):
        export_segment_lists(cdnow_table, tmp_path, salt="s3cret")


def test_export_lists_neutralises_injected_ids(cdnow_table, tmp_path):
    table = cdnow_table.iloc[:3].copy()
    table["customer_id"] = ['=HYPERLINK("http://evil.example","x")', "-1+2", "@cmd"]
    table["total_spend"] = [-5.0, 1.0, 2.0]
    paths = export_segment_lists(table, tmp_path, by="customer_id")
    text = "".join(p.read_text() for p in paths.values())
    assert "'=HYPERLINK" in text and "'-1+2" in text and "'@cmd" in text
    assert "\n=" not in text and "\n-" not in text


def test_export_lists_refuses_clashing_file_names(cdnow_table, tmp_path):
    table = cdnow_table.iloc[:2].copy()
    table["tier"] = ["Top tier", "top-tier"]
    with pytest.raises(ValueError, match="both map to the file name 'top_tier'"):
        export_segment_lists(table, tmp_path, by="tier")


def test_segment_changes_between_two_snapshots(cdnow_early_table, cdnow_table, tmp_path):
    # The previous run is read back from its predictions.parquet, as the CLI does.
    write_predictions(cdnow_early_table, tmp_path / "previous", fingerprints={})
    previous = read_predictions(tmp_path / "previous")
    changes = segment_changes(previous, cdnow_table)
    assert list(changes.columns) == ["customer_id", "previous_segment", "segment", "change"]
    assert set(changes["change"].unique()) == {"moved"}  # CDNOW: every customer joined in Q1 1997
    merged = pd.DataFrame(
        {"before": cdnow_early_table["segment"].astype(str),
         "after": cdnow_table["segment"].astype(str)}
    )  # fmt: skip
    moved = merged[merged["before"] != merged["after"]]
    assert len(changes) == len(moved) > 1000
    assert set(changes["customer_id"]) == set(moved.index)
    # Both directions: for every segment, entered - left = the change in its size.
    for name in cdnow_table["segment"].cat.categories:
        entered = int((changes["segment"] == name).sum())
        left = int((changes["previous_segment"] == name).sum())
        assert entered - left == (merged["after"] == name).sum() - (merged["before"] == name).sum()
    # A plain pandas.read_parquet table works too (customer_id column as key).
    plain = pd.read_parquet(tmp_path / "previous" / "predictions.parquet")
    pd.testing.assert_frame_equal(segment_changes(plain, cdnow_table), changes)


def test_segment_changes_new_and_gone(cdnow_early_table, cdnow_table):
    previous = cdnow_early_table.iloc[10:]  # customers 1..10 are new in the current run
    current = cdnow_table.iloc[:-5]  # the last 5 are gone
    changes = segment_changes(previous, current)
    new = changes[changes["change"] == "new"]
    gone = changes[changes["change"] == "gone"]
    assert new["customer_id"].tolist() == cdnow_table["customer_id"].iloc[:10].tolist()
    assert new["previous_segment"].isna().all() and new["segment"].notna().all()
    assert gone["customer_id"].tolist() == cdnow_table["customer_id"].iloc[-5:].tolist()
    assert gone["segment"].isna().all()


def test_export_segment_changes(cdnow_early_table, cdnow_table, tmp_path):
    paths = export_segment_changes(cdnow_early_table, cdnow_table, tmp_path)
    assert len(paths) == 2 * 10
    assert paths["entered_cant_lose_them"].name == "entered_cant_lose_them.csv"
    changes = segment_changes(cdnow_early_table, cdnow_table)
    entered = sum(
        len(pd.read_csv(paths[f"entered_{s}"])) for s in map(slugify, _names(cdnow_table))
    )
    left = sum(len(pd.read_csv(paths[f"left_{s}"])) for s in map(slugify, _names(cdnow_table)))
    assert entered == left == len(changes)  # every move is one entry and one exit
    at_risk = pd.read_csv(paths["entered_at_risk"])
    assert (at_risk["segment"] == "At Risk").all()
    assert (at_risk["previous_segment"] != "At Risk").all()
    hashed = export_segment_changes(
        cdnow_early_table, cdnow_table, tmp_path / "h", hash_ids=True, salt="s"
    )
    assert pd.read_csv(hashed["left_loyal"]).columns[0] == "customer_id_sha256"


def _names(table):
    return list(table["segment"].cat.categories)


def test_segment_changes_per_group(retail_by_country, tmp_path):
    current = retail_by_country
    previous = current.copy()
    previous["segment"] = previous["segment"].astype(str)
    flip = np.arange(len(previous)) % 7 == 0
    previous.loc[flip, "segment"] = "Lost"
    changes = segment_changes(previous, current)
    assert list(changes.columns[:2]) == ["customer_id", "country"]
    expected = int((flip & (current["segment"].astype(str) != "Lost").to_numpy()).sum())
    assert len(changes) == expected
    # Read back without the metadata, the group key must be named.
    write_predictions(previous, tmp_path, fingerprints={}, formats=["parquet"])
    plain = pd.read_parquet(tmp_path / "predictions.parquet")
    duplicated = int(plain["customer_id"].duplicated().sum())
    assert duplicated > 0
    with pytest.raises(DataError, match=f"{duplicated} customer key\\(s\\) repeat on"):
        segment_changes(plain, current)
    keyed = segment_changes(plain, current, key=["customer_id", "country"])
    pd.testing.assert_frame_equal(keyed, changes)


def test_segment_changes_errors(cdnow_table):
    with pytest.raises(ValueError, match=r"\[.shop.\] are neither columns nor index levels"):
        segment_changes(cdnow_table, cdnow_table, key=["shop"])
    anonymous = cdnow_table.drop(columns="customer_id").reset_index(drop=True)
    with pytest.raises(ValueError, match="cannot tell which column identifies customers"):
        segment_changes(anonymous, cdnow_table)
    with pytest.raises(ValueError, match=r"keyed by \['customer_id'\] but the current one by"):
        segment_changes(cdnow_table, cdnow_table.rename_axis("id"))
    assert segment_changes(cdnow_table, cdnow_table).empty


def test_changes_between_runs_with_text_and_integer_ids(cdnow_table, cdnow_early_table):
    as_text = cdnow_early_table.reset_index(drop=True)
    as_text["customer_id"] = as_text["customer_id"].astype(str)
    as_ints = cdnow_table.reset_index(drop=True)
    changed = segment_changes(as_text, as_ints, key="customer_id")
    same_types = segment_changes(
        cdnow_early_table.reset_index(drop=True), as_ints, key="customer_id"
    )
    assert len(changed) == len(same_types) > 0
