"""The ``spark_compare`` fixture itself: it passes equal frames and fails unequal ones.

The frames are the first CDNOW customers, one row each, with a float, an
integer, a string, a time, a time without time zone, a date and a float with
nulls; each failing case changes one value (or row) on the Spark side.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

pytestmark = pytest.mark.spark


@pytest.fixture(scope="module")
def oracle(cdnow_tx) -> pd.DataFrame:
    """Eight customers: the pandas frame the Spark one is compared with."""
    first = cdnow_tx[cdnow_tx["customer_id"].isin(cdnow_tx["customer_id"].unique()[:8])]
    per = first.groupby("customer_id")
    out = pd.DataFrame(
        {
            "spend": per["amount"].sum(),
            "n": per["amount"].size(),
            "label": "c" + per["amount"].size().astype(str),
            "first": per["timestamp"].min(),
            "last_ntz": per["timestamp"].max(),
            "day": per["timestamp"].min().dt.normalize(),
            "second_spend": per["amount"].agg(lambda s: s.iloc[1] if len(s) > 1 else np.nan),
        }
    )
    assert out["second_spend"].isna().any() and out["second_spend"].notna().any()
    return out


@pytest.fixture(scope="module")
def spark_frame(spark, oracle):
    """The same frame in Spark: a time as ``TimestampNTZType`` and a date as ``DateType``."""
    from pyspark.sql import functions as F

    frame = spark.createDataFrame(oracle.reset_index())
    return frame.withColumn("last_ntz", F.col("last_ntz").cast("timestamp_ntz")).withColumn(
        "day", F.to_date("day")
    )


def _one(frame, column, value):
    """``frame`` with ``column`` set to the Spark expression ``value`` for its first customer."""
    from pyspark.sql import functions as F

    first = frame.agg(F.min("customer_id")).first()[0]
    target = F.col("customer_id") == first
    return frame.withColumn(column, F.when(target, value).otherwise(F.col(column)))


def test_equal_frames_pass_nulls_and_times_included(spark_frame, oracle, spark_compare):
    types = dict(spark_frame.dtypes)
    assert (types["first"], types["last_ntz"], types["day"]) == (
        "timestamp",
        "timestamp_ntz",
        "date",
    )
    spark_compare(spark_frame, oracle, rtol=0.0)
    spark_compare(spark_frame, oracle.assign(label=oracle["label"].astype("category")))


def test_a_value_within_rtol_passes(spark_frame, oracle, spark_compare):
    from pyspark.sql import functions as F

    spark_compare(_one(spark_frame, "spend", F.col("spend") * (1 + 1e-13)), oracle)


def _changed(column: str, change: str):
    """The Spark expression of each failing case."""
    from pyspark.sql import functions as F

    return {
        "off beyond rtol": F.col(column) * (1 + 1e-9),
        "plus one": F.col(column) + 1,
        "null": F.lit(None),
        "nan": F.lit(float("nan")),
        "one second": F.col(column) + F.expr("INTERVAL 1 SECOND"),
        "one day": F.date_add(F.col(column), 1),
        "other string": F.concat(F.col(column), F.lit("x")),
    }[change]


@pytest.mark.parametrize(
    ("column", "change"),
    [
        ("spend", "off beyond rtol"),
        ("n", "plus one"),
        ("spend", "null"),
        ("label", "null"),
        ("first", "null"),
        ("spend", "nan"),
        ("second_spend", "nan"),  # a Spark NaN is not the pandas NaN (a Spark null)
        ("first", "one second"),
        ("last_ntz", "one second"),
        ("day", "one day"),
        ("label", "other string"),
    ],
)
def test_one_changed_value_fails(spark_frame, oracle, spark_compare, column, change):
    got = _one(
        spark_frame, column, _changed(column, change).cast(spark_frame.schema[column].dataType)
    )
    with pytest.raises(AssertionError, match=rf"\{{'{column}': 1\}}"):
        spark_compare(got, oracle, rtol=1e-12)


def test_a_pandas_nan_against_a_spark_number_fails(spark_frame, oracle, spark_compare):
    want = oracle.copy()
    want.iloc[0, want.columns.get_loc("spend")] = np.nan
    with pytest.raises(AssertionError, match=r"\{'spend': 1\}"):
        spark_compare(spark_frame, want)


def test_a_missing_row_fails(spark_frame, oracle, spark_compare):
    got = spark_frame.filter(spark_frame["customer_id"] != int(oracle.index[0]))
    with pytest.raises(AssertionError, match=r"'only_want': 1"):
        spark_compare(got, oracle)


def test_an_extra_row_fails(spark_frame, oracle, spark_compare):
    from pyspark.sql import functions as F

    extra = spark_frame.limit(1).withColumn("customer_id", F.lit(-1).cast("long"))
    with pytest.raises(AssertionError):
        spark_compare(spark_frame.unionByName(extra), oracle)
    # the row count passes when a row is missing too; the extra row is then named
    swapped = spark_frame.filter(spark_frame["customer_id"] != int(oracle.index[0]))
    with pytest.raises(AssertionError, match=r"'only_want': 1, 'only_got': 1"):
        spark_compare(swapped.unionByName(extra), oracle)


def test_a_null_key_joins_nothing(spark_frame, oracle, spark_compare):
    from pyspark.sql import functions as F

    got = _one(spark_frame, "customer_id", F.lit(None).cast("long"))
    with pytest.raises(AssertionError, match=r"'only_want': 1, 'only_got': 1"):
        spark_compare(got, oracle)


def test_other_columns_fail(spark_frame, oracle, spark_compare):
    with pytest.raises(AssertionError):
        spark_compare(spark_frame.drop("label"), oracle)
