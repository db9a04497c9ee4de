"""The rfmml command end to end on a small real sample, and its bad-input paths."""

from __future__ import annotations

import csv
import json

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from rfmml.cli import fit, main

INJECTIONS = ['=HYPERLINK("http://example.com","x")', "+1+2", "@SUM(A1)", "-2+3"]


@pytest.fixture(scope="module")
def workspace(tmp_path_factory, cdnow_tx):
    """A CSV of 1,500 real CDNOW customers (four ids replaced by formula text) + a config."""
    folder = tmp_path_factory.mktemp("cli")
    ids = cdnow_tx["customer_id"].drop_duplicates().sample(1500, random_state=3)
    sample = cdnow_tx[cdnow_tx["customer_id"].isin(ids)].copy()
    sample["cust"] = sample["customer_id"].astype(str)
    hostile = dict(zip(ids.astype(str).iloc[:4], INJECTIONS, strict=True))
    sample["cust"] = sample["cust"].replace(hostile)
    sample["date"] = sample["timestamp"].dt.strftime("%Y-%m-%d")
    sample[["cust", "date", "amount"]].to_csv(folder / "orders.csv", index=False)
    config = f"""
name = "cli_small"
calibration_end = "1997-09-30"
observation_end = "1998-06-30"
freq = "W"
n_bootstrap = 2
sample_size = 800

[data]
source = "{folder / "orders.csv"}"
customer = "cust"
timestamp = "date"
amount = "amount"

[[segmentations]]
name = "rf_grid"
kind = "rules"
scheme = "rf_grid"

[[segmentations]]
name = "kmeans_3"
kind = "kmeans"
n_clusters = 3

[models]
horizon = 26
interval = 0.9
n_draws = 50
"""
    (folder / "small.toml").write_text(config)
    return folder


@pytest.fixture(scope="module")
def ran(workspace, mlflow_store):
    runner = CliRunner()
    uri = mlflow_store(workspace / "mlflow.db")
    result = runner.invoke(
        main,
        ["run", str(workspace / "small.toml"), "-o", str(workspace / "out"), "--tracking-uri", uri],
        catch_exceptions=False,
    )
    return result, workspace / "out", uri


def test_run_succeeds_and_prints_where_things_went(ran):
    result, out, uri = ran
    assert result.exit_code == 0, result.output
    assert "Segmentations ranked by buy_again_auc" in result.output
    # 11: the cleaning summary is on the terminal
    assert "Cleaning" in result.output and "rows out" in result.output
    assert "flagged (kept): zero amount" in result.output
    assert f"mlflow ui --backend-store-uri {uri}" in result.output


def test_the_parent_run_has_headline_metrics(ran):
    from mlflow.tracking import MlflowClient

    result, out, uri = ran
    comparison = pd.read_csv(out / "comparison.csv", index_col=0)
    client = MlflowClient(tracking_uri=uri)
    (experiment,) = [e for e in client.search_experiments() if e.name == "cli_small"]
    parents = client.search_runs(
        [experiment.experiment_id], filter_string="tags.`rfmml.role` = 'parent'"
    )
    metrics = parents[0].data.metrics
    assert metrics["data_customers"] == 1500
    assert metrics["best_buy_again_auc"] == pytest.approx(comparison["buy_again_auc"].max())


def test_every_output_file_exists_and_reads_back(ran):
    _, out, _ = ran
    predictions = pd.read_parquet(out / "predictions.parquet")
    assert len(predictions) == 1500
    assert predictions["customer_id"].is_unique
    meta = json.loads((out / "predictions.meta.json").read_text())
    assert meta["n_rows"] == 1500
    for name in ["predictions.csv", "comparison.csv", "model_metrics.csv",
                 "transitions_counts.csv", "transitions_rates.csv"]:  # fmt: skip
        assert len(pd.read_csv(out / name)) > 0, name
    for name in [
        "comparison.png",
        "transition_matrix.png",
        "segmentations/rf_grid/rf_grid.png",
        "models/calibration_vs_holdout.png",
    ]:  # every figure the README shows
        assert (out / name).stat().st_size > 1000, name
    assert (out / "model" / "pipeline.json").exists()


def test_segment_lists_add_up_to_the_customer_count(ran):
    _, out, _ = ran
    lists = list((out / "segments").glob("*.csv"))
    assert len(lists) >= 5
    assert sum(len(pd.read_csv(p)) for p in lists) == 1500


def test_csv_injection_is_neutralised(ran):
    _, out, _ = ran
    with open(out / "predictions.csv", newline="", encoding="utf-8") as handle:
        cells = {row["customer_id"] for row in csv.DictReader(handle)}
    for text in INJECTIONS:
        assert "'" + text in cells
        assert text not in cells
    listed = set()
    for path in (out / "segments").glob("*.csv"):
        with open(path, newline="", encoding="utf-8") as handle:
            listed |= {row["customer_id"] for row in csv.DictReader(handle)}
    assert all(("'" + t) in listed for t in INJECTIONS)


def test_compare_reads_the_run_back(ran):
    _, _, uri = ran
    result = CliRunner().invoke(main, ["compare", "cli_small", "--tracking-uri", uri])
    assert result.exit_code == 0, result.output
    assert "rf_grid" in result.output and "kmeans_3" in result.output


def test_run_and_predict_write_intervals(ran, workspace, tmp_path):
    _, out, _ = ran
    predictions = pd.read_parquet(out / "predictions.parquet")
    for name in ("expected_purchases", "probability_alive", "probability_no_purchase",
                 "expected_order_value", "clv"):  # fmt: skip
        assert (predictions[f"{name}_lower"] <= predictions[name]).all()
        assert (predictions[name] <= predictions[f"{name}_upper"]).all()
    meta = json.loads((out / "predictions.meta.json").read_text())
    intervals = meta["scoring"]["intervals"]
    assert intervals["n_draws"] == 50 and intervals["method"] == "parametric"
    overall = next(t for t in intervals["totals"] if t["segment"] == "all")
    assert overall["clv_lower"] < overall["clv"] < overall["clv_upper"]
    assert (out / "segment_totals.png").exists()
    args = [str(workspace / "orders.csv"), "--customer", "cust", "--timestamp", "date",
            "--model", str(out / "model")]  # fmt: skip
    result = CliRunner().invoke(main, ["predict", *args, "-o", str(tmp_path / "p")])
    assert result.exit_code == 0, result.output
    again = pd.read_parquet(tmp_path / "p" / "predictions.parquet")
    pd.testing.assert_series_equal(again["clv_upper"], predictions["clv_upper"])
    result = CliRunner().invoke(main, ["predict", *args, "--interval", "0", "-o",
                                       str(tmp_path / "q")])  # fmt: skip
    assert result.exit_code == 0, result.output
    plain = pd.read_parquet(tmp_path / "q" / "predictions.parquet")
    assert not any(c.endswith(("_lower", "_upper")) for c in plain.columns)
    assert (tmp_path / "q" / "predictions.csv").is_file()
    result = CliRunner().invoke(main, ["predict", *args, "--interval", "0", "--no-csv", "-o",
                                       str(tmp_path / "r")])  # fmt: skip
    assert result.exit_code == 0, result.output
    assert not (tmp_path / "r" / "predictions.csv").exists()
    pd.testing.assert_frame_equal(pd.read_parquet(tmp_path / "r" / "predictions.parquet"), plain)
    meta = json.loads((tmp_path / "r" / "predictions.meta.json").read_text())
    assert meta["files"] == {"parquet": "predictions.parquet"}


def test_features_segment_fit_predict(ran, workspace, tmp_path):
    _, out, _ = ran
    runner = CliRunner()
    args = [str(workspace / "orders.csv"), "--customer", "cust", "--timestamp", "date"]
    target = str(tmp_path / "f.parquet")
    result = runner.invoke(main, ["features", *args, "--freq", "W", "-o", target])
    assert result.exit_code == 0, result.output
    features = pd.read_parquet(tmp_path / "f.parquet")
    assert {"recency_days", "n_orders", "frequency", "recency", "T"} <= set(features.columns)
    assert len(features) == 1500

    result = runner.invoke(main, ["segment", *args, "--scheme", "rfm11", "-o",
                                  str(tmp_path / "s.csv")])  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "Champions" in result.output
    assert len(pd.read_csv(tmp_path / "s.csv")) == 1500

    result = runner.invoke(main, ["fit", *args, "--models-dir", str(tmp_path / "models")])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "models" / "pipeline.json").exists()  # a folder predict takes
    assert (tmp_path / "models" / "purchase_model.json").exists()
    assert (tmp_path / "models" / "gamma_gamma.json").exists()

    result = runner.invoke(main, ["predict", *args, "--model", str(out / "model"),
                                  "-o", str(tmp_path / "pred"),
                                  "--previous", str(out / "predictions.parquet"),
                                  "--hash-ids", "--salt", "s3cret"])  # fmt: skip
    assert result.exit_code == 0, result.output
    assert len(pd.read_parquet(tmp_path / "pred" / "predictions.parquet")) == 1500
    champions = pd.read_csv(tmp_path / "pred" / "segments" / "champions.csv")
    assert "customer_id_sha256" in champions.columns
    assert (tmp_path / "pred" / "changes").is_dir()

    # an earlier file that is not a predictions table: refused before anything is written
    log = tmp_path / "orders.parquet"
    pd.read_csv(workspace / "orders.csv").to_parquet(log)
    result = runner.invoke(main, ["predict", *args, "--model", str(out / "model"), "-o",
                                  str(tmp_path / "pred2"), "--previous", str(log)])  # fmt: skip
    assert result.exit_code != 0
    assert "has no column(s) ['customer_id', 'segment']" in result.output
    assert "nothing was written" in result.output
    assert not (tmp_path / "pred2").exists()


def test_fit_takes_any_purchase_model_and_predict_uses_it(workspace, tmp_path):
    from rfmml.config import PURCHASE_MODELS

    runner = CliRunner()
    args = [str(workspace / "orders.csv"), "--customer", "cust", "--timestamp", "date"]
    choices = next(p for p in fit.params if p.name == "purchase_model").type.choices
    assert sorted(choices) == sorted(PURCHASE_MODELS)  # the CLI offers every config model
    models = tmp_path / "models"
    result = runner.invoke(main, ["fit", *args, "--purchase-model", "pareto_nbd",
                                  "--models-dir", str(models)])  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "Pareto/NBD (W)" in result.output
    doc = json.loads((models / "purchase_model.json").read_text())
    assert doc["model"] == "ParetoNBD"
    result = runner.invoke(main, ["predict", *args, "--model", str(models),
                                  "-o", str(tmp_path / "pred")])  # fmt: skip
    assert result.exit_code == 0, result.output
    scored = pd.read_parquet(tmp_path / "pred" / "predictions.parquet")
    assert scored["probability_alive"].between(0, 1).all()
    assert scored["probability_no_purchase"].between(0, 1).all()


def test_fit_says_a_degenerate_model_in_one_line_with_cli_hints(online_retail_tx, tmp_path):
    # Online Retail, weekly: BG/NBD's dropout runs to a -> 0 (no one is estimated to leave)
    log = tmp_path / "retail.csv"
    online_retail_tx[["customer_id", "timestamp", "amount"]].to_csv(log, index=False)
    result = CliRunner().invoke(main, ["fit", str(log), "--models-dir", str(tmp_path / "m")])
    assert result.exit_code == 0, result.output
    lines = [line for line in result.output.splitlines() if "is degenerate" in line]
    assert len(lines) == 1, result.output
    assert lines[0].startswith("warning: BG/NBD fit on the whole log is degenerate: a = ")
    assert "--penalizer 0.01" in lines[0] and "--purchase-model pareto_nbd" in lines[0]
    assert "[models]" not in lines[0]  # the config's syntax is not the CLI's
    assert "Hessian" not in result.output  # said once, as "(standard errors NaN)"


SCORER_TOML = """
method = "thresholds"
frequency_col = "orders_per_year"
monetary_col = "spend_per_year"
thresholds = { R = [30, 90, 180, 365], F = [2, 4, 8, 16], M = [50, 100, 250, 600] }
"""


def test_segment_and_fit_take_business_thresholds_from_a_scorer_file(workspace, tmp_path):
    from rfmml.campaign import ScoringPipeline
    from rfmml.data import read_transactions
    from rfmml.features import rfm_table
    from rfmml.segments import RFMScorer, RuleSegmenter

    scorer_file = tmp_path / "scorer.toml"
    scorer_file.write_text(SCORER_TOML)
    runner = CliRunner()
    csv_path = workspace / "orders.csv"
    args = [str(csv_path), "--customer", "cust", "--timestamp", "date"]
    result = runner.invoke(main, ["segment", *args, "--scheme", "rfm11", "--scorer",
                                  str(scorer_file), "-o", str(tmp_path / "s.parquet")])  # fmt: skip
    assert result.exit_code == 0, result.output
    got = pd.read_parquet(tmp_path / "s.parquet")  # indexed by customer_id

    # the oracle: the same scheme and thresholds through the Python API
    tx, _ = read_transactions(csv_path, customer="cust", timestamp="date")
    X = rfm_table(tx)
    scorer = RFMScorer(method="thresholds", frequency_col="orders_per_year",
                       monetary_col="spend_per_year",
                       thresholds={"R": [30, 90, 180, 365], "F": [2, 4, 8, 16],
                                   "M": [50, 100, 250, 600]})  # fmt: skip
    expected = RuleSegmenter(scheme="rfm11", scorer=scorer).fit(X).predict(X)
    assert (got.loc[expected.index, "segment"].to_numpy() == expected.astype(str)).all()
    quantile = RuleSegmenter(scheme="rfm11").fit(X).predict(X)
    assert (quantile != expected).any()  # the file changes the segments

    models = tmp_path / "models"
    result = runner.invoke(main, ["fit", *args, "--scheme", "rfm11", "--scorer", str(scorer_file),
                                  "--models-dir", str(models)])  # fmt: skip
    assert result.exit_code == 0, result.output
    saved = ScoringPipeline.load(models).rule_segmenter
    assert saved.scorer_.method == "thresholds"
    assert saved.scorer_.thresholds["M"] == [50, 100, 250, 600]


def test_a_bad_scorer_file_is_one_line_naming_the_file(workspace, tmp_path):
    bad = tmp_path / "scorer.toml"
    bad.write_text(SCORER_TOML.replace("[2, 4, 8, 16]", "[2, 4, 4, 16]"))
    args = [str(workspace / "orders.csv"), "--customer", "cust", "--timestamp", "date"]
    result = CliRunner().invoke(main, ["segment", *args, "--scorer", str(bad)])
    assert result.exit_code != 0
    assert "scorer.toml: thresholds['F'] must be finite and strictly increasing" in result.output
    bad.write_text(SCORER_TOML + 'colour = "red"\n')
    result = CliRunner().invoke(main, ["segment", *args, "--scorer", str(bad)])
    assert result.exit_code != 0
    assert "colour" in result.output
    assert "Traceback" not in result.output


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["features", "{csv}"], r"error: column\(s\) \['customer_id', 'timestamp'\] not found"),
        (["features", "{csv}", "--customer", "cust", "--timestamp", "amount", "--amount", ""],
         "error: column 'amount' holds numbers"),
        (["features", "{csv}", "--customer", "cust", "--timestamp", "amount"],
         r"error: column\(s\) \['amount'\] are mapped to more than one"),
        (["run", "{bad_config}"], r"error: unknown key\(s\) \['colour'\] in \[data\]"),
        (["segment", "{csv}", "--customer", "cust", "--timestamp", "date", "--scheme", "nope"],
         "error: unknown scheme 'nope'"),
        (["predict", "{csv}", "--customer", "cust", "--timestamp", "date", "--model", "{empty}"],
         "error: .*pipeline.json"),
    ],
)  # fmt: skip
def test_bad_input_exits_non_zero_with_one_line(workspace, tmp_path, args, message):
    import re

    bad = tmp_path / "bad.toml"
    bad.write_text((workspace / "small.toml").read_text().replace("[data]", "[data]\ncolour = 1"))
    (tmp_path / "empty").mkdir()
    filled = [
        a.format(csv=workspace / "orders.csv", bad_config=bad, empty=tmp_path / "empty")
        for a in args
    ]
    result = CliRunner().invoke(main, filled)
    assert result.exit_code == 1, result.output
    assert re.search(message, result.output), result.output
    assert "Traceback" not in result.output


def test_missing_file_is_a_usage_error(tmp_path):
    result = CliRunner().invoke(main, ["run", str(tmp_path / "nope.toml")])
    assert result.exit_code == 2
    assert "does not exist" in result.output


def test_help_lists_every_command():
    result = CliRunner().invoke(main, ["--help"])
    for command in ["run", "demo", "features", "segment", "fit", "predict", "compare"]:
        assert command in result.output


def test_degenerate_fit_is_one_plain_line_on_online_retail_daily(tmp_path, mlflow_store):
    """BG/NBD on Online Retail daily runs a -> 0: one line naming it, no raw warning."""
    import subprocess
    import sys

    from mlflow.tracking import MlflowClient

    config = tmp_path / "retail_daily.toml"
    config.write_text(
        'name = "retail_daily"\ncalibration_end = 2011-08-31\nobservation_end = 2011-12-09\n'
        'freq = "D"\nn_bootstrap = 0\nsample_size = 500\n'
        '[data]\nsource = "online_retail"\norder = "order_id"\n'
        '[models]\npurchase_models = ["bgnbd"]\nhorizon = 90\n'
        '[[segmentations]]\nname = "rf_grid"\nkind = "rules"\nscheme = "rf_grid"\n'
    )
    uri = mlflow_store(tmp_path / "mlflow.db")
    done = subprocess.run(
        [sys.executable, "-c", "from rfmml.cli import main; main()", "run", str(config),
         "-o", str(tmp_path / "out"), "--tracking-uri", uri],
        capture_output=True, text=True, timeout=600, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    lines = [line for line in done.stderr.splitlines() if "degenerate" in line]
    assert len(lines) == 1, done.stderr
    assert "BG/NBD fit on the calibration period is degenerate: a = " in lines[0]
    assert "penalizer" in lines[0] and "another purchase model" in lines[0]
    # no raw Python warning: no source path, no warning class
    assert ".py:" not in done.stderr and "Warning:" not in done.stderr, done.stderr
    client = MlflowClient(tracking_uri=uri)
    experiment = client.get_experiment_by_name("retail_daily")
    runs = client.search_runs([experiment.experiment_id], "tags.`rfmml.purchase_model` = 'bgnbd'")
    tagged = [r for r in runs if r.data.tags.get("rfmml.role") == "purchase_model"]
    assert len(tagged) == 1
    assert "a" in tagged[0].data.tags["rfmml.degenerate"].split(", ")
    assert tagged[0].data.tags["rfmml.degenerate_message"] == lines[0].split(": ", 1)[1]


@pytest.mark.parametrize("group", [None, "channel"])
def test_fit_saves_the_models_of_the_pandas_tables(group, tmp_path):
    """The command fits on the DuckDB tables' distinct rows: the models of the pandas path."""
    from rfmml.data import read_transactions, simulate_transactions
    from rfmml.features import btyd_summary, rfm_table
    from rfmml.models import BetaGeoNBD, GammaGamma
    from rfmml.segments import RuleSegmenter
    from rfmml.segments.persistence import load_segmenter

    tx = simulate_transactions(1_200, random_state=8)
    tx["channel"] = np.where(tx["customer_id"].to_numpy() % 3 == 0, "store", "web")
    tx.to_csv(tmp_path / "log.csv", index=False)
    args = [str(tmp_path / "log.csv"), "--freq", "D", "--scheme", "rfm11"]
    args += ["--models-dir", str(tmp_path / "models")] + (["--group", group] if group else [])
    result = CliRunner().invoke(main, ["fit", *args])
    assert result.exit_code == 0, result.output
    log, _ = read_transactions(tmp_path / "log.csv", group=group)
    summary = btyd_summary(log, freq="D", group=group)
    want = {
        "purchase_model": BetaGeoNBD().fit(summary).get_fitted_params(),
        "gamma_gamma": GammaGamma(zero_spend="exclude").fit(summary).get_fitted_params(),
    }
    for name, params in want.items():
        doc = json.loads((tmp_path / "models" / f"{name}.json").read_text())
        assert doc["params"] == pytest.approx(params, rel=1e-12), name
    rules = RuleSegmenter("rfm11").fit(rfm_table(log, group=group))
    saved = load_segmenter(tmp_path / "models" / "rule_segmenter.json")
    pd.testing.assert_frame_equal(saved.scorer_.edges_, rules.scorer_.edges_)
    assert saved.n_features_in_ == rules.n_features_in_
