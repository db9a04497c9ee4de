"""Amounts as shop exports write them: currency symbols, thousands separators, and a
totals line at the end of the file."""

from __future__ import annotations

import re

import pandas as pd
import pytest

from rfmml.data import load_cdnow, read_transactions
from rfmml.errors import DataError
from rfmml.features import rfm_table

MAP = dict(customer="Customer", timestamp="Date", amount="Total")


@pytest.fixture(scope="module")
def tx() -> pd.DataFrame:
    """1,500 CDNOW rows, amounts times 40 (some above a thousand)."""
    log = load_cdnow().head(1_500)
    return pd.DataFrame({"Customer": log["customer_id"].astype(str).to_numpy(),
                         "Date": log["timestamp"].dt.strftime("%Y-%m-%d").to_numpy(),
                         "Total": (log["amount"] * 40).round(2).to_numpy()})  # fmt: skip


def _expected(tx: pd.DataFrame) -> pd.DataFrame:
    return rfm_table(read_transactions(tx, **MAP)[0])


def test_dollar_amounts_with_thousands_separators(tx, tmp_path):
    """'$3,080.00' was refused ('remove currency symbols'): the user had to edit the file."""
    written = tx.assign(Total=tx["Total"].map(lambda a: f"${a:,.2f}"))
    written.to_csv(tmp_path / "us.csv", index=False)
    got, report = read_transactions(tmp_path / "us.csv", **MAP)
    pd.testing.assert_frame_equal(rfm_table(got), _expected(tx))
    (note,) = [n for n in report.notes if "currency symbol" in n]
    assert note.startswith("column 'Total': amounts written with the currency symbol '$'")
    assert "thousands separator ','" in note


def test_euro_amounts_with_decimal_commas(tx, tmp_path):
    written = tx.assign(Total=tx["Total"].map(lambda a: f"{a:,.2f} €".replace(",", " ")
                                              .replace(".", ",")))  # fmt: skip
    written.to_csv(tmp_path / "eu.csv", index=False, sep=";")
    with pytest.raises(DataError, match=r"decimal commas .*--decimal"):
        read_transactions(tmp_path / "eu.csv", **MAP)
    got, report = read_transactions(tmp_path / "eu.csv", **MAP, decimal=",")
    pd.testing.assert_frame_equal(rfm_table(got), _expected(tx))
    assert any("currency symbol '€'" in n for n in report.notes)


def test_several_symbols_and_ambiguous_separators_are_refused(tx):
    mixed = tx.assign(Total=[f"$ {a:.2f}" if i % 3 else f"£{a:.2f}"
                             for i, a in enumerate(tx["Total"])])  # fmt: skip
    with pytest.raises(DataError, match=r"column 'Total': amounts written with several "
                       r"currency symbols: '\$' \(1,000 rows\), '£' \(500 rows\)"):  # fmt: skip
        read_transactions(mixed, **MAP)
    # 1,234 alone reads as 1234 or as 1.234: nothing in the column tells
    grouped = tx.assign(Total=[f"{int(a) + 1000:,}" for a in tx["Total"]])
    with pytest.raises(DataError, match=r"column 'Total': .* values are not numbers"):
        read_transactions(grouped, **MAP)


@pytest.mark.parametrize("last", ["Total,,{total}", ",,{total}", "TOTAL,2011-12-31,{total}"])
def test_a_totals_line_at_the_end_is_removed_counted(tx, tmp_path, last):
    """A report-style export's last line sums the others: it was a purchase (with a date) or
    a row removed under another reason."""
    path = tmp_path / "with_total.csv"
    tx.to_csv(path, index=False)
    with path.open("a") as file:
        file.write(last.format(total=round(tx["Total"].sum(), 2)) + "\n")
    got, report = read_transactions(path, **MAP)
    assert report.removed["totals line (the last row: its amount is the sum of the others)"] == 1
    assert report.removed.get("missing customer_id", 0) == 0
    assert report.removed.get("missing timestamp", 0) == 0
    pd.testing.assert_frame_equal(rfm_table(got), _expected(tx))


def test_accounting_negatives_in_parentheses_are_returns(tx, tmp_path):
    """'(12.50)' is how accounting exports write -12.50: read, then handled as a return."""
    signed = tx.assign(Total=tx["Total"].where(tx.index % 7 != 3, -tx["Total"]))
    written = signed.assign(
        Total=signed["Total"].map(lambda a: f"(${-a:,.2f})" if a < 0 else f"${a:,.2f}")
    )
    written.to_csv(tmp_path / "ledger.csv", index=False)
    got, report = read_transactions(tmp_path / "ledger.csv", **MAP)
    expected, expected_report = read_transactions(signed, **MAP)
    pd.testing.assert_frame_equal(got, expected)
    n_negative = int((signed["Total"] < 0).sum())
    assert report.removed["negative amount (return or cancellation)"] == n_negative > 0
    assert expected_report.removed == report.removed
    (note,) = [n for n in report.notes if "parentheses" in n]
    assert f"{n_negative:,} negative amount(s) in parentheses" in note


@pytest.mark.parametrize("value", ["(12.50", "12.50)", "(-12.50)", "((12.50))"])
def test_a_parenthesis_on_one_side_or_with_a_sign_is_not_an_amount(tx, value):
    written = tx.assign(Total=tx["Total"].astype(str))
    written.loc[5, "Total"] = value
    with pytest.raises(
        DataError, match=rf"1 of 1500 values are not numbers \(first: {re.escape(repr(value))}"
    ):
        read_transactions(written, **MAP)
