"""The bundled real datasets load with the published counts."""

from __future__ import annotations

from rfmml.data import load_cdnow_summary


def test_cdnow_master_log(cdnow_tx):
    assert len(cdnow_tx) == 69_659
    assert cdnow_tx["customer_id"].nunique() == 23_570
    assert cdnow_tx["timestamp"].min().isoformat() == "1997-01-01T00:00:00"
    assert cdnow_tx["timestamp"].max().isoformat() == "1998-06-30T00:00:00"
    report = cdnow_tx.attrs["cleaning_report"]
    # kept and flagged, as the published analyses count them as purchase events
    assert report["flagged"] == {"zero amount": 80, "identical to an earlier row": 255}
    assert report["rows_out"] == 69_659


def test_online_retail_invoices(online_retail_tx):
    assert len(online_retail_tx) == 18_532
    assert online_retail_tx["customer_id"].nunique() == 4_338
    assert online_retail_tx["order_id"].is_unique
    assert (online_retail_tx["amount"] > 0).all()
    report = online_retail_tx.attrs["cleaning_report"]
    assert report["rows_in"] == 541_909
    assert report["removed"]["cancellation invoice ('C' prefix)"] == 9_288
    removed = sum(report["removed"].values())
    merged = sum(report["merged"].values())
    assert report["rows_in"] == report["rows_out"] + removed + merged


def test_cdnow_calibration_summary():
    summary = load_cdnow_summary()
    assert summary.shape == (2_357, 4)
    assert summary.attrs["freq"] == "W"
    assert (summary["recency"] <= summary["T"]).all()
    assert summary["frequency"].sum() == 2_457  # repeat purchases in the paper's sample
