"""Segment profiles: size, revenue and mean RFM values (and model predictions) per segment."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from rfmml.errors import ConfigError, DataError
from rfmml.segments.scoring import _check_frame, _group_codes

__all__ = ["segment_profile", "top_revenue_share"]

PREDICTION_COLUMNS = ("probability_alive", "clv")


def top_revenue_share(
    features: pd.DataFrame, top: float = 0.2, *, monetary_col: str = "total_spend"
) -> float | pd.Series:
    """Share of revenue from the top ``top`` fraction of customers (the 80/20 check).

    Parameters
    ----------
    features : pandas.DataFrame
        One row per customer with ``monetary_col``.
    top : float, default=0.2
        Fraction of customers, ranked by spend; ``ceil(top * n)`` customers count.
    monetary_col : str, default="total_spend"
        Spend column.

    Returns
    -------
    float or pandas.Series
        The share in [0, 1] (``NaN`` when total spend is 0), or one share per group
        when ``features`` has a ``(customer_id, group)`` MultiIndex.

    Raises
    ------
    ConfigError
        ``top`` outside (0, 1].
    DataError
        Missing column, NaN, negative values or empty frame.
    """
    if not 0 < top <= 1:
        raise ConfigError(f"top must be in (0, 1], got {top!r}.")
    _check_frame(features, [monetary_col], where="top_revenue_share")

    def share(values: np.ndarray) -> float:
        total = values.sum()
        if total <= 0:
            return float("nan")
        n_top = math.ceil(top * len(values))
        return float(np.sort(values)[::-1][:n_top].sum() / total)

    spend = features[monetary_col].to_numpy(dtype=float)
    grouped = _group_codes(features.index)
    if grouped is None:
        return share(spend)
    codes, groups = grouped
    return pd.Series(
        [share(spend[codes == i]) for i in range(len(groups))],
        index=groups,
        name="top_revenue_share",
    )


def segment_profile(
    features: pd.DataFrame,
    labels: pd.Series,
    predictions: pd.DataFrame | None = None,
    *,
    recency_col: str = "recency_days",
    frequency_col: str = "n_orders",
    monetary_col: str | None = "total_spend",
    top: float = 0.2,
) -> pd.DataFrame:
    """Summarise each segment: size, revenue and average customer.

    Parameters
    ----------
    features : pandas.DataFrame
        One row per customer (e.g. ``rfm_table`` output).
    labels : pandas.Series
        Segment of each customer, same index as ``features`` (any order). With a
        categorical, every category gets a row, empty ones included, in category
        order; otherwise segments are sorted.
    predictions : pandas.DataFrame, optional
        Model outputs per customer with ``probability_alive`` and/or ``clv``
        (same index as ``features``).
    recency_col, frequency_col, monetary_col : str
        Columns averaged per segment; ``monetary_col`` also gives the revenue.
        ``monetary_col=None`` (a log without amounts) leaves out ``revenue``,
        ``revenue_share``, the mean spend and ``attrs["top_revenue_share"]``.
    top : float, default=0.2
        Fraction used for the concentration check stored in ``attrs``.

    Returns
    -------
    pandas.DataFrame
        Indexed by ``segment`` (by ``(group, segment)`` when ``features`` has a
        ``(customer_id, group)`` MultiIndex; shares are then within the group), with
        columns ``n_customers``, ``share``, ``revenue``, ``revenue_share``,
        ``mean_<recency_col>``, ``mean_<frequency_col>``, ``mean_<monetary_col>``
        and, with predictions, ``mean_probability_alive``, ``mean_clv`` and
        ``total_clv``. ``attrs["top_revenue_share"]`` holds
        :func:`top_revenue_share` of all customers (a dict by group when grouped)
        and ``attrs["top"]`` the fraction used.

    Raises
    ------
    DataError
        Missing columns, NaN or negative values, empty frame, labels or
        predictions that do not cover every customer.
    """
    cols = [recency_col, frequency_col] + ([monetary_col] if monetary_col else [])
    _check_frame(features, cols, where="segment_profile")
    if not isinstance(labels, pd.Series):
        raise TypeError(
            f"segment_profile: labels must be a pandas Series, got {type(labels).__name__}."
        )
    labels = labels.reindex(features.index)
    n_missing = int(labels.isna().sum())
    if n_missing:
        raise DataError(
            f"segment_profile: {n_missing} of {len(features)} customers have no label "
            f"(missing from labels or NaN); labels must share the features index."
        )
    frame = features[cols].astype(float).copy()
    frame.columns = [f"mean_{c}" for c in cols]
    pred_cols: list[str] = []
    if predictions is not None:
        pred_cols = [c for c in PREDICTION_COLUMNS if c in predictions.columns]
        if not pred_cols:
            raise DataError(
                f"segment_profile: predictions need a 'probability_alive' or 'clv' column; "
                f"available columns are {list(map(str, predictions.columns))}."
            )
        aligned = predictions[pred_cols].reindex(features.index)
        for col in pred_cols:
            n_nan = int(aligned[col].isna().sum())
            if n_nan:
                raise DataError(
                    f"segment_profile: predictions column {col!r} is missing for {n_nan} of "
                    f"{len(features)} customers."
                )
            frame[f"mean_{col}"] = aligned[col].to_numpy(dtype=float)
    if monetary_col:
        frame["revenue"] = features[monetary_col].to_numpy(dtype=float)
    if "clv" in pred_cols:
        frame["total_clv"] = frame["mean_clv"]

    grouped = _group_codes(features.index)
    keys: list[pd.Series] = [labels.rename("segment")]
    if grouped is not None:
        keys.insert(
            0,
            pd.Series(
                features.index.get_level_values(1),
                index=features.index,
                name=features.index.names[1],
            ),
        )
    by = frame.groupby(keys, observed=False, sort=True)
    means = by.mean()
    summed = (["revenue"] if monetary_col else []) + (["total_clv"] if "clv" in pred_cols else [])
    sums = by[summed].sum()
    profile = pd.DataFrame({"n_customers": by.size()})
    if not monetary_col:
        group_n = (
            profile["n_customers"].groupby(level=features.index.names[1]).transform("sum")
            if grouped is not None
            else len(features)
        )
        profile["share"] = profile["n_customers"] / group_n
    elif grouped is None:
        profile["share"] = profile["n_customers"] / len(features)
        profile["revenue"] = sums["revenue"]
        profile["revenue_share"] = sums["revenue"] / frame["revenue"].sum()
    else:
        level = features.index.names[1]
        group_n = profile["n_customers"].groupby(level=level).transform("sum")
        group_rev = sums["revenue"].groupby(level=level).transform("sum")
        profile["share"] = profile["n_customers"] / group_n
        profile["revenue"] = sums["revenue"]
        profile["revenue_share"] = sums["revenue"] / group_rev
    for col in frame.columns:
        if col.startswith("mean_"):
            profile[col] = means[col]
    if "clv" in pred_cols:
        profile["total_clv"] = sums["total_clv"]
    profile["n_customers"] = profile["n_customers"].astype(np.int64)
    profile.attrs["top"] = top
    if not monetary_col:
        return profile
    concentration = top_revenue_share(features, top, monetary_col=monetary_col)
    profile.attrs["top_revenue_share"] = (
        concentration if isinstance(concentration, float) else concentration.to_dict()
    )
    profile.attrs["top"] = top
    return profile
