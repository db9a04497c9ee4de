from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from matplotlib.figure import Figure

from rfmml.errors import ConfigError, DataError
from rfmml.features import rfm_table
from rfmml.plots import (
    plot_cluster_profiles,
    plot_rf_grid,
    plot_segment_sizes,
    plot_silhouette_curve,
    plot_transition_matrix,
)
from rfmml.segments import (
    KMeansSegmenter,
    RFMScorer,
    RuleSegmenter,
    segment_profile,
    segment_transitions,
)


@pytest.fixture(scope="module")
def features(cdnow_tx):
    return rfm_table(cdnow_tx)


@pytest.fixture(scope="module")
def kmeans(features):
    return KMeansSegmenter(n_clusters="auto", k_range=(2, 5), sample_size=1500, random_state=0).fit(
        features
    )


def _texts(fig: Figure) -> list[str]:
    return [t.get_text() for ax in fig.axes for t in ax.texts]


@pytest.mark.parametrize("scheme", ["rf_grid", "rfm11"])
def test_rf_grid_heatmap_counts_means_and_names(features, scheme, tmp_path):
    scores = RFMScorer().fit_transform(features)
    fig = plot_rf_grid(scores, features["total_spend"], scheme)
    assert isinstance(fig, Figure)
    texts = _texts(fig)
    image = fig.axes[0].images[0].get_array()
    assert int(image.sum()) == len(features)
    # Top-left cell (highest R, lowest score on the other axis) as written on the plot.
    axis = "F" if scheme == "rf_grid" else "FM"
    cell = (scores["R"] == 5) & (scores[axis] == 1)
    if cell.any():
        mean = features.loc[cell, "total_spend"].mean()
        assert f"{int(cell.sum()):,}\n${mean:,.0f}" in texts
    else:
        assert image[0, 0] == 0 and "0\n-" in texts
    assert "Champions" in texts and "Hibernating" in texts
    fig.savefig(tmp_path / "grid.png")


def test_rf_grid_needs_a_two_axis_scheme_and_the_score_columns(features):
    scores = RFMScorer().fit_transform(features)
    with pytest.raises(DataError, match=r"missing column\(s\) \['FM'\]"):
        plot_rf_grid(scores.drop(columns="FM"), features["total_spend"], "rfm11")
    with pytest.raises(DataError, match="nothing to plot"):
        plot_rf_grid(scores.iloc[:0], features["total_spend"])


def test_segment_sizes(features):
    labels = RuleSegmenter().fit_predict(features)
    profile = segment_profile(features, labels)
    fig = plot_segment_sizes(profile)
    ax = fig.axes[0]
    assert len(ax.patches) == 2 * len(profile)
    assert [t.get_text() for t in ax.get_yticklabels()] == list(profile.index)
    widths = [p.get_width() for p in ax.patches]
    np.testing.assert_allclose(widths[: len(profile)], profile["share"])
    # a log without amounts: customer shares alone
    alone = plot_segment_sizes(profile.drop(columns="revenue_share")).axes[0]
    assert len(alone.patches) == len(profile)
    assert alone.get_title() == "Segment sizes"
    with pytest.raises(DataError, match=r"missing column\(s\) \['share'\]"):
        plot_segment_sizes(profile.drop(columns="share"))


def test_segment_sizes_per_group(features):
    rng = np.random.default_rng(42)
    channel = rng.choice(["store", "web"], len(features))
    grouped = features.set_index(pd.Index(channel, name="channel"), append=True)
    labels = RuleSegmenter().fit_predict(grouped)
    fig = plot_segment_sizes(segment_profile(grouped, labels))
    assert [ax.get_title() for ax in fig.axes] == [
        "Segment sizes and revenue: store",
        "Segment sizes and revenue: web",
    ]


def test_transition_matrix_rates_and_counts(cdnow_tx):
    result = segment_transitions(cdnow_tx, ["1997-06-30", "1998-06-30"], RuleSegmenter())
    rates = result.matrix(normalize=True)
    fig = plot_transition_matrix(rates)
    texts = _texts(fig)
    value = rates.loc["Champions", "Champions"]
    assert f"{value:.0%}" in texts
    counts_fig = plot_transition_matrix(result.matrix(), title="Q2 1997 -> Q2 1998")
    assert counts_fig.axes[0].get_title() == "Q2 1997 -> Q2 1998"
    assert f"{result.matrix().loc['Champions', 'Champions']:,.0f}" in _texts(counts_fig)
    with pytest.raises(DataError, match="empty matrix"):
        plot_transition_matrix(pd.DataFrame())


def test_cluster_profiles_snake_plot(kmeans, features):
    fig = plot_cluster_profiles(kmeans, features)
    ax = fig.axes[0]
    assert len(ax.lines) == kmeans.n_clusters_ + 1  # one line per cluster + zero line
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert labels[0].startswith("0: Champions (n=")
    # Cluster 0 is the most valuable: highest standardised log spend.
    spend = [line.get_ydata()[2] for line in ax.lines[: kmeans.n_clusters_]]
    assert spend[0] == max(spend)


def test_silhouette_curve_marks_the_best_k(kmeans):
    fig = plot_silhouette_curve(kmeans.silhouette_curve_)
    ax = fig.axes[0]
    np.testing.assert_allclose(ax.lines[0].get_ydata(), kmeans.silhouette_curve_.to_numpy())
    assert ax.get_legend().get_texts()[0].get_text() == f"best k = {kmeans.n_clusters_}"
    with pytest.raises(DataError, match="no finite value"):
        plot_silhouette_curve(pd.Series([np.nan], index=[2]))


def test_grid_of_a_one_axis_scheme_is_refused(features, tmp_path):
    path = tmp_path / "one.toml"
    path.write_text(
        '[[segments]]\nname = "All"\ndescription = "Everyone."\naction = "newsletter"\n'
        '[[rules]]\nsegment = "All"\nR = [1, 5]\n'
    )
    scores = RFMScorer().fit_transform(features)
    with pytest.raises(ConfigError, match=r"grid\(\) needs exactly two"):
        plot_rf_grid(scores, features["total_spend"], str(path))
