"""Rolling-origin backtest on a log simulated from BG/NBD, where the truth is known."""

from __future__ import annotations

import mlflow
import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from rfmml.backtest import (
    backtest,
    backtest_origins,
    gbm_features,
    rank_models,
    record_backtest,
)
from rfmml.cli import main
from rfmml.config import load_config
from rfmml.data import simulate_transactions
from rfmml.errors import ConfigError
from rfmml.evaluation.metrics import BACKTEST_METRICS

BTYD = {"bgnbd", "mbgnbd", "pareto_nbd"}


@pytest.fixture(scope="module")
def sim_config(tmp_path_factory):
    tx = simulate_transactions(800, random_state=7)  # BG/NBD, CDNOW parameters, 78 weeks
    path = tmp_path_factory.mktemp("sim") / "tx.csv"
    tx.to_csv(path, index=False)
    return load_config(
        {
            "name": "sim",
            "calibration_end": "2020-10-01",
            "observation_end": "2021-06-30",
            "freq": "W",
            "data": {"source": str(path)},
            "models": {"purchase_models": ["bgnbd", "mbgnbd", "pareto_nbd"]},
            "segmentations": [{"name": "rf_grid", "kind": "rules", "scheme": "rf_grid"}],
        }
    )


@pytest.fixture(scope="module")
def result(sim_config):
    return backtest(sim_config, 2)


def test_origins_are_equally_spaced_and_end_at_the_config_split(sim_config):
    points = backtest_origins(sim_config, 3)
    holdout = sim_config.observation_end - sim_config.calibration_end
    assert points[-1] == (sim_config.calibration_end, sim_config.observation_end)
    assert all(end - start == holdout for start, end in points)
    gaps = {(b[0] - a[0]).days for a, b in zip(points, points[1:], strict=False)}
    assert gaps == {7 * (holdout.days // 3 // 7)}  # a third of the holdout, in whole weeks
    with pytest.raises(ConfigError, match="origins"):
        backtest_origins(sim_config, 0)


def test_long_table_and_models(result):
    table = result.table
    assert list(table.columns) == ["origin", "model", "metric", "value"]
    assert set(table["metric"]) <= set(BACKTEST_METRICS)
    first, last = sorted(table["origin"].unique())
    assert set(table.loc[table["origin"] == last, "model"]) == BTYD | {
        "naive", "gbm", "forecast", "history"
    }  # fmt: skip
    # gbm learns from the previous origin, so the first has none
    assert "gbm" not in set(table.loc[table["origin"] == first, "model"])
    assert any("first origin" in note for note in result.notes)


def test_bgnbd_family_beats_naive_on_simulated_bgnbd_data(result):
    mae = result.table[result.table["metric"] == "mae"].pivot(
        index="origin", columns="model", values="value"
    )
    for model in BTYD:
        assert (mae[model] < mae["naive"]).all(), mae
    assert result.champion in BTYD
    assert result.ranks.index[-1] in {"naive", "gbm"}


def test_btyd_totals_track_the_realised_curve(result):
    mape = result.table[result.table["metric"] == "tracking_mape"].set_index(["origin", "model"])
    last = max(result.table["origin"])
    # with 20 weeks of calibration every model is close to a straight line; with 39 the
    # dropout process shows and the BG/NBD curve bends with the realised one
    assert mape.loc[(last, "bgnbd"), "value"] < 0.5 * mape.loc[(last, "naive"), "value"]


def test_migration_forecast_scored_against_history(result):
    tvd = result.table[result.table["metric"] == "migration_tvd"]
    assert set(tvd["model"]) == {"forecast", "history"}
    assert tvd["value"].between(0, 1).all()
    fc = result.forecast
    assert fc is not None
    np.testing.assert_allclose(fc.probabilities.sum(axis=1), 1.0)
    at_risk = fc.entering("At Risk")
    assert (at_risk["segment"] != "At Risk").all()
    assert at_risk["probability"].is_monotonic_decreasing


def test_rank_models_by_hand():
    table = pd.DataFrame(
        {
            "origin": ["o1"] * 4 + ["o2"] * 2,
            "model": ["a", "b", "a", "b", "a", "b"],
            "metric": ["mae", "mae", "gini", "gini", "mae", "mae"],
            "value": [1.0, 2.0, 0.2, 0.9, 3.0, 3.0],
        }
    )
    ranks = rank_models(table)
    # mae o1: a 1, b 2; gini o1 (higher better): b 1, a 2; mae o2: tie 1.5 each
    assert ranks.loc["a", "mean_rank"] == pytest.approx((1 + 2 + 1.5) / 3)
    assert ranks.loc["b", "mean_rank"] == pytest.approx((2 + 1 + 1.5) / 3)


def test_gbm_features_use_only_the_past(sim_config):
    tx = simulate_transactions(50, random_state=1)
    at = pd.Timestamp("2020-06-01")
    customers = pd.Index(sorted(tx.loc[tx["timestamp"] <= at, "customer_id"].unique()))
    early = gbm_features(tx, at, customers, "W")
    later = gbm_features(tx[tx["timestamp"] < "2020-06-02"], at, customers, "W")
    pd.testing.assert_frame_equal(early, later)
    assert early.notna().all().all()


def test_record_backtest_writes_files_and_mlflow_runs(result, tmp_path, mlflow_store):
    uri = mlflow_store(tmp_path / "mlflow.db")
    recorded = record_backtest(result, output_dir=tmp_path / "out", tracking_uri=uri)
    written = pd.read_csv(recorded["files"]["backtest"])
    assert list(written.columns) == ["origin", "model", "metric", "value"]
    assert len(written) == len(result.table)
    assert recorded["files"]["figure"].stat().st_size > 0
    client = mlflow.MlflowClient(uri)
    parent = client.get_run(recorded["parent_run_id"])
    assert parent.data.tags["rfmml.champion"] == result.champion
    children = client.search_runs(
        [recorded["experiment_id"]],
        filter_string=f"tags.mlflow.parentRunId = '{recorded['parent_run_id']}'",
    )
    pairs = result.table[["origin", "model"]].drop_duplicates()
    assert len(children) == len(pairs)
    one = next(r for r in children if r.data.tags["rfmml.model"] == "bgnbd")
    table = result.table
    expected = table[
        (table["origin"] == one.data.tags["rfmml.origin"])
        & (table["model"] == "bgnbd")
        & (table["metric"] == "mae")
    ]
    assert one.data.metrics["mae"] == pytest.approx(expected["value"].iloc[0])


@pytest.mark.slow
def test_cli_backtest(sim_config, tmp_path, mlflow_store):
    path = tmp_path / "sim.toml"
    from rfmml.config import to_toml

    path.write_text(to_toml(sim_config))
    uri = mlflow_store(tmp_path / "mlflow.db")
    res = CliRunner().invoke(
        main,
        ["backtest", str(path), "--origins", "2", "-o", str(tmp_path / "bt"),
         "--tracking-uri", uri],
    )  # fmt: skip
    assert res.exit_code == 0, res.output
    assert "Champion" in res.output
    assert (tmp_path / "bt" / "backtest.csv").exists()
    bad = CliRunner().invoke(main, ["backtest", str(path), "--origins", "400"])
    assert bad.exit_code == 1 and "first origin" in bad.output
