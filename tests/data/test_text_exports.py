"""Text exports as they come: a spreadsheet's "Unicode text" (UTF-16 with a byte-order
mark), columns aligned with spaces (CDNOW_master.txt)."""

from __future__ import annotations

import pandas as pd
import pytest

from rfmml.data import load_cdnow, read_transactions
from rfmml.errors import DataError


@pytest.fixture(scope="module")
def log() -> pd.DataFrame:
    return load_cdnow().head(800).drop(columns="n_items")


@pytest.mark.parametrize("sep", [",", "\t"])
def test_utf16_files_read_like_utf8(log, tmp_path, sep):
    """It was refused as 'not valid utf-8 (byte 0xff)', with latin-1 suggested: wrong."""
    log.to_csv(tmp_path / "utf8.csv", index=False, sep=sep)
    log.to_csv(tmp_path / "utf16.csv", index=False, sep=sep, encoding="utf-16")
    expected, _ = read_transactions(tmp_path / "utf8.csv")
    got, _ = read_transactions(tmp_path / "utf16.csv")
    pd.testing.assert_frame_equal(got, expected)


def test_utf16_rows_wider_than_the_header_are_still_refused(log, tmp_path):
    text = log.head(50).to_csv(index=False).splitlines()
    text[7] = text[7].rsplit(",", 1)[0] + ",1,234.50"
    (tmp_path / "wide.csv").write_text("\n".join(text) + "\n", encoding="utf-16")
    with pytest.raises(DataError, match=r"1 of 50 rows have more fields than the header's 3"):
        read_transactions(tmp_path / "wide.csv")


def test_columns_aligned_with_spaces(log, tmp_path):
    """CDNOW_master.txt itself was read as one column named ' customer_id  date ...'."""
    lines = [" customer_id  date number_of_cds  dollar_value"]
    lines += [f" {c:05d} {t:%Y%m%d}  1 {a:7.2f}" for c, t, a in log.itertuples(index=False)]
    (tmp_path / "master.txt").write_text("\r\n".join(lines) + "\r\n")
    got, _ = read_transactions(tmp_path / "master.txt", timestamp="date", amount="dollar_value",
                               timestamp_format="%Y%m%d")  # fmt: skip
    assert got["customer_id"].iloc[0] == "00001"  # text ids keep their zeros
    pd.testing.assert_series_equal(got["amount"], log["amount"], check_names=False)
    assert (got["timestamp"] == log["timestamp"]).all()


def test_spreadsheet_day_numbers_are_named(log):
    """A date column saved unformatted (44197 for 2021-01-01) got a hint about %Y%m%d."""
    days = (log["timestamp"] - pd.Timestamp("1899-12-30")).dt.days
    with pytest.raises(DataError, match=r"spreadsheet day numbers \(35431 is 1997-01-01\)"):
        read_transactions(log.assign(timestamp=days))
