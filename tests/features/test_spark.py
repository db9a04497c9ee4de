"""The same feature builders on a real local Spark session (PySpark in, PySpark out)."""

from __future__ import annotations

import os
import sys

import pandas as pd
import pytest

from rfmml.features import btyd_summary, calibration_holdout, rfm_table

pytestmark = pytest.mark.spark


@pytest.fixture(scope="module")
def spark():
    pyspark = pytest.importorskip("pyspark")
    del pyspark
    from pyspark.sql import SparkSession

    os.environ["PYSPARK_PYTHON"] = sys.executable
    os.environ["PYSPARK_DRIVER_PYTHON"] = sys.executable
    session = (
        SparkSession.builder.master("local[2]")
        .appName("rfmml-tests")
        .config("spark.ui.enabled", "false")
        .config("spark.sql.session.timeZone", "UTC")
        .config("spark.sql.shuffle.partitions", "4")
        .getOrCreate()
    )
    yield session
    session.stop()


@pytest.fixture(scope="module")
def spark_tx(spark, cdnow_tx):
    return spark.createDataFrame(cdnow_tx[["customer_id", "timestamp", "amount"]])


def _to_pandas(sdf, keys):
    out = sdf.toPandas().sort_values(keys).set_index(keys)
    return out


def test_btyd_summary_on_spark_equals_pandas(spark_tx, cdnow_tx):
    out = btyd_summary(spark_tx, freq="W")
    assert type(out).__module__.startswith("pyspark")
    got = _to_pandas(out, ["customer_id"])
    want = btyd_summary(cdnow_tx, freq="W")
    pd.testing.assert_frame_equal(got, want, check_exact=False, rtol=1e-12)


def test_rfm_table_on_spark_equals_pandas(spark_tx, cdnow_tx):
    got = _to_pandas(rfm_table(spark_tx), ["customer_id"])
    want = rfm_table(cdnow_tx)
    cols = ["recency_days", "n_orders", "total_spend", "tenure_days", "orders_per_year"]
    pd.testing.assert_frame_equal(
        got[cols], want[cols], check_exact=False, rtol=1e-12, check_dtype=False
    )


def test_calibration_holdout_on_spark_equals_pandas(spark_tx, cdnow_tx):
    out = calibration_holdout(spark_tx, "1997-09-30", "1998-06-30", freq="W")
    got = _to_pandas(out, ["customer_id"])
    want = calibration_holdout(cdnow_tx, "1997-09-30", "1998-06-30", freq="W")
    pd.testing.assert_frame_equal(got[want.columns], want, check_exact=False, rtol=1e-12)
