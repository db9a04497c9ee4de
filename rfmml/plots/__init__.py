"""Matplotlib figures: each function takes data and returns a Figure."""

from rfmml.plots.comparison import plot_comparison
from rfmml.plots.intervals import plot_segment_totals
from rfmml.plots.models import (
    plot_calibration_vs_holdout_purchases,
    plot_frequency_recency_matrix,
    plot_period_transactions,
    plot_probability_alive_matrix,
    plot_tracking,
)
from rfmml.plots.periods import plot_revenue_concentration, plot_segment_periods
from rfmml.plots.segments import (
    plot_cluster_profiles,
    plot_rf_grid,
    plot_segment_sizes,
    plot_silhouette_curve,
    plot_transition_matrix,
)

__all__ = [
    "plot_comparison",
    "plot_calibration_vs_holdout_purchases",
    "plot_frequency_recency_matrix",
    "plot_period_transactions",
    "plot_probability_alive_matrix",
    "plot_revenue_concentration",
    "plot_segment_periods",
    "plot_cluster_profiles",
    "plot_rf_grid",
    "plot_segment_sizes",
    "plot_segment_totals",
    "plot_silhouette_curve",
    "plot_tracking",
    "plot_transition_matrix",
]
