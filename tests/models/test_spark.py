"""Model fits on a Spark summary (distinct rows collected) and predictions inside Spark."""

from __future__ import annotations

import numpy as np
import pytest

from rfmml.errors import DataError
from rfmml.features import btyd_summary
from rfmml.features._spark import with_attrs
from rfmml.models import (
    BetaGeoBetaBinom,
    BetaGeoNBD,
    GammaGamma,
    ModifiedBetaGeoNBD,
    ParetoNBD,
)

pytestmark = pytest.mark.spark


@pytest.fixture(scope="module")
def summary(cdnow_tx):
    return btyd_summary(cdnow_tx, freq="W")


@pytest.fixture(scope="module")
def spark_summary(spark_tx):
    return btyd_summary(spark_tx, freq="W").cache()


def _same_fit(got, want, rtol=1e-9):
    np.testing.assert_allclose(got.params_.to_numpy(), want.params_.to_numpy(), rtol=rtol)
    assert got.n_customers_ == want.n_customers_
    assert got.freq_ == want.freq_ == "W"
    np.testing.assert_allclose(got.log_likelihood_, want.log_likelihood_, rtol=1e-12)


@pytest.mark.parametrize("model", [BetaGeoNBD, ModifiedBetaGeoNBD, ParetoNBD, BetaGeoBetaBinom])
def test_fit_on_spark_summary_equals_pandas(model, summary, spark_summary):
    want = model().fit(summary)
    got = model().fit(spark_summary)
    _same_fit(got, want)
    # the same distinct rows and counts reached the likelihood
    assert got.n_unique_rows_ == want.n_unique_rows_
    assert got.training_fingerprint_ == want.training_fingerprint_


def test_gamma_gamma_fit_on_spark_summary(spark, summary, spark_summary):
    # from the same summary values: the same fit to 1e-9
    uploaded = with_attrs(spark.createDataFrame(summary.reset_index()), **summary.attrs)
    want = GammaGamma(zero_spend="exclude").fit(summary)
    got = GammaGamma(zero_spend="exclude").fit(uploaded)
    _same_fit(got, want)
    assert got.training_fingerprint_ == want.training_fingerprint_
    assert got.n_excluded_ == want.n_excluded_ == 1
    np.testing.assert_allclose(got.correlation_, want.correlation_, rtol=1e-12)
    # from the log: Spark and DuckDB sum the amounts exactly, so the mean spends are the
    # same bits and so is the fit (it used to agree only to ~2e-7: the Gamma-Gamma
    # optimum is flat at the level of a last-bit difference in the spends)
    from_log = GammaGamma(zero_spend="exclude").fit(spark_summary)
    _same_fit(from_log, want, rtol=1e-9)
    assert from_log.training_fingerprint_ == want.training_fingerprint_


def test_predictions_on_spark_equal_pandas(summary, spark_summary, spark_compare):
    bg = BetaGeoNBD().fit(summary)
    gg = GammaGamma(zero_spend="exclude").fit(summary)
    cases = [
        ("probability_alive", {}),
        ("expected_purchases", {"t": 52}),
        ("probability_no_purchase", {"t": 26}),
        ("probability_purchase_within", {"t": 8.0}),
        ("next_purchase_quantile", {"q": 0.5}),
    ]
    for method, kwargs in cases:
        got = getattr(bg, method)(spark_summary, **kwargs)
        assert got.columns == ["customer_id", method]
        want = getattr(bg, method)(summary, **kwargs).to_frame()
        spark_compare(got, want, rtol=1e-12)
    got = gg.expected_order_value(spark_summary)
    spark_compare(got, gg.expected_order_value(summary).to_frame(), rtol=1e-12)


def test_spark_summary_bad_input_same_errors(summary, spark_summary, spark_tx, cdnow_tx):
    from pyspark.sql import functions as F

    def message(call):
        with pytest.raises(DataError) as info:
            call()
        return str(info.value)

    bad = spark_summary.withColumn(
        "recency", F.when(F.col("customer_id") == 7, F.col("T") + 1).otherwise(F.col("recency"))
    )
    pandas_bad = summary.copy()
    pandas_bad.loc[7, "recency"] = pandas_bad.loc[7, "T"] + 1
    assert message(lambda: BetaGeoNBD().fit(bad)) == message(lambda: BetaGeoNBD().fit(pandas_bad))
    assert "of 23570 customers" in message(lambda: BetaGeoNBD().fit(bad))
    # Gamma-Gamma counts customers, not the distinct rows the Spark fit collects
    assert message(lambda: GammaGamma().fit(spark_summary)) == message(
        lambda: GammaGamma().fit(summary)
    )
    missing = spark_summary.drop("T")
    assert message(lambda: BetaGeoNBD().fit(missing)).startswith(
        "BetaGeoNBD.fit needs columns ['frequency', 'recency', 'T'], but ['T'] are missing"
    )
    # a model fitted on weeks refuses a daily summary, as on pandas
    pareto = ParetoNBD().fit(summary)
    daily = btyd_summary(spark_tx, freq="D")
    got = message(lambda: pareto.probability_alive(daily))
    assert got == message(lambda: pareto.probability_alive(btyd_summary(cdnow_tx, freq="D")))
    assert got.startswith("T must be in the time unit the ")
    assert "23570 of 23570 customers" in got


def test_gamma_gamma_distributed_fit_equals_pandas(spark, summary, spark_summary):
    # a bound below the distinct rows: the likelihood is evaluated inside Spark
    want = GammaGamma(zero_spend="exclude").fit(summary)
    got = GammaGamma(zero_spend="exclude").fit(spark_summary, collect_rows=10)
    assert got.fit_path_ == "distributed"
    np.testing.assert_allclose(got.params_.to_numpy(), want.params_.to_numpy(), rtol=1e-9)
    np.testing.assert_allclose(got.log_likelihood_, want.log_likelihood_, rtol=1e-10)
    for column in ("estimate", "std_error", "lower_95", "upper_95"):
        np.testing.assert_allclose(got.summary_[column], want.summary_[column], rtol=1e-6)
    assert got.n_customers_ == want.n_customers_
    assert got.n_unique_rows_ == want.n_unique_rows_
    assert got.n_excluded_ == want.n_excluded_ == 1
    assert got.freq_ == want.freq_ == "W"
    np.testing.assert_allclose(got.correlation_, want.correlation_, rtol=1e-9)
    assert got.training_fingerprint_.startswith("spark-xxhash64:")
    assert got.convergence_["success"]
    # every distinct row fits in the warm-start subsample: Spark only checks its optimum
    assert got.convergence_["warm_start_from_subsample"]


def test_gamma_gamma_spark_default_bound_collects(spark_summary):
    got = GammaGamma(zero_spend="exclude").fit(spark_summary)
    assert got.fit_path_ == "collected"
    with pytest.raises(ValueError, match="collect_rows"):
        GammaGamma().fit(spark_summary, collect_rows=-1)


def test_gamma_gamma_distributed_fit_same_errors(summary, spark_summary):
    from pyspark.sql import functions as F

    def message(call):
        with pytest.raises(DataError) as info:
            call()
        return str(info.value)

    # a repeat customer with zero spend: the same error on both paths
    assert message(lambda: GammaGamma().fit(spark_summary, collect_rows=0)) == message(
        lambda: GammaGamma().fit(summary)
    )
    # no repeat customers
    one_time = spark_summary.withColumn("frequency", F.lit(0.0))
    pandas_one_time = summary.assign(frequency=0.0)
    assert message(lambda: GammaGamma().fit(one_time, collect_rows=0)) == message(
        lambda: GammaGamma().fit(pandas_one_time)
    )
    # every repeat customer with zero spend, excluded
    no_spend = spark_summary.withColumn("monetary_value", F.lit(0.0))
    assert message(
        lambda: GammaGamma(zero_spend="exclude").fit(no_spend, collect_rows=0)
    ) == message(lambda: GammaGamma(zero_spend="exclude").fit(summary.assign(monetary_value=0.0)))


def test_gamma_gamma_distributed_fit_from_a_hashed_subsample(monkeypatch, summary, spark_summary):
    # more distinct rows than the warm-start subsample: the starting points are tried on
    # the rows of one hash bucket, and the Spark evaluations refine that optimum
    from rfmml.models import _fitting

    monkeypatch.setattr(_fitting, "SUBSAMPLE_ROWS", 200)
    want = GammaGamma(zero_spend="exclude").fit(summary)
    got = GammaGamma(zero_spend="exclude").fit(spark_summary, collect_rows=10)
    assert got.fit_path_ == "distributed"
    assert got.convergence_["warm_start_from_subsample"]
    np.testing.assert_allclose(got.params_.to_numpy(), want.params_.to_numpy(), rtol=1e-9)
    np.testing.assert_allclose(got.log_likelihood_, want.log_likelihood_, rtol=1e-10)
