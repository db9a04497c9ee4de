"""Segment figures: score grid, segment sizes, transitions, cluster profiles, silhouette.

Every function takes data and returns a :class:`matplotlib.figure.Figure` built
without pyplot (no global state, nothing shown); save it with ``fig.savefig``.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.ticker import PercentFormatter

from rfmml.errors import DataError, require_columns
from rfmml.segments import KMeansSegmenter, Scheme, load_scheme

__all__ = [
    "plot_cluster_profiles",
    "plot_rf_grid",
    "plot_segment_sizes",
    "plot_silhouette_curve",
    "plot_transition_matrix",
]


def _require(frame: pd.DataFrame, columns: list[str], where: str) -> None:
    require_columns(frame, columns, where)
    if len(frame) == 0:
        raise DataError(f"{where}: nothing to plot (0 rows).")


def plot_rf_grid(
    scores: pd.DataFrame,
    monetary: pd.Series,
    scheme: str | Scheme = "rf_grid",
    *,
    currency: str = "$",
) -> Figure:
    """Heatmap of customers on the scheme's score grid, with segment names drawn on it.

    Each cell shows the number of customers and their mean monetary value; colour
    is the customer count. Thick lines separate segments and each segment's name is
    written at the centre of its cells.

    Parameters
    ----------
    scores : pandas.DataFrame
        Score columns of the scheme's two axes (``R`` and ``F`` for ``rf_grid``,
        ``R`` and ``FM`` for ``rfm11``), e.g. ``RFMScorer().fit_transform(features)``.
    monetary : pandas.Series
        Monetary value per customer (e.g. ``features["total_spend"]``), same index.
    scheme : str or Scheme, default="rf_grid"
        A two-axis scheme.
    currency : str, default="$"
        Prefix of the monetary labels.

    Returns
    -------
    matplotlib.figure.Figure
    """
    scheme = load_scheme(scheme)
    grid = scheme.grid()  # raises ConfigError unless two axes
    row_key, col_key = scheme.axes
    _require(scores, [row_key, col_key], "plot_rf_grid")
    value = monetary.reindex(scores.index).to_numpy(dtype=float)
    n = scheme.n_scores
    rows = scores[row_key].to_numpy(dtype=int)
    cols = scores[col_key].to_numpy(dtype=int)
    flat = (n - rows) * n + (cols - 1)  # row 0 is the highest row score
    counts = np.bincount(flat, minlength=n * n).reshape(n, n)
    totals = np.bincount(flat, weights=np.nan_to_num(value), minlength=n * n).reshape(n, n)
    with np.errstate(invalid="ignore", divide="ignore"):
        means = totals / counts

    fig = Figure(figsize=(8.5, 7))
    ax = fig.subplots()
    image = ax.imshow(counts, cmap="Blues", aspect="equal")
    fig.colorbar(image, ax=ax, label="customers")
    threshold = counts.max() * 0.6 if counts.max() else 1
    for i in range(n):
        for j in range(n):
            mean = f"{currency}{means[i, j]:,.0f}" if counts[i, j] else "-"
            ax.text(
                j,
                i + 0.28,
                f"{counts[i, j]:,}\n{mean}",
                ha="center",
                va="center",
                fontsize=7,
                color="white" if counts[i, j] > threshold else "black",
            )
    names = grid.to_numpy()
    for i in range(n):
        for j in range(n):
            if j + 1 < n and names[i, j] != names[i, j + 1]:
                ax.plot([j + 0.5, j + 0.5], [i - 0.5, i + 0.5], color="black", lw=2)
            if i + 1 < n and names[i, j] != names[i + 1, j]:
                ax.plot([j - 0.5, j + 0.5], [i + 0.5, i + 0.5], color="black", lw=2)
    for name in scheme.segment_names:
        where = np.argwhere(names == name)
        if len(where) == 0:
            continue
        # Centre of the segment's cells, snapped to its nearest cell so that
        # non-rectangular segments keep the label inside their own area.
        centre = where.mean(axis=0)
        i, j = where[np.argmin(((where - centre) ** 2).sum(axis=1))]
        ax.text(
            j,
            i - 0.22,
            name,
            ha="center",
            va="center",
            fontsize=7,
            fontweight="bold",
            bbox={"boxstyle": "round,pad=0.15", "fc": "white", "alpha": 0.8, "lw": 0},
        )
    ax.set_xticks(range(n), [str(c) for c in grid.columns])
    ax.set_yticks(range(n), [str(r) for r in grid.index])
    ax.set_xlabel(f"{col_key} score")
    ax.set_ylabel(f"{row_key} score")
    ax.set_title(f"{scheme.name}: customers and mean monetary value per cell")
    return fig


def plot_segment_sizes(profile: pd.DataFrame) -> Figure:
    """Share of customers and share of revenue per segment, side by side.

    Parameters
    ----------
    profile : pandas.DataFrame
        Output of :func:`rfmml.segments.segment_profile` (columns ``share`` and
        ``revenue_share``, index ``segment``; a ``(group, segment)`` index gives one
        panel per group).

    Returns
    -------
    matplotlib.figure.Figure
    """
    _require(profile, ["share", "revenue_share"], "plot_segment_sizes")
    if profile.index.nlevels == 2:
        panels = [(g, profile.xs(g, level=0)) for g in profile.index.unique(level=0)]
    else:
        panels = [(None, profile)]
    fig = Figure(figsize=(8, 0.4 * len(panels[0][1]) * len(panels) + 1.5))
    axes = np.atleast_1d(fig.subplots(len(panels), 1, squeeze=False)[:, 0])
    for ax, (group, block) in zip(axes, panels, strict=True):
        y = np.arange(len(block))
        ax.barh(y - 0.2, block["share"], height=0.4, label="customers")
        ax.barh(y + 0.2, block["revenue_share"], height=0.4, label="revenue")
        ax.set_yticks(y, [str(s) for s in block.index])
        ax.invert_yaxis()
        ax.xaxis.set_major_formatter(PercentFormatter(1.0))
        ax.set_title("Segment sizes and revenue" + (f": {group}" if group is not None else ""))
        ax.legend(loc="lower right")
    axes[-1].set_xlabel("share")
    fig.tight_layout()
    return fig


def plot_transition_matrix(matrix: pd.DataFrame, *, title: str | None = None) -> Figure:
    """Heatmap of a migration matrix (rows: from segment, columns: to segment).

    Parameters
    ----------
    matrix : pandas.DataFrame
        E.g. ``segment_transitions(...).matrix(normalize=True)``; values in [0, 1]
        are shown as percentages, others as counts.
    title : str, optional

    Returns
    -------
    matplotlib.figure.Figure
    """
    if matrix.size == 0:
        raise DataError("plot_transition_matrix: nothing to plot (empty matrix).")
    values = matrix.to_numpy(dtype=float)
    finite = values[np.isfinite(values)]
    as_rate = finite.size > 0 and finite.min() >= 0 and finite.max() <= 1
    fig = Figure(figsize=(1 + 0.75 * matrix.shape[1], 1 + 0.6 * matrix.shape[0]))
    ax = fig.subplots()
    image = ax.imshow(np.ma.masked_invalid(values), cmap="Purples", aspect="auto")
    fig.colorbar(image, ax=ax, label="share of row" if as_rate else "customers")
    top = np.nanmax(values) if finite.size else 1
    for i in range(values.shape[0]):
        for j in range(values.shape[1]):
            v = values[i, j]
            if not np.isfinite(v) or v == 0:
                continue
            ax.text(
                j,
                i,
                f"{v:.0%}" if as_rate else f"{v:,.0f}",
                ha="center",
                va="center",
                fontsize=7,
                color="white" if v > 0.6 * top else "black",
            )
    ax.set_xticks(range(matrix.shape[1]), [str(c) for c in matrix.columns], rotation=45, ha="right")
    ax.set_yticks(range(matrix.shape[0]), [str(r) for r in matrix.index])
    ax.set_xlabel("to segment")
    ax.set_ylabel("from segment")
    ax.set_title(title or "Segment transitions")
    fig.tight_layout()
    return fig


def plot_cluster_profiles(segmenter: KMeansSegmenter, features: pd.DataFrame) -> Figure:
    """Snake plot: mean standardised feature value of each k-means cluster.

    The features go through the fitted pipeline's ``log1p`` and scaling steps, so
    the y-axis is in standard deviations from the mean customer.

    Parameters
    ----------
    segmenter : KMeansSegmenter
        A fitted segmenter.
    features : pandas.DataFrame
        Customers to profile (e.g. the training features).

    Returns
    -------
    matplotlib.figure.Figure
    """
    ids = segmenter.predict_cluster(features)  # checks fitted and columns
    z = segmenter.pipeline_[:-1].transform(features[list(segmenter.features)].to_numpy(float))
    means = pd.DataFrame(z, columns=list(segmenter.features)).groupby(ids.to_numpy()).mean()
    fig = Figure(figsize=(8, 5))
    ax = fig.subplots()
    positions = np.arange(len(means.columns))
    sizes = np.bincount(ids.to_numpy(), minlength=segmenter.n_clusters_)
    for cluster, row in means.iterrows():
        name = segmenter.cluster_names_[int(cluster)]
        ax.plot(
            positions,
            row.to_numpy(),
            marker="o",
            label=f"{int(cluster)}: {name} (n={sizes[int(cluster)]:,})",
        )
    ax.axhline(0.0, color="grey", lw=0.8, ls="--")
    labels = [f"log1p({c})" if c in segmenter.log_features else str(c) for c in means.columns]
    ax.set_xticks(positions, labels)
    ax.set_ylabel("standardised mean")
    ax.set_title("K-means cluster profiles")
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def plot_silhouette_curve(curve: pd.Series) -> Figure:
    """Mean silhouette per number of clusters, best k marked.

    Parameters
    ----------
    curve : pandas.Series
        ``KMeansSegmenter.silhouette_curve_`` (index k, values silhouette).

    Returns
    -------
    matplotlib.figure.Figure
    """
    if len(curve) == 0 or curve.isna().all():
        raise DataError("plot_silhouette_curve: the curve has no finite value to plot.")
    best = curve.idxmax()
    fig = Figure(figsize=(6, 4))
    ax = fig.subplots()
    ax.plot(curve.index, curve.to_numpy(), marker="o")
    ax.plot(
        [best], [curve[best]], marker="o", ms=12, mfc="none", mec="red", label=f"best k = {best}"
    )
    ax.set_xticks(list(curve.index))
    ax.set_xlabel("number of clusters k")
    ax.set_ylabel("mean silhouette (sample)")
    ax.set_title("Choosing k")
    ax.legend()
    fig.tight_layout()
    return fig
