"""Shop exports as users hand them over: compressed, duplicated, with order states."""

from __future__ import annotations

import bz2
import gzip
import lzma
import zipfile

import numpy as np
import pandas as pd
import pytest

from rfmml.data import read_transactions
from rfmml.errors import DataError

WIDE = "customer_id,timestamp,amount\na,2010-01-01,1,234.50\nb,2010-01-02,10\nc,2010-01-03,7\n"


@pytest.mark.parametrize("suffix", [".csv", ".csv.gz", ".csv.bz2", ".csv.xz", ".zip"])
def test_rows_wider_than_the_header_are_refused_in_every_compression(tmp_path, suffix):
    """A zip or xz file was read without the width check: 1,234.50 became an amount of 1."""
    path = tmp_path / f"log{suffix}"
    data = WIDE.encode()
    if suffix == ".zip":
        with zipfile.ZipFile(path, "w") as archive:
            archive.writestr("log.csv", data)
    else:
        opener = {".gz": gzip.compress, ".bz2": bz2.compress, ".xz": lzma.compress}
        path.write_bytes(opener.get(path.suffix, bytes)(data))
    with pytest.raises(DataError) as caught:
        read_transactions(path)
    message = str(caught.value)
    assert "1 of 3 rows have more fields than the header's 3" in message
    assert "first: 'a,2010-01-01,1,234.50'" in message and "\n" not in message


@pytest.fixture(scope="module")
def shop_lines(cdnow_tx) -> pd.DataFrame:
    """CDNOW orders of 300 customers as a shop's line export: each order in 1 to 3 lines
    of different prices, its state ('paid', 'refunded', 'voided') on the first line only."""
    tx = cdnow_tx[cdnow_tx["customer_id"] <= 300].reset_index(drop=True)
    rng = np.random.default_rng(3)
    n_lines = rng.integers(1, 4, len(tx))
    order = np.repeat(np.arange(len(tx)), n_lines)
    first = np.r_[True, order[1:] != order[:-1]]
    state = rng.choice(["paid", "paid", "Refunded", " voided "], len(tx))
    line = np.arange(len(order)) - np.flatnonzero(first)[np.cumsum(first) - 1]
    share = np.array([[1.0, 0, 0], [0.6, 0.4, 0], [0.5, 0.3, 0.2]])[n_lines[order] - 1, line]
    return pd.DataFrame({
        "Name": [f"#{1000 + i}" for i in order],
        "Email": tx["customer_id"].to_numpy()[order].astype(str),
        "Created at": tx["timestamp"].dt.strftime("%Y-%m-%d 10:00:00 -0500").to_numpy()[order],
        "Lineitem price": np.round(tx["amount"].to_numpy()[order] * share, 2),
        "Financial Status": np.where(first, state[order], ""),
    })  # fmt: skip


SHOP = dict(customer="Email", timestamp="Created at", amount="Lineitem price", order="Name")


def test_orders_of_an_excluded_state_are_removed_whole_and_counted(shop_lines, tmp_path):
    """Refunded and voided orders of a shop export counted as purchases: nothing could
    leave them out. Their every line goes (the state is on the first line only)."""
    states = shop_lines["Financial Status"].str.strip().str.lower()
    bad_orders = shop_lines.loc[states.isin(["refunded", "voided"]), "Name"]
    bad = shop_lines["Name"].isin(bad_orders)
    assert 0 < bad.sum() < len(shop_lines) and (shop_lines.loc[bad, "Financial Status"] == "").any()
    expected, _ = read_transactions(shop_lines[~bad].drop(columns="Financial Status"), **SHOP)
    shop_lines.to_csv(tmp_path / "orders.csv", index=False)
    shop_lines.to_parquet(tmp_path / "orders.parquet")
    for source in (shop_lines, tmp_path / "orders.csv", tmp_path / "orders.parquet"):
        tx, report = read_transactions(source, **SHOP, status="Financial Status",
                                       exclude_status=["refunded", "VOIDED"])  # fmt: skip
        pd.testing.assert_frame_equal(tx, expected)
        assert report.removed["Financial Status 'refunded', 'VOIDED' (not a purchase)"] == int(
            bad.sum()
        )
        assert report.rows_in == len(shop_lines)
        report.check()
    # without order ids a state is a row's own: lines without it stay
    tx, report = read_transactions(shop_lines, customer="Email", timestamp="Created at",
                                   amount="Lineitem price", status="Financial Status",
                                   exclude_status="refunded,voided")  # fmt: skip
    assert report.removed["Financial Status 'refunded', 'voided' (not a purchase)"] == int(
        states.isin(["refunded", "voided"]).sum()
    )


def test_exclude_status_needs_its_column_and_names_unknown_states(shop_lines):
    with pytest.raises(DataError, match=r"exclude_status=\['refunded'\] needs the column"):
        read_transactions(shop_lines, **SHOP, exclude_status="refunded")
    with pytest.raises(DataError, match=r"status='Financial Status' needs the states"):
        read_transactions(shop_lines, **SHOP, status="Financial Status")
    with pytest.raises(DataError, match=r"column\(s\) \['State'\] not found"):
        read_transactions(shop_lines, **SHOP, status="State", exclude_status="refunded")
    _, report = read_transactions(shop_lines, **SHOP, status="Financial Status",
                                  exclude_status=["refund", "voided"])  # fmt: skip
    assert (
        "Financial Status: no row has the state(s) ['refund'] (states in the log: ['', "
        "'Refunded', 'paid', 'voided']); check their spelling"
    ) in report.notes


def test_a_column_named_with_other_spaces_or_capitals_is_pointed_out(shop_lines, tmp_path):
    """'Customer email' for a file's 'Customer Email', or a header written 'a, b, c' (names
    with a leading space): the error listed the columns but not which one was meant."""
    path = tmp_path / "spaced.csv"
    path.write_text("customer_id, timestamp, amount\na, 2010-01-01, 5\nb, 2010-01-02, 7\n")
    with pytest.raises(DataError) as caught:
        read_transactions(path)
    assert (
        "Differing only in spaces or capitals: ' timestamp' for 'timestamp', ' amount' for "
        "'amount'; map the name as written."
    ) in str(caught.value)
    tx, _ = read_transactions(path, timestamp=" timestamp", amount=" amount")
    assert tx["amount"].tolist() == [5.0, 7.0]
    shop_lines.to_parquet(tmp_path / "orders.parquet")
    for source in (shop_lines, tmp_path / "orders.parquet"):
        with pytest.raises(DataError, match=r"Differing only in spaces or capitals: 'Created "
                           r"at' for 'created at'; map"):  # fmt: skip
            read_transactions(source, **{**SHOP, "timestamp": "created at"})
    with pytest.raises(DataError) as caught:  # no near name: no hint
        read_transactions(path, timestamp="date", amount=" amount")
    assert "Differing only" not in str(caught.value)


def test_orders_of_one_repeated_line_are_named_on_every_engine(shop_lines, tmp_path):
    """An order export appended to itself: each order's two copies were summed into an
    order of twice the amount, without a word (drop_duplicates compares whole orders)."""
    orders = shop_lines.drop_duplicates("Name").drop(columns="Financial Status")
    orders = orders.assign(**{"Created at": pd.to_datetime(orders["Created at"]).dt.tz_localize(
        None)})  # fmt: skip
    twice = pd.concat([orders, orders.iloc[:70]])
    twice.to_parquet(tmp_path / "twice.parquet")  # cleaned in DuckDB
    twice.to_csv(tmp_path / "twice.csv", index=False)
    note = (
        f"70 orders consist of one line repeated (same customer, time and amount; first: order "
        f"{orders['Name'].iloc[0]!r}), summed into one row each: if the file holds its rows "
        "twice (an export appended to itself), their amounts are doubled"
    )
    for source in (twice, tmp_path / "twice.parquet", tmp_path / "twice.csv"):
        tx, report = read_transactions(source, **SHOP)
        assert [n for n in report.notes if n.startswith(note)] != [], report.notes
        assert not [n for n in report.notes if "cleaned by pandas" in n]  # Parquet: DuckDB
        assert tx["amount"].sum() == pytest.approx(twice["Lineitem price"].sum())
    for source in (orders, shop_lines.drop(columns="Financial Status")):  # distinct lines
        _, report = read_transactions(source, **SHOP)
        assert not [n for n in report.notes if "one line repeated" in n]
