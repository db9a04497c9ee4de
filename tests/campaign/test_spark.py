"""The whole batch path on Spark equals the pandas path, with nothing per-customer collected.

The session fixture caps ``spark.driver.maxResultSize`` (tests/conftest.py), so
a test here fails if the Spark path collects the log or a per-customer table;
:func:`test_the_result_limit_refuses_a_collect` proves the cap bites.
"""

from __future__ import annotations

import numpy as np
import pytest

from rfmml.campaign import score_customers
from rfmml.features import btyd_summary, rfm_table
from rfmml.models import BetaGeoNBD, GammaGamma
from rfmml.segments import RuleSegmenter

pytestmark = pytest.mark.spark

_SCORING = dict(horizon=52, freq="W", next_order_window=8)


def _fit_and_score(features, summary):
    """The same batch path on either engine: rules, both models, the campaign table."""
    rules = RuleSegmenter("rfm11").fit(features)
    bg = BetaGeoNBD().fit(summary)
    gg = GammaGamma(zero_spend="exclude").fit(summary)
    table = score_customers(
        features, summary, rule_segmenter=rules, purchase_model=bg, gamma_gamma=gg, **_SCORING
    )
    return rules, bg, gg, table


@pytest.fixture(scope="module")
def pandas_path(cdnow_tx):
    return _fit_and_score(rfm_table(cdnow_tx), btyd_summary(cdnow_tx, freq="W"))


@pytest.fixture(scope="module")
def spark_path(spark_tx):
    return _fit_and_score(rfm_table(spark_tx).cache(), btyd_summary(spark_tx, freq="W").cache())


def test_spark_path_equals_pandas_path(pandas_path, spark_path, spark_compare):
    rules, bg, gg, want = pandas_path
    s_rules, s_bg, s_gg, got = spark_path
    assert type(got).__module__.startswith("pyspark")
    pd_edges, sp_edges = rules.scorer_.edges_, s_rules.scorer_.edges_
    assert sp_edges.equals(pd_edges)  # exact edges
    np.testing.assert_allclose(s_bg.params_.to_numpy(), bg.params_.to_numpy(), rtol=1e-9)
    assert s_bg.training_fingerprint_ == bg.training_fingerprint_
    # Gamma-Gamma: mean spends differ in the last bit between engines (see tests/models)
    np.testing.assert_allclose(s_gg.params_.to_numpy(), gg.params_.to_numpy(), rtol=1e-6)
    assert got.columns == ["customer_id", *want.columns.drop("customer_id")]
    # every column, every segment: with the Spark-fitted models...
    spark_compare(got, want, rtol=1e-6)


def test_spark_scoring_with_pandas_models_is_exact(pandas_path, spark_tx, spark_compare):
    # ... and to 1e-12 with the pandas-fitted models scoring the Spark frames
    rules, bg, gg, want = pandas_path
    features = rfm_table(spark_tx)
    summary = btyd_summary(spark_tx, freq="W")
    got = score_customers(
        features, summary, rule_segmenter=rules, purchase_model=bg, gamma_gamma=gg, **_SCORING
    )
    spark_compare(got, want, rtol=1e-12)


def test_the_result_limit_refuses_a_collect(spark_tx, spark_path):
    from py4j.protocol import Py4JJavaError

    table = spark_path[3]
    with pytest.raises(Py4JJavaError, match="maxResultSize"):
        table.toPandas()
    with pytest.raises(Py4JJavaError, match="maxResultSize"):
        spark_tx.toPandas()
