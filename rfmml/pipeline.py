"""Run an experiment config end to end.

:func:`run_experiment` loads and cleans the transactions, builds features on the
calibration period, fits every segmentation of the config and the BG/NBD and
Gamma-Gamma models, judges them all on the same holdout period, logs everything
to MLflow (a parent run per invocation, a child run per segmentation, one for
the models, one for scoring), and writes batch predictions.

Honest evaluation, then production scoring:

1. Metrics use features up to ``calibration_end`` and outcomes from
   ``calibration_end`` to ``observation_end``, identical for every segmentation.
2. The predictions use everything up to ``observation_end``: the best rule
   segmentation and the best k-means segmentation (by the primary metric) and
   both models are refitted on the full period and score every customer.
"""

from __future__ import annotations

import hashlib
import json
import logging
import tempfile
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from sklearn.base import clone

from rfmml.campaign.exports import read_predictions, write_predictions
from rfmml.campaign.lists import export_segment_changes, export_segment_lists
from rfmml.campaign.pipeline_model import ScoringPipeline, scoring_frame
from rfmml.config import ExperimentConfig, SegmentationConfig, load_config
from rfmml.data import (
    CleaningReport,
    load_cdnow,
    load_online_retail,
    online_retail_path,
    read_transactions,
)
from rfmml.data.datasets import _lifetimes_datasets
from rfmml.data.transactions import end_cutoff
from rfmml.errors import ConfigError, DataError
from rfmml.evaluation import (
    compare_table,
    evaluate_holdout,
    evaluate_segmentation,
    standardized_features,
)
from rfmml.features import btyd_summary, calibration_holdout, calibration_summary, rfm_table
from rfmml.models import BetaGeoNBD, GammaGamma
from rfmml.plots import (
    plot_calibration_vs_holdout_purchases,
    plot_cluster_profiles,
    plot_comparison,
    plot_frequency_recency_matrix,
    plot_period_transactions,
    plot_probability_alive_matrix,
    plot_rf_grid,
    plot_segment_sizes,
    plot_silhouette_curve,
    plot_transition_matrix,
)
from rfmml.segments import (
    KMeansSegmenter,
    RFMScorer,
    RuleSegmenter,
    builtin_schemes,
    segment_profile,
    segment_transitions,
)
from rfmml.segments.persistence import save_segmenter

__all__ = ["ExperimentResult", "fingerprint", "load_experiment_data", "run_experiment"]

logger = logging.getLogger(__name__)
Progress = Callable[[str], None]


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


def fingerprint(frame: pd.DataFrame) -> str:
    """A SHA-256 fingerprint of a frame's values (row order matters)."""
    hashed = pd.util.hash_pandas_object(frame, index=False).to_numpy()
    return "sha256:" + hashlib.sha256(hashed.tobytes()).hexdigest()


def load_experiment_data(cfg: ExperimentConfig) -> tuple[pd.DataFrame, CleaningReport, str]:
    """Load the transactions of a config; return them, the cleaning report and the source."""
    data = cfg.data
    if data.source in ("cdnow", "online_retail"):
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
        )
        report = loaded.then(again)
        if "order_id" in tx.columns and data.order is None:
            tx = tx.drop(columns="order_id")
    else:
        tx, report = read_transactions(
            data.source,
            **data.reader_options(),
            observation_end=cfg.observation_end,
            allow_end_beyond_data=cfg.allow_end_beyond_data,
        )
        source = data.source
    if data.sample_customers is not None:
        ids = tx["customer_id"].unique()
        if data.sample_customers < len(ids):
            rng = np.random.default_rng(cfg.random_state)
            keep = rng.choice(ids, size=data.sample_customers, replace=False)
            mask = tx["customer_id"].isin(keep)
            report.remove(
                f"customer not in the seeded sample of {data.sample_customers}", int((~mask).sum())
            )
            report.rows_out -= int((~mask).sum())
            tx = tx.loc[mask].reset_index(drop=True)
    late = tx["timestamp"] >= end_cutoff(cfg.observation_end)
    if late.any():
        report.remove(f"after the observation end {cfg.observation_end.date()}", int(late.sum()))
        report.rows_out -= int(late.sum())
        tx = tx.loc[~late].reset_index(drop=True)
    report.check()
    return tx, report, source


def _segmenter(seg: SegmentationConfig, cfg: ExperimentConfig) -> RuleSegmenter | KMeansSegmenter:
    if seg.kind == "rules":
        scheme: Any = seg.scheme
        if scheme not in builtin_schemes() and cfg.source_path is not None:
            candidate = Path(cfg.source_path).parent / scheme
            scheme = candidate if candidate.exists() else scheme
        scorer = RFMScorer(
            n_scores=seg.n_scores,
            method="thresholds" if seg.thresholds else "quantile",
            thresholds=seg.thresholds,
            recency_unit=seg.recency_unit,
            frequency_col=seg.frequency_col,
            monetary_col=seg.monetary_col,
        )
        return RuleSegmenter(scheme=scheme, scorer=scorer)
    return KMeansSegmenter(
        n_clusters=seg.n_clusters,
        k_range=tuple(seg.k_range),
        random_state=cfg.random_state,
        sample_size=cfg.sample_size,
    )


def _stability_segmenter(segmenter: Any, cfg: ExperimentConfig) -> Any:
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


def _labels(segmenter: Any, X: pd.DataFrame) -> pd.Series:
    if isinstance(segmenter, KMeansSegmenter):
        return segmenter.predict_names(X)
    return segmenter.predict(X)


def _save_figure(fig: Any, path: Path) -> Path:
    fig.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(fig)
    return path


class _Calibration:
    """Calibration-period features and holdout outcomes shared by every evaluation."""

    def __init__(self, tx: pd.DataFrame, cfg: ExperimentConfig) -> None:
        group = cfg.data.group
        self.cal_holdout = calibration_holdout(
            tx, cfg.calibration_end, cfg.observation_end, freq=cfg.freq, group=group
        )
        features = rfm_table(tx, observation_end=cfg.calibration_end, group=group)
        self.features = features.loc[self.cal_holdout.index]
        self.summary = calibration_summary(self.cal_holdout)
        keys = ["customer_id"] + ([group] if group else [])
        holdout_rows = tx.loc[tx["timestamp"] >= end_cutoff(cfg.calibration_end)]
        spend = holdout_rows.groupby(keys)["amount"].sum()
        self.holdout_spend = spend.reindex(self.cal_holdout.index, fill_value=0.0)
        self.X_std = standardized_features(self.features)


def run_experiment(
    config: str | Path | dict | ExperimentConfig,
    *,
    output_dir: str | Path | None = None,
    tracking_uri: str | None = None,
    progress: Progress | None = None,
) -> ExperimentResult:
    """Run an experiment end to end and log it to MLflow.

    Parameters
    ----------
    config : path, mapping or ExperimentConfig
        The experiment (see :mod:`rfmml.config`).
    output_dir : path, optional
        Where predictions, lists and tables go; default the config's ``[output] dir``.
    tracking_uri : str, optional
        MLflow store; when omitted ``MLFLOW_TRACKING_URI``, then the config's
        ``[tracking] tracking_uri``, then ``sqlite:///mlflow.db`` in the working
        directory.
    progress : callable, optional
        Called with a short message at the start of each step.

    Returns
    -------
    ExperimentResult

    Raises
    ------
    ConfigError, DataError
        Bad config or data. A failure after the parent run started marks the
        run (and the running child) FAILED in MLflow with the error in the tag
        ``error``; what was already logged stays.
    """
    from rfmml import tracking  # the only mlflow-importing package, loaded on demand

    cfg = config if isinstance(config, ExperimentConfig) else load_config(config)
    step = progress or (lambda message: logger.info(message))
    out = Path(output_dir if output_dir is not None else cfg.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    uri = tracking.resolve_tracking_uri(tracking_uri, configured=cfg.tracking_uri)

    step(f"loading {cfg.data.source}")
    tx, report, source = load_experiment_data(cfg)
    data_fp = fingerprint(tx)
    step("building calibration features and holdout outcomes")
    cal = _Calibration(tx, cfg)

    experiment_id = tracking.ensure_experiment(cfg.name, uri)
    runs: dict[str, str] = {}
    tags = {
        "rfmml.role": "parent",
        "rfmml.primary_metric": cfg.primary_metric,
        "rfmml.data_fingerprint": data_fp,
    }
    with tracking.tracked_run(cfg.name, experiment_id=experiment_id, tags=tags) as parent:
        tracking.log_params(_run_params(cfg, report, tx))
        tracking.log_dataset(
            tx,
            name=cfg.data.source if cfg.data.source in ("cdnow", "online_retail")
            else Path(source).stem,
            source=source,
            digest=data_fp[7:23],
            context="transactions",
            report=report.to_dict(),
        )  # fmt: skip
        results, fitted = _evaluate_segmentations(cfg, cal, runs, step)
        comparison = compare_table(results, primary=cfg.primary_metric)
        comparison.attrs["primary"] = cfg.primary_metric
        files = _log_comparison(comparison, out)
        step("fitting BG/NBD and Gamma-Gamma")
        model_metrics = _fit_models(cfg, cal, runs)
        files["model_metrics"] = out / "model_metrics.csv"
        model_metrics.to_csv(files["model_metrics"])
        step("segment transitions between calibration and observation end")
        _log_transitions(cfg, tx, comparison, out, files)
        step("refitting on the full period and scoring customers")
        scored = _score(cfg, tx, comparison, fitted, data_fp, out, files, runs)
        pipeline, scoring_input, predictions, model_uri = scored
        report_path = out / "cleaning_report.json"
        report_path.write_text(json.dumps(report.to_dict(), indent=2))
        files["cleaning_report"] = report_path
    return ExperimentResult(
        config=cfg,
        tracking_uri=uri,
        experiment_id=experiment_id,
        parent_run_id=parent.info.run_id,
        runs=runs,
        comparison=comparison,
        model_metrics=model_metrics,
        predictions=predictions,
        pipeline=pipeline,
        scoring_input=scoring_input,
        model_uri=model_uri,
        output_dir=out,
        files=files,
        report=report,
    )


def _run_params(cfg: ExperimentConfig, report: CleaningReport, tx: pd.DataFrame) -> dict:
    params = cfg.to_dict()
    params["data_rows"] = len(tx)
    params["data_customers"] = int(tx["customer_id"].nunique())
    params["cleaning_rows_in"] = report.rows_in
    params["cleaning_rows_removed"] = report.rows_removed
    return params


def _evaluate_segmentations(
    cfg: ExperimentConfig, cal: _Calibration, runs: dict[str, str], step: Progress
) -> tuple[dict[str, dict[str, float]], dict[str, Any]]:
    from rfmml import tracking

    results: dict[str, dict[str, float]] = {}
    fitted: dict[str, Any] = {}
    for seg_cfg in cfg.segmentations:
        step(f"segmentation {seg_cfg.name}")
        segmenter = _segmenter(seg_cfg, cfg)
        tags = {
            "rfmml.role": "segmentation",
            "rfmml.segmentation": seg_cfg.name,
            "rfmml.kind": seg_cfg.kind,
        }
        with tracking.tracked_run(seg_cfg.name, nested=True, tags=tags) as run:
            runs[seg_cfg.name] = run.info.run_id
            tracking.log_params(segmenter.get_params(deep=False) | {"kind": seg_cfg.kind})
            segmenter.fit(cal.features)
            labels = _labels(segmenter, cal.features)
            metrics = evaluate_segmentation(
                labels,
                cal.features,
                cal.cal_holdout,
                X_std=cal.X_std,
                holdout_spend=cal.holdout_spend,
                segmenter=_stability_segmenter(segmenter, cfg),
                n_bootstrap=max(cfg.n_bootstrap, 1),
                random_state=cfg.random_state,
                sample_size=cfg.sample_size,
            )
            tracking.log_metrics(metrics)
            results[seg_cfg.name] = metrics
            fitted[seg_cfg.name] = segmenter
            with tempfile.TemporaryDirectory() as tmp:
                folder = Path(tmp)
                profile = segment_profile(cal.features, labels)
                profile.to_csv(folder / "segment_profile.csv")
                _save_figure(plot_segment_sizes(profile), folder / "segment_sizes.png")
                save_segmenter(segmenter, folder / "segmenter.json")
                if isinstance(segmenter, RuleSegmenter):
                    scores = segmenter.transform(cal.features)
                    fig = plot_rf_grid(
                        scores, cal.features["total_spend"], segmenter.scheme_
                    )
                    _save_figure(fig, folder / "rf_grid.png")
                else:
                    tracking.log_params({"n_clusters_chosen": segmenter.n_clusters_})
                    segmenter.cluster_centers_.assign(name=segmenter.cluster_names_).to_csv(
                        folder / "cluster_centers.csv"
                    )
                    segmenter.rule_agreement_.to_csv(folder / "rule_agreement.csv")
                    tracking.log_metrics(
                        {"rule_adjusted_rand_score": segmenter.adjusted_rand_score_}
                    )
                    _save_figure(
                        plot_cluster_profiles(segmenter, cal.features),
                        folder / "cluster_profiles.png",
                    )
                    _save_figure(
                        plot_silhouette_curve(segmenter.silhouette_curve_),
                        folder / "silhouette_curve.png",
                    )
                tracking.log_artifacts(folder)
    return results, fitted


def _log_comparison(comparison: pd.DataFrame, out: Path) -> dict[str, Path]:
    from rfmml import tracking

    files = {"comparison_csv": out / "comparison.csv", "comparison_png": out / "comparison.png"}
    comparison.to_csv(files["comparison_csv"])
    _save_figure(plot_comparison(comparison), files["comparison_png"])
    tracking.log_artifact(files["comparison_csv"])
    tracking.log_artifact(files["comparison_png"])
    return files


def _fit_models(cfg: ExperimentConfig, cal: _Calibration, runs: dict[str, str]) -> pd.DataFrame:
    from rfmml import tracking

    tags = {"rfmml.role": "models"}
    with tracking.tracked_run("bgnbd_gamma_gamma", nested=True, tags=tags) as run:
        runs["models"] = run.info.run_id
        bgnbd = BetaGeoNBD(penalizer=cfg.models.bgnbd_penalizer)
        gg = GammaGamma(penalizer=cfg.models.gamma_gamma_penalizer, zero_spend="exclude")
        tracking.log_params(bgnbd.get_params(), "bgnbd.")
        tracking.log_params(gg.get_params(), "gamma_gamma.")
        bgnbd.fit(cal.summary)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            gg.fit(cal.summary)
        tracking.log_params({"gamma_gamma.excluded_zero_spend_customers": gg.n_excluded_})
        if caught:
            tracking.set_tags({"gamma_gamma.warnings": " | ".join(str(w.message) for w in caught)})
        metrics = {f"bgnbd.{k}": v for k, v in dict(bgnbd.params_).items()}
        metrics |= {f"gamma_gamma.{k}": v for k, v in dict(gg.params_).items()}
        metrics["bgnbd.log_likelihood"] = bgnbd.log_likelihood_
        metrics["gamma_gamma.log_likelihood"] = gg.log_likelihood_
        for name, model in (("bgnbd", bgnbd), ("gamma_gamma", gg)):
            for param, se in model.summary_["std_error"].items():
                metrics[f"{name}.{param}_se"] = se
        table = evaluate_holdout(bgnbd, gg, cal.cal_holdout)
        for metric, row in table.iterrows():
            metrics[f"model.{metric}"] = row["model"]
            metrics[f"baseline.{metric}"] = row["baseline"]
        tracking.log_metrics(metrics)
        with tempfile.TemporaryDirectory() as tmp:
            folder = Path(tmp)
            table.to_csv(folder / "holdout_metrics.csv")
            bgnbd.summary_.to_csv(folder / "bgnbd_summary.csv")
            gg.summary_.to_csv(folder / "gamma_gamma_summary.csv")
            bgnbd.save(folder / "bgnbd.json")
            gg.save(folder / "gamma_gamma.json")
            figures = {
                "frequency_recency_matrix.png": plot_frequency_recency_matrix(bgnbd, cal.summary),
                "probability_alive_matrix.png": plot_probability_alive_matrix(bgnbd, cal.summary),
                "calibration_vs_holdout.png": plot_calibration_vs_holdout_purchases(
                    bgnbd, cal.cal_holdout
                ),
                "period_transactions.png": plot_period_transactions(bgnbd, cal.summary),
            }
            for file, fig in figures.items():
                _save_figure(fig, folder / file)
            tracking.log_artifacts(folder)
    return table


def _best(comparison: pd.DataFrame, fitted_kinds: dict[str, str], kind: str) -> str | None:
    names = [n for n in comparison.index if fitted_kinds.get(n) == kind]
    return names[0] if names else None  # comparison is sorted best first


def _log_transitions(
    cfg: ExperimentConfig,
    tx: pd.DataFrame,
    comparison: pd.DataFrame,
    out: Path,
    files: dict[str, Path],
) -> None:
    from rfmml import tracking

    kinds = {s.name: s.kind for s in cfg.segmentations}
    best = _best(comparison, kinds, "rules")
    if best is None:
        return
    seg_cfg = next(s for s in cfg.segmentations if s.name == best)
    result = segment_transitions(
        tx,
        [cfg.calibration_end, cfg.observation_end],
        _segmenter(seg_cfg, cfg),
        group=cfg.data.group,
        # Per group, groups first seen after the calibration end have no learned
        # score edges; refit at each snapshot then (segments relative to that date).
        refit=cfg.data.group is not None,
    )
    counts = result.matrix()
    rates = result.matrix(normalize=True)
    files["transitions_counts"] = out / "transitions_counts.csv"
    files["transitions_rates"] = out / "transitions_rates.csv"
    files["transitions_png"] = out / "transition_matrix.png"
    counts.to_csv(files["transitions_counts"])
    rates.to_csv(files["transitions_rates"])
    title = f"{best}: {cfg.calibration_end.date()} to {cfg.observation_end.date()}"
    _save_figure(plot_transition_matrix(rates, title=title), files["transitions_png"])
    for key in ("transitions_counts", "transitions_rates", "transitions_png"):
        tracking.log_artifact(files[key], artifact_path="transitions")


def _score(
    cfg: ExperimentConfig,
    tx: pd.DataFrame,
    comparison: pd.DataFrame,
    fitted: dict[str, Any],
    data_fp: str,
    out: Path,
    files: dict[str, Path],
    runs: dict[str, str],
) -> tuple[ScoringPipeline, pd.DataFrame, pd.DataFrame, str]:
    from rfmml import tracking

    group = cfg.data.group
    features = rfm_table(tx, observation_end=cfg.observation_end, group=group)
    summary = btyd_summary(tx, observation_end=cfg.observation_end, freq=cfg.freq, group=group)
    scoring_input = scoring_frame(features, summary)
    kinds = {s.name: s.kind for s in cfg.segmentations}
    best_rules, best_kmeans = _best(comparison, kinds, "rules"), _best(comparison, kinds, "kmeans")
    by_name = {s.name: s for s in cfg.segmentations}
    rules = _segmenter(by_name[best_rules], cfg).fit(features) if best_rules else None
    kmeans = _segmenter(by_name[best_kmeans], cfg).fit(features) if best_kmeans else None
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        bgnbd = BetaGeoNBD(penalizer=cfg.models.bgnbd_penalizer).fit(summary)
        gg = GammaGamma(penalizer=cfg.models.gamma_gamma_penalizer, zero_spend="exclude")
        gg.fit(summary)
    fit_warnings = " | ".join(sorted({str(w.message) for w in caught}))
    for message in sorted({str(w.message) for w in caught}):
        logger.warning("full-period model fit: %s", message)
    pipeline = ScoringPipeline(
        rule_segmenter=rules,
        kmeans_segmenter=kmeans,
        bgnbd=bgnbd,
        gamma_gamma=gg,
        horizon=int(cfg.models.horizon),
        discount_rate=cfg.models.discount_rate,
        freq=cfg.freq,
        playbook=cfg.playbook,
        group=group,
    )
    predictions = pipeline.predict(scoring_input)
    previous = None
    if (out / "predictions.parquet").exists():
        try:
            previous = read_predictions(out / "predictions.parquet")
        except (DataError, ValueError, OSError) as exc:  # unreadable: start afresh
            logger.warning("previous predictions could not be read (%s); no change lists", exc)
    fingerprints = {
        "transactions": data_fp,
        "bgnbd": getattr(bgnbd, "training_fingerprint_", None),
        "gamma_gamma": getattr(gg, "training_fingerprint_", None),
        "rule_segmentation": best_rules,
        "kmeans_segmentation": best_kmeans,
    }
    files.update({f"predictions_{k}": v for k, v in write_predictions(
        predictions, out, fingerprints=fingerprints).items()})  # fmt: skip
    lists = export_segment_lists(predictions, out / "segments") if rules is not None else {}
    files["segment_lists"] = out / "segments"
    if previous is not None and rules is not None and "segment" in previous.columns:
        export_segment_changes(previous, predictions, out / "changes")
        files["segment_changes"] = out / "changes"
    pipeline.save(out / "model")
    files["model"] = out / "model"

    tags = {
        "rfmml.role": "scoring",
        "rfmml.rule_segmentation": str(best_rules),
        "rfmml.kmeans_segmentation": str(best_kmeans),
    }
    if fit_warnings:
        tags["rfmml.fit_warnings"] = fit_warnings[:5000]
    with tracking.tracked_run("scoring", nested=True, tags=tags) as run:
        runs["scoring"] = run.info.run_id
        tracking.log_params(
            {
                "horizon": cfg.models.horizon,
                "discount_rate": cfg.models.discount_rate,
                "freq": cfg.freq,
                "observation_end": cfg.observation_end.isoformat(),
            }
        )
        summary_metrics = {
            "n_customers": float(len(predictions)),
            "mean_probability_alive": float(predictions["probability_alive"].mean()),
            "total_expected_purchases": float(predictions["expected_purchases"].sum()),
            "total_clv": float(predictions["clv"].sum()),
            "n_segment_lists": float(len(lists)),
        }
        tracking.log_metrics(summary_metrics)
        model_uri = tracking.log_scoring_model(pipeline, scoring_input.head(5))
        by_segment = (
            predictions.groupby("segment", observed=True)
            .agg(customers=("customer_id", "size"), clv=("clv", "sum"))
            .sort_values("clv", ascending=False)
            if "segment" in predictions.columns
            else pd.DataFrame()
        )
        tracking.log_table(by_segment, "predictions_by_segment.csv")
        tracking.log_artifact(files["predictions_meta"])
    return pipeline, scoring_input, predictions, model_uri
