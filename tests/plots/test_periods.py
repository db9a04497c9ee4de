"""Segments per period and revenue concentration figures."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from rfmml.errors import DataError
from rfmml.plots import plot_revenue_concentration, plot_segment_periods


def test_segment_periods_stacks_each_segment():
    table = pd.DataFrame(
        {
            "period": ["2024-01", "2024-01", "2024-02"],
            "segment": ["A", "B", "A"],
            "customers": [2, 1, 3],
            "revenue": [20.0, 5.0, 30.0],
        }
    )
    fig = plot_segment_periods(table)
    revenue, customers = fig.axes
    heights = sorted(round(p.get_height(), 6) for p in revenue.patches)
    assert heights == [0.0, 5.0, 20.0, 30.0]  # B has no purchase in February
    top = max(p.get_y() + p.get_height() for p in customers.patches)
    assert top == 3.0
    assert [t.get_text() for t in revenue.get_legend().get_texts()] == ["A", "B"]
    assert len(plot_segment_periods(table.drop(columns="revenue")).axes) == 1


def test_segment_periods_errors():
    with pytest.raises(DataError, match=r"missing column\(s\) \['customers'\]"):
        plot_segment_periods(pd.DataFrame({"period": ["x"], "segment": ["A"]}))
    with pytest.raises(DataError, match="nothing to plot"):
        plot_segment_periods(pd.DataFrame(columns=["period", "segment", "customers"]))


def test_revenue_concentration_marks_the_top_share():
    fig = plot_revenue_concentration(pd.Series([50.0, 30.0, 10.0, 6.0, 4.0]))
    (ax,) = fig.axes
    curve = ax.lines[0]
    assert curve.get_ydata()[1] == pytest.approx(0.5)  # the top customer, 1 of 5, brings half
    assert curve.get_ydata()[-1] == pytest.approx(1.0)
    assert "top 20% of customers: 50% of revenue" in [t.get_text() for t in ax.texts]


def test_revenue_concentration_refuses_bad_spend():
    with pytest.raises(DataError, match="without missing or negative values"):
        plot_revenue_concentration(pd.Series([1.0, -2.0]))
    with pytest.raises(DataError, match="sum to more than 0"):
        plot_revenue_concentration(pd.Series([0.0, 0.0]))


def test_revenue_concentration_of_many_customers_is_drawn_through_exact_points():
    rng = np.random.default_rng(3)
    spend = pd.Series(rng.lognormal(3.0, 1.2, 50_001))
    fig = plot_revenue_concentration(spend)
    x, y = fig.axes[0].lines[0].get_data()
    assert 2_000 <= len(x) <= 2_003  # the origin, 2,001 ranks and the marked one
    ordered = np.sort(spend.to_numpy())[::-1]
    exact = np.cumsum(ordered) / ordered.sum()
    ranks = np.rint(np.asarray(x[1:]) * len(ordered)).astype(int) - 1
    np.testing.assert_allclose(y[1:], exact[ranks], rtol=1e-12)
    assert x[-1] == 1.0 and y[-1] == pytest.approx(1.0)
    n_top = int(np.ceil(0.2 * len(ordered)))
    assert (ranks == n_top - 1).any()  # the marked point lies on the drawn curve
