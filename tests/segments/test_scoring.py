from __future__ import annotations

import json
import warnings

import numpy as np
import pandas as pd
import pytest

from rfmml.errors import ConfigError, DataError
from rfmml.segments import RFMScorer, linear_score
from rfmml.segments.persistence import segmenter_from_dict, segmenter_to_dict
from rfmml.segments.scoring import scoring_edges


def _rule_scores(values: np.ndarray, n: int) -> np.ndarray:
    """Independent oracle: 1 + floor(n * share of customers strictly worse)."""
    strictly_worse = pd.Series(values).rank(method="min").to_numpy() - 1
    return 1 + np.floor(n * strictly_worse / len(values)).astype(int)


def test_distinct_values_get_one_score_each(tiny_features):
    scores = RFMScorer().fit_transform(tiny_features)
    assert scores["R"].tolist() == [5, 4, 3, 2, 1]
    assert scores["F"].tolist() == [5, 4, 3, 2, 1]
    assert scores["M"].tolist() == [5, 4, 3, 2, 1]
    assert scores["RFM"].tolist() == ["555", "444", "333", "222", "111"]
    assert scores.index.equals(tiny_features.index)
    assert list(scores.columns) == ["R", "F", "M", "FM", "RFM"]
    assert scores[["R", "F", "M", "FM"]].dtypes.eq(np.int64).all()


def test_output_keeps_a_shuffled_index(tiny_features):
    shuffled = tiny_features.iloc[[3, 0, 4, 1, 2]]
    scores = RFMScorer().fit_transform(shuffled)
    assert scores.index.equals(shuffled.index)
    assert scores.loc[101, "RFM"] == "555"
    assert scores.loc[105, "RFM"] == "111"


@pytest.mark.parametrize(
    ("f", "m", "fm"),
    [(1, 1, 1), (1, 2, 2), (2, 3, 3), (4, 5, 5), (3, 4, 4), (5, 2, 4), (2, 2, 2)],
)
def test_fm_is_the_mean_rounded_half_up(f, m, fm):
    # Thresholds map n_orders f -> F = f and spend m -> M = m directly.
    cuts = [2, 3, 4, 5]
    scorer = RFMScorer(method="thresholds", thresholds={"R": cuts, "F": cuts, "M": cuts})
    X = pd.DataFrame({"recency_days": [0.0], "n_orders": [f], "total_spend": [float(m)]})
    row = scorer.fit_transform(X).iloc[0]
    assert (row["F"], row["M"], row["FM"]) == (f, m, fm)


@pytest.mark.parametrize("n_scores", [3, 5, 10])
def test_quantile_scores_match_the_strictly_worse_rule_on_cdnow(cdnow_features, n_scores):
    scores = RFMScorer(n_scores=n_scores).fit_transform(cdnow_features)
    f = cdnow_features
    np.testing.assert_array_equal(scores["F"], _rule_scores(f["n_orders"].to_numpy(), n_scores))
    np.testing.assert_array_equal(scores["M"], _rule_scores(f["total_spend"].to_numpy(), n_scores))
    np.testing.assert_array_equal(
        scores["R"], _rule_scores(-f["recency_days"].to_numpy(), n_scores)
    )


def test_one_time_buyers_share_the_lowest_frequency_score(cdnow_features):
    scores = RFMScorer().fit_transform(cdnow_features)
    one_timers = cdnow_features["n_orders"] == 1
    assert one_timers.mean() > 0.5  # the CDNOW tie this test is about
    assert (scores.loc[one_timers, "F"] == 1).all()
    # The tie block spans scores 1-2, so 2 is skipped rather than merged or failing.
    assert sorted(scores["F"].unique()) == [1, 3, 4, 5]
    # Recency and spend have few ties: each score holds 20% of customers within 1 point.
    for col in ("R", "M"):
        shares = scores[col].value_counts(normalize=True)
        assert shares.between(0.19, 0.21).all(), shares


def test_all_one_time_buyers_do_not_break_scoring(cdnow_features):
    X = cdnow_features[cdnow_features["n_orders"] == 1]
    scores = RFMScorer().fit_transform(X)
    assert (scores["F"] == 1).all()
    assert scores["R"].between(1, 5).all()
    assert scores["M"].nunique() == 5


def test_constant_columns_score_one():
    X = pd.DataFrame({"recency_days": [10.0] * 4, "n_orders": [1] * 4, "total_spend": [5.0] * 4})
    scorer = RFMScorer().fit(X)
    assert (scorer.transform(X)[["R", "F", "M"]] == 1).all().all()
    assert np.isinf(scorer.edges_.loc["F"]).all()


def test_edges_from_fit_are_reused_for_new_customers(cdnow_features):
    train = cdnow_features.iloc[::2]
    new = cdnow_features.iloc[1::2]
    scorer = RFMScorer().fit(train)
    edges = scorer.edges_.copy()
    scores = scorer.transform(new)
    pd.testing.assert_frame_equal(scorer.edges_, edges)
    # A new customer with the same values as a training customer gets the same scores.
    both = new.merge(train.reset_index(), on=["recency_days", "n_orders", "total_spend"])
    assert len(both) > 0
    same = scorer.transform(both.set_index("customer_id"))
    lookup = scorer.transform(train).loc[both["customer_id"]]
    np.testing.assert_array_equal(same["RFM"].to_numpy(), lookup["RFM"].to_numpy())
    # Scores are monotone in the values: M never decreases as spend grows.
    order = np.argsort(new["total_spend"].to_numpy(), kind="stable")
    assert np.all(np.diff(scores["M"].to_numpy()[order]) >= 0)
    extreme = pd.DataFrame(
        {"recency_days": [0.0, 10_000.0], "n_orders": [500, 1], "total_spend": [1e9, 0.0]}
    )
    assert scorer.transform(extreme)["RFM"].tolist() == ["555", "111"]


def test_edges_are_in_business_units(tiny_features):
    scorer = RFMScorer().fit(tiny_features)
    # R: the longest recency (days) reaching each score 2..5; F/M: the lowest value.
    assert scorer.edges_.loc["R"].tolist() == [200.0, 90.0, 30.0, 3.0]
    assert scorer.edges_.loc["F"].tolist() == [2, 3, 4, 8]
    assert scorer.edges_.loc["M"].tolist() == [40.0, 80.0, 150.0, 400.0]


def test_thresholds_in_weeks():
    scorer = RFMScorer(
        method="thresholds",
        recency_unit="weeks",
        thresholds={"R": [1, 4, 13, 26], "F": [2, 3, 5, 10], "M": [50, 100, 250, 1000]},
    )
    X = pd.DataFrame(
        {
            "recency_days": [7.0, 8.0, 28.0, 182.0, 183.0],
            "n_orders": [1, 2, 4, 9, 10],
            "total_spend": [49.99, 50.0, 120.0, 999.0, 5000.0],
        }
    )
    scores = scorer.fit_transform(X)
    assert scores["R"].tolist() == [5, 4, 4, 2, 1]
    assert scores["F"].tolist() == [1, 2, 3, 4, 5]
    assert scores["M"].tolist() == [1, 2, 3, 4, 5]


def test_thresholds_in_months_and_on_annual_rates(cdnow_features):
    month = 365.25 / 12
    scorer = RFMScorer(
        method="thresholds",
        recency_unit="months",
        thresholds={"R": [1, 3, 6, 12], "F": [1, 2, 4, 8], "M": [10, 50, 100, 500]},
        frequency_col="orders_per_year",
        monetary_col="spend_per_year",
    )
    X = pd.DataFrame(
        {
            "recency_days": [month, month + 0.5, 12 * month + 1],
            "orders_per_year": [0.5, 2.0, 8.0],
            "spend_per_year": [5.0, 50.0, 600.0],
        }
    )
    assert scorer.fit_transform(X)["RFM"].tolist() == ["511", "433", "155"]
    assert scorer.fit_transform(cdnow_features)["F"].between(1, 5).all()


def test_rfm_code_uses_a_separator_from_ten_scores(cdnow_features):
    codes = RFMScorer(n_scores=10).fit_transform(cdnow_features)["RFM"]
    assert codes.str.count("-").eq(2).all()


def test_scores_are_computed_within_each_group(grouped_features):
    scorer = RFMScorer().fit(grouped_features)
    assert list(scorer.groups_) == ["store", "web"]
    assert scorer.edges_.index.names == ["channel", "metric"]
    scores = scorer.transform(grouped_features)
    assert scores.index.equals(grouped_features.index)
    for channel, block in grouped_features.groupby(level="channel"):
        alone = RFMScorer().fit_transform(block.droplevel("channel"))
        np.testing.assert_array_equal(
            scores.xs(channel, level="channel")["RFM"].to_numpy(), alone["RFM"].to_numpy()
        )
        # Web spend is 100x smaller, yet every channel has its own top fifth.
        assert (scores.xs(channel, level="channel")["M"] == 5).sum() == 20


def test_group_errors(grouped_features):
    scorer = RFMScorer().fit(grouped_features)
    other = grouped_features.rename(index={"web": "phone"}, level="channel")
    with pytest.raises(DataError, match=r"100 customers belong to group\(s\) \['phone'\]"):
        scorer.transform(other)
    with pytest.raises(DataError, match="fitted per group but X has no"):
        scorer.transform(grouped_features.droplevel("channel"))


def _with_missing_groups(features: pd.DataFrame, rows: list[int]) -> pd.DataFrame:
    """``features`` with the channel of the given rows set to NaN."""
    channel = features.index.get_level_values("channel").to_numpy(dtype=object).copy()
    channel[rows] = np.nan
    index = pd.MultiIndex.from_arrays(
        [features.index.get_level_values("customer_id"), channel],
        names=["customer_id", "channel"],
    )
    return features.set_axis(index)


def test_missing_group_values_are_refused_in_fit(grouped_features):
    # pd.factorize codes a NaN group -1: those rows used to be left unwritten in
    # transform's np.empty buffer, and garbage such as R=94021413147584 came out.
    bad = _with_missing_groups(grouped_features, [3, 150])
    with pytest.raises(
        DataError,
        match=r"RFMScorer\.fit: 2 of 200 customers have a missing 'channel' "
        r"\(the group level of the index\); drop or fill them first",
    ):
        RFMScorer().fit(bad)


def test_missing_group_values_are_refused_in_transform(grouped_features):
    scorer = RFMScorer().fit(grouped_features)
    bad = _with_missing_groups(grouped_features, [7])
    with pytest.raises(
        DataError,
        match=r"RFMScorer\.transform: 1 of 200 customers have a missing 'channel'.*"
        r"drop or fill them first",
    ):
        scorer.transform(bad)
    unnamed = bad.rename_axis(["customer_id", None])
    with pytest.raises(DataError, match=r"1 of 200 customers have a missing 'group'"):
        scorer.transform(unnamed)
    # Dropping them is enough: the others score exactly as before.
    kept = bad[bad.index.get_level_values("channel").notna()]
    expected = scorer.transform(grouped_features).drop(index=grouped_features.index[7])
    pd.testing.assert_frame_equal(scorer.transform(kept), expected)


def test_thresholds_ignore_the_group_so_missing_groups_still_score(grouped_features):
    cuts = {"R": [30, 90, 180, 365], "F": [2, 3, 5, 10], "M": [20, 50, 100, 500]}
    scorer = RFMScorer(method="thresholds", thresholds=cuts)
    bad = _with_missing_groups(grouped_features, [0, 1])
    scores = scorer.fit(bad).transform(bad)
    plain = scorer.transform(grouped_features.droplevel("channel"))
    np.testing.assert_array_equal(scores["RFM"].to_numpy(), plain["RFM"].to_numpy())


def test_unscored_rows_can_never_leak(tiny_features, monkeypatch):
    scorer = RFMScorer().fit(tiny_features)
    # Simulate a scoring bug that writes nothing valid: an explicit error, not garbage.
    monkeypatch.setattr(
        RFMScorer, "_score", staticmethod(lambda v, e, m: np.zeros(len(v), dtype=np.int64))
    )
    with pytest.raises(
        RuntimeError, match="internal error, 5 of 5 customers were left without a score"
    ):
        scorer.transform(tiny_features)


@pytest.fixture
def with_one_icelander(grouped_features) -> pd.DataFrame:
    """The two channels plus a one-customer group holding an excellent customer."""
    iceland = pd.DataFrame(
        {"recency_days": [2.0], "n_orders": [7], "total_spend": [4310.0]},
        index=pd.MultiIndex.from_tuples([(999, "iceland")], names=["customer_id", "channel"]),
    )
    return pd.concat([grouped_features, iceland])


SMALL_GROUP_WARNING = (
    r"RFMScorer\.fit: 1 of 3 group\(s\) have fewer than min_group_size=20 customers "
    r"\(\['iceland'\]\); their 1 customer\(s\) are scored with the edges learned on all "
    r"201 customers pooled\. See small_groups_\."
)


def test_small_groups_use_the_pooled_edges(with_one_icelander):
    X = with_one_icelander
    with pytest.warns(UserWarning, match=SMALL_GROUP_WARNING) as record:
        scorer = RFMScorer().fit(X)
    assert len(record) == 1
    assert record[0].filename == __file__  # stacklevel=2 points at the caller
    assert list(scorer.groups_) == ["iceland", "store", "web"]
    assert list(scorer.small_groups_) == ["iceland"]
    assert scorer.small_groups_.name == "channel"
    pooled = RFMScorer().fit(X.droplevel("channel"))
    pd.testing.assert_frame_equal(scorer.edges_.loc["iceland"], pooled.edges_, check_names=False)
    scores = scorer.transform(X)
    icelander = scores.loc[(999, "iceland")]
    # Was "111" (Lost): a group of one puts every edge at inf.
    assert icelander["RFM"] == pooled.transform(X.droplevel("channel")).loc[999, "RFM"]
    assert icelander["RFM"] == "555"
    # Large groups keep their own edges.
    alone = RFMScorer(min_group_size=1).fit(X.drop(index="iceland", level="channel"))
    pd.testing.assert_frame_equal(scorer.edges_.drop(index="iceland"), alone.edges_)


def test_min_group_size_boundary_and_opt_out(grouped_features, with_one_icelander):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        at_size = RFMScorer(min_group_size=100).fit(grouped_features)  # 100 each: not small
        assert len(at_size.small_groups_) == 0
        own = RFMScorer(min_group_size=1).fit(with_one_icelander)
        assert len(own.small_groups_) == 0
        assert np.isinf(own.edges_.loc["iceland"].to_numpy()).all()  # the old behaviour
        plain = RFMScorer().fit(grouped_features.droplevel("channel"))
        assert plain.small_groups_ is None
    with pytest.warns(
        UserWarning,
        match=r"2 of 2 group\(s\) have fewer than min_group_size=101 customers "
        r"\(\['store', 'web'\]\); their 200 customer\(s\)",
    ):
        all_small = RFMScorer(min_group_size=101).fit(grouped_features)
    pooled = RFMScorer().fit(grouped_features.droplevel("channel")).edges_.to_numpy()
    for group in ("store", "web"):
        np.testing.assert_array_equal(all_small.edges_.loc[group].to_numpy(), pooled)


def test_small_group_edges_survive_the_json_round_trip(with_one_icelander):
    X = with_one_icelander
    with pytest.warns(UserWarning, match=SMALL_GROUP_WARNING):
        scorer = RFMScorer(min_group_size=20).fit(X)
    back = segmenter_from_dict(json.loads(json.dumps(segmenter_to_dict(scorer))))
    assert back.get_params() == scorer.get_params()
    pd.testing.assert_frame_equal(back.edges_, scorer.edges_)
    pd.testing.assert_frame_equal(back.transform(X), scorer.transform(X))
    assert back.transform(X).loc[(999, "iceland"), "RFM"] == "555"


def test_missing_column_names_the_available_ones(tiny_features):
    with pytest.raises(DataError, match=r"missing column\(s\) \['total_spend'\]; available"):
        RFMScorer().fit(tiny_features.drop(columns="total_spend"))
    with pytest.raises(DataError, match=r"available columns are \['recency_days', 'n_orders'\]"):
        RFMScorer().fit(tiny_features.drop(columns="total_spend"))


def test_nan_negative_and_empty_are_data_errors(tiny_features):
    bad = tiny_features.copy()
    bad.iloc[[0, 2], bad.columns.get_loc("total_spend")] = np.nan
    with pytest.raises(DataError, match=r"'total_spend' has 2 of 5 missing"):
        RFMScorer().fit(bad)
    neg = tiny_features.copy()
    neg["recency_days"] = -neg["recency_days"]
    with pytest.raises(DataError, match=r"'recency_days' has 5 of 5 negative"):
        RFMScorer().fit(neg)
    with pytest.raises(DataError, match=r"empty \(0 customers\)"):
        RFMScorer().fit(tiny_features.iloc[:0])
    scorer = RFMScorer().fit(tiny_features)
    with pytest.raises(DataError, match=r"'total_spend' has 2 of 5 missing"):
        scorer.transform(bad)
    with pytest.raises(TypeError, match="expects a pandas DataFrame"):
        RFMScorer().fit(tiny_features.to_numpy())


@pytest.mark.parametrize(
    ("params", "match"),
    [
        ({"n_scores": 1}, "n_scores must be an integer >= 2"),
        ({"n_scores": 2.5}, "n_scores must be an integer >= 2"),
        ({"method": "kmeans"}, "method must be 'quantile' or 'thresholds'"),
        ({"recency_unit": "years"}, "recency_unit must be one of"),
        ({"min_group_size": 0}, "min_group_size must be an integer >= 1, got 0"),
        ({"min_group_size": 2.5}, "min_group_size must be an integer >= 1, got 2.5"),
        ({"min_group_size": True}, "min_group_size must be an integer >= 1, got True"),
        ({"thresholds": {"R": [1, 2, 3, 4]}}, "thresholds are only used with method="),
        ({"method": "thresholds"}, "method='thresholds' needs thresholds="),
        (
            {"method": "thresholds", "thresholds": {"R": [1, 2, 3, 4], "F": [1, 2, 3, 4]}},
            r"missing \['M'\], unknown \[\]",
        ),
        (
            {"method": "thresholds", "thresholds": {"R": [1, 2, 3], "F": [1], "M": [1]}},
            r"thresholds\['R'\] needs n_scores - 1 = 4 cut points, got 3",
        ),
        (
            {
                "method": "thresholds",
                "thresholds": {"R": [1, 2, 3, 4], "F": [1, 3, 2, 4], "M": [1, 2, 3, 4]},
            },
            r"thresholds\['F'\] must be finite and strictly increasing",
        ),
    ],
)
def test_invalid_parameters_are_config_errors(tiny_features, params, match):
    with pytest.raises(ConfigError, match=match):
        RFMScorer(**params).fit(tiny_features)


def test_linear_score_weights_scores_and_features(tiny_features):
    scores = RFMScorer().fit_transform(tiny_features)
    value = linear_score(scores, {"R": 0.5, "F": 0.3, "M": 0.2})
    assert value.name == "linear_score"
    assert value.index.equals(tiny_features.index)
    np.testing.assert_allclose(value, [5.0, 4.0, 3.0, 2.0, 1.0])
    raw = linear_score(tiny_features, {"total_spend": 1.0, "recency_days": -1.0})
    np.testing.assert_allclose(raw, [397.0, 120.0, -10.0, -160.0, -385.0])


def test_linear_score_standardizes_within_groups(grouped_features):
    z = linear_score(grouped_features, {"total_spend": 1.0}, standardize=True)
    by_channel = z.groupby(level="channel")
    np.testing.assert_allclose(by_channel.mean(), 0.0, atol=1e-12)
    np.testing.assert_allclose(by_channel.std(ddof=0), 1.0)
    const = pd.DataFrame({"a": [2.0, 2.0]})
    assert linear_score(const, {"a": 3.0}, standardize=True).tolist() == [0.0, 0.0]


def test_linear_score_errors(tiny_features):
    with pytest.raises(ConfigError, match="needs at least one weight"):
        linear_score(tiny_features, {})
    with pytest.raises(ConfigError, match="must be finite numbers"):
        linear_score(tiny_features, {"n_orders": float("nan")})
    with pytest.raises(DataError, match=r"missing column\(s\) \['R'\]"):
        linear_score(tiny_features, {"R": 1.0})
    bad = tiny_features.assign(n_orders=[1, None, 3, None, 5])
    with pytest.raises(DataError, match="'n_orders' has 2 of 5 missing"):
        linear_score(bad, {"n_orders": 1.0})


def test_linear_score_refuses_missing_groups(grouped_features):
    channels = grouped_features.index.get_level_values("channel").to_numpy(dtype=object)
    channels[:3] = None
    index = pd.MultiIndex.from_arrays(
        [grouped_features.index.get_level_values(0), channels], names=["customer_id", "channel"]
    )
    frame = grouped_features.set_axis(index)
    with pytest.raises(DataError, match=r"3 of \d+ customers have a missing 'channel'"):
        linear_score(frame, {"n_orders": 1.0}, standardize=True)


def test_columns_name_the_scored_features():
    scorer = RFMScorer(frequency_col="orders_per_year", monetary_col="spend_per_year")
    assert scorer.columns == {
        "R": "recency_days",
        "F": "orders_per_year",
        "M": "spend_per_year",
    }


def test_last_bit_differences_of_a_sum_never_move_a_customer_across_an_edge(cdnow_features):
    """The same spend summed in another order (engine threads) may differ in its last
    bits: a customer whose spend is an edge keeps the score it had in ``fit``."""
    X = cdnow_features
    scorer = RFMScorer().fit(X)
    want = scorer.transform(X)
    noisy = X.copy()
    for col in ("total_spend", "n_orders"):
        v = noisy[col].to_numpy(dtype=float)
        down = np.nextafter(np.nextafter(v, -np.inf), -np.inf)  # 2 ulps down
        noisy[col] = np.where(v > 0, down, v)
    noisy["recency_days"] = np.nextafter(noisy["recency_days"].to_numpy(dtype=float), np.inf)
    got = scorer.transform(noisy)
    pd.testing.assert_frame_equal(got, want)
    # without the slack, values two ulps below their edge would score lower
    edges = scorer.edges_.loc["M"].to_numpy()
    at_edge = np.isin(X["total_spend"].to_numpy(), edges[np.isfinite(edges)])
    assert at_edge.any()
    values = noisy["total_spend"].to_numpy()[at_edge]
    assert (np.searchsorted(edges, values, side="right") < got["M"].to_numpy()[at_edge] - 1).all()


@pytest.mark.parametrize("metric", ["R", "F", "M"])
@pytest.mark.parametrize("n_edges", [1, 4, 9, 16, 17])
def test_counted_edges_score_as_the_binary_search(metric: str, n_edges: int) -> None:
    """Counting the edges a value passes gives the search's score: ties, infinities, zeros."""
    rng = np.random.default_rng(n_edges)
    edges = np.sort(rng.choice(np.r_[rng.normal(0, 50, 40).round(), 0.0, -0.0], n_edges))
    edges[-1:] = np.inf if n_edges > 3 else edges[-1:]
    if metric == "R":
        edges = edges[::-1]  # decreasing day limits
    values = np.r_[rng.normal(0, 60, 5_000).round(), edges, -0.0, np.inf, -np.inf]
    widened = scoring_edges(edges, metric)
    if metric == "R":
        expected = 1 + np.searchsorted(-widened, -values, side="right")
    else:
        expected = 1 + np.searchsorted(widened, values, side="right")
    np.testing.assert_array_equal(RFMScorer._score(values, edges, metric), expected)
    with_nan = np.r_[values, np.nan]  # NaN scores as the search places it (last)
    assert RFMScorer._score(with_nan, edges, metric)[-1] == (
        1 + np.searchsorted(-widened if metric == "R" else widened, np.nan, side="right")
    )


@pytest.mark.parametrize("n_scores", [5, 6, 12])  # int8 codes, int16 codes, labels with "-"
def test_rfm_as_categories_are_the_labels_of_transform(cdnow_features, n_scores):
    scorer = RFMScorer(n_scores=n_scores).fit(cdnow_features)
    text = scorer.transform(cdnow_features)
    labelled = scorer._transform_categories(cdnow_features)
    assert isinstance(labelled["RFM"].dtype, pd.CategoricalDtype)
    assert len(labelled["RFM"].cat.categories) == n_scores**3  # every label, unused ones too
    assert labelled["RFM"].cat.categories.dtype == text["RFM"].dtype
    pd.testing.assert_frame_equal(labelled.astype({"RFM": text["RFM"].dtype}), text)
