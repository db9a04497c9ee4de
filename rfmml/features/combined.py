"""The BTYD summary and the classic RFM table from one aggregation pass.

Both tables are per-customer aggregates of the same rows: the summary counts
purchase periods and their values, the RFM table first and last purchases,
rows and spend. On DuckDB (pandas input on the default engine, a
:class:`~rfmml.data.ScannedLog`) one statement groups the log by customer and
period once and derives both tables from those per-period rows, instead of two
passes over the log. Other inputs, and logs with an ``order_id`` column (the
RFM table counts distinct orders, which per-period rows cannot add up), call
:func:`~rfmml.features.btyd_summary` and :func:`~rfmml.features.rfm_table`.
"""

from __future__ import annotations

from typing import Any

import pandas as pd

from rfmml.data.transactions import end_cutoff
from rfmml.features._engine import (
    as_timestamp,
    check_freq,
    columns_of,
    next_period_start,
    open_frame,
    period_start,
    scalar,
    scalar_period,
)
from rfmml.features.btyd import (
    _SQL_PERIOD,
    _SQL_SPEND_PARTS,
    _has_amount,
    _keys,
    _required,
    _sql_exact_spend,
    _sql_monetary,
    _sql_periods,
    _stamp,
)
from rfmml.features.btyd import btyd_summary as _btyd_summary
from rfmml.features.classic import DAYS_PER_YEAR
from rfmml.features.classic import rfm_table as _rfm_table

__all__ = ["customer_features"]


def customer_features(
    tx: Any,
    observation_end: Any = None,
    freq: str = "D",
    group: str | None = None,
    *,
    min_tenure_days: float = 90.0,
    engine: str | None = None,
) -> tuple[Any, Any]:
    """The classic RFM table and the BTYD summary of a log, in one pass where possible.

    Parameters
    ----------
    tx : pandas.DataFrame, ScannedLog, polars.DataFrame, duckdb relation or pyspark DataFrame
        Canonical transactions (see :func:`rfmml.data.read_transactions` and
        :func:`rfmml.data.scan_transactions`).
    observation_end : date-like, optional
        The "as of" date of both tables; defaults to the last transaction.
    freq : {"D", "W", "M"}, default "D"
        Period unit of the summary.
    group : str, optional
        Column to build both tables within.
    min_tenure_days : float, default 90
        Floor on the exposure of the RFM table's annual rates.
    engine : {"duckdb", "polars"}, optional
        Engine for pandas input (DuckDB by default).

    Returns
    -------
    features, summary
        Equal to ``rfm_table(tx, observation_end, group,
        min_tenure_days=min_tenure_days)`` and ``btyd_summary(tx,
        observation_end, freq, group)``, in the same types and with the same
        ``attrs`` (sums may differ in the last bits of a float: the single
        pass adds per-period sums).
    """
    check_freq(freq)
    if not min_tenure_days > 0:
        raise ValueError(f"min_tenure_days must be positive, got {min_tenure_days!r}")
    columns = columns_of(tx)
    single = (
        "order_id" not in columns
        and engine in (None, "duckdb")
        and (isinstance(tx, pd.DataFrame) or type(tx).__name__ == "ScannedLog")
    )
    if not single:
        features = _rfm_table(tx, observation_end, group, min_tenure_days=min_tenure_days,
                              engine=engine)  # fmt: skip
        summary = _btyd_summary(tx, observation_end, freq, group, engine=engine)
        return features, summary
    keys = _keys(group)
    with_amount = _has_amount(tx)
    frame = open_frame(tx, _required(group, with_amount), engine)
    import narwhals as nw

    if observation_end is None:
        end = scalar(frame.lazy, nw.col("timestamp").max())
    else:
        end = as_timestamp(observation_end, "observation_end")
    sql = _combined_sql(end, freq, keys, with_amount, float(min_tenure_days))
    relation = frame.lazy.to_native().query("tx", sql)
    both = frame.collect_sql(relation, keys)
    btyd_cols = ["frequency", "recency", "T"] + (["monetary_value"] if with_amount else [])
    summary = both.loc[:, btyd_cols]
    rfm_cols = [c for c in both.columns if c not in btyd_cols and c != "_rfm"]
    features = both.loc[both["_rfm"].to_numpy(), rfm_cols]
    features["n_orders"] = features["n_orders"].astype("int64")
    for column in ("first_purchase", "last_purchase"):
        features[column] = features[column].astype("datetime64[us]")
    _stamp(features, observation_end=end, min_tenure_days=min_tenure_days)
    _stamp(summary, freq=freq, observation_end=end)
    return features, summary


def _combined_sql(end: pd.Timestamp, freq: str, keys: list[str], with_amount: bool,
                  min_tenure: float) -> str:  # fmt: skip
    """One DuckDB statement: per customer and period, then both tables' columns."""
    key_list = ", ".join(f'"{k}"' for k in keys)
    btyd_cut = pd.Timestamp(next_period_start(end, freq)).isoformat(sep=" ")
    rfm_cut = end_cutoff(end).isoformat(sep=" ")
    end_start = f"DATE '{period_start(end, freq).date()}'"
    end_day = scalar_period(end, "D")
    in_rfm = f"\"timestamp\" < TIMESTAMP '{rfm_cut}'"
    per_values = [
        f'min("timestamp") FILTER (WHERE {in_rfm}) AS t0',
        f'max("timestamp") FILTER (WHERE {in_rfm}) AS t1',
        f"count(*) FILTER (WHERE {in_rfm}) AS n",
    ]
    if with_amount:
        # exact integer sums (btyd._SQL_SPEND_PARTS): DuckDB adds a group's values in parallel
        # in no fixed order; these sums do not depend on it, and equal Spark's bit for bit
        parts = _SQL_SPEND_PARTS.replace(" AS aw", f" FILTER (WHERE {in_rfm}) AS sw")
        per_values += [_SQL_SPEND_PARTS, parts.replace(" AS au", f" FILTER (WHERE {in_rfm}) AS su")]
    day = "(CAST({} AS DATE) - DATE '1970-01-01')"
    tenure = f"({end_day} - {day.format('min(t0)')})::DOUBLE"
    exposure = (
        f"((CASE WHEN {tenure} > {min_tenure!r} THEN {tenure} ELSE {min_tenure!r} END) "
        f"/ {DAYS_PER_YEAR!r})"
    )
    out = [
        "(count(*) - 1)::DOUBLE AS frequency",
        f"{_sql_periods('min(p)', 'max(p)', freq)}::DOUBLE AS recency",
        f'{_sql_periods("min(p)", end_start, freq)}::DOUBLE AS "T"',
    ]
    if with_amount:
        out.append(f"{_sql_monetary()} AS monetary_value")
    spend = _sql_exact_spend("coalesce(sum(sw), 0)", "coalesce(sum(su), 0)")
    out += [
        f"({end_day} - {day.format('max(t1)')})::DOUBLE AS recency_days",
        "sum(n)::BIGINT AS n_orders",
    ]
    if with_amount:
        out += [
            f"{spend}::DOUBLE AS total_spend",
            f"({spend} / sum(n))::DOUBLE AS avg_order_value",
        ]
    out += [
        "min(t0) AS first_purchase",
        "max(t1) AS last_purchase",
        f"{tenure} AS tenure_days",
        f"(sum(n) / {exposure})::DOUBLE AS orders_per_year",
    ]
    if with_amount:
        out.append(f"({spend} / {exposure})::DOUBLE AS spend_per_year")
    out.append("sum(n) > 0 AS _rfm")
    return f"""
        WITH per AS (
            SELECT {key_list}, {_SQL_PERIOD[freq]} AS p, {", ".join(per_values)}
            FROM tx WHERE "timestamp" < TIMESTAMP '{btyd_cut}'
            GROUP BY ALL
        )
        SELECT {key_list}, {", ".join(out)}
        FROM per GROUP BY ALL ORDER BY {key_list}
    """
