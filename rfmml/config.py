"""Experiment configuration: a small TOML file in ``experiments/`` describes a whole run.

Example (``experiments/cdnow.toml``)::

    [experiment]
    name = "cdnow"
    primary_metric = "buy_again_auc"

    [data]
    source = "cdnow"            # a bundled dataset, or a CSV / Parquet path
    customer = "customer_id"
    timestamp = "timestamp"
    amount = "amount"

    [periods]
    calibration_end = "1997-09-30"
    observation_end = "1998-06-30"
    freq = "W"

    [[segmentations]]
    name = "rf_grid"
    kind = "rules"
    scheme = "rf_grid"

    [[segmentations]]
    name = "kmeans_auto"
    kind = "kmeans"
    n_clusters = "auto"

    [models]
    horizon = 52
    discount_rate = 0.0

Every key is checked: an unknown key or a bad value raises
:class:`~rfmml.errors.ConfigError` naming the key and what is allowed.
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from rfmml.errors import ConfigError

__all__ = [
    "BUILTIN_SOURCES",
    "DataConfig",
    "ExperimentConfig",
    "ModelsConfig",
    "SegmentationConfig",
    "load_config",
]

BUILTIN_SOURCES = ("cdnow", "online_retail")
PRIMARY_METRICS = (
    "buy_again_auc",
    "spend_variance_explained",
    "top_revenue_capture",
    "best_segment_lift",
    "silhouette",
    "calinski_harabasz",
    "davies_bouldin",
    "stability_ari_mean",
)


@dataclass
class DataConfig:
    """Where the transactions come from and how their columns map."""

    source: str = "cdnow"
    customer: str = "customer_id"
    timestamp: str = "timestamp"
    amount: str = "amount"
    group: str | None = None
    order: str | None = None
    negative_amounts: str = "drop"
    drop_zero_amounts: bool = False
    drop_duplicates: bool = False
    timestamp_format: str | None = None
    sample_customers: int | None = None
    dayfirst: bool | None = None
    quantity: str | None = None
    price: str | None = None
    cancellation_prefix: str | None = None
    encoding: str | None = None
    separator: str | None = None

    def reader_options(self) -> dict[str, Any]:
        """Keyword arguments of :func:`rfmml.data.read_transactions` for a file source."""
        return {
            "customer": self.customer,
            "timestamp": self.timestamp,
            "amount": self.amount or None,
            "group": self.group,
            "order": self.order,
            "quantity": self.quantity,
            "price": self.price,
            "cancellation_prefix": self.cancellation_prefix,
            "negative_amounts": self.negative_amounts,
            "drop_zero_amounts": self.drop_zero_amounts,
            "drop_duplicates": self.drop_duplicates,
            "timestamp_format": self.timestamp_format,
            "dayfirst": self.dayfirst,
            "encoding": self.encoding,
            "separator": self.separator,
        }


@dataclass
class SegmentationConfig:
    """One segmentation to compare: rules (a scheme) or k-means."""

    name: str
    kind: str
    scheme: str = "rf_grid"
    n_scores: int = 5
    thresholds: dict[str, list[float]] | None = None
    recency_unit: str = "days"
    frequency_col: str = "n_orders"
    monetary_col: str = "total_spend"
    n_clusters: int | str = 4
    k_range: tuple[int, int] = (2, 10)


@dataclass
class ModelsConfig:
    """BG/NBD and Gamma-Gamma settings and the CLV horizon, in periods of ``freq``."""

    bgnbd_penalizer: float = 0.0
    gamma_gamma_penalizer: float = 0.0
    horizon: float = 52.0
    discount_rate: float = 0.0


@dataclass
class ExperimentConfig:
    """A whole experiment: data, periods, segmentations, models, evaluation, outputs."""

    name: str
    data: DataConfig
    calibration_end: pd.Timestamp
    observation_end: pd.Timestamp
    freq: str
    segmentations: list[SegmentationConfig]
    models: ModelsConfig = field(default_factory=ModelsConfig)
    primary_metric: str = "buy_again_auc"
    description: str = ""
    random_state: int = 0
    n_bootstrap: int = 10
    sample_size: int = 10_000
    tracking_uri: str | None = None
    output_dir: str = "rfmml-output"
    playbook: str | None = None
    source_path: str | None = None
    allow_end_beyond_data: bool = False

    def to_dict(self) -> dict[str, Any]:
        """Plain dictionary (dates as ISO strings), for logging as run parameters."""
        out = asdict(self)
        out["calibration_end"] = self.calibration_end.isoformat()
        out["observation_end"] = self.observation_end.isoformat()
        return out


_SECTIONS = {
    "experiment": {
        "name", "description", "primary_metric", "random_state",
    },
    "data": set(DataConfig.__dataclass_fields__),
    "periods": {"calibration_end", "observation_end", "freq", "allow_end_beyond_data"},
    "segmentations": set(SegmentationConfig.__dataclass_fields__),
    "models": {"bgnbd", "gamma_gamma", "horizon", "discount_rate"},
    "evaluation": {"n_bootstrap", "sample_size"},
    "tracking": {"tracking_uri"},
    "output": {"dir", "playbook"},
}  # fmt: skip


def _unknown(section: str, given: Mapping[str, Any], allowed: set[str]) -> None:
    extra = sorted(set(given) - allowed)
    if extra:
        raise ConfigError(
            f"unknown key(s) {extra} in [{section}]; allowed: {sorted(allowed)}"
        )


def _need(section: Mapping[str, Any], key: str, where: str) -> Any:
    if key not in section:
        raise ConfigError(f"missing required key '{key}' in [{where}]")
    return section[key]


def _date(value: Any, key: str) -> pd.Timestamp:
    try:
        ts = pd.Timestamp(value)
    except (ValueError, TypeError) as exc:
        raise ConfigError(f"[periods] {key} = {value!r} is not a date (use 'YYYY-MM-DD')") from exc
    if ts is pd.NaT:
        raise ConfigError(f"[periods] {key} must be a date")
    return ts


def _number(value: Any, key: str, *, minimum: float | None = None, integer: bool = False) -> Any:
    kinds = (int,) if integer else (int, float)
    if isinstance(value, bool) or not isinstance(value, kinds):
        kind = "an integer" if integer else "a number"
        raise ConfigError(f"{key} must be {kind}, got {value!r}")
    if minimum is not None and value < minimum:
        raise ConfigError(f"{key} must be >= {minimum}, got {value!r}")
    return value


def _segmentation(raw: Mapping[str, Any], i: int) -> SegmentationConfig:
    where = f"segmentations[{i}]"
    if not isinstance(raw, Mapping):
        raise ConfigError(f"[[segmentations]] entry {i} must be a table")
    _unknown(where, raw, _SECTIONS["segmentations"])
    name = _need(raw, "name", where)
    kind = _need(raw, "kind", where)
    if kind not in ("rules", "kmeans"):
        raise ConfigError(f"{where}.kind = {kind!r}; allowed: 'rules', 'kmeans'")
    seg = SegmentationConfig(name=str(name), kind=kind)
    if "scheme" in raw:
        seg.scheme = str(raw["scheme"])
    if "n_scores" in raw:
        seg.n_scores = _number(raw["n_scores"], f"{where}.n_scores", minimum=2, integer=True)
    if "thresholds" in raw:
        if not isinstance(raw["thresholds"], Mapping):
            raise ConfigError(f"{where}.thresholds must be a table of R/F/M edge lists")
        seg.thresholds = {k: list(v) for k, v in raw["thresholds"].items()}
    for key in ("recency_unit", "frequency_col", "monetary_col"):
        if key in raw:
            setattr(seg, key, str(raw[key]))
    if "n_clusters" in raw:
        k = raw["n_clusters"]
        if k != "auto":
            _number(k, f"{where}.n_clusters", minimum=2, integer=True)
        seg.n_clusters = k
    if "k_range" in raw:
        k_range = raw["k_range"]
        if not (isinstance(k_range, list) and len(k_range) == 2):
            raise ConfigError(f"{where}.k_range must be [min_k, max_k], got {k_range!r}")
        seg.k_range = (int(k_range[0]), int(k_range[1]))
    return seg


def _playbook_path(value: Any, source_path: str | None) -> str | None:
    """The playbook file, resolved against the config's folder; it must exist."""
    if value is None:
        return None
    path = Path(str(value))
    if not path.is_absolute() and source_path is not None:
        path = Path(source_path).parent / path
    if not path.is_file():
        raise ConfigError(f"[output] playbook = {str(value)!r} is not an existing TOML file")
    return str(path)


def load_config(config: str | Path | Mapping[str, Any]) -> ExperimentConfig:
    """Read and validate an experiment configuration.

    Parameters
    ----------
    config : str, pathlib.Path or mapping
        A TOML file path, or the already-parsed mapping.

    Returns
    -------
    ExperimentConfig

    Raises
    ------
    ConfigError
        Unknown sections or keys, missing required keys, bad values; the
        message names the key and what is allowed.
    """
    source_path = None
    if isinstance(config, str | Path):
        path = Path(config)
        if not path.exists():
            raise ConfigError(f"experiment config {str(path)!r} does not exist")
        try:
            raw = tomllib.loads(path.read_text())
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{path}: not valid TOML ({exc})") from exc
        source_path = str(path.resolve())
    elif isinstance(config, Mapping):
        raw = dict(config)
    else:
        raise ConfigError(f"config must be a TOML path or a mapping, got {type(config).__name__}")
    _unknown("top level", raw, set(_SECTIONS))

    exp = raw.get("experiment", {})
    _unknown("experiment", exp, _SECTIONS["experiment"])
    name = str(_need(exp, "name", "experiment"))
    primary = exp.get("primary_metric", "buy_again_auc")
    if primary not in PRIMARY_METRICS:
        raise ConfigError(
            f"[experiment] primary_metric = {primary!r}; allowed: {list(PRIMARY_METRICS)}"
        )

    data_raw = raw.get("data", {})
    _unknown("data", data_raw, _SECTIONS["data"])
    data = DataConfig(**data_raw)
    if data.negative_amounts not in ("drop", "net", "error"):
        raise ConfigError(
            f"[data] negative_amounts = {data.negative_amounts!r}; allowed: 'drop', 'net', 'error'"
        )
    if data.source in BUILTIN_SOURCES:
        mapped = {k: getattr(data, k) for k in ("customer", "timestamp", "amount")}
        defaults = DataConfig()
        renamed = {k: v for k, v in mapped.items() if v != getattr(defaults, k)}
        if renamed:
            raise ConfigError(
                f"[data] {sorted(renamed)} map columns of a file, but source = "
                f"{data.source!r} is a bundled dataset with canonical columns; remove them"
            )
    else:
        path = Path(data.source)
        if not path.is_absolute() and source_path is not None:
            candidate = Path(source_path).parent / path
            path = candidate if candidate.exists() else path
        if not path.exists():
            raise ConfigError(
                f"[data] source = {data.source!r} is neither a bundled dataset "
                f"{list(BUILTIN_SOURCES)} nor an existing file"
            )
        data.source = str(path)
    if data.sample_customers is not None:
        _number(data.sample_customers, "[data] sample_customers", minimum=10, integer=True)
    for key in ("dayfirst", "drop_zero_amounts", "drop_duplicates"):
        value = getattr(data, key)
        if not (isinstance(value, bool) or (key == "dayfirst" and value is None)):
            raise ConfigError(f"[data] {key} must be true or false, got {value!r}")
    if (data.quantity is None) != (data.price is None):
        raise ConfigError("[data] quantity and price go together (amount = quantity x price)")

    periods = raw.get("periods", {})
    _unknown("periods", periods, _SECTIONS["periods"])
    cal_end = _date(_need(periods, "calibration_end", "periods"), "calibration_end")
    obs_end = _date(_need(periods, "observation_end", "periods"), "observation_end")
    if cal_end >= obs_end:
        raise ConfigError(
            f"[periods] calibration_end ({cal_end.date()}) must be before observation_end "
            f"({obs_end.date()})"
        )
    beyond = periods.get("allow_end_beyond_data", False)
    if not isinstance(beyond, bool):
        raise ConfigError(f"[periods] allow_end_beyond_data must be true or false, got {beyond!r}")
    freq = periods.get("freq", "D")
    if freq not in ("D", "W", "M"):
        raise ConfigError(f"[periods] freq = {freq!r}; allowed: 'D', 'W', 'M'")

    segs_raw = raw.get("segmentations", [])
    if not isinstance(segs_raw, list) or not segs_raw:
        raise ConfigError("at least one [[segmentations]] entry is required")
    segs = [_segmentation(s, i) for i, s in enumerate(segs_raw)]
    names = [s.name for s in segs]
    if len(set(names)) != len(names):
        raise ConfigError(f"[[segmentations]] names must be unique, got {names}")

    models_raw = raw.get("models", {})
    _unknown("models", models_raw, _SECTIONS["models"])
    models = ModelsConfig()
    for key, attr in (("bgnbd", "bgnbd_penalizer"), ("gamma_gamma", "gamma_gamma_penalizer")):
        sub = models_raw.get(key, {})
        _unknown(f"models.{key}", sub, {"penalizer"})
        if "penalizer" in sub:
            setattr(models, attr, _number(sub["penalizer"], f"[models.{key}] penalizer", minimum=0))
    if "horizon" in models_raw:
        models.horizon = _number(
            models_raw["horizon"], "[models] horizon", minimum=1, integer=True
        )
    if "discount_rate" in models_raw:
        models.discount_rate = _number(
            models_raw["discount_rate"], "[models] discount_rate", minimum=0
        )

    evaluation = raw.get("evaluation", {})
    _unknown("evaluation", evaluation, _SECTIONS["evaluation"])
    tracking = raw.get("tracking", {})
    _unknown("tracking", tracking, _SECTIONS["tracking"])
    output = raw.get("output", {})
    _unknown("output", output, _SECTIONS["output"])
    return ExperimentConfig(
        name=name,
        description=str(exp.get("description", "")),
        primary_metric=primary,
        random_state=_number(exp.get("random_state", 0), "[experiment] random_state", integer=True),
        data=data,
        calibration_end=cal_end,
        observation_end=obs_end,
        freq=freq,
        segmentations=segs,
        models=models,
        n_bootstrap=_number(
            evaluation.get("n_bootstrap", 10), "[evaluation] n_bootstrap", minimum=0, integer=True
        ),
        sample_size=_number(
            evaluation.get("sample_size", 10_000),
            "[evaluation] sample_size",
            minimum=100,
            integer=True,
        ),
        tracking_uri=tracking.get("tracking_uri") or None,
        output_dir=str(output.get("dir", "rfmml-output")),
        playbook=_playbook_path(output.get("playbook"), source_path),
        source_path=source_path,
        allow_end_beyond_data=beyond,
    )
