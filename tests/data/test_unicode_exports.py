"""A spreadsheet's "Unicode text" export (UTF-16 with a byte-order mark) reads as it is."""

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
