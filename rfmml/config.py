"""Experiment configuration: a small TOML file in ``experiments/`` describes a whole run.

The file's layout is the :class:`ExperimentConfig` dataclass: its plain fields are
top-level keys, ``data`` and ``models`` are tables, ``segmentations`` an array of
tables. Example (``experiments/cdnow.toml``, shortened)::

    name = "cdnow"
    primary_metric = "buy_again_auc"
    calibration_end = 1997-09-30
    observation_end = 1998-06-30
    freq = "W"

    [data]
    source = "cdnow"            # a bundled dataset, or a CSV / Parquet path

    [models]
    horizon = 52
    interval = 0.9              # <column>_lower/_upper from 200 parameter draws
    purchase_models = ["bgnbd", "mbgnbd", "pareto_nbd"]   # all fitted and compared
    selection = "purchases_mae"  # the holdout metric that picks the scoring model
    bgnbd = { penalizer = 0.0 }

    [[segmentations]]
    name = "rf_grid"
    kind = "rules"              # RuleSegmenter; the other keys are its parameters
    scheme = "rf_grid"

    [[segmentations]]
    name = "kmeans_auto"
    kind = "kmeans"             # KMeansSegmenter
    n_clusters = "auto"

A segmentation entry is its ``name``, its ``kind`` and the parameters of that
estimator, passed straight to its constructor (a ``scorer`` table builds the
:class:`~rfmml.segments.RFMScorer`). ``[models]`` holds:

- ``purchase_models``: the purchase models the experiment fits and compares
  on the holdout, by name (:data:`PURCHASE_MODELS`: ``"bgnbd"``,
  ``"mbgnbd"``, ``"pareto_nbd"``); default ``["bgnbd"]``. BG/BB (discrete
  transaction opportunities) is not offered: the experiment's summaries count
  purchases in continuous time.
- ``bgnbd``, ``mbgnbd``, ``pareto_nbd``, ``gamma_gamma``: the parameters of
  :class:`~rfmml.models.BetaGeoNBD`, :class:`~rfmml.models.ModifiedBetaGeoNBD`,
  :class:`~rfmml.models.ParetoNBD` and :class:`~rfmml.models.GammaGamma`.
- ``selection``: the metric that chooses the scoring model among them (a holdout
  or fit metric with a direction, :func:`rfmml.evaluation.selection_metrics`;
  default ``"purchases_mae"``, lower is better; ties go to the first listed).
- ``horizon`` and ``discount_rate``: the CLV horizon and per-period discount rate.
- ``churn_basis``: what ``churn_risk`` bands, ``"no_purchase"`` (P(no purchase in
  the horizon), default) or ``"alive"`` (1 - P(alive)).
- ``next_order_window``: the window, in periods of ``freq``, of the
  ``probability_order_within_window`` prediction column; default about a month
  (30 days, 4 weeks or 1 month).
 Keys are checked against the estimators'
``get_params()``, their values by the estimators themselves. Every other key and
value is checked here: an unknown key or a bad value raises
:class:`~rfmml.errors.ConfigError` naming the key and what is allowed.
:func:`to_toml` writes a config back; ``load_config`` of that text gives the same
config.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import types
import typing
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields
from importlib import resources
from pathlib import Path
from typing import Any, Literal

import pandas as pd
from sklearn.base import BaseEstimator

from rfmml._toml import check_keys, check_table, dumps, read_toml
from rfmml.errors import ConfigError
from rfmml.evaluation.metrics import (
    DEFAULT_PRIMARY,
    DEFAULT_SELECTION,
    ranking_metrics,
    selection_metrics,
)
from rfmml.models import BetaGeoNBD, GammaGamma, ModifiedBetaGeoNBD, ParetoNBD, PurchaseModel
from rfmml.models.uncertainty import INTERVAL_METHODS
from rfmml.segments import (
    KMeansSegmenter,
    RFMScorer,
    RuleSegmenter,
    builtin_schemes,
    load_scheme,
)

__all__ = [
    "BUILTIN_SOURCES",
    "ENGINES",
    "SEGMENTERS",
    "DataConfig",
    "ExperimentConfig",
    "ModelsConfig",
    "PURCHASE_MODELS",
    "SegmentationConfig",
    "bundled_experiments",
    "load_config",
    "load_scorer",
    "to_toml",
]

BUILTIN_SOURCES = ("cdnow", "online_retail")
#: Where a run computes: one machine, or inside Spark (see :mod:`rfmml.spark_run`).
ENGINES = ("pandas", "spark")

#: Purchase models an experiment can fit (``[models] purchase_models``), by config name.
PURCHASE_MODELS: dict[str, type[PurchaseModel]] = {
    "bgnbd": BetaGeoNBD,
    "mbgnbd": ModifiedBetaGeoNBD,
    "pareto_nbd": ParetoNBD,
}

#: Readable names of the purchase models, for tables and messages.
PURCHASE_MODEL_LABELS = {"bgnbd": "BG/NBD", "mbgnbd": "MBG/NBD", "pareto_nbd": "Pareto/NBD"}

#: What ``churn_risk`` bands (``[models] churn_basis``).
ChurnBasis = Literal["no_purchase", "alive"]

#: Default ``next_order_window`` per ``freq``: about a month.
_MONTH = {"D": 30, "W": 4, "M": 1}

#: Segmentation kinds and the estimator each builds.
SEGMENTERS: dict[str, type[BaseEstimator]] = {"rules": RuleSegmenter, "kmeans": KMeansSegmenter}

#: Estimator parameters given as a table build this estimator.
_NESTED_ESTIMATORS: dict[str, type[BaseEstimator]] = {"scorer": RFMScorer}

#: Without amounts the scorer's M slot reads this spend-free column, which R- and
#: F-only schemes never use (the scorer always scores three columns).
NO_SPEND_M = "orders_per_year"
#: k-means on recency and frequency, for logs without amounts.
_KMEANS_NO_SPEND = {
    "features": ("recency_days", "n_orders"),
    "log_features": ("n_orders",),
    "value_col": "n_orders",
}


#: What reading does with negative amounts (``negative_amounts`` of
#: :func:`rfmml.data.read_transactions`).
NegativeAmounts = Literal["drop", "net", "error"]

#: How ``rfmml run`` holds a file source's cleaned log (``[data] engine``).
DataEngine = Literal["duckdb", "pandas"]


@dataclass
class DataConfig:
    """Where the transactions come from and how their columns map.

    ``amount = ""`` declares a log without amounts: the experiment runs on
    recency and frequency, without spend metrics, spend model or spend
    columns (see :mod:`rfmml.pipeline`). Left out, ``amount`` maps the column
    named ``amount``, which must then exist.

    ``engine`` says how a file source's cleaned log is held by ``rfmml run``:
    ``"duckdb"`` (default) keeps it in DuckDB (:func:`rfmml.data.scan_transactions`)
    and every stage reads it there, so no pandas copy of the whole log is made;
    ``"pandas"`` reads it into one pandas frame (:func:`rfmml.data.read_transactions`),
    as rfmml did before (the results are the same). The bundled datasets are
    pandas frames either way.
    """

    source: str = "cdnow"
    customer: str = "customer_id"
    timestamp: str = "timestamp"
    amount: str = "amount"
    group: str | None = None
    order: str | None = None
    negative_amounts: NegativeAmounts = "drop"
    drop_zero_amounts: bool = False
    drop_duplicates: bool = False
    timestamp_format: str | None = None
    sample_customers: int | None = None
    dayfirst: bool | None = None
    quantity: str | None = None
    price: str | None = None
    cancellation_prefix: str | None = None
    status: str | None = None
    exclude_status: list[str] | str | None = None
    since: pd.Timestamp | None = None
    until: pd.Timestamp | None = None
    normalize_ids: bool = False
    currency: str | None = None
    currency_column: str | None = None
    encoding: str | None = None
    separator: str | None = None
    decimal: str | None = None
    engine: DataEngine = "duckdb"

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
            "status": self.status,
            "exclude_status": self.exclude_status,
            "since": self.since,
            "until": self.until,
            "normalize_ids": self.normalize_ids,
            "currency": self.currency,
            "currency_column": self.currency_column,
            "negative_amounts": self.negative_amounts,
            "drop_zero_amounts": self.drop_zero_amounts,
            "drop_duplicates": self.drop_duplicates,
            "timestamp_format": self.timestamp_format,
            "dayfirst": self.dayfirst,
            "encoding": self.encoding,
            "separator": self.separator,
            "decimal": self.decimal,
        }


@dataclass
class SegmentationConfig:
    """One segmentation to compare: a kind of segmenter and its parameters.

    ``params`` go straight to the constructor of ``SEGMENTERS[kind]``; a
    ``scorer`` table becomes an :class:`~rfmml.segments.RFMScorer`.
    """

    name: str
    kind: str
    params: dict[str, Any] = field(default_factory=dict)

    def build(self, spend: bool = True) -> BaseEstimator:
        """A new, unfitted segmenter.

        Parameters
        ----------
        spend : bool, default True
            Whether the transactions have amounts. Without them a rule scheme
            scores R and F only (its scorer's M slot reads ``orders_per_year``,
            which an R- and F-only scheme never uses) and k-means clusters
            ``recency_days`` and ``n_orders``, named with the ``rf_grid`` scheme
            unless one is set.

        Raises
        ------
        ConfigError
            Without spend: the scheme scores spend (M, as ``rfm11`` does), or a
            k-means parameter names ``total_spend``; one line naming the
            segmentation.
        """
        params = {
            key: _NESTED_ESTIMATORS[key](**value) if key in _NESTED_ESTIMATORS else value
            for key, value in self.params.items()
        }
        if not spend:
            params = self._without_spend(params)
        return SEGMENTERS[self.kind](**params)

    def _without_spend(self, params: dict[str, Any]) -> dict[str, Any]:
        """Parameters that score recency and frequency only (see :meth:`build`)."""
        kmeans = self.kind == "kmeans"
        if kmeans:
            spent = [k for k in _KMEANS_NO_SPEND if "total_spend" in _as_list(params.get(k))]
            if spent:
                raise ConfigError(
                    f"segmentation {self.name!r}: {spent} name total_spend, but the log has no "
                    "amounts; leave them out (k-means then clusters recency and orders)"
                )
            params = {**_KMEANS_NO_SPEND, "scheme": "rf_grid", **params}
        scheme = params.get("scheme", "rf_grid")
        spend_axes = sorted({"M", "FM"} & set(load_scheme(scheme).axes))
        if spend_axes:
            raise ConfigError(
                f"segmentation {self.name!r}: scheme {getattr(scheme, 'name', scheme)!r} "
                f"scores spend ({', '.join(spend_axes)}), but the log has no amounts; use an "
                "R- and F-only scheme such as rf_grid, or k-means"
            )
        scorer = params.get("scorer")
        if scorer is None:
            params["scorer"] = RFMScorer(monetary_col=NO_SPEND_M)
        elif scorer.monetary_col == "total_spend":
            params["scorer"] = scorer.set_params(monetary_col=NO_SPEND_M)
        return params


def _as_list(value: Any) -> list[Any]:
    if value is None:
        return []
    return [value] if isinstance(value, str) else list(value)


def _gamma_gamma_defaults() -> dict[str, Any]:
    # Repeat buyers whose repeat spend is $0 are left out of the fit and counted.
    return {"zero_spend": "exclude"}


def _bgnbd_only() -> list[str]:
    return ["bgnbd"]


@dataclass
class ModelsConfig:
    """Purchase models to compare, their parameters, the selection metric and scoring settings.

    ``interval`` (e.g. 0.9; 0 = off) adds ``<column>_lower``/``_upper`` to the
    predictions from ``n_draws`` parameter draws of each model, drawn by
    ``interval_method`` (``"parametric"``: asymptotic normal of the
    log-parameters; ``"bootstrap"``: refits on resampled customers).

    ``horizon`` and ``next_order_window`` are in periods of ``freq``.
    """

    purchase_models: list[str] = field(default_factory=_bgnbd_only)
    selection: str = DEFAULT_SELECTION
    bgnbd: dict[str, Any] = field(default_factory=dict)
    mbgnbd: dict[str, Any] = field(default_factory=dict)
    pareto_nbd: dict[str, Any] = field(default_factory=dict)
    gamma_gamma: dict[str, Any] = field(default_factory=_gamma_gamma_defaults)
    horizon: int = 52
    discount_rate: float = 0.0
    interval: float = 0.0
    n_draws: int = 200
    interval_method: str = "parametric"
    churn_basis: ChurnBasis = "no_purchase"
    next_order_window: int | None = None

    def build(self) -> tuple[BetaGeoNBD, GammaGamma]:
        """New, unfitted BG/NBD and Gamma-Gamma models."""
        return BetaGeoNBD(**self.bgnbd), GammaGamma(**self.gamma_gamma)

    def build_purchase_model(self, name: str) -> PurchaseModel:
        """A new, unfitted purchase model of ``purchase_models`` with its parameters."""
        return PURCHASE_MODELS[name](**getattr(self, name))

    def build_gamma_gamma(self) -> GammaGamma:
        """A new, unfitted Gamma-Gamma model."""
        return GammaGamma(**self.gamma_gamma)

    def window(self, freq: str) -> int:
        """``next_order_window``, or its default for ``freq`` (about a month)."""
        return self.next_order_window if self.next_order_window is not None else _MONTH[freq]


@dataclass(kw_only=True)
class ExperimentConfig:
    """A whole experiment: data, periods, segmentations, models, evaluation, outputs.

    ``random_state`` seeds the customer sample, the silhouette samples and the
    bootstraps, and is the ``random_state`` of segmenters that take one and do
    not set it. ``source_path`` (the file the config was read from) is not part
    of the layout.
    """

    name: str
    description: str = ""
    primary_metric: str = DEFAULT_PRIMARY
    random_state: int = 0
    calibration_end: pd.Timestamp
    observation_end: pd.Timestamp
    #: accept an observation_end far past the last transaction (see read_transactions)
    allow_end_beyond_data: bool = False
    freq: str = "D"
    n_bootstrap: int = 10
    sample_size: int = 10_000
    tracking_uri: str | None = None
    output_dir: str = "rfmml-output"
    playbook: str | None = None
    data: DataConfig = field(default_factory=DataConfig)
    models: ModelsConfig = field(default_factory=ModelsConfig)
    segmentations: list[SegmentationConfig]
    #: "pandas" (one machine: DuckDB and pandas) or "spark" (the batch path inside Spark)
    engine: str = "pandas"
    #: Spark master for engine = "spark" (e.g. "local[2]"); unset: the session spark-submit made
    spark_master: str | None = None
    source_path: str | None = field(default=None, compare=False, repr=False)

    def to_dict(self) -> dict[str, Any]:
        """The TOML layout as a plain dictionary (dates as ISO dates), e.g. to log as parameters."""
        out = asdict(self)
        del out["source_path"]
        out["calibration_end"] = self.calibration_end.date()
        out["observation_end"] = self.observation_end.date()
        out["segmentations"] = [
            {"name": s.name, "kind": s.kind, **s.params} for s in self.segmentations
        ]
        return out


def to_toml(config: ExperimentConfig) -> str:
    """The config as TOML text; :func:`load_config` reads it back to an equal config.

    Paths resolved while loading (the data file, a scheme or playbook file) are
    written as absolute paths.
    """
    return dumps(config.to_dict())


# --------------------------------------------------------------------------- checks


def _kinds(annotation: Any) -> tuple[type, ...]:
    """TOML value types accepted for a dataclass field annotation."""
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        return tuple(k for arg in typing.get_args(annotation) for k in _kinds(arg))
    if annotation is type(None):
        return (type(None),)
    if annotation is pd.Timestamp:
        return (str, dt.date)
    if origin is Literal:
        return tuple(dict.fromkeys(type(arg) for arg in typing.get_args(annotation)))
    if dataclasses.is_dataclass(annotation):
        return (dict,)
    base = origin or annotation
    if isinstance(base, type) and issubclass(base, Mapping):
        return (dict,)
    if base in (list, tuple):
        return (list,)
    return (base,)


def _spec(cls: type, skip: tuple[str, ...] = ()) -> dict[str, tuple[type, ...]]:
    hints = typing.get_type_hints(cls)
    return {f.name: _kinds(hints[f.name]) for f in fields(cls) if f.name not in skip}


def _date(value: str | dt.date, key: str) -> pd.Timestamp:
    """A date-like value (its type already checked) as a timestamp."""
    ts = pd.Timestamp(value) if _parses(value) else pd.NaT
    if pd.isna(ts):
        raise ConfigError(f"{key} = {value!r} is not a date (use YYYY-MM-DD)")
    return ts


def _parses(value: str | dt.date) -> bool:
    try:
        pd.Timestamp(value)
    except ValueError:
        return False
    return True


def _at_least(value: float, key: str, minimum: float) -> Any:
    if value < minimum:
        raise ConfigError(f"{key} must be >= {minimum}, got {value!r}")
    return value


def _near(source_path: str | None, value: str) -> str:
    """A relative path resolved against the config's folder when the file is there."""
    path = Path(value)
    if not path.is_absolute() and source_path is not None:
        candidate = Path(source_path).parent / path
        if candidate.exists():
            return str(candidate)
    return value


def _estimator_params(
    raw: Mapping[str, Any], cls: type[BaseEstimator], where: str
) -> dict[str, Any]:
    """Check parameter names against ``cls().get_params()``; nested estimator tables too."""
    allowed = cls().get_params(deep=False)
    check_keys(raw, allowed, where)
    params = dict(raw)
    for key, nested in _NESTED_ESTIMATORS.items():
        if key in params:
            if not isinstance(params[key], Mapping):
                raise ConfigError(f"{where}.{key} must be a table of {nested.__name__} parameters")
            params[key] = _estimator_params(params[key], nested, f"{where}.{key}")
    return params


def load_scorer(path: str | Path) -> RFMScorer:
    """An :class:`~rfmml.segments.RFMScorer` from a TOML file of its parameters.

    The file holds the keys of a segmentation's ``scorer`` table, e.g.::

        method = "thresholds"
        frequency_col = "orders_per_year"
        monetary_col = "spend_per_year"
        thresholds = { R = [30, 90, 180, 365], F = [2, 4, 8, 16], M = [500, 1000, 2500, 6000] }

    Raises
    ------
    ConfigError
        The file is missing, is not TOML, has an unknown key, or the scorer
        refuses its parameters (e.g. thresholds that do not increase).
    """
    where = Path(path)
    if not where.is_file():
        raise ConfigError(f"scorer file {str(where)!r} not found")
    raw = read_toml(where, "scorer")
    scorer = RFMScorer(**_estimator_params(raw, RFMScorer, where.name))
    try:
        scorer._check_params()  # the checks fit would make, before any data is read
    except ConfigError as exc:
        raise ConfigError(f"{where.name}: {exc}") from None
    return scorer


def _segmentation(
    raw: object, i: int, random_state: int, source_path: str | None
) -> SegmentationConfig:
    where = f"segmentations[{i}]"
    if not isinstance(raw, Mapping):
        raise ConfigError(f"[[segmentations]] entry {i} must be a table")
    kind = raw.get("kind")
    if kind not in SEGMENTERS:
        raise ConfigError(f"{where}.kind = {kind!r}; allowed: {sorted(SEGMENTERS)}")
    if not isinstance(raw.get("name"), str):
        raise ConfigError(f"{where}.name must be text, got {raw.get('name')!r}")
    cls = SEGMENTERS[kind]
    given = {k: v for k, v in raw.items() if k not in ("name", "kind")}
    check_keys(raw, {"name", "kind", *cls().get_params(deep=False)}, where)
    params = _estimator_params(given, cls, where)
    if isinstance(params.get("scheme"), str) and params["scheme"] not in builtin_schemes():
        params["scheme"] = _near(source_path, params["scheme"])
    if "random_state" in cls().get_params(deep=False):
        params.setdefault("random_state", random_state)
    return SegmentationConfig(name=raw["name"], kind=kind, params=params)


def _models(raw: object) -> ModelsConfig:
    models = check_table(raw, _spec(ModelsConfig), "[models]")
    if "horizon" in models:
        _at_least(models["horizon"], "[models] horizon", 1)
    if "discount_rate" in models:
        _at_least(models["discount_rate"], "[models] discount_rate", 0)
    interval = models.get("interval", 0.0)
    if not 0.0 <= interval < 1.0:
        raise ConfigError(
            f"[models] interval must be a level in (0, 1), or 0 for none; got {interval!r}"
        )
    if "interval" in models:
        models["interval"] = float(interval)
    if "n_draws" in models:
        _at_least(models["n_draws"], "[models] n_draws", 2)
    if models.get("interval_method", "parametric") not in INTERVAL_METHODS:
        raise ConfigError(
            f"[models] interval_method must be one of {list(INTERVAL_METHODS)}, "
            f"got {models['interval_method']!r}"
        )
    estimators: dict[str, type[BaseEstimator]] = {**PURCHASE_MODELS, "gamma_gamma": GammaGamma}
    for key, cls in estimators.items():
        if key in models:
            models[key] = _estimator_params(models[key], cls, f"[models] {key}")
    if "purchase_models" in models:
        names = models["purchase_models"]
        unknown = [n for n in names if n not in PURCHASE_MODELS]
        if unknown or not names or len(set(names)) != len(names):
            raise ConfigError(
                f"[models] purchase_models = {names!r}: a non-empty list of distinct names "
                f"from {list(PURCHASE_MODELS)} (BG/BB is for discrete opportunities and is "
                "not fitted by experiments)"
            )
    if models.get("selection", DEFAULT_SELECTION) not in selection_metrics():
        raise ConfigError(
            f"[models] selection = {models['selection']!r}; allowed: {selection_metrics()}"
        )
    basis = models.get("churn_basis", "no_purchase")
    if basis not in typing.get_args(ChurnBasis):
        raise ConfigError(f"[models] churn_basis = {basis!r}; allowed: 'no_purchase', 'alive'")
    if models.get("next_order_window") is not None:
        _at_least(models["next_order_window"], "[models] next_order_window", 1)
    if "gamma_gamma" in models:
        models["gamma_gamma"] = _gamma_gamma_defaults() | models["gamma_gamma"]
    return ModelsConfig(**models)


def _playbook_path(value: str | None, source_path: str | None) -> str | None:
    """The playbook file, resolved against the config's folder; it must exist."""
    if value is None:
        return None
    path = Path(_near(source_path, value))
    if not path.is_file():
        raise ConfigError(f"playbook = {value!r} is not an existing TOML file")
    return str(path)


_OLD_TABLES = {"experiment", "periods", "evaluation", "tracking", "output"}


def _bundled_folder() -> Path:
    # Package data: a copy of the top-level experiments/ folder (a test keeps them equal).
    return Path(str(resources.files("rfmml") / "_experiments"))


def bundled_experiments() -> list[str]:
    """Names of the experiment configs shipped with rfmml (``cdnow``, ``online_retail``).

    ``load_config(name)`` (and ``rfmml run NAME``) reads one when no file of
    that name exists.
    """
    return sorted(path.stem for path in _bundled_folder().glob("*.toml"))


def load_config(config: str | Path | Mapping[str, Any]) -> ExperimentConfig:
    """Read and validate an experiment configuration.

    Parameters
    ----------
    config : str, pathlib.Path or mapping
        A TOML file path, the name of a bundled experiment
        (:func:`bundled_experiments`), or the already-parsed mapping.

    Returns
    -------
    ExperimentConfig

    Raises
    ------
    ConfigError
        Unknown keys, missing required keys, bad values; the message names the
        key and what is allowed.
    """
    source_path = None
    if isinstance(config, str) and config in bundled_experiments() and not Path(config).exists():
        config = _bundled_folder() / f"{config}.toml"
    if isinstance(config, str | Path):
        raw = read_toml(Path(config), "experiment config")
        source_path = str(Path(config).resolve())
    elif isinstance(config, Mapping):
        raw = dict(config)
    else:
        raise ConfigError(f"config must be a TOML path or a mapping, got {type(config).__name__}")
    old = sorted(_OLD_TABLES & set(raw))
    if old:
        raise ConfigError(
            f"the tables {old} are gone: their keys (name, calibration_end, n_bootstrap, "
            f"output_dir, ...) now sit at the top level of the config"
        )
    top = check_table(
        raw,
        _spec(ExperimentConfig, skip=("source_path",)),
        "the config",
        required=("name", "calibration_end", "observation_end", "segmentations"),
    )
    if top.get("primary_metric", DEFAULT_PRIMARY) not in ranking_metrics():
        raise ConfigError(
            f"primary_metric = {top['primary_metric']!r}; allowed: {ranking_metrics()}"
        )
    for key, minimum in (("n_bootstrap", 0), ("sample_size", 100)):
        if key in top:
            _at_least(top[key], key, minimum)

    data_raw = check_table(top.get("data", {}), _spec(DataConfig), "[data]")
    negative = data_raw.get("negative_amounts", "drop")
    if negative not in typing.get_args(NegativeAmounts):
        raise ConfigError(
            f"[data] negative_amounts = {negative!r}; allowed: 'drop', 'net', 'error'"
        )
    if data_raw.get("engine", "duckdb") not in typing.get_args(DataEngine):
        raise ConfigError(f"[data] engine = {data_raw['engine']!r}; allowed: 'duckdb', 'pandas'")
    for key in ("since", "until"):
        if data_raw.get(key) is not None:
            data_raw[key] = _date(data_raw[key], f"[data] {key}")
    data = DataConfig(**data_raw)
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
        _at_least(data.sample_customers, "[data] sample_customers", 10)
    if (data.quantity is None) != (data.price is None):
        raise ConfigError("[data] quantity and price go together (amount = quantity x price)")

    top["data"] = data

    top["calibration_end"] = _date(top["calibration_end"], "calibration_end")
    top["observation_end"] = _date(top["observation_end"], "observation_end")
    if top["calibration_end"] >= top["observation_end"]:
        raise ConfigError(
            f"calibration_end ({top['calibration_end'].date()}) must be before "
            f"observation_end ({top['observation_end'].date()})"
        )
    if top.get("engine", "pandas") not in ENGINES:
        raise ConfigError(f"engine = {top['engine']!r}; allowed: {list(ENGINES)}")
    if top.get("freq", "D") not in ("D", "W", "M"):
        raise ConfigError(f"freq = {top['freq']!r}; allowed: 'D', 'W', 'M'")

    segs_raw = top["segmentations"]
    if not segs_raw:
        raise ConfigError("at least one [[segmentations]] entry is required")
    seed = top.get("random_state", 0)
    segs = [_segmentation(s, i, seed, source_path) for i, s in enumerate(segs_raw)]
    names = [s.name for s in segs]
    if len(set(names)) != len(names):
        raise ConfigError(f"[[segmentations]] names must be unique, got {names}")
    top["segmentations"] = segs
    top["models"] = _models(top.get("models", {}))
    top["playbook"] = _playbook_path(top.get("playbook"), source_path)
    return ExperimentConfig(**top, source_path=source_path)
