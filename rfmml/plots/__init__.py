"""Figures: each function takes data and returns a matplotlib Figure (never shown)."""

from rfmml.plots.segments import (
    plot_cluster_profiles,
    plot_rf_grid,
    plot_segment_sizes,
    plot_silhouette_curve,
    plot_transition_matrix,
)

__all__ = [
    "plot_cluster_profiles",
    "plot_rf_grid",
    "plot_segment_sizes",
    "plot_silhouette_curve",
    "plot_transition_matrix",
]
