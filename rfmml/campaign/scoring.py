"""Batch predictions: one row per customer (and group) with segments, model scores and actions."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sklearn.utils import check_random_state
from sklearn.utils.validation import check_is_fitted

from rfmml.campaign.playbook import Playbook, load_playbook
from rfmml.errors import DataError
from rfmml.features._spark import is_spark
from rfmml.models import GammaGamma, PurchaseModel
from rfmml.models._grouping import group_rows
from rfmml.models.clv import lifetime_value, resolve_freq
from rfmml.models.uncertainty import (
    INTERVAL_COLUMNS,
    check_interval,
    draw_params,
    interval_predictions,
    probability_top_fraction,
)
from rfmml.segments import KMeansSegmenter, RuleSegmenter

__all__ = [
    "CHURN_BASES",
    "CHURN_LABELS",
    "DAYS_PER_PERIOD",
    "churn_risk_band",
    "next_order_dates",
    "score_customers",
]

#: Days in one period of ``freq`` (a month is an average Gregorian month).
DAYS_PER_PERIOD = {"D": 1.0, "W": 7.0, "M": 365.2425 / 12.0}

#: Labels of the churn-risk bands, lowest risk first.
CHURN_LABELS = ("low", "medium", "high")
#: What ``churn_risk`` bands: P(no purchase in the horizon), or 1 - P(alive).
CHURN_BASES = ("no_purchase", "alive")

_FEATURE_COLUMNS = ("recency_days", "n_orders", "total_spend")
#: Required feature columns; ``total_spend`` is absent for a log without amounts.
_REQUIRED_FEATURES = ("recency_days", "n_orders")


_PLAYBOOK_COLUMNS = ("action", "action_channel", "action_priority")
#: The text columns :func:`segment_columns` gives as categoricals with ``text_categories``.
TEXT_CATEGORIES = ("RFM", "action", "action_channel")
_OUTPUT_COLUMNS = frozenset(
    {"customer_id", "recency_days", "n_orders", "total_spend", "R", "F", "M", "RFM",
     "segment", "cluster", "cluster_name", "probability_alive", "probability_no_purchase",
     "churn_risk", "expected_next_order_date", "probability_order_within_window",
     "expected_purchases", "expected_order_value", "expected_spend", "clv",
     "purchase_count_lower", "purchase_count_upper", "probability_top_clv",
     *(f"{c}_{end}" for c in INTERVAL_COLUMNS for end in ("lower", "upper")),
     *_PLAYBOOK_COLUMNS}
)  # fmt: skip


def churn_risk_band(
    probability: pd.Series,
    churn_bands: tuple[float, float] = (0.3, 0.7),
    basis: str = "alive",
) -> pd.Series:
    """Churn-risk band of each customer.

    The risk is ``1 - probability`` when ``basis="alive"`` (``probability`` is
    P(alive)) and ``probability`` itself when ``basis="no_purchase"`` (it is
    P(no purchase in the horizon)). With ``churn_bands = (low, high)``:
    ``"low"`` when ``risk < low``, ``"medium"`` when ``low <= risk < high`` and
    ``"high"`` when ``risk >= high``.

    BG/NBD considers a customer without repeat purchases alive
    (``probability_alive == 1``), so on the ``"alive"`` basis one-time buyers
    always band ``"low"`` however long ago they bought; P(no purchase in the
    horizon) does not have that blind spot.

    Parameters
    ----------
    probability : pandas.Series
        Values in [0, 1].
    churn_bands : tuple of (float, float), default=(0.3, 0.7)
        Risk thresholds with ``0 <= low <= high <= 1``.
    basis : {"alive", "no_purchase"}, default "alive"
        What ``probability`` is (see above).

    Returns
    -------
    pandas.Series
        Ordered categorical (``low < medium < high``) named ``churn_risk``, same index.

    Raises
    ------
    ValueError
        If the thresholds are not two numbers with ``0 <= low <= high <= 1``, or
        ``basis`` is unknown.
    """
    try:
        low, high = (float(v) for v in churn_bands)
    except (TypeError, ValueError):
        raise ValueError(
            f"churn_bands must be two risk thresholds (low, high), got {churn_bands!r}."
        ) from None
    if not 0.0 <= low <= high <= 1.0:
        raise ValueError(
            f"churn_bands must satisfy 0 <= low <= high <= 1, got {churn_bands!r}; "
            "e.g. (0.3, 0.7) puts a churn risk below 0.3 in 'low'."
        )
    if basis not in CHURN_BASES:
        raise ValueError(f"churn_basis must be one of {CHURN_BASES}, got {basis!r}.")
    values = probability.to_numpy(dtype=float)
    risk = values if basis == "no_purchase" else 1.0 - values
    codes = (risk >= low).astype(np.int8) + (risk >= high).astype(np.int8)
    labels = pd.Categorical.from_codes(codes, categories=list(CHURN_LABELS), ordered=True)
    return pd.Series(labels, index=probability.index, name="churn_risk")


_NS_PER_DAY = 86_400 * 10**9


def next_order_dates(
    median_periods: pd.Series | np.ndarray, observation_end: str | pd.Timestamp, freq: str
) -> pd.Series | np.ndarray:
    """Calendar dates of the next order: the observation end plus a time in periods of ``freq``.

    Parameters
    ----------
    median_periods : pandas.Series or numpy.ndarray
        Times after the observation end in periods (e.g.
        :meth:`~rfmml.models.PurchaseModel.next_purchase_quantile`); ``inf``
        (more likely than not never to buy again) gives ``NaT``, and so does a date past
        the last one ``datetime64[ns]`` holds (2262-04-11).
    observation_end : date-like
        The end of the observation period.
    freq : {"D", "W", "M"}
        The time unit.

    Returns
    -------
    pandas.Series or numpy.ndarray
        ``datetime64`` dates (day resolution, rounded to the nearest day).
    """
    values = np.asarray(median_periods, dtype=float)
    days = values * DAYS_PER_PERIOD[freq]
    end = pd.Timestamp(observation_end).normalize()
    # past the last date datetime64[ns] holds (2262-04-11) treat as never: the date would
    # wrap around to the 18th century (and a chunk of such dates would change the CSV format)
    last = (pd.Timestamp.max.normalize() - end).days
    with np.errstate(invalid="ignore"):
        rounded = np.round(np.where(np.isfinite(days), days, 0.0))
        finite = np.isfinite(days) & (rounded <= last)
    offset = np.where(finite, rounded, 0.0).astype(np.int64)
    # nanoseconds since the epoch, added as integers (no Timedelta objects): the same dates
    offset *= _NS_PER_DAY
    offset += end.as_unit("ns").value
    dates = offset.view("datetime64[ns]")
    dates[~finite] = np.datetime64("NaT")
    if isinstance(median_periods, pd.Series):
        return pd.Series(dates, index=median_periods.index, name="expected_next_order_date")
    return dates


def _check_aligned(features: pd.DataFrame, summary: pd.DataFrame) -> pd.DataFrame:
    """Return ``summary`` in the row order of ``features``; raise when the ids differ."""
    for name, frame in (("features", features), ("summary", summary)):
        dupes = frame.index.duplicated()
        if dupes.any():
            raise DataError(
                f"score_customers: the {name} index has {int(dupes.sum())} repeated customer "
                f"key(s) (first {frame.index[dupes][0]!r}); expected one row per customer "
                "(and group)."
            )
    if features.index.nlevels != summary.index.nlevels:
        raise DataError(
            f"score_customers: features are indexed by {list(features.index.names)} but the "
            f"summary by {list(summary.index.names)}; build both with the same group."
        )
    if features.index.equals(summary.index):
        return summary
    only_features = features.index.difference(summary.index)
    only_summary = summary.index.difference(features.index)
    if len(only_features) or len(only_summary):
        raise DataError(
            f"score_customers: features and summary must hold the same customers, but "
            f"{len(only_features)} of {len(features)} feature ids are missing from the summary"
            f"{_first(only_features)} and {len(only_summary)} of {len(summary)} summary ids are "
            f"missing from the features{_first(only_summary)}. Build both from the same "
            "transactions, observation_end and group."
        )
    return summary.reindex(features.index)


def _first(index: pd.Index) -> str:
    if len(index) == 0:
        return ""
    label = index[0]
    return f" (first {label.item() if isinstance(label, np.generic) else label!r})"


def _distinct_rows(summary: pd.DataFrame, columns: list[str]) -> tuple[pd.DataFrame, np.ndarray]:
    """The distinct rows of ``columns`` of the summary, and each customer's row number.

    The purchase model's outputs are functions of a customer's summary row
    only, so they are computed once per distinct row of the columns the model
    reads (a daily summary of millions of customers has a fraction as many)
    and gathered back with the returned codes. Gamma-Gamma's closed form is
    cheaper than grouping (continuous spends make nearly every row distinct):
    it is evaluated per customer.
    """
    columns = [c for c in dict.fromkeys(columns) if c in summary.columns]
    arrays = [summary[c].to_numpy() for c in columns]
    codes, first = group_rows(*arrays)
    rows = pd.DataFrame({c: a[first] for c, a in zip(columns, arrays, strict=True)})
    rows.attrs = dict(summary.attrs)
    return rows, codes


def _playbook_columns(
    segment: pd.Series, entries: dict[str, Any], categories: bool = False
) -> dict[str, Any]:
    """``action``, ``action_channel``, ``action_priority`` per customer, from category codes.

    With ``categories`` the two text columns are categoricals of their distinct
    labels (see :func:`segment_columns`), else text.
    """
    fields = {"action": "action", "action_channel": "channel", "action_priority": "priority"}
    if isinstance(segment.dtype, pd.CategoricalDtype) and not segment.isna().any():
        labels = segment.cat.categories.astype(str)
        codes = segment.cat.codes.to_numpy()
        out = {}
        for column, field in fields.items():
            values = [getattr(entries[c], field) for c in labels]
            if column == "action_priority":
                out[column] = np.asarray(values, dtype=np.int64)[codes]
            elif categories:  # each segment's code mapped to its label's code
                distinct, of_segment = np.unique(np.asarray(values, dtype=object),
                                                 return_inverse=True)  # fmt: skip
                dtype = pd.CategoricalDtype(pd.Index(pd.array(distinct, dtype="str")))
                mapped = of_segment.astype(codes.dtype)[codes]
                out[column] = pd.Categorical.from_codes(mapped, dtype=dtype, validate=False)
            else:  # gathered as text: no per-customer conversion of Python strings
                out[column] = pd.Series(values, dtype=object).astype(str).array.take(codes)
        return out
    as_text = segment.astype(str)
    return {
        column: as_text.map({s: getattr(e, field) for s, e in entries.items()}).to_numpy()
        for column, field in fields.items()
    }


def _check_no_nan(table: pd.DataFrame) -> None:
    for col in table.columns:
        missing = table[col].isna().to_numpy()
        if missing.any():
            first = table.index[np.flatnonzero(missing)[0]]
            raise DataError(
                f"score_customers: column {col!r} has {int(missing.sum())} of {len(table)} "
                f"missing values (first customer {first!r}). Check the inputs of that column "
                "(features, summary and fitted models) for invalid values."
            )


def _add_intervals(
    table: pd.DataFrame,
    summary: pd.DataFrame,
    purchase_model: PurchaseModel | None,
    gamma_gamma: GammaGamma | None,
    horizon: int,
    discount_rate: float,
    interval: float,
    n_draws: int,
    method: str,
    param_draws: Mapping[str, np.ndarray] | None,
    segments: pd.Series | None,
    random_state,
    top_fraction: float | None = None,
) -> tuple[pd.DataFrame, dict[str, Any]]:
    """The table with its interval columns after their point columns, and the interval attrs."""
    check_interval(interval, n_draws, method)
    rng = check_random_state(random_state)
    models = {"purchase_model": purchase_model, "gamma_gamma": gamma_gamma}
    draws: dict[str, np.ndarray] = {}
    for key, model in models.items():
        if model is None:
            continue
        if param_draws is not None and key in param_draws:
            draws[key] = np.asarray(param_draws[key], dtype=float)
        elif method == "bootstrap":
            raise ValueError(
                "interval_method='bootstrap' refits on the training customers: pass "
                f"param_draws={{'{key}': model.draw_params(n_draws, 'bootstrap', X=training)}}."
            )
        else:
            draws[key] = draw_params(model, n_draws, random_state=rng)
    result = interval_predictions(
        purchase_model, gamma_gamma, summary, horizon=horizon, discount_rate=discount_rate,
        interval=interval, draws=draws, segments=segments, random_state=rng,
    )  # fmt: skip
    columns = list(table.columns)
    for col in result.columns.columns:
        base = col.rsplit("_", 1)[0]
        anchor = base if base in columns else "expected_purchases"
        at = columns.index(anchor) + 1 if anchor in columns else len(columns)
        while at < len(columns) and columns[at].startswith((f"{base}_", f"{anchor}_")):
            at += 1
        columns.insert(at, col)
    extended = pd.concat([table, result.columns.set_axis(table.index)], axis=1)[columns]
    if top_fraction is not None and purchase_model is not None and gamma_gamma is not None:
        top = probability_top_fraction(
            purchase_model, gamma_gamma, summary, horizon=horizon, discount_rate=discount_rate,
            draws=draws, fraction=top_fraction,
        )  # fmt: skip
        at = extended.columns.get_loc("clv_upper") + 1
        extended.insert(at, "probability_top_clv", top.to_numpy())
    extended.attrs = table.attrs
    meta = {
        **result.settings,
        "method": method,
        "top_fraction": top_fraction,
        "totals": result.totals.to_dict(orient="records"),
    }
    return extended, meta


def require_feature_columns(features: Any) -> None:
    """Raise :class:`DataError` when features (pandas or Spark) lack the classic columns."""
    missing = [c for c in _REQUIRED_FEATURES if c not in features.columns]
    if missing:
        raise DataError(
            f"score_customers: features lack column(s) {missing} (found "
            f"{list(map(str, features.columns))}); pass the classic table of "
            "rfmml.features.rfm_table."
        )


def score_customers(
    features: pd.DataFrame,
    summary: pd.DataFrame | None,
    *,
    rule_segmenter: RuleSegmenter | None = None,
    kmeans_segmenter: KMeansSegmenter | None = None,
    purchase_model: PurchaseModel | None = None,
    gamma_gamma: GammaGamma | None = None,
    horizon: int = 52,
    discount_rate: float = 0.0,
    freq: str | None = None,
    playbook: Playbook | str | Path | None = None,
    churn_bands: tuple[float, float] = (0.3, 0.7),
    churn_basis: str = "no_purchase",
    interval: float | None = None,
    n_draws: int = 200,
    interval_method: str = "parametric",
    param_draws: Mapping[str, np.ndarray] | None = None,
    segments: pd.Series | None = None,
    random_state=None,
    top_fraction: float | None = None,
    next_order_window: int | None = None,
) -> pd.DataFrame:
    """Score every customer for campaign planning: one row per customer (and group).

    Every estimator is used as fitted; nothing is fitted here. Each part is
    optional and only adds its columns when given, so the table never holds a
    column of missing values:

    ========================  ==========================================================
    always                    ``customer_id`` (and the group column when the index has
                              a group level), ``recency_days``, ``n_orders``,
                              ``total_spend`` (when the features have it)
    ``rule_segmenter``        ``R``, ``F``, ``M``, ``RFM`` (scores; ``M`` and ``RFM``
                              only with ``total_spend``), ``segment``,
                              ``action``, ``action_channel``, ``action_priority`` (playbook)
    ``kmeans_segmenter``      ``cluster`` (0 = most valuable), ``cluster_name``
    ``purchase_model``        ``probability_alive``, ``probability_no_purchase`` (no
                              purchase in the next ``horizon`` periods), ``churn_risk``,
                              ``expected_purchases`` (next ``horizon`` periods),
                              ``expected_next_order_date`` (when the features carry
                              ``observation_end``), ``probability_order_within_window``
                              (with ``next_order_window``)
    ``gamma_gamma``           ``expected_order_value`` (conditional mean order value)
    both models               ``expected_spend`` = ``expected_purchases`` x
                              ``expected_order_value``; ``clv`` (discounted, from
                              :func:`rfmml.models.customer_lifetime_value`)
    ========================  ==========================================================

    A log without amounts has features without ``total_spend`` (and a summary
    without ``monetary_value``): the table is the same minus the spend columns
    (``total_spend``, ``M``, ``RFM``, and, since no ``gamma_gamma`` can be fitted,
    ``expected_order_value``, ``expected_spend`` and ``clv``).

    ``churn_risk`` bands a risk with ``churn_bands = (low, high)``: ``"low"`` below
    ``low``, ``"medium"`` from ``low`` to below ``high``, ``"high"`` from ``high``
    (see :func:`churn_risk_band`). The risk is ``probability_no_purchase`` by default
    (``churn_basis="no_purchase"``), or ``1 - probability_alive``
    (``churn_basis="alive"``), which bands every one-time buyer ``"low"``.
    ``interval`` (e.g. 0.9) adds ``<column>_lower`` and ``<column>_upper`` after each of
    ``expected_purchases``, ``probability_alive``, ``probability_no_purchase``,
    ``expected_order_value`` and ``clv`` (central quantiles over ``n_draws`` parameter
    draws; the point columns are unchanged), ``purchase_count_lower`` and
    ``purchase_count_upper`` (a predictive interval of the number of purchases in the
    horizon, whole numbers, for every purchase model), and ``attrs["intervals"]``:
    the settings and the totals per segment and overall from joint draws (see
    :func:`rfmml.models.uncertainty.interval_predictions`).

    ``expected_next_order_date`` is the observation end plus the median time to
    the next purchase (:meth:`~rfmml.models.PurchaseModel.next_purchase_quantile`
    at 0.5, converted from periods of ``freq`` to days and rounded to the day;
    see :func:`next_order_dates`); it is empty (``NaT``) where the customer is
    more likely than not never to buy again.
    ``probability_order_within_window`` is P(at least one order in the next
    ``next_order_window`` periods).
    ``action``, ``action_channel`` and ``action_priority`` come from the playbook
    entry of the rule segment, else the scheme's own recommended action, else the
    playbook default (:class:`~rfmml.campaign.Playbook`).

    Parameters
    ----------
    features : pandas.DataFrame
        Classic RFM table (:func:`rfmml.features.rfm_table`) with ``recency_days``,
        ``n_orders`` and, with amounts, ``total_spend``; indexed by ``customer_id`` or by a
        ``(customer_id, group)`` MultiIndex.
    summary : pandas.DataFrame or None
        BTYD summary (:func:`rfmml.features.btyd_summary`) of the same customers,
        same index (any row order); required when ``purchase_model`` or
        ``gamma_gamma`` is given.
    rule_segmenter : RuleSegmenter, optional
        Fitted rule segmenter.
    kmeans_segmenter : KMeansSegmenter, optional
        Fitted k-means segmenter.
    purchase_model : PurchaseModel, optional
        Fitted purchase model, e.g. :class:`~rfmml.models.BetaGeoNBD`.
    gamma_gamma : GammaGamma, optional
        Fitted Gamma-Gamma model.
    horizon : int, default=52
        Future periods for ``expected_purchases``, ``expected_spend`` and ``clv``, in
        the summary's time unit (52 weeks with a weekly summary).
    discount_rate : float, default=0.0
        Per-period discount rate of ``clv``.
    freq : {"D", "W", "M"}, optional
        Time unit of the summary; checked against ``summary.attrs["freq"]`` and the
        unit the purchase model was fitted in.
    playbook : Playbook, path or None
        Playbook, or a TOML file; ``None`` uses the shipped playbook.
    churn_bands : tuple of (float, float), default=(0.3, 0.7)
        Risk thresholds of ``churn_risk``.
    churn_basis : {"no_purchase", "alive"}, default "no_purchase"
        The risk ``churn_risk`` bands: ``probability_no_purchase`` or
        ``1 - probability_alive``.
    interval : float, optional
        Central level of the intervals in (0, 1); ``None`` or 0: no intervals.
    n_draws : int, default=200
        Parameter draws per model.
    interval_method : {"parametric", "bootstrap"}, default "parametric"
        How parameters are drawn (:func:`rfmml.models.uncertainty.draw_params`).
        ``"bootstrap"`` refits on the training customers, which scoring does not
        have: pass its draws as ``param_draws``.
    param_draws : mapping, optional
        Precomputed draws: ``"purchase_model"`` and ``"gamma_gamma"`` arrays
        (n_draws x n_params); used instead of drawing.
    segments : pandas.Series, optional
        Labels for the interval totals, aligned to ``features``; default the rule
        segment when there is one.
    random_state : None, int or numpy.random.RandomState
        Seed of the parameter draws and of the process noise of predictive totals.
    top_fraction : float, optional
        With intervals and both models: add ``probability_top_clv``, the share of
        joint parameter draws in which the customer's CLV is in the top
        ``top_fraction`` of customers (0.1: top decile), for
        :func:`~rfmml.campaign.select_targets` ``rank_by``. One more pass over the draws.
    next_order_window : int, optional
        Periods of ``probability_order_within_window``; ``None`` leaves the
        column out.

    Spark: with PySpark frames (``customer_id`` columns) the table is computed
    inside Spark by ``mapInPandas`` (the fitted estimators go to the workers as
    JSON documents) and returned as a Spark DataFrame with the same columns and
    values (categoricals as text); only validation counts and one sample row reach
    the driver. Interval columns are computed per batch from parameter draws made
    on the driver (``param_draws``, or parametric draws seeded by ``random_state``)
    and equal the pandas ones; the interval totals (``attrs["intervals"]``),
    ``probability_top_clv`` and ``segments`` are pandas-only (see
    :mod:`rfmml.campaign._spark`).

    Returns
    -------
    pandas.DataFrame or pyspark.sql.DataFrame
        Indexed like ``features``, columns in the order of the table above.
        ``attrs`` records ``horizon``, ``discount_rate``, ``freq``, ``churn_bands``,
        ``churn_basis`` and ``next_order_window`` (with a purchase model), ``scheme``,
        ``playbook`` and ``observation_end`` (when known).

    Raises
    ------
    DataError
        Missing feature columns, repeated ids, features and summary with different
        customers (the message counts the ids missing on each side), time units
        that disagree, or a computed column with missing values.
    ValueError
        A model given without ``summary``, a bad ``horizon``, ``churn_bands`` or
        ``churn_basis``.
    sklearn.exceptions.NotFittedError
        An estimator that is not fitted.
    ConfigError
        An invalid playbook.
    """
    options = dict(
        rule_segmenter=rule_segmenter, kmeans_segmenter=kmeans_segmenter,
        purchase_model=purchase_model, gamma_gamma=gamma_gamma, horizon=horizon,
        discount_rate=discount_rate, freq=freq, playbook=playbook, churn_bands=churn_bands,
        churn_basis=churn_basis, interval=interval, n_draws=n_draws,
        interval_method=interval_method, param_draws=param_draws, segments=segments,
        random_state=random_state, top_fraction=top_fraction,
        next_order_window=next_order_window,
    )  # fmt: skip
    if is_spark(features):  # scored inside Spark, a Spark frame back
        from rfmml.campaign._spark import score_spark

        return score_spark(features, summary, options)
    return _score_customers(features, summary, **options)


#: Outputs of the purchase model on distinct summary rows, and each customer's row.
PurchaseRows = tuple[dict[str, np.ndarray], np.ndarray]


def purchase_outputs(
    purchase_model: PurchaseModel,
    rows: pd.DataFrame,
    horizon: int,
    *,
    median: bool,
    next_order_window: float | None,
) -> dict[str, np.ndarray]:
    """The purchase model's per-customer outputs on distinct summary rows.

    Every output is a function of a customer's summary row only, so it is
    computed once per distinct row of ``[*purchase_model.fit_columns, "recency"]``
    and gathered back per customer (:func:`score_customers` does it for one
    frame; :mod:`rfmml.campaign.streaming` once for all the chunks of a table).

    Returns
    -------
    dict of str to numpy.ndarray
        ``probability_alive``, ``probability_no_purchase``, ``expected_purchases``,
        ``median`` (with ``median``: periods to the next purchase, see
        :func:`next_order_dates`) and ``within`` (with ``next_order_window``).
    """
    out = {
        "probability_alive": purchase_model.probability_alive(rows).to_numpy(),
        "probability_no_purchase": purchase_model.probability_no_purchase(
            rows, int(horizon)
        ).to_numpy(),
        "expected_purchases": purchase_model.expected_purchases(rows, int(horizon)).to_numpy(),
    }
    if median:
        out["median"] = purchase_model.next_purchase_quantile(rows, 0.5).to_numpy()
    if next_order_window is not None:
        within = purchase_model.probability_purchase_within(rows, float(next_order_window))
        out["within"] = within.to_numpy()
    return out


def clv_purchase_factor(
    purchase_model: PurchaseModel,
    rows: pd.DataFrame,
    horizon: int,
    discount_rate: float,
    tabulate: bool = False,
) -> np.ndarray:
    """The purchase part of each row's CLV: discounted expected purchases, alive-weighted.

    :func:`rfmml.models.clv.lifetime_value` of a customer is
    ``max(expected_order_value(x, m) * factor, 0)`` where ``factor`` depends on the
    purchase model's columns only; this is that factor on distinct summary rows, by
    the same steps (a streamed table computes it once for all chunks, where
    ``lifetime_value`` per chunk would repeat it per chunk). BG/NBD uses its closed
    form per distinct ``(frequency, T)``, the branch ``lifetime_value`` takes when
    those rows repeat, or with ``tabulate`` the table of its discounted sum per
    frequency, the branch it takes when they do not (the caller decides as
    ``lifetime_value`` decides on the whole table: the table depends only on
    the distinct frequencies and the range of ``T``, which the distinct rows
    share with the table, and is evaluated row by row).

    Parameters
    ----------
    purchase_model : PurchaseModel
        Fitted purchase model.
    rows : pandas.DataFrame
        Distinct rows of :func:`purchase_row_columns`.
    horizon : int
        Periods of the CLV.
    discount_rate : float
        Per-period discount rate.
    tabulate : bool
        BG/NBD with a discount: the sum from its table per frequency.

    Returns
    -------
    numpy.ndarray
        One factor per row of ``rows``.
    """
    from rfmml.models._validation import check_summary
    from rfmml.models.clv import discounted_purchases

    columns = tuple(dict.fromkeys((*purchase_model.fit_columns, "frequency")))
    c = check_summary(rows, columns, what="customer_lifetime_value")
    # every row evaluated, or the table's value of every row: the per-customer values
    return discounted_purchases(purchase_model, c, horizon, discount_rate, tabulate=tabulate)


def purchase_row_columns(purchase_model: PurchaseModel, summary_columns: Any) -> list[str]:
    """The summary columns the purchase model's outputs depend on (present ones, in order)."""
    wanted = dict.fromkeys([*purchase_model.fit_columns, "recency"])
    return [c for c in wanted if c in set(summary_columns)]


#: The columns of :func:`segment_columns` and the settings they add to the attrs.
SegmentPart = tuple[dict[str, Any], dict[str, Any]]


def segment_columns(
    features: pd.DataFrame,
    rule_segmenter: RuleSegmenter | None,
    kmeans_segmenter: KMeansSegmenter | None,
    book: Playbook | None,
    text_categories: bool = False,
) -> SegmentPart:
    """The predictions' columns that do not need the BTYD models, in the table's order.

    The feature columns (copies), the rule segments with their playbook
    actions and the k-means clusters (those whose segmenter is given), and the
    attrs they add (``scheme``, ``playbook``). ``book`` is the loaded playbook
    (needed with a rule segmenter). Part of :func:`score_customers`, which
    checks the inputs first.

    With ``text_categories`` the text columns :data:`TEXT_CATEGORIES` are
    categoricals (codes into their labels) instead of text: for a writer that
    stores them as text from their labels (see
    :func:`~rfmml.campaign.exports.write_predictions_chunks`), which is cheaper
    than one string per customer to gather and to encode.

    Returns
    -------
    columns : dict of str to array
    attrs : dict
    """
    cols: dict[str, Any] = {}
    attrs: dict[str, Any] = {}
    spend = "total_spend" in features.columns
    for col in _FEATURE_COLUMNS:
        if col in features.columns:
            cols[col] = features[col].to_numpy(copy=True)  # not the caller's memory

    if rule_segmenter is not None:
        if text_categories:
            scored = rule_segmenter._transform_categories(features)
        else:
            scored = rule_segmenter.transform(features)
        for col in ("R", "F", "M", "RFM") if spend else ("R", "F"):
            # RFM as its string array: to_numpy would make Python strings to convert back
            cols[col] = scored[col].array if col == "RFM" else scored[col].to_numpy()
        segment = scored["segment"]
        cols["segment"] = segment.array
        scheme = rule_segmenter.scheme_
        if book is None:
            raise ValueError("segment_columns: a rule segmenter needs the loaded playbook")
        if isinstance(segment.dtype, pd.CategoricalDtype) and not segment.isna().any():
            distinct = segment.cat.categories.astype(str)  # every used label is a category
        else:
            distinct = pd.unique(segment.astype(str))
            if isinstance(segment.dtype, pd.CategoricalDtype):
                distinct = np.union1d(distinct, segment.cat.categories.astype(str))
        entries = {s: book.entry(s, scheme) for s in distinct}
        for column, values in _playbook_columns(segment, entries, text_categories).items():
            cols[column] = values
        cols["action_priority"] = np.asarray(cols["action_priority"]).astype(np.int64)
        attrs["scheme"] = scheme.name
        attrs["playbook"] = book.source

    if kmeans_segmenter is not None:
        cols["cluster"] = kmeans_segmenter.predict_cluster(features).to_numpy()
        cols["cluster_name"] = kmeans_segmenter.predict(features).array
    return cols, attrs


def _score_customers(
    features: pd.DataFrame,
    summary: pd.DataFrame | None,
    *,
    rule_segmenter: RuleSegmenter | None = None,
    kmeans_segmenter: KMeansSegmenter | None = None,
    purchase_model: PurchaseModel | None = None,
    gamma_gamma: GammaGamma | None = None,
    horizon: int = 52,
    discount_rate: float = 0.0,
    freq: str | None = None,
    playbook: Playbook | str | Path | None = None,
    churn_bands: tuple[float, float] = (0.3, 0.7),
    churn_basis: str = "no_purchase",
    interval: float | None = None,
    n_draws: int = 200,
    interval_method: str = "parametric",
    param_draws: Mapping[str, np.ndarray] | None = None,
    segments: pd.Series | None = None,
    random_state=None,
    top_fraction: float | None = None,
    next_order_window: int | None = None,
    purchase_rows: PurchaseRows | None = None,
    book: Playbook | None = None,
    segment_part: Callable[[], SegmentPart] | None = None,
) -> pd.DataFrame:
    """:func:`score_customers` of pandas frames; ``purchase_rows`` precomputed, optionally.

    ``purchase_rows`` holds :func:`purchase_outputs` of distinct summary rows and
    the row of each customer of ``summary`` (used instead of computing them),
    ``book`` the loaded playbook (used instead of loading ``playbook``), and
    ``segment_part`` gives :func:`segment_columns` of ``features`` (called, once
    the inputs are checked, instead of computing them: a caller may compute them
    on another thread while it computes the model's outputs).
    """
    if not isinstance(features, pd.DataFrame):
        raise TypeError(
            f"score_customers expects features as a pandas DataFrame, got "
            f"{type(features).__name__}. Build them with rfmml.features.rfm_table."
        )
    require_feature_columns(features)
    if len(features) == 0:
        raise DataError("score_customers: the features frame is empty (0 customers).")
    if isinstance(horizon, bool) or not float(horizon).is_integer() or horizon < 1:
        raise ValueError(f"horizon must be a whole number of periods >= 1, got {horizon!r}.")
    if isinstance(discount_rate, bool) or not np.isfinite(discount_rate) or discount_rate < 0:
        raise DataError(f"discount_rate must be a per-period rate >= 0, got {discount_rate!r}.")
    uses_summary = purchase_model is not None or gamma_gamma is not None
    if uses_summary and summary is None:
        raise ValueError(
            "score_customers: purchase_model and gamma_gamma score the BTYD summary; pass "
            "summary=rfmml.features.btyd_summary(...) of the same customers."
        )
    if uses_summary:
        summary = _check_aligned(features, summary)
    for model in (rule_segmenter, kmeans_segmenter, purchase_model, gamma_gamma):
        if model is not None:
            check_is_fitted(model)
    if purchase_model is not None:
        # Validate early, before any column is computed.
        churn_risk_band(pd.Series([1.0]), churn_bands, churn_basis)
        window = next_order_window
        if window is not None and (isinstance(window, bool) or not float(window) > 0):
            raise ValueError(f"next_order_window must be a number of periods > 0, got {window!r}.")
    if book is None and rule_segmenter is not None:
        book = load_playbook(playbook)

    names = [n if n is not None else f"level_{i}" for i, n in enumerate(features.index.names)]
    names[0] = "customer_id"
    clash = sorted(set(names[1:]) & _OUTPUT_COLUMNS)
    if clash:
        raise DataError(
            f"score_customers: group level(s) {clash} share a name with output columns; "
            "rename the group column (e.g. 'sales_channel') before building features."
        )
    index = features.index.set_names(names)
    # the columns are gathered and made into a frame once: setting them one by one on a
    # frame copied every array (pandas' copy-on-write), 0.17 s per million customers
    cols: dict[str, Any] = {}
    for i, name in enumerate(names):
        cols[name] = index.get_level_values(i)
    attrs: dict[str, Any] = {
        "horizon": int(horizon),
        "discount_rate": float(discount_rate),
        "churn_bands": [float(v) for v in churn_bands],
    }
    for key in ("observation_end",):
        if key in features.attrs:
            attrs[key] = str(features.attrs[key])
    if segment_part is None:
        part_cols, part_attrs = segment_columns(features, rule_segmenter, kmeans_segmenter, book)
    else:
        part_cols, part_attrs = segment_part()
    cols.update(part_cols)
    attrs.update(part_attrs)
    del part_cols

    if purchase_model is not None:
        assert summary is not None  # checked above whenever there is a purchase model
        unit = resolve_freq(freq, summary, purchase_model, "score_customers")
        attrs["freq"] = unit
        attrs["churn_basis"] = churn_basis
        end = features.attrs.get("observation_end", summary.attrs.get("observation_end"))
        dated = end is not None and unit is not None
        if purchase_rows is None:
            rows, codes = _distinct_rows(
                summary, purchase_row_columns(purchase_model, summary.columns)
            )
            outputs = purchase_outputs(purchase_model, rows, int(horizon), median=dated,
                                       next_order_window=next_order_window)  # fmt: skip
            del rows
        else:
            outputs, codes = purchase_rows
        p_alive = outputs["probability_alive"][codes]
        no_purchase = outputs["probability_no_purchase"][codes]
        cols["probability_alive"] = p_alive
        cols["probability_no_purchase"] = no_purchase
        basis = pd.Series(no_purchase if churn_basis == "no_purchase" else p_alive)
        cols["churn_risk"] = churn_risk_band(basis, churn_bands, churn_basis).array
        purchases = outputs["expected_purchases"][codes]
        cols["expected_purchases"] = purchases
        if end is not None and unit is not None:
            attrs["observation_end"] = str(end)
            median = outputs["median"][codes]
            cols["expected_next_order_date"] = next_order_dates(median, end, unit)
        if next_order_window is not None:
            attrs["next_order_window"] = float(next_order_window)
            cols["probability_order_within_window"] = outputs["within"][codes]
        del outputs, codes
    if gamma_gamma is not None:
        assert summary is not None  # checked above whenever there is a spend model
        # a cheap closed form per customer: grouping the rows first cost ten times more
        order_value = gamma_gamma.expected_order_value(summary).to_numpy()
        cols["expected_order_value"] = order_value
    if purchase_model is not None and gamma_gamma is not None:
        assert summary is not None  # checked above
        cols["expected_spend"] = purchases * order_value
        if purchase_rows is not None and "clv_factor" in purchase_rows[0]:
            # the purchase part computed once on distinct rows; the spend part per customer
            factor = purchase_rows[0]["clv_factor"]
            if factor is purchase_rows[0]["expected_purchases"]:  # undiscounted: gathered above
                clv_values = order_value * purchases
            else:
                clv_values = order_value * factor[purchase_rows[1]]
            cols["clv"] = np.maximum(clv_values, 0.0, out=clv_values)
        else:
            # per customer: lifetime_value groups the purchase part by distinct (frequency, T)
            clv = lifetime_value(
                purchase_model, gamma_gamma, summary, int(horizon), discount_rate, attrs["freq"]
            )
            cols["clv"] = clv.to_numpy()

    table = pd.DataFrame(cols, index=index, copy=False)
    del cols

    if interval and uses_summary:
        assert summary is not None
        if segments is None and "segment" in table.columns:
            segments = table["segment"]
        table, attrs["intervals"] = _add_intervals(
            table, summary, purchase_model, gamma_gamma, int(horizon), float(discount_rate),
            interval, n_draws, interval_method, param_draws,
            None if segments is None else pd.Series(segments).reindex(features.index),
            random_state, top_fraction,
        )  # fmt: skip

    if rule_segmenter is not None:  # the playbook columns last (selecting them copies nothing)
        table = table[
            [c for c in table.columns if c not in _PLAYBOOK_COLUMNS] + list(_PLAYBOOK_COLUMNS)
        ]
    _check_no_nan(table.drop(columns=["expected_next_order_date"], errors="ignore"))
    table.attrs = attrs
    return table
