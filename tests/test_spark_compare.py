"""The ``spark_compare`` and ``spark_mismatches`` fixtures: equal frames pass, unequal ones fail.

The frames are the first CDNOW customers, one row each, with a float, an
integer, a string, a time, a time without time zone, a date and a float with
nulls. Each Spark write is costly, so the file makes few: one frame holds
every changed value (a column of its own each, on a customer known from the
pandas frame) and one every changed row.
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


def _set(frame, column, customer, value):
    """``frame`` with ``column`` set to the Spark expression ``value`` for ``customer``."""
    from pyspark.sql import functions as F

    target = F.col("customer_id") == int(customer)
    return frame.withColumn(column, F.when(target, value).otherwise(F.col(column)))


def test_equal_frames_pass_nulls_times_and_categoricals_included(
    spark_frame, oracle, spark_compare
):
    types = dict(spark_frame.dtypes)
    assert (types["first"], types["last_ntz"], types["day"]) == (
        "timestamp",
        "timestamp_ntz",
        "date",
    )
    spark_compare(spark_frame, oracle.assign(label=oracle["label"].astype("category")), rtol=0.0)


def test_a_value_within_rtol_passes(spark_frame, oracle, spark_compare):
    from pyspark.sql import functions as F

    got = _set(spark_frame, "spend", oracle.index[0], F.col("spend") * (1 + 1e-13))
    spark_compare(got, oracle)


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


CHANGES = [
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
]


def test_each_changed_value_counts_once(spark_frame, oracle, spark_mismatches):
    """Every case changes one row of a copy of its column; the original columns stay equal."""
    from pyspark.sql import functions as F

    customers = list(oracle.index)
    no_second = oracle.index[oracle["second_spend"].isna()][0]
    cases = {f"{column}_{change.replace(' ', '_')}": (column, change) for column, change in CHANGES}
    names = list(cases)
    want = oracle.assign(**{name: oracle[column] for name, (column, _) in cases.items()})
    got = spark_frame.select("*", *(F.col(c).alias(n) for n, (c, _) in cases.items()))
    for i, (name, (column, change)) in enumerate(cases.items()):
        customer = no_second if name == "second_spend_nan" else customers[i % len(customers)]
        value = _changed(name, change).cast(spark_frame.schema[column].dataType)
        got = _set(got, name, customer, value)

    assert spark_mismatches(got, want, rtol=1e-12) == {
        "only_want": 0,
        "only_got": 0,
        "rows": len(oracle),
        **dict.fromkeys(oracle.columns, 0),
        **dict.fromkeys(names, 1),
    }


def test_a_pandas_nan_against_a_spark_number_fails(spark_frame, oracle, spark_compare):
    want = oracle.copy()
    want.iloc[0, want.columns.get_loc("spend")] = np.nan
    with pytest.raises(AssertionError, match=r"\{'spend': 1\}"):
        spark_compare(spark_frame, want)


def test_missing_extra_and_null_key_rows_join_nothing(spark_frame, oracle, spark_mismatches):
    """A missing row, an extra one (key -1) and a null key (on a side only) in one frame."""
    from pyspark.sql import functions as F

    missing, null_key, copied = (int(c) for c in oracle.index[:3])
    extra = spark_frame.filter(F.col("customer_id") == copied)
    extra = extra.withColumn("customer_id", F.lit(-1).cast("long"))
    got = _set(spark_frame, "customer_id", null_key, F.lit(None).cast("long"))
    got = got.filter(F.col("customer_id").isNull() | (F.col("customer_id") != missing))
    got = got.unionByName(extra)

    # unmatched rows: want's missing and null_key rows, got's null-key row and extra one
    alone = oracle.loc[[missing, null_key, null_key, copied]]
    assert spark_mismatches(got, oracle) == {
        "only_want": 2,
        "only_got": 2,
        "rows": len(oracle) + 2,
        **alone.notna().sum().astype(int).to_dict(),
    }


def test_other_columns_fail(spark_frame, oracle, spark_compare):
    with pytest.raises(AssertionError):
        spark_compare(spark_frame.drop("label"), oracle)
