"""engine = "spark": the config, `rfmml run` and `rfmml predict` inside Spark, and the
logged scoring model through ``mlflow.pyfunc.spark_udf``."""

from __future__ import annotations

from urllib.parse import unquote

import pandas as pd
import pytest
from click.testing import CliRunner

from rfmml.campaign import score_customers
from rfmml.cli import main
from rfmml.config import load_config, to_toml
from rfmml.errors import ConfigError
from rfmml.features import btyd_summary, rfm_table
from rfmml.models import BetaGeoNBD, GammaGamma
from rfmml.segments import RuleSegmenter

_CONFIG = """
name = "spark_cdnow"
calibration_end = 1997-09-30
observation_end = 1998-06-30
freq = "W"
engine = "spark"
spark_master = "local[2]"

[data]
source = "{source}"

[models]
purchase_models = ["bgnbd"]
horizon = 52
next_order_window = 4

[[segmentations]]
name = "rfm11"
kind = "rules"
scheme = "rfm11"
"""


def test_engine_in_config_round_trips(tmp_path):
    path = tmp_path / "c.toml"
    path.write_text(_CONFIG.format(source="cdnow"))
    cfg = load_config(path)
    assert cfg.engine == "spark" and cfg.spark_master == "local[2]"
    again = tmp_path / "again.toml"
    again.write_text(to_toml(cfg))
    assert load_config(again) == cfg
    path.write_text(_CONFIG.format(source="cdnow").replace('"spark"', '"dask"'))
    with pytest.raises(ConfigError, match=r"engine = 'dask'; allowed: \['pandas', 'spark'\]"):
        load_config(path)


@pytest.fixture(scope="module")
def csv_log(spark, spark_tx, tmp_path_factory):
    folder = tmp_path_factory.mktemp("cdnow-csv") / "tx"
    spark_tx.write.csv(str(folder), header=True)
    return folder


@pytest.fixture(scope="module")
def pandas_table(cdnow_tx):
    features = rfm_table(cdnow_tx, "1998-06-30")
    summary = btyd_summary(cdnow_tx, "1998-06-30", freq="W")
    return score_customers(
        features,
        summary,
        rule_segmenter=RuleSegmenter("rfm11").fit(features),
        purchase_model=BetaGeoNBD().fit(summary),
        gamma_gamma=GammaGamma(zero_spend="exclude").fit(summary),
        horizon=52,
        freq="W",
        next_order_window=4,
    )


@pytest.fixture(scope="module")
def spark_run(spark, csv_log, tmp_path_factory):
    root = tmp_path_factory.mktemp("spark-run")
    config = root / "spark.toml"
    config.write_text(_CONFIG.format(source=csv_log.as_posix()))
    uri = f"sqlite:///{(root / 'mlflow.db').as_posix()}"
    out = root / "out"
    result = CliRunner().invoke(main, ["run", str(config), "-o", str(out), "--tracking-uri", uri])
    assert result.exit_code == 0, result.output
    return out, uri


@pytest.mark.spark
def test_cli_run_on_spark_writes_partitioned_predictions(
    spark, spark_run, pandas_table, spark_compare
):
    out, _ = spark_run
    parquet = out / "predictions.parquet"
    folders = sorted(unquote(p.name) for p in parquet.iterdir() if p.is_dir())  # Can%27t
    assert folders == sorted(f"segment={s}" for s in pandas_table["segment"].unique())
    assert (out / "predictions.meta.json").is_file() and (out / "model" / "pipeline.json").is_file()
    back = spark.read.parquet(str(out / "predictions.parquet"))
    back = back.select(*pandas_table.columns)  # the partition column comes back last
    # Gamma-Gamma fitted on Spark agrees to ~2e-7 (see tests/models/test_spark.py)
    spark_compare(back, pandas_table, rtol=1e-6)


@pytest.mark.spark
def test_cli_predict_on_spark(spark, spark_run, csv_log, tmp_path, spark_compare):
    out, _ = spark_run
    target = tmp_path / "scored"
    args = ["predict", str(csv_log), "--model", str(out / "model"), "-o", str(target)]
    result = CliRunner().invoke(main, [*args, "--engine", "spark"])
    assert result.exit_code == 0, result.output
    scored = spark.read.parquet(str(target / "predictions.parquet"))
    run = spark.read.parquet(str(out / "predictions.parquet"))
    diff = scored.exceptAll(run).count() + run.exceptAll(scored).count()
    assert diff == 0
    assert (target / "cleaning_report.json").is_file()
    assert "rows in: 69,659" in result.output


@pytest.mark.spark
def test_spark_run_records_its_cleaning_report(spark_run, cdnow_tx):
    """The Spark run writes and logs what its reader removed, as the pandas run does."""
    import json

    import mlflow

    from rfmml.data import CleaningReport, read_transactions

    out, uri = spark_run
    report = CleaningReport(**json.loads((out / "cleaning_report.json").read_text()))
    report.check()
    _, expected = read_transactions(cdnow_tx, observation_end="1998-06-30")
    assert report.rows_in == expected.rows_in == len(cdnow_tx)
    assert report.rows_out == expected.rows_out
    assert report.removed == {k: v for k, v in expected.removed.items() if k in report.removed}
    assert report.removed["after the observation end 1998-06-30"] == 0
    assert report.flagged["zero amount"] == expected.flagged["zero amount"] > 0
    run = mlflow.get_run(_parent_run(uri))
    assert run.data.params["cleaning_rows_in"] == str(len(cdnow_tx))
    assert run.data.metrics["cleaning_rows_removed"] == report.rows_removed
    logged = mlflow.artifacts.load_dict(f"{run.info.artifact_uri}/data/cleaning_report.json")
    assert logged == report.to_dict()


def _parent_run(uri: str) -> str:
    import mlflow

    mlflow.set_tracking_uri(uri)
    runs = mlflow.search_runs(experiment_names=["spark_cdnow"])
    return runs.loc[runs["tags.rfmml.role"] == "parent", "run_id"].iloc[0]


@pytest.mark.spark
def test_logged_model_through_spark_udf(spark, spark_run, spark_tx, pandas_table, spark_compare):
    import mlflow
    from pyspark.sql import functions as F
    from pyspark.sql.types import TimestampType

    from rfmml.tracking import scoring_udf

    _, uri = spark_run
    model_uri = f"runs:/{_parent_run(uri)}/scoring_pipeline"
    info = mlflow.models.get_model_info(model_uri)
    # every output column of the signature, the next-order date included (a timestamp)
    udf = scoring_udf(spark, model_uri)
    features = rfm_table(spark_tx, "1998-06-30").drop("first_purchase", "last_purchase")
    summary = btyd_summary(spark_tx, "1998-06-30", freq="W")
    frame = features.join(summary, on="customer_id")
    # the run read the CSV log, whose ids are text: the model's signature says string
    frame = frame.withColumn("customer_id", F.col("customer_id").cast("string"))
    inputs = [c for c in info.signature.inputs.input_names() if c in frame.columns]
    scored = frame.select(udf(*[F.col(c) for c in inputs]).alias("p")).select("p.*")
    assert scored.columns == list(pandas_table.reset_index(drop=True).columns)
    assert isinstance(scored.schema["expected_next_order_date"].dataType, TimestampType)
    dates = pandas_table["expected_next_order_date"]
    assert dates.isna().any() and dates.notna().any()  # both kinds of rows are checked
    columns = ["customer_id", "segment", "probability_alive", "expected_purchases",
               "expected_next_order_date"]  # fmt: skip
    spark_compare(scored.select(*columns), pandas_table[columns[1:]], rtol=1e-6)
    spark_compare(scored, pandas_table.drop(columns="customer_id"), rtol=1e-6)


@pytest.mark.spark
def test_plain_spark_udf_carries_dates_as_text(spark, spark_run, spark_tx, pandas_table):
    """mlflow.pyfunc.spark_udf itself, with the model's ``dates = "iso"`` parameter."""
    import mlflow
    from pyspark.sql import functions as F

    _, uri = spark_run
    model_uri = f"runs:/{_parent_run(uri)}/scoring_pipeline"
    info = mlflow.models.get_model_info(model_uri)
    result = "customer_id string, expected_next_order_date string"
    udf = mlflow.pyfunc.spark_udf(spark, model_uri, result_type=result, env_manager="local",
                                  params={"dates": "iso"})  # fmt: skip
    features = rfm_table(spark_tx, "1998-06-30").drop("first_purchase", "last_purchase")
    frame = features.join(btyd_summary(spark_tx, "1998-06-30", freq="W"), on="customer_id")
    frame = frame.withColumn("customer_id", F.col("customer_id").cast("string"))
    inputs = [c for c in info.signature.inputs.input_names() if c in frame.columns]
    got = frame.select(udf(*[F.col(c) for c in inputs]).alias("p")).select("p.*")
    dates = pandas_table["expected_next_order_date"]
    want = pandas_table.assign(
        customer_id=pandas_table["customer_id"].astype(str),
        expected_next_order_date=dates.dt.strftime("%Y-%m-%d").where(dates.notna(), ""),
    )[["customer_id", "expected_next_order_date"]]
    theirs = spark.createDataFrame(want)
    assert got.exceptAll(theirs).count() == 0 and theirs.exceptAll(got).count() == 0


def test_spark_reader_drops_identical_rows_with_drop_duplicates(spark, cdnow_tx, tmp_path):
    """[data] drop_duplicates = true was ignored by engine = 'spark': an export appended
    to itself counted every purchase twice there and once on pandas."""
    from rfmml.config import DataConfig
    from rfmml.data import read_transactions
    from rfmml.spark_run import read_spark_transactions

    part = cdnow_tx[cdnow_tx["customer_id"] <= 200][["customer_id", "timestamp", "amount"]]
    path = tmp_path / "twice.parquet"
    pd.concat([part, part.iloc[:50]]).to_parquet(path)
    expected, _ = read_transactions(path, drop_duplicates=True)
    assert len(expected) == len(part.drop_duplicates())  # the 50 copies dropped
    rows = read_spark_transactions(spark, DataConfig(source=str(path), drop_duplicates=True))
    got = rows.toPandas().sort_values(["customer_id", "timestamp", "amount"], ignore_index=True)
    want = expected.sort_values(["customer_id", "timestamp", "amount"], ignore_index=True)
    pd.testing.assert_frame_equal(got, want, check_dtype=False)
