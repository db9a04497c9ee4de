from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.base import clone
from sklearn.cluster import KMeans
from sklearn.exceptions import NotFittedError
from sklearn.metrics import adjusted_rand_score, silhouette_score

from rfmml.errors import ConfigError, DataError
from rfmml.segments import KMeansSegmenter, RFMScorer, load_scheme, silhouette_curve


@pytest.fixture(scope="module")
def fitted(_cdnow_features):
    return KMeansSegmenter(n_clusters=4, random_state=0, sample_size=3000).fit(_cdnow_features)


def test_clusters_are_ordered_by_mean_spend(fitted, cdnow_features):
    assert fitted.n_clusters_ == 4
    means = cdnow_features["total_spend"].groupby(fitted.labels_).mean()
    assert list(means.index) == [0, 1, 2, 3]
    assert means.is_monotonic_decreasing
    assert fitted.cluster_centers_.index.name == "cluster"
    assert list(fitted.cluster_centers_.columns) == ["recency_days", "n_orders", "total_spend"]


def test_refit_with_the_same_seed_gives_the_same_clusters(fitted, cdnow_features):
    again = KMeansSegmenter(n_clusters=4, random_state=0, sample_size=3000).fit(cdnow_features)
    np.testing.assert_array_equal(again.labels_, fitted.labels_)
    assert again.cluster_names_ == fitted.cluster_names_
    pd.testing.assert_frame_equal(again.cluster_centers_, fitted.cluster_centers_)


def test_predict_cluster_places_customers_with_the_relabelled_pipeline(fitted, cdnow_features):
    ids = fitted.predict_cluster(cdnow_features)
    assert ids.name == "cluster"
    assert ids.index.equals(cdnow_features.index)
    np.testing.assert_array_equal(ids.to_numpy(), fitted.labels_)
    cols = ["recency_days", "n_orders", "total_spend"]
    np.testing.assert_array_equal(
        fitted.pipeline_.predict(cdnow_features[cols].to_numpy()), fitted.labels_
    )
    new = pd.DataFrame(
        {"recency_days": [1.0, 540.0], "n_orders": [40, 1], "total_spend": [4000.0, 5.0]},
        index=pd.Index(["vip", "lapsed"], name="customer_id"),
    )
    placed = fitted.predict_cluster(new)
    assert placed["vip"] == 0
    assert placed["lapsed"] == fitted.n_clusters_ - 1
    names = fitted.predict(new)
    assert names.name == "segment"
    assert names.tolist() == [fitted.cluster_names_[0], fitted.cluster_names_[-1]]
    assert list(names.cat.categories) == fitted.cluster_names_


def test_predict_means_segments_as_for_rules(fitted, cdnow_features):
    # One meaning of predict: segment labels, like RuleSegmenter; ids stay in labels_.
    names = fitted.predict(cdnow_features)
    rules = fitted.rule_segmenter_.predict(cdnow_features)
    assert names.name == rules.name == "segment"
    assert isinstance(names.dtype, pd.CategoricalDtype)
    expected = np.asarray(fitted.cluster_names_, dtype=object)[fitted.labels_]
    np.testing.assert_array_equal(names.astype(str).to_numpy(), expected)
    refit = clone(fitted).fit_predict(cdnow_features)
    assert refit.astype(str).equals(names.astype(str))


def test_cluster_names_are_the_rule_segment_of_the_centroid(fitted, cdnow_features):
    scorer = RFMScorer().fit(cdnow_features)
    scores = scorer.transform(fitted.cluster_centers_)
    expected = load_scheme("rfm11").label(scores).astype(str).tolist()
    assert [n.split(" (")[0] for n in fitted.cluster_names_] == expected
    assert fitted.cluster_names_[0] == "Champions"


def test_duplicate_names_get_a_counter(cdnow_features):
    km = KMeansSegmenter(n_clusters=8, random_state=0, sample_size=3000).fit(cdnow_features)
    names = km.cluster_names_
    assert len(set(names)) == len(names) == 8
    shared = [n for n in names if n.startswith("Champions (")]
    assert shared == [f"Champions (value tier {i} of 4)" for i in (1, 2, 3, 4)]
    assert "Champions" not in names  # no cluster passes for the "real" one


def test_agreement_with_rule_segments(fitted, cdnow_features):
    rules = fitted.rule_segmenter_.predict(cdnow_features)
    table = fitted.rule_agreement_
    assert table.to_numpy().sum() == len(cdnow_features)
    assert list(table.index) == fitted.cluster_names_
    assert (
        table.loc["Champions", "Champions"]
        == ((fitted.labels_ == 0) & (rules == "Champions")).sum()
    )
    assert fitted.adjusted_rand_score_ == pytest.approx(
        adjusted_rand_score(rules.astype(str), fitted.labels_), abs=1e-12
    )
    assert 0.0 < fitted.adjusted_rand_score_ < 1.0


def test_auto_chooses_the_best_silhouette(cdnow_features):
    km = KMeansSegmenter(n_clusters="auto", k_range=(2, 5), sample_size=2000, random_state=1)
    km.fit(cdnow_features)
    curve = km.silhouette_curve_
    assert list(curve.index) == [2, 3, 4, 5]
    assert curve.between(-1, 1).all()
    assert km.n_clusters_ == curve.idxmax()
    assert len(km.cluster_names_) == km.n_clusters_


def test_fixed_k_keeps_a_one_point_curve(fitted):
    assert list(fitted.silhouette_curve_.index) == [4]
    assert -1 < fitted.silhouette_curve_[4] < 1


def test_silhouette_curve_matches_scikit_learn():
    rng = np.random.default_rng(42)
    X = rng.normal(size=(600, 3))
    labelings = {k: KMeans(k, n_init=1, random_state=0).fit(X).labels_ for k in (2, 3, 6)}
    labelings[1] = np.zeros(600, dtype=int)  # one cluster: undefined silhouette
    curve = silhouette_curve(X, labelings, chunk_size=128)
    for k in (2, 3, 6):
        # Same formula, different summation order: agreement to rounding error.
        assert curve[k] == pytest.approx(silhouette_score(X, labelings[k]), abs=1e-12)
    assert np.isnan(curve[1])


@pytest.mark.parametrize("kernel_rows", [0, 10**9], ids=["compiled", "numpy"])
def test_both_silhouette_paths_match_scikit_learn(monkeypatch, kernel_rows):
    from rfmml.segments import kmeans

    monkeypatch.setattr(kmeans, "SILHOUETTE_KERNEL_MIN_ROWS", kernel_rows)
    rng = np.random.default_rng(7)
    X = np.exp(rng.normal(size=(700, 3)))  # skewed, as RFM features before the log
    X[:5] = X[5]  # duplicate points: distance 0
    labelings = {k: KMeans(k, n_init=1, random_state=0).fit(X).labels_ for k in (2, 5)}
    labelings[7] = np.r_[np.arange(7), np.zeros(693, dtype=int)]  # six singletons
    curve = silhouette_curve(X, labelings, chunk_size=100)
    for k, labels in labelings.items():
        assert curve[k] == pytest.approx(silhouette_score(X, labels), abs=1e-12)


def test_pooled_clustering_with_groups(grouped_features):
    km = KMeansSegmenter(n_clusters=3, random_state=0).fit(grouped_features)
    pooled = KMeansSegmenter(n_clusters=3, random_state=0).fit(
        grouped_features.reset_index(drop=True)
    )
    np.testing.assert_array_equal(km.labels_, pooled.labels_)
    assert km.predict(grouped_features).index.equals(grouped_features.index)


def test_not_fitted(cdnow_features):
    with pytest.raises(NotFittedError):
        KMeansSegmenter().predict(cdnow_features)


@pytest.mark.parametrize(
    ("params", "match"),
    [
        ({"n_clusters": 1}, "n_clusters must be an integer >= 2 or 'auto'"),
        ({"n_clusters": "best"}, "n_clusters must be an integer >= 2 or 'auto'"),
        ({"k_range": (5, 3)}, r"k_range must be \(low, high\) integers"),
        ({"log_features": ("tenure_days",)}, r"log_features \['tenure_days'\] are not in features"),
        ({"sample_size": 5}, "sample_size must be an integer >= 10"),
        ({"n_init": 0}, "n_init must be an integer >= 1"),
    ],
)
def test_invalid_parameters(tiny_features, params, match):
    with pytest.raises(ConfigError, match=match):
        KMeansSegmenter(**params).fit(tiny_features)


def test_bad_frames(tiny_features):
    with pytest.raises(DataError, match=r"missing column\(s\) \['n_orders'\]; available"):
        KMeansSegmenter(n_clusters=2).fit(tiny_features.drop(columns="n_orders"))
    nan = tiny_features.assign(total_spend=[1.0, np.nan, 3.0, 4.0, 5.0])
    with pytest.raises(DataError, match="'total_spend' has 1 of 5 missing"):
        KMeansSegmenter(n_clusters=2).fit(nan)
    neg = tiny_features.assign(total_spend=[-1.0, -2.0, 3.0, 4.0, 5.0])
    with pytest.raises(DataError, match="'total_spend' has 2 of 5 negative"):
        KMeansSegmenter(n_clusters=2).fit(neg)
    with pytest.raises(DataError, match=r"empty \(0 customers\)"):
        KMeansSegmenter(n_clusters=2).fit(tiny_features.iloc[:0])
    with pytest.raises(DataError, match="5 customers for 6 clusters; need n >= k"):
        KMeansSegmenter(n_clusters=6).fit(tiny_features)
    same = pd.DataFrame(
        {"recency_days": [1.0] * 20, "n_orders": [1] * 20, "total_spend": [9.0] * 20}
    )
    with pytest.raises(
        DataError,
        match=r"the sample holds 1 distinct customers of 20, too few for k_range \(2, 10\)",
    ):
        KMeansSegmenter(n_clusters="auto", random_state=0).fit(same)


def test_int_k_above_the_distinct_customers_is_a_data_error():
    # 40 customers, only 3 distinct rows: k=4 used to fail deep in pandas with
    # "Length of values (4) does not match length of index (3)".
    rows = [(5.0, 10, 900.0), (60.0, 3, 120.0), (300.0, 1, 15.0)]
    X = pd.DataFrame(
        [rows[i % 3] for i in range(40)], columns=["recency_days", "n_orders", "total_spend"]
    )
    with pytest.raises(
        DataError,
        match=r"KMeansSegmenter\.fit: the 40 customers hold only 3 distinct rows of "
        r"\['recency_days', 'n_orders', 'total_spend'\], too few for n_clusters=4; ask for "
        r"at most 3 clusters or use n_clusters='auto'",
    ):
        KMeansSegmenter(n_clusters=4, random_state=0).fit(X)
    km = KMeansSegmenter(n_clusters=3, random_state=0).fit(X)
    assert km.n_clusters_ == 3 and len(km.cluster_names_) == 3
    assert km.predict(X).nunique() == 3
