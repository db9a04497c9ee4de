"""Model choice on evidence: every purchase model fitted, compared, logged; the chosen scores."""

from __future__ import annotations

import dataclasses
import logging

import numpy as np
import pandas as pd
import pytest
from mlflow.tracking import MlflowClient

from rfmml.config import PURCHASE_MODELS, load_config
from rfmml.evaluation import FIT_METRICS, MODEL_METRICS, selection_metrics
from rfmml.pipeline import Calibration, evaluate_models, load_experiment_data

NAMES = ["bgnbd", "mbgnbd", "pareto_nbd"]


def test_model_comparison_has_a_row_per_model_and_the_baseline(small_run):
    table = pd.read_csv(small_run.files["model_comparison"], index_col="model")
    assert list(table.index) == [*NAMES, "baseline"]
    for col in ("log_likelihood", "aic", "bic", "purchases_mae", "purchases_rmse",
                "total_purchases_error", "buy_again_auc", "buy_again_brier",
                "tracking_mape"):  # fmt: skip
        assert table.loc[NAMES, col].notna().all(), col
    assert table.loc["baseline", ["aic", "bic", "log_likelihood"]].isna().all()
    assert table["chosen"].sum() == 1
    chosen = table.index[table["chosen"]][0]
    assert chosen == small_run.chosen_model
    # the default selection: holdout MAE, lower is better
    assert table.loc[chosen, "purchases_mae"] == table.loc[NAMES, "purchases_mae"].min()
    # AIC and BIC from the maximised log-likelihood, 4 parameters and 2,000 customers
    ll = table.loc["bgnbd", "log_likelihood"]
    assert table.loc["bgnbd", "aic"] == pytest.approx(8 - 2 * ll)
    assert table.loc["bgnbd", "bic"] == pytest.approx(4 * np.log(2000) - 2 * ll)


def test_each_purchase_model_is_a_child_run_with_its_metrics(small_run, store):
    client = MlflowClient(tracking_uri=store)
    for name in NAMES:
        run = client.get_run(small_run.runs[f"purchase_model.{name}"])
        assert run.data.tags["mlflow.parentRunId"] == small_run.parent_run_id
        assert run.data.tags["rfmml.purchase_model"] == name
        assert run.data.tags["rfmml.chosen"] == str(name == small_run.chosen_model).lower()
        assert run.data.params["kind"] == PURCHASE_MODELS[name].kind
        for metric in ("log_likelihood", "aic", "bic", "purchases_mae", "purchases_rmse",
                       "total_purchases_error", "buy_again_auc", "buy_again_brier",
                       "tracking_mape"):  # fmt: skip
            assert np.isfinite(run.data.metrics[metric]), (name, metric)


def test_the_chosen_model_is_recorded_and_scores(small_run, store):
    client = MlflowClient(tracking_uri=store)
    chosen = small_run.chosen_model
    parent = client.get_run(small_run.parent_run_id)
    assert parent.data.tags["rfmml.chosen_purchase_model"] == chosen
    models = client.get_run(small_run.runs["models"])
    assert models.data.params["chosen_purchase_model"] == chosen
    assert models.data.params["selection"] == "purchases_mae"
    scoring = client.get_run(small_run.runs["scoring"])
    assert scoring.data.params["purchase_model"] == chosen
    assert type(small_run.pipeline.purchase_model) is PURCHASE_MODELS[chosen]
    # the predictions are that model's, refitted on the full period
    model = small_run.pipeline.purchase_model
    summary = small_run.scoring_input[["frequency", "recency", "T"]]
    expected = model.expected_purchases(summary, 26).to_numpy()
    np.testing.assert_allclose(small_run.predictions["expected_purchases"], expected)


def test_selection_changes_the_choice(small_config):
    tx, _, _ = load_experiment_data(small_config)
    cal = Calibration.build(tx, small_config)
    choices = {}
    for metric in ("purchases_mae", "aic", "total_purchases_error", "buy_again_auc"):
        models = dataclasses.replace(small_config.models, selection=metric)
        cfg = dataclasses.replace(small_config, models=models)
        evaluation = evaluate_models(cfg, cal, tx)
        values = evaluation.comparison.loc[NAMES, metric].astype(float)
        lower = {**MODEL_METRICS, **FIT_METRICS}[metric] == "lower"
        best = values.idxmin() if lower else values.idxmax()
        assert evaluation.chosen == best, metric
        assert bool(evaluation.comparison.loc[best, "chosen"])
        # the models beat the naive baseline on this sample, so no warning
        assert evaluation.baseline_beats_models is None, metric
        choices[metric] = best
    # the metrics disagree on this sample, so the setting matters
    assert len(set(choices.values())) > 1, choices
    assert {"purchases_mae", "aic", "tracking_mape"} <= set(selection_metrics())


def test_a_baseline_that_beats_every_model_is_said_in_one_line(caplog):
    # Online Retail by week: every model's holdout MAE is above the carried-forward rate's
    cfg = load_config("online_retail")
    models = dataclasses.replace(cfg.models, purchase_models=["bgnbd", "mbgnbd"])
    cfg = dataclasses.replace(cfg, freq="W", models=models)
    tx, _, _ = load_experiment_data(cfg)
    with caplog.at_level(logging.WARNING, logger="rfmml.pipeline"):
        evaluation = evaluate_models(cfg, Calibration.build(tx, cfg), tx)
    mae = evaluation.comparison["purchases_mae"].astype(float)
    assert mae["baseline"] < mae[["bgnbd", "mbgnbd"]].min()
    line = evaluation.baseline_beats_models
    assert line is not None
    assert f"{mae['baseline']:.4g} against {mae[evaluation.chosen]:.4g}" in line
    assert line in caplog.messages
    assert "beats the best purchase model on purchases_mae" in line
