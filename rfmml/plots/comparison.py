"""The side-by-side chart of segmentations (``comparison.png``)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

__all__ = ["COMPARISON_METRICS", "plot_comparison"]

COMPARISON_METRICS = (
    "buy_again_auc",
    "spend_variance_explained",
    "top_revenue_capture",
    "silhouette",
    "stability_ari_mean",
    "size_entropy_normalized",
)


def plot_comparison(
    comparison: pd.DataFrame, metrics: Sequence[str] = COMPARISON_METRICS
) -> Figure:
    """One panel per metric, one bar per segmentation (best by the primary metric on top).

    Parameters
    ----------
    comparison : pandas.DataFrame
        :func:`rfmml.evaluation.compare_table` output (index: segmentation names).
    metrics : sequence of str
        Metrics to draw; those absent from the table are skipped.

    Returns
    -------
    matplotlib.figure.Figure
    """
    shown = [m for m in metrics if m in comparison.columns]
    if not shown:
        raise ValueError(
            f"none of the metrics {list(metrics)} is in the comparison table "
            f"(columns: {list(comparison.columns)})"
        )
    names = [str(n) for n in comparison.index]
    fig = Figure(figsize=(3.2 * len(shown), 0.45 * len(names) + 1.6))
    axes = fig.subplots(1, len(shown), sharey=True, squeeze=False)[0]
    y = np.arange(len(names))[::-1]
    for ax, metric in zip(axes, shown, strict=True):
        values = comparison[metric].to_numpy(dtype=float)
        ax.barh(y, np.nan_to_num(values), color="#4C72B0")
        for yi, v in zip(y, values, strict=True):
            ax.text(0, yi, " n/a" if np.isnan(v) else f" {v:.3f}", va="center", fontsize=8,
                    color="white" if not np.isnan(v) and v > 0 else "black")  # fmt: skip
        ax.set_title(metric.replace("_", " "), fontsize=9)
        ax.set_yticks(y)
        ax.set_yticklabels(names, fontsize=8)
        ax.tick_params(axis="x", labelsize=7)
    primary = comparison.attrs.get("primary")
    fig.suptitle("Segmentations compared" + (f" (ranked by {primary})" if primary else ""))
    fig.tight_layout()
    return fig
