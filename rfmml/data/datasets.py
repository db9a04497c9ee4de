"""Real transaction logs for examples, tests and benchmarks.

- CDNOW: the master log of 23,570 customers who first bought at CDNOW in the
  first quarter of 1997, followed to the end of June 1998 (Fader & Hardie).
  It ships inside the ``lifetimes`` package; rfmml reads the files with
  :mod:`importlib` and does not import ``lifetimes.datasets``.
- Online Retail: a UK-based online gift retailer, 2010-12-01 to 2011-12-09.
  Chen, D. (2015). Online Retail [Dataset]. UCI Machine Learning Repository,
  https://doi.org/10.24432/C5BW33, licensed CC BY 4.0. A copy ships with rfmml
  (``rfmml/data/_datasets/online_retail.parquet``, provenance in
  ``online_retail_SOURCE.txt`` beside it).
"""

from __future__ import annotations

import importlib.util
from importlib import resources
from pathlib import Path

import pandas as pd

from rfmml.data.report import CleaningReport
from rfmml.data.transactions import read_transactions
from rfmml.errors import DataError

__all__ = ["load_cdnow", "load_cdnow_summary", "load_online_retail", "online_retail_path"]


def _lifetimes_datasets() -> Path:
    spec = importlib.util.find_spec("lifetimes")
    if spec is None or not spec.submodule_search_locations:
        raise DataError(
            "the CDNOW data ships inside the 'lifetimes' package, which is not installed; "
            "pip install lifetimes"
        )
    return Path(next(iter(spec.submodule_search_locations))) / "datasets"


def load_cdnow() -> pd.DataFrame:
    """Load the CDNOW master transaction log.

    Returns
    -------
    pandas.DataFrame
        69,659 rows, 23,570 customers: ``customer_id`` (int), ``timestamp``
        (day resolution, 1997-01-01 to 1998-06-30), ``amount`` (dollars) and
        ``n_items`` (CDs bought). The cleaning report (nothing is removed; 255
        identical rows are kept and flagged, as in the published analyses) is
        in ``attrs["cleaning_report"]``.

    References
    ----------
    Fader, P. S., Hardie, B. G. S. and Lee, K. L. (2005). "Counting your
    customers" the easy way: an alternative to the Pareto/NBD model.
    Marketing Science, 24(2), 275-284.
    """
    raw = pd.read_csv(
        _lifetimes_datasets() / "CDNOW_master.txt",
        sep=r"\s+",
        header=None,
        skiprows=1,
        names=["customer_id", "date", "n_items", "amount"],
        dtype={"customer_id": "int64", "date": "string", "n_items": "int64"},
    )
    tx, report = read_transactions(raw, timestamp="date", timestamp_format="%Y%m%d")
    # read_transactions keeps canonical columns only; re-attach the item count
    # (no row was removed, so the rows still line up).
    tx["n_items"] = raw["n_items"].to_numpy()
    tx.attrs["cleaning_report"] = report.to_dict()
    tx.attrs["name"] = "cdnow"
    return tx


def load_cdnow_summary() -> pd.DataFrame:
    """Load the 2,357-customer CDNOW calibration summary used in the BG/NBD paper.

    Returns
    -------
    pandas.DataFrame
        Index ``customer_id``; float columns ``frequency``, ``recency``, ``T``
        (weeks, calibration period ending 1997-09-30) and ``monetary_value``
        (mean repeat-purchase value, 0 for one-time buyers). ``attrs["freq"]``
        is ``"W"``.
    """
    base = _lifetimes_datasets()
    summary = pd.read_csv(base / "cdnow_customers_summary.csv")
    spend = pd.read_csv(base / "cdnow_customers_summary_with_transactions.csv")
    if not summary["ID"].equals(spend["ID"]):
        raise DataError("the two CDNOW summary files do not list the same customers")
    out = pd.DataFrame(
        {
            "frequency": summary["frequency"].astype(float).to_numpy(),
            "recency": summary["recency"].astype(float).to_numpy(),
            "T": summary["T"].astype(float).to_numpy(),
            "monetary_value": spend["zbar"].astype(float).to_numpy(),
        },
        index=pd.Index(summary["ID"].to_numpy(), name="customer_id"),
    )
    out.attrs["freq"] = "W"
    return out


def online_retail_path() -> Path:
    """Path of the bundled UCI Online Retail Parquet file (541,909 invoice lines)."""
    return Path(str(resources.files("rfmml.data") / "_datasets" / "online_retail.parquet"))


def load_online_retail(lines: bool = False) -> pd.DataFrame:
    """Load UCI Online Retail with the usual cleaning, one transaction per invoice.

    Cleaning, every step counted in ``attrs["cleaning_report"]``: cancellation
    invoices (numbers starting with ``C``), lines without a CustomerID, lines
    with non-positive quantity or unit price. Lines are then summed to one
    transaction per invoice (``amount`` = sum of quantity x unit price).

    Parameters
    ----------
    lines : bool, default False
        Return the cleaned invoice lines instead of invoices (adds
        ``stock_code``, ``quantity``, ``unit_price``).

    Returns
    -------
    pandas.DataFrame
        Invoices: 18,532 rows, 4,338 customers, columns ``customer_id`` (str),
        ``timestamp``, ``amount`` (GBP), ``order_id`` (invoice) and ``country``.
    """
    raw = pd.read_parquet(online_retail_path())
    report = CleaningReport(rows_in=len(raw))
    cancelled = raw["InvoiceNo"].astype("string").str.startswith("C").fillna(False)
    report.remove("cancellation invoice ('C' prefix)", int(cancelled.sum()))
    raw = raw.loc[~cancelled]
    no_id = raw["CustomerID"].isna()
    report.remove("missing CustomerID", int(no_id.sum()))
    raw = raw.loc[~no_id]
    bad_qty = raw["Quantity"] <= 0
    report.remove("non-positive Quantity", int(bad_qty.sum()))
    raw = raw.loc[~bad_qty]
    bad_price = raw["UnitPrice"] <= 0
    report.remove("non-positive UnitPrice", int(bad_price.sum()))
    raw = raw.loc[~bad_price]
    frame = pd.DataFrame(
        {
            "customer_id": raw["CustomerID"].astype("int64").astype("string").to_numpy(),
            "timestamp": raw["InvoiceDate"].astype("datetime64[us]").to_numpy(),
            "amount": (raw["Quantity"] * raw["UnitPrice"]).astype("float64").to_numpy(),
            "order_id": raw["InvoiceNo"].astype("string").to_numpy(),
            "country": raw["Country"].astype("string").to_numpy(),
        }
    )
    if lines:
        frame["stock_code"] = raw["StockCode"].astype("string").to_numpy()
        frame["quantity"] = raw["Quantity"].to_numpy()
        frame["unit_price"] = raw["UnitPrice"].to_numpy()
        report.rows_out = len(frame)
    else:
        n_lines = len(frame)
        frame = (
            frame.groupby("order_id", sort=True)
            .agg(
                customer_id=("customer_id", "first"),
                timestamp=("timestamp", "min"),
                amount=("amount", "sum"),
                country=("country", "first"),
            )
            .reset_index()
            .loc[:, ["customer_id", "timestamp", "amount", "order_id", "country"]]
        )
        report.merge("invoice lines summed into one transaction per invoice", n_lines - len(frame))
        report.rows_out = len(frame)
    report.check()
    frame.attrs["cleaning_report"] = report.to_dict()
    frame.attrs["name"] = "online_retail"
    return frame
