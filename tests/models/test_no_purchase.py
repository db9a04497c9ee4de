"""P(no purchase in the next t periods) of BG/NBD and what the base derives from it."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from scipy.integrate import dblquad

from rfmml.errors import DataError
from rfmml.models import BetaGeoNBD
from rfmml.models import _formulas as F

CDNOW = {"r": 0.243, "alpha": 4.414, "a": 0.793, "b": 2.426}


def _no_purchase_by_integration(t, x, t_x, T, r, alpha, a, b):
    """The definition, integrated numerically over the posterior of (lambda, p).

    Given (lambda, p) the history has likelihood
    ``(1 - p)^x lambda^x e^{-lambda T}`` (alive at T) plus
    ``p (1 - p)^(x - 1) lambda^x e^{-lambda t_x}`` (died at the last purchase,
    x > 0) (FHL05 eq. 3); the prior is Gamma(r, alpha) x Beta(a, b). Alive
    customers skip (T, T + t] with probability e^{-lambda t}, dead ones
    always do. Integrated in u = lambda^r and v = p^a, where the prior
    densities have no singularity (their constants cancel in the ratio).
    """
    lam_max = (r + x + 50.0) / (alpha + t_x)  # posterior mass beyond is ~e^-50

    def integrand(kind):
        def f(u, v):
            lam, p = u ** (1.0 / r), v ** (1.0 / a)
            prior = math.exp(-alpha * lam) * (1.0 - p) ** (b - 1.0)
            if kind == "dead":
                return prior * p * (1.0 - p) ** (x - 1) * lam**x * math.exp(-lam * t_x)
            stay = math.exp(-lam * t) if kind == "alive_stays" else 1.0
            return prior * (1.0 - p) ** x * lam**x * math.exp(-lam * T) * stay

        return dblquad(f, 0.0, 1.0, 0.0, lam_max**r, epsabs=0.0, epsrel=1e-9)[0]

    dead = integrand("dead") if x > 0 else 0.0
    return (integrand("alive_stays") + dead) / (integrand("alive") + dead)


@pytest.mark.parametrize(
    ("x", "t_x", "T", "t"),
    [(0, 0.0, 30.0, 10.0), (2, 20.0, 38.0, 26.0), (7, 35.0, 36.0, 52.0), (1, 2.0, 70.0, 5.0)],
)
def test_no_purchase_matches_numerical_integration_of_the_definition(x, t_x, T, t):
    exact = F.bgnbd_probability_no_purchase(t, x, t_x, T, *CDNOW.values())
    numeric = _no_purchase_by_integration(t, x, t_x, T, *CDNOW.values())
    assert exact == pytest.approx(numeric, rel=1e-6)


def test_no_purchase_agrees_with_the_models_other_answers(cdnow_bgnbd, cdnow_summary):
    s = cdnow_summary
    p0 = cdnow_bgnbd.probability_no_purchase(s, 0.0)
    assert p0.name == "probability_no_purchase" and p0.index.equals(s.index)
    np.testing.assert_allclose(p0, 1.0, rtol=0, atol=1e-15)
    never = cdnow_bgnbd.probability_no_purchase(s, np.inf)
    np.testing.assert_allclose(never, 1.0 - cdnow_bgnbd.probability_alive(s), atol=1e-15)
    within = cdnow_bgnbd.probability_purchase_within(s, 26.0)
    np.testing.assert_allclose(within, cdnow_bgnbd.probability_repeat_purchase(s, 26.0), atol=1e-14)
    np.testing.assert_allclose(within + cdnow_bgnbd.probability_no_purchase(s, 26.0), 1.0)


def test_no_purchase_by_simulation_of_new_customers(cdnow_bgnbd):
    # For a new customer (x = 0, T = 0) P(no purchase in t) is P(Y(t) = 0), FHL05 eq. (8).
    fresh = pd.DataFrame({"frequency": [0.0], "recency": [0.0], "T": [0.0]})
    for t in (1.0, 10.0, 78.0):
        ours = float(cdnow_bgnbd.probability_no_purchase(fresh, t).iloc[0])
        assert ours == pytest.approx(cdnow_bgnbd.probability_of_purchases(0, t), rel=1e-12)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    params=st.tuples(*(st.floats(0.02, 30.0) for _ in range(4))),
    x=st.integers(0, 60),
    T=st.floats(0.5, 200.0),
    recency_share=st.floats(0.0, 1.0),
    t=st.lists(st.floats(0.0, 1e4), min_size=2, max_size=6),
)
def test_no_purchase_is_a_probability_non_increasing_in_t_and_above_death(
    params, x, T, recency_share, t
):
    t_x = 0.0 if x == 0 else T * recency_share
    t = np.sort(np.asarray(t))
    p = F.bgnbd_probability_no_purchase(t, x, t_x, T, *params)
    assert np.all((p >= 0.0) & (p <= 1.0))
    assert np.all(np.diff(p) <= 1e-15)
    dead = 1.0 - F.bgnbd_probability_alive(x, t_x, T, *params)
    assert np.all(p >= dead - 1e-15)


def test_next_purchase_quantile_inverts_no_purchase(cdnow_bgnbd, cdnow_summary):
    s = cdnow_summary
    for q in (0.1, 0.5, 0.9):
        tq = cdnow_bgnbd.next_purchase_quantile(s, q)
        assert tq.index.equals(s.index) and tq.name == "next_purchase_quantile"
        never = cdnow_bgnbd.probability_no_purchase(s, np.inf).to_numpy()
        finite = np.isfinite(tq.to_numpy())
        np.testing.assert_array_equal(finite, never < 1.0 - q)
        at = cdnow_bgnbd.probability_no_purchase(s[finite], tq[finite])
        np.testing.assert_allclose(at, 1.0 - q, rtol=0, atol=1e-9)
    median = cdnow_bgnbd.next_purchase_quantile(s, 0.5)
    later = cdnow_bgnbd.next_purchase_quantile(s, 0.6)
    assert (later >= median).all()


def test_bad_quantile_and_horizon(cdnow_bgnbd, cdnow_summary):
    with pytest.raises(ValueError, match="q must be a number strictly between 0 and 1"):
        cdnow_bgnbd.next_purchase_quantile(cdnow_summary, 1.0)
    with pytest.raises(DataError, match="t must be >= 0 and not NaN"):
        cdnow_bgnbd.probability_no_purchase(cdnow_summary, -1.0)
    with pytest.raises(Exception, match="not fitted"):
        BetaGeoNBD().probability_no_purchase(cdnow_summary, 1.0)


@pytest.mark.parametrize("kind", ["bgnbd", "mbgnbd"])
def test_closed_form_quantile_equals_the_root_search(kind, cdnow_summary, monkeypatch):
    """The BG/NBD and MBG/NBD quantiles in closed form are the roots the search finds."""
    import warnings

    from rfmml.models import ModifiedBetaGeoNBD
    from rfmml.models import _formulas_mbgnbd as M

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = (BetaGeoNBD() if kind == "bgnbd" else ModifiedBetaGeoNBD()).fit(cdnow_summary)
    module = F if kind == "bgnbd" else M
    for q in (0.05, 0.5, 0.9):
        closed = model.next_purchase_quantile(cdnow_summary, q).to_numpy()
        with monkeypatch.context() as patch:  # the search the other models use
            patch.delattr(module, f"{kind}_next_purchase_quantile")
            searched = model.next_purchase_quantile(cdnow_summary, q).to_numpy()
        np.testing.assert_array_equal(np.isfinite(closed), np.isfinite(searched))
        assert np.isfinite(closed).any() and not np.isfinite(closed).all()
        finite = np.isfinite(closed)
        np.testing.assert_allclose(closed[finite], searched[finite], rtol=1e-10, atol=0)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    r=st.floats(0.01, 50.0), alpha=st.floats(0.01, 500.0), a=st.floats(0.01, 20.0),
    b=st.floats(0.01, 20.0), x=st.integers(0, 200), share=st.floats(0.0, 1.0),
    T=st.floats(0.0, 2000.0), q=st.floats(0.01, 0.99),
)  # fmt: skip
def test_closed_form_quantile_inverts_no_purchase(r, alpha, a, b, x, share, T, q):
    """At the closed-form quantile, P(no purchase in t) is 1 - q; never buying: inf."""
    t_x = 0.0 if x == 0 else share * T
    params = (r, alpha, a, b)
    t = F.bgnbd_next_purchase_quantile(q, x, t_x, T, *params)
    never = F.bgnbd_probability_no_purchase(np.inf, x, t_x, T, *params)
    assert np.isfinite(t) == (never < 1.0 - q)
    if np.isfinite(t):
        assert t >= 0.0
        p = F.bgnbd_probability_no_purchase(t, x, t_x, T, *params)
        assert abs(p - (1.0 - q)) < 1e-9
