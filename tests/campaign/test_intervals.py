"""score_customers(interval=...), interval-aware targeting, the pipeline and the figure."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from matplotlib.figure import Figure

from rfmml.campaign import ScoringPipeline, scoring_frame, select_targets
from rfmml.models.uncertainty import INTERVAL_COLUMNS
from rfmml.plots import plot_segment_totals


@pytest.fixture(scope="module")
def interval_table(cdnow_fitted) -> pd.DataFrame:
    return cdnow_fitted.score(interval=0.9, n_draws=100, random_state=0, top_fraction=0.1)


def test_interval_columns_sit_after_their_estimates(interval_table, _cdnow_table):
    cols = list(interval_table.columns)
    for name in INTERVAL_COLUMNS:
        at = cols.index(name)
        assert cols[at + 1 : at + 3] == [f"{name}_lower", f"{name}_upper"]
    assert cols.index("purchase_count_lower") > cols.index("expected_purchases")
    assert cols[-3:] == ["action", "action_channel", "action_priority"]
    # the draws never change the point estimates
    pd.testing.assert_frame_equal(interval_table[list(_cdnow_table.columns)], _cdnow_table)


def test_every_customer_lies_in_the_bounds(interval_table):
    # NaT in expected_next_order_date is by design: more likely than not never to buy again
    assert not interval_table.drop(columns="expected_next_order_date").isna().any().any()
    for name in INTERVAL_COLUMNS:
        est = interval_table[name]
        assert (interval_table[f"{name}_lower"] <= est).all(), name
        assert (est <= interval_table[f"{name}_upper"]).all(), name
    assert interval_table["probability_top_clv"].between(0, 1).all()


def test_totals_in_the_attrs(interval_table):
    meta = interval_table.attrs["intervals"]
    assert meta["interval"] == 0.9 and meta["n_draws"] == 100 and meta["method"] == "parametric"
    totals = pd.DataFrame(meta["totals"]).set_index("segment")
    segments = interval_table["segment"].astype(str)
    assert set(totals.index) == set(segments) | {"all"}
    sizes = segments.value_counts()
    assert (totals.loc[sizes.index, "n_customers"] == sizes).all()
    by_segment = interval_table.groupby(segments)["clv"].sum()
    np.testing.assert_allclose(totals.loc[by_segment.index, "clv"], by_segment, rtol=1e-9)
    assert (totals["clv_lower"] <= totals["clv"]).all()
    assert (totals["clv"] <= totals["clv_upper"]).all()


def test_same_seed_same_intervals(cdnow_fitted, interval_table):
    again = cdnow_fitted.score(interval=0.9, n_draws=100, random_state=0, top_fraction=0.1)
    pd.testing.assert_frame_equal(again, interval_table)


def test_bootstrap_needs_the_training_draws(cdnow_fitted):
    with pytest.raises(ValueError, match=r"interval_method='bootstrap' refits on the training"):
        cdnow_fitted.score(interval=0.9, interval_method="bootstrap")


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"interval": 1.5}, r"interval must be a level strictly between 0 and 1"),
        ({"interval": 0.9, "n_draws": 1}, r"n_draws must be an integer >= 2"),
        ({"interval": 0.9, "interval_method": "mcmc"}, r"interval_method must be one of"),
    ],
)
def test_bad_interval_settings(cdnow_fitted, kwargs, match):
    with pytest.raises(ValueError, match=match):
        cdnow_fitted.score(**kwargs)


def test_targets_ranked_on_the_lower_bound(interval_table):
    result = select_targets(interval_table, n_contacts=500, rank_by="clv_lower")
    chosen = result.targets
    assert chosen["clv_lower"].is_monotonic_decreasing
    others = interval_table.drop(index=chosen.index)
    assert (others["clv_lower"] <= chosen["clv_lower"].min()).all()
    # the reported value stays the CLV
    assert result.expected_revenue == pytest.approx(chosen["clv"].sum())
    assert chosen.attrs["rank_by"] == "clv_lower"
    by_clv = select_targets(interval_table, n_contacts=500)
    assert result.expected_revenue <= by_clv.expected_revenue


def test_targets_ranked_on_the_top_decile_probability(interval_table):
    chosen = select_targets(interval_table, n_contacts=300, rank_by="probability_top_clv").targets
    assert chosen["probability_top_clv"].is_monotonic_decreasing


def test_rank_by_must_exist(cdnow_table):
    with pytest.raises(ValueError, match=r"rank_by column 'clv_lower' is not in the table; add"):
        select_targets(cdnow_table, n_contacts=5, rank_by="clv_lower")


def test_pipeline_saves_its_draws(cdnow_fitted, tmp_path):
    f = cdnow_fitted
    draws = {"purchase_model": f.bgnbd.draw_params(30, "bootstrap", 0, X=f.summary),
             "gamma_gamma": f.gamma_gamma.draw_params(30, random_state=1)}  # fmt: skip
    pipeline = ScoringPipeline(rule_segmenter=f.rules, purchase_model=f.bgnbd,
                               gamma_gamma=f.gamma_gamma, freq="W", interval=0.8, n_draws=30,
                               interval_method="bootstrap", param_draws=draws)  # fmt: skip
    frame = scoring_frame(f.features, f.summary)
    before = pipeline.predict(frame)
    loaded = ScoringPipeline.load(pipeline.save(tmp_path / "model"))
    after = loaded.predict(frame)
    pd.testing.assert_frame_equal(before, after)
    assert after.attrs["intervals"]["method"] == "bootstrap"


def test_segment_totals_figure(interval_table):
    fig = plot_segment_totals(pd.DataFrame(interval_table.attrs["intervals"]["totals"]))
    assert isinstance(fig, Figure) and len(fig.axes) == 2
    assert "all:" in fig.axes[0].get_title()


def test_pareto_nbd_scoring_has_count_intervals(cdnow_fitted):
    # `make demo` chooses the Pareto/NBD on CDNOW: its table gets the predictive count
    # columns and the segment totals their count intervals, as with the BG/NBD
    from rfmml.models import ParetoNBD

    pareto = ParetoNBD().fit(cdnow_fitted.summary)
    point = cdnow_fitted.score(purchase_model=pareto)
    table = cdnow_fitted.score(purchase_model=pareto, interval=0.9, n_draws=50, random_state=0)
    pd.testing.assert_frame_equal(table[list(point.columns)], point)  # draws change no estimate
    for name in INTERVAL_COLUMNS:
        assert (table[f"{name}_lower"] <= table[name]).all(), name
        assert (table[name] <= table[f"{name}_upper"]).all(), name
    lo, hi = table["purchase_count_lower"], table["purchase_count_upper"]
    assert not lo.isna().any() and not hi.isna().any()
    assert (lo == np.floor(lo)).all() and (lo >= 0).all() and (lo <= hi).all()
    # the upper bound is 0 exactly when no purchase has probability >= 95% (the mixture
    # over draws moves that probability little: a margin of 0.02)
    none = table["probability_no_purchase"]
    assert (hi[none > 0.97] == 0).all() and (hi[none < 0.93] >= 1).all()
    assert (hi > 0).any() and (lo > 0).any()
    totals = pd.DataFrame(table.attrs["intervals"]["totals"]).set_index("segment")
    assert {"purchase_count_lower", "purchase_count_upper"} <= set(totals.columns)
    assert (totals["purchase_count_lower"] <= totals["expected_purchases"]).all()
    assert (totals["expected_purchases"] <= totals["purchase_count_upper"]).all()
    # the predictive total adds process noise to the parameter uncertainty: wider
    everyone = totals.loc["all"]
    assert everyone["purchase_count_lower"] < everyone["expected_purchases_lower"]
    assert everyone["purchase_count_upper"] > everyone["expected_purchases_upper"]
