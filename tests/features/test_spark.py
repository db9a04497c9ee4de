"""The same feature builders on a real local Spark session (PySpark in, PySpark out).

Results are compared by ``spark_compare``: Spark writes them to Parquet and pandas
reads them back, as the session's ``spark.driver.maxResultSize`` is too small to
collect a per-customer table.
"""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import pandas as pd
import pytest

from rfmml.errors import DataError
from rfmml.features import btyd_summary, calibration_holdout, customer_features, rfm_table
from rfmml.features._spark import frame_attrs

pytestmark = pytest.mark.spark


def test_btyd_summary_on_spark_equals_pandas(spark_tx, cdnow_tx, spark_compare):
    out = btyd_summary(spark_tx, freq="W")
    assert type(out).__module__.startswith("pyspark")
    want = btyd_summary(cdnow_tx, freq="W")
    spark_compare(out, want, rtol=0.0)  # bit for bit, spends included
    assert frame_attrs(out) == want.attrs


def _awkward_log() -> pd.DataFrame:
    """Amounts whose float sums depend on the order: cents, 1/3, 9 decimals, returns, millions."""
    rng = np.random.default_rng(11)
    n = 6000
    amount = np.round(rng.lognormal(3.0, 2.0, n), 2)
    amount[::7] = 0.1
    amount[1::7] = 1 / 3
    amount[2::11] = 0.123456789
    amount[3::13] = -np.round(amount[3::13] / 3, 2)  # returns
    customer = rng.integers(0, 400, n)
    amount[customer == 5] = 3_000_000.07  # a total past 2**53 units of 1e-9
    seconds = rng.integers(0, 400 * 86_400, n)
    return pd.DataFrame({
        "customer_id": customer,
        "timestamp": pd.Timestamp("2023-01-01") + pd.to_timedelta(seconds, unit="s"),
        "amount": amount,
    })  # fmt: skip


def _exact_oracle(tx: pd.DataFrame) -> pd.Series:
    """Each customer's spend: amounts in units of 1e-9 added as Python integers, rounded once."""
    whole = np.floor(tx["amount"].to_numpy())
    units = np.floor((tx["amount"].to_numpy() - whole) * 1e9 + 0.5)
    total = [int(w) * 10**9 + int(u) for w, u in zip(whole, units, strict=True)]
    sums = pd.Series(total, index=tx["customer_id"].to_numpy(), dtype=object).groupby(level=0)
    return sums.sum().map(lambda s: float(Fraction(int(s), 10**9)))


def test_spend_sums_are_exact_and_equal_duckdb_bit_for_bit(spark, spark_compare):
    tx = _awkward_log()
    sdf = spark.createDataFrame(tx.sample(frac=1.0, random_state=3)).repartition(7)
    features, _ = customer_features(tx)
    # DuckDB against Python integers: exact sums, correctly rounded
    oracle = _exact_oracle(tx).reindex(features.index)
    np.testing.assert_array_equal(features["total_spend"].to_numpy(), oracle.to_numpy())
    assert features.loc[5, "total_spend"] > 2**53 / 1e9
    pd.testing.assert_frame_equal(rfm_table(tx), features, check_exact=True)
    cols = ["total_spend", "avg_order_value", "spend_per_year", "recency_days", "n_orders"]
    spark_compare(rfm_table(sdf).select("customer_id", *cols), features[cols], rtol=0.0)
    for freq in ("D", "W", "M"):
        want = btyd_summary(tx, freq=freq)
        _, combined = customer_features(tx, freq=freq)
        pd.testing.assert_frame_equal(combined, want, check_exact=True)
        # the order of the rows does not change a bit
        shuffled = btyd_summary(tx.sample(frac=1.0, random_state=4), freq=freq)
        pd.testing.assert_frame_equal(shuffled, want, check_exact=True)
        spark_compare(btyd_summary(sdf, freq=freq), want, rtol=0.0)


def test_rfm_table_on_spark_equals_pandas(spark_tx, cdnow_tx, spark_compare):
    cols = ["recency_days", "n_orders", "total_spend", "tenure_days", "orders_per_year"]
    got = rfm_table(spark_tx).select("customer_id", *cols)
    spark_compare(got, rfm_table(cdnow_tx)[cols], rtol=1e-12)


def test_calibration_holdout_on_spark_equals_pandas(spark_tx, cdnow_tx, spark_compare):
    out = calibration_holdout(spark_tx, "1997-09-30", "1998-06-30", freq="W")
    want = calibration_holdout(cdnow_tx, "1997-09-30", "1998-06-30", freq="W")
    spark_compare(out.select("customer_id", *want.columns), want, rtol=1e-12)
    assert frame_attrs(out) == want.attrs


def _message(call) -> str:
    with pytest.raises(DataError) as info:
        call()
    return str(info.value)


def test_spark_logs_get_the_pandas_errors(spark, spark_tx, cdnow_tx):
    from pyspark.sql import functions as F

    # missing column
    assert _message(lambda: btyd_summary(spark_tx.drop("timestamp"))) == _message(
        lambda: btyd_summary(cdnow_tx[["customer_id", "amount"]])
    )
    # null ids
    first_rows = F.col("customer_id") <= 2
    no_ids = spark_tx.withColumn(
        "customer_id", F.when(first_rows, None).otherwise(F.col("customer_id"))
    )
    pandas_no_ids = cdnow_tx.assign(
        customer_id=cdnow_tx["customer_id"].astype("Int64").mask(cdnow_tx["customer_id"] <= 2)
    )
    got = _message(lambda: rfm_table(no_ids))
    assert got == _message(lambda: rfm_table(pandas_no_ids))
    assert got.startswith("column 'customer_id': ") and got.endswith(" of 69659 rows are missing")
    # null timestamps
    no_ts = spark_tx.withColumn("timestamp", F.when(first_rows, None).otherwise(F.col("timestamp")))
    pandas_no_ts = cdnow_tx.assign(
        timestamp=cdnow_tx["timestamp"].mask(cdnow_tx["customer_id"] <= 2)
    )
    got = _message(lambda: btyd_summary(no_ts, freq="W"))
    assert got == _message(lambda: btyd_summary(pandas_no_ts, freq="W"))
    assert got.startswith("column 'timestamp': ")
    # NaN amounts
    nan_amount = spark_tx.withColumn(
        "amount", F.when(first_rows, float("nan")).otherwise(F.col("amount"))
    )
    pandas_nan = cdnow_tx.assign(amount=cdnow_tx["amount"].mask(cdnow_tx["customer_id"] <= 2))
    assert _message(lambda: btyd_summary(nan_amount)) == _message(lambda: btyd_summary(pandas_nan))
    # an amount beyond the exact-sum range (one line, the same on both engines)
    huge = spark_tx.withColumn("amount", F.when(first_rows, 1e19).otherwise(F.col("amount")))
    first_customers = cdnow_tx["customer_id"] <= 2
    pandas_huge = cdnow_tx.assign(amount=cdnow_tx["amount"].mask(first_customers, 1e19))
    got = _message(lambda: rfm_table(huge))
    assert got == _message(lambda: rfm_table(pandas_huge))
    assert got.startswith("column 'amount': ") and "1,000,000,000,000,000 or more" in got
    # an empty log
    assert _message(lambda: rfm_table(spark_tx.limit(0))) == "the transaction log is empty (0 rows)"


def test_text_timestamps_are_parsed_on_spark(spark_tx, cdnow_tx, spark_compare):
    from pyspark.sql import functions as F

    text = spark_tx.withColumn("timestamp", F.date_format("timestamp", "yyyy-MM-dd HH:mm:ss"))
    spark_compare(btyd_summary(text, freq="W"), btyd_summary(cdnow_tx, freq="W"))


def test_groups_and_order_ids_on_spark_equal_pandas(spark, online_retail_tx, spark_compare):
    # string ids, a group column and order ids (orders counted by them, a missing id
    # counting as one order), a mid-day end
    tx = online_retail_tx.copy()
    tx.loc[tx.index[::40], "order_id"] = None
    sdf = spark.createDataFrame(tx).repartition(5)
    end = "2011-10-15 13:00"
    keys = ("customer_id", "country")
    got = rfm_table(sdf, end, group="country")
    want = rfm_table(tx, end, group="country")
    attrs = frame_attrs(got)
    assert attrs.pop("group") == "country"  # a Spark frame records its group column
    assert attrs == want.attrs
    cols = [c for c in want.columns if c not in ("first_purchase", "last_purchase")]
    spark_compare(got.select(*keys, *cols), want[cols], keys=keys, rtol=0.0)
    for freq in ("D", "W", "M"):
        want = btyd_summary(tx, end, freq=freq, group="country")
        spark_compare(btyd_summary(sdf, end, freq=freq, group="country"), want, keys=keys,
                      rtol=0.0)  # fmt: skip
