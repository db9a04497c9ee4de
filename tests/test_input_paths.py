"""Input options through the config and the pipeline's loader."""

from __future__ import annotations

import pandas as pd
import pytest

from rfmml.config import load_config
from rfmml.errors import ConfigError, DataError
from rfmml.pipeline import load_experiment_data

BASE = {
    "name": "x",
    "calibration_end": "1997-09-30",
    "observation_end": "2030-06-30",
    "freq": "W",
    "data": {"source": "cdnow"},
    "segmentations": [{"name": "rf_grid", "kind": "rules"}],
}


def test_config_observation_end_far_past_the_data_is_refused_unless_intended():
    with pytest.raises(DataError, match=r"observation_end 2030-06-30 is 11,688 days after"):
        load_experiment_data(load_config(BASE))
    tx, report, _ = load_experiment_data(load_config({**BASE, "allow_end_beyond_data": True}))
    assert len(tx) == 69_659
    assert any("as allowed" in note for note in report.notes)


def test_config_maps_a_line_item_export(tmp_path):
    lines = pd.DataFrame(
        {
            "Client": ["7", "7", "7", "8"],
            "Date": ["01/03/2010", "01/03/2010", "13/02/2010", "14/02/2010"],
            "Invoice": ["A1", "A1", "A2", "C3"],
            "Qty": [2, 1, 1, 1],
            "Price": [2.5, 1.0, 3.0, 4.0],
        }
    )
    lines.to_csv(tmp_path / "lines.csv", sep=";", index=False, encoding="latin-1")
    config = {
        **BASE,
        "data": {"source": str(tmp_path / "lines.csv"), "customer": "Client", "timestamp": "Date",
                 "order": "Invoice", "quantity": "Qty", "price": "Price",
                 "cancellation_prefix": "C", "encoding": "latin-1", "separator": ";"},
        "calibration_end": "2010-02-20",
        "observation_end": "2010-03-31",
    }  # fmt: skip
    tx, report, _ = load_experiment_data(load_config(config))
    assert tx["amount"].tolist() == [3.0, 6.0]
    assert tx["timestamp"].tolist() == [pd.Timestamp("2010-02-13"), pd.Timestamp("2010-03-01")]
    assert report.removed["negative amount (return or cancellation)"] == 1


@pytest.mark.parametrize(
    ("section", "key", "value", "message"),
    [
        ("data", "dayfirst", "yes", r"\[data\]\.dayfirst must be true or false"),
        ("data", "quantity", "Qty", r"\[data\] quantity and price go together"),
        (None, "allow_end_beyond_data", 1, r"allow_end_beyond_data must be true or false"),
    ],
)
def test_bad_input_keys(section, key, value, message):
    config = {**BASE, section: {**BASE[section], key: value}} if section else {**BASE, key: value}
    with pytest.raises(ConfigError, match=message):
        load_config(config)
