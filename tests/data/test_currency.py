"""A log whose amounts are in several currencies is refused until one is picked."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from rfmml.data import load_cdnow, read_transactions
from rfmml.errors import DataError
from rfmml.features import rfm_table


@pytest.fixture(scope="module")
def shop(tmp_path_factory) -> tuple[pd.DataFrame, object]:
    """1,000 CDNOW rows as a shop export with a Currency column: EUR, a few USD and GBP."""
    tx = load_cdnow().head(1_000)
    currencies = np.where(np.arange(len(tx)) % 10 == 3, "USD", "EUR")
    currencies[[7, 8]] = "gbp "
    frame = pd.DataFrame({"Email": tx["customer_id"].astype(str).to_numpy(),
                          "Created at": tx["timestamp"].to_numpy(),
                          "Total": tx["amount"].to_numpy(), "Currency": currencies})  # fmt: skip
    path = tmp_path_factory.mktemp("shop") / "orders.csv"
    frame.to_csv(path, index=False)
    return frame, path


MAP = dict(customer="Email", timestamp="Created at", amount="Total")


def test_several_currencies_are_refused_naming_them_with_row_counts(shop):
    """Their amounts were summed as if one currency (a silently wrong spend)."""
    frame, path = shop
    for source in (frame, path):
        with pytest.raises(DataError) as caught:
            read_transactions(source, **MAP)
        message = str(caught.value)
        assert message.startswith("column 'Currency' holds 3 currencies: 'EUR' (898 rows), "
                                  "'USD' (100 rows), 'GBP' (2 rows)")  # fmt: skip
        assert "currency='EUR' (CLI --currency EUR" in message


def test_a_picked_currency_keeps_its_rows_counted(shop):
    frame, path = shop
    tx, report = read_transactions(path, **MAP, currency="eur")
    assert report.removed["Currency not 'EUR'"] == 102
    eur = frame[frame["Currency"] == "EUR"]
    expected = read_transactions(eur.drop(columns="Currency"), **MAP)[0]
    pd.testing.assert_frame_equal(rfm_table(tx), rfm_table(expected))
    assert any(n.startswith("amounts in EUR (column 'Currency')") for n in report.notes)


def test_one_currency_is_noted_and_a_column_can_be_named(shop):
    frame, _ = shop
    one = frame.assign(Currency="EUR").rename(columns={"Currency": "Devise"})
    _, report = read_transactions(one, **MAP, currency_column="Devise")
    assert "amounts in EUR (column 'Devise')" in report.notes
    with pytest.raises(DataError, match=r"currency='USD': column 'Devise' has no row in USD "
                       r"\(it holds 'EUR'\)"):  # fmt: skip
        read_transactions(one, **MAP, currency_column="Devise", currency="USD")
    with pytest.raises(DataError, match=r"currency='EUR' needs the column of the currencies"):
        read_transactions(one.drop(columns="Devise"), **MAP, currency="EUR")
