"""How the pipeline loads data: bundled logs take the config's cleaning options too."""

from __future__ import annotations

import pytest

from rfmml.config import load_config
from rfmml.data import CleaningReport
from rfmml.pipeline import load_experiment_data

BASE = {
    "name": "x",
    "calibration_end": "1997-09-30",
    "observation_end": "1998-06-30",
    "freq": "W",
    "data": {"source": "cdnow"},
    "segmentations": [{"name": "rf_grid", "kind": "rules"}],
}


def test_bundled_log_as_is():
    tx, report, source = load_experiment_data(load_config(BASE))
    assert len(tx) == 69_659 and list(tx.columns) == ["customer_id", "timestamp", "amount"]
    assert report.flagged == {"zero amount": 80, "identical to an earlier row": 255}
    assert source.endswith("CDNOW_master.txt")
    report.check()


def test_bundled_log_with_cleaning_options():
    config = {**BASE, "data": {"source": "cdnow", "drop_duplicates": True,
                               "drop_zero_amounts": True}}  # fmt: skip
    tx, report, _ = load_experiment_data(load_config(config))
    assert report.removed["identical to an earlier row"] == 255
    assert report.removed["zero amount"] == 80
    assert report.rows_in == 69_659 and report.rows_out == len(tx)
    report.check()


def test_bundled_log_takes_the_id_and_currency_options_too():
    """[data] normalize_ids and currency reach the bundled log's reader: never silently unused."""
    from rfmml.errors import DataError

    config = {**BASE, "data": {"source": "cdnow", "normalize_ids": True}}
    tx, report, _ = load_experiment_data(load_config(config))
    assert len(tx) == 69_659  # integer ids: nothing to lower-case
    config = {**BASE, "data": {"source": "cdnow", "currency": "EUR"}}
    with pytest.raises(DataError, match="currency='EUR' needs the column of the currencies"):
        load_experiment_data(load_config(config))


def test_sample_and_group(online_retail_tx):
    config = {**BASE, "data": {"source": "online_retail", "group": "country",
                               "order": "order_id", "sample_customers": 300}}  # fmt: skip
    config |= {"calibration_end": "2011-08-31", "observation_end": "2011-12-09", "freq": "D"}
    tx, report, _ = load_experiment_data(load_config(config))
    assert tx["customer_id"].nunique() == 300
    assert {"country", "order_id"} <= set(tx.columns)
    report.check()


def test_reports_chain():
    first = CleaningReport(rows_in=10, rows_out=8, removed={"a": 2})
    later = CleaningReport(rows_in=8, rows_out=7, removed={"a": 1}, flagged={"z": 3})
    both = first.then(later)
    assert (both.rows_in, both.rows_out, both.removed, both.flagged) == (10, 7, {"a": 3}, {"z": 3})
    both.check()
    with pytest.raises(ValueError, match="the later pass read 9 rows but this one wrote 8"):
        first.then(CleaningReport(rows_in=9, rows_out=9))
