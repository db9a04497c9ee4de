"""Experiment configs: every bad key or value names itself and what is allowed."""

from __future__ import annotations

import copy
import tomllib
from pathlib import Path

import pandas as pd
import pytest

from rfmml.config import load_config, to_toml
from rfmml.errors import ConfigError
from rfmml.segments import KMeansSegmenter, RFMScorer, RuleSegmenter

BASE = {
    "name": "x",
    "calibration_end": "1997-09-30",
    "observation_end": "1998-06-30",
    "freq": "W",
    "data": {"source": "cdnow"},
    "segmentations": [{"name": "rf_grid", "kind": "rules"}],
}
EXPERIMENTS = Path(__file__).resolve().parents[1] / "experiments"


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
    assert cfg.models.gamma_gamma == {"zero_spend": "exclude"}
    assert str(cfg.to_dict()["calibration_end"]) == "1997-09-30"


@pytest.mark.parametrize(
    ("path", "value", "message"),
    [
        ("data.colour", "red", r"unknown key\(s\) \['colour'\] in \[data\]; allowed: \["),
        ("freq", "Q", r"freq = 'Q'; allowed: 'D', 'W', 'M'"),
        ("calibration_end", "1999-01-01", r"calibration_end \(1999-01-01\) must be before"),
        ("observation_end", "not a date", r"observation_end = 'not a date' is not a date"),
        ("primary_metric", "accuracy", r"primary_metric = 'accuracy'; allowed: \["),
        ("primary_metric", "n_segments", r"primary_metric = 'n_segments'; allowed: \["),
        ("segmentations.0.kind", "dbscan", r"segmentations\[0\].kind = 'dbscan'; allowed"),
        (
            "segmentations.0.n_clusters",
            4,
            r"unknown key\(s\) \['n_clusters'\] in "
            r"segmentations\[0\]; allowed: \['kind', 'name', 'scheme', 'scorer'\]",
        ),
        (
            "segmentations.0.scorer",
            {"n_score": 5},
            r"unknown key\(s\) \['n_score'\] in segmentations\[0\]\.scorer; allowed: \[",
        ),
        ("segmentations.0.scorer", "quantile", r"segmentations\[0\]\.scorer must be a table"),
        ("data.source", "missing.csv", r"source = 'missing.csv' is neither a bundled dataset"),
        ("data.negative_amounts", "keep", r"negative_amounts = 'keep'; allowed"),
        ("data.drop_duplicates", "yes", r"\[data\]\.drop_duplicates must be true or false"),
        ("models.horizon", 0, r"\[models\] horizon must be >= 1"),
        ("models.horizon", 26.5, r"\[models\]\.horizon must be an integer, got 26\.5"),
        ("models.bgnbd", {"penalty": 0.1}, r"unknown key\(s\) \['penalty'\] in \[models\] bgnbd"),
        ("data.customer", "CustomerID", r"\['customer'\] map columns of a file, but source"),
        ("playbook", "nope.toml", r"playbook = 'nope.toml' is not an existing TOML file"),
        ("models.discount_rate", "5%", r"\[models\]\.discount_rate must be a number"),
        ("models.interval", 1.2, r"\[models\] interval must be a level in \(0, 1\), or 0"),
        ("models.n_draws", 1, r"\[models\] n_draws must be >= 2"),
        ("models.interval_method", "mcmc", r"\[models\] interval_method must be one of"),
        ("n_bootstrap", 1.5, r"the config\.n_bootstrap must be an integer"),
        ("tracking_uri", 3, r"the config\.tracking_uri must be text"),
        ("uri", "x", r"unknown key\(s\) \['uri'\] in the config"),
        (
            "models.purchase_models",
            ["bgnbd", "bgbb"],
            r"purchase_models = \['bgnbd', 'bgbb'\]: "
            r"a non-empty list of distinct names from \['bgnbd', 'mbgnbd', 'pareto_nbd'\]",
        ),
        ("models.purchase_models", [], r"purchase_models = \[\]: a non-empty list"),
        ("models.purchase_models", ["bgnbd", "bgnbd"], r"non-empty list of distinct names"),
        ("models.selection", "accuracy", r"\[models\] selection = 'accuracy'; allowed: \["),
        ("models.selection", "total_purchases_ratio", r"selection = 'total_purchases_ratio'"),
        ("models.churn_basis", "dead", r"churn_basis = 'dead'; allowed: 'no_purchase', 'alive'"),
        ("models.next_order_window", 0, r"\[models\] next_order_window must be >= 1"),
        ("models.pareto_nbd", {"penalty": 1}, r"\['penalty'\] in \[models\] pareto_nbd"),
    ],
)
def test_bad_values_name_the_key(path, value, message):
    with pytest.raises(ConfigError, match=message):
        load_config(_with(path, value))


def test_interval_keys_and_their_defaults():
    cfg = load_config(BASE)
    assert (cfg.models.interval, cfg.models.n_draws, cfg.models.interval_method) == (
        0.0, 200, "parametric")  # fmt: skip
    cfg = load_config("cdnow")
    assert cfg.models.interval == 0.9 and cfg.models.n_draws == 200
    again = load_config(_with("models.interval", 0))
    assert again.models.interval == 0.0


def test_model_choice_keys_defaults_and_round_trip():
    cfg = load_config(BASE)  # the layout before model choice: BG/NBD alone, as before
    assert cfg.models.purchase_models == ["bgnbd"]
    assert cfg.models.selection == "purchases_mae"
    assert cfg.models.churn_basis == "no_purchase"
    assert cfg.models.window("W") == 4 and cfg.models.window("D") == 30
    models = {
        "purchase_models": ["pareto_nbd", "bgnbd"],
        "selection": "bic",
        "churn_basis": "alive",
        "next_order_window": 8,
        "bgnbd": {"penalizer": 0.01},
        "pareto_nbd": {"penalizer": 0.001, "max_iter": 500},
    }
    cfg = load_config({**BASE, "models": models})
    assert cfg.models.window("W") == 8
    built = cfg.models.build_purchase_model("pareto_nbd")
    assert type(built).__name__ == "ParetoNBD" and built.penalizer == 0.001
    assert built.max_iter == 500
    assert cfg.models.build_purchase_model("bgnbd").penalizer == 0.01
    text = to_toml(cfg)
    assert 'purchase_models = ["pareto_nbd", "bgnbd"]' in text
    again = load_config(tomllib.loads(text))
    assert again == cfg and to_toml(again) == text


def test_missing_keys_duplicates_and_the_old_layout():
    config = copy.deepcopy(BASE)
    del config["calibration_end"]
    with pytest.raises(ConfigError, match=r"missing required key\(s\) \['calibration_end'\]"):
        load_config(config)
    config = copy.deepcopy(BASE)
    config["segmentations"] = []
    with pytest.raises(ConfigError, match=r"at least one \[\[segmentations\]\] entry"):
        load_config(config)
    config = copy.deepcopy(BASE)
    config["segmentations"] *= 2
    with pytest.raises(ConfigError, match="names must be unique"):
        load_config(config)
    with pytest.raises(ConfigError, match=r"the tables \['periods'\] are gone"):
        load_config(_with("periods.freq", "W"))


def test_segmentation_entries_are_estimator_parameters():
    config = _with("segmentations", [
        {"name": "r", "kind": "rules", "scheme": "rfm11",
         "scorer": {"method": "thresholds", "thresholds": {"R": [1, 2, 3, 4], "F": [1, 2, 3, 4],
                                                           "M": [1, 2, 3, 4]}}},
        {"name": "k", "kind": "kmeans", "n_clusters": "auto", "k_range": [2, 5]},
        {"name": "k7", "kind": "kmeans", "n_clusters": 3, "random_state": 7},
    ])  # fmt: skip
    cfg = load_config({**config, "random_state": 3})
    rules, kmeans, seeded = (s.build() for s in cfg.segmentations)
    assert isinstance(rules, RuleSegmenter) and isinstance(rules.scorer, RFMScorer)
    assert rules.scorer.get_params()["thresholds"]["R"] == [1, 2, 3, 4]
    assert isinstance(kmeans, KMeansSegmenter)
    assert kmeans.get_params()["k_range"] == [2, 5]
    assert kmeans.random_state == 3  # the experiment's seed, when the entry sets none
    assert seeded.random_state == 7


@pytest.mark.parametrize("name", ["cdnow", "online_retail"])
def test_bundled_configs_round_trip_through_toml(name, tmp_path):
    cfg = load_config(EXPERIMENTS / f"{name}.toml")
    text = to_toml(cfg)
    assert load_config(tomllib.loads(text)) == cfg
    path = tmp_path / f"{name}.toml"
    path.write_text(text)
    again = load_config(path)
    assert again == cfg and to_toml(again) == text
    # The layout is the dataclass layout: top-level keys are its fields.
    assert set(tomllib.loads(text)) <= set(cfg.to_dict())


def test_files(tmp_path):
    with pytest.raises(ConfigError, match="cannot read experiment config file .*nope.toml"):
        load_config(tmp_path / "nope.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("name = \n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config(bad)
    # a relative data path resolves against the config file's folder
    (tmp_path / "orders.csv").write_text("customer_id,timestamp,amount\n1,2024-01-01,1\n")
    good = tmp_path / "good.toml"
    good.write_text(
        'name = "x"\ncalibration_end = 2024-01-01\nobservation_end = "2024-02-01"\n'
        '[data]\nsource = "orders.csv"\n'
        '[[segmentations]]\nname = "r"\nkind = "rules"\n'
    )
    assert load_config(good).data.source == str(tmp_path / "orders.csv")


def test_bundled_experiments_are_real_copies_of_the_experiments_folder():
    from rfmml.config import bundled_experiments

    packaged = Path(__file__).resolve().parents[1] / "rfmml" / "_experiments"
    assert not packaged.is_symlink()
    ours = sorted(p.name for p in EXPERIMENTS.glob("*.toml"))
    assert sorted(p.name for p in packaged.glob("*.toml")) == ours
    for name in ours:
        assert (packaged / name).read_bytes() == (EXPERIMENTS / name).read_bytes(), (
            f"rfmml/_experiments/{name} differs from experiments/{name}; copy it over"
        )
    assert bundled_experiments() == ["cdnow", "online_retail"]
    assert load_config("cdnow") == load_config(EXPERIMENTS / "cdnow.toml")


def test_data_keys_of_a_new_users_export(tmp_path):
    """[data] since, until, normalize_ids, currency and currency_column reach the reader."""
    data = {"source": "cdnow", "since": "1997-01-05", "until": tomllib.loads(
        "d = 1998-03-31")["d"], "normalize_ids": True, "currency": "EUR",
        "currency_column": "Devise"}  # fmt: skip
    cfg = load_config(_with("data", data))
    options = cfg.data.reader_options()
    assert options["since"] == pd.Timestamp("1997-01-05")
    assert options["until"] == pd.Timestamp("1998-03-31")
    assert options["normalize_ids"] is True and options["currency"] == "EUR"
    assert options["currency_column"] == "Devise"
    assert load_config(tomllib.loads(to_toml(cfg))).data == cfg.data
    with pytest.raises(ConfigError, match=r"\[data\] since = 'soon' is not a date"):
        load_config(_with("data.since", "soon"))
