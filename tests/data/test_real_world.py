"""Exports rfmml has never seen: each loads right or fails in one clear line."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from rfmml.data import online_retail_path, read_transactions
from rfmml.errors import DataError

RAW_RETAIL = online_retail_path()  # the raw UCI export: 541,909 invoice lines


# 1. Day-first dates -------------------------------------------------------------------


def test_day_first_dates_are_read_day_first_for_the_whole_column(tmp_path):
    path = tmp_path / "log.csv"
    path.write_text("customer_id,timestamp,amount\na,01/03/2010,5\na,13/02/2010,7\n")
    tx, _ = read_transactions(path)
    assert tx["timestamp"].tolist() == [pd.Timestamp("2010-03-01"), pd.Timestamp("2010-02-13")]


def test_day_first_dates_keep_their_rows_after_rows_are_removed():
    # rows without a customer id are removed before the dates are read, so the
    # remaining rows' labels are not 0..n-1; each row must keep its own date
    frame = pd.DataFrame(
        {
            "customer_id": [None, "a", None, "b", "c"],
            "timestamp": ["05/01/2010", "01/03/2010", "07/01/2010", "13/02/2010", "20/04/2010"],
            "amount": [1.0, 2.0, 3.0, 4.0, 5.0],
        }
    )
    tx, report = read_transactions(frame)
    assert dict(zip(tx["customer_id"], tx["timestamp"], strict=True)) == {
        "a": pd.Timestamp("2010-03-01"),
        "b": pd.Timestamp("2010-02-13"),
        "c": pd.Timestamp("2010-04-20"),
    }
    assert report.removed["missing customer_id"] == 2


def test_month_first_dates_are_proved_by_the_second_field():
    frame = pd.DataFrame(
        {"customer_id": [1, 1], "timestamp": ["01/03/2010 10:15", "02/13/10"], "amount": [1, 2]}
    )
    tx, _ = read_transactions(frame)
    assert tx["timestamp"].tolist() == [
        pd.Timestamp("2010-01-03 10:15"),
        pd.Timestamp("2010-02-13"),
    ]


def test_ambiguous_day_month_column_is_refused_with_how_to_choose():
    frame = pd.DataFrame(
        {"customer_id": [1, 1], "timestamp": ["01/03/2010", "02/04/2010"], "amount": [1, 2]}
    )
    with pytest.raises(DataError, match=r"none of the 2 day/month dates .*'01/03/2010'.*dayfirst"):
        read_transactions(frame)
    tx, _ = read_transactions(frame, dayfirst=True)
    assert tx["timestamp"].tolist() == [pd.Timestamp("2010-03-01"), pd.Timestamp("2010-04-02")]
    tx, _ = read_transactions(frame, dayfirst=False)
    assert tx["timestamp"].tolist() == [pd.Timestamp("2010-01-03"), pd.Timestamp("2010-02-04")]
    tx, _ = read_transactions(frame, timestamp_format="%d/%m/%Y")
    assert tx["timestamp"].iloc[0] == pd.Timestamp("2010-03-01")


def test_mixed_or_contradicted_day_month_order_is_refused():
    mixed = pd.DataFrame(
        {"customer_id": [1, 1], "timestamp": ["13/02/2010", "02/13/2010"], "amount": [1, 2]}
    )
    with pytest.raises(DataError, match=r"mixes day-first and month-first .*'13/02/2010'"):
        read_transactions(mixed)
    day_first = mixed.iloc[[0]]
    with pytest.raises(DataError, match=r"dayfirst=False, but 1 of 1 .*'13/02/2010'"):
        read_transactions(day_first, dayfirst=False)


def test_iso_dates_are_not_affected_by_dayfirst():
    frame = pd.DataFrame(
        {"customer_id": [1, 1], "timestamp": ["2010-03-01", "2010-02-13 10:00"], "amount": [1, 2]}
    )
    tx, _ = read_transactions(frame, dayfirst=True)
    assert tx["timestamp"].tolist() == [
        pd.Timestamp("2010-03-01"),
        pd.Timestamp("2010-02-13 10:00"),
    ]


# 2. Observation end far past the data ------------------------------------------------


def test_observation_end_far_past_the_data_is_refused(cdnow_tx):
    with pytest.raises(DataError, match=r"observation_end 2030-06-30 is 11,688 days after"):
        read_transactions(cdnow_tx, observation_end="2030-06-30")
    tx, report = read_transactions(
        cdnow_tx, observation_end="2030-06-30", allow_end_beyond_data=True
    )
    assert len(tx) == len(cdnow_tx)
    assert any("11,688 days after the last transaction" in n for n in report.notes)
    # within the margin: fine, no opt-in needed
    read_transactions(cdnow_tx, observation_end="1998-09-01")


# 3. Future-dated rows ----------------------------------------------------------------


def test_a_row_dated_in_the_future_is_removed_counted_and_warned(tmp_path):
    frame = pd.DataFrame(
        {
            "customer_id": ["a", "a", "b"],
            "timestamp": ["2010-01-05", "2099-01-05", "2010-03-01"],
            "amount": [1.0, 2.0, 3.0],
        }
    )
    with pytest.warns(UserWarning, match=r"removed 1 of 3 rows dated in the future .*id='a'"):
        tx, report = read_transactions(frame)
    assert tx["timestamp"].max() == pd.Timestamp("2010-03-01")
    (reason,) = [r for r in report.removed if r.startswith("dated in the future")]
    assert report.removed[reason] == 1
    report.check()


# 4. Line-item logs -------------------------------------------------------------------


def test_line_item_export_sums_lines_into_orders_and_matches_the_reference(online_retail_tx):
    tx, report = read_transactions(
        RAW_RETAIL, customer="CustomerID", timestamp="InvoiceDate", order="InvoiceNo",
        quantity="Quantity", price="UnitPrice", cancellation_prefix="C",
    )  # fmt: skip
    report.check()
    # The reference drops lines with quantity or price <= 0 before summing; here
    # cancellations are negative orders removed by the negative_amounts policy, and
    # the 4 orders of free items stay as zero-amount purchases (flagged).
    assert report.removed["negative amount (return or cancellation)"] == 3654
    assert report.merged["order lines summed into one row per order"] == 384_639
    assert report.flagged["zero amount"] == 4
    assert len(tx) == len(online_retail_tx) + 4
    assert tx["amount"].sum() == pytest.approx(online_retail_tx["amount"].sum(), rel=1e-12)
    # lines of one invoice are not duplicates of each other
    assert report.flagged["identical to an earlier row"] == 1
    ref = online_retail_tx.set_index("order_id")["amount"]
    got = tx.set_index("order_id")["amount"]
    assert got["536365"] == ref["536365"] == 139.12


def test_cancellation_prefix_makes_an_order_a_return_even_with_positive_lines():
    frame = pd.DataFrame(
        {
            "cust": ["a", "a", "a", "a"],
            "when": ["2024-01-01", "2024-01-01", "2024-01-03", "2024-01-05"],
            "inv": ["100", "100", "C100", "101"],
            "qty": [2, 1, 1, 3],
            "price": [1.5, 4.0, 1.5, 0.1],
        }
    )
    tx, report = read_transactions(
        frame, customer="cust", timestamp="when", order="inv", quantity="qty", price="price",
        cancellation_prefix="C", negative_amounts="net",
    )  # fmt: skip
    assert tx["amount"].tolist() == [5.5, 0.3]  # 7.0 - 1.5, and 3 x 0.1 without float noise
    assert report.merged == {
        "order lines summed into one row per order": 1,
        "return netted against an earlier purchase": 1,
    }


def test_quantity_needs_price_and_not_amount():
    frame = pd.DataFrame({"customer_id": [1], "timestamp": ["2024-01-01"], "q": [1], "p": [2]})
    with pytest.raises(DataError, match="map both quantity= and price="):
        read_transactions(frame, quantity="q")
    with pytest.raises(DataError, match=r"map either amount= \('value'\) or quantity="):
        read_transactions(frame, amount="value", quantity="q", price="p")
    with pytest.raises(DataError, match="cancellation_prefix= needs the order id"):
        read_transactions(frame, quantity="q", price="p", cancellation_prefix="C")


# 5. Float ids ------------------------------------------------------------------------


def test_float_ids_come_out_as_written_integers_and_others_as_text(tmp_path):
    pd.DataFrame(
        {"id": [12346.0, 17850.0, None], "timestamp": ["2024-01-01"] * 3, "amount": [1.0] * 3}
    ).to_parquet(tmp_path / "log.parquet")
    tx, report = read_transactions(tmp_path / "log.parquet", customer="id")
    assert tx["customer_id"].tolist() == [12346, 17850]
    assert tx["customer_id"].dtype == "int64"
    assert report.removed["missing customer_id"] == 1
    odd = pd.DataFrame({"customer_id": [1.5, 2.0], "timestamp": ["2024-01-01"] * 2, "amount": 1})
    tx, _ = read_transactions(odd)
    assert tx["customer_id"].tolist() == ["1.5", "2.0"]


# Decimal commas (European spreadsheet exports) -----------------------------------------


def _european_export(tmp_path, cdnow_tx):
    """A real CDNOW sample written as a German/French spreadsheet would: ';' and '2,50'."""
    sample = cdnow_tx.head(2000)
    points = tmp_path / "points.csv"
    sample.to_csv(points, index=False)
    commas = tmp_path / "commas.csv"
    sample.to_csv(commas, index=False, sep=";", decimal=",")
    return points, commas


def test_decimal_commas_read_as_the_same_amounts(tmp_path, cdnow_tx):
    points, commas = _european_export(tmp_path, cdnow_tx)
    assert ";" in commas.read_text().splitlines()[1] and "," in commas.read_text()
    expected, _ = read_transactions(points)
    got, _ = read_transactions(commas, decimal=",")
    pd.testing.assert_frame_equal(got, expected)
    assert got["amount"].sum() == pytest.approx(cdnow_tx.head(2000)["amount"].sum())


def test_decimal_commas_without_the_option_say_how(tmp_path, cdnow_tx):
    _, commas = _european_export(tmp_path, cdnow_tx)
    with pytest.raises(DataError, match=r"column 'amount': .* decimal commas .*decimal=','"):
        read_transactions(commas)


def test_decimal_mark_equal_to_the_separator_or_not_a_mark_is_refused(tmp_path, cdnow_tx):
    _, commas = _european_export(tmp_path, cdnow_tx)
    with pytest.raises(DataError, match="separator and decimal mark are both ','"):
        read_transactions(commas, decimal=",", separator=",")
    with pytest.raises(DataError, match="decimal= must be one mark"):
        read_transactions(commas, decimal="comma")


def test_decimal_option_on_the_command_line_and_in_a_config(tmp_path, cdnow_tx):
    from click.testing import CliRunner

    from rfmml.cli import main
    from rfmml.config import load_config

    points, commas = _european_export(tmp_path, cdnow_tx)
    runner = CliRunner()
    for name, path, extra in (("p", points, []), ("c", commas, ["--decimal", ","])):
        result = runner.invoke(
            main, ["features", str(path), *extra, "-o", str(tmp_path / f"{name}.parquet")]
        )
        assert result.exit_code == 0, result.output
    pd.testing.assert_frame_equal(
        pd.read_parquet(tmp_path / "c.parquet"), pd.read_parquet(tmp_path / "p.parquet")
    )
    from rfmml.pipeline import load_experiment_data

    def config(source, **data):
        return load_config({
            "name": "eu", "calibration_end": "1997-09-30", "observation_end": "1997-12-31",
            "data": {"source": str(source), **data},
            "segmentations": [{"name": "rf", "kind": "rules", "scheme": "rf_grid"}],
        })  # fmt: skip

    got, _, _ = load_experiment_data(config(commas, decimal=","))
    expected, _, _ = load_experiment_data(config(points))
    pd.testing.assert_frame_equal(got, expected)


# Amounts no purchase reaches -------------------------------------------------------------


def test_amounts_beyond_the_exact_sum_range_are_one_line_on_every_path(tmp_path):
    from rfmml.data import scan_transactions
    from rfmml.features import btyd_summary, rfm_table

    frame = pd.DataFrame(
        {
            "customer_id": ["a", "a", "b", "c"],
            "timestamp": pd.to_datetime(["2000-01-01", "2000-02-01", "2000-01-05", "2000-01-07"]),
            "amount": [1.0, 9.223372036854776e18, 2.0, -3e15],
        }
    )
    path = tmp_path / "log.parquet"
    frame.to_parquet(path)
    expected = (
        "column 'amount': 2 of 4 values are 1,000,000,000,000,000 or more in size "
        "(largest: 9.223372036854776e+18)"
    )
    for attempt in (
        lambda: read_transactions(frame),
        lambda: scan_transactions(path),  # cleaned inside DuckDB, error from the pandas path
        lambda: btyd_summary(frame),  # a frame that never went through the loader
        lambda: rfm_table(frame),
    ):
        with pytest.raises(DataError) as caught:
            attempt()
        assert str(caught.value).startswith(expected)
    ok = frame.assign(amount=[1.0, 999_999_999_999_999.0, 2.0, 3.0])
    tx, _ = read_transactions(ok)
    assert btyd_summary(tx)["monetary_value"].max() == 999_999_999_999_999.0


def test_rows_with_more_fields_than_the_header_are_refused_not_cut(tmp_path, cdnow_tx):
    """An unquoted thousands separator (``1,234.50``) must not become an amount of 1."""
    sample = cdnow_tx.head(2000).assign(amount=cdnow_tx["amount"].head(2000) * 10)
    lines = ["customer_id,timestamp,amount"]
    lines += [f"{row.customer_id},{row.timestamp:%Y-%m-%d},{row.amount:,.2f}"
              for row in sample.itertuples()]  # fmt: skip
    path = tmp_path / "thousands.csv"
    path.write_text("\n".join(lines) + "\n")
    n_wide = int((sample["amount"] >= 1000).sum())
    first = lines[1:][int(np.argmax(sample["amount"].to_numpy() >= 1000))]
    assert n_wide > 0
    with pytest.raises(DataError) as caught:
        read_transactions(path)
    message = str(caught.value)
    assert "\n" not in message
    assert f"{n_wide} of 2,000 rows have more fields than the header's 3" in message
    assert f"first: {first!r}" in message and "thousands separator" in message
    # an empty field after the last column (a trailing separator) carries nothing: accepted
    trailing = tmp_path / "trailing.csv"
    trailing.write_text("customer_id,timestamp,amount\na,2010-01-01,5,\na,2010-02-01,7,\n")
    tx, _ = read_transactions(trailing)
    assert tx["amount"].tolist() == [5.0, 7.0] and tx["customer_id"].tolist() == ["a", "a"]


def test_epoch_seconds_read_with_timestamp_format_percent_s(tmp_path, cdnow_tx):
    """Unix time (seconds since 1970-01-01 UTC) loads with timestamp_format='%s'."""
    sample = cdnow_tx.head(2000)[["customer_id", "timestamp", "amount"]]
    seconds = (sample["timestamp"] - pd.Timestamp("1970-01-01")) // pd.Timedelta(seconds=1)
    epoch = sample.assign(timestamp=seconds + 3600)  # an hour into each day
    epoch.to_csv(tmp_path / "epoch.csv", index=False)
    epoch.to_parquet(tmp_path / "epoch.parquet")
    expected = sample.assign(timestamp=sample["timestamp"] + pd.Timedelta(hours=1))
    for path in (tmp_path / "epoch.csv", tmp_path / "epoch.parquet"):
        tx, report = read_transactions(path, timestamp_format="%s")
        pd.testing.assert_series_equal(tx["timestamp"], expected["timestamp"].astype(
            "datetime64[us]").reset_index(drop=True), check_names=False)  # fmt: skip
        assert any("seconds since 1970-01-01 UTC" in note for note in report.notes)
    with pytest.raises(DataError, match=r"holds numbers \(int64\).*'%s' for seconds since"
                       r".*they look like Unix time in seconds \(\d+ is 1997-01-01\)"):  # fmt: skip
        read_transactions(tmp_path / "epoch.parquet")
    # JSON and JavaScript write milliseconds: every value past the year 5000 as seconds
    for unit, factor in (("milliseconds", 1000), ("microseconds", 10**6), ("nanoseconds", 10**9)):
        finer = epoch.assign(timestamp=epoch["timestamp"] * factor)
        with pytest.raises(DataError, match=rf"they look like Unix time in {unit}"):
            read_transactions(finer)
        tx, report = read_transactions(finer, timestamp_format="%s")
        pd.testing.assert_series_equal(tx["timestamp"], expected["timestamp"].astype(
            "datetime64[us]").reset_index(drop=True), check_names=False)  # fmt: skip
        assert f"timestamps read as {unit} since 1970-01-01 UTC, in UTC wall-clock time" in (
            report.notes
        )
    mixed = epoch.assign(timestamp=epoch["timestamp"].where(epoch.index % 2 == 0,
                                                            epoch["timestamp"] * 1000))  # fmt: skip
    with pytest.raises(DataError, match=r"column 'timestamp': 1000 of 2000 .* seconds and a "
                                        r"finer unit mixed"):  # fmt: skip
        read_transactions(mixed, timestamp_format="%s")
    text = epoch.astype({"timestamp": str})
    text.loc[text.index[3], "timestamp"] = "yesterday"
    with pytest.raises(DataError, match=r"column 'timestamp': 1 of 2000 values are not seconds"):
        read_transactions(text, timestamp_format="%s")


def test_ids_padded_with_spaces_are_one_customer_on_every_path(tmp_path, cdnow_tx):
    """' 00123 ' and '00123' are one customer (fixed-width and spreadsheet exports pad ids)."""
    sample = cdnow_tx.head(2000)[["customer_id", "timestamp", "amount"]]
    plain = sample.assign(customer_id=sample["customer_id"].map("{:05d}".format))
    padded = plain.copy()
    padded.loc[padded.index[::3], "customer_id"] = "  " + padded["customer_id"] + " "
    plain.to_csv(tmp_path / "plain.csv", index=False)
    padded.to_csv(tmp_path / "padded.csv", index=False)
    padded.to_parquet(tmp_path / "padded.parquet")
    expected, _ = read_transactions(tmp_path / "plain.csv")
    n_padded = len(padded.index[::3])
    for source in (tmp_path / "padded.csv", tmp_path / "padded.parquet", padded):
        tx, report = read_transactions(source)
        pd.testing.assert_frame_equal(tx, expected)
        assert any(note.startswith(f"customer_id: {n_padded:,} ids had leading or trailing")
                   for note in report.notes), report.notes  # fmt: skip
