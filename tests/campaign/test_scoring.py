from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.exceptions import NotFittedError

from rfmml.campaign import churn_risk_band, load_playbook, score_customers
from rfmml.errors import DataError
from rfmml.models import BetaGeoNBD, customer_lifetime_value

FULL_COLUMNS = [
    "customer_id",
    "recency_days",
    "n_orders",
    "total_spend",
    "R",
    "F",
    "M",
    "RFM",
    "segment",
    "cluster",
    "cluster_name",
    "probability_alive",
    "probability_no_purchase",
    "churn_risk",
    "expected_purchases",
    "expected_next_order_date",
    "expected_order_value",
    "expected_spend",
    "clv",
    "action",
    "action_channel",
    "action_priority",
]


def test_full_table_columns_and_values(cdnow_fitted, cdnow_table):
    table = cdnow_table
    assert list(table.columns) == FULL_COLUMNS
    assert len(table) == 23_570
    assert table.index.equals(cdnow_fitted.features.index)
    assert (table["customer_id"].to_numpy() == table.index.to_numpy()).all()
    # only the next-order date is empty, where a next order is less likely than not
    assert not table.drop(columns="expected_next_order_date").isna().any().any()
    assert table["probability_alive"].between(0, 1).all()
    assert (table["clv"] >= 0).all()
    assert (table["expected_purchases"] >= 0).all()
    assert table["action"].str.len().gt(0).all()
    assert set(table["churn_risk"].unique()) <= {"low", "medium", "high"}
    assert table["cluster"].between(0, 3).all()
    assert table.attrs["freq"] == "W"
    assert table.attrs["horizon"] == 52


def test_values_come_from_the_fitted_models(cdnow_fitted, cdnow_table):
    f = cdnow_fitted
    expected_purchases = f.bgnbd.expected_purchases(f.summary, 52)
    order_value = f.gamma_gamma.expected_order_value(f.summary)
    np.testing.assert_array_equal(cdnow_table["expected_purchases"], expected_purchases)
    # expected spend over the horizon = expected purchases x expected order value
    np.testing.assert_allclose(
        cdnow_table["expected_spend"], expected_purchases * order_value, rtol=1e-12
    )
    clv = customer_lifetime_value(f.bgnbd, f.gamma_gamma, f.summary, 52, 0.0)
    np.testing.assert_array_equal(cdnow_table["clv"], clv)
    # Undiscounted CLV is the expected spend (same sum, computed period by period).
    np.testing.assert_allclose(cdnow_table["clv"], cdnow_table["expected_spend"], rtol=1e-9)
    rules = f.rules.transform(f.features)
    assert (cdnow_table["segment"].astype(str) == rules["segment"].astype(str)).all()
    assert (cdnow_table["RFM"] == rules["RFM"]).all()
    playbook = load_playbook(None)
    champions = cdnow_table[cdnow_table["segment"] == "Champions"]
    assert (champions["action"] == playbook.action("Champions")).all()
    assert (champions["action_priority"] == 1).all()


def test_discounting_lowers_clv(cdnow_fitted, cdnow_table):
    discounted = cdnow_fitted.score(discount_rate=0.01)
    assert (discounted["clv"] <= cdnow_table["clv"] + 1e-12).all()
    assert discounted["clv"].sum() < 0.9 * cdnow_table["clv"].sum()


def test_summary_row_order_does_not_matter(cdnow_fitted, cdnow_table):
    shuffled = cdnow_fitted.summary.sample(frac=1.0, random_state=np.random.RandomState(42))
    table = cdnow_fitted.score(summary=shuffled)
    pd.testing.assert_frame_equal(table, cdnow_table)


def test_parts_are_optional_and_leave_no_empty_columns(cdnow_fitted):
    f = cdnow_fitted
    only_rules = score_customers(f.features, None, rule_segmenter=f.rules)
    assert list(only_rules.columns) == [
        "customer_id", "recency_days", "n_orders", "total_spend",
        "R", "F", "M", "RFM", "segment", "action", "action_channel", "action_priority",
    ]  # fmt: skip
    only_bgnbd = score_customers(f.features, f.summary, purchase_model=f.bgnbd, horizon=26)
    assert list(only_bgnbd.columns) == [
        "customer_id", "recency_days", "n_orders", "total_spend",
        "probability_alive", "probability_no_purchase", "churn_risk", "expected_purchases",
        "expected_next_order_date",
    ]  # fmt: skip
    only_spend = score_customers(f.features, f.summary, gamma_gamma=f.gamma_gamma)
    assert "expected_order_value" in only_spend and "clv" not in only_spend
    for table in (only_rules, only_bgnbd, only_spend):
        filled = table.drop(columns="expected_next_order_date", errors="ignore")
        assert not filled.isna().any().any()


def test_misaligned_frames_are_refused(cdnow_fitted):
    f = cdnow_fitted
    with pytest.raises(
        DataError,
        match=r"3 of 23570 feature ids are missing from the summary \(first 1\) and "
        r"0 of 23567 summary ids are missing from the features",
    ):
        f.score(summary=f.summary.iloc[3:])
    with pytest.raises(
        DataError, match=r"1 of 23568 feature ids are missing.*2 of 23569 summary ids.*first 1\)"
    ):
        f.score(features=f.features.iloc[2:], summary=f.summary.iloc[:-1])
    with pytest.raises(DataError, match="summary index has 1 repeated customer key"):
        f.score(summary=pd.concat([f.summary, f.summary.iloc[:1]]))


def test_bad_arguments(cdnow_fitted):
    f = cdnow_fitted
    with pytest.raises(ValueError, match="pass summary=rfmml.features.btyd_summary"):
        score_customers(f.features, None, purchase_model=f.bgnbd)
    with pytest.raises(ValueError, match="horizon must be a whole number of periods >= 1"):
        f.score(horizon=0)
    with pytest.raises(ValueError, match="churn_bands must satisfy 0 <= low <= high <= 1"):
        f.score(churn_bands=(0.8, 0.2))
    with pytest.raises(ValueError, match="churn_bands must be two risk thresholds"):
        f.score(churn_bands=0.5)
    with pytest.raises(DataError, match=r"time units disagree.*'freq': 'D'"):
        f.score(freq="D")
    with pytest.raises(DataError, match="freq is 'Y'; expected one of"):
        f.score(freq="Y")
    with pytest.raises(DataError, match=r"features lack column\(s\) \['n_orders'\]"):
        score_customers(f.features.drop(columns="n_orders"), None)
    with pytest.raises(DataError, match="the features frame is empty"):
        score_customers(f.features.iloc[:0], None)
    with pytest.raises(TypeError, match="expects features as a pandas DataFrame"):
        score_customers(f.features.to_numpy(), None)
    with pytest.raises(NotFittedError):
        score_customers(f.features, f.summary, purchase_model=BetaGeoNBD())


def test_nan_from_inputs_is_reported_not_passed_on(cdnow_fitted):
    features = cdnow_fitted.features.copy()
    features.iloc[5, features.columns.get_loc("total_spend")] = np.nan
    with pytest.raises(DataError, match=r"column 'total_spend' has 1 of 23570 missing values"):
        score_customers(features, None)


def test_churn_risk_band_edges():
    p_alive = pd.Series([1.0, 0.71, 0.7, 0.31, 0.3, 0.0])
    bands = churn_risk_band(p_alive, (0.3, 0.7))
    # risk = 1 - p: 0, 0.29 low; 0.3 (edge) medium; 0.69 medium; 0.7 (edge) high; 1 high
    assert bands.tolist() == ["low", "low", "medium", "medium", "high", "high"]
    assert bands.cat.ordered


def test_scores_per_group_on_online_retail(retail_by_country):
    table = retail_by_country
    assert table.index.names == ["customer_id", "country"]
    assert list(table.columns[:2]) == ["customer_id", "country"]
    assert len(table) == 4346
    assert not table.isna().any().any()
    assert table["probability_alive"].between(0, 1).all()
    assert (table["clv"] >= 0).all()
    assert table.attrs["scheme"] == "rfm11"
    assert table["action"].str.len().gt(0).all()


def test_a_group_named_like_an_output_column_is_refused(cdnow_fitted):
    features = cdnow_fitted.features.set_index(
        pd.Index(["web"] * len(cdnow_fitted.features), name="segment"), append=True
    )
    with pytest.raises(DataError, match=r"group level\(s\) \['segment'\] share a name"):
        score_customers(features, None)


def test_churn_risk_bands_p_no_purchase_in_the_horizon_by_default(cdnow_fitted, cdnow_table):
    f = cdnow_fitted
    no_purchase = f.bgnbd.probability_no_purchase(f.summary, 52)
    np.testing.assert_array_equal(cdnow_table["probability_no_purchase"], no_purchase)
    expected = churn_risk_band(no_purchase, (0.3, 0.7), basis="no_purchase")
    assert (cdnow_table["churn_risk"].to_numpy() == expected.to_numpy()).all()
    assert cdnow_table.attrs["churn_basis"] == "no_purchase"
    # P(no purchase) >= 1 - P(alive): the default never bands lower than the alive basis
    alive_basis = f.score(churn_basis="alive")
    assert alive_basis.attrs["churn_basis"] == "alive"
    by_alive = churn_risk_band(f.bgnbd.probability_alive(f.summary), (0.3, 0.7))
    assert (alive_basis["churn_risk"].to_numpy() == by_alive.to_numpy()).all()
    assert (cdnow_table["churn_risk"].cat.codes >= alive_basis["churn_risk"].cat.codes).all()
    # one-time buyers are all "low" on the alive basis, not on P(no purchase)
    one_timers = f.summary["frequency"].reindex(cdnow_table.index).to_numpy() == 0
    assert (alive_basis["churn_risk"][one_timers] == "low").all()
    assert (cdnow_table["churn_risk"][one_timers] == "high").any()
    other_columns = [c for c in cdnow_table.columns if c != "churn_risk"]
    pd.testing.assert_frame_equal(alive_basis[other_columns], cdnow_table[other_columns])


def test_churn_basis_and_band_edges_on_the_no_purchase_basis(cdnow_fitted):
    bands = churn_risk_band(pd.Series([0.0, 0.29, 0.3, 0.69, 0.7, 1.0]), basis="no_purchase")
    assert bands.tolist() == ["low", "low", "medium", "medium", "high", "high"]
    with pytest.raises(ValueError, match=r"churn_basis must be one of \('no_purchase', 'alive'\)"):
        cdnow_fitted.score(churn_basis="dead")


def test_bad_discount_rate_is_refused(cdnow_fitted):
    with pytest.raises(DataError, match="discount_rate must be a per-period rate >= 0"):
        cdnow_fitted.score(discount_rate=-0.1)


def test_expected_next_order_date_is_the_median_time_after_the_end(cdnow_fitted, cdnow_table):
    f = cdnow_fitted
    median = f.bgnbd.next_purchase_quantile(f.summary, 0.5).to_numpy()
    dates = cdnow_table["expected_next_order_date"]
    end = pd.Timestamp("1998-06-30")
    finite = np.isfinite(median)
    assert 0 < finite.sum() < len(median)  # both kinds on CDNOW
    days = (dates[finite] - end).dt.days.to_numpy()
    np.testing.assert_array_equal(days, np.round(7.0 * median[finite]))
    assert dates[~finite].isna().all()
    # empty exactly where the customer is more likely than not never to buy again
    never = f.bgnbd.probability_no_purchase(f.summary, np.inf).to_numpy()
    np.testing.assert_array_equal(dates.isna().to_numpy(), never >= 0.5)
    # at the median date P(a purchase by then) is one half
    p_half = f.bgnbd.probability_purchase_within(f.summary.iloc[np.flatnonzero(finite)[:50]],
                                                 median[finite][:50])  # fmt: skip
    np.testing.assert_allclose(p_half, 0.5, atol=1e-8)


def test_probability_order_within_window_column(cdnow_fitted):
    f = cdnow_fitted
    table = f.score(next_order_window=4)
    assert list(table.columns).index("probability_order_within_window") == (
        list(table.columns).index("expected_next_order_date") + 1
    )
    expected = 1.0 - f.bgnbd.probability_no_purchase(f.summary, 4).to_numpy()
    np.testing.assert_allclose(table["probability_order_within_window"], expected)
    assert table.attrs["next_order_window"] == 4.0
    # a longer window: more likely to order
    longer = f.score(next_order_window=8)["probability_order_within_window"]
    assert (longer.to_numpy() >= table["probability_order_within_window"].to_numpy()).all()
    with pytest.raises(ValueError, match="next_order_window"):
        f.score(next_order_window=0)


def test_no_observation_end_no_date_column(cdnow_fitted):
    f = cdnow_fitted
    features = f.features.copy()
    features.attrs = {}
    summary = f.summary.copy()
    summary.attrs = {"freq": "W"}
    table = score_customers(features, summary, purchase_model=f.bgnbd)
    assert "expected_next_order_date" not in table.columns


def test_segment_columns_as_categories_hold_the_same_labels(cdnow_fitted) -> None:
    from rfmml.campaign.scoring import TEXT_CATEGORIES, segment_columns

    book = load_playbook(None)
    args = (cdnow_fitted.features, cdnow_fitted.rules, cdnow_fitted.kmeans, book)
    text, text_attrs = segment_columns(*args)
    labelled, labelled_attrs = segment_columns(*args, text_categories=True)
    assert labelled_attrs == text_attrs
    assert list(labelled) == list(text)
    for name, values in labelled.items():
        expected = pd.Series(text[name])
        got = pd.Series(values)
        if name in TEXT_CATEGORIES:
            assert isinstance(got.dtype, pd.CategoricalDtype), name
            assert got.cat.categories.is_unique, name
            got = got.astype(expected.dtype)
        pd.testing.assert_series_equal(got, expected, check_names=False)
