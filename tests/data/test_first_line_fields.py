"""Order exports that write the order's fields on its first line only (Shopify's orders
export): the other lines take them from their order, counted in a note."""

from __future__ import annotations

import pandas as pd
import pytest

from rfmml.data import load_cdnow, read_transactions
from rfmml.features import rfm_table


@pytest.fixture(scope="module")
def lines() -> pd.DataFrame:
    """800 CDNOW purchases as orders of up to 3 lines, with every field on every line."""
    tx = load_cdnow().head(800).reset_index(drop=True)
    n = tx["n_items"].clip(1, 3).to_numpy()
    rows = tx.loc[tx.index.repeat(n)].reset_index()
    rows["line"] = rows.groupby("index").cumcount()
    return pd.DataFrame({
        "Name": "#" + (1000 + rows["index"]).astype(str),
        "Email": "c" + rows["customer_id"].astype(str) + "@shop.example",
        "Created at": rows["timestamp"].dt.strftime("%Y-%m-%d %H:%M:%S"),
        "Total": rows["amount"].where(rows["line"] == 0),
        "Lineitem price": (rows["amount"] / n[rows["index"]]).round(4),
        "Lineitem quantity": 1,
        "first": rows["line"] == 0,
    })  # fmt: skip


def _first_line_only(lines: pd.DataFrame, columns: list[str]) -> pd.DataFrame:
    out = lines.copy()
    out.loc[~out["first"], columns] = None
    return out.drop(columns="first")


@pytest.mark.parametrize("kind", ["totals", "line items"])
def test_order_fields_on_the_first_line_only(lines, tmp_path, kind):
    """The other lines were removed as 'missing customer_id': with line items their value
    was lost from the order's total."""
    mapping = dict(customer="Email", timestamp="Created at", order="Name")
    if kind == "totals":
        mapping["amount"] = "Total"
    else:
        mapping |= {"quantity": "Lineitem quantity", "price": "Lineitem price"}
    full = lines.drop(columns="first")
    sparse = _first_line_only(lines, ["Email", "Created at"])
    full.to_csv(tmp_path / "full.csv", index=False)
    sparse.to_csv(tmp_path / "sparse.csv", index=False)
    expected, _ = read_transactions(tmp_path / "full.csv", **mapping)
    got, report = read_transactions(tmp_path / "sparse.csv", **mapping)
    pd.testing.assert_frame_equal(rfm_table(got), rfm_table(expected))
    n_later = int((~lines["first"]).sum())
    assert report.removed["missing customer_id"] == 0
    assert report.merged["order lines summed into one row per order"] == n_later
    (note,) = [n for n in report.notes if "first line" in n]
    assert note.startswith(f"{n_later:,} order lines without their order's customer id")


def test_an_order_with_no_customer_on_any_line_is_still_removed(lines):
    guest = _first_line_only(lines, ["Email", "Created at"])
    guest.loc[guest["Name"] == "#1000", "Email"] = None
    _, report = read_transactions(guest, customer="Email", timestamp="Created at", order="Name",
                                  amount="Total")  # fmt: skip
    assert report.removed["missing customer_id"] == int((lines["Name"] == "#1000").sum())


def test_the_currency_on_the_first_line_only(lines, tmp_path):
    """With --currency EUR, the lines without the currency were removed as 'not EUR'."""
    shop = lines.assign(Currency="EUR")
    sparse = _first_line_only(shop, ["Email", "Created at", "Currency"])
    mapping = dict(customer="Email", timestamp="Created at", order="Name",
                   quantity="Lineitem quantity", price="Lineitem price")  # fmt: skip
    expected, _ = read_transactions(lines.drop(columns="first"), **mapping)
    got, report = read_transactions(sparse, **mapping, currency="EUR")
    pd.testing.assert_frame_equal(rfm_table(got), rfm_table(expected))
    assert report.removed["Currency not 'EUR'"] == 0


def test_text_totals_on_the_first_line_only(lines, tmp_path):
    """'€12.50' totals (text) with blank later lines: those lines count 0."""
    written = lines.assign(Total=lines["Total"].map(lambda v: "" if pd.isna(v) else f"€{v:.2f}"))
    sparse = _first_line_only(written, ["Email", "Created at"])
    sparse.to_csv(tmp_path / "text.csv", index=False)
    mapping = dict(customer="Email", timestamp="Created at", order="Name", amount="Total")
    expected, _ = read_transactions(lines.drop(columns="first"), **mapping)
    got, report = read_transactions(tmp_path / "text.csv", **mapping)
    pd.testing.assert_frame_equal(rfm_table(got), rfm_table(expected))
    assert report.removed["missing amount"] == 0
