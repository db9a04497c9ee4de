"""Experiment configs: every bad key or value names itself and what is allowed."""

from __future__ import annotations

import copy

import pytest

from rfmml.config import load_config
from rfmml.errors import ConfigError

BASE = {
    "experiment": {"name": "x"},
    "data": {"source": "cdnow"},
    "periods": {"calibration_end": "1997-09-30", "observation_end": "1998-06-30", "freq": "W"},
    "segmentations": [{"name": "rf_grid", "kind": "rules"}],
}


def _with(path: str, value):
    config = copy.deepcopy(BASE)
    *parents, key = path.split(".")
    node = config
    for part in parents:
        node = node[int(part)] if isinstance(node, list) else node.setdefault(part, {})
    node[key] = value
    return config


def test_minimal_config_gets_defaults():
    cfg = load_config(BASE)
    assert cfg.freq == "W" and cfg.primary_metric == "buy_again_auc"
    assert cfg.models.horizon == 52 and cfg.n_bootstrap == 10
    assert cfg.to_dict()["calibration_end"] == "1997-09-30T00:00:00"


@pytest.mark.parametrize(
    ("path", "value", "message"),
    [
        ("data.colour", "red", r"unknown key\(s\) \['colour'\] in \[data\]; allowed: \["),
        ("periods.freq", "Q", r"\[periods\] freq = 'Q'; allowed: 'D', 'W', 'M'"),
        ("periods.calibration_end", "1999-01-01", r"calibration_end \(1999-01-01\) must be before"),
        ("periods.observation_end", "not a date", r"observation_end = 'not a date' is not a date"),
        ("experiment.primary_metric", "accuracy", r"primary_metric = 'accuracy'; allowed: \["),
        ("segmentations.0.kind", "dbscan", r"segmentations\[0\].kind = 'dbscan'; allowed"),
        ("segmentations.0.n_clusters", 1, r"segmentations\[0\].n_clusters must be >= 2"),
        ("segmentations.0.k_range", [2], r"k_range must be \[min_k, max_k\]"),
        ("data.source", "missing.csv", r"source = 'missing.csv' is neither a bundled dataset"),
        ("data.negative_amounts", "keep", r"negative_amounts = 'keep'; allowed"),
        ("models.horizon", 0, r"\[models\] horizon must be >= 1"),
        ("models.horizon", 26.5, r"\[models\] horizon must be an integer"),
        ("data.customer", "CustomerID", r"\['customer'\] map columns of a file, but source"),
        ("output.playbook", "nope.toml", r"playbook = 'nope.toml' is not an existing TOML file"),
        ("models.discount_rate", "5%", r"\[models\] discount_rate must be a number"),
        ("evaluation.n_bootstrap", 1.5, r"\[evaluation\] n_bootstrap must be an integer"),
        ("tracking.uri", "x", r"unknown key\(s\) \['uri'\] in \[tracking\]"),
    ],
)
def test_bad_values_name_the_key(path, value, message):
    with pytest.raises(ConfigError, match=message):
        load_config(_with(path, value))


def test_missing_sections_and_duplicates():
    config = copy.deepcopy(BASE)
    del config["periods"]["calibration_end"]
    with pytest.raises(ConfigError, match=r"missing required key 'calibration_end' in \[periods\]"):
        load_config(config)
    config = copy.deepcopy(BASE)
    config["segmentations"] = []
    with pytest.raises(ConfigError, match=r"at least one \[\[segmentations\]\] entry"):
        load_config(config)
    config = copy.deepcopy(BASE)
    config["segmentations"] *= 2
    with pytest.raises(ConfigError, match="names must be unique"):
        load_config(config)
    with pytest.raises(ConfigError, match="unknown key"):
        load_config(_with("extra.x", 1))


def test_files(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(tmp_path / "nope.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("[experiment\nname=1")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config(bad)
    # a relative data path resolves against the config file's folder
    (tmp_path / "orders.csv").write_text("customer_id,timestamp,amount\n1,2024-01-01,1\n")
    good = tmp_path / "good.toml"
    good.write_text(
        '[experiment]\nname = "x"\n[data]\nsource = "orders.csv"\n'
        '[periods]\ncalibration_end = "2024-01-01"\nobservation_end = "2024-02-01"\n'
        '[[segmentations]]\nname = "r"\nkind = "rules"\n'
    )
    assert load_config(good).data.source == str(tmp_path / "orders.csv")
