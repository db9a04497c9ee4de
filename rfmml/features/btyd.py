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

from typing import Any

import narwhals as nw
import pandas as pd

from rfmml.errors import DataError
from rfmml.features._engine import (
    Frame,
    as_timestamp,
    check_freq,
    end_cutoff,
    open_frame,
    period_number,
    scalar,
    scalar_period,
)

__all__ = ["btyd_summary", "calibration_holdout"]

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
    columns = tx.collect_schema().names() if hasattr(tx, "collect_schema") else list(tx.columns)
    return "amount" in columns


def _summary_query(
    lazy: nw.LazyFrame, end_period: int, freq: str, keys: list[str], with_amount: bool
) -> nw.LazyFrame:
    """The BTYD summary as a lazy query (two aggregations and one window)."""
    rows = lazy.with_columns(period_number("timestamp", freq).alias("_period"))
    rows = rows.filter(nw.col("_period") <= end_period)
    per_period = rows.group_by([*keys, "_period"]).agg(
        nw.col("amount").sum() if with_amount else nw.len().alias("_n")
    )
    aggs = [
        nw.col("_period").min().alias("_first"),
        nw.col("_period").max().alias("_last"),
        nw.len().alias("_periods"),
    ]
    if with_amount:
        per_period = per_period.with_columns(nw.col("_period").min().over(*keys).alias("_p0"))
        repeat = nw.when(nw.col("_period") > nw.col("_p0")).then(nw.col("amount"))
        aggs.append(repeat.mean().alias("monetary_value"))
    out = per_period.group_by(keys).agg(*aggs)
    columns = [
        (nw.col("_periods") - 1).cast(nw.Float64).alias("frequency"),
        (nw.col("_last") - nw.col("_first")).cast(nw.Float64).alias("recency"),
        (nw.lit(end_period) - nw.col("_first")).cast(nw.Float64).alias("T"),
    ]
    if with_amount:
        columns.append(nw.col("monetary_value").fill_null(0.0).cast(nw.Float64))
    return out.select(*keys, *columns)


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
    frame = open_frame(tx, _required(group, with_amount), engine)
    end = _resolve_end(frame, observation_end)
    query = _summary_query(frame.lazy, scalar_period(end, freq), freq, keys, with_amount)
    out = frame.collect(query, keys)
    _stamp(out, freq=freq, observation_end=end)
    return out


def _resolve_end(frame: Frame, observation_end: Any) -> pd.Timestamp:
    if observation_end is None:
        return scalar(frame.lazy, nw.col("timestamp").max())
    return as_timestamp(observation_end, "observation_end")


def _stamp(out: Any, **meta: Any) -> None:
    if isinstance(out, pd.DataFrame):
        for key, value in meta.items():
            out.attrs[key] = value.isoformat() if isinstance(value, pd.Timestamp) else value


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
        of the holdout transactions, 0 when none) and ``duration_holdout``
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
        raise ValueError(
            f"calibration_end ({cal_end}) must be before observation_end ({obs_end})"
        )
    cal_cut, obs_cut = end_cutoff(cal_end), end_cutoff(obs_end)
    ts = nw.col("timestamp")
    cal_rows = frame.lazy.filter(ts < nw.lit(cal_cut.to_pydatetime()))
    hold_rows = frame.lazy.filter(
        (ts >= nw.lit(cal_cut.to_pydatetime())) & (ts < nw.lit(obs_cut.to_pydatetime()))
    )
    cal_period = scalar_period(cal_end, freq)
    calibration = _summary_query(cal_rows, cal_period, freq, keys, with_amount)
    calibration = calibration.rename({c: f"{c}_cal" for c in _SUMMARY if c != "monetary_value"})
    if with_amount:
        calibration = calibration.rename({"monetary_value": "monetary_value_cal"})

    hold = hold_rows.with_columns(period_number("timestamp", freq).alias("_period"))
    aggs = [nw.col("_period").n_unique().alias("frequency_holdout")]
    if with_amount:
        aggs.append(nw.col("amount").mean().alias("monetary_value_holdout"))
    holdout = hold.group_by(keys).agg(*aggs)
    joined = calibration.join(holdout, on=keys, how="left")
    fill = [nw.col("frequency_holdout").fill_null(0).cast(nw.Float64)]
    if with_amount:
        fill.append(nw.col("monetary_value_holdout").fill_null(0.0).cast(nw.Float64))
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
    _stamp(out, freq=freq, calibration_end=cal_end, observation_end=obs_end)
    return out
