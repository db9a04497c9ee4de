"""read_transactions: mapping, validation errors and the cleaning report."""

from __future__ import annotations

import numpy as np
import pandas as pd
import polars as pl
import pytest

from rfmml.data import CleaningReport, load_online_retail, read_transactions
from rfmml.errors import DataError


@pytest.fixture
def raw() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "Customer": ["c1", "c1", "c2", None, "c3", "c1"],
            "When": [
                "2024-01-01",
                "2024-01-05",
                "2024-01-02",
                "2024-01-03",
                "2024-01-04",
                "2024-01-06",
            ],
            "Value": [10.0, -4.0, 0.0, 5.0, 8.0, 2.0],
            "Shop": ["web", "web", "store", "web", "web", "store"],
        }
    )


def test_columns_are_mapped_to_canonical_names(raw):
    tx, report = read_transactions(
        raw, customer="Customer", timestamp="When", amount="Value", group="Shop"
    )
    assert list(tx.columns) == ["customer_id", "timestamp", "amount", "Shop"]
    assert tx["timestamp"].dtype == "datetime64[us]"
    assert tx["amount"].dtype == "float64"
    assert isinstance(report, CleaningReport)


def test_report_counts_every_removed_and_flagged_row(raw):
    tx, report = read_transactions(raw, customer="Customer", timestamp="When", amount="Value")
    assert report.rows_in == 6
    assert report.removed["missing customer_id"] == 1
    assert report.removed["negative amount (return or cancellation)"] == 1
    assert report.flagged["zero amount"] == 1
    assert report.rows_out == len(tx) == 4
    report.check()
    frame = report.to_frame()
    assert frame.loc[frame["action"] == "out", "rows"].item() == 4
    assert "removed 1: missing customer_id" in str(report)


def test_net_returns_against_the_latest_earlier_purchase(raw):
    tx, report = read_transactions(
        raw, customer="Customer", timestamp="When", amount="Value", negative_amounts="net"
    )
    c1 = tx[tx["customer_id"] == "c1"].set_index("timestamp")["amount"]
    assert c1[pd.Timestamp("2024-01-01")] == 6.0  # 10 - 4
    assert c1[pd.Timestamp("2024-01-06")] == 2.0
    assert report.merged["return netted against an earlier purchase"] == 1
    report.check()


def test_a_return_goes_to_the_largest_purchase_of_its_time_whatever_the_row_order():
    frame = pd.DataFrame(
        {
            "customer_id": [1, 1, 1, 1],
            "timestamp": ["2024-01-01", "2024-01-03", "2024-01-03", "2024-01-04"],
            "amount": [50.0, 10.0, 30.0, -35.0],
        }
    )
    for order in ([0, 1, 2, 3], [3, 2, 1, 0], [2, 0, 3, 1]):
        tx, report = read_transactions(frame.iloc[order], negative_amounts="net")
        assert sorted(tx["amount"].tolist()) == [0.0, 10.0, 50.0]  # 30 - 35, not 10 - 35
        assert "1 purchases had returns larger than their value" in report.notes[0]


def test_netted_amounts_carry_no_float_noise():
    frame = pd.DataFrame(
        {"customer_id": [1, 1, 1], "timestamp": ["2024-01-01", "2024-01-02", "2024-01-03"],
         "amount": [0.3, -0.1, -0.2]}
    )  # fmt: skip
    tx, report = read_transactions(frame, negative_amounts="net")
    assert tx["amount"].tolist() == [0.0]  # 0.3 - 0.1 - 0.2 is 2.8e-17 in floats
    assert report.flagged["zero amount"] == 1 and not report.notes


def test_return_without_earlier_purchase_is_removed_and_counted():
    frame = pd.DataFrame(
        {"customer_id": [1, 1], "timestamp": ["2024-01-01", "2024-01-02"], "amount": [-5.0, 9]}
    )
    tx, report = read_transactions(frame, negative_amounts="net")
    assert tx["amount"].tolist() == [9.0]
    assert report.removed["return without an earlier purchase by the same customer"] == 1


def test_negative_amounts_can_be_an_error(raw):
    with pytest.raises(DataError, match=r"'Value': 1 of 5 rows are negative .*customer_id='c1'"):
        read_transactions(
            raw, customer="Customer", timestamp="When", amount="Value", negative_amounts="error"
        )


def test_zero_amounts_and_duplicates_can_be_dropped():
    frame = pd.DataFrame(
        {
            "customer_id": [1, 1, 1, 2],
            "timestamp": ["2024-01-01"] * 3 + ["2024-01-02"],
            "amount": [5.0, 5.0, 0.0, 3.0],
        }
    )
    tx, report = read_transactions(frame)
    assert len(tx) == 4 and report.flagged == {"zero amount": 1, "identical to an earlier row": 1}
    tx, report = read_transactions(frame, drop_zero_amounts=True, drop_duplicates=True)
    assert len(tx) == 2
    assert report.removed["zero amount"] == 1
    assert report.removed["identical to an earlier row"] == 1


def test_rows_after_the_observation_end_are_removed(raw):
    tx, report = read_transactions(
        raw, customer="Customer", timestamp="When", amount="Value", observation_end="2024-01-04"
    )
    assert tx["timestamp"].max() == pd.Timestamp("2024-01-04")  # the end day is included
    assert report.removed["after the observation end 2024-01-04"] == 2


def test_missing_columns_list_the_available_ones(raw):
    with pytest.raises(
        DataError, match=r"\['customer_id', 'timestamp', 'amount'\] not found .* available"
    ):
        read_transactions(raw)


def test_empty_input():
    with pytest.raises(DataError, match="empty"):
        read_transactions(pd.DataFrame({"customer_id": [], "timestamp": [], "amount": []}))


def test_unparseable_timestamps_are_counted_and_quoted():
    frame = pd.DataFrame(
        {
            "customer_id": [1, 2, 3, 4],
            "timestamp": ["2024-01-01", "yesterday", "2024-13-45", None],
            "amount": [1.0, 2, 3, 4],
        }
    )
    with pytest.raises(DataError, match=r"'timestamp': 2 of 4 values do not parse .*'yesterday'"):
        read_transactions(frame)


def test_unparseable_amounts_are_counted_and_quoted():
    frame = pd.DataFrame(
        {"customer_id": [1, 2, 3], "timestamp": ["2024-01-01"] * 3, "amount": ["1.5", "2 pcs", "x"]}
    )
    with pytest.raises(DataError, match=r"'amount': 2 of 3 values are not numbers .*'2 pcs', 'x'"):
        read_transactions(frame)


def test_infinite_amounts_are_rejected():
    frame = pd.DataFrame(
        {"customer_id": [1, 2], "timestamp": ["2024-01-01"] * 2, "amount": [1.0, np.inf]}
    )
    with pytest.raises(DataError, match="'amount': 1 of 2 values are infinite"):
        read_transactions(frame)


def test_missing_timestamps_and_amounts_are_removed_and_counted():
    frame = pd.DataFrame(
        {
            "customer_id": [1, 2, 3],
            "timestamp": ["2024-01-01", None, "2024-01-02"],
            "amount": [1.0, 2.0, None],
        }
    )
    tx, report = read_transactions(frame)
    assert len(tx) == 1
    assert report.removed["missing timestamp"] == 1
    assert report.removed["missing amount"] == 1


def test_time_zones_become_wall_clock_time():
    stamps = pd.to_datetime(["2024-01-01 23:30"]).tz_localize("Asia/Tokyo")
    frame = pd.DataFrame({"customer_id": [1], "timestamp": stamps, "amount": [1.0]})
    tx, report = read_transactions(frame)
    assert tx["timestamp"].iloc[0] == pd.Timestamp("2024-01-01 23:30")
    assert "Asia/Tokyo" in report.notes[0]


def test_csv_and_parquet_paths(tmp_path, cdnow_tx):
    sample = cdnow_tx.head(500).rename(columns={"customer_id": "id", "timestamp": "date"})
    sample.to_csv(tmp_path / "log.csv", index=False)
    sample.to_parquet(tmp_path / "log.parquet")
    from_csv, _ = read_transactions(tmp_path / "log.csv", customer="id", timestamp="date")
    from_parquet, _ = read_transactions(
        str(tmp_path / "log.parquet"), customer="id", timestamp="date"
    )
    assert from_csv["customer_id"].iloc[0] == "1"  # ids from CSV stay strings
    pd.testing.assert_series_equal(from_csv["amount"], from_parquet["amount"])
    pd.testing.assert_series_equal(from_csv["timestamp"], from_parquet["timestamp"])


def test_bad_path_and_suffix(tmp_path):
    with pytest.raises(DataError, match="does not exist"):
        read_transactions(tmp_path / "nope.csv")
    (tmp_path / "log.xlsx").write_text("x")
    with pytest.raises(DataError, match="a spreadsheet is not read directly; save the sheet"):
        read_transactions(tmp_path / "log.xlsx")
    (tmp_path / "log.xml").write_text("<orders/>")
    with pytest.raises(DataError, match=r"expected a .csv, .tsv, .txt \(also compressed: .bz2, "):
        read_transactions(tmp_path / "log.xml")
    (tmp_path / "log.json").write_text("{}")
    with pytest.raises(DataError, match="log.json' holds no JSON records"):
        read_transactions(tmp_path / "log.json")


@pytest.mark.parametrize("compression", ["gzip", "zip", "bz2", "xz"])
def test_compressed_csv_reads_as_the_plain_file(tmp_path, cdnow_tx, compression):
    sample = cdnow_tx.head(500)
    plain = tmp_path / "log.csv"
    sample.to_csv(plain, index=False, sep=";")
    suffix = {"gzip": ".gz", "zip": ".zip", "bz2": ".bz2", "xz": ".xz"}[compression]
    packed = tmp_path / f"log.csv{suffix}"
    sample.to_csv(packed, index=False, sep=";", compression=compression)
    expected, expected_report = read_transactions(plain)
    got, report = read_transactions(packed)
    pd.testing.assert_frame_equal(got, expected)
    assert report.removed == expected_report.removed


def test_polars_in_polars_out(raw):
    tx, _ = read_transactions(
        pl.from_pandas(raw), customer="Customer", timestamp="When", amount="Value"
    )
    assert isinstance(tx, pl.DataFrame)
    assert tx.height == 4


def test_unsupported_type():
    with pytest.raises(TypeError, match="CSV or Parquet path, a pandas DataFrame"):
        read_transactions([1, 2, 3])


def test_bad_policy():
    with pytest.raises(ValueError, match="negative_amounts must be"):
        read_transactions(pd.DataFrame(), negative_amounts="keep")


def test_one_column_mapped_twice(raw):
    with pytest.raises(DataError, match=r"\['Value'\] are mapped to more than one"):
        read_transactions(raw, customer="Customer", timestamp="Value", amount="Value")


def test_rows_without_a_group_are_removed_and_counted(raw):
    raw = raw.assign(Shop=["web", None, "store", "web", "web", None])
    tx, report = read_transactions(
        raw, customer="Customer", timestamp="When", amount="Value", group="Shop"
    )
    assert report.removed["missing Shop"] == 2
    assert tx["Shop"].notna().all()
    report.check()


def test_mixed_utc_offsets_keep_each_wall_clock_time():
    frame = pd.DataFrame(
        {
            "customer_id": [1, 1],
            "timestamp": ["2021-03-27T23:30:00+00:00", "2021-03-29T00:30:00+01:00"],
            "amount": [1.0, 2.0],
        }
    )
    tx, report = read_transactions(frame)
    assert tx["timestamp"].tolist() == [
        pd.Timestamp("2021-03-27 23:30"),
        pd.Timestamp("2021-03-29 00:30"),
    ]
    assert "several UTC offsets" in report.notes[0]


def test_csv_ids_written_as_whole_decimals_join_the_plain_ones(tmp_path):
    # pandas writes an integer id column with gaps as floats (12346.0); the same customers
    # exported without gaps are written 12346: both files read to the same ids
    log = load_online_retail().head(3000)
    ids = log["customer_id"].astype("int64")
    with_gap = log.assign(customer_id=ids.astype("float64"))
    with_gap.loc[with_gap.index[0], "customer_id"] = np.nan  # the gap, removed and counted
    with_gap.to_csv(tmp_path / "floats.csv", index=False)
    log.assign(customer_id=ids).iloc[1:].to_csv(tmp_path / "ints.csv", index=False)
    got, report = read_transactions(tmp_path / "floats.csv")
    want, plain = read_transactions(tmp_path / "ints.csv")
    assert str(with_gap["customer_id"].iloc[1]).endswith(".0")
    pd.testing.assert_frame_equal(got, want)
    assert report.removed["missing customer_id"] == 1
    assert any("whole number written with a fraction" in n for n in report.notes)
    assert not any("fraction" in n for n in plain.notes)
    # decimal commas: 12346,0
    with_gap.to_csv(tmp_path / "eu.csv", index=False, sep=";", decimal=",")
    eu, _ = read_transactions(tmp_path / "eu.csv", decimal=",")
    pd.testing.assert_frame_equal(eu, want)


@pytest.mark.parametrize("other", ["007", "C-12", "1.5", "12.0.0"])
def test_csv_ids_that_are_not_all_whole_decimals_stay_as_written(tmp_path, other):
    path = tmp_path / "ids.csv"
    path.write_text(f"customer_id,timestamp,amount\n12.0,2011-01-01,5\n{other},2011-01-02,7\n")
    tx, report = read_transactions(path)
    assert sorted(tx["customer_id"]) == sorted(["12.0", other])
    assert not any("fraction" in n for n in report.notes)
