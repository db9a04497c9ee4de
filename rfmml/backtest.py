"""Rolling-origin backtest: BTYD models, a naive baseline and gradient boosting, origin by origin.

One calibration/holdout split says little about next quarter. A backtest
repeats it at ``K`` calibration ends (origins) spaced ``step_days`` apart, the
last at the config's ``calibration_end``; each origin is followed by a holdout
as long as the config's (``observation_end - calibration_end``). At every
origin and for every model it computes the metrics of
:mod:`rfmml.evaluation.backtest` on the same customers (those who bought by the
origin):

- every purchase model of the config's ``[models] purchase_models``, fitted on the
  origin's calibration summary, with Gamma-Gamma for order values;
- ``naive``: each customer's calibration purchase rate carried forward
  (:func:`rfmml.evaluation.holdout_predictions`' baseline);
- ``gbm``: scikit-learn's ``HistGradientBoostingRegressor`` (Poisson loss,
  seeded) on RFM and calendar features. It learns from the previous origin:
  features at origin ``k-1`` and the purchases its customers made in the
  ``min(step, holdout)`` that followed it, which are known by origin ``k``
  (waiting for the whole holdout of origin ``k-1`` would use the future when
  origins are closer than a holdout). Its prediction is rescaled from that
  window to the holdout length by the ratio of their periods. The first
  origin has no previous one, so no ``gbm`` row.

Segment migration is scored at every origin with a history: the first rule
segmentation of the config, fitted at the origin, labels customers now and
``migration_days`` later; ``forecast`` (:func:`rfmml.evaluation.migration.
forecast_migration` with the first purchase model) and ``history`` (the
realised transition matrix of the previous ``migration_days``, carried forward)
are compared with what happened by ``migration_tvd``.

:func:`backtest` computes (pure); :func:`record_backtest` writes
``backtest.csv`` (long: ``origin, model, metric, value``), the ranks, a figure
and the MLflow runs (a parent, one child per origin and model).
"""

from __future__ import annotations

import logging
import math
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from sklearn.ensemble import HistGradientBoostingRegressor
from threadpoolctl import threadpool_limits

from rfmml import tracking
from rfmml.config import ExperimentConfig, load_config
from rfmml.errors import ConfigError, DataError
from rfmml.evaluation.backtest import backtest_metrics, decile_calibration, migration_tvd
from rfmml.evaluation.metrics import BACKTEST_METRICS
from rfmml.evaluation.migration import PERIOD_DAYS, MigrationForecast, forecast_migration
from rfmml.features import btyd_summary, calibration_holdout, calibration_summary, rfm_table
from rfmml.models import GammaGamma, PurchaseModel
from rfmml.pipeline import load_experiment_data
from rfmml.plots.backtest import plot_backtest
from rfmml.segments import NEW, RuleSegmenter, segment_transitions

__all__ = [
    "BacktestResult",
    "backtest",
    "backtest_origins",
    "gbm_features",
    "rank_models",
    "record_backtest",
    "run_backtest",
]

logger = logging.getLogger(__name__)
Progress = Callable[[str], None]


@dataclass
class BacktestResult:
    """What :func:`backtest` computed.

    Attributes
    ----------
    config : ExperimentConfig
    origins : list of (Timestamp, Timestamp)
        Calibration end and holdout end of each origin.
    step_days, migration_days : float
    table : pandas.DataFrame
        Long format: ``origin`` (ISO date), ``model``, ``metric``, ``value``.
    ranks : pandas.DataFrame
        Mean rank of each model over origins and ranking metrics, best first.
    champion : str
        The model with the best mean rank.
    deciles : dict of (str, str) to DataFrame
        Decile calibration tables by (origin, model).
    forecast : MigrationForecast or None
        Segments ``migration_days`` after the observation end, from models
        fitted on the whole period.
    notes : list of str
        What was skipped and why.
    """

    config: ExperimentConfig
    origins: list[tuple[pd.Timestamp, pd.Timestamp]]
    step_days: float
    migration_days: float
    table: pd.DataFrame
    ranks: pd.DataFrame
    champion: str
    deciles: dict[tuple[str, str], pd.DataFrame] = field(default_factory=dict)
    forecast: MigrationForecast | None = None
    notes: list[str] = field(default_factory=list)

    def wide(self) -> pd.DataFrame:
        """Mean of each metric over origins: rows models, columns metrics."""
        return self.table.pivot_table(index="model", columns="metric", values="value")


# --------------------------------------------------------------------------- origins


def _holdout_days(cfg: ExperimentConfig) -> int:
    return int((cfg.observation_end.normalize() - cfg.calibration_end.normalize()).days)


def backtest_origins(
    cfg: ExperimentConfig, n_origins: int, step_days: float | None = None
) -> list[tuple[pd.Timestamp, pd.Timestamp]]:
    r"""Calibration and holdout ends of ``n_origins`` rolling origins.

    Origin :math:`k = 1..K` ends its calibration at
    :math:`c_k = c - (K - k)\,s` (``c`` the config's ``calibration_end``,
    ``s`` = ``step_days``) and its holdout at :math:`c_k + H`, with :math:`H`
    the config's holdout length, so the last origin is the config's split.
    The default step is :math:`H / K` rounded down to whole periods of
    ``freq`` (at least one period).

    Raises
    ------
    ConfigError
        ``n_origins < 1`` or a step that is not positive.
    """
    if int(n_origins) != n_origins or n_origins < 1:
        raise ConfigError(f"--origins must be a positive integer, got {n_origins!r}")
    holdout = _holdout_days(cfg)
    if step_days is None:
        period = PERIOD_DAYS[cfg.freq] if cfg.freq != "M" else 30.0
        step_days = max(period, math.floor(holdout / n_origins / period) * period)
    if not step_days > 0:
        raise ConfigError(f"step must be positive, got {step_days!r} days")
    ends = [
        (cfg.calibration_end - pd.Timedelta(days=(n_origins - 1 - k) * step_days)).normalize()
        for k in range(int(n_origins))
    ]
    return [(end, end + pd.Timedelta(days=holdout)) for end in ends]


# --------------------------------------------------------------------------- models


def _purchase_models(cfg: ExperimentConfig) -> dict[str, PurchaseModel]:
    """New purchase models to compare: the config's ``[models] purchase_models``, its parameters."""
    return {name: cfg.models.build_purchase_model(name) for name in cfg.models.purchase_models}


def _period_codes(ts: pd.Series, freq: str) -> np.ndarray:
    """Ordinal of each timestamp's calendar period (Monday weeks, calendar months)."""
    alias = {"D": "D", "W": "W-SUN", "M": "M"}[freq]
    return ts.dt.to_period(alias).array.asi8


def _actual_tracking(
    tx: pd.DataFrame, customers: pd.Index, cal_end: pd.Timestamp, obs_end: pd.Timestamp, freq: str,
    n_periods: int,
) -> np.ndarray:  # fmt: skip
    """Cumulative distinct purchase periods of ``customers`` after 1..n holdout periods.

    As ``frequency_holdout`` of :func:`rfmml.features.calibration_holdout`:
    a customer's purchases within one period count once; purchases in the
    calibration end's own period (after its last day) count in the first.
    """
    start, stop = (
        cal_end.normalize() + pd.Timedelta(days=1),
        obs_end.normalize() + pd.Timedelta(days=1),
    )
    rows = tx.loc[
        (tx["timestamp"] >= start) & (tx["timestamp"] < stop) & tx["customer_id"].isin(customers),
        ["customer_id", "timestamp"],
    ]
    base = _period_codes(pd.Series([cal_end]), freq)[0]
    offset = _period_codes(rows["timestamp"], freq) - base
    pairs = pd.DataFrame({"c": rows["customer_id"].to_numpy(), "o": offset}).drop_duplicates()
    per = np.bincount(np.clip(pairs["o"].to_numpy(), 1, n_periods) - 1, minlength=n_periods)
    return np.cumsum(per[:n_periods]).astype(float)


def _spend_columns(ch: pd.DataFrame, predicted_spend: np.ndarray) -> dict[str, Any]:
    actual = ch["frequency_holdout"].to_numpy(dtype=float)
    return {
        "actual_spend": ch["monetary_value_holdout"].to_numpy(dtype=float),
        "predicted_spend": predicted_spend,
        "spend_observed": (ch["frequency_cal"].to_numpy() > 0) & (actual > 0),
    }


def _frame(
    ch: pd.DataFrame, predicted: np.ndarray, probability: np.ndarray, order_value: np.ndarray,
    spend: np.ndarray | None,
) -> pd.DataFrame:  # fmt: skip
    cols: dict[str, Any] = {
        "actual_purchases": ch["frequency_holdout"].to_numpy(dtype=float),
        "predicted_purchases": predicted,
        "probability": probability,
        "actual_value": ch["spend_holdout"].to_numpy(dtype=float),
        "predicted_value": predicted * order_value,
    }
    if spend is not None:
        cols |= _spend_columns(ch, spend)
    return pd.DataFrame(cols, index=ch.index)


def gbm_features(
    tx: pd.DataFrame, at: pd.Timestamp, customers: pd.Index, freq: str
) -> pd.DataFrame:
    """RFM and calendar features of ``customers`` at the date ``at`` for the boosting baseline.

    Columns: the BTYD summary (``frequency``, ``recency``, ``T``,
    ``monetary_value``), ``recency_days``, ``tenure_days``, ``n_orders``,
    ``total_spend``, ``avg_order_value``, ``orders_last_30d``, ``_90d``,
    ``_180d`` (transactions in the last 30/90/180 days), ``first_month`` and
    ``last_month`` (calendar month of the first and last purchase), and
    ``origin_month`` (month of ``at``).
    """
    stop = at.normalize() + pd.Timedelta(days=1)
    # btyd_summary keeps the whole period of its end date; cut the log at the day first
    tx = tx.loc[tx["timestamp"] < stop]
    summary = btyd_summary(tx, observation_end=at, freq=freq).reindex(customers)
    rfm = rfm_table(tx, observation_end=at).reindex(customers)
    out = summary[["frequency", "recency", "T", "monetary_value"]].copy()
    for col in ("recency_days", "tenure_days", "n_orders", "total_spend", "avg_order_value"):
        out[col] = rfm[col].astype(float)
    for days in (30, 90, 180):
        recent = tx.loc[
            (tx["timestamp"] >= stop - pd.Timedelta(days=days)) & (tx["timestamp"] < stop),
            "customer_id",
        ]
        out[f"orders_last_{days}d"] = (
            recent.value_counts().reindex(customers, fill_value=0).to_numpy(dtype=float)
        )
    out["first_month"] = rfm["first_purchase"].dt.month.astype(float)
    out["last_month"] = rfm["last_purchase"].dt.month.astype(float)
    out["origin_month"] = float(at.month)
    # spend sums come from a parallel engine and may differ in the last bits from run to
    # run; rounded, the same log always gives the same trees
    return out.round(6)


# --------------------------------------------------------------------------- one origin


@dataclass
class _Origin:
    cal_end: pd.Timestamp
    obs_end: pd.Timestamp
    cal_holdout: pd.DataFrame
    summary: pd.DataFrame
    duration: np.ndarray
    n_periods: int
    actual_tracking: np.ndarray


def _origin(tx: pd.DataFrame, cal_end: pd.Timestamp, obs_end: pd.Timestamp, freq: str) -> _Origin:
    ch = calibration_holdout(tx, cal_end, obs_end, freq=freq)
    duration = ch["duration_holdout"].to_numpy(dtype=float)
    n = int(duration.max())
    return _Origin(
        cal_end, obs_end, ch, calibration_summary(ch), duration, n,
        _actual_tracking(tx, ch.index, cal_end, obs_end, freq, n),
    )  # fmt: skip


def _tracking(actual: np.ndarray, predicted: np.ndarray) -> pd.DataFrame:
    return pd.DataFrame({"actual": actual, "predicted": predicted})


def _btyd_frames(
    o: _Origin, models: dict[str, PurchaseModel], gg: GammaGamma
) -> tuple[dict[str, tuple[pd.DataFrame, pd.DataFrame]], list[str]]:
    order_value = gg.expected_order_value(o.summary).to_numpy(dtype=float)
    out: dict[str, tuple[pd.DataFrame, pd.DataFrame]] = {}
    notes: list[str] = []
    for name, model in models.items():
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                model.fit(o.summary)
        except Exception as exc:  # a model that cannot be fitted here is reported, not fatal
            notes.append(f"{o.cal_end.date()} {name}: not fitted ({type(exc).__name__}: {exc})")
            continue
        predicted = model.expected_purchases(o.summary, o.duration).to_numpy(dtype=float)
        probability = 1.0 - model.probability_no_purchase(o.summary, o.duration).to_numpy(
            dtype=float
        )
        curve = np.array(
            [
                model.expected_purchases(o.summary, np.minimum(t, o.duration)).sum()
                for t in range(1, o.n_periods + 1)
            ]
        )
        frame = _frame(o.cal_holdout, predicted, probability, order_value, order_value)
        out[name] = (frame, _tracking(o.actual_tracking, curve))
    return out, notes


def _naive_frames(o: _Origin) -> tuple[pd.DataFrame, pd.DataFrame]:
    x = o.summary["frequency"].to_numpy(dtype=float)
    T = o.summary["T"].to_numpy(dtype=float)
    rate = np.divide(x, T, out=np.zeros_like(x), where=T > 0)
    m = o.summary["monetary_value"].to_numpy(dtype=float)
    repeat = x > 0
    spend = np.where(repeat, m, m[repeat].mean() if repeat.any() else np.nan)
    predicted = rate * o.duration
    curve = np.array([(rate * np.minimum(t, o.duration)).sum() for t in range(1, o.n_periods + 1)])
    frame = _frame(o.cal_holdout, predicted, -np.expm1(-predicted), spend, spend)
    return frame, _tracking(o.actual_tracking, curve)


def _gbm_frames(
    tx: pd.DataFrame, o: _Origin, previous: pd.Timestamp, window_days: int, freq: str, seed: int,
    order_value: np.ndarray,
) -> tuple[pd.DataFrame, pd.DataFrame]:  # fmt: skip
    train_end = previous + pd.Timedelta(days=window_days)
    train = calibration_holdout(tx, previous, train_end, freq=freq)
    X_train = gbm_features(tx, previous, train.index, freq)
    y_train = train["frequency_holdout"].to_numpy(dtype=float)
    gbm = HistGradientBoostingRegressor(loss="poisson", max_iter=200, random_state=seed)
    X = gbm_features(tx, o.cal_end, o.cal_holdout.index, freq)
    # one OpenMP thread: histogram sums in a fixed order, so a seed gives the same model
    with threadpool_limits(limits=1, user_api="openmp"):
        gbm.fit(X_train.to_numpy(), y_train)
        raw = gbm.predict(X.to_numpy())
    scale = o.duration / float(train["duration_holdout"].max())
    predicted = np.maximum(raw, 0.0) * scale
    total = predicted.sum()
    curve = total * np.arange(1, o.n_periods + 1) / o.n_periods
    frame = _frame(o.cal_holdout, predicted, -np.expm1(-predicted), order_value, None)
    return frame, _tracking(o.actual_tracking, curve)


def _rule_segmentation(cfg: ExperimentConfig) -> Any:
    for seg in cfg.segmentations:
        if seg.kind == "rules":
            return seg.build()
    return RuleSegmenter("rf_grid")


def _realised_matrix(current: pd.Series, later: pd.Series) -> pd.DataFrame:
    matrix = pd.crosstab(current.astype(str), later.astype(str), normalize="index")
    matrix.index.name, matrix.columns.name = "from_segment", "to_segment"
    return matrix


def _migration_scores(
    tx: pd.DataFrame, o: _Origin, model: PurchaseModel, gg: GammaGamma, cfg: ExperimentConfig,
    days: float,
) -> tuple[dict[str, float], list[str]]:  # fmt: skip
    """``migration_tvd`` of the forecast and of the carried-forward history at one origin."""
    index = o.cal_holdout.index
    features = rfm_table(tx, observation_end=o.cal_end).loc[index]
    segmenter = _rule_segmentation(cfg).fit(features)
    forecast = forecast_migration(
        model, o.summary, features, segmenter, days, spend_model=gg, freq=cfg.freq
    )
    later = rfm_table(tx, observation_end=o.cal_end + pd.Timedelta(days=days)).loc[index]
    realised = _realised_matrix(forecast.current, segmenter.predict(later))
    scores = {"forecast": migration_tvd(forecast.matrix(), realised)}
    notes: list[str] = []
    past = o.cal_end - pd.Timedelta(days=days)
    try:
        history = segment_transitions(tx, [past, o.cal_end], _rule_segmentation(cfg))
        rates = history.matrix(normalize=True).drop(index=NEW, errors="ignore")
        scores["history"] = migration_tvd(rates.dropna(how="all"), realised)
    except DataError:
        notes.append(f"{o.cal_end.date()} history: no customer before {past.date()}")
    return scores, notes


# --------------------------------------------------------------------------- ranks


def rank_models(table: pd.DataFrame) -> pd.DataFrame:
    """Mean rank of each model over origins and the ranking metrics it has.

    Within each origin and metric of :data:`BACKTEST_METRICS` with a direction
    (``migration_tvd`` excepted: it ranks migration forecasts, not models),
    models are ranked 1 (best) to n, ties sharing the mean rank; a model's
    score is the mean of its ranks.

    Returns
    -------
    pandas.DataFrame
        Index ``model``; ``mean_rank``, ``n_ranks``; best first.
    """
    rows = table[
        table["metric"].map(lambda m: BACKTEST_METRICS.get(m) is not None)
        & (table["metric"] != "migration_tvd")
        & table["value"].notna()
    ].copy()
    sign = rows["metric"].map(lambda m: -1.0 if BACKTEST_METRICS[m] == "higher" else 1.0)
    rows["key"] = rows["value"] * sign
    rows["rank"] = rows.groupby(["origin", "metric"])["key"].rank(method="average")
    ranks = rows.groupby("model")["rank"].agg(mean_rank="mean", n_ranks="size")
    return ranks.sort_values(["mean_rank", "n_ranks"], ascending=[True, False])


# --------------------------------------------------------------------------- backtest


def backtest(
    config: str | Path | dict | ExperimentConfig,
    origins: int = 3,
    *,
    step_days: float | None = None,
    migration_days: float | None = None,
    progress: Progress | None = None,
) -> BacktestResult:
    """Backtest every purchase model, the naive baseline and gradient boosting at rolling origins.

    Parameters
    ----------
    config : path, mapping or ExperimentConfig
        The experiment; its data, ``freq``, ``[models]`` and the holdout
        length (``observation_end - calibration_end``) are used.
    origins : int, default 3
        Number of calibration ends ``K`` (see :func:`backtest_origins`).
    step_days : float, optional
        Days between origins; default the holdout over ``K`` in whole periods.
    migration_days : float, optional
        Horizon of the migration forecast; default ``step_days``.
    progress : callable, optional
        Called with a short message at each step.

    Returns
    -------
    BacktestResult

    Raises
    ------
    ConfigError
        Bad ``origins`` / ``step_days``, a grouped config, or a first origin
        before any transaction.
    """
    cfg = config if isinstance(config, ExperimentConfig) else load_config(config)
    if cfg.data.group is not None:
        raise ConfigError("backtest works on customers, not groups; remove [data] group")
    step = progress or (lambda message: None)
    points = backtest_origins(cfg, origins, step_days)
    step_d = (
        float((points[1][0] - points[0][0]).days)
        if len(points) > 1
        else float(step_days or _holdout_days(cfg))
    )
    horizon = float(migration_days if migration_days is not None else step_d)
    if not 0 < horizon <= _holdout_days(cfg):
        raise ConfigError(
            f"migration horizon must be in (0, {_holdout_days(cfg)}] days, got {horizon!r}"
        )
    step("loading transactions")
    tx, _, _ = load_experiment_data(cfg)
    first = tx["timestamp"].min()
    if points[0][0] < first:
        raise ConfigError(
            f"the first origin {points[0][0].date()} is before the first transaction "
            f"{first.date()}; use fewer origins or a shorter step"
        )
    rows: list[dict[str, Any]] = []
    deciles: dict[tuple[str, str], pd.DataFrame] = {}
    notes: list[str] = []
    if len(points) > 0:
        notes.append(f"{points[0][0].date()} gbm: first origin, no previous origin to learn from")
    window = int(min(step_d, _holdout_days(cfg)))

    def add(origin: str, model: str, metrics: dict[str, float]) -> None:
        rows.extend({"origin": origin, "model": model, "metric": k, "value": v}
                    for k, v in metrics.items())  # fmt: skip

    for k, (cal_end, obs_end) in enumerate(points):
        label = cal_end.date().isoformat()
        step(f"origin {label}: features and holdout")
        o = _origin(tx, cal_end, obs_end, cfg.freq)
        gg = cfg.models.build()[1]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            gg.fit(o.summary)
        models = _purchase_models(cfg)
        step(f"origin {label}: fitting {', '.join(models)}")
        frames, failed = _btyd_frames(o, models, gg)
        notes += failed
        frames["naive"] = _naive_frames(o)
        if k > 0:
            step(f"origin {label}: gradient boosting")
            order_value = gg.expected_order_value(o.summary).to_numpy(dtype=float)
            frames["gbm"] = _gbm_frames(
                tx, o, points[k - 1][0], window, cfg.freq, cfg.random_state, order_value
            )
        for name, (frame, curve) in frames.items():
            add(label, name, backtest_metrics(frame, curve))
            deciles[(label, name)] = decile_calibration(
                frame["actual_purchases"], frame["predicted_purchases"]
            )
        fitted = [n for n in models if n in frames]
        if fitted:
            step(f"origin {label}: segment migration")
            scores, skipped = _migration_scores(tx, o, models[fitted[0]], gg, cfg, horizon)
            notes += skipped
            for name, value in scores.items():
                add(label, name, {"migration_tvd": value})
    table = pd.DataFrame(rows, columns=["origin", "model", "metric", "value"])
    ranks = rank_models(table)
    step("forecasting segments after the observation end")
    forecast = _final_forecast(tx, cfg, horizon)
    return BacktestResult(
        config=cfg, origins=points, step_days=step_d, migration_days=horizon, table=table,
        ranks=ranks, champion=str(ranks.index[0]), deciles=deciles, forecast=forecast,
        notes=notes,
    )  # fmt: skip


def _final_forecast(tx: pd.DataFrame, cfg: ExperimentConfig, days: float) -> MigrationForecast:
    """Segments ``days`` after the observation end, models fitted on the whole period."""
    summary = btyd_summary(tx, observation_end=cfg.observation_end, freq=cfg.freq)
    features = rfm_table(tx, observation_end=cfg.observation_end).loc[summary.index]
    model = next(iter(_purchase_models(cfg).values()))
    gg = cfg.models.build()[1]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model.fit(summary)
        gg.fit(summary)
    segmenter = _rule_segmentation(cfg).fit(features)
    return forecast_migration(model, summary, features, segmenter, days, spend_model=gg,
                              freq=cfg.freq)  # fmt: skip


# --------------------------------------------------------------------------- record


def _save(fig: Figure, path: Path) -> Path:
    fig.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(fig)
    return path


def record_backtest(
    result: BacktestResult,
    *,
    output_dir: str | Path | None = None,
    tracking_uri: str | None = None,
) -> dict[str, Any]:
    """Write a backtest's files and MLflow runs.

    Files in ``output_dir`` (default ``<config output_dir>/backtest``):
    ``backtest.csv``, ``backtest_ranks.csv``, ``backtest_deciles.csv``,
    ``backtest.png``, and the forecast after the observation end:
    ``migration_forecast.csv`` (per customer), ``migration_matrix.csv`` and
    ``entering_at_risk.csv`` (when the scheme has an ``At Risk`` segment).

    MLflow: experiment ``<name>_backtest``, a parent run (parameters, the
    champion as tag ``rfmml.champion``, the files) and one child run per origin
    and model with its metrics.

    Returns
    -------
    dict
        ``files`` (name -> path), ``parent_run_id``, ``runs`` ((origin, model)
        -> run id), ``experiment_id``, ``tracking_uri``.
    """
    cfg = result.config
    out = Path(output_dir if output_dir is not None else Path(cfg.output_dir) / "backtest")
    out.mkdir(parents=True, exist_ok=True)
    files = {
        "backtest": out / "backtest.csv",
        "ranks": out / "backtest_ranks.csv",
        "deciles": out / "backtest_deciles.csv",
        "figure": out / "backtest.png",
    }
    result.table.to_csv(files["backtest"], index=False)
    result.ranks.to_csv(files["ranks"])
    deciles = pd.concat(
        {key: table for key, table in result.deciles.items()}, names=["origin", "model"]
    )
    deciles.to_csv(files["deciles"])
    _save(plot_backtest(result.table), files["figure"])
    if result.forecast is not None:
        files["migration_forecast"] = out / "migration_forecast.csv"
        files["migration_matrix"] = out / "migration_matrix.csv"
        result.forecast.table().to_csv(files["migration_forecast"])
        result.forecast.matrix().to_csv(files["migration_matrix"])
        if "At Risk" in result.forecast.probabilities.columns:
            files["entering_at_risk"] = out / "entering_at_risk.csv"
            result.forecast.entering("At Risk").to_csv(files["entering_at_risk"])
    uri = tracking.resolve_tracking_uri(tracking_uri, configured=cfg.tracking_uri)
    experiment_id = tracking.ensure_experiment(f"{cfg.name}_backtest", uri)
    runs: dict[tuple[str, str], str] = {}
    tags = {"rfmml.role": "backtest", "rfmml.champion": result.champion}
    with tracking.tracked_run("backtest", experiment_id=experiment_id, tags=tags) as parent:
        tracking.log_params(
            {
                "n_origins": len(result.origins),
                "origins": ",".join(c.date().isoformat() for c, _ in result.origins),
                "step_days": result.step_days,
                "holdout_days": _holdout_days(cfg),
                "migration_days": result.migration_days,
                "freq": cfg.freq,
                "models": ",".join(result.table["model"].unique()),
                "champion": result.champion,
            }
        )
        if result.notes:
            tracking.set_tags({"rfmml.notes": " | ".join(result.notes)[:5000]})
        means = result.table.groupby(["model", "metric"])["value"].mean()
        tracking.log_metrics({f"{m}.{metric}": v for (m, metric), v in means.items()})
        tracking.log_metrics({f"{m}.mean_rank": v for m, v in result.ranks["mean_rank"].items()})
        for (origin, model), group in result.table.groupby(["origin", "model"], sort=False):
            child_tags = {
                "rfmml.role": "backtest_origin",
                "rfmml.origin": str(origin),
                "rfmml.model": str(model),
            }
            with tracking.tracked_run(f"{origin} {model}", nested=True, tags=child_tags) as run:
                tracking.log_params({"origin": origin, "model": model})
                tracking.log_metrics(dict(zip(group["metric"], group["value"], strict=True)))
                if (origin, model) in result.deciles:
                    tracking.log_table(result.deciles[(origin, model)], "decile_calibration.csv")
            runs[(str(origin), str(model))] = run.info.run_id
        for path in files.values():
            tracking.log_artifact(path)
    return {
        "files": files,
        "parent_run_id": parent.info.run_id,
        "runs": runs,
        "experiment_id": experiment_id,
        "tracking_uri": uri,
    }


def run_backtest(
    config: str | Path | dict | ExperimentConfig,
    origins: int = 3,
    *,
    step_days: float | None = None,
    migration_days: float | None = None,
    output_dir: str | Path | None = None,
    tracking_uri: str | None = None,
    progress: Progress | None = None,
) -> tuple[BacktestResult, dict[str, Any]]:
    """:func:`backtest`, then :func:`record_backtest`; returns both results."""
    result = backtest(
        config, origins, step_days=step_days, migration_days=migration_days, progress=progress
    )
    return result, record_backtest(result, output_dir=output_dir, tracking_uri=tracking_uri)
