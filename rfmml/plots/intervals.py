"""Figure of segment totals with their intervals from joint parameter draws."""

from __future__ import annotations

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from rfmml.errors import DataError

__all__ = ["plot_segment_totals"]

_LABELS = {
    "expected_purchases": "expected purchases",
    "revenue": "expected revenue",
    "clv": "CLV",
}


def plot_segment_totals(
    totals: pd.DataFrame, columns: tuple[str, ...] = ("expected_purchases", "clv")
) -> Figure:
    """Per-segment totals as bars with their interval as error bars, one panel per column.

    Parameters
    ----------
    totals : pandas.DataFrame
        The totals of :func:`rfmml.models.uncertainty.interval_predictions` (or the
        records in ``predictions.attrs["intervals"]["totals"]``): ``segment``,
        and ``<column>``, ``<column>_lower``, ``<column>_upper`` per column. The
        ``"all"`` row is shown in the panel titles, not as a bar.
    columns : tuple of str
        Which totals to draw (present columns only).

    Returns
    -------
    matplotlib.figure.Figure
        One panel per shown column; segments sorted by their estimate.

    Raises
    ------
    DataError
        When ``totals`` has none of ``columns`` with both bounds.
    """
    frame = pd.DataFrame(totals)
    shown = [c for c in columns if {c, f"{c}_lower", f"{c}_upper"} <= set(frame.columns)]
    if not shown or "segment" not in frame.columns:
        raise DataError(
            f"plot_segment_totals needs a 'segment' column and one of {list(columns)} with its "
            f"_lower and _upper columns; got {list(map(str, frame.columns))}."
        )
    overall = frame[frame["segment"] == "all"]
    parts = frame[frame["segment"] != "all"]
    if parts.empty:
        parts = overall
    fig = Figure(figsize=(6.0 * len(shown), max(3.0, 0.45 * len(parts) + 1.5)),
                 layout="constrained")  # fmt: skip
    axes = np.atleast_1d(fig.subplots(1, len(shown), sharey=True))
    for ax, column in zip(axes, shown, strict=True):
        part = parts.sort_values(column)
        est = part[column].to_numpy(dtype=float)
        err = np.vstack([est - part[f"{column}_lower"].to_numpy(dtype=float),
                         part[f"{column}_upper"].to_numpy(dtype=float) - est])  # fmt: skip
        y = np.arange(len(part))
        ax.barh(y, est, color="#4c72b0", alpha=0.8)
        ax.errorbar(est, y, xerr=np.maximum(err, 0.0), fmt="none", ecolor="black", capsize=3)
        ax.set_yticks(y, part["segment"].astype(str).tolist())
        ax.set_xlabel(_LABELS.get(column, column))
        title = f"{_LABELS.get(column, column)} by segment"
        if not overall.empty:
            row = overall.iloc[0]
            title += (f"\nall: {row[column]:,.0f} ({row[f'{column}_lower']:,.0f} to "
                      f"{row[f'{column}_upper']:,.0f})")  # fmt: skip
        ax.set_title(title)
    return fig
