"""rfmml refresh: state update, rescoring without refit, lists, history, drift, MLflow."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import duckdb
import pandas as pd
import pytest
from click.testing import CliRunner
from markupsafe import escape
from mlflow.tracking import MlflowClient

from rfmml.campaign import ScoringPipeline, read_predictions, scoring_frame
from rfmml.cli import main
from rfmml.data import read_transactions
from rfmml.errors import DataError
from rfmml.features import CustomerState, btyd_summary, rfm_table
from rfmml.models import BetaGeoNBD, GammaGamma
from rfmml.refresh import load_scoring_pipeline, refresh
from rfmml.segments import RuleSegmenter

FIT_END = pd.Timestamp("1998-02-28")


@pytest.fixture(scope="module")
def cdnow_parts(cdnow_tx):
    """CDNOW up to the fit date, then March, April (with late rows from March) and May 1998."""
    tx = cdnow_tx[["customer_id", "timestamp", "amount"]]
    ts = tx["timestamp"]
    march = tx[(ts > FIT_END) & (ts < "1998-04-01")]
    late = march.iloc[::10]  # a tenth of March arrives with April
    return {
        "fit": tx[ts <= FIT_END],
        "march": march.drop(late.index),
        "april": pd.concat([tx[(ts >= "1998-04-01") & (ts < "1998-05-01")], late]),
        "may": tx[(ts >= "1998-05-01") & (ts < "1998-06-01")],
    }


@pytest.fixture(scope="module")
def model_dir(cdnow_parts, tmp_path_factory):
    """A scoring pipeline saved the way rfmml run / rfmml demo save it."""
    tx = cdnow_parts["fit"]
    features, summary = rfm_table(tx), btyd_summary(tx, freq="W")
    pipeline = ScoringPipeline(
        rule_segmenter=RuleSegmenter("rf_grid").fit(features),
        bgnbd=BetaGeoNBD().fit(summary),
        gamma_gamma=GammaGamma(zero_spend="exclude").fit(summary),
        horizon=26,
        freq="W",
    )
    return pipeline.save(tmp_path_factory.mktemp("model"))


@pytest.fixture
def uri(tmp_path, mlflow_store) -> str:
    """An empty MLflow store in the test's folder."""
    return mlflow_store(tmp_path / "mlflow.db")


def test_refreshes_rescore_track_moves_and_history(cdnow_parts, model_dir, tmp_path, uri):
    path = tmp_path / "state.duckdb"
    with CustomerState.create(path) as state:
        state.update(cdnow_parts["fit"])
    pipeline = load_scoring_pipeline(model_dir)
    results = {}
    seen = cdnow_parts["fit"]
    for month in ("march", "april", "may"):
        out = tmp_path / month
        results[month] = result = refresh(cdnow_parts[month], path, model_dir, out,
                                          tracking_uri=uri)  # fmt: skip
        seen = pd.concat([seen, cdnow_parts[month]])
        # the same table a scoring of the whole log gives, with the saved models (no refit)
        expected = pipeline.predict(scoring_frame(rfm_table(seen), btyd_summary(seen, freq="W")))
        pd.testing.assert_frame_equal(result.predictions, expected)
        table = result.movements
        assert (table["before"] + table["entered"] - table["left"] == table["now"]).all()
        assert table["now"].sum() == seen["customer_id"].nunique()
        for segment, row in table.iterrows():
            slug = re.sub(r"[^a-z0-9]+", "_", segment.lower().replace("'", "")).strip("_")
            entered = pd.read_csv(out / "changes" / f"entered_{slug}.csv")
            assert len(entered) == row["entered"]
        assert len(read_predictions(out / "predictions.parquet")) == len(expected)
        page = result.files["report"].read_text()
        assert result.files["report"] == out / "report.html"
        assert f"refresh {result.observation_end.date()}" in page
        assert all(str(escape(segment)) in page for segment in table.index)

    assert results["march"].drift.baseline is None  # the first refresh sets the baseline
    assert results["april"].update.late_rows > 0
    may = results["may"].drift
    assert may.baseline == results["march"].observation_end
    assert may.periods > 0 and may.predicted_purchases > 0 and may.actual_purchases > 0
    changes = results["may"].changes["change"]
    in_both = results["may"].movements["before"].sum() - (changes == "gone").sum()
    assert may.segment_changed_share == pytest.approx((changes == "moved").sum() / in_both)

    with CustomerState.open(path, read_only=True) as state:
        history = state.segment_history()
        current = state.current_segments()
        log = state.refreshes()
    last = results["may"].predictions["segment"].astype(str)
    assert current.sort_index().to_dict() == last.sort_index().to_dict()
    moved_in_may = results["may"].changes
    closed = history[history["valid_to"] == results["may"].observation_end]
    assert set(closed["customer_id"]) == set(
        moved_in_may.loc[moved_in_may["change"] != "new", "customer_id"]
    )
    assert len(log) == 3 and log["refit_advised"].dtype == bool

    client = MlflowClient(tracking_uri=uri)
    experiment = client.get_experiment_by_name("rfmml-refresh")
    runs = client.search_runs([experiment.experiment_id], order_by=["attributes.start_time"])
    assert len(runs) == 3
    last_run = runs[-1].data
    assert last_run.tags["rfmml.refit_advised"] == str(may.refit_advised).lower()
    assert last_run.tags["rfmml.refit_reason"] == may.reason
    assert last_run.metrics["predicted_purchases"] == pytest.approx(may.predicted_purchases)
    artifacts = {a.path for a in client.list_artifacts(runs[-1].info.run_id)}
    assert "report.html" in artifacts


def test_refit_is_advised_when_the_tolerance_is_exceeded(cdnow_parts, model_dir, tmp_path):
    path = tmp_path / "state.duckdb"
    with CustomerState.create(path) as state:
        state.update(cdnow_parts["fit"])
    refresh(cdnow_parts["march"], path, model_dir, tmp_path / "a", log_to_mlflow=False)
    strict = refresh(cdnow_parts["april"], path, model_dir, tmp_path / "b",
                     segment_tolerance=0.0, purchase_tolerance=0.0, min_expected_purchases=0,
                     log_to_mlflow=False)  # fmt: skip
    assert strict.drift.refit_advised
    assert strict.drift.reason.startswith("refit advised: ")
    assert "changed segment (tolerance 0%)" in strict.drift.reason


def test_cli_refresh_and_bad_batches(cdnow_parts, model_dir, tmp_path, uri, monkeypatch):
    runner = CliRunner()
    for month in ("fit", "march"):
        cdnow_parts[month].to_csv(tmp_path / f"{month}.csv", index=False)
    state = str(tmp_path / "state.duckdb")
    common = ["--state", state, "--model", str(model_dir), "--tracking-uri", uri]
    first = runner.invoke(main, ["refresh", str(tmp_path / "fit.csv"), *common,
                                 "-o", str(tmp_path / "day1")])  # fmt: skip
    assert first.exit_code == 0, first.output
    assert "no refit needed yet: first refresh" in first.output
    result = runner.invoke(main, ["refresh", str(tmp_path / "march.csv"), *common,
                                  "-o", str(tmp_path / "day2")])  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "Segments as of 1998-03-31" in result.output
    assert (tmp_path / "day2" / "changes").is_dir()
    monkeypatch.chdir(tmp_path)  # default output folder: by date, below the working directory
    again = runner.invoke(main, ["refresh", str(tmp_path / "march.csv"), *common])
    assert again.exit_code == 0, again.output
    assert "applied before: the state is unchanged" in again.output
    assert "into rfmml-refresh/1998-03-31/" in again.output
    assert Path("rfmml-refresh/1998-03-31/predictions.parquet").is_file()

    with CustomerState.open(state, read_only=True) as st:
        before = st.tables()
    bad = cdnow_parts["may"].rename(columns={"amount": "value"})
    bad.to_csv(tmp_path / "bad.csv", index=False)
    result = runner.invoke(main, ["refresh", str(tmp_path / "bad.csv"), *common])
    assert result.exit_code == 1
    assert re.fullmatch(r"error: column\(s\) \['amount'\] not found in .*\n", result.output)
    with CustomerState.open(state, read_only=True) as st:
        for name, table in st.tables().items():
            pd.testing.assert_frame_equal(table, before[name])


def test_cli_refresh_says_what_cleaning_removed_from_the_batch(
    cdnow_parts, model_dir, tmp_path, uri
):
    """Rows a batch loses (no id, no date, a return) are counted on the terminal and in the
    folder's cleaning report, not dropped without a word."""
    march = cdnow_parts["march"].head(300).astype({"customer_id": str, "amount": str})
    march.iloc[0, 0] = ""  # no customer id
    march.iloc[1, 1] = None  # no date
    march.iloc[2, 2] = "-12.5"  # a return
    march.to_csv(tmp_path / "march.csv", index=False)
    out = tmp_path / "day"
    args = ["refresh", str(tmp_path / "march.csv"), "--state", str(tmp_path / "state.duckdb"),
            "--model", model_dir, "--tracking-uri", uri, "-o", out]  # fmt: skip
    result = CliRunner().invoke(main, [str(a) for a in args])
    assert result.exit_code == 0, result.output
    for line in ("rows in: 300", "removed 1: missing customer_id",
                 "removed 1: missing timestamp", "rows out: 297",
                 "removed 1: negative amount (return or cancellation)"):  # fmt: skip
        assert line in result.output, result.output
    assert "added 297 rows" in result.output
    cleaning = json.loads((out / "cleaning_report.json").read_text())
    assert cleaning["rows_in"] == 300 and cleaning["rows_out"] == 297
    assert cleaning["removed"]["missing customer_id"] == 1
    page = (out / "report.html").read_text()
    assert "No cleaning report" not in page and "missing customer_id" in page


def test_cli_refresh_reads_a_european_daily_file(cdnow_parts, model_dir, tmp_path, uri):
    """A day of 05/03/1998 only (day-first, ambiguous on its own), semicolons and decimal
    commas: --dayfirst and --decimal reach the batch, as they reach features and fit."""
    tx = cdnow_parts["march"]
    day = tx[tx["timestamp"] == "1998-03-05"]
    cdnow_parts["fit"].to_csv(tmp_path / "fit.csv", index=False)
    european = day.assign(timestamp=day["timestamp"].dt.strftime("%d/%m/%Y"))
    european.to_csv(tmp_path / "day.csv", index=False, sep=";", decimal=",")
    state = tmp_path / "state.duckdb"
    with CustomerState.create(state) as st:  # the state as a first refresh leaves it
        st.update(tmp_path / "fit.csv")
    common = ["--state", state, "--model", model_dir, "--tracking-uri", uri]
    args = ["refresh", tmp_path / "day.csv", *common, "-o", tmp_path / "d2", "--dayfirst",
            "--decimal", ","]  # fmt: skip
    result = CliRunner().invoke(main, [str(a) for a in args])
    assert result.exit_code == 0, result.output
    assert f"added {len(day)} rows" in result.output
    with CustomerState.open(state, read_only=True) as st:
        assert st.last_timestamp == pd.Timestamp("1998-03-05")
        fit, _ = read_transactions(tmp_path / "fit.csv")
        read, _ = read_transactions(tmp_path / "day.csv", dayfirst=True, decimal=",")
        assert read["amount"].sum() == pytest.approx(day["amount"].sum())
        both = pd.concat([fit, read], ignore_index=True)
        pd.testing.assert_frame_equal(st.rfm_table(), rfm_table(both))


def test_refresh_with_the_models_of_rfmml_fit(cdnow_parts, tmp_path):
    cdnow_parts["fit"].to_csv(tmp_path / "fit.csv", index=False)
    runner = CliRunner()
    fitted = runner.invoke(main, ["fit", str(tmp_path / "fit.csv"), "--models-dir",
                                  str(tmp_path / "models")])  # fmt: skip
    assert fitted.exit_code == 0, fitted.output
    result = refresh(cdnow_parts["fit"], tmp_path / "s.duckdb", tmp_path / "models",
                     tmp_path / "out", log_to_mlflow=False)  # fmt: skip
    # `rfmml fit` saves a whole scoring pipeline (rule scheme included): segments, a
    # first snapshot with every customer "new", and the report
    assert result.predictions["segment"].notna().all()
    assert result.predictions["expected_purchases"].notna().all()
    assert (result.movements["entered"] == result.movements["now"]).all()
    assert result.files["report"].exists()


def test_a_folder_without_models_is_refused(tmp_path):
    with pytest.raises(ValueError, match="holds no saved models"):
        load_scoring_pipeline(tmp_path)


def test_cli_refresh_on_a_locked_state_says_so_in_one_line(cdnow_parts, model_dir, tmp_path):
    import subprocess
    import sys

    path = tmp_path / "state.duckdb"
    with CustomerState.create(path) as state:
        state.update(cdnow_parts["fit"])
    cdnow_parts["march"].to_csv(tmp_path / "march.csv", index=False)
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys, duckdb; c = duckdb.connect(sys.argv[1]); "
         "print('open', flush=True); sys.stdin.read()", str(path)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert holder.stdout.readline().strip() == "open"
        result = CliRunner().invoke(main, ["refresh", str(tmp_path / "march.csv"), "--state",
                                           str(path), "--model", str(model_dir)])  # fmt: skip
    finally:
        holder.communicate("")
    assert result.exit_code == 1
    assert re.fullmatch(r"error: state '.*' is locked by another process; .*\n", result.output)


def test_a_first_batch_that_fails_leaves_no_state_file(model_dir, tmp_path):
    bad = pd.DataFrame({"customer_id": [1], "when": ["2024-01-01"], "amount": [1.0]})
    with pytest.raises(ValueError, match=r"column\(s\) \['timestamp'\] not found"):
        refresh(bad, tmp_path / "new.duckdb", model_dir, tmp_path / "out", log_to_mlflow=False)
    assert not (tmp_path / "new.duckdb").exists()


def test_cli_refresh_nets_returns_that_arrive_with_a_later_batch(
    cdnow_parts, model_dir, tmp_path, uri
):
    fit = cdnow_parts["fit"]
    bought = fit[fit["amount"] > 0].sample(200, random_state=1)
    returns = bought.assign(amount=-bought["amount"] / 2,
                            timestamp=bought["timestamp"] + pd.Timedelta(days=1))  # fmt: skip
    days = {"day1": fit, "day2": pd.concat([cdnow_parts["march"], returns])}
    for name, frame in days.items():
        frame.to_csv(tmp_path / f"{name}.csv", index=False)
    pd.concat(days.values()).to_csv(tmp_path / "all.csv", index=False)
    state = tmp_path / "state.duckdb"
    for name in days:
        result = CliRunner().invoke(main, ["refresh", str(tmp_path / f"{name}.csv"), "--state",
                                           str(state), "--model", str(model_dir),
                                           "--negative-amounts", "net", "-o",
                                           str(tmp_path / name), "--tracking-uri",
                                           uri])  # fmt: skip
        assert result.exit_code == 0, result.output
    whole, report = read_transactions(tmp_path / "all.csv", negative_amounts="net")
    assert report.merged["return netted against an earlier purchase"] == 200
    with CustomerState.open(state, read_only=True) as st:
        assert st.cleaning["negative_amounts"] == "net"
        pd.testing.assert_frame_equal(st.rfm_table(), rfm_table(whole))
        pd.testing.assert_frame_equal(st.btyd_summary(freq="W"), btyd_summary(whole, freq="W"))
        assert st.cleaning_report().merged == report.merged


def test_a_refresh_within_one_period_of_the_baseline_says_so(cdnow_parts, model_dir, tmp_path, uri):
    """Weekly models, daily refreshes: the day after the baseline no purchase drift can be
    measured yet, and the reason says that (not that this is the first refresh)."""
    path = tmp_path / "state.duckdb"
    with CustomerState.create(path) as state:
        state.update(cdnow_parts["fit"])
    march = cdnow_parts["march"]
    days = march["timestamp"].dt.normalize()
    first, second = pd.Timestamp("1998-03-03"), pd.Timestamp("1998-03-04")  # Tue, Wed
    one = refresh(march[days == first], path, model_dir, tmp_path / "1", tracking_uri=uri)
    assert one.drift.baseline is None
    assert one.drift.reason.startswith("no refit needed yet: first refresh")
    two = refresh(march[days == second], path, model_dir, tmp_path / "2", tracking_uri=uri)
    assert two.drift.baseline == one.observation_end and two.drift.periods == 0
    assert two.drift.reason.startswith(
        f"no refit needed yet: less than one period (W) since the baseline {first.date()}"
    )


def _european(frame: pd.DataFrame, path: Path, date_format: str = "%d/%m/%Y", **csv) -> Path:
    """``frame`` as a shop writes it: dates as text (day-first by default), semicolons and
    decimal commas unless ``csv`` says otherwise."""
    written = frame.assign(timestamp=frame["timestamp"].dt.strftime(date_format))
    written.to_csv(path, index=False, **({"sep": ";", "decimal": ","} | csv))
    return path


def _day(cdnow_parts, date: str) -> pd.DataFrame:
    march = cdnow_parts["march"]
    return march[march["timestamp"] == date]


@pytest.fixture(scope="module")
def shared_uri(tmp_path_factory, mlflow_store) -> str:
    """One MLflow store for the tests below."""
    return mlflow_store(tmp_path_factory.mktemp("mlflow") / "mlflow.db")


@pytest.fixture(scope="module")
def first_day(cdnow_parts) -> pd.DataFrame:
    """The fit period of 300 customers: a small first batch."""
    fit = cdnow_parts["fit"]
    return fit[fit["customer_id"].isin(fit["customer_id"].unique()[:300])]


def test_cli_refresh_remembers_read_options_and_an_explicit_one_wins(
    cdnow_parts, first_day, model_dir, shared_uri, tmp_path
):
    """Day 1 says --dayfirst --separator ; --decimal , and the state keeps them: day 2, a
    file of 05/03/1998 dates only (ambiguous on its own), needs no option. Day 3 is written
    month-first with commas and dots: the options given win, are reported on stderr in one
    line, and are the ones kept."""
    day1 = _european(first_day, tmp_path / "day1.csv")
    day2 = _european(_day(cdnow_parts, "1998-03-05"), tmp_path / "day2.csv")
    day3 = _european(_day(cdnow_parts, "1998-03-06"), tmp_path / "day3.csv", "%m/%d/%Y",
                     sep=",", decimal=".")  # fmt: skip
    state = tmp_path / "state.duckdb"
    common = ["--state", state, "--model", model_dir, "--tracking-uri", shared_uri]
    runner = CliRunner()

    def run(path: Path, *options: str) -> Any:
        args = ["refresh", path, *common, "-o", tmp_path / path.stem, *options]
        result = runner.invoke(main, [str(a) for a in args])
        assert result.exit_code == 0, result.output
        return result

    european = {
        "dayfirst": True,
        "encoding": None,
        "separator": ";",
        "decimal": ",",
        "status": None,
        "exclude_status": None,
        "currency": None,
        "currency_column": None,
        "normalize_ids": None,
    }
    first = run(day1, "--dayfirst", "--separator", ";", "--decimal", ",")
    assert "options" not in first.stderr
    with CustomerState.open(state, read_only=True) as st:
        assert st.read_options == european
        (stored,) = st.connection.execute(
            "SELECT value FROM rfmml_meta WHERE key = 'read_options'"
        ).fetchall()[0]
        assert json.loads(stored) == european  # plain JSON in the state's meta table

    second = run(day2)  # no option: the stored ones
    assert "options" not in second.stderr
    with CustomerState.open(state, read_only=True) as st:
        assert st.last_timestamp == pd.Timestamp("1998-03-05")  # not 3 May
        both = [read_transactions(p, dayfirst=True, separator=";", decimal=",")[0]
                for p in (day1, day2)]  # fmt: skip
        pd.testing.assert_frame_equal(st.rfm_table(), rfm_table(pd.concat(both)))

    third = run(day3, "--monthfirst", "--separator", ",", "--decimal", ".")
    changed = [line for line in third.stderr.splitlines() if "options changed" in line]
    assert changed == [
        "options changed from those stored in the state: dayfirst True -> False, separator "
        "';' -> ',', decimal ',' -> '.'; the batch is read with the new values, which the "
        "state now keeps"
    ]
    with CustomerState.open(state, read_only=True) as st:
        assert st.last_timestamp == pd.Timestamp("1998-03-06")  # not 3 June
        assert st.read_options == {"dayfirst": False, "encoding": None, "separator": ",",
                                   "decimal": ".", "status": None,
                                   "exclude_status": None, "currency": None,
                                   "currency_column": None, "normalize_ids": None}  # fmt: skip
        both.append(read_transactions(day3, dayfirst=False)[0])
        pd.testing.assert_frame_equal(st.rfm_table(), rfm_table(pd.concat(both)))


def test_refresh_notes_a_changed_mapping_and_refuses_a_changed_returns_policy(
    cdnow_parts, first_day, model_dir, tmp_path
):
    """Python: a batch whose columns are named differently is read with the names given,
    which the state keeps (result.notes says so); the returns policy is fixed at creation."""
    path = tmp_path / "state.duckdb"
    first = refresh(first_day, path, model_dir, tmp_path / "1", log_to_mlflow=False)
    assert first.notes == [] and first.update.read_options["dayfirst"] is None
    renamed = _day(cdnow_parts, "1998-03-05").rename(columns={"customer_id": "client"})
    with pytest.raises(DataError, match=r"^negative_amounts='net': the state .* was created "
                       r"with negative_amounts='drop'"):  # fmt: skip
        refresh(renamed, path, model_dir, tmp_path / "2", log_to_mlflow=False,
                create_options={"customer": "client", "negative_amounts": "net"})  # fmt: skip
    second = refresh(renamed, path, model_dir, tmp_path / "2", log_to_mlflow=False,
                     create_options={"customer": "client"})  # fmt: skip
    assert second.notes == [
        "options changed from those stored in the state: customer column 'customer_id' -> "
        "'client'; the batch is read with the new values, which the state now keeps"
    ]
    with CustomerState.open(path, read_only=True) as st:
        assert st.schema.customer == "client" and st.n_batches == 2
        whole = pd.concat([first_day, _day(cdnow_parts, "1998-03-05")])
        pd.testing.assert_frame_equal(st.rfm_table(), rfm_table(whole))


def test_a_state_without_stored_read_options_refreshes_as_before(
    cdnow_parts, first_day, model_dir, shared_uri, tmp_path
):
    """A state written before read options were stored (no 'read_options' entry) opens and
    refreshes with the options given, says nothing about changes, then keeps them."""
    path = tmp_path / "old.duckdb"
    first_day.to_csv(tmp_path / "first.csv", index=False)
    with CustomerState.create(path) as st:
        st.update(tmp_path / "first.csv")
    con = duckdb.connect(str(path))  # what rfmml wrote before it stored read options
    con.execute("DELETE FROM rfmml_meta WHERE key = 'read_options'")
    con.close()
    with CustomerState.open(path, read_only=True) as st:
        assert st.read_options is None
    day = _european(_day(cdnow_parts, "1998-03-05"), tmp_path / "day.csv")
    args = ["refresh", day, "--state", path, "--model", model_dir, "--tracking-uri",
            shared_uri, "-o", tmp_path / "out", "--dayfirst", "--separator", ";",
            "--decimal", ","]  # fmt: skip
    result = CliRunner().invoke(main, [str(a) for a in args])
    assert result.exit_code == 0, result.output
    assert "options" not in result.stderr
    read, _ = read_transactions(day, dayfirst=True, separator=";", decimal=",")
    whole = pd.concat([read_transactions(tmp_path / "first.csv")[0], read])
    with CustomerState.open(path, read_only=True) as st:
        assert st.last_timestamp == pd.Timestamp("1998-03-05")
        pd.testing.assert_frame_equal(st.rfm_table(), rfm_table(whole))
        assert st.read_options == {"dayfirst": True, "encoding": None, "separator": ";",
                                   "decimal": ",", "status": None,
                                   "exclude_status": None, "currency": None,
                                   "currency_column": None, "normalize_ids": None}  # fmt: skip
