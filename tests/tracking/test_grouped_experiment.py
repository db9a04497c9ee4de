"""The whole pipeline per group: Online Retail by country, on a small real sample."""

from __future__ import annotations

import math

import pandas as pd
from mlflow.tracking import MlflowClient

from rfmml.campaign import read_predictions
from rfmml.config import load_config
from rfmml.pipeline import run_experiment


def test_online_retail_by_country(tmp_path, mlflow_store):
    cfg = load_config("experiments/online_retail.toml")
    cfg.data.group = "country"
    cfg.data.sample_customers = 1200
    cfg.n_bootstrap = 2
    cfg.sample_size = 800
    # the purchase models all fit the same (customer, country) summary rows; Pareto/NBD's
    # likelihood is the slow one and the grouping reaches it no differently
    cfg.models.purchase_models = ["bgnbd", "mbgnbd"]
    keep = ("rfm11", "kmeans_4", "rfm11_annual_thresholds")
    cfg.segmentations = [s for s in cfg.segmentations if s.name in keep]
    uri = mlflow_store(tmp_path / "mlflow.db")
    result = run_experiment(cfg, output_dir=tmp_path / "out", tracking_uri=uri)

    predictions = read_predictions(tmp_path / "out" / "predictions.parquet")
    assert predictions.index.names == ["customer_id", "country"]
    # a few customers bought from more than one country: one row per customer and country
    assert predictions.index.get_level_values("customer_id").nunique() == 1200
    assert len(predictions) >= 1200
    assert predictions[["probability_alive", "clv", "expected_purchases"]].notna().all().all()
    lists = list((tmp_path / "out" / "segments").glob("*.csv"))
    assert sum(len(pd.read_csv(p)) for p in lists) == len(predictions)

    client = MlflowClient(tracking_uri=uri)
    for name in keep:
        metrics = client.get_run(result.runs[name]).data.metrics
        assert math.isfinite(metrics["buy_again_auc"]) and math.isfinite(metrics["silhouette"])
    assert client.get_run(result.parent_run_id).info.status == "FINISHED"
