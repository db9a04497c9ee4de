"""Customer ids that differ only in case or surrounding spaces (emails): counted in a
note; normalize_ids=True lower-cases and strips them, counted."""

from __future__ import annotations

import pandas as pd
import pytest

from rfmml.data import load_cdnow, read_transactions
from rfmml.features import rfm_table


@pytest.fixture(scope="module")
def emails() -> pd.DataFrame:
    """2,000 CDNOW rows keyed by email; two customers' rows partly written otherwise."""
    tx = load_cdnow().head(2_000).copy()
    tx["customer_id"] = "Customer" + tx["customer_id"].astype(str) + "@Shop.example"
    first, second = tx["customer_id"].iloc[0], tx["customer_id"].iloc[1]
    tx.loc[tx.index[[100, 200]], "customer_id"] = [first.lower(), f" {first.upper()} "]
    tx.loc[tx.index[300], "customer_id"] = second.lower()
    return tx


def test_ids_differing_only_in_case_are_counted_with_examples(emails):
    """They were two customers each, silently (a CRM export writes emails as typed)."""
    tx, report = read_transactions(emails)
    assert tx["customer_id"].nunique() == emails["customer_id"].str.strip().nunique()
    (note,) = [n for n in report.notes if "upper/lower case" in n]
    first = emails["customer_id"].iloc[0]
    assert note.startswith("customer_id: 3 ids differ from another only in upper/lower case "
                           "(2 customers written several ways")  # fmt: skip
    assert repr(first) in note and repr(first.lower()) in note and repr(first.upper()) in note
    assert "normalize_ids=True (CLI --normalize-ids" in note


def test_normalize_ids_lower_cases_and_merges_them_counted(emails):
    tx, report = read_transactions(emails, normalize_ids=True)
    merged = emails.assign(customer_id=emails["customer_id"].str.strip().str.lower())
    pd.testing.assert_frame_equal(rfm_table(tx), rfm_table(merged))
    (note,) = [n for n in report.notes if "normalize_ids" in n]
    assert note.startswith("customer_id: normalize_ids lower-cased the ids of 1,998 rows; 3 ids "
                           "written in other case merged into 2 customers")  # fmt: skip


def test_ids_of_one_spelling_each_get_no_note():
    tx, report = read_transactions(load_cdnow().head(500).astype({"customer_id": str}))
    assert not any("case" in n for n in report.notes)
