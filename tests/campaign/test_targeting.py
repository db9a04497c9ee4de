from __future__ import annotations

import numpy as np
import pytest

from rfmml.campaign import select_targets


def test_budget_picks_the_highest_values(cdnow_table):
    result = select_targets(cdnow_table, budget=1000.0, cost_per_contact=1.5)
    assert result.max_contacts == result.n_contacts == 666  # 1000 // 1.5
    assert result.cost == pytest.approx(999.0)
    chosen = result.targets
    assert len(chosen) == 666 and chosen["rank"].tolist() == list(range(1, 667))
    threshold = chosen["contact_value"].min()
    others = cdnow_table.drop(index=chosen.index)
    assert (others["clv"] <= threshold).all()  # nobody left out is worth more
    top = np.sort(cdnow_table["clv"].to_numpy())[::-1][:666]
    assert result.expected_revenue == pytest.approx(top.sum(), rel=1e-12)
    assert result.total_expected_revenue == pytest.approx(cdnow_table["clv"].sum(), rel=1e-12)
    assert result.share_covered == pytest.approx(top.sum() / cdnow_table["clv"].sum())


def test_report_per_segment_adds_up(cdnow_table):
    result = select_targets(cdnow_table, n_contacts=2000, value="expected_spend")
    report = result.by_segment
    assert list(report.index) == list(cdnow_table["segment"].cat.categories)
    assert report["customers"].sum() == len(cdnow_table)
    assert report["contacts"].sum() == 2000
    assert report["expected_revenue"].sum() == pytest.approx(result.expected_revenue)
    assert report["share_of_total"].sum() == pytest.approx(result.share_covered)
    counts = result.targets["segment"].astype(str).value_counts()
    assert report.loc[counts.index, "contacts"].tolist() == counts.tolist()
    champions = report.loc["Champions"]
    assert champions["share_of_segment"] == pytest.approx(
        champions["expected_revenue"] / champions["total_expected_revenue"]
    )
    assert report["cost"].sum() == 0.0


def test_contacts_and_budget_together_take_the_smaller(cdnow_table):
    result = select_targets(cdnow_table, budget=100.0, n_contacts=30, cost_per_contact=2.0)
    assert result.n_contacts == 30 and result.cost == 60.0
    result = select_targets(cdnow_table, budget=100.0, n_contacts=300, cost_per_contact=2.0)
    assert result.n_contacts == 50


def test_probability_alive_threshold(cdnow_table):
    result = select_targets(cdnow_table, n_contacts=10**6, min_probability_alive=0.8)
    eligible = cdnow_table["probability_alive"] >= 0.8
    assert result.n_contacts == int(eligible.sum()) < len(cdnow_table)  # capped at eligible
    assert (result.targets["probability_alive"] >= 0.8).all()
    assert result.by_segment["eligible"].sum() == int(eligible.sum())


def test_targets_per_group(retail_by_country):
    result = select_targets(retail_by_country, n_contacts=100, by="country")
    assert result.targets.index.names == ["customer_id", "country"]
    assert result.by_segment["customers"].sum() == len(retail_by_country)
    assert result.by_segment.loc["United Kingdom", "contacts"] > 50


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({}, "select_targets needs a budget"),
        ({"budget": 5.0, "cost_per_contact": 10.0},
         "budget 5.0 does not cover a single contact at cost_per_contact 10.0"),
        ({"budget": 100.0}, r"a money budget \(100.0\) needs cost_per_contact > 0"),
        ({"budget": -1.0, "cost_per_contact": 1.0}, "budget must be a finite amount >= 0"),
        ({"n_contacts": 0}, "n_contacts must be >= 1"),
        ({"n_contacts": 2.5}, "n_contacts must be a whole number"),
        ({"n_contacts": 5, "cost_per_contact": -1.0}, "cost_per_contact must be a finite"),
        ({"n_contacts": 5, "value": "margin"}, "value column 'margin' is not in the table"),
        ({"n_contacts": 5, "value": "segment"}, "value column 'segment' must be numeric"),
        ({"n_contacts": 5, "by": "tier"}, "no column 'tier' to split by"),
        ({"n_contacts": 5, "min_probability_alive": 1.5}, r"must be in \[0, 1\]"),
    ],
)  # fmt: skip
def test_impossible_requests(cdnow_table, kwargs, message):
    with pytest.raises(ValueError, match=message):
        select_targets(cdnow_table, **kwargs)


def test_missing_model_columns(cdnow_table):
    no_models = cdnow_table.drop(columns=["probability_alive", "clv"])
    with pytest.raises(ValueError, match="score with bgnbd and gamma_gamma for 'clv'"):
        select_targets(no_models, n_contacts=5)
    with pytest.raises(ValueError, match="min_probability_alive > 0 needs a probability_alive"):
        select_targets(no_models, n_contacts=5, value="expected_spend", min_probability_alive=0.5)
    fading = cdnow_table[cdnow_table["probability_alive"] < 0.5]
    with pytest.raises(ValueError, match="no customer has probability_alive >= 0.5"):
        select_targets(fading, n_contacts=5, min_probability_alive=0.5)
    broken = cdnow_table.copy()
    broken.iloc[0, broken.columns.get_loc("clv")] = np.nan
    with pytest.raises(ValueError, match="value column 'clv' has 1 missing or infinite values"):
        select_targets(broken, n_contacts=5)
