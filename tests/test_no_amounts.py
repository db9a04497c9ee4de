"""A transaction log without amounts: rfmml run, fit and predict on recency and frequency.

The real CDNOW log with its amount column dropped, written to a CSV: segments
and the purchase model work, spend metrics, the spend model and spend columns
are absent (never NaN), and a scheme that scores spend is refused in one line.
"""

from __future__ import annotations

import json
import re

import mlflow
import pandas as pd
import pytest
from click.testing import CliRunner

from rfmml.campaign import read_predictions
from rfmml.cli import main
from rfmml.evaluation.segmentation import SPEND_METRICS

SPEND_COLUMNS = {"total_spend", "M", "RFM", "expected_order_value", "expected_spend", "clv"}

CONFIG = """
name = "no_amounts"
calibration_end = "1997-09-30"
observation_end = "1998-06-30"
freq = "W"
n_bootstrap = 2
sample_size = 800

[data]
source = "{source}"
customer = "cust"
timestamp = "date"
amount = ""

[[segmentations]]
name = "rf_grid"
kind = "rules"
scheme = "rf_grid"

[[segmentations]]
name = "kmeans_3"
kind = "kmeans"
n_clusters = 3
{extra}
[models]
horizon = 26
"""


@pytest.fixture(scope="module")
def workspace(tmp_path_factory, cdnow_tx):
    """1,500 real CDNOW customers, customer id and date only, and a config that maps them."""
    folder = tmp_path_factory.mktemp("no_amounts")
    ids = cdnow_tx["customer_id"].drop_duplicates().sample(1500, random_state=5)
    sample = cdnow_tx[cdnow_tx["customer_id"].isin(ids)]
    log = pd.DataFrame(
        {"cust": sample["customer_id"], "date": sample["timestamp"].dt.strftime("%Y-%m-%d")}
    )
    log.to_csv(folder / "orders.csv", index=False)
    (folder / "run.toml").write_text(CONFIG.format(source=folder / "orders.csv", extra=""))
    return folder


@pytest.fixture(scope="module")
def ran(workspace, mlflow_store):
    uri = mlflow_store(workspace / "mlflow.db")
    out = workspace / "out"
    result = CliRunner().invoke(
        main, ["run", str(workspace / "run.toml"), "-o", str(out), "--tracking-uri", uri],
        catch_exceptions=False,
    )  # fmt: skip
    return result, out, uri


def invoke(*args: object) -> object:
    return CliRunner().invoke(main, [str(a) for a in args])


def one_line_error(result: object, pattern: str) -> None:
    assert result.exit_code == 1, result.output
    errors = [line for line in result.output.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1 and re.search(pattern, errors[0]), result.output


def test_run_scores_recency_and_frequency_and_skips_spend(ran):
    result, out, uri = ran
    assert result.exit_code == 0, result.output
    assert "BG/NBD (no amounts: Gamma-Gamma skipped)" in result.output
    comparison = pd.read_csv(out / "comparison.csv", index_col="segmentation")
    assert set(comparison.index) == {"rf_grid", "kmeans_3"}
    assert not set(SPEND_METRICS) & set(comparison.columns)  # absent, not NaN
    assert comparison["buy_again_auc"].between(0.6, 1).all()
    assert comparison[["silhouette", "stability_ari_mean"]].notna().all().all()
    metrics = pd.read_csv(out / "model_metrics.csv", index_col=0)
    assert "spend_mae" not in metrics.index and "purchases_mae" in metrics.index
    predictions = read_predictions(out)
    assert len(predictions) == 1500
    assert not SPEND_COLUMNS & set(predictions.columns)
    assert {"R", "F", "segment", "cluster_name", "probability_alive", "expected_purchases",
            "action"} <= set(predictions.columns)  # fmt: skip
    # NaT next-order dates mark customers more likely than not never to buy again
    assert predictions.drop(columns="expected_next_order_date", errors="ignore").notna().all().all()
    assert sorted(p.name for p in (out / "model").iterdir()) == [
        "kmeans_segmenter.json", "pipeline.json", "purchase_model.json", "rule_segmenter.json"
    ]  # fmt: skip
    assert json.loads((out / "model" / "pipeline.json").read_text())["observation_end"] == (
        "1998-06-30"
    )
    profile_png = out / "segmentations" / "rf_grid" / "rf_grid.png"
    assert profile_png.stat().st_size > 0
    report = (out / "report.html").read_text()
    assert "<html" in report and "a log without amounts" in report
    assert not list(out.rglob("*.partial"))  # every file was renamed into place
    mlflow.set_tracking_uri(uri)
    runs = mlflow.search_runs(experiment_names=["no_amounts"])
    models = runs[runs["tags.rfmml.role"] == "models"].iloc[0]
    assert "Gamma-Gamma (the spend model) is skipped" in models["tags.gamma_gamma.skipped"]


def test_logged_model_scores_the_log_itself(ran, workspace):
    _, out, uri = ran
    mlflow.set_tracking_uri(uri)
    runs = mlflow.search_runs(experiment_names=["no_amounts"])
    scoring = runs[runs["tags.rfmml.role"] == "scoring"].iloc[0]
    models = mlflow.search_logged_models(
        experiment_ids=[scoring["experiment_id"]], output_format="list"
    )
    model = mlflow.pyfunc.load_model(f"models:/{models[0].model_id}")
    log = pd.read_csv(workspace / "orders.csv", dtype={"cust": str}, parse_dates=["date"])
    tx = log.rename(columns={"cust": "customer_id", "date": "timestamp"})
    got = model.predict(tx).set_index("customer_id")
    want = read_predictions(out).set_index("customer_id", drop=False)
    want.index = want.index.astype(str)
    pd.testing.assert_series_equal(
        got["probability_alive"], want.loc[got.index, "probability_alive"]
    )
    assert (got["segment"] == want.loc[got.index, "segment"].astype(str)).all()


def test_predict_with_the_run_model_and_with_fit(ran, workspace, tmp_path):
    _, out, _ = ran
    columns = ["--customer", "cust", "--timestamp", "date", "--amount", ""]
    log = workspace / "orders.csv"
    result = invoke("predict", log, *columns, "--observation-end", "1998-06-30",
                    "--model", out / "model", "-o", tmp_path / "pred")  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "no amounts" in result.output
    again = read_predictions(tmp_path / "pred")
    first = read_predictions(out)
    pd.testing.assert_series_equal(
        again["probability_alive"].reset_index(drop=True),
        first["probability_alive"].reset_index(drop=True),
    )
    assert not SPEND_COLUMNS & set(again.columns)
    assert (tmp_path / "pred" / "report.html").is_file()

    result = invoke("fit", log, *columns, "--models-dir", tmp_path / "fitted")
    assert result.exit_code == 0, result.output
    result = invoke("predict", log, *columns, "--model", tmp_path / "fitted",
                    "-o", tmp_path / "pred2")  # fmt: skip
    assert result.exit_code == 0, result.output
    fitted = read_predictions(tmp_path / "pred2")
    assert len(fitted) == 1500 and not SPEND_COLUMNS & set(fitted.columns)
    assert {"segment", "probability_alive", "churn_risk"} <= set(fitted.columns)


def test_a_spend_pipeline_refuses_a_log_without_amounts(workspace, tmp_path, cdnow_tx):
    with_amounts = tmp_path / "with.csv"
    cdnow_tx.head(3000).to_csv(with_amounts, index=False)
    assert invoke("fit", with_amounts, "--models-dir", tmp_path / "m").exit_code == 0
    result = invoke(
        "predict",
        workspace / "orders.csv",
        "--customer",
        "cust",
        "--timestamp",
        "date",
        "--amount",
        "",
        "--model",
        tmp_path / "m",
        "-o",
        tmp_path / "p",
    )
    one_line_error(result, r"this pipeline has a spend model \(Gamma-Gamma\) but the log has no")
    assert not (tmp_path / "p").exists()


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ('[[segmentations]]\nname = "rfm11"\nkind = "rules"\nscheme = "rfm11"\n',
         r"segmentation 'rfm11': scheme 'rfm11' scores spend \(FM\), but the log has no amounts"),
        ('[[segmentations]]\nname = "km"\nkind = "kmeans"\nvalue_col = "total_spend"\n',
         r"segmentation 'km': \['value_col'\] name total_spend, but the log has no amounts"),
        ('primary_metric = "top_revenue_capture"\n', None),
    ],
)  # fmt: skip
def test_what_needs_spend_is_refused_in_one_line(workspace, tmp_path, extra, message):
    text = CONFIG.format(source=workspace / "orders.csv", extra=extra)
    if message is None:  # a top-level key goes before the tables
        text = extra + text.replace(extra, "")
        message = r"primary_metric = 'top_revenue_capture' needs amounts, but the log has none"
    (tmp_path / "bad.toml").write_text(text)
    result = invoke("run", tmp_path / "bad.toml", "-o", tmp_path / "out",
                    "--tracking-uri", f"sqlite:///{tmp_path / 'm.db'}")  # fmt: skip
    one_line_error(result, message)
    assert not (tmp_path / "out").exists()  # refused before anything was written
