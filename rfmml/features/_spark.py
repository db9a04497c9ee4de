"""PySpark helpers shared by every stage: detection, frame metadata and log checks.

pyspark is imported lazily (inside the functions), so rfmml imports without it.

A Spark DataFrame has no ``attrs``; the feature builders record what pandas
keeps in ``attrs`` (``freq``, ``observation_end``, ...) as column metadata under
the key ``"rfmml"`` on every column, which survives selects, filters, joins and
``withColumn`` of other columns. :func:`frame_attrs` reads it back.
"""

from __future__ import annotations

import json
from typing import Any

from rfmml.errors import DataError

__all__ = ["META_KEY", "check_spark_log", "frame_attrs", "is_spark", "with_attrs"]

#: The column-metadata key holding a frame's ``attrs``.
META_KEY = "rfmml"


def is_spark(obj: Any) -> bool:
    """Whether ``obj`` is a PySpark DataFrame (classic or Spark Connect)."""
    module = type(obj).__module__
    return module.split(".")[0] == "pyspark" and type(obj).__name__ == "DataFrame"


def frame_attrs(sdf: Any) -> dict[str, Any]:
    """The ``attrs`` recorded on a Spark frame's columns (empty when none)."""
    out: dict[str, Any] = {}
    for field in sdf.schema.fields:
        meta = (field.metadata or {}).get(META_KEY)
        if isinstance(meta, dict):
            for key, value in meta.items():
                out.setdefault(key, value)
    return out


def with_attrs(sdf: Any, **attrs: Any) -> Any:
    """``sdf`` with ``attrs`` (JSON-able after ISO conversion of timestamps) on every column."""
    import pandas as pd

    plain = {k: v.isoformat() if isinstance(v, pd.Timestamp) else v for k, v in attrs.items()}
    plain = json.loads(json.dumps(plain, default=str))
    merged = {**frame_attrs(sdf), **plain}
    out = sdf
    for field in sdf.schema.fields:
        meta = dict(field.metadata or {})
        meta[META_KEY] = merged
        out = out.withMetadata(field.name, meta)
    return out


def _is_numeric(dtype: Any) -> bool:
    from pyspark.sql.types import NumericType

    return isinstance(dtype, NumericType)


def check_spark_log(sdf: Any, required: list[str]) -> Any:
    """Validate a Spark transaction log as :func:`rfmml.features._engine.open_frame` does pandas.

    One aggregation pass counts the rows and the missing ids, timestamps and
    amounts; the messages are the pandas path's. Text timestamps are parsed
    (``to_timestamp``); a value that does not parse counts as missing.

    Parameters
    ----------
    sdf : pyspark.sql.DataFrame
        The log, with at least ``required``.
    required : list of str
        The columns the builder reads.

    Returns
    -------
    pyspark.sql.DataFrame
        ``sdf`` reduced to ``required``, timestamps as timestamps.

    Raises
    ------
    DataError
        An empty log, missing ids or timestamps, a non-numeric amount, or NaN amounts.
    """
    from pyspark.sql import functions as F
    from pyspark.sql.types import DateType, StringType, TimestampNTZType, TimestampType

    out = sdf.select(*required)
    ts_type = out.schema["timestamp"].dataType
    if isinstance(ts_type, StringType):
        out = out.withColumn("timestamp", F.to_timestamp("timestamp"))
    elif isinstance(ts_type, DateType):
        out = out.withColumn("timestamp", F.col("timestamp").cast("timestamp"))
    elif not isinstance(ts_type, TimestampType | TimestampNTZType):
        raise DataError(
            f"column 'timestamp' must hold dates or times, got {ts_type.simpleString()} in all "
            "rows; clean the log with rfmml.data.read_transactions first"
        )
    with_amount = "amount" in required
    if with_amount and not _is_numeric(out.schema["amount"].dataType):
        raise DataError(
            f"column 'amount' must be numeric, got {out.schema['amount'].dataType.simpleString()}; "
            "clean the log with rfmml.data.read_transactions first"
        )
    aggs = [
        F.count(F.lit(1)).alias("n"),
        F.count_if(F.col("customer_id").isNull()).alias("ids"),
        F.count_if(F.col("timestamp").isNull()).alias("ts"),
    ]
    if with_amount:
        amount = F.col("amount").cast("double")
        aggs.append(F.count_if(amount.isNull() | F.isnan(amount)).alias("amount"))
    row = out.agg(*aggs).first()
    assert row is not None  # a global aggregate has one row
    n = int(row["n"])
    if n == 0:
        raise DataError("the transaction log is empty (0 rows)")
    if row["ts"]:
        raise DataError(
            f"column 'timestamp': {int(row['ts'])} of {n} rows are missing; clean the log with "
            "rfmml.data.read_transactions first"
        )
    if with_amount and row["amount"]:
        raise DataError(
            f"column 'amount': {int(row['amount'])} of {n} rows are missing (NaN); clean the "
            "log with rfmml.data.read_transactions first"
        )
    if row["ids"]:
        raise DataError(f"column 'customer_id': {int(row['ids'])} of {n} rows are missing")
    if with_amount:
        out = out.withColumn("amount", F.col("amount").cast("double"))
    return out
