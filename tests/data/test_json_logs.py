"""JSON logs (JSON Lines and arrays of records, compressed or not) read as their Parquet reads."""

from __future__ import annotations

import gzip
import json
import zipfile

import pandas as pd
import pytest

from rfmml.data import online_retail_path, read_transactions
from rfmml.errors import DataError

LINES = dict(customer="CustomerID", timestamp="InvoiceDate", quantity="Quantity",
             price="UnitPrice", order="InvoiceNo")  # fmt: skip


@pytest.fixture(scope="module")
def invoice_lines() -> pd.DataFrame:
    """3,000 Online Retail invoice lines, the times as ISO text (as an API writes them)."""
    lines = pd.read_parquet(online_retail_path()).head(3000)
    lines["InvoiceDate"] = lines["InvoiceDate"].dt.strftime("%Y-%m-%dT%H:%M:%S")
    return lines


def _written(frame: pd.DataFrame, path, kind: str) -> None:
    records = json.loads(frame.to_json(orient="records"))
    if kind == "lines":
        text = "".join(json.dumps(r) + "\n" for r in records)
    else:
        text = json.dumps(records, indent=1)
    if path.suffix == ".gz":
        path.write_bytes(gzip.compress(text.encode()))
    elif path.suffix == ".zip":
        with zipfile.ZipFile(path, "w") as archive:
            archive.writestr("orders.json", text)
    else:
        path.write_text(text)


@pytest.mark.parametrize(
    ("name", "kind"),
    [("orders.jsonl", "lines"), ("orders.ndjson", "lines"), ("orders.json", "array"),
     ("orders.json", "lines"), ("orders.jsonl.gz", "lines"), ("orders.json.zip", "array")],
)  # fmt: skip
def test_a_json_log_reads_as_its_csv(tmp_path, invoice_lines, name, kind):
    """Same rows, same cleaning report as a Parquet file of the same records (numbers
    stay numbers, text stays text: the float ids become integers on both)."""
    parquet = tmp_path / "orders.parquet"
    invoice_lines.to_parquet(parquet, index=False)
    path = tmp_path / name
    _written(invoice_lines, path, kind)
    expected, expected_report = read_transactions(parquet, engine="pandas", **LINES)
    got, report = read_transactions(path, **LINES)
    pd.testing.assert_frame_equal(got, expected)
    assert report.rows_in == expected_report.rows_in == len(invoice_lines)
    assert report.removed == expected_report.removed and report.rows_out == len(got)


def test_nested_objects_are_columns_with_dotted_names(tmp_path):
    """``{"customer": {"email": ...}}`` maps as ``customer.email``; a missing object is empty."""
    records = [
        {"id": 1, "created_at": "2024-01-02T10:00:00", "total": 12.5,
         "customer": {"email": "ann@x.com", "address": {"country": "DE"}}},
        {"id": 2, "created_at": "2024-01-05T11:00:00", "total": 7.0,
         "customer": {"email": "bo@x.com"}},
        {"id": 3, "created_at": "2024-02-01T09:00:00", "total": 3.0, "customer": None},
        {"id": 4, "created_at": "2024-02-03T09:00:00", "total": 4.0,
         "customer": {"email": "ann@x.com"}},
    ]  # fmt: skip
    path = tmp_path / "orders.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in records) + "\n")
    tx, report = read_transactions(path, customer="customer.email", timestamp="created_at",
                                   amount="total")  # fmt: skip
    assert tx["customer_id"].tolist() == ["ann@x.com", "bo@x.com", "ann@x.com"]
    assert tx["amount"].tolist() == [12.5, 7.0, 4.0]
    assert {k: n for k, n in report.removed.items() if n} == {"missing customer_id": 1}
    with pytest.raises(DataError, match=r"customer\.address\.country"):
        read_transactions(path, customer="customer", timestamp="created_at", amount="total")


@pytest.mark.parametrize(
    ("text", "expected"),
    [("", "found an empty file"), ("12\n", "found text starting with '1'"),
     ('{"a": 1}\n{"a": 2\n', r"line 2"), ('{"a": 1}\n[1, 2]\n', "line 2 is not an object")],
)  # fmt: skip
def test_what_is_not_a_json_log_is_named(tmp_path, text, expected):
    path = tmp_path / "orders.jsonl"
    path.write_text(text)
    with pytest.raises(DataError, match=expected) as caught:
        read_transactions(path)
    assert "orders.jsonl" in str(caught.value)


def test_an_unmapped_invoice_line_export_is_told_its_quantity_price_and_order(
    tmp_path, invoice_lines
):
    """The hint names the lines' quantity and unit price (not the unit price as the spend)."""
    path = tmp_path / "orders.jsonl"
    _written(invoice_lines, path, "lines")
    with pytest.raises(DataError) as caught:
        read_transactions(path)
    assert ("Likely: --customer CustomerID --timestamp InvoiceDate --quantity Quantity "
            "--price UnitPrice --order InvoiceNo.") in str(caught.value)  # fmt: skip


def _unmapped_error(frame: pd.DataFrame) -> str:
    """The error a frame with unmapped columns is refused with (its hint)."""
    with pytest.raises(DataError) as caught:
        read_transactions(frame)
    return str(caught.value)


def test_a_total_is_preferred_to_lines_and_a_price_alone_is_the_last_resort(tmp_path):
    both = pd.DataFrame({"Email": ["a"], "Order Date": ["2024-01-01"], "Order Total": [3.0],
                         "Lineitem quantity": [1], "Lineitem price": [3.0]})  # fmt: skip
    alone = pd.DataFrame({"Email": ["a"], "Order Date": ["2024-01-01"], "Price": [3.0]})
    hints = [_unmapped_error(frame) for frame in (both, alone)]
    assert "--amount 'Order Total'." in hints[0] and "--quantity" not in hints[0]
    assert "Likely: --customer Email --timestamp 'Order Date' --amount Price." in hints[1]


@pytest.mark.parametrize(
    ("orient", "indent"),
    [("columns", None), ("columns", 2), ("index", None), ("split", None), ("table", None)],
)
def test_a_table_written_by_pandas_to_json_reads_as_its_records(tmp_path, cdnow_tx, orient,
                                                                indent):  # fmt: skip
    """`DataFrame.to_json('log.json')` writes one object ({column: {row: value}} by default)."""
    log = cdnow_tx.head(1500)[["customer_id", "timestamp", "amount"]]
    records, whole = tmp_path / "records.jsonl", tmp_path / "log.json"
    log.to_json(records, orient="records", lines=True, date_format="iso")
    log.to_json(whole, orient=orient, date_format="iso", indent=indent)
    expected, expected_report = read_transactions(records)
    got, report = read_transactions(whole)
    pd.testing.assert_frame_equal(got, expected)
    assert report.rows_in == expected_report.rows_in == len(log)


def test_one_record_of_nested_objects_stays_one_record(tmp_path):
    path = tmp_path / "one.jsonl"
    path.write_text(json.dumps({"who": {"email": "a@x.com"},
                                "order": {"at": "2024-01-02", "total": 5.0}}) + "\n")  # fmt: skip
    tx, _ = read_transactions(path, customer="who.email", timestamp="order.at",
                              amount="order.total")  # fmt: skip
    assert tx["customer_id"].tolist() == ["a@x.com"] and tx["amount"].tolist() == [5.0]


def test_the_hint_skips_birthdays_and_reads_when(tmp_path):
    """A CRM export's birth date is not the purchase time; a column named When is."""
    crm = pd.DataFrame({"Email": ["a"], "Birth Date": ["1980-01-01"], "Signup Date": ["2020-01-01"],
                        "Order Date": ["2024-01-01"], "Order Total": [3.0]})  # fmt: skip
    plain = pd.DataFrame({"Customer": ["a"], "When": ["2024-01-01"], "Spend": [3.0]})
    hints = [_unmapped_error(frame) for frame in (crm, plain)]
    assert "Likely: --customer Email --timestamp 'Order Date' --amount 'Order Total'." in hints[0]
    assert "Likely: --customer Customer --timestamp When --amount Spend." in hints[1]
