"""The BG/NBD and MBG/NBD likelihood sums: compiled loop, numpy path and their conditioning.

Summaries of at least ``LIKELIHOOD_KERNEL_MIN_ROWS`` prepared rows take the
row sums from one compiled pass (:func:`rfmml.models._kernels.bg_likelihood_sums`),
smaller ones from numpy; both must give the same total and gradient to
rounding (sums of the same terms in another order). On a degenerate fit's
ridge (``r``, ``alpha`` -> infinity at a fixed rate ``r / alpha``, ``a`` ->
0) both models tend to a Poisson process without dropout, whose
log-likelihood ``x ln(lambda) - lambda T`` is the oracle: the arrangement
``-r ln(1 + T / alpha)`` and the gamma-function blocks as sums over
``j < x`` keep every digit there, where ``r ln(alpha) - (r + x) ln(alpha + T)``
and differences of ``gammaln`` of order ``1e13`` lost them all.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy.special import digamma, gammaln

from rfmml.models import _formulas as F
from rfmml.models import _formulas_mbgnbd as M
from rfmml.models import simulate_bgnbd

MODELS = {
    "BG/NBD": (F.bgnbd_prepare, F.bgnbd_total_log_likelihood_and_gradient),
    "MBG/NBD": (M.mbgnbd_prepare, M.mbgnbd_total_log_likelihood_and_gradient),
}


@pytest.fixture(scope="module")
def fractional_summary() -> pd.DataFrame:
    """3,000 simulated customers with fractional recency and T: no time levels."""
    rng = np.random.default_rng(3)
    T = 78.0 - rng.uniform(0.0, 52.0, size=3_000)
    s = simulate_bgnbd(3_000, T, {"r": 0.243, "alpha": 4.414, "a": 0.793, "b": 2.426}, 3)
    assert (s["T"] != np.floor(s["T"])).all()
    return s


def _likelihood(model: str, summary: pd.DataFrame, theta, *, compiled: bool, monkeypatch):
    prepare, total = MODELS[model]
    monkeypatch.setattr(F, "LIKELIHOOD_KERNEL_MIN_ROWS", 0 if compiled else 10**12)
    cols = [summary[c].to_numpy(dtype=float) for c in ("frequency", "recency", "T")]
    weights = np.linspace(1.0, 3.0, len(summary))
    return total(*theta, prepare(*cols, weights))


@pytest.mark.parametrize("model", list(MODELS))
@pytest.mark.parametrize("data", ["cdnow_summary", "fractional_summary"])
def test_compiled_sums_equal_the_numpy_expression(model, data, request, monkeypatch):
    s = request.getfixturevalue(data)
    assert (data == "fractional_summary") == (F._levels(s["T"].to_numpy())[0] is None)
    for theta in [(0.243, 4.414, 0.793, 2.426), (2.0, 30.0, 0.05, 8.0)]:
        numpy = _likelihood(model, s, theta, compiled=False, monkeypatch=monkeypatch)
        compiled = _likelihood(model, s, theta, compiled=True, monkeypatch=monkeypatch)
        assert compiled[0] == pytest.approx(numpy[0], rel=1e-13)
        np.testing.assert_allclose(compiled[1], numpy[1], rtol=1e-10)


@pytest.mark.parametrize("compiled", [False, True])
@pytest.mark.parametrize("model", list(MODELS))
def test_likelihood_keeps_its_digits_on_the_degenerate_ridge(
    model, compiled, cdnow_summary, monkeypatch
):
    s = cdnow_summary
    x, T = s["frequency"].to_numpy(), s["T"].to_numpy()
    weights = np.linspace(1.0, 3.0, len(s))
    rate = 0.08  # purchases per week, r / alpha
    poisson = float(weights @ (x * np.log(rate) - rate * T))  # about -2.4e4
    for r in [1e6, 1e9, 1e12]:
        theta = (r, r / rate, 1e-12, 1.0)
        total, grad = _likelihood(model, s, theta, compiled=compiled, monkeypatch=monkeypatch)
        # the model's distance from the limit is below sum w x^2 / r (ln Gamma(r + x)
        # - ln Gamma(r) - x ln r) plus O(a); r ln(alpha) alone is 3e13 at r = 1e12
        assert total == pytest.approx(poisson, abs=1e-7 + float(weights @ x**2) / r)
        assert np.all(np.isfinite(grad))


@pytest.mark.parametrize("shift", [0, 1])
def test_level_terms_as_sums_equal_gammaln_differences(shift, monkeypatch):
    x_levels = np.array([0.0, 1.0, 2.0, 7.0, 40.0, 300.0])
    weights = np.array([5.0, 3.0, 2.0, 1.5, 1.0, 0.5])
    for r, a, b in [(0.243, 0.793, 2.426), (3.5, 0.02, 40.0), (0.01, 5.0, 0.3)]:
        sums = F.bg_level_terms(r, a, b, x_levels, weights, shift)
        xs = x_levels + shift
        d1 = gammaln(r + x_levels) - gammaln(r) + gammaln(a + b) + gammaln(b + xs) - gammaln(b)
        d1 -= gammaln(a + b + xs)
        expected = [
            weights @ d1,
            weights @ (digamma(r + x_levels) - digamma(r)),
            weights @ (digamma(a + b) - digamma(a + b + xs)),
            weights @ (digamma(a + b) + digamma(b + xs) - digamma(b) - digamma(a + b + xs)),
        ]
        # the digamma differences of dD1/db cancel to ~1e-3 of their terms: the
        # reference itself is only good to ~1e-15 absolute per unit of weight
        np.testing.assert_allclose(sums, expected, rtol=1e-12, atol=1e-15 * weights.sum())
        # frequencies beyond RISING_SUM_MAX take the gammaln differences themselves
        monkeypatch.setattr(F, "RISING_SUM_MAX", 10)
        np.testing.assert_allclose(
            F.bg_level_terms(r, a, b, x_levels, weights, shift), expected, rtol=1e-15
        )
        monkeypatch.undo()


PER_CUSTOMER = {"BG/NBD": F.bgnbd_log_likelihood, "MBG/NBD": M.mbgnbd_log_likelihood}


@pytest.mark.parametrize("model", list(MODELS))
def test_per_customer_log_likelihood_sums_to_the_total(model, cdnow_summary, monkeypatch):
    s = cdnow_summary
    cols = [s[c].to_numpy(dtype=float) for c in ("frequency", "recency", "T")]
    weights = np.linspace(1.0, 3.0, len(s))  # those of _likelihood
    # CDNOW's fit, and a point on the ridge where r ln(alpha) alone is 3e13
    for theta in [(0.243, 4.414, 0.793, 2.426), (1e12, 1.25e13, 1e-12, 1.0)]:
        total, _ = _likelihood(model, s, theta, compiled=False, monkeypatch=monkeypatch)
        per_customer = PER_CUSTOMER[model](*cols, *theta)
        assert float(weights @ per_customer) == pytest.approx(total, rel=1e-13)


LOG_C4 = {  # ln C4 per frequency level, as the two likelihoods compute it
    "BG/NBD": lambda a, b, xl: np.where(
        xl > 0, np.log(a) - np.log(b + np.maximum(xl, 1) - 1), -1e6
    ),
    "MBG/NBD": lambda a, b, xl: np.log(a) - np.log(b + xl),
}


@pytest.fixture(scope="module")
def many_levels_summary() -> pd.DataFrame:
    """40,000 simulated customers in whole days (T levels), with about a hundred frequencies."""
    T = np.random.default_rng(5).integers(1, 1_000, size=40_000).astype(float)
    return simulate_bgnbd(40_000, T, {"r": 1.5, "alpha": 20.0, "a": 0.6, "b": 3.0}, 5)


def _summaries(cdnow_summary, many_levels_summary):
    """CDNOW four times over (three blocks of the compiled loop) and the simulated log.

    Sorted by frequency (as a fit prepares its distinct rows: one level on both
    sides of the threads' cut) and in other orders (levels on both sides).
    """
    cdnow = pd.concat([cdnow_summary] * 4, ignore_index=True)
    s = many_levels_summary
    return {
        "CDNOW x4": cdnow,
        "CDNOW x4, sorted": cdnow.sort_values(["frequency", "recency", "T"]),
        "simulated": s,
        "simulated, sorted": s.sort_values(["frequency", "recency", "T"]),
        "simulated, shuffled": s.sample(frac=1.0, random_state=0),
    }


@pytest.mark.parametrize("model", list(MODELS))
def test_threads_give_the_bits_of_one_and_the_numpy_values(
    model, cdnow_summary, many_levels_summary, monkeypatch
):
    from rfmml.models import _row_sums

    prepare, _ = MODELS[model]
    summaries = _summaries(cdnow_summary, many_levels_summary)
    assert many_levels_summary["frequency"].nunique() > 80
    for name, s in summaries.items():
        cols = [s[c].to_numpy(dtype=float) for c in ("frequency", "recency", "T")]
        data = prepare(*cols, np.linspace(1.0, 3.0, len(s)))
        assert len(data.x) > 2 * 4096  # a block for each of three parts
        for r, alpha, a, b in [(0.243, 4.414, 0.793, 2.426), (1.5, 20.0, 0.6, 3.0)]:
            log_c4 = LOG_C4[model](a, b, data.x_levels)
            one = F.compiled_bg_row_sums(r, alpha, log_c4, data, 1)
            for parts in (2, 3):
                several = F.compiled_bg_row_sums(r, alpha, log_c4, data, parts)
                for one_sums, several_sums in zip(one, several, strict=True):
                    np.testing.assert_array_equal(several_sums, one_sums, err_msg=name)
            # bg_row_sums takes RFMML_THREADS parts from LIKELIHOOD_THREAD_ROWS rows a part
            monkeypatch.setenv("RFMML_THREADS", "2")
            monkeypatch.setattr(F, "LIKELIHOOD_KERNEL_MIN_ROWS", 0)
            monkeypatch.setattr(_row_sums, "LIKELIHOOD_THREAD_ROWS", 1)
            assert _row_sums.sum_parts(len(data.x)) == 2
            for one_sums, two_sums in zip(one, F.bg_row_sums(r, alpha, log_c4, data), strict=True):
                np.testing.assert_array_equal(two_sums, one_sums, err_msg=name)
            monkeypatch.setattr(F, "LIKELIHOOD_KERNEL_MIN_ROWS", 10**12)
            numpy = F.bg_row_sums(r, alpha, log_c4, data)
            monkeypatch.undo()
            for one_sums, numpy_sums in zip(one, numpy, strict=True):
                np.testing.assert_allclose(one_sums, numpy_sums, rtol=1e-12, err_msg=name)
