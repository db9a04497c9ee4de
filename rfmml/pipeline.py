"""Run an experiment config: a pure :func:`evaluate`, then :func:`record`.

:func:`evaluate` loads and cleans the transactions, builds features on the
calibration period, fits every segmentation and every purchase model of the
config (``[models] purchase_models``) and Gamma-Gamma, judges them all on the
same holdout period (the purchase models also by AIC, BIC and the tracking of
repeat transactions), chooses the scoring model by ``[models] selection``,
follows the best rule segmentation's customers across the two dates, and
(:func:`score`) refits on the full period to score every customer. It returns
an :class:`Evaluation`: fitted estimators, tables, figures and the cleaning
report; it writes nothing.

:func:`record` writes the files (predictions, lists, tables, figures, the
scoring pipeline, ``model_comparison.csv``, ``tracking.png``) and the MLflow runs
(a parent run per invocation, a child run per segmentation, one per purchase
model, one for the models together, one for scoring). :func:`run_experiment`
is the two in one call.

Honest evaluation, then production scoring:

1. Metrics use features up to ``calibration_end`` and outcomes from
   ``calibration_end`` to ``observation_end``, identical for every segmentation.
2. The predictions use everything up to ``observation_end``: the best rule
   segmentation and the best k-means segmentation (by the primary metric), the
   chosen purchase model and Gamma-Gamma are refitted on the full period and
   score every customer.

A log without amounts (``[data] amount = ""``) runs too, on recency and
frequency: rule schemes score R and F only (a scheme that scores spend, such
as ``rfm11``, is refused with a :class:`~rfmml.errors.ConfigError` naming the
segmentation), k-means clusters ``recency_days`` and ``n_orders``, the
segmentation metrics that need spend are left out, Gamma-Gamma is skipped (one
logged line says so) and the predictions have no spend columns
(``total_spend``, ``M``, ``RFM``, ``expected_order_value``,
``expected_spend``, ``clv``).

A file source (CSV or Parquet ``[data] source``) is loaded with
:func:`rfmml.data.scan_transactions`: the cleaned log stays in DuckDB (a
:class:`~rfmml.data.ScannedLog`, its rows moved to a temporary Parquet file so
that the process does not hold them between stages) and every stage reads it
there (features, holdout outcomes, repeat-transaction tracking, transitions,
scoring, the data statistics and the report), so no pandas copy of the whole
log is made. The
results are those of the pandas path (``[data] engine = "pandas"``, and the
bundled datasets, which are pandas frames). The log is closed when
:func:`run_experiment` ends; a caller of :func:`evaluate` closes it with
:meth:`Evaluation.close`.
"""

from __future__ import annotations

import logging
import shutil
import tempfile
import warnings
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NoReturn, TypeAlias, TypeVar

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from sklearn.base import BaseEstimator, clone

from rfmml import tracking
from rfmml._documents import replacing
from rfmml.campaign.exports import read_predictions, write_predictions
from rfmml.campaign.lists import export_segment_changes, export_segment_lists
from rfmml.campaign.pipeline_model import ScoringPipeline, scoring_frame
from rfmml.config import (
    BUILTIN_SOURCES,
    PURCHASE_MODEL_LABELS,
    ExperimentConfig,
    SegmentationConfig,
    load_config,
)
from rfmml.data import (
    CleaningReport,
    ScannedLog,
    load_cdnow,
    load_online_retail,
    online_retail_path,
    read_transactions,
    scan_transactions,
)
from rfmml.data.datasets import _lifetimes_datasets
from rfmml.data.fingerprint import fingerprint
from rfmml.data.transactions import end_cutoff
from rfmml.errors import ConfigError, DataError
from rfmml.evaluation import (
    compare_table,
    evaluate_holdout,
    evaluate_segmentation,
    fit_statistics,
    model_choice,
    repeat_transaction_tracking,
    standardized_features,
    tracking_mape,
)
from rfmml.evaluation.segmentation import FEATURE_COLUMNS_NO_SPEND, SPEND_METRICS
from rfmml.features import (
    calibration_holdout,
    calibration_summary,
    customer_features,
    rfm_table,
)
from rfmml.features._engine import _BYTES_PER_ROW
from rfmml.models import BetaGeoNBD, GammaGamma, PurchaseModel, StandardErrorWarning
from rfmml.plots import (
    plot_calibration_vs_holdout_purchases,
    plot_cluster_profiles,
    plot_comparison,
    plot_frequency_recency_matrix,
    plot_period_transactions,
    plot_probability_alive_matrix,
    plot_rf_grid,
    plot_segment_sizes,
    plot_segment_totals,
    plot_silhouette_curve,
    plot_tracking,
    plot_transition_matrix,
)
from rfmml.report import build_report
from rfmml.segments import (
    KMeansSegmenter,
    RuleSegmenter,
    SegmentTransitions,
    segment_profile,
    segment_transitions,
)
from rfmml.segments.persistence import save_segmenter

__all__ = [
    "Calibration",
    "Evaluation",
    "ExperimentResult",
    "ModelEvaluation",
    "Scoring",
    "SegmentationEvaluation",
    "evaluate",
    "evaluate_models",
    "evaluate_one_segmentation",
    "evaluate_transitions",
    "fingerprint",
    "load_experiment_data",
    "record",
    "run_experiment",
    "scan_experiment_data",
    "score",
]

logger = logging.getLogger(__name__)
_T = TypeVar("_T")
Progress = Callable[[str], None]
#: A cleaned log: one pandas frame, or a :class:`~rfmml.data.ScannedLog` held by DuckDB.
Log: TypeAlias = pd.DataFrame | ScannedLog
MODELS_RUN = "bgnbd_gamma_gamma"
NO_SPEND_MESSAGE = (
    "the transactions have no amounts: Gamma-Gamma (the spend model) is skipped; "
    "segments use recency and frequency, and the predictions have no spend or CLV columns"
)


def has_spend(tx: pd.DataFrame | ScannedLog) -> bool:
    """Whether the transactions have amounts (spend features and models apply)."""
    return "amount" in tx.columns


def check_without_spend(cfg: ExperimentConfig) -> None:
    """Refuse, before any fitting, what a log without amounts cannot run.

    Raises
    ------
    ConfigError
        The primary metric needs spend, or a segmentation scores it (one line
        naming the segmentation).
    """
    if cfg.primary_metric in SPEND_METRICS:
        raise ConfigError(
            f"primary_metric = {cfg.primary_metric!r} needs amounts, but the log has none; "
            "use buy_again_auc or another metric without spend"
        )
    for seg_cfg in cfg.segmentations:
        seg_cfg.build(spend=False)


def _spill_log(log: ScannedLog) -> Path:
    """Move a scanned log's rows from DuckDB's memory to a temporary Parquet file.

    The table becomes a view of the file (same name, columns and types), so
    every stage reads the log from disk (the operating system's file cache)
    and the process does not hold it between stages: at 10M rows the file is
    about 180 MB against some 400 MB in memory. The connection then gets the
    memory budget the pandas path gives each feature query (64 bytes a row of
    the log, at least 512 MiB; past it DuckDB spills to its temporary folder)
    and returns what its queries freed to the system (the allocator's
    background threads), as the pandas path's short-lived connections do.
    Returns the folder to remove when the log is closed.
    """
    folder = Path(tempfile.mkdtemp(prefix="rfmml-run-"))
    path = (folder / "log.parquet").as_posix().replace("'", "''")
    con = log.connection
    try:
        (n_rows,) = con.sql(f"SELECT count(*) FROM {log.table}").fetchall()[0]
        con.execute(f"COPY {log.table} TO '{path}' (FORMAT parquet, ROW_GROUP_SIZE 1000000)")
        log.release()
        con.execute(f"CREATE TEMP VIEW {log.table} AS SELECT * FROM read_parquet('{path}')")
        budget = max(512 * 2**20, _BYTES_PER_ROW * int(n_rows))
        con.execute(f"SET memory_limit = '{budget}B'")
        con.execute("SET allocator_background_threads = true")
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)
        raise
    return folder


def _fingerprint_scanned(log: ScannedLog) -> tuple[str, pd.DataFrame]:
    """:func:`fingerprint` of a scanned log, a chunk at a time, and its first five rows.

    The same value as the fingerprint of the pandas frame of the same rows
    (:meth:`~rfmml.data.ScannedLog.iter_pandas` gives its rows in order, with
    its types), so both paths give the run the same ``data_fingerprint``.
    """
    first: list[pd.DataFrame] = []

    def chunks() -> Iterable[pd.DataFrame]:
        for chunk in log.iter_pandas():
            if not first:
                first.append(chunk.head(5).reset_index(drop=True))
            yield chunk

    digest = fingerprint(chunks())
    return digest, first[0]


def load_experiment_data(cfg: ExperimentConfig) -> tuple[pd.DataFrame, CleaningReport, str]:
    """Load the transactions of a config; return them, the cleaning report and the source."""
    data = cfg.data
    if data.source in BUILTIN_SOURCES:
        tx, report, source = _load_bundled(cfg)
    else:
        tx, report = read_transactions(
            data.source,
            **data.reader_options(),
            observation_end=cfg.observation_end,
            allow_end_beyond_data=cfg.allow_end_beyond_data,
        )
        source = data.source
    return _finish_loading(tx, report, cfg), report, source


def scan_experiment_data(cfg: ExperimentConfig) -> tuple[Log, CleaningReport, str]:
    """Like :func:`load_experiment_data`, but a file source's cleaned log stays in DuckDB.

    A CSV or Parquet ``[data] source`` is read and cleaned by
    :func:`rfmml.data.scan_transactions` and comes back as a
    :class:`~rfmml.data.ScannedLog` (the customer sample and the rows after the
    observation end are removed inside DuckDB; the same rows and cleaning
    report as :func:`load_experiment_data`). The bundled datasets and
    ``[data] engine = "pandas"`` give the pandas frame of
    :func:`load_experiment_data`.

    Returns
    -------
    log, report, source
        Close a ``ScannedLog`` with ``log.close()`` when done.
    """
    data = cfg.data
    if data.source in BUILTIN_SOURCES or data.engine == "pandas":
        return load_experiment_data(cfg)
    log, report = scan_transactions(
        data.source,
        **data.reader_options(),
        observation_end=cfg.observation_end,
        allow_end_beyond_data=cfg.allow_end_beyond_data,
    )
    try:
        return _finish_loading(log, report, cfg), report, data.source
    except BaseException:
        log.close()
        raise


def _load_bundled(cfg: ExperimentConfig) -> tuple[pd.DataFrame, CleaningReport, str]:
    """A bundled dataset with the config's cleaning options applied on top."""
    data = cfg.data
    if data.source == "cdnow":
        raw, source = load_cdnow(), str(_lifetimes_datasets() / "CDNOW_master.txt")
    else:
        raw, source = load_online_retail(), str(online_retail_path())
    loaded = CleaningReport(**raw.attrs["cleaning_report"])
    if data.group is not None and data.group not in raw.columns:
        raise ConfigError(
            f"[data] group = {data.group!r} is not a column of {data.source}; "
            f"columns: {list(raw.columns)}"
        )
    # The bundled logs are already canonical; the config's cleaning options
    # (negative amounts, zero amounts, duplicates) apply on top.
    tx, again = read_transactions(
        raw,
        group=data.group,
        order="order_id" if "order_id" in raw.columns else None,
        negative_amounts=data.negative_amounts,
        drop_zero_amounts=data.drop_zero_amounts,
        drop_duplicates=data.drop_duplicates,
        observation_end=cfg.observation_end,
        allow_end_beyond_data=cfg.allow_end_beyond_data,
        since=data.since,
        until=data.until,
        normalize_ids=data.normalize_ids,
        currency=data.currency,
        currency_column=data.currency_column,
    )
    report = loaded.then(again)
    if "order_id" in tx.columns and data.order is None:
        tx = tx.drop(columns="order_id")
    return tx, report, source


_TLog = TypeVar("_TLog", pd.DataFrame, ScannedLog)


def _finish_loading(tx: _TLog, report: CleaningReport, cfg: ExperimentConfig) -> _TLog:
    """The seeded customer sample and the late-row drop (a ScannedLog's inside DuckDB)."""
    n_sample = cfg.data.sample_customers
    reason = f"customer not in the seeded sample of {n_sample}"
    late = f"after the observation end {cfg.observation_end.date()}"
    cut = end_cutoff(cfg.observation_end)
    if isinstance(tx, ScannedLog):
        if n_sample is not None:
            _sample_scanned(tx, report, n_sample, cfg.random_state, reason)
        _drop_scanned(tx, report, f"\"timestamp\" >= TIMESTAMP '{cut.isoformat(sep=' ')}'", late)
        report.check()
        return tx
    if n_sample is not None:
        ids = tx["customer_id"].unique()
        if n_sample < len(ids):
            rng = np.random.default_rng(cfg.random_state)
            keep = rng.choice(ids, size=n_sample, replace=False)
            tx = report.drop(tx, ~tx["customer_id"].isin(keep), reason)
    after = tx["timestamp"] >= cut
    if after.any():
        tx = report.drop(tx, after, late)
    report.check()
    return tx


def _sample_scanned(
    log: ScannedLog, report: CleaningReport, n_sample: int, seed: int, reason: str
) -> None:
    """The seeded sample of customers of :func:`load_experiment_data`, drawn from DuckDB.

    The ids come back once per customer, in order of first appearance in the
    log (the order of ``Series.unique``), so the same generator draws the same
    customers.
    """
    ids = log.connection.sql(
        f"""SELECT customer_id FROM (
                SELECT customer_id, row_number() OVER (ORDER BY {log.order_by}) AS _pos
                FROM {log.table})
            GROUP BY customer_id ORDER BY min(_pos)"""
    ).fetchnumpy()["customer_id"]
    ids = np.asarray(ids)
    if n_sample >= len(ids):
        return
    keep = np.random.default_rng(seed).choice(ids, size=n_sample, replace=False)
    log.connection.register("_sample", pd.DataFrame({"customer_id": keep}))
    try:
        _drop_scanned(log, report, "customer_id NOT IN (SELECT customer_id FROM _sample)",
                      reason, always=True)  # fmt: skip
    finally:
        log.connection.unregister("_sample")


def _drop_scanned(
    log: ScannedLog, report: CleaningReport, where: str, reason: str, *, always: bool = False
) -> None:
    """Delete the rows of a scanned log where ``where`` holds, keeping the report's books.

    As :meth:`CleaningReport.drop`; the reason is recorded when rows go (or ``always``).
    """
    table = log.table
    n = int(log.connection.sql(f"SELECT count(*) FROM {table} WHERE {where}").fetchall()[0][0])
    if n or always:
        log.materialize()  # rows held in Arrow are read-only
        log.connection.execute(f"DELETE FROM {table} WHERE {where}")
        report.remove(reason, n)
        report.rows_out -= n


# --------------------------------------------------------------------------- results


@dataclass
class Calibration:
    """Calibration-period features and holdout outcomes shared by every evaluation."""

    cal_holdout: pd.DataFrame
    features: pd.DataFrame
    summary: pd.DataFrame
    X_std: pd.DataFrame

    @property
    def spend(self) -> bool:
        """Whether the features have spend (the transactions have amounts)."""
        return "total_spend" in self.features.columns

    @classmethod
    def build(cls, tx: pd.DataFrame | ScannedLog, cfg: ExperimentConfig) -> Calibration:
        """Features up to ``calibration_end``, outcomes up to ``observation_end``.

        ``tx`` may be a :class:`~rfmml.data.ScannedLog`: both tables are then
        computed inside DuckDB.
        """
        group = cfg.data.group
        cal_holdout = calibration_holdout(
            tx, cfg.calibration_end, cfg.observation_end, freq=cfg.freq, group=group
        )
        features = rfm_table(tx, observation_end=cfg.calibration_end, group=group)
        features = features.loc[cal_holdout.index]
        return cls(
            cal_holdout=cal_holdout,
            features=features,
            summary=calibration_summary(cal_holdout),
            X_std=(
                standardized_features(features)
                if "total_spend" in features.columns
                else standardized_features(features, FEATURE_COLUMNS_NO_SPEND)
            ),
        )


@dataclass
class SegmentationEvaluation:
    """One segmentation fitted on the calibration features and judged on the holdout."""

    config: SegmentationConfig
    segmenter: BaseEstimator
    metrics: dict[str, float]
    profile: pd.DataFrame
    tables: dict[str, pd.DataFrame]
    figures: dict[str, Figure]


@dataclass
class PurchaseModelFit:
    """One purchase model fitted on the calibration period and judged on the holdout.

    ``metrics`` holds the fit statistics (``log_likelihood``, ``n_params``,
    ``aic``, ``bic``), the model's holdout metrics and ``tracking_mape``;
    ``degenerate`` the flagged parameters
    (:meth:`~rfmml.models.MaximumLikelihoodModel.degenerate_parameters`) and
    ``message`` the one-line diagnostic when there are any.
    """

    name: str
    model: PurchaseModel
    holdout_metrics: pd.DataFrame
    metrics: dict[str, float]
    degenerate: pd.DataFrame
    message: str | None


@dataclass
class ModelEvaluation:
    """Purchase models and Gamma-Gamma fitted on the calibration period, judged on the holdout.

    ``fits`` holds every purchase model of the config by name; ``chosen`` is
    the one the ``selection`` metric picked (the scoring model);
    ``holdout_metrics`` compares it with the baseline (``model_metrics.csv``)
    and ``comparison`` every model and the baseline (``model_comparison.csv``).
    ``baseline_beats_models`` is the one-line warning given when the naive
    baseline beats the chosen model on the ``selection`` metric (else None).
    """

    fits: dict[str, PurchaseModelFit]
    chosen: str
    selection: str
    gamma_gamma: GammaGamma | None  # None for a log without amounts
    holdout_metrics: pd.DataFrame
    comparison: pd.DataFrame
    tracking: pd.DataFrame
    metrics: dict[str, float]
    figures: dict[str, Figure]
    warnings: list[str]
    messages: list[str] = field(default_factory=list)
    baseline_beats_models: str | None = None

    @property
    def purchase_model(self) -> PurchaseModel:
        """The chosen purchase model (fitted on the calibration period)."""
        return self.fits[self.chosen].model

    @property
    def bgnbd(self) -> PurchaseModel:
        """The BG/NBD fit when the config has one, else the chosen model."""
        return self.fits["bgnbd"].model if "bgnbd" in self.fits else self.purchase_model


@dataclass
class Scoring:
    """The full-period refit and every customer's scores (what production would use)."""

    pipeline: ScoringPipeline
    scoring_input: pd.DataFrame
    predictions: pd.DataFrame
    rule_segmentation: str | None
    kmeans_segmentation: str | None
    fit_warnings: list[str]
    purchase_model_name: str = "bgnbd"
    messages: list[str] = field(default_factory=list)


class _Transactions:
    """:attr:`Evaluation.transactions`: the log as pandas, read from DuckDB on first access."""

    def __get__(self, obj: Evaluation | None, objtype: type | None = None) -> pd.DataFrame:
        if obj is None:  # a required field of the dataclass (no default)
            raise AttributeError("transactions")
        return obj._pandas_log()

    def __set__(self, obj: Evaluation, value: pd.DataFrame | ScannedLog) -> None:
        obj.__dict__["log"] = value
        obj.__dict__["_frame"] = value if isinstance(value, pd.DataFrame) else None


@dataclass
class Evaluation:
    """Everything :func:`evaluate` computed; :func:`record` writes it out.

    ``failed_step`` names the step that raised (a segmentation name,
    ``"bgnbd_gamma_gamma"``, ``"transitions"`` or ``"scoring"``) when this is the
    partial evaluation attached to an exception; it is None when complete.

    ``log`` is the cleaned log as the run holds it: the pandas frame, or for a
    file source a :class:`~rfmml.data.ScannedLog` (read by DuckDB from a
    temporary Parquet file; closed, and the file removed, by :meth:`close`,
    which :func:`run_experiment` calls when it ends).
    ``transactions`` is always a pandas frame: for a ``ScannedLog`` it is read
    into pandas on first access (the whole log in memory; rfmml itself never
    does this) and kept; once the log is closed it can no longer be read.
    """

    config: ExperimentConfig
    transactions: _Transactions = _Transactions()  # required: no default (see _Transactions)
    report: CleaningReport  # type: ignore[misc]
    source: str  # type: ignore[misc]
    data_fingerprint: str  # type: ignore[misc]
    calibration: Calibration  # type: ignore[misc]
    segmentations: dict[str, SegmentationEvaluation] = field(default_factory=dict)
    comparison: pd.DataFrame | None = None
    models: ModelEvaluation | None = None
    transitions: SegmentTransitions | None = None
    transition_figure: Figure | None = None
    scoring: Scoring | None = None
    failed_step: str | None = None
    log: pd.DataFrame | ScannedLog = field(init=False, repr=False, compare=False)
    _frame: pd.DataFrame | None = field(init=False, repr=False, compare=False)
    _head: pd.DataFrame | None = field(default=None, init=False, repr=False, compare=False)
    _counts: tuple[int, int] | None = field(default=None, init=False, repr=False,
                                            compare=False)  # fmt: skip
    _spilled: Path | None = field(default=None, init=False, repr=False, compare=False)

    def __repr__(self) -> str:
        kind = "ScannedLog" if isinstance(self.log, ScannedLog) else "pandas"
        return (f"Evaluation(config={self.config.name!r}, source={self.source!r}, "
                f"log={kind}, failed_step={self.failed_step!r})")  # fmt: skip

    def _pandas_log(self) -> pd.DataFrame:
        if self._frame is None:
            log = self.log
            assert isinstance(log, ScannedLog)  # a frame is kept as is
            try:
                self._frame = log.to_pandas()
            except Exception as exc:  # the connection is closed
                raise ValueError(
                    "Evaluation.transactions: the run's log was held by DuckDB and is closed "
                    "(run_experiment closes it when it ends); read it with "
                    "rfmml.data.read_transactions, or read .transactions of evaluate()'s "
                    "result before its close()"
                ) from exc
        return self._frame

    def close(self) -> None:
        """Close the DuckDB log of a file source and remove its temporary file.

        Nothing to do for a pandas log.
        """
        if isinstance(self.log, ScannedLog):
            self.log.close()
        if self._spilled is not None:
            shutil.rmtree(self._spilled, ignore_errors=True)

    def log_counts(self) -> tuple[int, int]:
        """Rows and distinct customers of the cleaned log (counted by DuckDB for a ScannedLog)."""
        if self._counts is None:
            log = self.log
            if isinstance(log, ScannedLog):
                rows, customers = log.connection.sql(
                    f"SELECT count(*), count(DISTINCT customer_id) FROM {log.table}"
                ).fetchall()[0]
                self._counts = int(rows), int(customers)
            else:
                self._counts = len(log), int(log["customer_id"].nunique())
        return self._counts


@dataclass
class ExperimentResult:
    """What one experiment run produced and where it went."""

    config: ExperimentConfig
    tracking_uri: str
    experiment_id: str
    parent_run_id: str
    runs: dict[str, str]
    comparison: pd.DataFrame
    model_metrics: pd.DataFrame
    predictions: pd.DataFrame
    pipeline: ScoringPipeline
    scoring_input: pd.DataFrame
    model_uri: str
    output_dir: Path
    files: dict[str, Path] = field(default_factory=dict)
    report: CleaningReport | None = None
    evaluation: Evaluation | None = None
    model_comparison: pd.DataFrame | None = None
    chosen_model: str | None = None


# --------------------------------------------------------------------------- evaluate


def _stability_segmenter(segmenter: BaseEstimator, cfg: ExperimentConfig) -> Any:
    """What the bootstrap stability refits (None when ``n_bootstrap`` is 0).

    For k-means with ``n_clusters="auto"`` the refits keep the chosen k: the
    metric measures how stable the clustering is, not the search for k (which
    would cost a whole search per resample).
    """
    if cfg.n_bootstrap == 0:
        return None
    if isinstance(segmenter, KMeansSegmenter) and segmenter.n_clusters == "auto":
        return clone(segmenter).set_params(n_clusters=segmenter.n_clusters_)
    return segmenter


def evaluate_one_segmentation(
    seg_cfg: SegmentationConfig, cal: Calibration, cfg: ExperimentConfig
) -> SegmentationEvaluation:
    """Fit one segmentation on the calibration features; metrics, tables and figures."""
    segmenter = seg_cfg.build(spend=cal.spend).fit(cal.features)
    labels = segmenter.predict(cal.features)
    metrics = evaluate_segmentation(
        labels,
        cal.features,
        cal.cal_holdout,
        X_std=cal.X_std,
        segmenter=_stability_segmenter(segmenter, cfg),
        n_bootstrap=max(cfg.n_bootstrap, 1),
        random_state=cfg.random_state,
        sample_size=cfg.sample_size,
    )
    spend = cal.features["total_spend"] if cal.spend else None
    profile = segment_profile(
        cal.features, labels, monetary_col="total_spend" if cal.spend else None
    )
    tables: dict[str, pd.DataFrame] = {}
    figures = {"segment_sizes.png": plot_segment_sizes(profile)}
    if isinstance(segmenter, RuleSegmenter):
        scores = segmenter.transform(cal.features)
        figures["rf_grid.png"] = plot_rf_grid(scores, spend, segmenter.scheme_)
    else:
        tables["cluster_centers.csv"] = segmenter.cluster_centers_.assign(
            name=segmenter.cluster_names_
        )
        tables["rule_agreement.csv"] = segmenter.rule_agreement_
        figures["cluster_profiles.png"] = plot_cluster_profiles(segmenter, cal.features)
        figures["silhouette_curve.png"] = plot_silhouette_curve(segmenter.silhouette_curve_)
    return SegmentationEvaluation(seg_cfg, segmenter, metrics, profile, tables, figures)


def _caught(caught: list[warnings.WarningMessage]) -> list[str]:
    return [str(w.message) for w in caught]


def degenerate_message(name: str, model: PurchaseModel, flagged: pd.DataFrame, when: str) -> str:
    """The one plain line that tells a degenerate fit and what to try."""
    label = PURCHASE_MODEL_LABELS.get(name, name)
    return model_choice.degenerate_message(name, model, flagged, when, label)


def _fit_quietly(fit: Callable[..., _T], *args: Any) -> tuple[_T, list[warnings.WarningMessage]]:
    """``fit(*args)`` with its warnings recorded (returned), not shown."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with np.errstate(all="ignore"):
            value = fit(*args)
    return value, list(caught)


def _non_hessian(caught: list[warnings.WarningMessage]) -> list[str]:
    """Warning texts, without the standard-error ones (a degenerate fit says it once)."""
    return sorted({str(w.message) for w in caught if w.category is not StandardErrorWarning})


def _choose(fits: dict[str, PurchaseModelFit], selection: str) -> str:
    """The model with the best ``selection`` metric; NaN loses, ties go to the first listed."""
    return model_choice.choose_model({n: f.metrics for n, f in fits.items()}, selection)


COMPARISON_METRICS = model_choice.COMPARISON_METRICS


def _comparison_table(
    fits: dict[str, PurchaseModelFit], baseline: pd.Series, chosen: str
) -> pd.DataFrame:
    return model_choice.comparison_table(
        {n: f.metrics for n, f in fits.items()}, {n: f.degenerate for n, f in fits.items()},
        baseline, chosen, PURCHASE_MODEL_LABELS,
    )  # fmt: skip


def evaluate_models(
    cfg: ExperimentConfig, cal: Calibration, tx: pd.DataFrame | ScannedLog | None = None
) -> ModelEvaluation:
    """Fit every purchase model of the config and Gamma-Gamma on the calibration summary.

    Each purchase model is judged on the holdout period (holdout metrics, AIC,
    BIC and, given the transactions ``tx`` (a pandas frame or a
    :class:`~rfmml.data.ScannedLog`, counted inside DuckDB), the tracking error
    of its cumulative repeat transactions); the one with the best ``[models]
    selection`` metric is chosen for scoring. A degenerate fit gives one plain
    line (logged as a warning and kept in ``messages``) instead of raw warnings.

    Without amounts (no ``monetary_value`` in the summary) Gamma-Gamma is not
    fitted: ``gamma_gamma`` is None and the spend metric is left out.
    """
    names = list(cfg.models.purchase_models)
    fits: dict[str, PurchaseModelFit] = {}
    caught: list[warnings.WarningMessage] = []
    gg: GammaGamma | None = None
    gg_caught: list[warnings.WarningMessage] = []
    if "monetary_value" in cal.summary.columns:  # a log without amounts has no spend model
        gg, gg_caught = _fit_quietly(lambda: cfg.models.build_gamma_gamma().fit(cal.summary))
    messages: list[str] = []
    for name in names:
        model, got = _fit_quietly(cfg.models.build_purchase_model(name).fit, cal.summary)
        caught += got
        table, _ = _fit_quietly(evaluate_holdout, model, gg, cal.cal_holdout)
        flagged = model.degenerate_parameters()
        message = None
        if len(flagged):
            message = degenerate_message(name, model, flagged, "calibration period")
        if message:
            messages.append(message)
            logger.warning(message)
        stats = fit_statistics(model) | {k: float(v) for k, v in table["model"].items()}
        fits[name] = PurchaseModelFit(name, model, table, stats, flagged, message)
    group = cfg.data.group
    curves = pd.DataFrame()
    if tx is not None:
        curves, _ = _fit_quietly(lambda: repeat_transaction_tracking(
            tx, {n: f.model for n, f in fits.items()}, cfg.calibration_end,
            cfg.observation_end, freq=cfg.freq,
            keys=["customer_id", *([group] if group else [])],
        ))  # fmt: skip
        for name, fitted in fits.items():
            fitted.metrics["tracking_mape"] = tracking_mape(curves, name)
    chosen = _choose(fits, cfg.models.selection)
    table = fits[chosen].holdout_metrics
    beaten = model_choice.baseline_beats_message(
        fits[chosen].metrics, table["baseline"], cfg.models.selection,
        PURCHASE_MODEL_LABELS.get(chosen, chosen),
    )  # fmt: skip
    if beaten:
        logger.warning(beaten)
    comparison = _comparison_table(fits, table["baseline"], chosen)
    metrics: dict[str, float] = {}
    for name, fitted in fits.items():
        metrics |= {f"{name}.{k}": v for k, v in dict(fitted.model.params_).items()}
        metrics[f"{name}.log_likelihood"] = fitted.model.log_likelihood_
        for param, se in fitted.model.summary_["std_error"].items():
            metrics[f"{name}.{param}_se"] = se
        for key in ("aic", "bic", "tracking_mape"):
            if key in fitted.metrics:
                metrics[f"{name}.{key}"] = fitted.metrics[key]
    if gg is not None:
        metrics |= {f"gamma_gamma.{k}": v for k, v in dict(gg.params_).items()}
        metrics["gamma_gamma.log_likelihood"] = gg.log_likelihood_
        for param, se in gg.summary_["std_error"].items():
            metrics[f"gamma_gamma.{param}_se"] = se
    for metric, row in table.iterrows():
        metrics[f"model.{metric}"] = row["model"]
        metrics[f"baseline.{metric}"] = row["baseline"]
    if len(curves):
        metrics["model.tracking_mape"] = fits[chosen].metrics["tracking_mape"]
    figures: dict[str, Figure] = {}
    if "bgnbd" in fits:
        bgnbd = fits["bgnbd"].model
        assert isinstance(bgnbd, BetaGeoNBD)
        figures, _ = _fit_quietly(lambda: {
            "frequency_recency_matrix.png": plot_frequency_recency_matrix(bgnbd, cal.summary),
            "probability_alive_matrix.png": plot_probability_alive_matrix(bgnbd, cal.summary),
            "calibration_vs_holdout.png": plot_calibration_vs_holdout_purchases(
                bgnbd, cal.cal_holdout
            ),
            "period_transactions.png": plot_period_transactions(bgnbd, cal.summary),
        })  # fmt: skip
    if len(curves):
        figures["tracking.png"] = plot_tracking(curves)
    other = _non_hessian(caught)
    for text in other:
        logger.warning("calibration model fit: %s", text)
    return ModelEvaluation(
        fits=fits,
        chosen=chosen,
        selection=cfg.models.selection,
        gamma_gamma=gg,
        holdout_metrics=table,
        comparison=comparison,
        tracking=curves,
        metrics=metrics,
        figures=figures,
        warnings=_caught(gg_caught),
        messages=messages,
        baseline_beats_models=beaten,
    )


def _best(cfg: ExperimentConfig, comparison: pd.DataFrame, kind: str) -> str | None:
    kinds = {s.name: s.kind for s in cfg.segmentations}
    names = [n for n in comparison.index if kinds.get(n) == kind]
    return names[0] if names else None  # comparison is sorted best first


def _by_name(cfg: ExperimentConfig, name: str) -> SegmentationConfig:
    return next(s for s in cfg.segmentations if s.name == name)


def evaluate_transitions(
    cfg: ExperimentConfig, tx: pd.DataFrame | ScannedLog, comparison: pd.DataFrame
) -> tuple[SegmentTransitions | None, Figure | None]:
    """Moves of the best rule segmentation's customers from calibration to observation end.

    ``tx`` may be a :class:`~rfmml.data.ScannedLog` (the snapshots' RFM tables
    are then computed inside DuckDB).
    """
    best = _best(cfg, comparison, "rules")
    if best is None:
        return None, None
    result = segment_transitions(
        tx,
        [cfg.calibration_end, cfg.observation_end],
        _by_name(cfg, best).build(spend=has_spend(tx)),
        group=cfg.data.group,
        # Per group, groups first seen after the calibration end have no learned
        # score edges; refit at each snapshot then (segments relative to that date).
        refit=cfg.data.group is not None,
    )
    title = f"{best}: {cfg.calibration_end.date()} to {cfg.observation_end.date()}"
    return result, plot_transition_matrix(result.matrix(normalize=True), title=title)


def score(
    cfg: ExperimentConfig,
    tx: pd.DataFrame | ScannedLog,
    comparison: pd.DataFrame,
    *,
    purchase_model: str | None = None,
) -> Scoring:
    """Refit the best segmentations, the chosen purchase model and Gamma-Gamma on the full period.

    Parameters
    ----------
    cfg : ExperimentConfig
    tx : pandas.DataFrame or ScannedLog
        Clean transactions up to ``cfg.observation_end`` (a
        :class:`~rfmml.data.ScannedLog` is summarised inside DuckDB).
    comparison : pandas.DataFrame
        :func:`~rfmml.evaluation.compare_table` of the segmentations, best first.
    purchase_model : str, optional
        Name of the purchase model to score with (``[models] purchase_models``);
        default the first of the config's.

    Returns
    -------
    Scoring
        The fitted :class:`~rfmml.campaign.ScoringPipeline`, its input frame and
        the predictions of every customer.
    """
    group = cfg.data.group
    features, summary = customer_features(tx, cfg.observation_end, cfg.freq, group)
    scoring_input = scoring_frame(features, summary)
    spend = has_spend(tx)
    best_rules, best_kmeans = _best(cfg, comparison, "rules"), _best(cfg, comparison, "kmeans")
    rules = _by_name(cfg, best_rules).build(spend).fit(features) if best_rules else None
    kmeans = _by_name(cfg, best_kmeans).build(spend).fit(features) if best_kmeans else None
    name = purchase_model or cfg.models.purchase_models[0]
    model, caught = _fit_quietly(lambda: cfg.models.build_purchase_model(name).fit(summary))
    gg: GammaGamma | None = None
    gg_caught: list[warnings.WarningMessage] = []
    if spend:  # a log without amounts has no spend model
        gg, gg_caught = _fit_quietly(lambda: cfg.models.build_gamma_gamma().fit(summary))
    flagged = model.degenerate_parameters()
    messages = []
    if len(flagged):
        messages.append(degenerate_message(name, model, flagged, "full period"))
        logger.warning(messages[-1])
    fit_warnings = sorted(set(_non_hessian(caught)) | set(_caught(gg_caught)))
    for message in fit_warnings:
        logger.warning("full-period model fit: %s", message)
    param_draws = None
    if cfg.models.interval:
        # drawn once here (the bootstrap needs these customers) and saved with the pipeline
        param_draws = {
            key: fitted.draw_params(cfg.models.n_draws, method=cfg.models.interval_method,
                                    random_state=cfg.random_state + i, X=summary)
            for i, (key, fitted) in enumerate((("purchase_model", model), ("gamma_gamma", gg)))
            if fitted is not None
        }  # fmt: skip
    pipeline = ScoringPipeline(
        rule_segmenter=rules,
        kmeans_segmenter=kmeans,
        purchase_model=model,
        gamma_gamma=gg,
        horizon=cfg.models.horizon,
        discount_rate=cfg.models.discount_rate,
        freq=cfg.freq,
        playbook=cfg.playbook,
        group=group,
        interval=cfg.models.interval,
        n_draws=cfg.models.n_draws,
        interval_method=cfg.models.interval_method,
        random_state=cfg.random_state,
        param_draws=param_draws,
        churn_basis=cfg.models.churn_basis,
        next_order_window=cfg.models.window(cfg.freq),
        observation_end=cfg.observation_end,
    )
    predictions, _ = _fit_quietly(lambda: pipeline.predict(scoring_input))
    return Scoring(
        pipeline, scoring_input, predictions, best_rules, best_kmeans, fit_warnings, name,
        messages,
    )  # fmt: skip


def evaluate(
    config: str | Path | dict | ExperimentConfig, *, progress: Progress | None = None
) -> Evaluation:
    """Compute a whole experiment without writing anything.

    Parameters
    ----------
    config : path, mapping or ExperimentConfig
        The experiment (see :mod:`rfmml.config`).
    progress : callable, optional
        Called with a short message at the start of each step.

    Returns
    -------
    Evaluation

    Raises
    ------
    ConfigError, DataError
        Bad config or data. A failure after the calibration features are built
        carries what was computed so far as the exception's ``evaluation``
        attribute (an :class:`Evaluation` whose ``failed_step`` names the step),
        so :func:`record` can log it as a failed run.

    Notes
    -----
    For a file source the returned evaluation (or the partial one of an
    exception) holds the cleaned log in DuckDB: call its
    :meth:`Evaluation.close` when done (:func:`run_experiment` does). A
    failure before the evaluation exists closes the log itself.
    """
    cfg = config if isinstance(config, ExperimentConfig) else load_config(config)
    step = progress or (lambda message: logger.info(message))
    step(f"loading {cfg.data.source}")
    tx, report, source = scan_experiment_data(cfg)
    spilled = None
    try:
        if not has_spend(tx):
            check_without_spend(cfg)
            logger.warning(NO_SPEND_MESSAGE)
        head = None
        if isinstance(tx, ScannedLog):
            spilled = _spill_log(tx)
            step("fingerprinting the transactions")
            digest, head = _fingerprint_scanned(tx)
        else:
            digest = fingerprint(tx)
        step("building calibration features and holdout outcomes")
        result = Evaluation(cfg, tx, report, source, digest, Calibration.build(tx, cfg))
    except BaseException:
        if isinstance(tx, ScannedLog):
            tx.close()
        if spilled is not None:
            shutil.rmtree(spilled, ignore_errors=True)
        raise
    result._head, result._spilled = head, spilled
    try:
        for seg_cfg in cfg.segmentations:
            step(f"segmentation {seg_cfg.name}")
            result.failed_step = seg_cfg.name
            result.segmentations[seg_cfg.name] = evaluate_one_segmentation(
                seg_cfg, result.calibration, cfg
            )
        results = {name: seg.metrics for name, seg in result.segmentations.items()}
        result.comparison = compare_table(results, primary=cfg.primary_metric)
        step(f"fitting purchase models ({', '.join(cfg.models.purchase_models)}) and Gamma-Gamma")
        result.failed_step = MODELS_RUN
        result.models = evaluate_models(cfg, result.calibration, tx)
        step("segment transitions between calibration and observation end")
        result.failed_step = "transitions"
        result.transitions, result.transition_figure = evaluate_transitions(
            cfg, tx, result.comparison
        )
        step("refitting on the full period and scoring customers")
        result.failed_step = "scoring"
        result.scoring = score(cfg, tx, result.comparison, purchase_model=result.models.chosen)
    except Exception as exc:
        exc.evaluation = result  # type: ignore[attr-defined]
        raise
    result.failed_step = None
    return result


# --------------------------------------------------------------------------- record


def _computed(value: _T | None, what: str) -> _T:
    """A part of the evaluation that :func:`record` needs; only a partial one lacks it."""
    if value is None:
        raise ValueError(
            f"record: this evaluation has no {what} (it is partial); pass the exception "
            "it came with as error= to log it as a failed run."
        )
    return value


def _write_figure(fig: Figure, path: Path) -> Path:
    """Save a figure through a temporary file (:func:`~rfmml._documents.replacing`)."""
    with replacing(path) as temporary:
        fig.savefig(temporary, format=path.suffix.lstrip("."), dpi=110, bbox_inches="tight")
    return path


def _write_table(table: pd.DataFrame, path: Path) -> Path:
    """Write a CSV through a temporary file: an interrupted run keeps the previous one whole."""
    with replacing(path) as temporary:
        table.to_csv(temporary)
    return path


def _save_figure(fig: Figure, path: Path) -> Path:
    _write_figure(fig, path)
    plt.close(fig)
    return path


def _keep_figures(figures: dict[str, Figure], folder: Path) -> dict[str, Path]:
    """Save and close figures in the output folder; return their files by name.

    The same files then go to MLflow (:func:`_write_folder` copies them):
    each figure is drawn once.
    """
    return {file: _save_figure(fig, folder / file) for file, fig in figures.items()}


def _write_folder(folder: Path, tables: dict[str, pd.DataFrame], figures: dict[str, Path]) -> None:
    """The tables and copies of the saved figures, for :func:`tracking.log_artifacts`."""
    for file, table in tables.items():
        table.to_csv(folder / file)
    for file, path in figures.items():
        shutil.copyfile(path, folder / file)


def _parent_metrics(ev: Evaluation, comparison: pd.DataFrame) -> dict[str, float]:
    """Headline numbers of the whole run, on the parent run: the data and the winner."""
    rows, customers = ev.log_counts()
    metrics = {
        "data_rows": float(rows),
        "data_customers": float(customers),
        "cleaning_rows_removed": float(ev.report.rows_removed),
    }
    primary = ev.config.primary_metric
    if primary in comparison.columns and len(comparison):
        metrics[f"best_{primary}"] = float(comparison[primary].iloc[0])  # sorted by rank
    return metrics


def _run_params(ev: Evaluation) -> dict:
    params = ev.config.to_dict()
    params["calibration_end"] = ev.config.calibration_end.isoformat()
    params["observation_end"] = ev.config.observation_end.isoformat()
    params["data_rows"], params["data_customers"] = ev.log_counts()
    params["cleaning_rows_in"] = ev.report.rows_in
    params["cleaning_rows_removed"] = ev.report.rows_removed
    return params


def _segmentation_tags(seg_cfg: SegmentationConfig) -> dict[str, str]:
    return {
        "rfmml.role": "segmentation",
        "rfmml.segmentation": seg_cfg.name,
        "rfmml.kind": seg_cfg.kind,
    }


def _record_segmentation(seg: SegmentationEvaluation, out: Path) -> str:
    with tracking.tracked_run(
        seg.config.name, nested=True, tags=_segmentation_tags(seg.config)
    ) as run:
        segmenter = seg.segmenter
        tracking.log_params(segmenter.get_params(deep=False) | {"kind": seg.config.kind})
        tracking.log_metrics(seg.metrics)
        with tempfile.TemporaryDirectory() as tmp:
            folder = Path(tmp)
            seg.profile.to_csv(folder / "segment_profile.csv")
            saved = _keep_figures(seg.figures, out / "segmentations" / seg.config.name)
            save_segmenter(segmenter, folder / "segmenter.json")
            _write_folder(folder, seg.tables, saved)
            if isinstance(segmenter, KMeansSegmenter):
                tracking.log_params({"n_clusters_chosen": segmenter.n_clusters_})
                tracking.log_metrics({"rule_adjusted_rand_score": segmenter.adjusted_rand_score_})
            tracking.log_artifacts(folder)
    return run.info.run_id


def _record_purchase_model(fitted: PurchaseModelFit, chosen: bool) -> str:
    """A child run per purchase model: its parameters, fit statistics and holdout metrics."""
    tags = {
        "rfmml.role": "purchase_model",
        "rfmml.purchase_model": fitted.name,
        "rfmml.chosen": str(chosen).lower(),
    }
    if fitted.message:
        tags["rfmml.degenerate"] = ", ".join(fitted.degenerate.index)
        tags["rfmml.degenerate_message"] = fitted.message
    with tracking.tracked_run(fitted.name, nested=True, tags=tags) as run:
        tracking.log_params(fitted.model.get_params() | {"kind": fitted.model.kind})
        tracking.log_metrics(fitted.metrics)
        tracking.log_metrics({f"param.{k}": v for k, v in dict(fitted.model.params_).items()})
        with tempfile.TemporaryDirectory() as tmp:
            folder = Path(tmp)
            fitted.holdout_metrics.to_csv(folder / "holdout_metrics.csv")
            fitted.model.summary_.to_csv(folder / "summary.csv")
            fitted.model.save(folder / f"{fitted.name}.json")
            tracking.log_artifacts(folder)
    return run.info.run_id


def _record_models(models: ModelEvaluation, out: Path) -> str:
    tags = {"rfmml.role": "models", "rfmml.chosen_purchase_model": models.chosen}
    with tracking.tracked_run(MODELS_RUN, nested=True, tags=tags) as run:
        for name, fitted in models.fits.items():
            tracking.log_params(fitted.model.get_params(), f"{name}.")
        gg = models.gamma_gamma
        if gg is not None:
            tracking.log_params(gg.get_params(), "gamma_gamma.")
            tracking.log_params({"gamma_gamma.excluded_zero_spend_customers": gg.n_excluded_})
        else:
            tracking.set_tags({"gamma_gamma.skipped": NO_SPEND_MESSAGE})
        tracking.log_params({"chosen_purchase_model": models.chosen, "selection": models.selection})
        if models.warnings:
            tracking.set_tags({"gamma_gamma.warnings": " | ".join(models.warnings)})
        if models.messages:
            tracking.set_tags({"rfmml.degenerate_fits": " | ".join(models.messages)[:5000]})
        if models.baseline_beats_models:
            tracking.set_tags({"rfmml.baseline_beats_models": models.baseline_beats_models})
        tracking.log_metrics(models.metrics)
        with tempfile.TemporaryDirectory() as tmp:
            folder = Path(tmp)
            tables = {
                "holdout_metrics.csv": models.holdout_metrics,
                "model_comparison.csv": models.comparison,
            }
            if gg is not None:
                tables["gamma_gamma_summary.csv"] = gg.summary_
            if len(models.tracking):
                tables["tracking.csv"] = models.tracking
            for name, fitted in models.fits.items():
                tables[f"{name}_summary.csv"] = fitted.model.summary_
                fitted.model.save(folder / f"{name}.json")
            _write_folder(folder, tables, _keep_figures(models.figures, out / "models"))
            if gg is not None:
                gg.save(folder / "gamma_gamma.json")
            tracking.log_artifacts(folder)
    return run.info.run_id


def _record_transitions(ev: Evaluation, out: Path) -> dict[str, Path]:
    if ev.transitions is None:
        return {}
    files = {
        "transitions_counts": out / "transitions_counts.csv",
        "transitions_rates": out / "transitions_rates.csv",
        "transitions_png": out / "transition_matrix.png",
    }
    _write_table(ev.transitions.matrix(), files["transitions_counts"])
    _write_table(ev.transitions.matrix(normalize=True), files["transitions_rates"])
    assert ev.transition_figure is not None  # evaluate_transitions gives both or neither
    _save_figure(ev.transition_figure, files["transitions_png"])
    for path in files.values():
        tracking.log_artifact(path, artifact_path="transitions")
    return files


def _previous_predictions(out: Path) -> pd.DataFrame | None:
    if not (out / "predictions.parquet").exists():
        return None
    try:
        return read_predictions(out / "predictions.parquet")
    except (DataError, ValueError, OSError) as exc:  # unreadable: start afresh
        logger.warning("previous predictions could not be read (%s); no change lists", exc)
        return None


def _record_scoring(ev: Evaluation, scored: Scoring, out: Path) -> tuple[str, str, dict[str, Path]]:
    """Predictions, lists, the pipeline folder and the scoring run; its id, model URI, files."""
    cfg = ev.config
    predictions, pipeline = scored.predictions, scored.pipeline
    has_rules = scored.rule_segmentation is not None
    previous = _previous_predictions(out)
    fingerprints = {
        "transactions": ev.data_fingerprint,
        "bgnbd": getattr(pipeline.bgnbd, "training_fingerprint_", None),
        "gamma_gamma": getattr(pipeline.gamma_gamma, "training_fingerprint_", None),
        "rule_segmentation": scored.rule_segmentation,
        "kmeans_segmentation": scored.kmeans_segmentation,
    }
    files = {f"predictions_{k}": v for k, v in write_predictions(
        predictions, out, fingerprints=fingerprints).items()}  # fmt: skip
    lists = export_segment_lists(predictions, out / "segments") if has_rules else {}
    files["segment_lists"] = out / "segments"
    if previous is not None and has_rules and "segment" in previous.columns:
        export_segment_changes(previous, predictions, out / "changes")
        files["segment_changes"] = out / "changes"
    pipeline.save(out / "model")
    files["model"] = out / "model"

    tags = {
        "rfmml.role": "scoring",
        "rfmml.rule_segmentation": str(scored.rule_segmentation),
        "rfmml.kmeans_segmentation": str(scored.kmeans_segmentation),
        "rfmml.purchase_model": scored.purchase_model_name,
    }
    if scored.messages:
        tags["rfmml.degenerate_message"] = " | ".join(scored.messages)
    if scored.fit_warnings:
        tags["rfmml.fit_warnings"] = " | ".join(scored.fit_warnings)[:5000]
    with tracking.tracked_run("scoring", nested=True, tags=tags) as run:
        tracking.log_params(
            {
                "horizon": cfg.models.horizon,
                "discount_rate": cfg.models.discount_rate,
                "purchase_model": scored.purchase_model_name,
                "churn_basis": cfg.models.churn_basis,
                "next_order_window": cfg.models.window(cfg.freq),
                "freq": cfg.freq,
                "observation_end": cfg.observation_end.isoformat(),
            }
        )
        metrics = {
            "n_customers": float(len(predictions)),
            "mean_probability_alive": float(predictions["probability_alive"].mean()),
            "total_expected_purchases": float(predictions["expected_purchases"].sum()),
            "n_segment_lists": float(len(lists)),
        }
        if "clv" in predictions.columns:
            metrics["total_clv"] = float(predictions["clv"].sum())
        tracking.log_metrics(metrics)
        model_uri = tracking.log_folder_model(
            pipeline,
            scored.scoring_input.head(5),
            loader="rfmml.campaign.pipeline_model:ScoringPipeline",
            other_input=_transactions_example(_log_head(ev), pipeline),
            inputs=PYFUNC_INPUTS,
        )
        value = "clv" if "clv" in predictions.columns else "expected_purchases"
        by_segment = (
            predictions.groupby("segment", observed=True)
            .agg(customers=("customer_id", "size"), **{value: (value, "sum")})
            .sort_values(value, ascending=False)
            if "segment" in predictions.columns
            else pd.DataFrame()
        )
        tracking.log_table(by_segment, "predictions_by_segment.csv")
        intervals = predictions.attrs.get("intervals")
        if intervals:
            totals = pd.DataFrame(intervals["totals"])
            tracking.log_params({"interval": intervals["interval"],
                                 "n_draws": intervals["n_draws"],
                                 "interval_method": intervals["method"]})  # fmt: skip
            overall = totals[totals["segment"] == "all"].iloc[0]
            bounds = {f"total_{k}": float(v) for k, v in overall.items()
                      if k.endswith(("_lower", "_upper")) or k == "revenue"}  # fmt: skip
            tracking.log_metrics(bounds)
            tracking.log_table(totals, "interval_totals.csv", index=False)
            files["segment_totals_png"] = _save_figure(
                plot_segment_totals(totals), out / "segment_totals.png"
            )
            tracking.log_artifact(files["segment_totals_png"])
        tracking.log_artifact(files["predictions_meta"])
    return run.info.run_id, model_uri, files


#: What the logged scoring model takes (its MLflow metadata ``rfmml_inputs``).
PYFUNC_INPUTS = (
    "Either customer features, one row per customer: the columns of "
    "rfmml.campaign.scoring_frame(rfm_table(tx), btyd_summary(tx)); or transactions, one row "
    "per purchase: customer_id, timestamp (datetime) and, when the pipeline has a spend model, "
    "amount (plus the group column of a grouped pipeline). Transactions are summarised as of "
    "the pipeline's observation_end (stored in its pipeline.json)."
)


def _log_head(ev: Evaluation) -> pd.DataFrame:
    """The first five rows of the cleaned log (a scanned log's kept from its fingerprint)."""
    if isinstance(ev.log, pd.DataFrame):
        return ev.log.head(5)
    if ev._head is None:  # an evaluation not made by evaluate(): read the first chunk
        ev._head = next(iter(ev.log.iter_pandas(chunk_rows=5))).head(5).reset_index(drop=True)
    return ev._head


def _transactions_example(tx: pd.DataFrame, pipeline: ScoringPipeline) -> pd.DataFrame:
    """A few transaction rows of the columns the pipeline scores (the second input kind)."""
    columns = ["customer_id", "timestamp", *([pipeline.group] if pipeline.group else [])]
    columns += ["amount"] if "amount" in tx.columns else []
    return tx[columns].head(5).reset_index(drop=True)


def _record_failure(ev: Evaluation, error: BaseException) -> NoReturn:
    """Open the child run of the step that failed and let it end FAILED with the error."""
    names = {s.name: s for s in ev.config.segmentations}
    step = ev.failed_step
    if step in names:
        tags = _segmentation_tags(names[step])
        with tracking.tracked_run(step, nested=True, tags=tags):
            tracking.log_params(names[step].params | {"kind": names[step].kind})
            raise error
    if step in (MODELS_RUN, "scoring"):
        role = "models" if step == MODELS_RUN else "scoring"
        with tracking.tracked_run(step, nested=True, tags={"rfmml.role": role}):
            raise error
    raise error


def record(
    evaluation: Evaluation,
    *,
    output_dir: str | Path | None = None,
    tracking_uri: str | None = None,
    error: BaseException | None = None,
) -> ExperimentResult:
    """Write an evaluation's files and MLflow runs.

    Parameters
    ----------
    evaluation : Evaluation
        From :func:`evaluate`.
    output_dir : path, optional
        Where predictions, lists and tables go; default the config's ``output_dir``.
    tracking_uri : str, optional
        MLflow store; when omitted ``MLFLOW_TRACKING_URI``, then the config's
        ``tracking_uri``, then ``sqlite:///mlflow.db`` in the working directory.
    error : exception, optional
        The exception a partial evaluation came with: what was computed is
        logged, the failed step's run and the parent run end FAILED with the
        error in the tag ``error``, and ``error`` is raised again.

    Returns
    -------
    ExperimentResult
    """
    ev, cfg = evaluation, evaluation.config
    out = Path(output_dir if output_dir is not None else cfg.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    uri = tracking.resolve_tracking_uri(tracking_uri, configured=cfg.tracking_uri)
    experiment_id = tracking.ensure_experiment(cfg.name, uri)
    runs: dict[str, str] = {}
    files: dict[str, Path] = {}
    tags = {
        "rfmml.role": "parent",
        "rfmml.primary_metric": cfg.primary_metric,
        "rfmml.data_fingerprint": ev.data_fingerprint,
    }
    with tracking.tracked_run(cfg.name, experiment_id=experiment_id, tags=tags) as parent:
        tracking.log_params(_run_params(ev))
        scanned = isinstance(ev.log, ScannedLog)
        tracking.log_dataset(
            _log_head(ev) if scanned else ev.log,
            name=cfg.data.source if cfg.data.source in BUILTIN_SOURCES else Path(ev.source).stem,
            source=ev.source,
            digest=ev.data_fingerprint[7:23],
            context="transactions",
            report=ev.report.to_dict(),
            n_rows=ev.log_counts()[0] if scanned else None,
        )
        for name, seg in ev.segmentations.items():
            runs[name] = _record_segmentation(seg, out)
        if error is not None and ev.comparison is None:  # a segmentation failed
            _record_failure(ev, error)
        comparison = _computed(ev.comparison, "comparison")
        files["comparison_csv"] = out / "comparison.csv"
        files["comparison_png"] = out / "comparison.png"
        _write_table(comparison, files["comparison_csv"])
        tracking.log_metrics(_parent_metrics(ev, comparison))
        _save_figure(plot_comparison(comparison), files["comparison_png"])
        tracking.log_artifact(files["comparison_csv"])
        tracking.log_artifact(files["comparison_png"])
        if ev.models is not None:
            for name, fitted in ev.models.fits.items():
                runs[f"purchase_model.{name}"] = _record_purchase_model(
                    fitted, name == ev.models.chosen
                )
            runs["models"] = _record_models(ev.models, out)
            tracking.set_tags({"rfmml.chosen_purchase_model": ev.models.chosen})
            files["model_metrics"] = out / "model_metrics.csv"
            _write_table(ev.models.holdout_metrics, files["model_metrics"])
            files["model_comparison"] = out / "model_comparison.csv"
            _write_table(ev.models.comparison, files["model_comparison"])
            if len(ev.models.tracking):
                files["tracking_csv"] = out / "tracking.csv"
                _write_table(ev.models.tracking, files["tracking_csv"])
                files["tracking_png"] = out / "tracking.png"
                _save_figure(plot_tracking(ev.models.tracking), files["tracking_png"])
        files |= _record_transitions(ev, out)
        if error is not None:
            _record_failure(ev, error)
        models, scored = _computed(ev.models, "models"), _computed(ev.scoring, "scoring")
        runs["scoring"], model_uri, scoring_files = _record_scoring(ev, scored, out)
        files |= scoring_files
        files["cleaning_report"] = ev.report.save(out)
        files["report"] = build_report(out, transactions=ev.log)  # a ScannedLog: in DuckDB
        tracking.log_artifact(files["report"])
    return ExperimentResult(
        config=cfg,
        tracking_uri=uri,
        experiment_id=experiment_id,
        parent_run_id=parent.info.run_id,
        runs=runs,
        comparison=comparison,
        model_metrics=models.holdout_metrics,
        predictions=scored.predictions,
        pipeline=scored.pipeline,
        scoring_input=scored.scoring_input,
        model_uri=model_uri,
        output_dir=out,
        files=files,
        report=ev.report,
        evaluation=ev,
        model_comparison=models.comparison,
        chosen_model=models.chosen,
    )


def run_experiment(
    config: str | Path | dict | ExperimentConfig,
    *,
    output_dir: str | Path | None = None,
    tracking_uri: str | None = None,
    progress: Progress | None = None,
) -> ExperimentResult:
    """Run an experiment end to end and log it to MLflow: :func:`evaluate`, then :func:`record`.

    Parameters
    ----------
    config : path, mapping or ExperimentConfig
        The experiment (see :mod:`rfmml.config`).
    output_dir, tracking_uri
        Where files and runs go, as in :func:`record`.
    progress : callable, optional
        Called with a short message at the start of each step.

    Returns
    -------
    ExperimentResult

    The DuckDB log of a file source is closed when this returns or raises
    (``result.evaluation.transactions`` is then no longer readable).

    Raises
    ------
    ConfigError, DataError
        Bad config or data. A failure after the calibration features are built
        is still recorded: the parent run (and the step's child run) end FAILED
        in MLflow with the error in the tag ``error``; what was computed before
        is logged.
    """
    try:
        evaluation = evaluate(config, progress=progress)
    except Exception as exc:
        partial = getattr(exc, "evaluation", None)
        if not isinstance(partial, Evaluation):
            raise
        try:
            record(partial, output_dir=output_dir, tracking_uri=tracking_uri, error=exc)
        finally:
            partial.close()
        raise  # record re-raises; this keeps type checkers informed
    try:
        return record(evaluation, output_dir=output_dir, tracking_uri=tracking_uri)
    finally:
        evaluation.close()
