"""Figures for fitted BG/NBD models: what they expect, and how they did.

Each function takes a fitted model and data and returns a
:class:`matplotlib.figure.Figure` built without pyplot's global state (no
``plt.show``); save it with ``fig.savefig(path)``.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from rfmml.errors import DataError
from rfmml.evaluation.holdout import holdout_predictions
from rfmml.models import BetaGeoNBD
from rfmml.models import _formulas as F
from rfmml.models._grouping import group_rows
from rfmml.models._validation import check_summary

__all__ = [
    "plot_frequency_recency_matrix",
    "plot_probability_alive_matrix",
    "plot_calibration_vs_holdout_purchases",
    "plot_period_transactions",
]


def _grid(
    summary: pd.DataFrame | None, max_frequency: int | None, max_recency: float | None
) -> tuple[int, int]:
    if summary is not None:
        c = check_summary(summary, ("frequency", "recency", "T"), what="the plot")
        max_frequency = int(c["frequency"].max()) if max_frequency is None else max_frequency
        max_recency = float(c["T"].max()) if max_recency is None else max_recency
    if max_frequency is None or max_recency is None:
        raise DataError(
            "Pass a summary frame or both max_frequency and max_recency to size the matrix."
        )
    return int(max_frequency), int(np.ceil(max_recency))


def _matrix_figure(values: np.ndarray, title: str, label: str, T: int) -> Figure:
    fig = Figure(figsize=(7.0, 5.5), layout="constrained")
    ax = fig.subplots()
    image = ax.imshow(np.ma.masked_invalid(values), origin="lower", aspect="auto", cmap="viridis")
    fig.colorbar(image, ax=ax, label=label)
    ax.set_xlabel(f"recency (periods since first purchase; customer age T = {T})")
    ax.set_ylabel("frequency (repeat purchases)")
    ax.set_title(title)
    return fig


def _history_grid(max_frequency: int, max_recency: int):
    x, t_x = np.meshgrid(
        np.arange(max_frequency + 1, dtype=float),
        np.arange(max_recency + 1, dtype=float),
        indexing="ij",
    )
    valid = (x > 0) | (t_x == 0)  # no repeat purchase means recency 0
    return x, t_x, valid


def _grid_values(model, summary, max_frequency, max_recency, formula):
    """``formula(x, t_x, T, *params)`` on the frequency x recency grid at ``T = max_recency``.

    NaN where no history is possible; returns the values and ``max_recency``.
    """
    theta = tuple(model.get_fitted_params().values())
    f_max, r_max = _grid(summary, max_frequency, max_recency)
    x, t_x, valid = _history_grid(f_max, r_max)
    return np.where(valid, formula(x, t_x, float(r_max), *theta), np.nan), r_max


def plot_frequency_recency_matrix(
    model: BetaGeoNBD,
    summary: pd.DataFrame | None = None,
    *,
    t: float = 1.0,
    max_frequency: int | None = None,
    max_recency: float | None = None,
) -> Figure:
    """Expected purchases in the next ``t`` periods by frequency and recency.

    All customers in the matrix have age ``T = max_recency``; cells without a
    possible history (frequency 0 with recency > 0) are blank.

    Parameters
    ----------
    model : BetaGeoNBD
        Fitted model.
    summary : pandas.DataFrame, optional
        Sizes the matrix by its largest frequency and T.
    t : float, default 1.0
        Horizon in the model's time unit.
    max_frequency, max_recency : int, optional
        Matrix size (override ``summary``).

    Returns
    -------
    matplotlib.figure.Figure
    """
    values, r_max = _grid_values(
        model,
        summary,
        max_frequency,
        max_recency,
        lambda x, t_x, T, *theta: F.bgnbd_expected_purchases(t, x, t_x, T, *theta),
    )
    return _matrix_figure(
        values, f"Expected purchases in the next {t:g} periods", "expected purchases", r_max
    )


def plot_probability_alive_matrix(
    model: BetaGeoNBD,
    summary: pd.DataFrame | None = None,
    *,
    max_frequency: int | None = None,
    max_recency: float | None = None,
) -> Figure:
    """Probability that a customer is alive, by frequency and recency.

    Parameters
    ----------
    model, summary, max_frequency, max_recency
        As for :func:`plot_frequency_recency_matrix`.

    Returns
    -------
    matplotlib.figure.Figure
    """
    values, r_max = _grid_values(
        model, summary, max_frequency, max_recency, F.bgnbd_probability_alive
    )
    return _matrix_figure(values, "Probability alive", "P(alive)", r_max)


def plot_calibration_vs_holdout_purchases(
    model: BetaGeoNBD, cal_holdout: pd.DataFrame, *, max_frequency: int = 7
) -> Figure:
    """Mean holdout purchases, actual vs model vs baseline, by calibration frequency.

    Customers with ``frequency_cal >= max_frequency`` share the last group
    (the conditional-expectation plot of Fader, Hardie & Lee 2005, fig. 4).

    Parameters
    ----------
    model : BetaGeoNBD
        Fitted on the calibration period.
    cal_holdout : pandas.DataFrame
        Output of :func:`rfmml.features.calibration_holdout`.
    max_frequency : int, default 7
        Last (pooled) calibration frequency group.

    Returns
    -------
    matplotlib.figure.Figure
    """
    pred = holdout_predictions(model, None, cal_holdout)
    group = np.minimum(cal_holdout["frequency_cal"].to_numpy(), max_frequency)
    means = (
        pred[["actual_purchases", "model_purchases", "baseline_purchases"]].groupby(group).mean()
    )
    fig = Figure(figsize=(7.0, 4.5), layout="constrained")
    ax = fig.subplots()
    ax.plot(means.index, means["actual_purchases"], "o-", color="black", label="actual")
    ax.plot(means.index, means["model_purchases"], "s--", label="BG/NBD")
    ax.plot(
        means.index, means["baseline_purchases"], "^:", label="calibration rate carried forward"
    )
    ax.set_xticks(
        means.index, [f"{int(v)}" for v in means.index[:-1]] + [f"{int(means.index[-1])}+"]
    )
    ax.set_xlabel("repeat purchases in the calibration period")
    ax.set_ylabel("mean purchases in the holdout period")
    ax.set_title("Calibration vs holdout purchases")
    ax.legend()
    return fig


def plot_period_transactions(
    model: BetaGeoNBD, summary: pd.DataFrame, *, max_frequency: int = 7
) -> Figure:
    """Customers by number of repeat transactions: actual vs expected by the model.

    The model count for ``n`` is ``sum_i P(X(T_i) = n)`` (Fader, Hardie & Lee
    2005, eq. 8) over the customers' ages ``T_i``, evaluated once per
    distinct age; the last bar pools ``n >= max_frequency``.

    Parameters
    ----------
    model : BetaGeoNBD
        Fitted model.
    summary : pandas.DataFrame
        Columns ``frequency``, ``recency``, ``T``.
    max_frequency : int, default 7
        Last (pooled) bar.

    Returns
    -------
    matplotlib.figure.Figure
    """
    theta = tuple(model.get_fitted_params().values())
    c = check_summary(summary, ("frequency", "recency", "T"), what="plot_period_transactions")
    codes, first = group_rows(c["T"])
    ages = c["T"][first]
    customers_per_age = np.bincount(codes, weights=c["weights"], minlength=len(first))
    n = np.arange(max_frequency, dtype=float)
    probs = F.bgnbd_probability_of_purchases(n[:, None], ages[None, :], *theta)
    expected = probs @ customers_per_age
    expected = np.append(expected, customers_per_age.sum() - expected.sum())
    actual = np.bincount(
        np.minimum(c["frequency"], max_frequency).astype(int),
        weights=c["weights"],
        minlength=max_frequency + 1,
    )
    fig = Figure(figsize=(7.0, 4.5), layout="constrained")
    ax = fig.subplots()
    pos = np.arange(max_frequency + 1)
    ax.bar(pos - 0.2, actual, width=0.4, label="actual", color="0.3")
    ax.bar(pos + 0.2, expected, width=0.4, label="BG/NBD")
    ax.set_xticks(pos, [str(k) for k in range(max_frequency)] + [f"{max_frequency}+"])
    ax.set_xlabel("repeat transactions")
    ax.set_ylabel("customers")
    ax.set_title("Frequency of repeat transactions")
    ax.legend()
    return fig


def plot_tracking(curves: pd.DataFrame) -> Figure:
    """Repeat transactions per period and cumulative, actual against every model.

    Parameters
    ----------
    curves : pandas.DataFrame
        From :func:`rfmml.evaluation.repeat_transaction_tracking`.

    Returns
    -------
    matplotlib.figure.Figure
        Two panels (per period, cumulative); a dashed line marks the end of
        the calibration period.
    """
    labels = [c for c in curves.columns if c.endswith("_cumulative") and c != "actual_cumulative"]
    labels = [c.removesuffix("_cumulative") for c in labels]
    fig = Figure(figsize=(9.0, 6.5), layout="constrained")
    ax_inc, ax_cum = fig.subplots(2, 1, sharex=True)
    x = curves.index
    for ax, suffix in ((ax_inc, ""), (ax_cum, "_cumulative")):
        ax.plot(x, curves[f"actual{suffix}"], color="black", lw=1.6, label="actual")
        for label in labels:
            ax.plot(x, curves[f"{label}{suffix}"], lw=1.2, ls="--", label=label)
        holdout = curves["holdout"].to_numpy()
        if holdout.any() and not holdout.all():
            ax.axvline(x[int(np.argmax(holdout))], color="0.5", ls=":", lw=1.0)
    unit = {"D": "day", "W": "week", "M": "month"}.get(curves.attrs.get("freq", ""), "period")
    ax_inc.set_ylabel(f"repeat transactions per {unit}")
    ax_cum.set_ylabel("cumulative repeat transactions")
    ax_cum.set_xlabel("calibration | holdout (dotted line: end of calibration)")
    ax_inc.set_title("Tracking repeat transactions: actual vs models")
    ax_inc.legend(fontsize=8)
    return fig
