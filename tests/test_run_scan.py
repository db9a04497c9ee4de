"""`rfmml run` on a file source keeps the log in DuckDB and writes what the pandas path writes.

Each log (CDNOW, a slice of the raw Online Retail line items, a simulated
log; Parquet and CSV copies) is run once through the default path (the
cleaned log held by DuckDB, ``[data] engine = "duckdb"``) and once through the
pandas path (``[data] engine = "pandas"``: the whole log in one pandas frame),
and the files are compared column by column.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

import matplotlib.pyplot as plt
import mlflow
import numpy as np
import pandas as pd
import pytest
from mlflow.data.pandas_dataset import from_pandas

from rfmml.campaign import write_predictions
from rfmml.config import load_config
from rfmml.data import (
    ScannedLog,
    load_cdnow,
    online_retail_path,
    read_transactions,
    scan_transactions,
    simulate_transactions,
)
from rfmml.errors import DataError
from rfmml.evaluation import repeat_transaction_tracking
from rfmml.features import btyd_summary
from rfmml.models import BetaGeoNBD
from rfmml.pipeline import Evaluation, evaluate, run_experiment
from rfmml.report import segments_by_period

RTOL = 1e-9
#: What both runs write, compared column by column (segments_by_period.csv: revenue sums
#: of the report, summed by DuckDB on one path and by pandas on the other, also to RTOL).
COMPARED = ("predictions.csv", "model_metrics.csv", "model_comparison.csv", "comparison.csv",
            "tracking.csv", "transitions_counts.csv", "segments_by_period.csv")  # fmt: skip

_CDNOW = {
    "calibration_end": "1997-09-30",
    "observation_end": "1998-06-30",
    "freq": "W",
    "data": {"sample_customers": 1500},
    "models": {"purchase_models": ["bgnbd", "pareto_nbd"], "horizon": 26},
}
_RETAIL = {
    "calibration_end": "2011-08-31",
    "observation_end": "2011-12-09",
    "freq": "D",
    "data": {
        "customer": "CustomerID",
        "timestamp": "InvoiceDate",
        "quantity": "Quantity",
        "price": "UnitPrice",
        "order": "InvoiceNo",
        "cancellation_prefix": "C",
        "group": "Country",
    },  # fmt: skip
    "models": {"purchase_models": ["bgnbd"], "horizon": 90},
}
_SIMULATED = {
    "calibration_end": "2020-09-30",
    "observation_end": "2021-06-30",
    "freq": "M",
    "data": {"amount": ""},  # no amounts: recency and frequency only
    "primary_metric": "buy_again_auc",
    "models": {"purchase_models": ["bgnbd"], "horizon": 6},
}


def _write_logs(folder: Path) -> dict[str, tuple[Path, dict[str, Any]]]:
    cdnow = load_cdnow()
    raw = pd.read_parquet(online_retail_path())
    # whole histories of one customer in 25 (about 20k line items), plus rows without a customer
    retail = raw[
        (raw["CustomerID"] % 25 == 0) | raw.index.isin(raw.index[raw["CustomerID"].isna()][:300])
    ]
    retail = retail.reset_index(drop=True)
    simulated = simulate_transactions(800, random_state=3, observation_days=600)
    logs = {}
    simulated = simulated.drop(columns="amount")
    for name, frame, config in (("cdnow", cdnow, _CDNOW), ("retail", retail, _RETAIL),
                                ("simulated", simulated, _SIMULATED)):  # fmt: skip
        parquet, csv = folder / f"{name}.parquet", folder / f"{name}.csv"
        frame.to_parquet(parquet, index=False)
        frame.to_csv(csv, index=False)
        logs[f"{name}_parquet"] = (parquet, config)
        logs[f"{name}_csv"] = (csv, config)
    return logs


#: Run end to end on the DuckDB path (files and MLflow runs); everywhere else the
#: evaluation's tables are written with the functions ``record`` uses (its figures, drawn
#: alike on both paths, would cost most of the time).
RECORDED = "cdnow_parquet"
CASES = ["cdnow_parquet", "cdnow_csv", "retail_parquet", "retail_csv", "simulated_parquet"]


def _config(name: str, source: Path, settings: dict[str, Any], engine: str) -> Any:
    data = {**settings["data"], "source": str(source), "engine": engine}
    return load_config({
        "name": f"scan_{name}", "random_state": 0, "n_bootstrap": 1, "sample_size": 300,
        **{k: v for k, v in settings.items() if k != "data"}, "data": data,
        "segmentations": [{"name": "rf_grid", "kind": "rules", "scheme": "rf_grid"}],
    })  # fmt: skip


def _write_tables(ev: Evaluation, out: Path) -> None:
    """The tables of :func:`record`, written as it writes them (no figures, no MLflow)."""
    assert ev.models is not None and ev.scoring is not None and ev.comparison is not None
    out.mkdir(parents=True)
    write_predictions(ev.scoring.predictions, out, fingerprints={}, formats=("csv",))
    ev.comparison.to_csv(out / "comparison.csv")
    ev.models.holdout_metrics.to_csv(out / "model_metrics.csv")
    ev.models.comparison.to_csv(out / "model_comparison.csv")
    if len(ev.models.tracking):
        ev.models.tracking.to_csv(out / "tracking.csv")
    if ev.transitions is not None:
        ev.transitions.matrix().to_csv(out / "transitions_counts.csv")
    # the report's table (build_report's call): by pandas, or of a ScannedLog in DuckDB
    periods = segments_by_period(ev.log, ev.scoring.predictions)
    periods.to_csv(out / "segments_by_period.csv", index=False)


@pytest.fixture(scope="module")
def runs(tmp_path_factory, mlflow_store) -> dict[str, dict[str, Any]]:
    """Per log and engine: (the evaluation, its output folder, the recorded result or None)."""
    folder = tmp_path_factory.mktemp("scan_logs")
    logs = _write_logs(folder)
    store = mlflow_store(tmp_path_factory.mktemp("mlflow") / "mlflow.db")
    previous = os.environ.pop("MLFLOW_TRACKING_URI", None)
    out: dict[str, dict[str, Any]] = {}
    try:
        for name in CASES:
            source, settings = logs[name]
            out[name] = {}
            for engine in ("duckdb", "pandas"):
                cfg, target = _config(name, source, settings, engine), folder / name / engine
                if name == RECORDED and engine == "duckdb":
                    result = run_experiment(cfg, output_dir=target, tracking_uri=store)
                    out[name][engine] = (result.evaluation, target, result)
                    continue
                ev = evaluate(cfg)
                try:
                    _write_tables(ev, target)
                    ev.log_counts()  # counted (and kept) while the log is open
                finally:
                    ev.close()
                    plt.close("all")
                out[name][engine] = (ev, target, None)
    finally:
        if previous is not None:
            os.environ["MLFLOW_TRACKING_URI"] = previous
    return out


def _assert_same_table(got: pd.DataFrame, want: pd.DataFrame, what: str) -> None:
    assert list(got.columns) == list(want.columns), what
    assert len(got) == len(want), what
    for column in want.columns:
        a, b = got[column], want[column]
        if pd.api.types.is_float_dtype(b) and pd.api.types.is_float_dtype(a):
            np.testing.assert_allclose(a.to_numpy(), b.to_numpy(), rtol=RTOL, atol=1e-12,
                                       err_msg=f"{what}: {column}")  # fmt: skip
        else:
            pd.testing.assert_series_equal(a, b, check_names=False, obj=f"{what}: {column}")


@pytest.mark.parametrize("name", CASES)
def test_same_files_as_the_pandas_path(runs, name):
    (scan, scan_out, _), (ref, ref_out, _) = runs[name]["duckdb"], runs[name]["pandas"]
    compared = 0
    for file in COMPARED:
        path = ref_out / file
        if not path.exists():
            assert not (scan_out / file).exists(), file
            continue
        got, want = pd.read_csv(scan_out / file), pd.read_csv(path)
        _assert_same_table(got, want, f"{name}/{file}")
        compared += 1
    assert compared >= 6
    assert scan.report.to_dict() == ref.report.to_dict()
    assert scan.data_fingerprint == ref.data_fingerprint
    assert scan.log_counts() == ref.log_counts()


@pytest.mark.parametrize("name", CASES)
def test_log_stays_in_duckdb_and_is_closed(runs, name):
    scan, ref = runs[name]["duckdb"][0], runs[name]["pandas"][0]
    assert isinstance(scan.log, ScannedLog) and isinstance(ref.log, pd.DataFrame)
    assert scan.log.n_pandas_copies == 0  # no stage built the whole log as one pandas frame
    assert scan._frame is None  # nor read Evaluation.transactions
    assert scan._spilled is not None and not scan._spilled.exists()  # its file removed
    with pytest.raises(ValueError, match="closed"):
        scan.transactions  # noqa: B018


def test_logged_data_statistics_are_those_of_the_log(runs):
    (_, _, result), (ref, _, _) = runs[RECORDED]["duckdb"], runs[RECORDED]["pandas"]
    client = mlflow.MlflowClient(tracking_uri=result.tracking_uri)
    run = client.get_run(result.parent_run_id)
    rows, customers = len(ref.log), ref.log["customer_id"].nunique()  # the pandas frame
    assert customers == 1500
    params = {k: v for k, v in run.data.params.items() if k.startswith("data_")}
    assert params == {"data_rows": str(rows), "data_customers": str(customers)}
    assert run.data.metrics["data_rows"] == rows
    assert run.data.metrics["data_customers"] == customers
    dataset = run.inputs.dataset_inputs[0].dataset
    assert json.loads(dataset.profile) == {"num_rows": rows, "num_elements": rows * 3}
    assert dataset.digest == ref.data_fingerprint[7:23]
    want = from_pandas(ref.log, source="x", digest="x").to_dict()["schema"]
    assert dataset.schema == want  # the schema of the whole frame, from its first rows


def test_evaluate_gives_transactions_until_closed(runs):
    source = runs["simulated_parquet"]["duckdb"][0].config.data.source
    cfg = _config("sim", Path(source), _SIMULATED, "duckdb")
    ev = evaluate(cfg)
    try:
        frame = ev.transactions  # read on first access, kept
        assert frame is ev.transactions and ev.log.n_pandas_copies == 1
        assert len(frame) == ev.log_counts()[0]
    finally:
        ev.close()
    assert ev.transactions is frame  # kept after the log is closed


@pytest.mark.parametrize("freq", ["D", "W", "M"])
def test_repeat_tracking_counted_in_duckdb(runs, freq):
    """The tracking table of a ScannedLog (counts by SQL) equals the pandas one, per period."""
    source = runs["retail_parquet"]["duckdb"][0].config.data.source
    options = {"customer": "CustomerID", "timestamp": "InvoiceDate", "quantity": "Quantity",
               "price": "UnitPrice", "order": "InvoiceNo", "group": "Country"}  # fmt: skip
    log, _ = scan_transactions(source, **options)
    try:
        frame = read_transactions(source, **options)[0]
        model = BetaGeoNBD().fit(btyd_summary(frame, "2011-08-31", freq))
        for keys in (["customer_id"], ["customer_id", "Country"]):
            args = ({"bgnbd": model}, "2011-08-31", "2011-12-09")
            got = repeat_transaction_tracking(log, *args, freq=freq, keys=keys)
            want = repeat_transaction_tracking(frame, *args, freq=freq, keys=keys)
            pd.testing.assert_frame_equal(got, want, check_exact=True)
            assert got.attrs == want.attrs
        assert log.n_pandas_copies == 0
    finally:
        log.close()


def test_failed_run_closes_the_log(runs, tmp_path, monkeypatch):
    """A run that fails after loading leaves no DuckDB log or temporary file behind."""
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))  # where the log's file goes
    source = runs["simulated_parquet"]["duckdb"][0].config.data.source
    settings = {**_SIMULATED, "calibration_end": "2019-06-30"}  # before the first purchase
    cfg = _config("fails", Path(source), settings, "duckdb")
    with pytest.raises(DataError, match="no transaction on or before calibration_end"):
        run_experiment(cfg, output_dir=tmp_path / "out", tracking_uri=f"sqlite:///{tmp_path}/db")
    assert not list(tmp_path.glob("rfmml-run-*"))
