"""The rfmml command on exports it has never seen: real files, one-line errors."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from click.testing import CliRunner

from rfmml.cli import main
from rfmml.data import online_retail_path

RAW_RETAIL = online_retail_path()  # the raw UCI export: 541,909 invoice lines
LINES = ["--customer", "CustomerID", "--timestamp", "InvoiceDate", "--order", "InvoiceNo",
         "--quantity", "Quantity", "--price", "UnitPrice",
         "--cancellation-prefix", "C"]  # fmt: skip


@pytest.fixture(scope="module")
def retail_lines(tmp_path_factory):
    """Invoice lines of 200 real Online Retail customers: float ids, 'C' cancellations."""
    folder = tmp_path_factory.mktemp("lines")
    raw = pd.read_parquet(RAW_RETAIL)
    ids = raw["CustomerID"].dropna().drop_duplicates().iloc[:200]
    lines = raw[raw["CustomerID"].isin(ids)]
    lines.to_parquet(folder / "lines.parquet")
    european = lines.assign(
        InvoiceDate=lines["InvoiceDate"].dt.strftime("%d/%m/%Y %H:%M"),
        CustomerID=lines["CustomerID"].astype("Int64"),  # a shop export writes 12347
    )
    european.to_csv(folder / "lines.csv", sep=";", index=False, encoding="cp1252")
    return folder


def invoke(*args: object) -> object:
    return CliRunner().invoke(main, [str(a) for a in args])


def one_line_error(result: object, pattern: str) -> None:
    import re

    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output
    errors = [line for line in result.output.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1 and re.search(pattern, errors[0]), result.output


def test_line_items_with_day_first_dates_semicolons_and_cp1252(retail_lines, tmp_path):
    """4 + 1 + 10: a European line-item export loads like the Parquet original."""
    out_csv, out_parquet = tmp_path / "f_csv.parquet", tmp_path / "f_parquet.parquet"
    result = invoke("features", retail_lines / "lines.csv", *LINES, "--encoding", "cp1252",
                    "-o", out_csv)  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "merged  " in result.output and "order lines summed" in result.output
    result = invoke("features", retail_lines / "lines.parquet", *LINES, "-o", out_parquet)
    assert result.exit_code == 0, result.output
    from_csv, from_parquet = pd.read_parquet(out_csv), pd.read_parquet(out_parquet)
    assert len(from_parquet) == 197  # customers with at least one non-cancelled order
    from_csv.index = from_csv.index.astype("int64")  # CSV ids are text as written: "12347"
    pd.testing.assert_frame_equal(from_csv, from_parquet)


def test_fit_then_predict_writes_integer_ids(retail_lines, tmp_path):
    """9 + 5: what fit saves scores; float ids come out as written integers."""
    models = tmp_path / "models"
    result = invoke("fit", retail_lines / "lines.parquet", *LINES, "--models-dir", models)
    assert result.exit_code == 0, result.output
    assert (models / "pipeline.json").is_file()
    out = tmp_path / "pred"
    result = invoke("predict", retail_lines / "lines.parquet", *LINES, "--model", models,
                    "-o", out)  # fmt: skip
    assert result.exit_code == 0, result.output
    text = (out / "predictions.csv").read_text().splitlines()
    first_id = text[1].split(",")[0]
    assert first_id.isdigit(), text[1]
    listed = next((out / "segments").glob("*.csv")).read_text().splitlines()
    assert all(".0," not in line.split(",")[0] + "," for line in listed[1:])
    predictions = pd.read_parquet(out / "predictions.parquet")
    assert predictions["customer_id"].dtype == "int64"
    # the cleaning report goes with the predictions, and into the folder's report page
    guests = int(pd.read_parquet(retail_lines / "lines.parquet")["CustomerID"].isna().sum())
    cleaning = json.loads((out / "cleaning_report.json").read_text())
    assert cleaning["removed"]["missing customer_id"] == guests
    assert cleaning["rows_out"] == int(predictions["n_orders"].sum())
    page = (out / "report.html").read_text()
    assert "No cleaning report" not in page and "order lines summed into one row" in page


def test_hash_ids_without_salt_fails_before_writing(retail_lines, tmp_path):
    """7."""
    out = tmp_path / "pred"
    result = invoke("predict", retail_lines / "lines.parquet", *LINES, "--model", tmp_path,
                    "-o", out, "--hash-ids")  # fmt: skip
    one_line_error(result, "--hash-ids needs --salt")
    assert not out.exists()


def test_output_equal_to_the_input_is_refused(tmp_path, cdnow_tx):
    """6: the log survives."""
    log = tmp_path / "log.csv"
    cdnow_tx.head(300).to_csv(log, index=False)
    before = log.read_bytes()
    result = invoke("features", log, "-o", tmp_path / "." / "log.csv")
    one_line_error(result, r"the output .* is the input file")
    assert log.read_bytes() == before


def test_an_interrupted_write_leaves_the_earlier_output_whole(tmp_path):
    """6: outputs are written to a temporary file and renamed."""
    from rfmml.campaign.exports import replacing

    target = tmp_path / "predictions.parquet"
    target.write_text("earlier output")
    with pytest.raises(KeyboardInterrupt), replacing(target) as temporary:
        temporary.write_text("half a fi")
        raise KeyboardInterrupt
    assert target.read_text() == "earlier output"
    assert list(tmp_path.iterdir()) == [target]


@pytest.mark.parametrize(
    ("content", "pattern"),
    [
        (b"", r"'.*e\.csv' is empty \(no header"),
        (b"customer_id,timestamp,amount\n", r"'.*e\.csv' is empty \(0 rows\)"),
        (b"customer_id,timestamp,amount\n\xe9,2024-01-01,3\n",
         r"'.*e\.csv' is not valid utf-8 text .*0xe9.*--encoding"),
        (b"customer_id|timestamp|amount\n1|2024-01-01|3\n", None),
        (b"id;when;value\n1;2024-01-01;3\n",
         r"\['customer_id', 'timestamp', 'amount'\] not found in .*e\.csv.*'id', 'when', 'value'"),
        (b"customer_id,timestamp,amount\na,01/03/2010,1\nb,02/04/2010,2\n",
         r"none of the 2 day/month dates .*--dayfirst / --monthfirst"),
    ],
)  # fmt: skip
def test_unreadable_files_fail_in_one_line_naming_the_file(tmp_path, content, pattern):
    """10."""
    path = tmp_path / "e.csv"
    path.write_bytes(content)
    result = invoke("features", path)
    if pattern is None:  # a pipe-separated file is read with its separator
        assert result.exit_code == 0, result.output
    else:
        one_line_error(result, pattern)


def test_a_folder_where_a_file_is_expected(tmp_path):
    """10."""
    one_line_error(invoke("features", tmp_path), r"is a folder; expected a CSV or Parquet file")


def test_dayfirst_option_and_future_rows_on_the_terminal(tmp_path):
    """1 + 3 + 11: the choice is honoured; a 2099 row is removed and said so."""
    path = tmp_path / "log.csv"
    path.write_text("customer_id,timestamp,amount\na,01/03/2010,1\na,02/04/2010,2\n"
                    "b,05/04/2010,2\nb,06/04/2099,9\n")  # fmt: skip
    target = tmp_path / "f.csv"
    result = invoke("features", path, "--dayfirst", "-o", target, "--form", "classic")
    assert result.exit_code == 0, result.output
    assert "removed 1 of 4 rows dated in the future" in result.output
    assert "removed 1: dated in the future" in result.output
    features = pd.read_csv(target, index_col="customer_id")
    # day-first: a bought on 1 March and 2 April, the log ends on 5 April
    assert features.loc["a", ["tenure_days", "recency_days"]].tolist() == [35, 3]
    result = invoke("features", path, "--monthfirst", "--observation-end", "2010-05-31")
    assert result.exit_code == 0, result.output
    assert "removed 1: after the observation end 2010-05-31" in result.output


def test_a_log_without_amounts_segments_on_recency_and_frequency(retail_lines, tmp_path):
    """8: rf_grid, k-means on R and F, profiles and BG/NBD work; spend is skipped in one line."""
    args = [retail_lines / "lines.parquet", "--customer", "CustomerID", "--timestamp",
            "InvoiceDate", "--order", "InvoiceNo", "--amount", ""]  # fmt: skip
    result = invoke("segment", *args, "-o", tmp_path / "rules.csv")
    assert result.exit_code == 0, result.output
    assert "no amounts: segments use recency and frequency" in result.output
    assert "mean_n_orders" in result.output and "revenue" not in result.output
    rules = pd.read_csv(tmp_path / "rules.csv")
    assert len(rules) == 200 and "total_spend" not in rules.columns
    assert {"Champions", "Hibernating"} <= set(rules["segment"])

    result = invoke("segment", *args, "--kmeans", "3", "-o", tmp_path / "km.csv")
    assert result.exit_code == 0, result.output
    assert pd.read_csv(tmp_path / "km.csv")["segment"].nunique() == 3

    one_line_error(invoke("segment", *args, "--scheme", "rfm11"),
                   r"scheme 'rfm11' scores spend \(M\), but the log has no amounts")  # fmt: skip

    result = invoke("fit", *args, "--models-dir", tmp_path / "models")
    assert result.exit_code == 0, result.output
    assert "Gamma-Gamma (spend model) is skipped" in result.output
    assert (tmp_path / "models" / "purchase_model.json").is_file()
    assert not (tmp_path / "models" / "gamma_gamma.json").exists()
    result = invoke("predict", *args, "--model", tmp_path / "models", "-o", tmp_path / "p")
    assert result.exit_code == 0, result.output
    predicted = pd.read_parquet(tmp_path / "p" / "predictions.parquet")
    assert len(predicted) == 200 and {"segment", "probability_alive"} <= set(predicted.columns)
    assert not {"total_spend", "M", "clv", "expected_spend"} & set(predicted.columns)


def test_observation_end_far_past_the_data_on_the_command_line(tmp_path, cdnow_tx):
    """2 + 11: refused in one line unless intended; rows after it are counted."""
    log = tmp_path / "log.csv"
    cdnow_tx.head(2000).to_csv(log, index=False)
    last = cdnow_tx.head(2000)["timestamp"].max().date()
    one_line_error(invoke("features", log, "--observation-end", "2030-06-30"),
                   rf"observation_end 2030-06-30 is [\d,]+ days after the last transaction "
                   rf"\({last}.*--allow-end-beyond-data")  # fmt: skip
    result = invoke("features", log, "--observation-end", "2030-06-30", "--allow-end-beyond-data")
    assert result.exit_code == 0, result.output
    assert "as allowed" in result.output
    result = invoke("features", log, "--observation-end", "1997-03-31")
    n_late = int((cdnow_tx.head(2000)["timestamp"] > "1997-03-31").sum())
    assert f"removed {n_late:,}: after the observation end 1997-03-31" in result.output


def test_a_pipeline_fitted_per_group_says_to_map_the_group(tmp_path, cdnow_tx):
    """fit --group channel, then predict without --group: one line naming the option."""
    sample = cdnow_tx[cdnow_tx["customer_id"] <= 600]
    channel = pd.Series(["web", "store"])[sample["customer_id"].to_numpy() % 2].to_numpy()
    sample.assign(channel=channel).to_csv(tmp_path / "log.csv", index=False)
    result = invoke("features", tmp_path / "log.csv", "--group", "channel")
    n = sample["customer_id"].nunique()  # one channel each here: as many rows as customers
    assert f"{n:,} rows of customer and channel ({n:,} customers)" in result.output
    models = tmp_path / "models"
    result = invoke("fit", tmp_path / "log.csv", "--group", "channel", "--models-dir", models)
    assert result.exit_code == 0, result.output
    out = tmp_path / "pred"
    result = invoke("predict", tmp_path / "log.csv", "--model", models, "-o", out)
    one_line_error(result, r"per customer and 'channel'.*--group channel")
    assert not out.exists()
    result = invoke("predict", tmp_path / "log.csv", "--group", "channel", "--model", models,
                    "-o", out)  # fmt: skip
    assert result.exit_code == 0, result.output
    assert pd.read_parquet(out / "predictions.parquet")["channel"].nunique() == 2
    from rfmml.campaign import ScoringPipeline, scoring_frame
    from rfmml.data import read_transactions
    from rfmml.errors import DataError
    from rfmml.features import btyd_summary, rfm_table

    tx, _ = read_transactions(tmp_path / "log.csv")
    frame = scoring_frame(rfm_table(tx), btyd_summary(tx, freq="W"))
    with pytest.raises(DataError, match="per customer and 'channel'.*group='channel'"):
        ScoringPipeline.load(models).predict(frame)


def test_returns_can_be_netted_on_the_command_line(retail_lines, tmp_path):
    """--negative-amounts net (as refresh and a config's [data] have it) nets cancellations."""
    from rfmml.data import read_transactions
    from rfmml.features import rfm_table

    out = tmp_path / "netted.parquet"
    result = invoke("features", retail_lines / "lines.parquet", *LINES, "--form", "classic",
                    "--negative-amounts", "net", "-o", out)  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "return netted against an earlier purchase" in result.output
    tx, _ = read_transactions(retail_lines / "lines.parquet", customer="CustomerID",
                              timestamp="InvoiceDate", order="InvoiceNo", quantity="Quantity",
                              price="UnitPrice", cancellation_prefix="C",
                              negative_amounts="net")  # fmt: skip
    expected = rfm_table(tx)
    got = pd.read_parquet(out)
    pd.testing.assert_series_equal(got["total_spend"], expected["total_spend"])
    dropped = rfm_table(read_transactions(retail_lines / "lines.parquet", customer="CustomerID",
                                          timestamp="InvoiceDate", order="InvoiceNo",
                                          quantity="Quantity", price="UnitPrice",
                                          cancellation_prefix="C")[0])  # fmt: skip
    assert got["total_spend"].sum() < dropped["total_spend"].sum()  # the returns count


@pytest.mark.skipif(not Path("/proc/self/fd/1").exists(), reason="needs /proc/self/fd")
def test_features_to_standard_output_give_the_csv_alone(tmp_path, tiny_tx) -> None:
    """``-o /dev/stdout > file``: the file holds the CSV only (the summary table goes to
    stderr), the same bytes as ``-o file``, and the link is written through, not replaced.

    A link of our own to ``/proc/self/fd/1`` stands for ``/dev/stdout`` (what it is), so
    a regression renames over the test's link, never the machine's ``/dev/stdout``.
    """
    import subprocess
    import sys

    log = tmp_path / "log.csv"
    tiny_tx.to_csv(log, index=False)
    stdout_link = tmp_path / "stdout"
    stdout_link.symlink_to("/proc/self/fd/1")
    # the reference file needs no process of its own: the command's output to a plain file
    direct = invoke("features", log, "-o", tmp_path / "direct.csv")
    assert direct.exit_code == 0, direct.output
    command = [sys.executable, "-m", "rfmml.cli", "features", str(log), "-o"]
    with open(tmp_path / "redirected.csv", "wb") as stdout:
        done = subprocess.run([*command, str(stdout_link)], stdout=stdout, stderr=subprocess.PIPE,
                              check=True, timeout=120)  # fmt: skip
    assert (tmp_path / "redirected.csv").read_bytes() == (tmp_path / "direct.csv").read_bytes()
    assert b"customers" in done.stderr  # the table's title
    assert stdout_link.is_symlink()


def test_a_reader_that_stops_early_ends_the_command_quietly(tmp_path, cdnow_tx) -> None:
    """``rfmml features log -o /dev/stdout | head -1``: no error line, exit status 141."""
    import subprocess
    import sys

    if not Path("/proc/self/fd/1").exists():
        pytest.skip("needs /proc/self/fd")
    log = tmp_path / "log.csv"
    cdnow_tx.to_csv(log, index=False)  # its features are ~300 kB, more than a pipe holds
    stdout_link = tmp_path / "stdout"
    stdout_link.symlink_to("/proc/self/fd/1")
    command = [sys.executable, "-m", "rfmml.cli", "features", str(log), "-o", str(stdout_link)]
    with subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE) as process:
        assert process.stdout is not None and process.stderr is not None
        first = process.stdout.readline()
        process.stdout.close()  # the reader goes away
        errors = process.stderr.read()
        code = process.wait(timeout=120)
    assert first.startswith(b"customer_id,")
    assert code == 141
    assert b"error" not in errors.lower() and b"Traceback" not in errors
