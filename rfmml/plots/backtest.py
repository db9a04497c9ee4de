"""Backtest figure: each metric across origins, one line per model."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

__all__ = ["BACKTEST_FIGURE_METRICS", "plot_backtest"]

BACKTEST_FIGURE_METRICS = (
    "mae",
    "rmse",
    "tracking_mape",
    "lift_quality",
    "gini",
    "decile_calibration_error",
    "buy_again_brier",
    "buy_again_calibration_error",
    "spend_mae",
    "migration_tvd",
)


def plot_backtest(table: pd.DataFrame, metrics: Sequence[str] = BACKTEST_FIGURE_METRICS) -> Figure:
    """One panel per metric: its value at each origin, one line per model.

    Parameters
    ----------
    table : pandas.DataFrame
        Long backtest table: ``origin``, ``model``, ``metric``, ``value``.
    metrics : sequence of str
        Metrics to draw, in order; those absent from the table are skipped.

    Returns
    -------
    matplotlib.figure.Figure

    Raises
    ------
    ValueError
        None of ``metrics`` is in the table.
    """
    shown = [m for m in metrics if m in set(table["metric"])]
    if not shown:
        raise ValueError(f"none of the metrics {list(metrics)} is in the backtest table")
    origins = sorted(table["origin"].astype(str).unique())
    models = list(dict.fromkeys(table["model"]))
    ncols = min(5, len(shown))
    nrows = int(np.ceil(len(shown) / ncols))
    fig = Figure(figsize=(3.0 * ncols, 2.6 * nrows + 0.8))
    axes = fig.subplots(nrows, ncols, squeeze=False).ravel()
    x = np.arange(len(origins))
    colors = {m: f"C{i % 10}" for i, m in enumerate(models)}
    for ax, metric in zip(axes, shown, strict=False):
        part = table[table["metric"] == metric]
        for model in models:
            rows = part[part["model"] == model]
            if rows.empty:
                continue
            values = rows.set_index(rows["origin"].astype(str))["value"].reindex(origins)
            ax.plot(x, values.to_numpy(dtype=float), marker="o", label=model, color=colors[model])
        ax.set_title(metric.replace("_", " "), fontsize=9)
        ax.set_xticks(x)
        ax.set_xticklabels(origins, fontsize=7, rotation=20)
        ax.tick_params(axis="y", labelsize=7)
    for ax in axes[len(shown) :]:
        ax.set_visible(False)
    handles, labels = [], []
    for ax in axes[: len(shown)]:
        for h, lab in zip(*ax.get_legend_handles_labels(), strict=True):
            if lab not in labels:
                handles.append(h)
                labels.append(lab)
    fig.legend(handles, labels, loc="lower center", ncol=len(labels), fontsize=8, frameon=False)
    fig.suptitle("Backtest: metrics by calibration end (origin)")
    fig.tight_layout(rect=(0, 0.06, 1, 1))
    return fig
