"""rfm_table: the classic columns, worked by hand and checked against pandas."""

from __future__ import annotations

import numpy as np
import pandas as pd
import polars as pl
import pytest

from rfmml.errors import DataError
from rfmml.features import rfm_table


def test_rfm_table_worked_by_hand(tiny_tx):
    out = rfm_table(tiny_tx)  # end = 2024-02-05
    assert out.loc["a", "recency_days"] == 0
    assert out.loc["b", "recency_days"] == 16
    assert out.loc["c", "recency_days"] == 5
    assert out["n_orders"].tolist() == [4, 1, 2]
    assert out["total_spend"].tolist() == [75.0, 7.0, 3.0]
    assert out.loc["a", "avg_order_value"] == pytest.approx(18.75)
    assert out["tenure_days"].tolist() == [35.0, 16.0, 33.0]
    # all tenures are below the 90-day floor, so rates use 90 days of exposure
    years = 90 / 365.25
    np.testing.assert_allclose(out["orders_per_year"], np.array([4, 1, 2]) / years)
    np.testing.assert_allclose(out["spend_per_year"], np.array([75.0, 7.0, 3.0]) / years)
    assert out.loc["a", "first_purchase"] == pd.Timestamp("2024-01-01 09:00")
    assert out.loc["a", "last_purchase"] == pd.Timestamp("2024-02-05 08:00")
    assert out.attrs["observation_end"] == "2024-02-05T08:00:00"


def test_rfm_table_matches_plain_pandas_on_cdnow(cdnow_tx):
    end = pd.Timestamp("1998-06-30")
    out = rfm_table(cdnow_tx, min_tenure_days=30)
    g = cdnow_tx.groupby("customer_id")
    last, first = g["timestamp"].max(), g["timestamp"].min()
    np.testing.assert_array_equal(out["recency_days"], (end - last).dt.days.to_numpy())
    np.testing.assert_array_equal(out["tenure_days"], (end - first).dt.days.to_numpy())
    np.testing.assert_array_equal(out["n_orders"], g.size().to_numpy())
    np.testing.assert_allclose(out["total_spend"], g["amount"].sum().to_numpy(), rtol=1e-12)
    exposure = np.maximum((end - first).dt.days.to_numpy(), 30) / 365.25
    np.testing.assert_allclose(out["orders_per_year"], g.size().to_numpy() / exposure)


def test_orders_are_counted_by_order_id(online_retail_tx):
    lines_as_orders = online_retail_tx.assign(order_id=online_retail_tx["customer_id"])
    out = rfm_table(lines_as_orders)
    assert (out["n_orders"] == 1).all()
    by_invoice = rfm_table(online_retail_tx)
    assert by_invoice["n_orders"].sum() == 18_532


def test_observation_end_date_includes_its_whole_day(tiny_tx):
    out = rfm_table(tiny_tx, observation_end="2024-01-31")
    assert out.loc["c", "recency_days"] == 0  # the 23:59 purchase on Jan 31 counts
    assert out.loc["a", "n_orders"] == 3  # Feb 5 is after the end
    assert out.loc["a", "total_spend"] == 35.0


def test_rfm_table_per_group(online_retail_tx):
    out = rfm_table(online_retail_tx, group="country")
    assert out.index.names == ["customer_id", "country"]
    assert out["n_orders"].sum() == 18_532
    assert out["total_spend"].sum() == pytest.approx(online_retail_tx["amount"].sum())


def test_polars_in_polars_out(tiny_tx):
    out = rfm_table(pl.from_pandas(tiny_tx))
    assert isinstance(out, pl.DataFrame)
    pd.testing.assert_frame_equal(
        out.to_pandas().set_index("customer_id"), rfm_table(tiny_tx), check_dtype=False
    )


def test_min_tenure_must_be_positive(tiny_tx):
    with pytest.raises(ValueError, match="min_tenure_days must be positive"):
        rfm_table(tiny_tx, min_tenure_days=0)


def test_missing_columns_are_named(tiny_tx):
    with pytest.raises(DataError, match=r"\['customer_id'\] not found"):
        rfm_table(tiny_tx.rename(columns={"customer_id": "cust"}))
