"""Several Spark results from one pass: the same values and errors as one pass each."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from rfmml.errors import DataError
from rfmml.evaluation._spark import spark_auc, spark_aucs
from rfmml.features import btyd_summary
from rfmml.features._spark import with_attrs
from rfmml.models import BetaGeoNBD, GammaGamma, ModifiedBetaGeoNBD
from rfmml.models._spark import fit_spark_summary
from rfmml.segments._spark import spark_quantile_edges_of
from rfmml.segments.scoring import _quantile_edges

pytestmark = pytest.mark.spark


@pytest.fixture(scope="module")
def pandas_summary(cdnow_tx):
    """The weekly summary of the first 1,500 CDNOW customers."""
    return btyd_summary(cdnow_tx[cdnow_tx["customer_id"] <= 1500], freq="W")


@pytest.fixture(scope="module")
def small_summary(spark, pandas_summary):
    """:func:`pandas_summary` as a Spark frame."""
    frame = spark.createDataFrame(pandas_summary.reset_index())
    return with_attrs(frame, **pandas_summary.attrs).cache()


def test_fit_spark_summary_equals_each_fit(small_summary, pandas_summary):
    models = [GammaGamma(zero_spend="exclude"), BetaGeoNBD(), ModifiedBetaGeoNBD()]
    assert fit_spark_summary(models, small_summary) == models
    for model in models:  # the pandas fits of the same values (oracle)
        want = type(model)(**model.get_params()).fit(pandas_summary)
        np.testing.assert_allclose(model.params_, want.params_, rtol=1e-12)
        assert model.training_fingerprint_ == want.training_fingerprint_
        assert model.n_customers_ == want.n_customers_
        assert model.freq_ == want.freq_ == "W"
    assert models[0].fit_path_ == "collected" and models[1].n_customers_ == 1500
    alone = BetaGeoNBD().fit(small_summary)  # and the fit of the Spark frame, bit for bit
    np.testing.assert_array_equal(models[1].params_.to_numpy(), alone.params_.to_numpy())
    assert models[1].log_likelihood_ == alone.log_likelihood_


def test_fit_spark_summary_raises_the_first_fit_error(spark, small_summary):
    from pyspark.sql import functions as F

    bad = small_summary.withColumn(  # customer 7 spends less than nothing, 9 ends after T
        "monetary_value",
        F.when(F.col("customer_id") == 7, -1.0).otherwise(F.col("monetary_value")),
    ).withColumn("recency", F.when(F.col("customer_id") == 9, F.col("T") + 1.0)
                 .otherwise(F.col("recency")))  # fmt: skip
    for models in ([GammaGamma(), BetaGeoNBD()], [BetaGeoNBD(), GammaGamma()]):
        with pytest.raises(DataError) as alone:
            type(models[0])().fit(bad)
        with pytest.raises(DataError) as together:
            fit_spark_summary(models, bad)
        assert str(together.value) == str(alone.value)
    missing = small_summary.drop("T")
    with pytest.raises(DataError, match="T") as together:
        fit_spark_summary([GammaGamma(), BetaGeoNBD()], missing)
    with pytest.raises(DataError) as alone:
        BetaGeoNBD().fit(missing)
    assert str(together.value) == str(alone.value)


def test_spark_aucs_equal_each_auc(spark):
    rng = np.random.default_rng(3)
    y = rng.random(400) < 0.3
    frame = pd.DataFrame(
        {"y": y, "a": np.round(rng.random(400), 1), "b": y + rng.normal(0, 1, 400),
         "c": np.zeros(400)}
    )  # fmt: skip
    sdf = spark.createDataFrame(frame)
    got = spark_aucs(sdf, "y", ["a", "b", "c"])
    assert list(got) == ["a", "b", "c"]
    for score, value in got.items():
        assert value == spark_auc(sdf, "y", score)
    one_class = spark.createDataFrame(frame.assign(y=False))
    assert all(np.isnan(v) for v in spark_aucs(one_class, "y", ["a", "b"]).values())


def test_spark_quantile_edges_of_equal_pandas(spark):
    rng = np.random.default_rng(5)
    frame = pd.DataFrame({"r": rng.integers(0, 30, 500).astype(float),
                          "f": rng.integers(1, 4, 500).astype(float),
                          "m": rng.gamma(2.0, 10.0, 500)})  # fmt: skip
    sdf = spark.createDataFrame(frame)
    orient = [("r", True), ("f", False), ("m", False), ("r", False)]
    got = spark_quantile_edges_of(sdf, orient, 5, 500)
    for (column, negate), edges in zip(orient, got, strict=True):
        values = frame[column].to_numpy()
        np.testing.assert_array_equal(edges, _quantile_edges(-values if negate else values, 5))
    assert np.isinf(got[1]).any()  # few distinct frequencies: unreachable scores
