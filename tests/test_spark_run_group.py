"""A Spark run with ``[data] group``: per-group holdout, features, edges and scores, equal
to the pandas run on the same log, including a group first seen after the calibration
end and a group too small for its own edges."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from rfmml.config import load_config
from rfmml.pipeline import Calibration, evaluate_models, score

_CAL_END, _OBS_END = "1997-09-30", "1998-06-30"


def _grouped(tx: pd.DataFrame) -> pd.DataFrame:
    """CDNOW with a channel per purchase: web/store for everyone, "app" only after the
    calibration end (a group first seen then), "kiosk" for a handful of customers."""
    ids = tx["customer_id"].to_numpy()
    day = tx["timestamp"].dt.day.to_numpy()
    channel = np.where((ids + day) % 3 == 0, "web", "store").astype(object)
    late = (tx["timestamp"] > pd.Timestamp(_CAL_END)).to_numpy()
    channel[late & (ids % 40 == 0)] = "app"
    channel[ids % 1700 == 0] = "kiosk"
    return tx[["customer_id", "timestamp", "amount"]].assign(channel=channel)


@pytest.fixture(scope="module")
def grouped_tx(cdnow_tx):
    return _grouped(cdnow_tx)


@pytest.fixture(scope="module")
def cfg(spark, grouped_tx, tmp_path_factory):
    folder = tmp_path_factory.mktemp("cdnow-grouped") / "tx"
    spark.createDataFrame(grouped_tx).write.parquet(str(folder))
    return load_config(
        {
            "name": "spark_group",
            "calibration_end": _CAL_END,
            "observation_end": _OBS_END,
            "freq": "W",
            "engine": "spark",
            "n_bootstrap": 0,
            "data": {"source": folder.as_posix(), "group": "channel"},
            "models": {"purchase_models": ["bgnbd"], "horizon": 52, "next_order_window": 4},
            "segmentations": [{"name": "rfm11", "kind": "rules", "scheme": "rfm11"}],
        }
    )


@pytest.fixture(scope="module")
def pandas_run(cfg, grouped_tx):
    cal = Calibration.build(grouped_tx, cfg)
    models = evaluate_models(cfg, cal, grouped_tx)
    with pytest.warns(UserWarning, match="fewer than min_group_size"):
        scored = score(cfg, grouped_tx, pd.DataFrame(index=["rfm11"]), purchase_model="bgnbd")
    return cal, models, scored


@pytest.fixture(scope="module")
def spark_run(spark, cfg, tmp_path_factory):
    from rfmml.spark_run import run_spark_experiment

    out = tmp_path_factory.mktemp("spark-group-run") / "out"
    with pytest.warns(UserWarning, match="fewer than min_group_size"):
        return run_spark_experiment(cfg, output_dir=out, spark=spark)


def test_the_log_has_a_group_first_seen_after_calibration(grouped_tx):
    first = grouped_tx.groupby("channel")["timestamp"].min()
    assert first["app"] > pd.Timestamp(_CAL_END) >= first[["web", "store", "kiosk"]].max()
    assert grouped_tx.loc[grouped_tx["channel"] == "kiosk", "customer_id"].nunique() < 20


@pytest.mark.spark
def test_grouped_spark_holdout_equals_pandas(spark_run, pandas_run):
    cal, models, _ = pandas_run
    # pandas leaves the (customer, "app") rows out of the holdout: first seen after it
    assert "app" not in cal.cal_holdout.index.get_level_values("channel")
    ev = spark_run.evaluation
    assert ev is not None
    want = models.fits["bgnbd"]
    close = np.testing.assert_allclose
    close(ev.fits["bgnbd"].params_.to_numpy(), want.model.params_.to_numpy(), rtol=1e-9)
    assert ev.fits["bgnbd"].n_customers_ == len(cal.cal_holdout)
    # spend_mae scores Gamma-Gamma fitted on the Spark summary (agrees to ~2e-7)
    purchase = [m for m in want.holdout_metrics.index if m != "spend_mae"]
    got = ev.holdout["bgnbd"]
    close(got.loc[purchase].to_numpy(), want.holdout_metrics.loc[purchase].to_numpy(), rtol=1e-9)
    close(got.loc["spend_mae"], want.holdout_metrics.loc["spend_mae"], rtol=1e-6)
    numeric = ["log_likelihood", "aic", "bic", "purchases_mae", "buy_again_auc", "tracking_mape"]
    got = ev.comparison[numeric].to_numpy(dtype=float)
    close(got, models.comparison[numeric].to_numpy(dtype=float), rtol=1e-9)


@pytest.mark.spark
def test_grouped_spark_scores_equal_pandas(spark, spark_run, pandas_run, spark_compare):
    _, _, scored = pandas_run
    want = scored.predictions
    assert {"app", "kiosk"} <= set(want["channel"])  # every group is scored
    back = spark.read.parquet(str(spark_run.predictions)).select(*want.columns)
    spark_compare(back, want.drop(columns=["customer_id", "channel"]),
                  keys=("customer_id", "channel"), rtol=1e-6)  # fmt: skip


@pytest.mark.spark
def test_grouped_rule_edges_equal_pandas(spark, spark_run, pandas_run):
    from rfmml.campaign import ScoringPipeline

    _, _, scored = pandas_run
    fitted = ScoringPipeline.load(spark_run.model_dir).rule_segmenter.scorer_
    want = scored.pipeline.rule_segmenter.scorer_
    assert list(fitted.groups_) == list(want.groups_)
    assert list(want.small_groups_) == ["kiosk"]
    # spend edges are sums of amounts: Spark and DuckDB add them in another order
    pd.testing.assert_frame_equal(fitted.edges_, want.edges_, check_exact=False, rtol=1e-12)


@pytest.mark.spark
def test_grouped_spark_transform_equals_pandas(spark, grouped_tx, pandas_run, spark_compare):
    from rfmml.features import rfm_table
    from rfmml.segments import RuleSegmenter

    sdf = spark.createDataFrame(grouped_tx)
    features = rfm_table(sdf, _OBS_END, group="channel")
    with pytest.warns(UserWarning, match="fewer than min_group_size"):
        rules = RuleSegmenter("rfm11").fit(features)
    got = rules.transform(features)
    assert got.columns[:2] == ["customer_id", "channel"]
    _, _, scored = pandas_run
    want = scored.pipeline.rule_segmenter.transform(
        rfm_table(grouped_tx, _OBS_END, group="channel")
    )
    spark_compare(got, want.assign(segment=want["segment"].astype(str)),
                  keys=("customer_id", "channel"))  # fmt: skip


@pytest.mark.spark
def test_predict_spark_with_a_grouped_pipeline(spark, spark_run, cfg, tmp_path):
    from rfmml.spark_run import predict_spark

    paths = predict_spark(spark_run.model_dir, cfg.data.source, tmp_path / "scored", spark=spark)
    scored = spark.read.parquet(str(paths["parquet"]))
    run = spark.read.parquet(str(spark_run.predictions))
    assert "channel" in scored.columns
    assert scored.exceptAll(run).count() + run.exceptAll(scored).count() == 0
