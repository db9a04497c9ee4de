"""One small real experiment, run once against a temporary SQLite store."""

from __future__ import annotations

import os

import pytest

from rfmml.config import load_config
from rfmml.pipeline import run_experiment

SMALL = {
    "name": "cdnow_small",
    "primary_metric": "buy_again_auc",
    "random_state": 0,
    "calibration_end": "1997-09-30",
    "observation_end": "1998-06-30",
    "freq": "W",
    "n_bootstrap": 2,
    "sample_size": 1000,
    "data": {"source": "cdnow", "sample_customers": 2000},
    "segmentations": [
        {"name": "rf_grid", "kind": "rules", "scheme": "rf_grid"},
        {"name": "rfm11", "kind": "rules", "scheme": "rfm11"},
        {"name": "kmeans_4", "kind": "kmeans", "n_clusters": 4},
    ],
    "models": {
        "horizon": 26,
        "discount_rate": 0.002,
        "purchase_models": ["bgnbd", "mbgnbd", "pareto_nbd"],
    },
}


@pytest.fixture(scope="session")
def small_config():
    return load_config(SMALL)


@pytest.fixture(scope="session")
def store(tmp_path_factory, mlflow_store):
    folder = tmp_path_factory.mktemp("mlflow")
    return mlflow_store(folder / "mlflow.db")


@pytest.fixture(scope="session")
def small_run(small_config, store, tmp_path_factory):
    previous = os.environ.pop("MLFLOW_TRACKING_URI", None)
    try:
        out = tmp_path_factory.mktemp("out")
        yield run_experiment(small_config, output_dir=out, tracking_uri=store)
    finally:
        if previous is not None:
            os.environ["MLFLOW_TRACKING_URI"] = previous
