"""The bracketed root finder of ``next_purchase_quantile``: bisection's answer, fewer steps."""

from __future__ import annotations

import numpy as np

from rfmml.models._roots import bracketed_root


def _bisection(f, lo, hi, rtol=1e-12):
    """Reference: plain bisection to the same bracket width (the former solver)."""
    lo, hi = lo.copy(), hi.copy()
    for _ in range(400):
        mid = 0.5 * (lo + hi)
        above = f(mid) > 0.0
        lo, hi = np.where(above, mid, lo), np.where(above, hi, mid)
        if np.all(hi - lo <= rtol * hi):
            break
    return hi


def _solve(f, lo, hi, *columns):
    calls = []

    def counted(t, *cols):
        calls.append(len(t))
        return f(t, *cols)

    out = bracketed_root(counted, lo, hi, f(lo, *columns), f(hi, *columns), columns)
    return out, calls


def test_smooth_roots_match_bisection_in_a_third_of_the_steps():
    # survival of a gamma-mixed Poisson, (1 + t / K) ** -s = 1/2: the root is known exactly
    rng = np.random.default_rng(0)
    K, s = rng.uniform(1.0, 1000.0, 5000), rng.uniform(0.05, 50.0, 5000)

    def f(t, K=K, s=s):
        return np.exp(-s * np.log1p(t / K)) - 0.5

    lo, hi = np.zeros(5000), K * 2.0 ** np.ceil(np.log2(2.0 ** (1.0 / s)))
    out, calls = _solve(f, lo, hi, K, s)
    exact = K * np.expm1(np.log(2.0) / s)
    np.testing.assert_allclose(out, exact, rtol=2e-12)
    np.testing.assert_allclose(out, _bisection(lambda t: f(t), lo, hi), rtol=2e-12)
    assert np.all(out >= exact * (1 - 1e-15))  # the upper end of the bracket
    steps = len(calls)  # every row needs about 40 + log2(hi / root) bisection steps
    assert steps <= 16, steps  # measured 14
    assert sum(calls) / 5000 <= 14  # steps per row (measured 12.9; bisection ~45)


def test_step_function_and_nan_still_converge_to_the_sign_change():
    # a staircase (as a function known to a few digits, or whole opportunities) and NaN
    # values on part of the interval: the safeguard bisects
    edges = np.array([3.0, 7.25, 100.0])

    def f(t, edge):
        out = np.where(np.floor(t) < edge, 1.0, -1.0)
        return np.where((t > edge + 1.0) & (t < edge + 2.0), np.nan, out)

    lo, hi = np.zeros(3), np.full(3, 1000.0)
    out, calls = _solve(f, lo, hi, edges)
    expected = np.ceil(edges)  # smallest t with floor(t) >= edge
    np.testing.assert_allclose(out, expected, rtol=1e-12)
    assert np.all(out >= expected)
    assert len(calls) <= 4 * 45  # measured 57; bisection 1000 -> 1e-9 takes 40


def test_converged_and_empty_brackets():
    f = lambda t: 1.0 - t  # noqa: E731
    lo, hi = np.array([0.5, 1.0 - 1e-13]), np.array([2.0, 1.0])
    out = bracketed_root(lambda t: f(t), lo, hi, f(lo), f(hi))
    np.testing.assert_allclose(out, [1.0, 1.0], rtol=1e-12)
    assert out[1] == 1.0  # already within the tolerance: returned as given
    empty = bracketed_root(lambda t: t, np.empty(0), np.empty(0), np.empty(0), np.empty(0))
    assert empty.shape == (0,)
