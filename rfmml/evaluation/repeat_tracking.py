"""Repeat-transaction tracking: actual against expected, per period, over calibration and holdout.

The standard BTYD tracking check (Fader, Hardie & Lee 2005, fig. 2): the
cohort is every customer whose first purchase falls in the calibration period;
the actual series counts their repeat transactions per period (each customer's
first purchase period excluded, one transaction per customer and period, as in
the summary's ``frequency``); the expected series of a model is

    E[cumulative repeat transactions at period k] = sum_i E[X(k - p_i)]

where ``p_i`` is customer i's first-purchase period and ``E[X(t)]`` the model's
expected purchases of a new customer in ``(0, t]``
(``expected_purchases_new_customer``). Customers sharing a first period share
the term, so the sum is a convolution of the cohort sizes with ``E[X(.)]``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

from rfmml.data import ScannedLog
from rfmml.errors import DataError
from rfmml.features._engine import check_freq, next_period_start, scalar_period
from rfmml.features._spark import is_spark
from rfmml.models import PurchaseModel

__all__ = ["repeat_transaction_tracking", "tracking_curves", "tracking_mape"]

_EPOCH = pd.Timestamp("1970-01-01")


def _period_numbers(timestamps: pd.Series, freq: str) -> np.ndarray:
    """Calendar period numbers (the numbering of the BTYD summary)."""
    ts = pd.to_datetime(timestamps)
    if freq == "M":
        return (ts.dt.year * 12 + ts.dt.month - 1).to_numpy(dtype=np.int64)
    day = ((ts.dt.normalize() - _EPOCH) // pd.Timedelta(days=1)).to_numpy(dtype=np.int64)
    return day if freq == "D" else (day + 3) // 7


def _period_starts(periods: np.ndarray, freq: str) -> pd.DatetimeIndex:
    if freq == "D":
        return pd.DatetimeIndex(_EPOCH + pd.to_timedelta(periods, unit="D"))
    if freq == "W":
        return pd.DatetimeIndex(_EPOCH + pd.to_timedelta(7 * periods - 3, unit="D"))
    return pd.DatetimeIndex(
        [pd.Timestamp(year=int(p // 12), month=int(p % 12) + 1, day=1) for p in periods]
    )


def tracking_inputs(
    columns: Sequence[str],
    calibration_end: pd.Timestamp | str,
    observation_end: pd.Timestamp | str,
    freq: str,
    keys: Sequence[str],
) -> tuple[list[str], pd.Timestamp, pd.Timestamp]:
    """The checked keys and the two ends of :func:`repeat_transaction_tracking` (every engine).

    Raises
    ------
    ValueError
        An unknown ``freq``.
    DataError
        The log lacks a key or ``timestamp`` column.
    """
    check_freq(freq)
    keys = list(keys)
    missing = [c for c in [*keys, "timestamp"] if c not in columns]
    if missing:
        raise DataError(f"repeat_transaction_tracking: transactions lack column(s) {missing}.")
    return keys, pd.Timestamp(calibration_end), pd.Timestamp(observation_end)


def repeat_transaction_tracking(
    transactions: pd.DataFrame,
    models: Mapping[str, PurchaseModel],
    calibration_end: pd.Timestamp | str,
    observation_end: pd.Timestamp | str,
    *,
    freq: str = "D",
    keys: Sequence[str] = ("customer_id",),
) -> pd.DataFrame:
    """Actual and expected repeat transactions per period, incremental and cumulative.

    Parameters
    ----------
    transactions : pandas.DataFrame, ScannedLog or pyspark.sql.DataFrame
        Clean transactions with the ``keys`` columns and ``timestamp``. A Spark
        log is counted inside Spark, a :class:`~rfmml.data.ScannedLog`
        (:func:`rfmml.data.scan_transactions`) inside DuckDB (one number per
        period is collected).
    models : mapping of str to PurchaseModel
        Purchase models fitted on the calibration summary (same ``freq``), by label.
    calibration_end, observation_end : date-like
        The cohort is customers (rows of ``keys``) whose first purchase is on or
        before ``calibration_end``; the series run to ``observation_end``.
    freq : {"D", "W", "M"}, default "D"
        Period of the series (the models' time unit).
    keys : sequence of str, default ("customer_id",)
        Columns that identify a customer (add the group column for per-group fits).

    Returns
    -------
    pandas.DataFrame
        Indexed by ``period`` (the start date of each period from the cohort's
        first purchase to ``observation_end``): ``holdout`` (bool, the period is
        after the calibration period), ``actual`` and ``actual_cumulative``, and
        per model ``<label>`` and ``<label>_cumulative``. ``attrs`` holds
        ``freq``, ``calibration_end``, ``observation_end``, ``n_customers``.

    Raises
    ------
    DataError
        Missing columns, or no customer's first purchase in the calibration period.
    """
    if is_spark(transactions):  # counted inside Spark, the same table back
        from rfmml.evaluation._spark import repeat_tracking_spark

        return repeat_tracking_spark(transactions, models, calibration_end, observation_end,
                                     freq=freq, keys=keys)  # fmt: skip
    if isinstance(transactions, ScannedLog):  # counted inside DuckDB, the same table back
        return _repeat_tracking_duckdb(transactions, models, calibration_end, observation_end,
                                       freq=freq, keys=keys)  # fmt: skip
    keys, cal_end, obs_end = tracking_inputs(
        transactions.columns, calibration_end, observation_end, freq, keys
    )
    tx = transactions.loc[
        transactions["timestamp"] < pd.Timestamp(next_period_start(obs_end, freq)),
        [*keys, "timestamp"],
    ]
    visits = tx[keys].assign(_p=_period_numbers(tx["timestamp"], freq)).drop_duplicates()
    first = visits.groupby(keys, sort=False, observed=True)["_p"].transform("min")
    cal_period, end_period = scalar_period(cal_end, freq), scalar_period(obs_end, freq)
    cohort = visits.loc[first.to_numpy() <= cal_period]
    first_c = first.to_numpy()[first.to_numpy() <= cal_period]
    if len(cohort) == 0:
        raise DataError(
            f"repeat_transaction_tracking: no customer first bought on or before "
            f"{cal_end.date()}; nothing to track."
        )
    start = int(first_c.min())
    is_first = cohort["_p"].to_numpy() == first_c
    repeat_periods = cohort["_p"].to_numpy()[~is_first] - start
    n_periods = end_period - start + 1
    actual = np.bincount(repeat_periods, minlength=n_periods)[:n_periods].astype(float)
    births = np.bincount(first_c[is_first] - start, minlength=n_periods)[:n_periods]
    return tracking_curves(actual, births, start, models, cal_end, obs_end, freq=freq)


def _sql_period(freq: str) -> str:
    """DuckDB expression of :func:`_period_numbers` for the ``timestamp`` column."""
    if freq == "M":
        return 'year("timestamp") * 12 + month("timestamp") - 1'
    day = "date_diff('day', DATE '1970-01-01', CAST(\"timestamp\" AS DATE))"
    return day if freq == "D" else f"CAST(floor(({day} + 3) / 7) AS BIGINT)"


def _repeat_tracking_duckdb(
    log: ScannedLog,
    models: Mapping[str, PurchaseModel],
    calibration_end: pd.Timestamp | str,
    observation_end: pd.Timestamp | str,
    *,
    freq: str,
    keys: Sequence[str],
) -> pd.DataFrame:
    """:func:`repeat_transaction_tracking` of a log held by DuckDB.

    The cohort's repeat transactions and first purchases per period are
    counted by one statement; one row per period reaches pandas (the same
    counts as the pandas path, which :func:`tracking_curves` then turns into
    the same table).
    """
    keys, cal_end, obs_end = tracking_inputs(
        log.columns, calibration_end, observation_end, freq, keys
    )
    cut = pd.Timestamp(next_period_start(obs_end, freq)).isoformat(sep=" ")
    cal_period, end_period = scalar_period(cal_end, freq), scalar_period(obs_end, freq)
    key_sql = ", ".join('"' + k.replace('"', '""') + '"' for k in keys)
    counts = log.connection.sql(
        f"""WITH visits AS (
                SELECT DISTINCT {key_sql}, {_sql_period(freq)} AS p
                FROM {log.table} WHERE "timestamp" < TIMESTAMP '{cut}'
            ), cohort AS (
                SELECT p, min(p) OVER (PARTITION BY {key_sql}) AS first FROM visits
            )
            SELECT p, count_if(p <> first) AS repeats, count_if(p = first) AS births
            FROM cohort WHERE first <= {cal_period} GROUP BY p ORDER BY p"""
    ).fetchnumpy()  # at most one row per period
    periods = np.asarray(counts["p"], dtype=np.int64)
    born = np.asarray(counts["births"], dtype=np.int64)
    if not born.any():
        raise DataError(
            f"repeat_transaction_tracking: no customer first bought on or before "
            f"{cal_end.date()}; nothing to track."
        )
    start = int(periods[born > 0].min())
    n_periods = end_period - start + 1
    at = periods - start
    keep = (at >= 0) & (at < n_periods)
    actual = np.zeros(n_periods, dtype=np.int64)
    births = np.zeros(n_periods, dtype=np.int64)
    np.add.at(actual, at[keep], np.asarray(counts["repeats"], dtype=np.int64)[keep])
    np.add.at(births, at[keep], born[keep])
    return tracking_curves(actual.astype(float), births, start, models, cal_end, obs_end,
                           freq=freq)  # fmt: skip


def tracking_curves(
    actual: np.ndarray,
    births: np.ndarray,
    start: int,
    models: Mapping[str, PurchaseModel],
    calibration_end: pd.Timestamp | str,
    observation_end: pd.Timestamp | str,
    *,
    freq: str = "D",
) -> pd.DataFrame:
    """The table of :func:`repeat_transaction_tracking` from the cohort's counts per period.

    Parameters
    ----------
    actual : numpy.ndarray
        Repeat transactions of the cohort in each period from ``start`` to the
        observation end's period (one per customer and period, first periods excluded).
    births : numpy.ndarray
        Cohort customers whose first purchase is in each of those periods.
    start : int
        Period number (the BTYD summary's numbering) of the first element.
    models, calibration_end, observation_end, freq
        As in :func:`repeat_transaction_tracking`.

    Returns
    -------
    pandas.DataFrame
        As :func:`repeat_transaction_tracking`. Both the pandas path and the
        Spark path (:mod:`rfmml.evaluation._spark`, which counts in Spark) end here.
    """
    cal_end, obs_end = pd.Timestamp(calibration_end), pd.Timestamp(observation_end)
    cal_period, end_period = scalar_period(cal_end, freq), scalar_period(obs_end, freq)
    n_periods = end_period - start + 1
    actual = np.asarray(actual, dtype=float)
    births = np.asarray(births)
    periods = np.arange(start, end_period + 1)
    out = pd.DataFrame(
        {
            "holdout": periods > cal_period,
            "actual": actual,
            "actual_cumulative": np.cumsum(actual),
        },
        index=pd.Index(_period_starts(periods, freq), name="period"),
    )
    ages = np.arange(n_periods, dtype=float)
    for label, model in models.items():
        per_customer = np.asarray(model.expected_purchases_new_customer(ages), dtype=float)
        cumulative = np.convolve(births.astype(float), per_customer)[:n_periods]
        out[label] = np.diff(cumulative, prepend=0.0)
        out[f"{label}_cumulative"] = cumulative
    out.attrs.update(
        freq=freq,
        calibration_end=str(cal_end.date()),
        observation_end=str(obs_end.date()),
        n_customers=int(births.sum()),
    )
    return out


def tracking_mape(curves: pd.DataFrame, label: str) -> float:
    """Mean absolute percentage error of a model's cumulative curve over the holdout periods.

    Parameters
    ----------
    curves : pandas.DataFrame
        From :func:`repeat_transaction_tracking`.
    label : str
        A model label of ``curves``.

    Returns
    -------
    float
        ``100 * mean(|expected - actual| / actual)`` of the cumulative repeat
        transactions over the holdout periods (NaN when there are none).
    """
    rows = curves["holdout"].to_numpy() & (curves["actual_cumulative"].to_numpy() > 0)
    if not rows.any():
        return float("nan")
    actual = curves["actual_cumulative"].to_numpy()[rows]
    expected = curves[f"{label}_cumulative"].to_numpy()[rows]
    return float(100.0 * np.mean(np.abs(expected - actual) / actual))
