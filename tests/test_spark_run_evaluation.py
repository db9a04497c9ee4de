"""A Spark run judges every purchase model on the holdout and scores with intervals,
equal to the pandas run on the same log (CDNOW, weekly)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from rfmml.config import ExperimentConfig, load_config
from rfmml.evaluation import evaluate_holdout, repeat_transaction_tracking
from rfmml.evaluation._spark import evaluate_holdout_spark, spark_auc
from rfmml.features import calibration_holdout, calibration_summary
from rfmml.models import BetaGeoNBD, GammaGamma
from rfmml.pipeline import Calibration, evaluate_models, score

_MODELS = ["bgnbd", "mbgnbd", "pareto_nbd"]


def _config(source: str, **models) -> ExperimentConfig:
    return load_config(
        {
            "name": "spark_holdout",
            "calibration_end": "1997-09-30",
            "observation_end": "1998-06-30",
            "freq": "W",
            "engine": "spark",
            "n_bootstrap": 0,
            "data": {"source": source},
            "models": {
                "purchase_models": _MODELS,
                "horizon": 52,
                "next_order_window": 4,
                **models,
            },  # fmt: skip
            "segmentations": [{"name": "rfm11", "kind": "rules", "scheme": "rfm11"}],
        }
    )


@pytest.fixture(scope="module")
def parquet_log(spark, cdnow_tx, tmp_path_factory):
    folder = tmp_path_factory.mktemp("cdnow-run") / "tx"
    spark.createDataFrame(cdnow_tx[["customer_id", "timestamp", "amount"]]).write.parquet(
        str(folder)
    )
    return folder


@pytest.fixture(scope="module")
def cfg(parquet_log):
    return _config(parquet_log.as_posix(), interval=0.9, n_draws=40)


@pytest.fixture(scope="module")
def pandas_run(cfg, cdnow_tx):
    """The pandas run's evaluation and scoring of the same log (the oracle)."""
    cal = Calibration.build(cdnow_tx, cfg)
    models = evaluate_models(cfg, cal, cdnow_tx)
    scored = score(cfg, cdnow_tx, pd.DataFrame(index=["rfm11"]), purchase_model=models.chosen)
    return models, scored


@pytest.fixture(scope="module")
def spark_run(spark, cfg, tmp_path_factory):
    from rfmml.spark_run import run_spark_experiment

    root = tmp_path_factory.mktemp("spark-holdout-run")
    uri = f"sqlite:///{(root / 'mlflow.db').as_posix()}"
    result = run_spark_experiment(cfg, output_dir=root / "out", tracking_uri=uri, spark=spark)
    return result, uri


def _close(got, want, rtol=1e-9):
    np.testing.assert_allclose(np.asarray(got, float), np.asarray(want, float), rtol=rtol, atol=0)


def _close_holdout(got: pd.DataFrame, want: pd.DataFrame) -> None:
    """Holdout tables of the run: the purchase metrics to 1e-9; spend_mae scores Gamma-Gamma
    fitted on the Spark summary, which agrees to ~2e-7 (see tests/models/test_spark.py)."""
    assert list(got.index) == list(want.index)
    purchase = [m for m in want.index if m != "spend_mae"]
    _close(got.loc[purchase].to_numpy(), want.loc[purchase].to_numpy())
    _close(got.loc[["spend_mae"]].to_numpy(), want.loc[["spend_mae"]].to_numpy(), rtol=1e-6)


@pytest.mark.spark
def test_spark_holdout_metrics_equal_pandas(spark, spark_tx, cdnow_tx):
    cal_pd = calibration_holdout(cdnow_tx, "1997-09-30", "1998-06-30", freq="W")
    summary = calibration_summary(cal_pd)
    model = BetaGeoNBD().fit(summary)
    gg = GammaGamma(zero_spend="exclude").fit(summary)
    want = evaluate_holdout(model, gg, cal_pd)
    cal_sp = calibration_holdout(spark_tx, "1997-09-30", "1998-06-30", freq="W")
    got = evaluate_holdout(model, gg, cal_sp)  # the same fitted models: only the sums differ
    _close(got.to_numpy(), evaluate_holdout_spark(model, gg, cal_sp).to_numpy(), rtol=1e-14)
    assert list(got.index) == list(want.index) and list(got.columns) == list(want.columns)
    _close(got.to_numpy(), want.to_numpy(), rtol=1e-12)
    assert got.attrs == want.attrs
    # the exact AUC is sklearn's, ties included (the baseline has many tied scores)
    assert abs(got.loc["buy_again_auc", "baseline"] - want.loc["buy_again_auc", "baseline"]) < 1e-12
    curves_pd = repeat_transaction_tracking(cdnow_tx, {"bgnbd": model}, "1997-09-30",
                                            "1998-06-30", freq="W")  # fmt: skip
    curves_sp = repeat_transaction_tracking(spark_tx, {"bgnbd": model}, "1997-09-30",
                                            "1998-06-30", freq="W")  # fmt: skip
    pd.testing.assert_frame_equal(curves_sp, curves_pd, rtol=1e-12)
    assert curves_sp.attrs == curves_pd.attrs


@pytest.mark.spark
def test_spark_auc_counts_ties_half(spark):
    from sklearn.metrics import roc_auc_score

    rng = np.random.default_rng(7)
    y = rng.random(3000) < 0.3
    score = np.round(rng.random(3000) + 0.3 * y, 1)  # few distinct values: many ties
    sdf = spark.createDataFrame(pd.DataFrame({"y": y, "s": score}))
    assert abs(spark_auc(sdf, "y", "s") - roc_auc_score(y, score)) < 1e-13
    one_class = spark.createDataFrame(pd.DataFrame({"y": [True, True], "s": [0.1, 0.2]}))
    assert np.isnan(spark_auc(one_class, "y", "s"))


@pytest.mark.spark
def test_spark_run_chooses_and_compares_as_pandas(spark_run, pandas_run):
    result, _ = spark_run
    models, _ = pandas_run
    ev = result.evaluation
    assert ev is not None
    assert result.chosen_model == models.chosen == ev.chosen
    assert list(ev.fits) == _MODELS
    for name in _MODELS:  # parameters fitted on the Spark calibration summary
        want = models.fits[name].model.params_
        _close(ev.fits[name].params_.to_numpy(), want.to_numpy())
        _close_holdout(ev.holdout[name], models.fits[name].holdout_metrics)
    got = pd.read_csv(result.files["model_comparison"], index_col="model")
    want = models.comparison
    assert list(got.index) == list(want.index) and list(got.columns) == list(want.columns)
    assert got["chosen"].tolist() == want["chosen"].tolist()
    assert got["label"].tolist() == want["label"].tolist()
    numeric = [c for c in want.columns if c not in ("label", "chosen", "degenerate")]
    _close(got[numeric].to_numpy(), want[numeric].to_numpy())
    metrics = pd.read_csv(result.files["model_metrics"], index_col="metric")
    _close_holdout(metrics, models.holdout_metrics)
    curves = pd.read_csv(result.files["tracking_csv"], index_col="period")
    _close(curves.drop(columns="holdout").to_numpy(),
           models.tracking.drop(columns="holdout").to_numpy())  # fmt: skip


@pytest.mark.spark
def test_spark_run_scores_with_intervals_as_pandas(spark, spark_run, pandas_run, spark_compare):
    result, _ = spark_run
    _, scored = pandas_run
    want = scored.predictions
    assert "clv_lower" in want.columns and "purchase_count_upper" in want.columns
    back = spark.read.parquet(str(result.predictions)).select(*want.columns)
    # Gamma-Gamma fitted on Spark agrees to ~2e-7 (see tests/models/test_spark.py); the
    # purchase model's columns (and their intervals) to 1e-9
    spark_compare(back, want, rtol=1e-6)
    purchase_cols = [c for c in want.columns if c.startswith(("expected_purchases",
                     "probability_alive", "purchase_count"))]  # fmt: skip
    spark_compare(back.select("customer_id", *purchase_cols), want[purchase_cols], rtol=1e-9)


@pytest.mark.spark
def test_spark_run_logs_a_child_run_per_purchase_model(spark_run, pandas_run):
    import mlflow

    result, uri = spark_run
    models, _ = pandas_run
    mlflow.set_tracking_uri(uri)
    runs = mlflow.search_runs(experiment_names=["spark_holdout"])
    children = runs[runs["tags.rfmml.role"] == "purchase_model"]
    assert sorted(children["tags.rfmml.purchase_model"]) == sorted(_MODELS)
    assert children["tags.mlflow.parentRunId"].unique().tolist() == [result.run_id]
    chosen = children[children["tags.rfmml.chosen"] == "true"]
    assert chosen["tags.rfmml.purchase_model"].tolist() == [models.chosen]
    for _, row in children.iterrows():
        name = row["tags.rfmml.purchase_model"]
        _close(row["metrics.purchases_mae"], models.fits[name].metrics["purchases_mae"])
        _close(row["metrics.bic"], models.fits[name].metrics["bic"])
    parent = runs[runs["run_id"] == result.run_id].iloc[0]
    assert parent["params.purchase_model"] == models.chosen


@pytest.mark.spark
def test_spark_run_refuses_bootstrap_intervals(spark, parquet_log, tmp_path):
    from rfmml.errors import ConfigError
    from rfmml.spark_run import run_spark_experiment

    bad = _config(parquet_log.as_posix(), interval=0.9, n_draws=10, interval_method="bootstrap")
    with pytest.raises(ConfigError, match="interval_method = 'bootstrap'.*engine = 'spark'"):
        run_spark_experiment(bad, output_dir=tmp_path, spark=spark)


@pytest.mark.spark
def test_predict_spark_with_the_saved_intervals(spark, spark_run, parquet_log, tmp_path):
    from rfmml.spark_run import predict_spark

    result, _ = spark_run
    paths = predict_spark(result.model_dir, parquet_log, tmp_path / "scored", spark=spark)
    scored = spark.read.parquet(str(paths["parquet"]))
    run = spark.read.parquet(str(result.predictions))
    assert "clv_lower" in scored.columns
    assert scored.exceptAll(run).count() + run.exceptAll(scored).count() == 0


@pytest.mark.spark
def test_spark_interval_columns_equal_pandas_for_the_same_seed(spark, spark_tx, cdnow_tx,
                                                               spark_compare):  # fmt: skip
    from rfmml.campaign import score_customers
    from rfmml.features import btyd_summary, rfm_table
    from rfmml.segments import RuleSegmenter

    features = rfm_table(cdnow_tx, "1998-06-30")
    summary = btyd_summary(cdnow_tx, "1998-06-30", freq="W")
    fitted = dict(rule_segmenter=RuleSegmenter("rfm11").fit(features),
                  purchase_model=BetaGeoNBD().fit(summary),
                  gamma_gamma=GammaGamma(zero_spend="exclude").fit(summary))  # fmt: skip
    options = dict(horizon=52, freq="W", interval=0.8, n_draws=30, random_state=11)
    want = score_customers(features, summary, **fitted, **options)
    spark_features = rfm_table(spark_tx, "1998-06-30")
    spark_summary = btyd_summary(spark_tx, "1998-06-30", freq="W")
    got = score_customers(spark_features, spark_summary, **fitted, **options)
    assert got.columns == list(want.columns) and "clv_upper" in got.columns
    spark_compare(got, want.drop(columns="customer_id"), rtol=1e-12)
