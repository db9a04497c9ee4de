"""PySpark helpers shared by every stage: detection, frame metadata, log checks, features.

pyspark is imported lazily (inside the functions), so rfmml imports without it.

A Spark DataFrame has no ``attrs``; the feature builders record what pandas
keeps in ``attrs`` (``freq``, ``observation_end``, ...) as column metadata under
the key ``"rfmml"`` on every column, which survives selects, filters, joins and
``withColumn`` of other columns. :func:`frame_attrs` reads it back.

:func:`spark_rfm_table` and :func:`spark_btyd_summary` are the feature
builders of Spark logs, written in Spark's own functions: the log is checked
and its last timestamp found in one aggregation pass, and spend is summed
exactly (:func:`spend_parts`, :func:`exact_spend`) so that every spend column
equals the DuckDB one bit for bit (the DuckDB statements in
:mod:`rfmml.features.btyd` and :mod:`rfmml.features.combined` sum the same way).

Exact spend sums: each amount is cut into its whole part ``floor(amount)`` and
its fraction in units of 1e-9, ``floor(frac * 1e9 + 0.5)`` (both IEEE double
operations, the same on every engine); both are summed as integers (exact, in
any order) and the total ``whole * 1e9 + units`` is converted to a double
once, correctly rounded. So a sum is the amounts rounded to 9 decimals (the
precision of the loader) added without rounding error, and a customer's spend
does not depend on the engine, the partitioning or the order of the rows.
"""

from __future__ import annotations

import json
import weakref
from typing import Any

import pandas as pd

from rfmml.data.transactions import AMOUNT_LIMIT, amount_limit_error
from rfmml.errors import DataError

__all__ = [
    "META_KEY",
    "check_spark_log",
    "exact_spend",
    "frame_attrs",
    "is_spark",
    "period_number",
    "spark_btyd_summary",
    "spark_log",
    "spark_rfm_table",
    "spend_parts",
    "with_attrs",
]

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

    :func:`spark_log` without the last timestamp.
    """
    return spark_log(sdf, required)[0]


def spark_log(sdf: Any, required: list[str]) -> tuple[Any, pd.Timestamp, int]:
    """Validate a Spark transaction log and find its last timestamp, in one pass.

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
    pandas.Timestamp
        The last timestamp (wall clock in the session time zone).
    int
        The number of rows.

    Raises
    ------
    DataError
        Missing columns, an empty log, missing ids or timestamps, a non-numeric
        amount, or NaN amounts.
    """
    missing = [c for c in required if c not in sdf.columns]
    if missing:
        raise DataError(
            f"column(s) {missing} not found; available columns: {list(sdf.columns)}. Load the "
            "log with rfmml.data.read_transactions(..., customer=..., timestamp=..., "
            "amount=...) to map your own names"
        )
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
    ts = F.col("timestamp")
    if with_amount and not _is_numeric(out.schema["amount"].dataType):
        raise DataError(
            f"column 'amount' must be numeric, got {out.schema['amount'].dataType.simpleString()}; "
            "clean the log with rfmml.data.read_transactions first"
        )
    aggs = [
        F.count(F.lit(1)).alias("n"),
        F.count_if(F.col("customer_id").isNull()).alias("ids"),
        F.count_if(ts.isNull()).alias("ts"),
        F.date_format(F.max(ts), "yyyy-MM-dd HH:mm:ss.SSSSSS").alias("last"),
    ]
    if with_amount:
        amount = F.col("amount").cast("double")
        aggs.append(F.count_if(amount.isNull() | F.isnan(amount)).alias("amount"))
        big = F.abs(amount) >= F.lit(AMOUNT_LIMIT)
        aggs.append(F.count_if(big).alias("big"))
        aggs.append(F.max_by(amount, F.when(big, F.abs(amount))).alias("largest_big"))
    row = _log_counts(sdf, tuple(required), lambda: out.agg(*aggs).first())
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
    if with_amount and row["big"]:
        raise amount_limit_error("amount", int(row["big"]), n, row["largest_big"])
    if row["ids"]:
        raise DataError(f"column 'customer_id': {int(row['ids'])} of {n} rows are missing")
    if with_amount:
        out = out.withColumn("amount", F.col("amount").cast("double"))
    return out, pd.Timestamp(row["last"]), n


#: The counts of :func:`spark_log` per log frame and required columns: ``rfm_table(tx)``
#: then ``btyd_summary(tx)`` of one frame scan the log once for both checks.
_CHECKED: weakref.WeakKeyDictionary[Any, dict[tuple[str, ...], dict[str, Any]]] = (
    weakref.WeakKeyDictionary()
)


def _log_counts(sdf: Any, required: tuple[str, ...], compute: Any) -> dict[str, Any]:
    """``compute()`` (the one-row check aggregate) once per frame object and columns.

    A Spark frame is immutable (a fixed plan over a fixed file listing), so its
    counts are kept for as long as the frame object lives.
    """
    try:
        memo = _CHECKED.setdefault(sdf, {})
    except TypeError:  # a frame type that cannot be weakly referenced: no memo
        memo = {}
    if required not in memo:
        row = compute()
        assert row is not None  # a global aggregate has one row
        memo[required] = row.asDict()
    return memo[required]


#: Log rows per partition of a feature table (see :func:`_partitions`).
LOG_ROWS_PER_PARTITION = 2_000_000


def _partitions(sdf: Any, n_rows: int) -> Any:
    """A per-customer result in about one partition per 2 million log rows (one per core at least).

    Its aggregation shuffles into ``spark.sql.shuffle.partitions`` (200 by
    default) partitions, which adaptive execution does not merge when the
    result is cached: every later job over the cached table would run 200
    tiny tasks. ``coalesce`` merges them without a shuffle.
    """
    try:
        cores = int(sdf.sparkSession.sparkContext.defaultParallelism)
    except Exception:  # Spark Connect has no SparkContext
        cores = 2
    return sdf.coalesce(max(cores, -(-n_rows // LOG_ROWS_PER_PARTITION)))


#: 2**53: integers below it are exact doubles.
_EXACT = 9007199254740992
#: Units of the fraction of an amount: 1e-9 (the loader's precision).
_UNITS = 1_000_000_000


def spend_parts(amount: Any) -> tuple[Any, Any]:
    """The whole part and the fraction (in units of 1e-9) of an amount, as long columns.

    ``floor(amount)`` and ``floor((amount - floor(amount)) * 1e9 + 0.5)``: both
    are IEEE double operations, so DuckDB (``btyd.sql_spend_units``) and Spark
    give the same integers.
    """
    from pyspark.sql import functions as F

    whole = F.floor(amount)
    fraction = F.floor((amount - whole) * F.lit(1e9) + F.lit(0.5))
    return whole.cast("long"), fraction.cast("long")


def exact_spend(whole: Any, units: Any) -> Any:
    """``whole + units * 1e-9`` (integer columns, exact sums) as a correctly rounded double.

    Below 2**53 units, the integer is an exact double and one IEEE division
    by 1e9 rounds correctly; above, the decimal text is parsed (also correctly
    rounded). DuckDB's ``btyd._sql_exact_spend`` is the same computation.
    """
    from pyspark.sql import functions as F

    total = whole.cast("decimal(38,0)") * F.lit(_UNITS).cast("decimal(38,0)") + units.cast(
        "decimal(38,0)"
    )
    return F.when(F.abs(total) < F.lit(_EXACT), total.cast("double") / F.lit(1e9)).otherwise(
        F.concat(total.cast("string"), F.lit("e-9")).cast("double")
    )


def _day(ts: Any) -> Any:
    """Days since 1970-01-01 of a timestamp column (its date in the session time zone)."""
    from pyspark.sql import functions as F

    return F.datediff(F.to_date(ts), F.to_date(F.lit("1970-01-01"))).cast("long")


def period_number(ts: Any, freq: str) -> Any:
    """The calendar period number of ``rfmml.features._engine.period_number``."""
    from pyspark.sql import functions as F

    if freq == "D":
        return _day(ts)
    if freq == "W":  # 1970-01-01 is a Thursday: shifted by 3 days, Mondays are multiples of 7
        return F.floor((_day(ts) + 3) / 7).cast("long")
    return (F.year(ts) * 12 + F.month(ts) - 1).cast("long")


def _before(sdf: Any, cut: Any) -> Any:
    """Rows with ``timestamp < cut`` (a naive wall-clock time in the session time zone)."""
    from pyspark.sql import functions as F

    kind = sdf.schema["timestamp"].dataType
    text = pd.Timestamp(cut).isoformat(sep=" ")
    return sdf.filter(F.col("timestamp") < F.lit(text).cast(kind))


def spark_btyd_summary(
    tx: Any, observation_end: Any, freq: str, keys: list[str], required: list[str]
) -> tuple[Any, pd.Timestamp]:
    """The BTYD summary of a Spark log (see :func:`rfmml.features.btyd_summary`).

    One pass checks the log (and finds its end); then the rows are grouped by
    customer and period and by customer. The log is repartitioned by the keys
    first, so both groupings use one shuffle of the rows. ``monetary_value``
    is the exact sum of the repeat periods' amounts (:func:`exact_spend`)
    divided by their number, as DuckDB computes it.

    Returns
    -------
    pyspark.sql.DataFrame, pandas.Timestamp
        The summary (keys as columns) and the observation end.
    """
    from pyspark.sql import functions as F

    from rfmml.features._engine import as_timestamp, next_period_start, scalar_period

    log, last, n_rows = spark_log(tx, required)
    end = last if observation_end is None else as_timestamp(observation_end, "observation_end")
    rows = _before(log, next_period_start(end, freq)).repartition(*keys)
    with_amount = "amount" in required
    values = []
    if with_amount:
        whole, units = spend_parts(F.col("amount"))
        values = [F.sum(whole).alias("_w"), F.sum(units).alias("_u")]
    per = rows.groupBy(*keys, period_number(F.col("timestamp"), freq).alias("_p"))
    per = per.agg(F.count(F.lit(1)).alias("_n"), *values)
    aggs = [
        F.min("_p").alias("_first"),
        F.max("_p").alias("_last"),
        F.count(F.lit(1)).alias("_periods"),
    ]
    if with_amount:
        aggs += [
            (F.sum("_w") - F.min_by("_w", "_p")).alias("_rw"),
            (F.sum("_u") - F.min_by("_u", "_p")).alias("_ru"),
        ]
    out = per.groupBy(*keys).agg(*aggs)
    columns = [
        (F.col("_periods") - 1).cast("double").alias("frequency"),
        (F.col("_last") - F.col("_first")).cast("double").alias("recency"),
        (F.lit(scalar_period(end, freq)) - F.col("_first")).cast("double").alias("T"),
    ]
    if with_amount:
        repeat = exact_spend(F.col("_rw"), F.col("_ru")) / (F.col("_periods") - 1)
        monetary = F.when(F.col("_periods") > 1, repeat).otherwise(F.lit(0.0))
        columns.append(monetary.cast("double").alias("monetary_value"))
    return _partitions(out.select(*keys, *columns), n_rows), end


def spark_rfm_table(
    tx: Any,
    observation_end: Any,
    keys: list[str],
    required: list[str],
    min_tenure_days: float,
    days_per_year: float,
) -> tuple[Any, pd.Timestamp]:
    """The classic RFM table of a Spark log (see :func:`rfmml.features.rfm_table`).

    One pass checks the log (and finds its end), one grouping by customer
    computes the table; ``total_spend`` is the exact sum (:func:`exact_spend`).

    Returns
    -------
    pyspark.sql.DataFrame, pandas.Timestamp
        The table (keys as columns) and the observation end.
    """
    from pyspark.sql import functions as F

    from rfmml.data.transactions import end_cutoff
    from rfmml.features._engine import as_timestamp, scalar_period

    log, last, n_rows = spark_log(tx, required)
    end = last if observation_end is None else as_timestamp(observation_end, "observation_end")
    end_day = scalar_period(end, "D")
    rows = _before(log, end_cutoff(end))
    ts = F.col("timestamp")
    if "order_id" in required:  # distinct order ids, a missing one counting as one order
        missing = F.max(F.when(F.col("order_id").isNull(), 1).otherwise(0))
        orders = F.count_distinct("order_id") + missing
    else:
        orders = F.count(F.lit(1))
    aggs = [
        F.min(ts).alias("first_purchase"),
        F.max(ts).alias("last_purchase"),
        orders.alias("n_orders"),
    ]
    with_amount = "amount" in required
    if with_amount:
        whole, units = spend_parts(F.col("amount"))
        aggs += [F.sum(whole).alias("_w"), F.sum(units).alias("_u")]
    out = rows.groupBy(*keys).agg(*aggs)
    tenure = (F.lit(end_day) - _day(F.col("first_purchase"))).cast("double")
    exposure = F.when(tenure > F.lit(float(min_tenure_days)), tenure).otherwise(
        F.lit(float(min_tenure_days))
    ) / F.lit(days_per_year)
    n_orders = F.col("n_orders").cast("long")
    columns = [
        (F.lit(end_day) - _day(F.col("last_purchase"))).cast("double").alias("recency_days"),
        n_orders.alias("n_orders"),
    ]
    spend = exact_spend(F.col("_w"), F.col("_u"))
    if with_amount:
        columns += [spend.alias("total_spend"), (spend / n_orders).alias("avg_order_value")]
    columns += [
        F.col("first_purchase"),
        F.col("last_purchase"),
        tenure.alias("tenure_days"),
        (n_orders / exposure).cast("double").alias("orders_per_year"),
    ]
    if with_amount:
        columns.append((spend / exposure).alias("spend_per_year"))
    return _partitions(out.select(*keys, *columns), n_rows), end
