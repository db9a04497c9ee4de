"""Timestamps isolated far from the rest of a log (a mistyped year) are reported; since=
and until= drop them explicitly, counted."""

from __future__ import annotations

import warnings

import pandas as pd
import pytest

from rfmml.data import load_cdnow, read_transactions
from rfmml.errors import DataError
from rfmml.features import btyd_summary


@pytest.fixture(scope="module")
def typos() -> pd.DataFrame:
    """3,000 CDNOW rows (1997-1998) with three years mistyped: 1897, 1897 and 1989."""
    tx = load_cdnow().head(3_000).copy()
    tx.loc[10, "timestamp"] = pd.Timestamp("1897-02-03")
    tx.loc[20, "timestamp"] = pd.Timestamp("1897-05-06")
    tx.loc[2_000, "timestamp"] = pd.Timestamp("1989-03-10")
    return tx


def test_isolated_early_rows_are_flagged_with_a_note_and_a_warning(typos):
    """They were accepted silently and stretched three customers' T by a century."""
    with pytest.warns(UserWarning, match="isolated") as caught:
        tx, report = read_transactions(typos)
    assert len(tx) == len(typos)  # kept: only the user knows what the date should be
    assert report.flagged["dated over a year apart from the rest of the log"] == 3
    (note,) = [n for n in report.notes if "isolated" in n]
    first = typos.loc[10]
    assert note == str(caught[0].message)
    assert "3 of 3,000 rows" in note and "1997-01-01" in note
    assert f"customer_id={first['customer_id']!r} at 1897-02-03 00:00:00" in note
    assert "since=" in note and "--since" in note


def test_since_drops_them_counted_and_the_features_match_the_clean_log(typos):
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # nothing isolated is left to warn about
        tx, report = read_transactions(typos, since="1997-01-01")
    assert report.removed["dated before 1997-01-01 (since)"] == 3
    assert "dated over a year apart from the rest of the log" not in report.flagged
    assert not any("isolated" in n for n in report.notes)
    clean = typos.drop(index=[10, 20, 2_000])
    pd.testing.assert_frame_equal(btyd_summary(tx), btyd_summary(clean))


def test_isolated_late_rows_and_until(typos):
    """A year typed 2 years ahead (not in the future) is isolated at the end of the log."""
    late = load_cdnow().head(3_000).copy()
    late.loc[[5, 6], "timestamp"] = pd.Timestamp("2001-07-01")
    with pytest.warns(UserWarning, match="isolated"):
        _, report = read_transactions(late)
    assert report.flagged["dated over a year apart from the rest of the log"] == 2
    (note,) = [n for n in report.notes if "isolated" in n]
    assert "2 of 3,000 rows" in note and "until=" in note
    tx, report = read_transactions(late, until="1998-06-30")
    assert report.removed["dated after 1998-06-30 (until)"] == 2
    assert tx["timestamp"].max() < pd.Timestamp("1998-07-01")


def test_a_log_with_a_real_early_period_is_not_flagged():
    """Spread-out early years are a log, not a typo: a tenth of the rows is not 'a few'."""
    tx = load_cdnow().head(3_000).copy()
    tx.loc[:299, "timestamp"] -= pd.Timedelta(days=800)
    _, report = read_transactions(tx)
    assert "dated over a year apart from the rest of the log" not in report.flagged
    assert not any("isolated" in n for n in report.notes)


def test_since_and_until_are_checked():
    tx = load_cdnow().head(100)
    with pytest.raises(DataError, match=r"since='someday' is not a date"):
        read_transactions(tx, since="someday")
    with pytest.raises(DataError, match=r"since=1998-01-01 is after until=1997-06-30"):
        read_transactions(tx, since="1998-01-01", until="1997-06-30")
