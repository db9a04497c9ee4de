"""The same feature builders on a real local Spark session (PySpark in, PySpark out).

Results are compared inside Spark (``spark_compare``): the session's
``spark.driver.maxResultSize`` is too small to collect a per-customer table.
"""

from __future__ import annotations

import pytest

from rfmml.features import btyd_summary, calibration_holdout, rfm_table
from rfmml.features._spark import frame_attrs

pytestmark = pytest.mark.spark


def test_btyd_summary_on_spark_equals_pandas(spark_tx, cdnow_tx, spark_compare):
    out = btyd_summary(spark_tx, freq="W")
    assert type(out).__module__.startswith("pyspark")
    want = btyd_summary(cdnow_tx, freq="W")
    spark_compare(out, want, rtol=1e-12)
    assert frame_attrs(out) == want.attrs


def test_rfm_table_on_spark_equals_pandas(spark_tx, cdnow_tx, spark_compare):
    cols = ["recency_days", "n_orders", "total_spend", "tenure_days", "orders_per_year"]
    got = rfm_table(spark_tx).select("customer_id", *cols)
    spark_compare(got, rfm_table(cdnow_tx)[cols], rtol=1e-12)


def test_calibration_holdout_on_spark_equals_pandas(spark_tx, cdnow_tx, spark_compare):
    out = calibration_holdout(spark_tx, "1997-09-30", "1998-06-30", freq="W")
    want = calibration_holdout(cdnow_tx, "1997-09-30", "1998-06-30", freq="W")
    spark_compare(out.select("customer_id", *want.columns), want, rtol=1e-12)
    assert frame_attrs(out) == want.attrs
