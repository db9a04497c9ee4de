"""Classic RFM table: days since last order, orders, spend, tenure and annual rates."""

from __future__ import annotations

from typing import Any

import narwhals as nw
import pandas as pd

from rfmml.data.transactions import end_cutoff
from rfmml.features._engine import (
    as_timestamp,
    columns_of,
    day_number,
    open_frame,
    scalar,
    scalar_period,
)
from rfmml.features._spark import is_spark
from rfmml.features.btyd import _SQL_UNITS, _SQL_WHOLE, _has_amount, _keys, _sql_exact_spend, _stamp

__all__ = ["rfm_table"]

DAYS_PER_YEAR = 365.25


def rfm_table(
    tx: Any,
    observation_end: Any = None,
    group: str | None = None,
    *,
    min_tenure_days: float = 90.0,
    engine: str | None = None,
) -> Any:
    """Build the classic RFM table, one row per customer (and group).

    Parameters
    ----------
    tx, group
        As for :func:`rfmml.features.btyd_summary`; ``tx`` may also carry an
        ``order_id`` column (orders are counted by it).
    observation_end : date-like, optional
        The "as of" date; defaults to the last transaction. Later transactions
        are ignored; a bare date includes its whole day.
    min_tenure_days : float, default 90
        Floor on the exposure used for annual rates, so a customer first seen
        last week is not credited with fifty orders a year.
    engine : {"duckdb", "polars"}, optional
        Engine for pandas input (DuckDB by default).

    Returns
    -------
    Same type as ``tx``
        Columns:

        - ``recency_days``: whole days from the last purchase day to the
          observation end's day (0 = bought on the last day).
        - ``n_orders``: distinct ``order_id`` values, or rows when there is no order id.
        - ``total_spend``, ``avg_order_value`` (= total_spend / n_orders), when
          there are amounts.
        - ``first_purchase``, ``last_purchase``: timestamps.
        - ``tenure_days``: whole days from the first purchase day to the end.
        - ``orders_per_year``, ``spend_per_year``: counts and spend divided by
          ``max(tenure_days, min_tenure_days) / 365.25``.

        pandas output is indexed by ``customer_id`` (and ``group``), with
        ``attrs["observation_end"]``.
    """
    if not min_tenure_days > 0:
        raise ValueError(f"min_tenure_days must be positive, got {min_tenure_days!r}")
    keys = _keys(group)
    with_amount = _has_amount(tx)
    columns = columns_of(tx)
    with_order = "order_id" in columns
    required = ["customer_id", "timestamp"]
    required += ["amount"] if with_amount else []
    required += [group] if group is not None else []
    required += ["order_id"] if with_order else []
    if is_spark(tx):  # Spark's own functions: one check pass, exact spend sums
        from rfmml.features._spark import spark_rfm_table

        out, end = spark_rfm_table(
            tx, observation_end, keys, required, float(min_tenure_days), DAYS_PER_YEAR
        )
        return _stamp(out, observation_end=end, min_tenure_days=min_tenure_days, group=group)
    frame = open_frame(tx, required, engine)
    if observation_end is None:
        end = scalar(frame.lazy, nw.col("timestamp").max())
    else:
        end = as_timestamp(observation_end, "observation_end")
    end_day = scalar_period(end, "D")
    if frame.on_duckdb and with_amount:  # exact spend sums, as customer_features and Spark
        sql = _rfm_sql(end, keys, with_order, float(min_tenure_days))
        result = frame.collect_sql(frame.lazy.to_native().query("tx", sql), keys)
        if isinstance(result, pd.DataFrame):
            result["n_orders"] = result["n_orders"].astype("int64")
            for column in ("first_purchase", "last_purchase"):
                result[column] = result[column].astype("datetime64[us]")
        return _stamp(result, observation_end=end, min_tenure_days=min_tenure_days, group=group)
    rows = frame.lazy.filter(nw.col("timestamp") < nw.lit(end_cutoff(end).to_pydatetime()))
    rows = rows.with_columns(day_number("timestamp").alias("_day"))
    aggs = [
        nw.col("timestamp").min().alias("first_purchase"),
        nw.col("timestamp").max().alias("last_purchase"),
        nw.col("_day").min().alias("_first_day"),
        nw.col("_day").max().alias("_last_day"),
        (nw.col("order_id").n_unique() if with_order else nw.len()).alias("n_orders"),
    ]
    if with_amount:
        aggs.append(nw.col("amount").sum().alias("total_spend"))
    out = rows.group_by(keys).agg(*aggs)
    tenure = (nw.lit(end_day) - nw.col("_first_day")).cast(nw.Float64)
    exposure_years = (
        nw.when(tenure > min_tenure_days).then(tenure).otherwise(nw.lit(float(min_tenure_days)))
        / DAYS_PER_YEAR
    )
    n_orders = nw.col("n_orders").cast(nw.Int64)
    derived = [
        (nw.lit(end_day) - nw.col("_last_day")).cast(nw.Float64).alias("recency_days"),
        n_orders,
    ]
    if with_amount:
        derived += [
            nw.col("total_spend").cast(nw.Float64),
            (nw.col("total_spend") / n_orders).cast(nw.Float64).alias("avg_order_value"),
        ]
    derived += [
        nw.col("first_purchase"),
        nw.col("last_purchase"),
        tenure.alias("tenure_days"),
        (n_orders / exposure_years).cast(nw.Float64).alias("orders_per_year"),
    ]
    if with_amount:
        derived.append((nw.col("total_spend") / exposure_years).alias("spend_per_year"))
    result = frame.collect(out.select(*keys, *derived), keys)
    return _stamp(result, observation_end=end, min_tenure_days=min_tenure_days, group=group)


def _rfm_sql(end: pd.Timestamp, keys: list[str], with_order: bool, min_tenure: float) -> str:
    """The RFM table of a log with amounts as one DuckDB statement.

    The narwhals query's columns, with spend summed exactly
    (``btyd._SQL_WHOLE``, ``btyd._SQL_UNITS``): DuckDB's parallel float sum changes its last
    bit with the order of the rows, and Spark's differs from it.
    """
    key_list = ", ".join(f'"{k}"' for k in keys)
    cut = end_cutoff(end).isoformat(sep=" ")
    end_day = scalar_period(end, "D")
    first, last = (f"(CAST({f}(\"timestamp\") AS DATE) - DATE '1970-01-01')"
                   for f in ("min", "max"))  # fmt: skip
    tenure = f"({end_day} - {first})::DOUBLE"
    exposure = (
        f"((CASE WHEN {tenure} > {min_tenure!r} THEN {tenure} ELSE {min_tenure!r} END) "
        f"/ {DAYS_PER_YEAR!r})"
    )
    # distinct order ids, a missing one counting as one order (narwhals' n_unique)
    orders = (
        '(count(DISTINCT "order_id") + max(CASE WHEN "order_id" IS NULL THEN 1 ELSE 0 END))'
        if with_order
        else "count(*)"
    )
    spend = _sql_exact_spend(_SQL_WHOLE, _SQL_UNITS)
    return f"""
        SELECT {key_list},
            ({end_day} - {last})::DOUBLE AS recency_days,
            {orders}::BIGINT AS n_orders,
            {spend} AS total_spend,
            ({spend} / {orders}) AS avg_order_value,
            min("timestamp") AS first_purchase,
            max("timestamp") AS last_purchase,
            {tenure} AS tenure_days,
            ({orders} / {exposure})::DOUBLE AS orders_per_year,
            ({spend} / {exposure})::DOUBLE AS spend_per_year
        FROM tx WHERE "timestamp" < TIMESTAMP '{cut}'
        GROUP BY ALL ORDER BY {key_list}
    """
