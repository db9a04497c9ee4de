"""BTYD summaries: ``frequency``, ``recency``, ``T``, ``monetary_value`` per customer.

Definitions (the conventions of the BTYD literature and of lifetimes'
``summary_data_from_transaction_data``), with time cut into calendar periods of
``freq`` (day, Monday-starting week, or calendar month):

``frequency``
    Number of *repeat* purchase periods: distinct periods with a purchase, minus one.
``recency``
    Periods from the first to the last purchase period (0 for one-time buyers).
``T``
    Periods from the first purchase period to the observation end's period.
``monetary_value``
    Mean value of the repeat purchase periods (amounts summed within a period;
    the first period excluded), 0 when there is none.

Periods are whole calendar periods, so ``freq="M"`` counts calendar months
(lifetimes divides by an average month of 30.44 days instead).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import narwhals as nw
import numpy as np
import pandas as pd

from rfmml._compiled import compiled_module
from rfmml.data.transactions import end_cutoff
from rfmml.errors import DataError
from rfmml.features._engine import (
    Frame,
    as_timestamp,
    check_freq,
    columns_of,
    next_period_start,
    open_frame,
    period_number,
    period_start,
    prepare_pandas,
    scalar,
    scalar_period,
)
from rfmml.features._spark import is_spark, with_attrs
from rfmml.features._threads import THREADS_MIN_ROWS, available_workers

_T = TypeVar("_T")

__all__ = ["btyd_summary", "calibration_holdout", "calibration_summary"]

_SUMMARY = ["frequency", "recency", "T", "monetary_value"]


def _keys(group: str | None) -> list[str]:
    return ["customer_id"] if group is None else ["customer_id", group]


def _required(group: str | None, with_amount: bool) -> list[str]:
    cols = ["customer_id", "timestamp"]
    if with_amount:
        cols.append("amount")
    if group is not None:
        cols.append(group)
    return cols


def _has_amount(tx: Any) -> bool:
    return "amount" in columns_of(tx)


def _period_sums(
    lazy: nw.LazyFrame, end: pd.Timestamp, freq: str, keys: list[str], with_amount: bool
) -> tuple[nw.LazyFrame, str]:
    """One row per customer and purchase period, with the period's summed amount.

    Returns the lazy frame and the name of its period column: a truncated
    timestamp for days and months (cheap to compute on every row), an integer
    week number for weeks (computed on the day-level rows, which are fewer).
    """
    rows = lazy.filter(nw.col("timestamp") < nw.lit(next_period_start(end, freq)))
    unit = "1mo" if freq == "M" else "1d"
    rows = rows.with_columns(nw.col("timestamp").dt.truncate(unit).alias("_t"))
    values = [nw.len().alias("_n")] + ([nw.col("amount").sum()] if with_amount else [])
    per_period = rows.group_by([*keys, "_t"]).agg(*values)
    if freq != "W":
        return per_period, "_t"
    per_week = per_period.with_columns(period_number("_t", "W").alias("_w"))
    values = [nw.col("_n").sum()] + ([nw.col("amount").sum()] if with_amount else [])
    return per_week.group_by([*keys, "_w"]).agg(*values), "_w"


def _summary_query(
    lazy: nw.LazyFrame, end: pd.Timestamp, freq: str, keys: list[str], with_amount: bool
) -> nw.LazyFrame:
    """The BTYD summary as a lazy query: per-period sums, then per-customer aggregates."""
    per_period, period = _period_sums(lazy, end, freq, keys, with_amount)
    aggs = [
        nw.col(period).min().alias("_first"),
        nw.col(period).max().alias("_last"),
        nw.len().alias("_periods"),
    ]
    if with_amount:
        per_period = per_period.with_columns(nw.col(period).min().over(*keys).alias("_p0"))
        repeat = nw.when(nw.col(period) > nw.col("_p0")).then(nw.col("amount"))
        aggs.append(repeat.mean().alias("monetary_value"))
    out = per_period.group_by(keys).agg(*aggs)
    if period == "_t":  # period numbers from the two timestamps per customer only
        out = out.with_columns(
            period_number("_first", freq).alias("_first"),
            period_number("_last", freq).alias("_last"),
        )
    end_period = scalar_period(end, freq)
    columns = [
        (nw.col("_periods") - 1).cast(nw.Float64).alias("frequency"),
        (nw.col("_last") - nw.col("_first")).cast(nw.Float64).alias("recency"),
        (nw.lit(end_period) - nw.col("_first")).cast(nw.Float64).alias("T"),
    ]
    if with_amount:
        columns.append(nw.col("monetary_value").fill_null(0.0).cast(nw.Float64))
    return out.select(*keys, *columns)


_SQL_PERIOD = {
    "D": 'CAST("timestamp" AS DATE)',
    "W": "CAST(date_trunc('week', \"timestamp\") AS DATE)",
    "M": "CAST(date_trunc('month', \"timestamp\") AS DATE)",
}


#: Exact spend sums (``rfmml.features._spark.spend_parts`` on Spark): per-period sums of
#: each amount's whole part and of its fraction in units of 1e-9, as integers (HUGEINT).
_SQL_WHOLE = 'sum(CAST(floor("amount") AS BIGINT))'
_SQL_UNITS = 'sum(CAST(floor(("amount" - floor("amount")) * 1e9 + 0.5) AS BIGINT))'


def sql_spend_units(window: str = "", *, narrow: bool = False) -> str:
    """A period's spend in units of 1e-9, exactly: one integer column ``s`` per period.

    One column where the parts were two halves the sum and ``arg_min`` states
    of the per-customer aggregation. With ``narrow`` it is a 64-bit integer
    (a period's spend below 9.2e9), whose per-customer sum and ``arg_min``
    cost about a third less than 128-bit ones; a period beyond it raises
    ``duckdb.ConversionException`` and the statement is run again wide
    (:func:`narrow_first`). ``window`` is a ``FILTER`` clause of the two sums.
    """
    total = f"(CAST({_SQL_WHOLE}{window} AS HUGEINT) * 1000000000 + {_SQL_UNITS}{window})"
    return f"CAST({total} AS BIGINT)" if narrow else total


def narrow_first(run: Callable[[bool], _T]) -> _T:
    """``run(True)``: 64-bit period spends; ``run(False)`` when a period's spend overflows them."""
    import duckdb

    try:
        return run(True)
    except duckdb.ConversionException:
        return run(False)


def _sql_units_to_double(total: str) -> str:
    """An exact integer number of 1e-9 units as the correctly rounded DOUBLE.

    The same computation as ``rfmml.features._spark.exact_spend``: below 2**53
    units one IEEE division by 1e9, above it the decimal text parsed; so DuckDB
    and Spark give the same bits whatever the order of the rows.
    """
    return (
        f"(CASE WHEN abs({total}) < 9007199254740992 THEN CAST({total} AS DOUBLE) / 1e9 "
        f"ELSE CAST(CAST({total} AS VARCHAR) || 'e-9' AS DOUBLE) END)"
    )


def _sql_exact_spend(whole: str, units: str) -> str:
    """``whole + units * 1e-9`` (exact integer sums) as a correctly rounded DOUBLE."""
    return _sql_units_to_double(
        f"(CAST({whole} AS HUGEINT) * 1000000000 + CAST({units} AS HUGEINT))"
    )


def _sql_monetary() -> str:
    """Mean spend of the repeat periods, from the per-period units ``s`` and periods ``p``."""
    repeat = _sql_units_to_double("(sum(s) - arg_min(s, p))")
    return f"CASE WHEN count(*) > 1 THEN {repeat} / (count(*) - 1) ELSE 0.0 END::DOUBLE"


def _sql_periods(first: str, last: str, freq: str) -> str:
    """DuckDB expression for whole periods between two period-start dates."""
    if freq == "D":
        return f"({last} - {first})"
    if freq == "W":
        return f"(({last} - {first}) // 7)"
    return f"date_diff('month', {first}, {last})"


def _summary_sql(
    relation: Any,
    end: pd.Timestamp,
    freq: str,
    keys: list[str],
    with_amount: bool,
    narrow: bool = False,
) -> Any:
    """The BTYD summary as one DuckDB statement (the embedded engine's fast path).

    Same definitions as :func:`_summary_query`, written for DuckDB: the first
    period's value comes from ``arg_min`` in the same aggregation, so no window
    or join over the per-period rows is needed (about 2x faster at 10M rows).
    Spend is summed exactly (:func:`sql_spend_units`), as on Spark.
    """
    key_list = ", ".join(f'"{k}"' for k in keys)
    cut = pd.Timestamp(next_period_start(end, freq)).isoformat(sep=" ")
    end_start = f"DATE '{period_start(end, freq).date()}'"
    value = f", {sql_spend_units(narrow=narrow)} AS s" if with_amount else ""
    monetary = f", {_sql_monetary()} AS monetary_value" if with_amount else ""
    sql = f"""
        WITH per AS (
            SELECT {key_list}, {_SQL_PERIOD[freq]} AS p{value}
            FROM tx WHERE "timestamp" < TIMESTAMP '{cut}'
            GROUP BY ALL
        )
        SELECT {key_list},
            (count(*) - 1)::DOUBLE AS frequency,
            {_sql_periods("min(p)", "max(p)", freq)}::DOUBLE AS recency,
            {_sql_periods("min(p)", end_start, freq)}::DOUBLE AS "T"{monetary}
        FROM per GROUP BY ALL ORDER BY {key_list}
    """
    return relation.query("tx", sql)


def btyd_summary(
    tx: Any,
    observation_end: Any = None,
    freq: str = "D",
    group: str | None = None,
    *,
    engine: str | None = None,
) -> Any:
    """Summarise a transaction log into BTYD features, one row per customer (and group).

    Parameters
    ----------
    tx : pandas.DataFrame, polars.DataFrame, duckdb relation or pyspark DataFrame
        Canonical transactions: ``customer_id``, ``timestamp``, optional
        ``amount`` (see :func:`rfmml.data.read_transactions`).
    observation_end : date-like, optional
        End of the observation period; defaults to the last transaction. Purchases
        in later periods are ignored.
    freq : {"D", "W", "M"}, default "D"
        Period unit of ``frequency``, ``recency`` and ``T``.
    group : str, optional
        A column to summarise within (channel, country, ...): one row per
        customer and group.
    engine : {"duckdb", "polars"}, optional
        Engine for pandas input (DuckDB by default). Other inputs run on their own engine.

    Returns
    -------
    Same type as ``tx``
        For pandas, a DataFrame indexed by ``customer_id`` (or ``customer_id`` and
        ``group``), sorted, with float columns ``frequency``, ``recency``, ``T`` and
        ``monetary_value`` (when ``tx`` has ``amount``); ``attrs`` carries
        ``freq`` and ``observation_end``. Other types return the keys as columns.

    Raises
    ------
    DataError
        Missing columns, an empty log, or missing values.

    Examples
    --------
    >>> from rfmml.data import load_cdnow
    >>> summary = btyd_summary(load_cdnow(), freq="W")
    >>> summary.loc[3, ["frequency", "recency", "T"]].to_dict()
    {'frequency': 5.0, 'recency': 73.0, 'T': 78.0}
    """
    check_freq(freq)
    keys = _keys(group)
    with_amount = _has_amount(tx)
    if is_spark(tx):  # Spark's own functions: one check pass, exact spend sums
        from rfmml.features._spark import spark_btyd_summary

        out, end = spark_btyd_summary(
            tx, observation_end, freq, keys, _required(group, with_amount)
        )
        return _stamp(out, freq=freq, observation_end=end, group=group)
    if _compiled_eligible(tx, _required(group, with_amount), group, engine):
        clean = prepare_pandas(tx, _required(group, with_amount))
        summary = _summary_compiled(clean, observation_end, freq, with_amount)
        if summary is not None:
            out, end = summary
            return _stamp(out, freq=freq, observation_end=end, group=group)
    frame = open_frame(tx, _required(group, with_amount), engine)
    end = _resolve_end(frame, observation_end)
    if frame.on_duckdb and frame.kind == "duckdb":  # a lazy relation out: 128-bit sums
        out = _summary_sql(frame.lazy.to_native(), end, freq, keys, with_amount)
    elif frame.on_duckdb:
        relation = frame.lazy.to_native()
        out = narrow_first(
            lambda narrow: frame.collect_sql(
                _summary_sql(relation, end, freq, keys, with_amount, narrow), keys
            )
        )
    else:
        out = frame.collect(_summary_query(frame.lazy, end, freq, keys, with_amount), keys)
    return _stamp(out, freq=freq, observation_end=end, group=group)


#: Log rows from which a pandas log's summary takes the compiled pass
#: (:func:`rfmml.features._features_kernel.summarise`): below it DuckDB's statement costs
#: less than importing numba and loading the compiled loops, about 0.65 s in a fresh
#: process (measured, fresh processes: 1M rows 0.9 s against DuckDB's 0.4-0.8 s, 2M rows
#: 0.9 s against 0.9-1.5 s, 3M rows 0.9 s against 2.1-2.6 s, 10M rows 2.2 s against
#: 4.4-6.5 s; since the rows are partitioned by block of customers, 10M rows 1.4-1.7 s,
#: the first call of a process, and 0.5-0.6 s the next).
COMPILED_MIN_ROWS = 2_000_000


def _compiled_eligible(tx: Any, required: list[str], group: str | None, engine: str | None) -> bool:
    """Whether the compiled pass can summarise ``tx``.

    It takes a pandas log of :data:`COMPILED_MIN_ROWS` rows or more with numpy
    integer customer ids, no group, on the default engine, with numba installed.
    """
    if not (isinstance(tx, pd.DataFrame) and group is None and engine in (None, "duckdb")):
        return False
    if len(tx) < COMPILED_MIN_ROWS or not tx.columns.is_unique:
        return False
    if not all(c in tx.columns for c in required):
        return False  # (missing columns: the error of open_frame)
    dtype = tx["customer_id"].dtype
    if not (isinstance(dtype, np.dtype) and dtype.kind in "iu"):
        return False
    return compiled_module("rfmml.features._features_kernel") is not None


def customer_numbers(ids: np.ndarray) -> tuple[np.ndarray, int, np.ndarray, np.ndarray | None]:
    """Integer customer ids numbered in id order for :mod:`rfmml.features._features_kernel`.

    Returns ``keys, lo, rank, uniques``: the ids themselves and their minimum
    (``rank`` empty, ``uniques`` None) when their range is at most the number
    of rows, else factorised codes, each code's rank and the sorted uniques.
    """
    lo, hi = ids.min(), ids.max()
    if ids.dtype.kind == "i" and int(hi) - int(lo) < len(ids):
        return ids, int(lo), np.empty(0, np.int64), None
    keys, factorised = pd.factorize(ids)
    order = np.argsort(factorised, kind="stable")
    rank = np.empty(len(order), np.int64)
    rank[order] = np.arange(len(order))
    return keys, 0, rank, factorised[order]


def exact_monetary(monetary: np.ndarray, frequency: np.ndarray, repeat: np.ndarray) -> None:
    """Fill the NaN monetary values (repeat spends of 2**53 units or more) from their units."""
    for k in np.flatnonzero(np.isnan(monetary)):
        monetary[k] = float(f"{int(repeat[k])}e-9") / frequency[k]


def _summary_compiled(
    clean: pd.DataFrame, observation_end: Any, freq: str, with_amount: bool
) -> tuple[pd.DataFrame, pd.Timestamp] | None:
    """The summary of a cleaned pandas log by the compiled pass, and its observation end.

    Customers are numbered in id order: by the ids themselves when their range
    is at most the number of rows, else by a factorisation with sorted uniques.
    None when a customer's spend reaches ``_btyd_kernel.SPEND_GUARD`` (the
    DuckDB statement then sums it in 128 bits).
    """
    from rfmml.features import _features_kernel

    ts = clean["timestamp"].to_numpy().view(np.int64)
    if observation_end is None:
        end = pd.Timestamp(clean["timestamp"].to_numpy().max())
    else:
        end = as_timestamp(observation_end, "observation_end")
    cut = int(np.datetime64(next_period_start(end, freq), "us").astype(np.int64))
    ids = clean["customer_id"].to_numpy()
    keys, lo, rank, uniques = customer_numbers(ids)
    amount = clean["amount"].to_numpy() if with_amount else None
    args = (keys, lo, rank, ts, amount, cut, "DWM".index(freq), scalar_period(end, freq))
    # on several threads from THREADS_MIN_ROWS rows: the values of one thread, bit for bit
    workers = available_workers() if len(keys) >= THREADS_MIN_ROWS else 1
    result = _features_kernel.summarise(*args, workers=workers)
    if result is None or len(result[0]) == 0:  # (no row in the observation: as the statement)
        return None
    customer, frequency, recency, age, monetary, flag, _ = result
    if flag == 2:  # repeat spends of 2**53 units or more: through their decimal text
        repeat = _features_kernel.summarise(*args, keep_repeat=True, workers=workers)[6]
        exact_monetary(monetary, frequency, repeat)
    index_values = customer.astype(ids.dtype, copy=False) if uniques is None else uniques[customer]
    columns = {"frequency": frequency, "recency": recency, "T": age}
    if with_amount:
        columns["monetary_value"] = monetary
    index = pd.Index(index_values, name="customer_id")
    return pd.DataFrame(columns, index=index, copy=False), end


def _resolve_end(frame: Frame, observation_end: Any) -> pd.Timestamp:
    if observation_end is None:
        return scalar(frame.lazy, nw.col("timestamp").max())
    return as_timestamp(observation_end, "observation_end")


def _stamp(out: Any, *, group: str | None = None, **meta: Any) -> Any:
    """Record ``meta`` on a result: ``attrs`` for pandas, column metadata for Spark.

    A Spark result also records its ``group`` column (pandas has it in the index).
    """
    if isinstance(out, pd.DataFrame):
        for key, value in meta.items():
            out.attrs[key] = value.isoformat() if isinstance(value, pd.Timestamp) else value
    elif is_spark(out):
        return with_attrs(out, **meta, **({"group": group} if group is not None else {}))
    return out


def calibration_holdout(
    tx: Any,
    calibration_end: Any,
    observation_end: Any = None,
    freq: str = "D",
    group: str | None = None,
    *,
    engine: str | None = None,
) -> Any:
    """Split a log into a calibration summary and what happened in the holdout period.

    Transactions up to ``calibration_end`` give the BTYD summary (suffix
    ``_cal``); those after it, up to ``observation_end``, give the holdout
    outcome for the same customers. Customers first seen in the holdout
    period are not included (the models cannot score them).

    Parameters
    ----------
    tx : pandas.DataFrame, polars.DataFrame, duckdb relation or pyspark DataFrame
        Canonical transactions.
    calibration_end : date-like
        Last moment of the calibration period; a bare date includes its whole day.
    observation_end : date-like, optional
        Last moment of the holdout period; defaults to the last transaction.
    freq : {"D", "W", "M"}, default "D"
        Period unit.
    group : str, optional
        Column to split by (one row per customer and group).
    engine : {"duckdb", "polars"}, optional
        Engine for pandas input.

    Returns
    -------
    Same type as ``tx``
        Columns ``frequency_cal``, ``recency_cal``, ``T_cal``,
        ``monetary_value_cal`` (with amounts), ``frequency_holdout`` (distinct
        purchase periods in the holdout), ``monetary_value_holdout`` (mean value
        of the holdout transactions, 0 when none), ``spend_holdout`` (exact total
        of the holdout transactions, with amounts) and ``duration_holdout``
        (periods from the calibration end's period to the observation end's).

    Raises
    ------
    DataError
        No transaction in one of the two periods, or bad input.
    ValueError
        If ``calibration_end`` is not before ``observation_end``.
    """
    check_freq(freq)
    keys = _keys(group)
    with_amount = _has_amount(tx)
    frame = open_frame(tx, _required(group, with_amount), engine)
    cal_end = as_timestamp(calibration_end, "calibration_end")
    obs_end = _resolve_end(frame, observation_end)
    if cal_end >= obs_end:
        raise ValueError(f"calibration_end ({cal_end}) must be before observation_end ({obs_end})")
    cal_cut, obs_cut = end_cutoff(cal_end), end_cutoff(obs_end)
    ts = nw.col("timestamp")
    cal_rows = frame.lazy.filter(ts < nw.lit(cal_cut.to_pydatetime()))
    hold_rows = frame.lazy.filter(
        (ts >= nw.lit(cal_cut.to_pydatetime())) & (ts < nw.lit(obs_cut.to_pydatetime()))
    )
    cal_period = scalar_period(cal_end, freq)
    calibration = _summary_query(cal_rows, cal_end, freq, keys, with_amount)
    calibration = calibration.rename({c: f"{c}_cal" for c in _SUMMARY if c != "monetary_value"})
    if with_amount:
        calibration = calibration.rename({"monetary_value": "monetary_value_cal"})

    hold, _ = _period_sums(hold_rows, obs_end, freq, keys, with_amount)
    aggs = [nw.len().alias("frequency_holdout")]
    if with_amount:  # mean value of the holdout transactions (not of period sums)
        aggs += [nw.col("amount").sum().alias("_total"), nw.col("_n").sum().alias("_rows")]
    holdout = hold.group_by(keys).agg(*aggs)
    if with_amount:
        holdout = holdout.select(
            *keys,
            "frequency_holdout",
            (nw.col("_total") / nw.col("_rows")).alias("monetary_value_holdout"),
            nw.col("_total").alias("spend_holdout"),
        )
    joined = calibration.join(holdout, on=keys, how="left")
    fill = [nw.col("frequency_holdout").fill_null(0).cast(nw.Float64)]
    if with_amount:
        fill += [
            nw.col(c).fill_null(0.0).cast(nw.Float64)
            for c in ("monetary_value_holdout", "spend_holdout")
        ]
    duration = scalar_period(obs_end, freq) - cal_period
    joined = joined.with_columns(*fill, nw.lit(float(duration)).alias("duration_holdout"))
    out = frame.collect(joined, keys)
    if isinstance(out, pd.DataFrame):
        if out.empty:
            raise DataError(f"no transaction on or before calibration_end={cal_end}")
        if not (out["frequency_holdout"] > 0).any():
            raise DataError(
                f"no repeat purchase by a calibration customer between {cal_end} and "
                f"{obs_end}: the holdout period is empty"
            )
    return _stamp(out, freq=freq, calibration_end=cal_end, observation_end=obs_end, group=group)


def calibration_summary(cal_holdout: pd.DataFrame) -> pd.DataFrame:
    """The calibration half of :func:`calibration_holdout`, under the summary's names.

    ``frequency_cal``, ``recency_cal``, ``T_cal`` (and ``monetary_value_cal``)
    become ``frequency``, ``recency``, ``T`` (and ``monetary_value``): the frame
    the models are fitted on for a holdout evaluation. ``attrs`` (``freq``,
    dates) are kept.

    Raises
    ------
    DataError
        If the ``_cal`` columns are missing.
    """
    names = {f"{c}_cal": c for c in _SUMMARY}
    present = {k: v for k, v in names.items() if k in cal_holdout.columns}
    missing = [k for k in ("frequency_cal", "recency_cal", "T_cal") if k not in present]
    if missing:
        raise DataError(
            f"calibration_summary: column(s) {missing} not found; pass the output of "
            "rfmml.features.calibration_holdout"
        )
    summary = cal_holdout[list(present)].rename(columns=present)
    summary.attrs = dict(cal_holdout.attrs)
    return summary
