"""A small real experiment, read back from MLflow: runs, metrics, artifacts, pyfunc model."""

from __future__ import annotations

import json
import math
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest
from mlflow.tracking import MlflowClient

from rfmml.campaign import ScoringPipeline, read_predictions
from rfmml.config import load_config
from rfmml.errors import ConfigError
from rfmml.pipeline import run_experiment
from rfmml.tracking import compare_segmentations, resolve_tracking_uri
from rfmml.tracking.pyfunc import to_plain

SEGMENTATION_METRICS = [
    "silhouette",
    "davies_bouldin",
    "calinski_harabasz",
    "spend_variance_explained",
    "buy_again_auc",
    "top_revenue_capture",
    "best_segment_lift",
    "stability_ari_mean",
    "n_segments",
    "smallest_segment_share",
    "size_entropy",
]


def _artifacts(client, run_id, path=""):
    names = []
    for item in client.list_artifacts(run_id, path):
        names += _artifacts(client, run_id, item.path) if item.is_dir else [item.path]
    return names


def test_parent_and_child_runs_exist(small_run, store):
    client = MlflowClient(tracking_uri=store)
    parent = client.get_run(small_run.parent_run_id)
    assert parent.info.status == "FINISHED"
    assert parent.data.tags["rfmml.primary_metric"] == "buy_again_auc"
    assert parent.data.params["freq"] == "W"
    assert parent.data.params["data_customers"] == "2000"
    assert set(small_run.runs) == {
        "rf_grid", "rfm11", "kmeans_4", "models", "scoring",
        "purchase_model.bgnbd", "purchase_model.mbgnbd", "purchase_model.pareto_nbd",
    }  # fmt: skip
    for run_id in small_run.runs.values():
        child = client.get_run(run_id)
        assert child.data.tags["mlflow.parentRunId"] == small_run.parent_run_id
        assert child.info.status == "FINISHED"
    inputs = parent.inputs.dataset_inputs
    assert inputs and inputs[0].dataset.name == "cdnow"
    assert "data/cleaning_report.json" in _artifacts(client, small_run.parent_run_id)


@pytest.mark.parametrize("name", ["rf_grid", "rfm11", "kmeans_4"])
def test_every_segmentation_metric_has_a_value(small_run, store, name):
    run = MlflowClient(tracking_uri=store).get_run(small_run.runs[name])
    for metric in SEGMENTATION_METRICS:
        assert metric in run.data.metrics, metric
        assert math.isfinite(run.data.metrics[metric])
    assert 0.5 < run.data.metrics["buy_again_auc"] <= 1.0
    artifacts = _artifacts(MlflowClient(tracking_uri=store), small_run.runs[name])
    assert {"segment_profile.csv", "segment_sizes.png", "segmenter.json"} <= set(artifacts)
    if name.startswith("kmeans"):
        assert {"cluster_profiles.png", "silhouette_curve.png", "rule_agreement.csv"} <= set(
            artifacts
        )
    else:
        assert "rf_grid.png" in artifacts


def test_model_run_logs_parameters_errors_and_holdout_metrics(small_run, store):
    client = MlflowClient(tracking_uri=store)
    run = client.get_run(small_run.runs["models"])
    metrics = run.data.metrics
    for key in ["bgnbd.r", "bgnbd.alpha", "bgnbd.a", "bgnbd.b", "bgnbd.log_likelihood",
                "bgnbd.r_se", "gamma_gamma.p", "gamma_gamma.q", "gamma_gamma.v",
                "model.purchases_mae", "model.purchases_rmse", "model.buy_again_brier",
                "model.buy_again_auc", "baseline.purchases_mae", "model.spend_mae"]:  # fmt: skip
        assert math.isfinite(metrics[key]), key
    # the model beats carrying the calibration purchase rate forward
    assert metrics["model.purchases_mae"] < metrics["baseline.purchases_mae"]
    artifacts = set(_artifacts(client, small_run.runs["models"]))
    assert {"bgnbd.json", "gamma_gamma.json", "holdout_metrics.csv",
            "frequency_recency_matrix.png", "probability_alive_matrix.png",
            "calibration_vs_holdout.png", "period_transactions.png"} <= artifacts  # fmt: skip


def test_comparison_artifacts_and_read_back(small_run, store):
    client = MlflowClient(tracking_uri=store)
    parent_artifacts = set(_artifacts(client, small_run.parent_run_id))
    assert {"comparison.csv", "comparison.png"} <= parent_artifacts
    assert any(a.startswith("transitions/") for a in parent_artifacts)
    table = compare_segmentations("cdnow_small", tracking_uri=store)
    assert list(table.index) == list(small_run.comparison.index)
    assert table["buy_again_auc"].is_monotonic_decreasing
    np.testing.assert_allclose(
        table["buy_again_auc"], small_run.comparison["buy_again_auc"], rtol=1e-12
    )
    assert table.attrs["primary"] == "buy_again_auc"
    by_silhouette = compare_segmentations("cdnow_small", tracking_uri=store, primary="silhouette")
    assert by_silhouette["silhouette"].is_monotonic_decreasing
    pinned = compare_segmentations(
        "cdnow_small", tracking_uri=store, parent_run_id=small_run.parent_run_id
    )
    assert list(pinned.index) == list(small_run.comparison.index)
    assert pinned.loc["kmeans_4", "kind"] == "kmeans"
    assert pinned.loc["rf_grid", "run_id"] == small_run.runs["rf_grid"]


def test_compare_errors(small_run, store):
    with pytest.raises(ConfigError, match="no experiment named 'nope'"):
        compare_segmentations("nope", tracking_uri=store)
    with pytest.raises(ConfigError, match="primary metric 'bogus' is not in the results"):
        compare_segmentations("cdnow_small", tracking_uri=store, primary="bogus")


def test_pyfunc_model_predicts_like_the_in_memory_pipeline(small_run, store):
    mlflow.set_tracking_uri(store)
    model = mlflow.pyfunc.load_model(small_run.model_uri)
    frame = small_run.scoring_input.reset_index()
    got = model.predict(frame)
    want = to_plain(small_run.pipeline.predict(frame))
    pd.testing.assert_frame_equal(got.reset_index(drop=True), want)
    for col in ["segment", "cluster", "probability_alive", "expected_purchases", "clv"]:
        assert col in got.columns
    signature = model.metadata.signature
    assert "frequency" in signature.inputs.input_names()


def test_saved_pipeline_folder_round_trips(small_run):
    loaded = ScoringPipeline.load(small_run.files["model"])
    pd.testing.assert_frame_equal(
        loaded.predict(small_run.scoring_input), small_run.pipeline.predict(small_run.scoring_input)
    )


def test_output_files_read_back(small_run):
    out = small_run.output_dir
    predictions = read_predictions(out / "predictions.parquet")
    assert len(predictions) == 2000
    assert (predictions["probability_alive"].between(0, 1)).all()
    assert (predictions["clv"] >= 0).all()
    meta = json.loads((out / "predictions.meta.json").read_text())
    assert meta["fingerprints"]["transactions"].startswith("sha256:")
    lists = sorted((out / "segments").glob("*.csv"))
    assert sum(len(pd.read_csv(p)) for p in lists) == 2000
    assert pd.read_csv(out / "comparison.csv")["segmentation"].tolist() == list(
        small_run.comparison.index
    )
    report = json.loads((out / "cleaning_report.json").read_text())
    assert report["rows_in"] == 69_659
    sampled_out = report["removed"]["customer not in the seeded sample of 2000"]
    assert report["rows_out"] == 69_659 - sampled_out


def test_rerun_writes_entered_and_left_lists(small_config, store, small_run, tmp_path):
    # A second run into the same folder, one snapshot later in time, compares with the first.
    from dataclasses import replace

    out = small_run.output_dir
    # Its own experiment name: the read-back tests look for cdnow_small's latest run.
    later = replace(small_config, name="cdnow_rerun", n_bootstrap=0,
                    segmentations=small_config.segmentations[:1])  # fmt: skip
    earlier = replace(later, observation_end=pd.Timestamp("1998-03-31"))
    target = tmp_path / "out"
    run_experiment(earlier, output_dir=target, tracking_uri=store)
    second = run_experiment(later, output_dir=target, tracking_uri=store)
    changes = second.files["segment_changes"]
    entered = list(changes.glob("entered_*.csv"))
    left = list(changes.glob("left_*.csv"))
    assert entered and left
    assert sum(len(pd.read_csv(p)) for p in entered) > 0
    assert out.exists()


def test_failed_run_is_marked_failed_and_keeps_what_was_logged(small_config, store, tmp_path):
    from dataclasses import replace

    from rfmml.config import SegmentationConfig

    broken = replace(
        small_config,
        name="cdnow_broken",
        n_bootstrap=0,
        segmentations=[
            small_config.segmentations[0],
            SegmentationConfig(name="bad", kind="rules", params={"scheme": "no_such_scheme"}),
        ],
    )
    with pytest.raises(ConfigError, match="unknown scheme 'no_such_scheme'"):
        run_experiment(broken, output_dir=tmp_path, tracking_uri=store)
    client = MlflowClient(tracking_uri=store)
    runs = mlflow.search_runs(experiment_names=["cdnow_broken"], output_format="list")
    by_name = {r.info.run_name: r for r in runs}
    assert by_name["cdnow_broken"].info.status == "FAILED"
    assert "unknown scheme" in by_name["cdnow_broken"].data.tags["error"]
    assert by_name["bad"].info.status == "FAILED"
    assert "unknown scheme" in by_name["bad"].data.tags["error"]
    good = by_name["rf_grid"]
    assert good.info.status == "FINISHED"
    assert math.isfinite(good.data.metrics["buy_again_auc"])
    assert client.list_artifacts(good.info.run_id)


def test_logged_model_requires_rfmml_itself(small_run, store):
    mlflow.set_tracking_uri(store)
    folder = mlflow.artifacts.download_artifacts(small_run.model_uri)
    requirements = (Path(folder) / "requirements.txt").read_text().split()
    assert any(r.split("==")[0] == "rfmml" for r in requirements)


def test_evaluate_is_pure_and_record_writes_it(small_config, store, tmp_path):
    from dataclasses import replace

    from rfmml.pipeline import evaluate, record

    cfg = replace(small_config, name="cdnow_pure", n_bootstrap=0,
                  segmentations=small_config.segmentations[:1])  # fmt: skip
    out = tmp_path / "out"
    evaluation = evaluate(cfg)
    assert not out.exists()
    assert mlflow.get_experiment_by_name("cdnow_pure") is None
    assert evaluation.failed_step is None
    assert list(evaluation.comparison.index) == ["rf_grid"]
    assert evaluation.scoring.rule_segmentation == "rf_grid"
    spend = evaluation.calibration.cal_holdout["spend_holdout"]
    assert spend.sum() > 0  # the exact holdout spend comes with the calibration frame
    result = record(evaluation, output_dir=out, tracking_uri=store)
    assert (out / "predictions.parquet").exists() and set(result.runs) == {
        "rf_grid", "models", "scoring",
        "purchase_model.bgnbd", "purchase_model.mbgnbd", "purchase_model.pareto_nbd",
    }  # fmt: skip
    pd.testing.assert_frame_equal(result.predictions, evaluation.scoring.predictions)


def test_tracking_uri_resolution(monkeypatch, tmp_path):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    assert resolve_tracking_uri(None, tmp_path) == f"sqlite:///{tmp_path.resolve()}/mlflow.db"
    assert resolve_tracking_uri("sqlite:///x.db") == "sqlite:///x.db"
    assert resolve_tracking_uri(None, configured="sqlite:///cfg.db") == "sqlite:///cfg.db"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "sqlite:///env.db")
    assert resolve_tracking_uri(None, configured="sqlite:///cfg.db") == "sqlite:///env.db"
    assert resolve_tracking_uri("sqlite:///x.db") == "sqlite:///x.db"  # explicit wins


def test_shipped_configs_load():
    for name in ["cdnow", "online_retail"]:
        cfg = load_config(f"experiments/{name}.toml")
        assert cfg.name == name and cfg.segmentations
