"""Figures over time and over customers: segments per period, revenue concentration.

Every function takes data and returns a :class:`matplotlib.figure.Figure` built
without pyplot (no global state, nothing shown).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.ticker import PercentFormatter

from rfmml.errors import DataError

__all__ = ["plot_revenue_concentration", "plot_segment_periods"]


def plot_segment_periods(table: pd.DataFrame, *, by: str = "segment") -> Figure:
    """Revenue and buying customers per period, stacked by segment.

    Parameters
    ----------
    table : pandas.DataFrame
        Long table with columns ``period`` (sortable labels such as ``"1997-03"``),
        ``by`` (segment names), ``customers`` and, when known, ``revenue``.
    by : str, default="segment"
        Column holding the segment names.

    Returns
    -------
    matplotlib.figure.Figure
        One panel for revenue (when the column exists) above one for customers.

    Raises
    ------
    DataError
        Missing columns or an empty table.
    """
    needed = ["period", by, "customers"]
    missing = [c for c in needed if c not in table.columns]
    if missing:
        raise DataError(
            f"plot_segment_periods: missing column(s) {missing}; available columns are "
            f"{list(map(str, table.columns))}."
        )
    if len(table) == 0:
        raise DataError("plot_segment_periods: nothing to plot (0 rows).")
    measures = [m for m in ("revenue", "customers") if m in table.columns]
    fig = Figure(figsize=(10, 3.2 * len(measures) + 0.8))
    axes = np.atleast_1d(fig.subplots(len(measures), 1, sharex=True, squeeze=False)[:, 0])
    for ax, measure in zip(axes, measures, strict=True):
        wide = table.pivot_table(
            index="period", columns=by, values=measure, aggfunc="sum", fill_value=0, observed=True
        ).sort_index()
        x = np.arange(len(wide))
        bottom = np.zeros(len(wide))
        for name in wide.columns:
            values = wide[name].to_numpy(dtype=float)
            ax.bar(x, values, bottom=bottom, label=str(name), width=0.85)
            bottom += values
        ax.set_ylabel(measure)
        ax.set_title(f"{measure.capitalize()} per period by {by}")
        step = max(1, len(wide) // 12)
        ax.set_xticks(x[::step], [str(p) for p in wide.index[::step]], rotation=45, ha="right")
    axes[0].legend(fontsize=7, ncol=2, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    fig.tight_layout()
    return fig


#: Points of the revenue concentration curve at most (a concave curve: far below a pixel apart)
_CURVE_POINTS = 2001


def plot_revenue_concentration(spend: pd.Series, *, top: float = 0.2) -> Figure:
    """Cumulative share of revenue against the share of customers, biggest spenders first.

    The curve reads as "the top x% of customers bring y% of revenue"; the dashed
    lines mark the ``top`` share (the 80/20 check) and the diagonal is equal spend.
    Past 2,001 customers the curve is drawn through 2,001 evenly spaced ranks
    and the marked one (exact values there; the figure stays small).

    Parameters
    ----------
    spend : pandas.Series
        Revenue per customer (e.g. ``total_spend``), non-negative.
    top : float, default=0.2
        Share of customers marked on the curve.

    Returns
    -------
    matplotlib.figure.Figure

    Raises
    ------
    DataError
        Empty, missing or negative values, or zero total spend.
    """
    values = pd.to_numeric(spend, errors="coerce").to_numpy(dtype=float)
    if len(values) == 0 or np.isnan(values).any() or (values < 0).any() or values.sum() <= 0:
        raise DataError(
            "plot_revenue_concentration: spend must be non-empty, without missing or negative "
            f"values, and sum to more than 0 ({len(values)} values given)."
        )
    ordered = np.sort(values)[::-1]
    customers = np.arange(1, len(ordered) + 1) / len(ordered)
    revenue = np.cumsum(ordered) / ordered.sum()
    n_top = int(np.ceil(top * len(ordered)))
    share = revenue[n_top - 1]
    if len(ordered) > _CURVE_POINTS:  # the curve at evenly spaced ranks (and the marked one)
        ranks = np.unique(np.r_[np.linspace(0, len(ordered) - 1, _CURVE_POINTS).astype(int),
                                n_top - 1])  # fmt: skip
        customers, revenue = customers[ranks], revenue[ranks]
    fig = Figure(figsize=(5.5, 4.5))
    ax = fig.subplots()
    ax.plot(np.r_[0, customers], np.r_[0, revenue], lw=2, label="customers by spend")
    ax.plot([0, 1], [0, 1], color="grey", lw=1, label="equal spend")
    ax.plot([top, top, 0], [0, share, share], color="black", ls="--", lw=1)
    ax.annotate(
        f"top {top:.0%} of customers: {share:.0%} of revenue",
        (top, share),
        xytext=(top + 0.05, share - 0.12),
        fontsize=9,
    )
    ax.xaxis.set_major_formatter(PercentFormatter(1.0))
    ax.yaxis.set_major_formatter(PercentFormatter(1.0))
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1.02)
    ax.set_xlabel("share of customers (biggest spenders first)")
    ax.set_ylabel("share of revenue")
    ax.set_title("Revenue concentration")
    ax.legend(loc="lower right")
    fig.tight_layout()
    return fig
