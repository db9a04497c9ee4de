"""The batch path inside Spark: log -> holdout -> features -> segments -> models -> table.

``engine = "spark"`` in an experiment config makes ``rfmml run`` call
:func:`run_spark_experiment` and ``rfmml predict --engine spark`` call
:func:`predict_spark`. Every step runs in Spark and returns Spark frames; the
driver receives only bounded things: the ``n - 1`` quantile edges per RFM
metric, the distinct likelihood rows with their counts, a bounded k-means
sample, one row of sums per holdout evaluation, one number per period of the
tracking curves, and a handful of example rows for the MLflow signature. The
table is written as Parquet partitioned by segment.

As the pandas run (:mod:`rfmml.pipeline`), a Spark run first judges every
purchase model of the config on a holdout: features of the calibration period
(up to ``calibration_end``) and outcomes up to ``observation_end``, computed in
Spark (:func:`~rfmml.features.calibration_holdout`); every purchase model and
Gamma-Gamma fitted on the calibration summary; holdout metrics (MAE, RMSE,
total error, AUC and Brier of "buys again", spend MAE) aggregated in Spark by
:func:`~rfmml.evaluation._spark.evaluate_holdouts_spark`, fit statistics (log
likelihood, AIC, BIC) and the tracking error of repeat transactions; the model
chosen by ``[models] selection``; ``model_comparison.csv`` (with the naive
baseline), ``model_metrics.csv`` and ``tracking.csv``; one MLflow child run per
purchase model. Then it refits the chosen model and Gamma-Gamma on the whole
period and scores every customer, with interval columns when ``[models]
interval`` asks for them (parametric draws made on the driver from
``random_state``, as the pandas run draws them, and sent to the workers with
the models). With ``[data] group`` every step is per customer and group as in
the pandas run: the holdout leaves out the (customer, group) pairs first seen
after the calibration end, the models are fitted on the (customer, group) rows
pooled, and the rule segmenter learns its edges within each group (groups
under ``min_group_size`` customers get the pooled edges).

What a Spark run does not do (use ``engine = "pandas"`` for these): it does not
evaluate or rank the segmentations (the rule segmenter is the first ``rules``
segmentation and the k-means segmenter the first ``kmeans`` one), follow
segment transitions, draw figures or the HTML report, give the interval totals
per segment or ``probability_top_clv`` (only the per-customer interval
columns), or bootstrap intervals (``interval_method = "bootstrap"`` is
refused), and it refuses the reading options of ``_UNSUPPORTED`` (the customer
sample, the decimal mark) and ``negative_amounts = "net"`` (clean the log
upstream).

The reader (:func:`read_spark_transactions`) cleans as the pandas reader does,
with its reasons: ``status``/``exclude_status``, ``currency``/``currency_column``,
missing ids, groups, timestamps and amounts, ``since``/``until``, the observation
end (without one: rows dated in the future), negative and zero amounts,
identical rows, ids trimmed, ``normalize_ids``, the observation end's margin
(``allow_end_beyond_data``), isolated dates flagged, and order ids (the lines
of an order summed into one row, rows without an order id kept as they are),
line items (``quantity`` x ``price``) and cancellation orders
(``cancellation_prefix``), order lines without their order's customer id,
time, total or currency filled from the order's other lines; it refuses float
order ids. A run counts the rows removed per reason in one Spark aggregation
(with order ids, one more over the orders' rows) and writes them as
``cleaning_report.json`` (logged to MLflow as the pandas run logs it). pyspark is
imported inside the functions.
"""

from __future__ import annotations

import logging
import tempfile
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import pandas as pd

from rfmml import tracking
from rfmml._documents import replacing
from rfmml.campaign import ScoringPipeline, score_customers
from rfmml.campaign._spark import write_spark_predictions
from rfmml.campaign.pipeline_model import scoring_frame
from rfmml.config import BUILTIN_SOURCES, PURCHASE_MODEL_LABELS, DataConfig, ExperimentConfig
from rfmml.data import load_cdnow, load_online_retail
from rfmml.data._cleaning import (
    _DECIMALS,
    check_end_margin,
    copied_orders_note,
    order_fields_note,
    unmatched_states_note,
)
from rfmml.data._parse import (
    _CASE_EXAMPLES,
    _EPOCH_LIMIT,
    _EPOCH_UNITS,
    _SHOW,
    EPOCH_SECONDS,
    ID_PADDING,
    epoch_unit,
    mixed_units_error,
    not_unix_time_error,
    trimmed_ids_note,
)
from rfmml.data.report import CleaningReport
from rfmml.data.transactions import (
    ISOLATED_REASON,
    TransactionSchema,
    _status_values,
    check_currencies,
    currency_reason,
    date_bounds,
    end_cutoff,
    future_rows_note,
    id_case_note,
    isolated_ends,
    isolated_rows_note,
    isolation_limit,
    since_reason,
    until_reason,
    with_currency_column,
)
from rfmml.errors import ConfigError, DataError
from rfmml.evaluation import fit_statistics, tracking_mape
from rfmml.evaluation._spark import (
    evaluate_holdouts_spark,
    holdout_counts,
    repeat_tracking_spark,
)
from rfmml.evaluation.model_choice import (
    baseline_beats_message,
    choose_model,
    comparison_table,
    degenerate_message,
)
from rfmml.features import btyd_summary, calibration_holdout, rfm_table
from rfmml.features._spark import frame_attrs
from rfmml.models import GammaGamma, PurchaseModel, StandardErrorWarning
from rfmml.models._spark import fit_spark_summary

__all__ = [
    "SESSION_DEFAULTS",
    "SparkModelEvaluation",
    "SparkRunResult",
    "evaluate_spark_models",
    "predict_spark",
    "read_spark_transactions",
    "run_spark_experiment",
    "spark_session",
]

logger = logging.getLogger(__name__)
_T = TypeVar("_T")

#: Reading options a Spark run does not offer (they need the pandas reader's cleaning).
_UNSUPPORTED = ("sample_customers", "decimal")


@dataclass
class SparkRunResult:
    """What a Spark run wrote: the folder, the predictions, the model and the MLflow run.

    ``report`` is the reader's :class:`~rfmml.data.CleaningReport` (also written
    as ``cleaning_report.json``): the rows removed, per reason.
    """

    output_dir: Path
    predictions: Path
    model_dir: Path
    n_customers: int
    run_id: str | None = None
    model_uri: str | None = None
    chosen_model: str | None = None
    model_comparison: pd.DataFrame | None = None
    evaluation: SparkModelEvaluation | None = None
    files: dict[str, Path] = field(default_factory=dict)
    report: CleaningReport | None = None


#: The settings of a session :func:`spark_session` starts (a running session is left as it is).
SESSION_DEFAULTS: dict[str, str] = {
    # timestamps are wall-clock times: read, cut and truncated to days in UTC
    "spark.sql.session.timeZone": "UTC",
    # toPandas (the MLflow example rows) through Arrow; rfmml's own collects use toArrow
    "spark.sql.execution.arrow.pyspark.enabled": "true",
    # mapInPandas batches: scoring joins them to 200,000 rows (campaign._spark.rebatch),
    # larger Arrow batches only mean fewer hand-overs between the JVM and Python
    "spark.sql.execution.arrow.maxRecordsPerBatch": "50000",
    # adaptive execution merges the small partitions of a shuffle (on by default since
    # Spark 3.2; stated so that an older default does not leave 200 tiny tasks a shuffle)
    "spark.sql.adaptive.enabled": "true",
    "spark.sql.adaptive.coalescePartitions.enabled": "true",
    # ... also when a frame is cached (Spark keeps a cached plan's 200 partitions otherwise,
    # and every later job over the cached features runs 200 tasks)
    "spark.sql.optimizer.canChangeCachedPlanOutputPartitioning": "true",
    # one Python worker per core, kept across tasks: rfmml is imported once per worker
    "spark.python.worker.reuse": "true",
}


def spark_session(
    master: str | None = None,
    app_name: str = "rfmml",
    config: Mapping[str, str] | None = None,
) -> Any:
    """The active Spark session, or a new one on ``master`` (e.g. ``"local[2]"``).

    Parameters
    ----------
    master : str, optional
        Spark master URL of a new session.
    app_name : str, default "rfmml"
        Application name of a new session.
    config : mapping of str to str, optional
        Settings of a new session, over :data:`SESSION_DEFAULTS` (e.g.
        ``{"spark.driver.memory": "6g"}``).

    Returns
    -------
    pyspark.sql.SparkSession
        The active session unchanged when there is one: rfmml needs none of
        the defaults (it collects through Arrow and batches its own scoring),
        they only make a session it starts faster.
    """
    from pyspark.sql import SparkSession

    active = SparkSession.getActiveSession()
    if active is not None:
        return active
    builder = SparkSession.builder.appName(app_name)
    if master is not None:
        builder = builder.master(master)
    for key, value in {**SESSION_DEFAULTS, **dict(config or {})}.items():
        builder = builder.config(key, value)
    return builder.getOrCreate()


def _is_parquet(path: Path) -> bool:
    if path.is_file():
        return path.suffix == ".parquet"
    return any(path.rglob("*.parquet"))


def _spark_source(spark: Any, cfg: DataConfig) -> tuple[Any, TransactionSchema]:
    """The log of ``cfg`` as a Spark frame of its mapped columns, canonically named.

    Returns the frame (``customer_id``, ``timestamp``, ``amount``, the group,
    ``_status`` and ``_currency`` as mapped or recognised) and the schema.
    """
    from pyspark.sql import functions as F

    if cfg.source in BUILTIN_SOURCES:
        raw = load_cdnow() if cfg.source == "cdnow" else load_online_retail()
        if cfg.group is not None and cfg.group not in raw.columns:
            raise ConfigError(
                f"[data] group = {cfg.group!r} is not a column of {cfg.source}; "
                f"columns: {list(raw.columns)}"
            )
        amount = "amount" if "amount" in raw.columns and cfg.price is None else None
        schema = TransactionSchema("customer_id", "timestamp", amount, cfg.group, cfg.order,
                                   cfg.quantity, cfg.price, status=cfg.status,
                                   currency=cfg.currency_column)  # fmt: skip
        available: list[str] = list(raw.columns)
        frame = None
    else:
        path = Path(cfg.source)
        if _is_parquet(path):
            frame = spark.read.parquet(str(path))
        else:
            frame = spark.read.csv(str(path), header=True, sep=cfg.separator or ",",
                                   encoding=cfg.encoding or "UTF-8")  # fmt: skip
        amount = None if cfg.price is not None else cfg.amount or None
        schema = TransactionSchema(cfg.customer, cfg.timestamp, amount, cfg.group, cfg.order,
                                   cfg.quantity, cfg.price, status=cfg.status,
                                   currency=cfg.currency_column)  # fmt: skip
        available = list(frame.columns)
    missing = [c for c in schema.source_columns if c not in available]
    if missing:
        raise DataError(
            f"column(s) {missing} not found in {cfg.source}; available columns: "
            f"{available}. Map your names with [data] customer, timestamp, amount"
        )
    used = schema.source_columns
    twice = sorted({c for c in used if used.count(c) > 1})
    if twice:  # as the pandas reader
        raise DataError(
            f"column(s) {twice} are mapped to more than one of customer, timestamp, amount, "
            "group, order, quantity, price and status; map each to its own column"
        )
    schema = with_currency_column(schema, available)
    renames = {**schema.renames, **({schema.group: schema.group} if schema.group else {})}
    if frame is None:
        frame = spark.createDataFrame(raw[list(renames)])
    # the rows' order in the file, numbered before any shuffle (the notes name the first rows)
    columns = [F.col(f"`{k}`").alias(v) for k, v in renames.items()]
    return frame.select(*columns, F.monotonically_increasing_id().alias("_row")), schema


def _stripped(column: Any) -> Any:
    """``column`` as text without the whitespace around it (as pandas' ``str.strip``)."""
    from pyspark.sql import functions as F

    return F.regexp_replace(column.cast("string"), r"^\s+|\s+$", "")


def _epoch_times(tx: Any, column: str) -> tuple[Any, str]:
    """``timestamp`` read as Unix time (``timestamp_format = '%s'``), and its unit.

    As the pandas reader: seconds, or the finer unit every value is in
    (:func:`rfmml.data._parse.epoch_unit`: milliseconds, as JSON writes them);
    a value that is not a number, or seconds and a finer unit mixed, is refused.
    One aggregation finds the smallest and largest values.
    """
    from pyspark.sql import functions as F

    given = F.col("timestamp")
    number = _stripped(given).try_cast("double")  # text that is not a number: null
    not_number = given.isNotNull() & (_stripped(given) != "") & number.isNull()
    large = F.abs(number) >= F.lit(_EPOCH_LIMIT)
    row = tx.agg(
        F.min(F.abs(number)).alias("low"), F.max(F.abs(number)).alias("high"),
        F.count("*").alias("n"), F.count_if(not_number).alias("bad"),
        F.count_if(large).alias("large"),
        F.first(F.when(not_number, given.cast("string")), ignorenulls=True).alias("first_bad"),
        F.first(F.when(large, given.cast("string")), ignorenulls=True).alias("first_large"),
    ).collect()[0]  # fmt: skip
    if int(row["bad"]):
        raise not_unix_time_error(column, int(row["bad"]), int(row["n"]), repr(row["first_bad"]))
    factor, unit = 1.0, "seconds"
    if row["low"] is not None:
        found = epoch_unit(np.array([row["low"], row["high"]], dtype=float))
        if found is not None:
            factor, unit = _EPOCH_UNITS[found], found
        elif int(row["large"]):
            raise mixed_units_error(column, int(row["large"]), int(row["n"]),
                                    repr(row["first_large"]))  # fmt: skip
    micros = F.round(number * F.lit(1e6 / factor)).cast("long")
    return tx.withColumn("timestamp", F.timestamp_micros(micros)), unit


def _parsed_time(tx: Any, timestamp_format: str | None) -> Any:
    """The ``timestamp`` column as a timestamp (text that does not parse: null)."""
    from pyspark.sql import functions as F
    from pyspark.sql.types import DateType, StringType

    kind = tx.schema["timestamp"].dataType
    if isinstance(kind, StringType):
        if timestamp_format is not None:
            return F.try_to_timestamp(F.col("timestamp"), F.lit(timestamp_format))
        return F.try_to_timestamp(F.col("timestamp"))
    if isinstance(kind, DateType):
        return F.col("timestamp").cast("timestamp")
    return F.col("timestamp")


def _stamp(stamp: pd.Timestamp, like: Any) -> Any:
    """A naive timestamp as a Spark literal of the time type of ``like``'s values."""
    from pyspark.sql import functions as F
    from pyspark.sql.types import TimestampNTZType

    kind = "timestamp_ntz" if isinstance(like, TimestampNTZType) else "timestamp"
    return F.lit(stamp.isoformat(sep=" ")).cast(kind)


def _currency_counts(tx: Any) -> dict[Any, int]:
    """Rows per currency code (upper case, stripped; None for a blank cell), one grouping."""
    from pyspark.sql import functions as F

    code = F.upper(_stripped(F.col("_currency")))
    rows = tx.groupBy(F.when(code != "", code).alias("code")).count().collect()
    return {row["code"]: int(row["count"]) for row in rows}


def read_spark_transactions(
    spark: Any,
    data: DataConfig | str | Path,
    *,
    report: CleaningReport | None = None,
    observation_end: Any = None,
    allow_end_beyond_data: bool = False,
) -> Any:
    """Read a transaction file or folder (Parquet or CSV) into canonical Spark columns.

    The cleaning steps, their order and the reasons they count rows under are
    those of :func:`rfmml.data.read_transactions`: rows of an excluded
    ``status``, of another ``currency`` than the one picked (a log in several
    currencies without ``currency`` is refused, naming each one with its row
    count), without a customer id (null or blank), group, timestamp or amount
    (null or NaN), dated before ``since`` or after ``until``, after
    ``observation_end`` (without one: dated after tomorrow, in the future),
    with a negative amount, with a zero amount (``drop_zero_amounts``), and
    identical to another (``drop_duplicates``) are removed; the spaces around
    text ids are trimmed, and ``normalize_ids`` lower-cases them. Line items
    (``quantity`` and ``price``) have the amount ``quantity * price`` rounded
    to 9 decimals (lines missing either are removed). With ``order``, every
    line of an order with an excluded state goes, a line without its order's
    customer id, time, total (amounts that are the orders' totals: it adds
    0) or currency takes the first value of the order's other lines in the
    file (as the pandas reader, with its note), the lines of an order
    starting with ``cancellation_prefix`` count as returns (their amounts made
    negative; without amounts they are removed), then the lines left are
    summed into one row per order id, customer and group (earliest time, total
    rounded to 9 decimals; lines without an order id stay rows of their own)
    before the negative, zero and identical rows are looked at, with the
    pandas reader's counts and notes (rows merged, cancellations, orders of
    one line repeated). With a report, rows dated over a year apart from the
    rest of the log (a mistyped year), identical rows (without
    ``drop_duplicates``) and zero amounts are flagged, and an
    ``observation_end`` more than
    :data:`~rfmml.data.transactions.OBSERVATION_END_MARGIN_DAYS` days past the
    last kept row is refused unless ``allow_end_beyond_data``. Text
    timestamps that do not parse are left to the feature builders, which
    refuse them.

    Parameters
    ----------
    spark : pyspark.sql.SparkSession
    data : DataConfig, str or pathlib.Path
        The config's ``[data]`` table (a bundled dataset name, or a file or a
        folder of Parquet or CSV part files, with the column mapping and the
        reading options), or a path.
    report : CleaningReport, optional
        Filled in place: ``rows_in``, the rows removed per reason (counted in
        one Spark aggregation, with the zero amounts flagged when kept),
        ``rows_out`` and the notes (currency, unmatched states, ids trimmed,
        ids that differ only in case, rows in the future, the observation
        end's margin, isolated dates), with the pandas reader's wording; the
        notes on rows in the future and isolated dates are also warned
        (``UserWarning``). Without it the same rows are removed, uncounted and
        unwarned, and the frame is returned unread, apart from the currencies
        (counted to refuse several), the negative amounts with
        ``negative_amounts = "error"`` and the observation end's margin
        (checked unless ``allow_end_beyond_data``): those need the counts.
    observation_end : date-like, optional
        Rows after it (a date includes its day) are removed and counted.
        Without it, rows dated after tomorrow are (as by the pandas reader).
    allow_end_beyond_data : bool, default False
        Accept an ``observation_end`` more than
        :data:`~rfmml.data.transactions.OBSERVATION_END_MARGIN_DAYS` days after
        the last transaction (noted in the report); refused otherwise.

    Returns
    -------
    pyspark.sql.DataFrame
        ``customer_id``, ``timestamp``, (with amounts) ``amount`` as double,
        (with ``[data] group``) the group column under its own name and (with
        ``order``) ``order_id``.

    Raises
    ------
    ConfigError
        Reading options the Spark path does not offer (``sample_customers``,
        ``decimal``, ``negative_amounts = "net"``).
    DataError
        Missing columns, a column mapped twice, ``quantity`` without ``price``
        (or with ``amount``), ``cancellation_prefix`` without ``order``, float
        order ids, bad ``since``/``until``/``status`` options, several
        currencies (or a picked one the log lacks), negative amounts with
        ``negative_amounts = "error"``, an ``observation_end`` far past the
        data, or (with ``report``) no row left.
    """
    from pyspark.sql import Window
    from pyspark.sql import functions as F
    from pyspark.sql.types import StringType

    cfg = data if isinstance(data, DataConfig) else DataConfig(source=str(data))
    unsupported = [k for k in _UNSUPPORTED if getattr(cfg, k) is not None]
    if cfg.negative_amounts == "net":
        unsupported.append("negative_amounts = 'net'")
    if unsupported:
        raise ConfigError(
            f"[data] {unsupported} are not offered by engine = 'spark'; clean the log "
            "upstream or use engine = 'pandas'"
        )
    _check_line_options(cfg)
    excluded = _status_values(cfg.status, cfg.exclude_status)
    since, until = date_bounds(cfg.since, cfg.until)
    tx, schema = _spark_source(spark, cfg)
    has_amount = schema.has_amount
    orders = schema.order is not None
    if orders:
        _check_order_ids(tx, schema)
        tx = _filled_order_lines(tx, schema)
    code, currency_note = None, ""
    if schema.currency is None:
        check_currencies(None, {}, cfg.currency, has_amount)
    else:
        code, currency_note = check_currencies(schema.currency, _currency_counts(tx),
                                               cfg.currency, has_amount)  # fmt: skip

    raw_id = F.col("customer_id")
    text_ids = isinstance(tx.schema["customer_id"].dataType, StringType)
    no_id = raw_id.isNull()
    if text_ids:
        no_id = no_id | (_stripped(raw_id) == "")
    elif tx.schema["customer_id"].dataType.typeName() in ("float", "double"):
        no_id = no_id | F.isnan(raw_id)
    excluded_state = None
    if excluded:
        wanted = [v.lower() for v in excluded]
        state = F.lower(_stripped(F.col("_status")))
        excluded_state = F.coalesce(state.isin(wanted), F.lit(False))
    # text ids without the spaces around them, as the pandas reader's _trimmed_ids
    given_id = F.btrim(raw_id, F.lit(ID_PADDING)) if text_ids else raw_id
    time_format, epoch_note = cfg.timestamp_format, ""
    if time_format == EPOCH_SECONDS:  # Unix time: made a timestamp here, as the pandas reader
        tx, unit = _epoch_times(tx, cfg.timestamp or "timestamp")
        time_format = None
        epoch_note = f"timestamps read as {unit} since 1970-01-01 UTC, in UTC wall-clock time"
    ts = _parsed_time(tx, time_format)
    ts_kind = tx.select(ts.alias("t")).schema["t"].dataType
    if schema.quantity is not None:  # a line's amount, rounded as the pandas reader's
        amount = F.round(F.col("_quantity").cast("double") * F.col("_price").cast("double"),
                         _DECIMALS)  # fmt: skip
        amount_reason = f"missing {schema.quantity} or {schema.price}"
    else:
        amount = F.col("amount").cast("double")
        amount_reason = "missing amount"
    # the reasons in the pandas reader's order: a row counts under the first that holds
    steps: list[tuple[str, Any]] = []
    if excluded_state is not None:
        hit = excluded_state
        if orders:  # every line of an order with such a state on any line, as the pandas reader
            in_order = F.max(hit.cast("int")).over(Window.partitionBy("order_id"))
            hit = hit | (F.col("order_id").isNotNull() & (in_order == 1))
        shown = ", ".join(repr(v) for v in excluded)
        steps.append((f"{cfg.status} {shown} (not a purchase)", hit))
    if code is not None:
        other = F.coalesce(F.upper(_stripped(F.col("_currency"))) != F.lit(code), F.lit(True))
        steps.append((currency_reason(str(schema.currency), code), other))
    steps.append(("missing customer_id", no_id))
    id_step = len(steps)  # ids are looked at (their case) from here on
    if cfg.group is not None:
        steps.append((f"missing {cfg.group}", F.col(cfg.group).isNull()))
    steps.append(("missing timestamp", F.col("timestamp").isNull()))
    if has_amount:
        steps.append((amount_reason, amount.isNull() | F.isnan(amount)))
    if since is not None:
        steps.append((since_reason(since), ts < _stamp(since, ts_kind)))
    if until is not None:
        steps.append((until_reason(until), ts >= _stamp(end_cutoff(until), ts_kind)))
    end: pd.Timestamp | None = None
    if observation_end is not None:
        end = pd.Timestamp(observation_end)
        end = end.tz_localize(None) if end.tzinfo is not None else end
        shown_end = end.date() if end == end.normalize() else end
        steps.append((f"after the observation end {shown_end}",
                      ts >= _stamp(end_cutoff(end), ts_kind)))  # fmt: skip
    else:  # as the pandas reader's _cut_end: rows dated after tomorrow
        tomorrow = pd.Timestamp.now().normalize() + pd.Timedelta(days=1)
        steps.append((f"dated in the future (after {tomorrow.date()})",
                      ts >= _stamp(end_cutoff(tomorrow), ts_kind)))  # fmt: skip
    end_step = len(steps)  # rows past it are those the end's margin and isolation look at
    prefix = cfg.cancellation_prefix
    cancelled = None
    if prefix is not None:  # as the pandas reader: the id as text starts with the prefix
        cancelled = F.coalesce(F.col("order_id").cast("string").startswith(prefix), F.lit(False))
        if has_amount:  # amounts made negative: returns
            amount = F.when(cancelled, -F.abs(amount)).otherwise(amount)
        else:
            steps.append((f"cancellation order (id starting with {prefix!r})", cancelled))
    negative_step = None
    if has_amount and not orders:  # with orders: the orders' totals, after the merge
        negative_step = len(steps) + 1
        steps.append(("negative amount (return or cancellation)", amount < 0))
        if cfg.drop_zero_amounts:
            steps.append(("zero amount", amount == 0))
    reason = F.lit(0)
    for number, (_, condition) in reversed(list(enumerate(steps, start=1))):
        reason = F.when(F.coalesce(condition, F.lit(False)), F.lit(number)).otherwise(reason)
    customer = F.lower(given_id) if text_ids and cfg.normalize_ids else given_id
    out_cols = [customer.alias("customer_id")]
    if time_format is not None:
        out_cols.append(F.to_timestamp("timestamp", time_format).alias("timestamp"))
    else:
        out_cols.append(F.col("timestamp"))
    if has_amount:
        out_cols.append(amount.alias("amount"))
    if cfg.group is not None:
        out_cols.append(F.col(cfg.group))
    if orders:
        out_cols.append(F.col("order_id"))
    names = schema.canonical_columns
    extra = [F.col("_status")] if excluded else []
    extra += [F.col("_filled")] if orders else []
    flagged = tx.select(*out_cols, *extra, given_id.alias("_raw_id"), raw_id.alias("_given_id"),
                        ts.alias("_ts"), reason.alias("_reason"), F.col("_row"))  # fmt: skip
    kept = flagged.filter(F.col("_reason") == 0)
    merged = None
    if orders:  # the lines of an order summed into one row, as the pandas reader's _orders
        merged = _merged_orders(kept, names, cfg.group, has_amount)
        kept = _kept_orders(merged, names, cfg, has_amount)
    else:
        kept = kept.select(*names)
        if cfg.drop_duplicates:  # identical rows, as the pandas reader drops them
            kept = kept.dropDuplicates(names)
    checks_end = end is not None and not allow_end_beyond_data
    if report is None and cfg.negative_amounts != "error" and not checks_end:
        return kept
    book = report if report is not None else CleaningReport()
    row = _cleaning_counts(flagged, steps, names, cfg, text_ids, id_step, excluded, end_step,
                           zero=has_amount and not cfg.drop_zero_amounts and not orders,
                           distinct=(cfg.drop_duplicates or report is not None) and not orders,
                           cancelled=cancelled, filled=orders)  # fmt: skip
    n_rows = int(row["n"])
    amount_name = schema.price if schema.price is not None else cfg.amount or "amount"
    if cfg.negative_amounts == "error" and negative_step is not None:
        n_negative = int(row[f"r{negative_step}"])
        if n_negative:
            raise DataError(
                f"column {amount_name!r}: {n_negative} of {n_rows} rows are negative "
                "(returns); use negative_amounts = 'drop'"
            )
    book.rows_in = n_rows
    for number, (text, _) in enumerate(steps, start=1):
        if number != negative_step or cfg.negative_amounts == "drop":  # "error": none left
            book.remove(text, int(row[f"r{number}"]))
    if excluded:  # the notes in the pandas reader's order: states, order lines, currency, ids
        _note_unmatched_states(tx, book, row, cfg.status, excluded)
    if orders and int(row["filled"]):
        book.notes.append(order_fields_note(int(row["filled"]), schema.amount is not None,
                                            schema.currency is not None))  # fmt: skip
    if currency_note:
        book.notes.append(currency_note)
    if text_ids:
        if int(row["padded"]):  # the pandas reader's _trimmed_ids note
            book.notes.append(trimmed_ids_note(int(row["padded"]), str(row["first_padded"])))
        _note_id_case(flagged, book, row, id_step, cfg.normalize_ids)
    if epoch_note:
        book.notes.append(epoch_note)
        book.time_zone = "UTC"
    if end is None:
        _note_future_rows(book, row, end_step, tomorrow)
    else:
        _check_end_margin(book, row, end, allow_end_beyond_data)
    _flag_isolated_spark(flagged, book, row, end_step, ts_kind)
    n_out = int(row["kept"])
    if cancelled is not None and has_amount:
        book.notes.append(
            f"{int(row['cancelled']):,} rows of cancellation orders (id starting with "
            f"{prefix!r}) count as returns"
        )
    if merged is not None:
        n_out = _count_orders(merged, book, names, cfg, has_amount, n_out, amount_name)
    else:
        if has_amount and not cfg.drop_zero_amounts:
            book.flag("zero amount", int(row["zero"]))
        if cfg.drop_duplicates:
            n_repeated = n_out - int(row["distinct"])
            book.remove("identical to an earlier row", n_repeated)
            n_out -= n_repeated
        elif report is not None:
            book.flag("identical to an earlier row", n_out - int(row["distinct"]))
    book.rows_out = n_out
    book.check()
    if n_out == 0:
        raise DataError(f"no transactions left after cleaning:\n{book}")
    if book.rows_removed or book.rows_merged:
        logger.info("read_spark_transactions cleaned the log:\n%s", book)
    return kept


def _check_line_options(cfg: DataConfig) -> None:
    """The pandas reader's checks of ``quantity``, ``price`` and ``cancellation_prefix``."""
    if (cfg.quantity is None) != (cfg.price is None):
        raise DataError(
            "map both quantity= and price= for a line-item log (amount = quantity x price), "
            f"got quantity={cfg.quantity!r}, price={cfg.price!r}"
        )
    if cfg.price is not None and cfg.amount not in (None, "", "amount"):
        raise DataError(f"map either amount= ({cfg.amount!r}) or quantity= and price=, not both")
    if cfg.cancellation_prefix is not None and cfg.order is None:
        raise DataError("cancellation_prefix= needs the order id column: map order=")


def _blank_cells(tx: Any, column: str) -> Any:
    """Missing cells of ``column``, blank text and NaN included (the pandas reader's ``_blank``)."""
    from pyspark.sql import functions as F
    from pyspark.sql.types import StringType

    kind = tx.schema[column].dataType
    blank = F.col(column).isNull()
    if isinstance(kind, StringType):
        blank = blank | (_stripped(F.col(column)) == "")
    elif kind.typeName() in ("float", "double"):
        blank = blank | F.isnan(F.col(column))
    return F.coalesce(blank, F.lit(False))


def _check_order_ids(tx: Any, schema: TransactionSchema) -> None:
    """Refuse float order ids (the pandas reader writes whole numbers as integers)."""
    kind = tx.schema["order_id"].dataType
    if kind.typeName() in ("float", "double"):
        raise DataError(
            f"column {schema.order!r}: order ids of type {kind.simpleString()} are not read by "
            "engine = 'spark' (the pandas reader writes whole numbers as integers); store them "
            "as integers or text, or use engine = 'pandas'"
        )


def _filled_order_lines(tx: Any, schema: TransactionSchema) -> Any:
    """Order lines without their order's customer id, time, total or currency, filled.

    As the pandas reader's ``_order_fields`` (exports such as Shopify's write
    an order's fields on its first line only): a blank cell (null, blank text,
    NaN) of a line with an order id takes the first value of its order's other
    lines in the file; with the orders' totals as amounts (not line items), a
    line without one adds 0 when another line of its order has it. Orders with
    no value on any line are left as they are. ``_filled`` marks the lines
    changed (for the report's note). Lazy: one grouping of the rows by order id
    in the plans that read them.
    """
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    order = Window.partitionBy("order_id")
    known = F.col("order_id").isNotNull()
    fields = ["customer_id", "timestamp"]
    fields += ["amount"] if schema.amount is not None else []
    fields += ["_currency"] if schema.currency is not None else []
    columns: dict[str, Any] = {}
    filled = F.lit(False)
    for name in fields:
        blank = _blank_cells(tx, name)
        if name == "amount":  # the order's total is on another line: this one adds 0
            value = F.lit(0).cast(tx.schema[name].dataType)
            take = known & blank & (F.max((~blank).cast("int")).over(order) == 1)
        else:  # the first value of the order's lines, in the file's order
            value = F.min_by(F.when(~blank, F.col(name)), F.when(~blank, F.col("_row")))
            value = value.over(order)
            take = known & blank & value.isNotNull()
        columns[name] = F.when(take, value).otherwise(F.col(name))
        filled = filled | take
    return tx.withColumns({**columns, "_filled": filled})


def _merged_orders(lines: Any, names: list[str], group: str | None, has_amount: bool) -> Any:
    """The kept lines summed per order, as the pandas reader's ``_orders`` (lazy).

    One row per (order id, customer id[, group]): the earliest line's time and
    the lines' total rounded to 9 decimals; lines without an order id stay rows
    of their own. Each row carries ``_n`` (its lines), ``_distinct`` (its
    distinct times and amounts), ``_first`` (its first line in the file) and
    ``_loose`` (no order id), which the counts and the choice among identical
    rows read.
    """
    from pyspark.sql import functions as F

    keys = ["order_id", "customer_id", *([group] if group is not None else [])]
    values = ["timestamp", *(["amount"] if has_amount else [])]
    # the earliest line's time (text times: the one that parses earliest, as written)
    first_time = F.coalesce(F.min_by("timestamp", "_ts"), F.min("timestamp")).alias("timestamp")
    aggs = [first_time]
    if has_amount:
        aggs.append(F.round(F.sum("amount"), _DECIMALS).alias("amount"))
    aggs += [F.count(F.lit(1)).alias("_n"),
             F.count_distinct(F.struct(*values)).alias("_distinct"),
             F.min("_row").alias("_first"), F.lit(0).alias("_loose")]  # fmt: skip
    summed = lines.filter(F.col("order_id").isNotNull()).groupBy(*keys).agg(*aggs)
    loose = lines.filter(F.col("order_id").isNull()).select(
        *names, F.lit(1).cast("long").alias("_n"), F.lit(1).cast("long").alias("_distinct"),
        F.col("_row").alias("_first"), F.lit(1).alias("_loose"),
    )  # fmt: skip
    columns = [*names, "_n", "_distinct", "_first", "_loose"]
    return summed.select(*columns).unionByName(loose.select(*columns))


def _order_filters(cfg: DataConfig, has_amount: bool) -> tuple[Any, Any]:
    """The merged rows left by the negative step, and by the zero step after it."""
    from pyspark.sql import functions as F

    left = F.lit(True)
    if has_amount and cfg.negative_amounts == "drop":
        left = F.col("amount") >= 0
    after = left & (F.col("amount") != 0) if has_amount and cfg.drop_zero_amounts else left
    return left, after


def _kept_orders(merged: Any, names: list[str], cfg: DataConfig, has_amount: bool) -> Any:
    """The merged rows kept: negative and zero totals and identical rows as the pandas reader.

    Of identical rows (``drop_duplicates``) the first is kept: orders in the
    order of their first line, then the rows without an order id.
    """
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    _, after = _order_filters(cfg, has_amount)
    rows = merged.filter(after)
    if cfg.drop_duplicates:
        same = [c for c in names if c != "order_id"]
        first = Window.partitionBy(*same).orderBy("_loose", "_first")
        rows = rows.withColumn("_k", F.row_number().over(first)).filter(F.col("_k") == 1)
    return rows.select(*names)


def _count_orders(merged: Any, book: CleaningReport, names: list[str], cfg: DataConfig,
                  has_amount: bool, n_lines: int, amount_name: str) -> int:  # fmt: skip
    """Book the merged lines, the copied orders' note, negative, zero and identical rows.

    One Spark job over the merged rows (the pandas reader's ``_orders`` and the
    steps after it); returns the rows out.
    """
    from pyspark.sql import functions as F

    left, after = _order_filters(cfg, has_amount)
    amount = F.col("amount")
    negative = amount < 0 if has_amount else F.lit(False)
    same = F.struct(*(F.col(c) for c in names if c != "order_id"))
    several = F.col("_n") > 1
    copied = several & (F.col("_distinct") == 1)
    aggs = [
        F.count(F.lit(1)).alias("n"), F.count_if(negative).alias("negative"),
        F.count_if(left & (amount == 0) if has_amount else F.lit(False)).alias("zero"),
        F.count_if(after).alias("after"),
        F.count_distinct(F.when(after, same)).alias("distinct"),
        F.count_if(several).alias("several"), F.count_if(copied).alias("copied"),
        F.min_by(F.when(copied, F.col("order_id")), F.when(copied, F.col("_first")))
        .alias("first_copied"),
    ]  # fmt: skip
    row = merged.agg(*aggs).first()
    n_rows, n_copied = int(row["n"]), int(row["copied"])
    if n_copied and 2 * n_copied >= int(row["several"]):
        book.notes.append(copied_orders_note(n_copied, row["first_copied"]))
    book.merge("order lines summed into one row per order", n_lines - n_rows)
    n_negative = int(row["negative"])
    if has_amount:
        if cfg.negative_amounts == "error" and n_negative:
            raise DataError(
                f"column {amount_name!r}: {n_negative} of {n_rows} rows are negative "
                "(returns); use negative_amounts = 'drop'"
            )
        if cfg.negative_amounts == "drop":
            book.remove("negative amount (return or cancellation)", n_negative)
        if cfg.drop_zero_amounts:
            book.remove("zero amount", int(row["zero"]))
        else:
            book.flag("zero amount", int(row["zero"]))
    n_out = int(row["after"])
    n_repeated = n_out - int(row["distinct"])
    if cfg.drop_duplicates:
        book.remove("identical to an earlier row", n_repeated)
        return n_out - n_repeated
    book.flag("identical to an earlier row", n_repeated)
    return n_out


def _cleaning_counts(flagged: Any, steps: list[tuple[str, Any]], names: list[str],
                     cfg: DataConfig, text_ids: bool, id_step: int, excluded: list[str],
                     end_step: int, *, zero: bool, distinct: bool, cancelled: Any = None,
                     filled: bool = False) -> Any:  # fmt: skip
    """Rows in, per reason, kept, (flagged zero, distinct kept, case, states): one aggregation.

    Also the ids trimmed (and the first, in row order), the rows left at the
    end step (dated in the future or after the observation end: their number
    before it and the first it removes), the last timestamp and the span of
    the rows left after it (the observation end's margin, isolated dates).
    ``zero`` counts the kept zero amounts, ``distinct`` the distinct kept rows
    (both asked for rows, not order lines: orders are counted after their
    merge), ``cancelled`` the kept lines of cancellation orders, and
    ``filled`` the order lines that took their order's fields (those of
    orders removed for their state left out, as the pandas reader fills after
    removing them).
    """
    from pyspark.sql import functions as F

    reason, row_number, ts = F.col("_reason"), F.col("_row"), F.col("_ts")
    aggs = [F.count(F.lit(1)).alias("n"), F.count_if(reason == 0).alias("kept")]
    aggs += [F.count_if(reason == k).alias(f"r{k}") for k in range(1, len(steps) + 1)]
    if zero:
        aggs.append(F.count_if((reason == 0) & (F.col("amount") == 0)).alias("zero"))
    if cancelled is not None:
        aggs.append(F.count_if((reason == 0) & cancelled).alias("cancelled"))
    if filled:  # the status step (the first, with excluded states) removes whole orders
        kept_orders = reason != 1 if excluded else F.lit(True)
        aggs.append(F.count_if(F.col("_filled") & kept_orders).alias("filled"))
    if distinct:
        rows = F.struct(*(F.col(c) for c in names))
        aggs.append(F.count_distinct(F.when(reason == 0, rows)).alias("distinct"))
    if text_ids:  # rows past the id step whose id has a capital (pandas' _id_case counts these)
        raw = F.col("_raw_id")
        looked = (reason == 0) | (reason > id_step)
        aggs.append(F.count_if(looked & (raw != F.lower(raw))).alias("cased"))
        padded = looked & (F.col("_given_id") != raw)
        aggs.append(F.count_if(padded).alias("padded"))
        aggs.append(F.min_by(F.when(padded, F.col("_given_id")),
                             F.when(padded, row_number)).alias("first_padded"))  # fmt: skip
    before_end = (reason == 0) | (reason >= end_step)  # rows the end step looks at
    after_end = (reason == 0) | (reason > end_step)  # and those it leaves
    late = reason == end_step
    aggs += [
        F.count_if(before_end).alias("before_end"),
        F.count_if(after_end).alias("after_end"),
        F.min_by(F.when(late, F.col("customer_id")), F.when(late, row_number)).alias("late_id"),
        F.min_by(F.when(late, ts), F.when(late, row_number)).cast("string").alias("late_ts"),
        F.max(F.when(after_end, ts)).cast("string").alias("last_ts"),
        F.min(F.when(after_end, ts)).cast("string").alias("first_ts"),
    ]
    if excluded:
        state = F.lower(_stripped(F.col("_status")))
        aggs += [F.count_if(state == v.lower()).alias(f"s{i}") for i, v in enumerate(excluded)]
    return flagged.agg(*aggs).first()


def _note_future_rows(book: CleaningReport, row: Any, end_step: int,
                      tomorrow: pd.Timestamp) -> None:  # fmt: skip
    """The pandas reader's note and warning on rows dated in the future (removed)."""
    n_future = int(row[f"r{end_step}"])
    if not n_future:
        return
    first_id, first_ts = row["late_id"], pd.Timestamp(row["late_ts"])
    message = future_rows_note(n_future, int(row["before_end"]), tomorrow, first_id, first_ts)
    book.notes.append(message)
    warnings.warn(message, UserWarning, stacklevel=3)


def _check_end_margin(book: CleaningReport, row: Any, end: pd.Timestamp, allow: bool) -> None:
    """The pandas reader's check that ``end`` is not far past the last row left."""
    if row["last_ts"] is None:  # no row left: refused later
        return
    check_end_margin(end, pd.Timestamp(row["last_ts"]), allow, book)


def _flag_isolated_spark(flagged: Any, book: CleaningReport, row: Any, end_step: int,
                         ts_kind: Any) -> None:  # fmt: skip
    """Flag (and warn about) isolated rows as the pandas reader's ``_flag_isolated``.

    Only a log spanning over a year can have them: then the ``limit + 1``
    earliest and latest timestamps of the rows left after the end step are
    collected (one job, two top-k sorts) and, when some rows are isolated,
    the first of them in row order (one more job).
    """
    from pyspark.sql import functions as F

    limit = isolation_limit(int(row["n"]))
    n_rows = int(row["after_end"])
    if limit < 1 or n_rows <= 1 or row["first_ts"] is None:
        return
    span = pd.Timestamp(row["last_ts"]) - pd.Timestamp(row["first_ts"])
    if span <= pd.Timedelta(days=365):  # no gap of over a year inside a shorter span
        return
    reason, ts = F.col("_reason"), F.col("_ts")
    alive = flagged.filter(((reason == 0) | (reason > end_step)) & ts.isNotNull()).select(ts)
    k = limit + 1
    ends = alive.orderBy(ts.asc()).limit(k).select(F.lit(0).alias("side"), ts)
    ends = ends.union(alive.orderBy(ts.desc()).limit(k).select(F.lit(1).alias("side"), ts))
    got = ends.select("side", ts.cast("string").alias("t")).collect()
    stamps = {side: sorted(pd.Timestamp(r["t"]) for r in got if r["side"] == side)
              for side in (0, 1)}  # fmt: skip
    lowest = np.array(stamps[0], dtype="datetime64[us]")
    highest = np.array(stamps[1][::-1], dtype="datetime64[us]")
    n_early, start, n_late, stop = isolated_ends(lowest, highest, limit)
    if not (n_early or n_late):
        return
    book.flag(ISOLATED_REASON, n_early + n_late)
    alive_rows = (reason == 0) | (reason > end_step)
    hits = {
        "early": alive_rows & (ts < _stamp(start, ts_kind)) if start is not None else F.lit(False),
        "late": alive_rows & (ts > _stamp(stop, ts_kind)) if stop is not None else F.lit(False),
    }
    aggs = []
    for name, hit in hits.items():
        order = F.when(hit, F.col("_row"))
        aggs += [F.min_by(F.when(hit, F.col("customer_id")), order).alias(f"{name}_id"),
                 F.min_by(F.when(hit, ts), order).cast("string").alias(f"{name}_ts")]  # fmt: skip
    first = flagged.agg(*aggs).first()
    firsts = [
        (first[f"{name}_id"], pd.Timestamp(first[f"{name}_ts"])) if n else None
        for name, n in (("early", n_early), ("late", n_late))
    ]
    message = isolated_rows_note(n_early, start, firsts[0], n_late, stop, firsts[1], n_rows)
    book.notes.append(message)
    warnings.warn(message, UserWarning, stacklevel=3)


def _note_unmatched_states(tx: Any, book: CleaningReport, row: Any, column: str | None,
                           excluded: list[str]) -> None:  # fmt: skip
    """The pandas reader's note on excluded states that no row has (states listed: one job)."""
    from pyspark.sql import functions as F

    unmatched = [v for i, v in enumerate(excluded) if not row[f"s{i}"]]
    if not unmatched:
        return
    states = tx.filter(F.col("_status").isNotNull()).select(_stripped(F.col("_status")).alias("s"))
    held = [r["s"] for r in states.distinct().orderBy("s").limit(_SHOW * 2 + 1).collect()]
    book.notes.append(unmatched_states_note(str(column), unmatched, held))


def _note_id_case(flagged: Any, book: CleaningReport, row: Any, id_step: int,
                  normalize: bool) -> None:  # fmt: skip
    """The note on text ids that differ only in case (as the pandas reader's ``_id_case``).

    Asked only when some id has a capital (or ``normalize``): the distinct ids
    grouped by their lower-cased value (two jobs: the counts, then the
    spellings of the first customers written several ways, in order of their
    first row).
    """
    from pyspark.sql import functions as F

    cased = int(row["cased"])
    if not cased and not normalize:
        return
    reason = F.col("_reason")
    rows = flagged.filter((reason == 0) | (reason > id_step)).select("_raw_id", "_row")
    per_id = rows.groupBy("_raw_id").agg(F.min("_row").alias("_first"))
    per_key = per_id.groupBy(F.lower("_raw_id").alias("_key")).agg(
        F.count(F.lit(1)).alias("_n"), F.min("_first").alias("_first"),
        F.collect_list("_raw_id").alias("_ids"),
    )  # fmt: skip
    totals = per_key.agg(
        F.sum("_n").alias("ids"), F.count(F.lit(1)).alias("keys"),
        F.count_if(F.col("_n") > 1).alias("several"),
    ).first()  # fmt: skip
    n_ids, n_keys, n_several = int(totals["ids"] or 0), int(totals["keys"]), int(totals["several"])
    if not normalize and not n_several:
        return
    examples: list[list[str]] = []
    if n_several:
        firsts = per_key.filter(F.col("_n") > 1).orderBy("_first").limit(_CASE_EXAMPLES)
        examples = [list(r["_ids"]) for r in firsts.collect()]
    book.notes.append(id_case_note(n_ids, n_keys, n_several, cased, examples, normalize))


def _segmenters(cfg: ExperimentConfig, spend: bool) -> tuple[Any, Any]:
    rules = next((s for s in cfg.segmentations if s.kind == "rules"), None)
    kmeans = next((s for s in cfg.segmentations if s.kind == "kmeans"), None)
    return (
        None if rules is None else rules.build(spend),
        None if kmeans is None else kmeans.build(spend),
    )


@dataclass
class SparkModelEvaluation:
    """Purchase models and Gamma-Gamma fitted on the calibration period, judged on the holdout.

    As :class:`rfmml.pipeline.ModelEvaluation`, for a Spark run: ``fits`` holds
    every purchase model of the config by name, ``metrics`` each one's fit
    statistics, holdout metrics and ``tracking_mape``, ``holdout`` each one's
    holdout table (model against baseline); ``chosen`` is the scoring model;
    ``baseline_beats_models`` the line said when the naive baseline beats it.
    """

    fits: dict[str, PurchaseModel]
    metrics: dict[str, dict[str, float]]
    holdout: dict[str, pd.DataFrame]
    degenerate: dict[str, pd.DataFrame]
    chosen: str
    selection: str
    gamma_gamma: GammaGamma | None
    comparison: pd.DataFrame
    tracking: pd.DataFrame
    messages: list[str] = field(default_factory=list)
    baseline_beats_models: str | None = None

    @property
    def holdout_metrics(self) -> pd.DataFrame:
        """The chosen model's holdout table (``model_metrics.csv``)."""
        return self.holdout[self.chosen]


def _quietly(fit: Callable[[], _T]) -> tuple[_T, list[str]]:
    """``fit()`` with its warnings recorded, not shown (standard-error ones dropped)."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with np.errstate(all="ignore"):
            value = fit()
    texts = {str(w.message) for w in caught if w.category is not StandardErrorWarning}
    return value, sorted(texts)


def _fit_calibration(
    cfg: ExperimentConfig, summary: Any
) -> tuple[GammaGamma | None, dict[str, PurchaseModel], list[str]]:
    """Gamma-Gamma (with spend) and every purchase model of the config, fitted on ``summary``.

    The summary is checked in one Spark aggregation and its distinct rows
    collected once for all the purchase models
    (:func:`~rfmml.models._spark.fit_spark_summary`).

    Returns
    -------
    gamma_gamma : GammaGamma or None
    fits : dict of str to PurchaseModel
        By name, in the config's order.
    notes : list of str
        The fits' warnings (standard-error ones dropped).
    """
    gg = cfg.models.build_gamma_gamma() if "monetary_value" in summary.columns else None
    fits = {name: cfg.models.build_purchase_model(name) for name in cfg.models.purchase_models}
    estimators = [*([] if gg is None else [gg]), *fits.values()]
    _, notes = _quietly(partial(fit_spark_summary, estimators, summary))
    return gg, fits, notes


def _check_holdout(cal_holdout: Any, cfg: ExperimentConfig) -> dict[str, Any]:
    """The pandas ``calibration_holdout`` checks, counted in Spark (one row comes back).

    Returns
    -------
    dict
        The :func:`~rfmml.evaluation._spark.holdout_counts` of ``cal_holdout``.
    """
    counts = holdout_counts(cal_holdout, "monetary_value_cal" in cal_holdout.columns)
    if counts["n"] == 0:
        raise DataError(f"no transaction on or before calibration_end={cfg.calibration_end}")
    if counts["buyers"] == 0:
        raise DataError(
            f"no repeat purchase by a calibration customer between {cfg.calibration_end} and "
            f"{cfg.observation_end}: the holdout period is empty"
        )
    return counts


def evaluate_spark_models(cfg: ExperimentConfig, tx: Any) -> SparkModelEvaluation:
    """Fit every purchase model of the config and Gamma-Gamma on the calibration period, in Spark.

    The Spark counterpart of :func:`rfmml.pipeline.evaluate_models`: the
    calibration summary and holdout outcomes are computed in Spark
    (:func:`~rfmml.features.calibration_holdout`), the models are fitted on
    its distinct rows, each is judged on the holdout
    (:func:`~rfmml.evaluation._spark.evaluate_holdouts_spark`), by its fit
    statistics and by the tracking error of its cumulative repeat transactions
    (:func:`~rfmml.evaluation._spark.repeat_tracking_spark`), and the one with
    the best ``[models] selection`` metric is chosen.

    Parameters
    ----------
    cfg : ExperimentConfig
    tx : pyspark.sql.DataFrame
        Canonical transactions (:func:`read_spark_transactions`).

    Returns
    -------
    SparkModelEvaluation
    """
    from pyspark.sql import functions as F

    group = cfg.data.group
    keys = ["customer_id", *([group] if group else [])]
    cal_holdout = calibration_holdout(
        tx, cfg.calibration_end, cfg.observation_end, freq=cfg.freq, group=group
    ).cache()
    try:
        counts = _check_holdout(cal_holdout, cfg)
        names = {"frequency_cal": "frequency", "recency_cal": "recency", "T_cal": "T",
                 "monetary_value_cal": "monetary_value"}  # fmt: skip
        summary = cal_holdout.select(
            *keys, *(F.col(k).alias(v) for k, v in names.items() if k in cal_holdout.columns)
        )
        gg, fits, notes = _fit_calibration(cfg, summary)
        tables, _ = _quietly(partial(evaluate_holdouts_spark, fits, gg, cal_holdout, counts=counts))
        metrics: dict[str, dict[str, float]] = {}
        holdout: dict[str, pd.DataFrame] = {}
        degenerate: dict[str, pd.DataFrame] = {}
        messages: list[str] = []
        for name, model in fits.items():
            flagged = model.degenerate_parameters()
            if len(flagged):
                label = PURCHASE_MODEL_LABELS.get(name, name)
                messages.append(
                    degenerate_message(name, model, flagged, "calibration period", label)
                )
                logger.warning(messages[-1])
            holdout[name], degenerate[name] = tables[name], flagged
            metrics[name] = fit_statistics(model) | {
                k: float(v) for k, v in tables[name]["model"].items()
            }
    finally:
        cal_holdout.unpersist()
    within = tx.filter(F.col("timestamp") < F.lit(end_cutoff(cfg.observation_end).to_pydatetime()))
    curves, _ = _quietly(lambda: repeat_tracking_spark(
        within, fits, cfg.calibration_end, cfg.observation_end, freq=cfg.freq, keys=keys,
    ))  # fmt: skip
    for name in fits:
        metrics[name]["tracking_mape"] = tracking_mape(curves, name)
    chosen = choose_model(metrics, cfg.models.selection)
    comparison = comparison_table(
        metrics, degenerate, holdout[chosen]["baseline"], chosen, PURCHASE_MODEL_LABELS
    )
    beaten = baseline_beats_message(
        metrics[chosen], holdout[chosen]["baseline"], cfg.models.selection,
        PURCHASE_MODEL_LABELS.get(chosen, chosen),
    )  # fmt: skip
    if beaten:
        logger.warning(beaten)
    for text in sorted(set(notes)):
        logger.warning("calibration model fit: %s", text)
    return SparkModelEvaluation(
        fits=fits, metrics=metrics, holdout=holdout, degenerate=degenerate, chosen=chosen,
        selection=cfg.models.selection, gamma_gamma=gg, comparison=comparison, tracking=curves,
        messages=messages, baseline_beats_models=beaten,
    )  # fmt: skip


def _check_spark_config(cfg: ExperimentConfig) -> None:
    """Refuse, before any work, what a Spark run does not offer."""
    if cfg.models.interval and cfg.models.interval_method != "parametric":
        raise ConfigError(
            f"[models] interval_method = {cfg.models.interval_method!r} refits on resampled "
            "customers, which engine = 'spark' does not do; use interval_method = "
            "'parametric' or engine = 'pandas'"
        )


def _param_draws(cfg: ExperimentConfig, purchase: Any, gg: Any) -> dict[str, np.ndarray] | None:
    """The scoring models' parameter draws, made on the driver as the pandas run makes them."""
    if not cfg.models.interval:
        return None
    return {
        key: fitted.draw_params(cfg.models.n_draws, method="parametric",
                                random_state=cfg.random_state + i)
        for i, (key, fitted) in enumerate((("purchase_model", purchase), ("gamma_gamma", gg)))
        if fitted is not None
    }  # fmt: skip


def _write_tables(out: Path, models: SparkModelEvaluation) -> dict[str, Path]:
    """Write ``model_comparison.csv``, ``model_metrics.csv`` and ``tracking.csv``."""
    tables = {
        "model_comparison": (models.comparison, out / "model_comparison.csv"),
        "model_metrics": (models.holdout_metrics, out / "model_metrics.csv"),
    }
    if len(models.tracking):
        tables["tracking_csv"] = (models.tracking, out / "tracking.csv")
    for table, path in tables.values():
        with replacing(path) as temporary:
            table.to_csv(temporary)
    return {key: path for key, (_, path) in tables.items()}


def run_spark_experiment(
    cfg: ExperimentConfig,
    *,
    output_dir: str | Path | None = None,
    tracking_uri: str | None = None,
    spark: Any = None,
) -> SparkRunResult:
    """Judge the purchase models on a holdout, then fit on the whole period and score, in Spark.

    Parameters
    ----------
    cfg : ExperimentConfig
        With ``engine = "spark"`` (not checked: any config runs).
    output_dir : path, optional
        Default the config's ``output_dir``. Receives ``predictions.parquet/``
        (partitioned by ``segment``), ``predictions.meta.json``, ``model/``
        (the :class:`~rfmml.campaign.ScoringPipeline`, JSON files),
        ``model_comparison.csv``, ``model_metrics.csv``, ``tracking.csv`` and
        ``cleaning_report.json`` (the rows the reader removed, per reason, and
        those after the observation end).
    tracking_uri : str, optional
        MLflow store (see :func:`rfmml.tracking.resolve_tracking_uri`); the
        parent run logs the settings, the full-period estimates, the tables and
        the scoring model, with one child run per purchase model.
    spark : pyspark.sql.SparkSession, optional
        Default: the active session, else one on ``cfg.spark_master``.

    Returns
    -------
    SparkRunResult

    Raises
    ------
    ConfigError
        Reading options or ``interval_method = "bootstrap"``, which a Spark run
        does not offer.
    DataError
        Bad data, or an empty calibration or holdout period.
    """
    _check_spark_config(cfg)
    spark = spark if spark is not None else spark_session(cfg.spark_master)
    out = Path(output_dir if output_dir is not None else cfg.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    report = CleaningReport()
    tx = read_spark_transactions(spark, cfg.data, report=report,
                                 observation_end=cfg.observation_end,
                                 allow_end_beyond_data=cfg.allow_end_beyond_data)  # fmt: skip
    files = {"cleaning_report": report.save(out)}
    spend = "amount" in tx.columns
    end = cfg.observation_end
    models = evaluate_spark_models(cfg, tx)
    group = cfg.data.group
    features = rfm_table(tx, end, group=group).cache()
    summary = btyd_summary(tx, end, cfg.freq, group=group).cache()
    rules, kmeans = _segmenters(cfg, spend)
    if rules is not None:
        rules.fit(features)
    if kmeans is not None:
        kmeans.fit(features)
    name = models.chosen
    purchase = cfg.models.build_purchase_model(name)
    gg = cfg.models.build_gamma_gamma() if spend else None
    _, notes = _quietly(partial(fit_spark_summary, [purchase, *([] if gg is None else [gg])],
                                summary))  # fmt: skip
    flagged = purchase.degenerate_parameters()
    if len(flagged):
        label = PURCHASE_MODEL_LABELS.get(name, name)
        logger.warning(degenerate_message(name, purchase, flagged, "full period", label))
    for text in sorted(set(notes)):
        logger.warning("full-period model fit: %s", text)
    param_draws = _param_draws(cfg, purchase, gg)
    settings: dict[str, Any] = dict(
        horizon=int(cfg.models.horizon), discount_rate=float(cfg.models.discount_rate),
        freq=cfg.freq, playbook=cfg.playbook, churn_basis=cfg.models.churn_basis,
        next_order_window=cfg.models.window(cfg.freq),
    )  # fmt: skip
    intervals: dict[str, Any] = {}
    if param_draws is not None:
        intervals = dict(interval=float(cfg.models.interval), n_draws=int(cfg.models.n_draws),
                         interval_method=cfg.models.interval_method,
                         random_state=cfg.random_state, param_draws=param_draws)  # fmt: skip
    table = score_customers(
        features, summary, rule_segmenter=rules, kmeans_segmenter=kmeans,
        purchase_model=purchase, gamma_gamma=gg, **settings, **intervals,
    )  # fmt: skip
    fingerprints = {
        "purchase_model": purchase.training_fingerprint_,
        "gamma_gamma": None if gg is None else gg.training_fingerprint_,
        "source": cfg.data.source,
    }
    paths = write_spark_predictions(table, out, fingerprints=fingerprints)
    pipeline = ScoringPipeline(
        rule_segmenter=rules, kmeans_segmenter=kmeans, purchase_model=purchase,
        gamma_gamma=gg, horizon=settings["horizon"], discount_rate=settings["discount_rate"],
        freq=cfg.freq, playbook=cfg.playbook, churn_basis=cfg.models.churn_basis,
        next_order_window=settings["next_order_window"], observation_end=str(end.date()),
        interval=cfg.models.interval, n_draws=cfg.models.n_draws,
        interval_method=cfg.models.interval_method, random_state=cfg.random_state,
        param_draws=param_draws, group=group,
    )  # fmt: skip
    model_dir = pipeline.save(out / "model")
    files |= {"predictions": paths["parquet"], "predictions_meta": paths["meta"]}
    files |= _write_tables(out, models)
    n_customers = int(purchase.n_customers_)
    result = SparkRunResult(out, paths["parquet"], model_dir, n_customers, chosen_model=name,
                            model_comparison=models.comparison, evaluation=models,
                            files=files, report=report)  # fmt: skip
    if tracking_uri is not None or cfg.tracking_uri is not None:
        parts = (pipeline, features, summary, purchase, gg, n_customers, models, files, report)
        result.run_id, result.model_uri = _track(cfg, tracking_uri, *parts)
    return result


def _track_purchase_model(name: str, models: SparkModelEvaluation) -> str:
    """A child run per purchase model: its parameters, fit statistics and holdout metrics."""
    model, chosen = models.fits[name], name == models.chosen
    tags = {"rfmml.role": "purchase_model", "rfmml.purchase_model": name,
            "rfmml.chosen": str(chosen).lower(), "rfmml.engine": "spark"}  # fmt: skip
    flagged = models.degenerate[name]
    if len(flagged):
        tags["rfmml.degenerate"] = ", ".join(flagged.index)
    with tracking.tracked_run(name, nested=True, tags=tags) as run:
        tracking.log_params(model.get_params() | {"kind": model.kind})
        tracking.log_metrics(models.metrics[name])
        tracking.log_metrics({f"param.{k}": v for k, v in dict(model.params_).items()})
        with tempfile.TemporaryDirectory() as tmp:
            folder = Path(tmp)
            models.holdout[name].to_csv(folder / "holdout_metrics.csv")
            model.summary_.to_csv(folder / "summary.csv")
            model.save(folder / f"{name}.json")
            tracking.log_artifacts(folder)
    return str(run.info.run_id)


def _track(cfg: ExperimentConfig, uri: str | None, pipeline: ScoringPipeline, features: Any,
           summary: Any, purchase: Any, gg: Any, n_customers: int, models: SparkModelEvaluation,
           files: dict[str, Path], report: CleaningReport) -> tuple[str, str]:  # fmt: skip
    """The parent run and a child run per purchase model.

    The parent logs the settings, the estimates, the cleaning report (its
    counts as parameters and ``data/cleaning_report.json``, as the pandas run),
    the tables and the scoring model (5 example rows collected).
    """
    resolved = tracking.resolve_tracking_uri(uri, configured=cfg.tracking_uri)
    experiment_id = tracking.ensure_experiment(cfg.name, resolved)
    tags = {"rfmml.engine": "spark", "rfmml.role": "parent",
            "rfmml.chosen_purchase_model": models.chosen}  # fmt: skip
    if models.messages:
        tags["rfmml.degenerate_fits"] = " | ".join(models.messages)[:5000]
    if models.baseline_beats_models:
        tags["rfmml.baseline_beats_models"] = models.baseline_beats_models
    with tracking.tracked_run(f"{cfg.name}-spark", experiment_id=experiment_id, tags=tags) as run:
        tracking.log_params({"engine": "spark", "freq": cfg.freq,
                             "purchase_model": models.chosen, "selection": models.selection,
                             "purchase_models": ",".join(cfg.models.purchase_models),
                             "calibration_end": str(cfg.calibration_end.date()),
                             "observation_end": str(cfg.observation_end.date()),
                             "cleaning_rows_in": report.rows_in,
                             "cleaning_rows_removed": report.rows_removed})  # fmt: skip
        tracking.log_artifact(files["cleaning_report"], "data")
        if cfg.models.interval:
            tracking.log_params({"interval": cfg.models.interval, "n_draws": cfg.models.n_draws,
                                 "interval_method": cfg.models.interval_method})  # fmt: skip
        metrics = {f"{purchase.kind}_{k}": v for k, v in purchase.get_fitted_params().items()}
        if gg is not None:
            metrics.update({f"gamma_gamma_{k}": v for k, v in gg.get_fitted_params().items()})
        metrics["n_customers"] = float(n_customers)
        metrics["cleaning_rows_removed"] = float(report.rows_removed)
        for metric, row in models.holdout_metrics.iterrows():
            metrics[f"model.{metric}"] = row["model"]
            metrics[f"baseline.{metric}"] = row["baseline"]
        tracking.log_metrics(metrics)
        for key in ("model_comparison", "model_metrics", "tracking_csv"):
            if key in files:
                tracking.log_artifact(files[key])
        for name in models.fits:
            _track_purchase_model(name, models)
        example = _example(features, summary)
        model_uri = tracking.log_folder_model(
            pipeline, example, loader="rfmml.campaign.pipeline_model:ScoringPipeline"
        )
    return run.info.run_id, model_uri


def _example(features: Any, summary: Any, rows: int = 5) -> pd.DataFrame:
    """The scoring input of ``rows`` customers, collected (an MLflow input example).

    The summary rows are found by a filter on the collected keys, not a join
    (a join would shuffle both frames for five rows).
    """
    from rfmml.segments._spark import spark_keys

    keys = spark_keys(features)
    feats = features.limit(rows).toPandas().set_index(keys)
    summ = summary.filter(_key_filter(feats.index, keys)).toPandas()
    summ = summ.set_index(keys).reindex(feats.index)
    summ.attrs = frame_attrs(summary)
    return scoring_frame(feats, summ)


def _key_filter(index: pd.Index, keys: list[str]) -> Any:
    """A Spark condition true on the rows whose ``keys`` are one of ``index``'s entries."""
    from pyspark.sql import functions as F

    condition = F.lit(False)
    for entry in index:
        values = entry if isinstance(entry, tuple) else (entry,)
        match = F.lit(True)
        for key, value in zip(keys, values, strict=True):
            plain = value.item() if isinstance(value, np.generic) else value
            match = match & F.col(key).eqNullSafe(F.lit(plain))
        condition = condition | match
    return condition


def predict_spark(
    model_dir: str | Path,
    transactions: str | Path | Any,
    output: str | Path,
    *,
    observation_end: Any = None,
    spark: Any = None,
    data: DataConfig | None = None,
    report: CleaningReport | None = None,
    allow_end_beyond_data: bool = False,
) -> dict[str, Path]:
    """Score a transaction log with a saved pipeline inside Spark; write partitioned Parquet.

    Parameters
    ----------
    model_dir : path
        A :class:`~rfmml.campaign.ScoringPipeline` folder.
    transactions : path or pyspark.sql.DataFrame
        A Parquet or CSV file or folder (canonical columns, or mapped by
        ``data``), or a Spark frame of canonical transactions.
    output : path
        Output folder (see :func:`~rfmml.campaign._spark.write_spark_predictions`).
    observation_end : date-like, optional
        As-of date; default the pipeline's.
    spark : pyspark.sql.SparkSession, optional
    data : DataConfig, optional
        Column mapping and reading options for a path.
    report : CleaningReport, optional
        Filled in place with the cleaning of a log read from a path (see
        :func:`read_spark_transactions`; rows after the observation end are
        removed and counted too).
    allow_end_beyond_data : bool, default False
        Accept an observation end far past the last transaction of a log read
        from a path (see :func:`read_spark_transactions`).

    Returns
    -------
    dict of str to pathlib.Path
        The files written; a log read from a path adds ``cleaning_report``
        (``cleaning_report.json``: the rows the reader removed, per reason).
    """
    from rfmml.features._spark import is_spark

    pipeline = ScoringPipeline.load(model_dir)
    end = observation_end if observation_end is not None else pipeline.observation_end
    if end is None:
        raise DataError("scoring transactions needs an observation end; pass observation_end=")
    if is_spark(transactions):
        tx = transactions
        report = None
    else:
        spark = spark if spark is not None else spark_session()
        source = data if data is not None else DataConfig(source=str(transactions))
        if data is not None:
            source.source = str(transactions)
        if pipeline.group is not None and source.group is None:  # the column it was fitted on
            source.group = pipeline.group
        report = report if report is not None else CleaningReport()
        tx = read_spark_transactions(spark, source, report=report, observation_end=end,
                                     allow_end_beyond_data=allow_end_beyond_data)  # fmt: skip
    features = rfm_table(tx, end, group=pipeline.group).cache()
    summary = btyd_summary(tx, end, pipeline.freq, group=pipeline.group).cache()
    table = score_customers(
        features, summary, rule_segmenter=pipeline.rule_segmenter,
        kmeans_segmenter=pipeline.kmeans_segmenter, purchase_model=pipeline.purchase_model,
        gamma_gamma=pipeline.gamma_gamma, horizon=int(pipeline.horizon),
        discount_rate=float(pipeline.discount_rate), freq=pipeline.freq,
        playbook=pipeline.playbook, churn_basis=pipeline.churn_basis,
        next_order_window=pipeline.next_order_window, interval=pipeline.interval or None,
        n_draws=int(pipeline.n_draws), interval_method=pipeline.interval_method,
        param_draws=pipeline.param_draws, random_state=pipeline.random_state,
    )  # fmt: skip
    fingerprints = {
        "purchase_model": getattr(pipeline.purchase_model, "training_fingerprint_", None),
        "gamma_gamma": getattr(pipeline.gamma_gamma, "training_fingerprint_", None),
        "model_dir": str(Path(model_dir).resolve()),
    }
    paths = write_spark_predictions(table, output, fingerprints=fingerprints)
    if report is not None:
        paths["cleaning_report"] = report.save(output)
    return paths
