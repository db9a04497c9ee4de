"""The batch path inside Spark: log -> features -> segments -> models -> campaign table.

``engine = "spark"`` in an experiment config makes ``rfmml run`` call
:func:`run_spark_experiment` and ``rfmml predict --engine spark`` call
:func:`predict_spark`. Every step runs in Spark and returns Spark frames; the
driver receives only bounded things: the ``n - 1`` quantile edges per RFM
metric, the distinct likelihood rows with their counts, a bounded k-means
sample, and a handful of example rows for the MLflow signature. The table is
written as Parquet partitioned by segment.

Unlike the pandas run, a Spark run does not evaluate on a holdout: it fits on
the whole period and scores (the refit-and-score part of a pandas run). The
scoring model is the first of ``purchase_models``; the rule segmenter is the
first ``rules`` segmentation and the k-means segmenter the first ``kmeans``
one. pyspark is imported inside the functions.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from rfmml import tracking
from rfmml.campaign import ScoringPipeline, score_customers
from rfmml.campaign._spark import write_spark_predictions
from rfmml.campaign.pipeline_model import scoring_frame
from rfmml.config import BUILTIN_SOURCES, DataConfig, ExperimentConfig
from rfmml.data import load_cdnow, load_online_retail
from rfmml.errors import ConfigError, DataError
from rfmml.features import btyd_summary, rfm_table
from rfmml.features._spark import frame_attrs

__all__ = [
    "SESSION_DEFAULTS",
    "SparkRunResult",
    "predict_spark",
    "read_spark_transactions",
    "run_spark_experiment",
    "spark_session",
]

#: Reading options a Spark run does not offer (they need the pandas reader's cleaning).
_UNSUPPORTED = ("group", "order", "quantity", "price", "cancellation_prefix", "sample_customers")


@dataclass
class SparkRunResult:
    """What a Spark run wrote: the folder, the predictions, the model and the MLflow run."""

    output_dir: Path
    predictions: Path
    model_dir: Path
    n_customers: int
    run_id: str | None = None
    model_uri: str | None = None


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


def read_spark_transactions(spark: Any, data: DataConfig | str | Path) -> Any:
    """Read a transaction file or folder (Parquet or CSV) into canonical Spark columns.

    Parameters
    ----------
    spark : pyspark.sql.SparkSession
    data : DataConfig, str or pathlib.Path
        The config's ``[data]`` table (a bundled dataset name, or a file or a
        folder of Parquet or CSV part files, with the column mapping), or a path.

    Returns
    -------
    pyspark.sql.DataFrame
        ``customer_id``, ``timestamp`` and (with amounts) ``amount`` as double.

    Raises
    ------
    ConfigError
        Reading options the Spark path does not offer.
    DataError
        Missing columns, or negative amounts with ``negative_amounts = "error"``.
    """
    from pyspark.sql import functions as F

    cfg = data if isinstance(data, DataConfig) else DataConfig(source=str(data))
    unsupported = [k for k in _UNSUPPORTED if getattr(cfg, k) is not None]
    if cfg.negative_amounts == "net":
        unsupported.append("negative_amounts = 'net'")
    if unsupported:
        raise ConfigError(
            f"[data] {unsupported} are not offered by engine = 'spark'; clean the log "
            "upstream or use engine = 'pandas'"
        )
    if cfg.source in BUILTIN_SOURCES:
        raw = load_cdnow() if cfg.source == "cdnow" else load_online_retail()
        keep = [c for c in ("customer_id", "timestamp", "amount") if c in raw.columns]
        tx = spark.createDataFrame(raw[keep])
    else:
        path = Path(cfg.source)
        if _is_parquet(path):
            tx = spark.read.parquet(str(path))
        else:
            tx = spark.read.csv(str(path), header=True, sep=cfg.separator or ",",
                                encoding=cfg.encoding or "UTF-8")  # fmt: skip
        mapping = {cfg.customer: "customer_id", cfg.timestamp: "timestamp"}
        if cfg.amount:
            mapping[cfg.amount] = "amount"
        missing = [c for c in mapping if c not in tx.columns]
        if missing:
            raise DataError(
                f"column(s) {missing} not found in {cfg.source}; available columns: "
                f"{list(tx.columns)}. Map your names with [data] customer, timestamp, amount"
            )
        tx = tx.select(*(F.col(f"`{k}`").alias(v) for k, v in mapping.items()))
        if cfg.timestamp_format is not None:
            tx = tx.withColumn("timestamp", F.to_timestamp("timestamp", cfg.timestamp_format))
    if "amount" in tx.columns:
        tx = tx.withColumn("amount", F.col("amount").cast("double"))
        if cfg.negative_amounts == "error":
            n_bad = tx.filter(F.col("amount") < 0).count()
            if n_bad:
                raise DataError(f"column 'amount': {n_bad} rows are negative (returns)")
        tx = tx.filter(~(F.col("amount") < 0))
        if cfg.drop_zero_amounts:
            tx = tx.filter(F.col("amount") != 0)
    return tx


def _segmenters(cfg: ExperimentConfig, spend: bool) -> tuple[Any, Any]:
    rules = next((s for s in cfg.segmentations if s.kind == "rules"), None)
    kmeans = next((s for s in cfg.segmentations if s.kind == "kmeans"), None)
    return (
        None if rules is None else rules.build(spend),
        None if kmeans is None else kmeans.build(spend),
    )


def run_spark_experiment(
    cfg: ExperimentConfig,
    *,
    output_dir: str | Path | None = None,
    tracking_uri: str | None = None,
    spark: Any = None,
) -> SparkRunResult:
    """Fit on the whole period and score every customer, inside Spark.

    Parameters
    ----------
    cfg : ExperimentConfig
        With ``engine = "spark"`` (not checked: any config runs).
    output_dir : path, optional
        Default the config's ``output_dir``. Receives ``predictions.parquet/``
        (partitioned by ``segment``), ``predictions.meta.json`` and ``model/``
        (the :class:`~rfmml.campaign.ScoringPipeline`, JSON files).
    tracking_uri : str, optional
        MLflow store (see :func:`rfmml.tracking.resolve_tracking_uri`); the
        run logs its parameters, parameter estimates and the scoring model.
    spark : pyspark.sql.SparkSession, optional
        Default: the active session, else one on ``cfg.spark_master``.

    Returns
    -------
    SparkRunResult
    """
    spark = spark if spark is not None else spark_session(cfg.spark_master)
    out = Path(output_dir if output_dir is not None else cfg.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    tx = read_spark_transactions(spark, cfg.data)
    spend = "amount" in tx.columns
    end = cfg.observation_end
    features = rfm_table(tx, end).cache()
    summary = btyd_summary(tx, end, cfg.freq).cache()
    rules, kmeans = _segmenters(cfg, spend)
    if rules is not None:
        rules.fit(features)
    if kmeans is not None:
        kmeans.fit(features)
    name = cfg.models.purchase_models[0]
    purchase = cfg.models.build_purchase_model(name).fit(summary)
    gg = cfg.models.build_gamma_gamma().fit(summary) if spend else None
    settings: dict[str, Any] = dict(
        horizon=int(cfg.models.horizon), discount_rate=float(cfg.models.discount_rate),
        freq=cfg.freq, playbook=cfg.playbook, churn_basis=cfg.models.churn_basis,
        next_order_window=cfg.models.window(cfg.freq),
    )  # fmt: skip
    table = score_customers(
        features, summary, rule_segmenter=rules, kmeans_segmenter=kmeans,
        purchase_model=purchase, gamma_gamma=gg, **settings,
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
    )  # fmt: skip
    model_dir = pipeline.save(out / "model")
    n_customers = int(purchase.n_customers_)
    result = SparkRunResult(out, paths["parquet"], model_dir, n_customers)
    if tracking_uri is not None or cfg.tracking_uri is not None:
        result.run_id, result.model_uri = _track(cfg, tracking_uri, pipeline, features, summary,
                                                 purchase, gg, n_customers)  # fmt: skip
    return result


def _track(cfg: ExperimentConfig, uri: str | None, pipeline: ScoringPipeline, features: Any,
           summary: Any, purchase: Any, gg: Any, n_customers: int) -> tuple[str, str]:  # fmt: skip
    """One MLflow run: settings, estimates and the scoring model (5 example rows collected)."""
    resolved = tracking.resolve_tracking_uri(uri, configured=cfg.tracking_uri)
    experiment_id = tracking.ensure_experiment(cfg.name, resolved)
    with tracking.tracked_run(
        f"{cfg.name}-spark", experiment_id=experiment_id, tags={"rfmml.engine": "spark"}
    ) as run:
        tracking.log_params({"engine": "spark", "freq": cfg.freq,
                             "purchase_model": cfg.models.purchase_models[0],
                             "observation_end": str(cfg.observation_end.date())})  # fmt: skip
        metrics = {f"{purchase.kind}_{k}": v for k, v in purchase.get_fitted_params().items()}
        if gg is not None:
            metrics.update({f"gamma_gamma_{k}": v for k, v in gg.get_fitted_params().items()})
        metrics["n_customers"] = float(n_customers)
        tracking.log_metrics(metrics)
        example = _example(features, summary)
        model_uri = tracking.log_folder_model(
            pipeline, example, loader="rfmml.campaign.pipeline_model:ScoringPipeline"
        )
    return run.info.run_id, model_uri


def _example(features: Any, summary: Any, rows: int = 5) -> pd.DataFrame:
    """The scoring input of ``rows`` customers, collected (an MLflow input example)."""
    first = features.limit(rows)
    feats = first.toPandas().set_index("customer_id")
    summ = summary.join(first.select("customer_id"), on="customer_id").toPandas()
    summ = summ.set_index("customer_id").reindex(feats.index)
    summ.attrs = frame_attrs(summary)
    return scoring_frame(feats, summ)


def predict_spark(
    model_dir: str | Path,
    transactions: str | Path | Any,
    output: str | Path,
    *,
    observation_end: Any = None,
    spark: Any = None,
    data: DataConfig | None = None,
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

    Returns
    -------
    dict of str to pathlib.Path
    """
    from rfmml.features._spark import is_spark

    pipeline = ScoringPipeline.load(model_dir)
    end = observation_end if observation_end is not None else pipeline.observation_end
    if end is None:
        raise DataError("scoring transactions needs an observation end; pass observation_end=")
    if is_spark(transactions):
        tx = transactions
    else:
        spark = spark if spark is not None else spark_session()
        source = data if data is not None else DataConfig(source=str(transactions))
        if data is not None:
            source.source = str(transactions)
        tx = read_spark_transactions(spark, source)
    features = rfm_table(tx, end).cache()
    summary = btyd_summary(tx, end, pipeline.freq).cache()
    table = score_customers(
        features, summary, rule_segmenter=pipeline.rule_segmenter,
        kmeans_segmenter=pipeline.kmeans_segmenter, purchase_model=pipeline.purchase_model,
        gamma_gamma=pipeline.gamma_gamma, horizon=int(pipeline.horizon),
        discount_rate=float(pipeline.discount_rate), freq=pipeline.freq,
        playbook=pipeline.playbook, churn_basis=pipeline.churn_basis,
        next_order_window=pipeline.next_order_window,
    )  # fmt: skip
    fingerprints = {
        "purchase_model": getattr(pipeline.purchase_model, "training_fingerprint_", None),
        "gamma_gamma": getattr(pipeline.gamma_gamma, "training_fingerprint_", None),
        "model_dir": str(Path(model_dir).resolve()),
    }
    return write_spark_predictions(table, output, fingerprints=fingerprints)
