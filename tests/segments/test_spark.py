"""RFM scores and rule segments of a Spark frame: edges learned in Spark, equal to pandas."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from rfmml.errors import DataError
from rfmml.features import rfm_table
from rfmml.segments import RFMScorer, RuleSegmenter

pytestmark = pytest.mark.spark

_COLS = ["recency_days", "n_orders", "total_spend"]


@pytest.fixture(scope="module")
def features(cdnow_tx):
    return rfm_table(cdnow_tx)


@pytest.fixture(scope="module")
def spark_features(spark_tx):
    return rfm_table(spark_tx)


@pytest.mark.parametrize("n_scores", [5, 7])
def test_quantile_edges_on_spark_equal_pandas(features, spark_features, n_scores):
    want = RFMScorer(n_scores=n_scores).fit(features)
    got = RFMScorer(n_scores=n_scores).fit(spark_features)
    # exactly the same edges, ties and unreachable scores (inf) included
    pd.testing.assert_frame_equal(got.edges_, want.edges_, check_exact=True)
    # the order counts are heavily tied: several scores share an edge (skipped scores)
    assert want.edges_.loc["F"].duplicated().any()


def test_rule_segments_on_spark_equal_pandas(features, spark_features, spark_compare):
    for scheme in ("rf_grid", "rfm11"):
        seg = RuleSegmenter(scheme).fit(spark_features)
        out = seg.transform(spark_features)
        assert type(out).__module__.startswith("pyspark")
        want = RuleSegmenter(scheme).fit(features).transform(features)
        spark_compare(out, want)
        pred = seg.predict(spark_features)
        assert pred.columns == ["customer_id", "segment"]


def test_thresholds_on_spark(features, spark_features, spark_compare):
    cuts = {"R": [30, 90, 180, 365], "F": [2, 3, 5, 8], "M": [20, 50, 100, 250]}
    scorer = RFMScorer(method="thresholds", thresholds=cuts)
    spark_compare(
        scorer.fit(spark_features).transform(spark_features),
        scorer.fit(features).transform(features),
    )


def test_spark_scores_refuse_bad_features(spark, spark_features):
    from pyspark.sql import functions as F

    with pytest.raises(DataError, match=r"missing column\(s\) \['total_spend'\]"):
        RFMScorer().fit(spark_features.drop("total_spend"))
    nulls = spark_features.withColumn(
        "n_orders", F.when(F.col("customer_id") <= 3, None).otherwise(F.col("n_orders"))
    )
    with pytest.raises(DataError, match=r"column 'n_orders' has 3 of 23570 missing"):
        RFMScorer().fit(nulls)
    negative = spark_features.withColumn("total_spend", F.col("total_spend") - 1000.0)
    with pytest.raises(DataError, match=r"column 'total_spend' has \d+ of 23570 negative"):
        RFMScorer().fit(negative)
    with pytest.raises(DataError, match="empty"):
        RFMScorer().fit(spark_features.limit(0))


def test_kmeans_on_spark(features, spark_features, spark_compare):
    from rfmml.segments import KMeansSegmenter
    from rfmml.segments._spark import spark_sample

    # assignment in Spark equals the pandas assignment, every customer
    fitted = KMeansSegmenter(n_clusters=4, random_state=0).fit(features)
    got = fitted.predict_cluster(spark_features)
    assert got.columns == ["customer_id", "cluster"]
    spark_compare(got, fitted.predict_cluster(features).to_frame())
    spark_compare(fitted.predict(spark_features), fitted.predict(features).to_frame())
    # a Spark fit is the pandas fit of its bounded, seeded sample
    on_spark = KMeansSegmenter(n_clusters=4, random_state=0, sample_size=2000).fit(spark_features)
    assert len(on_spark.labels_) == 2000
    columns = ["recency_days", "n_orders", "total_spend"]
    seed = np.random.RandomState(0).randint(2**31 - 1)
    sample = spark_sample(spark_features, columns, 2000, int(seed))
    on_sample = KMeansSegmenter(n_clusters=4, random_state=0, sample_size=2000).fit(sample)
    pd.testing.assert_frame_equal(on_spark.cluster_centers_, on_sample.cluster_centers_)
    assert on_spark.cluster_names_ == on_sample.cluster_names_
