"""customer_lifetime_value: lifetimes parity, explicit time units, errors."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from rfmml.errors import DataError
from rfmml.models import BetaGeoNBD, customer_lifetime_value


@pytest.mark.parametrize(("horizon", "discount_rate"), [(12, 0.01), (52, 0.0), (3, 0.2)])
def test_clv_matches_lifetimes_customer_lifetime_value(
    cdnow_bgnbd,
    cdnow_gamma_gamma,
    lifetimes_bgnbd,
    lifetimes_gamma_gamma,
    cdnow_summary,
    horizon,
    discount_rate,
):
    """Mapping to lifetimes' arguments.

    lifetimes steps through ``i = k * factor`` for k = 1..time, discounts by
    ``(1 + discount_rate) ** k`` and has ``factor = 1`` for ``freq="M"``.
    So on a summary in ANY unit (CDNOW is in weeks), lifetimes'
    ``time=H, freq="M", discount_rate=d`` means "H periods of the summary,
    rate d per period", which is rfmml's ``horizon=H, discount_rate=d``.
    (lifetimes' ``freq="W"`` would step by 4.345 weeks: a hidden month.)
    """
    lifetimes_bgnbd.params_ = cdnow_bgnbd.params_.copy()
    lifetimes_gamma_gamma.params_ = cdnow_gamma_gamma.params_.copy()
    s = cdnow_summary
    ours = customer_lifetime_value(
        cdnow_bgnbd, cdnow_gamma_gamma, s, horizon=horizon, discount_rate=discount_rate, freq="W"
    )
    theirs = lifetimes_gamma_gamma.customer_lifetime_value(
        lifetimes_bgnbd,
        s["frequency"],
        s["recency"],
        s["T"],
        s["monetary_value"],
        time=horizon,
        discount_rate=discount_rate,
        freq="M",
    )
    assert ours.index.equals(s.index) and ours.name == "clv"
    np.testing.assert_allclose(ours, theirs, rtol=1e-6)
    assert ours.attrs["freq"] == "W"


def test_undiscounted_clv_is_spend_times_expected_purchases(
    cdnow_bgnbd, cdnow_gamma_gamma, cdnow_summary
):
    # with discount 0 the per-period increments telescope to E[Y(H)]
    s = cdnow_summary
    clv = customer_lifetime_value(cdnow_bgnbd, cdnow_gamma_gamma, s, horizon=39, discount_rate=0.0)
    expected = cdnow_gamma_gamma.expected_order_value(s) * cdnow_bgnbd.expected_purchases(s, 39)
    # computed as the expected purchases themselves: the same values, to the bit
    np.testing.assert_array_equal(clv.to_numpy(), np.maximum(expected.to_numpy(), 0.0))
    # and the limit of the period-by-period sum as the discount goes to 0
    summed = customer_lifetime_value(cdnow_bgnbd, cdnow_gamma_gamma, s, horizon=39,
                                     discount_rate=1e-13)  # fmt: skip
    np.testing.assert_allclose(clv, summed, rtol=1e-10)


def test_discounting_lowers_clv(cdnow_bgnbd, cdnow_gamma_gamma, cdnow_summary):
    s = cdnow_summary
    low = customer_lifetime_value(cdnow_bgnbd, cdnow_gamma_gamma, s, 52, 0.05)
    high = customer_lifetime_value(cdnow_bgnbd, cdnow_gamma_gamma, s, 52, 0.0)
    assert (low <= high).all() and (low >= 0).all() and (low < high).any()


def test_time_units_must_agree(cdnow_bgnbd, cdnow_gamma_gamma, cdnow_summary):
    # cdnow_summary carries attrs["freq"] == "W"; asking for days is a unit error
    with pytest.raises(DataError, match=r"customer_lifetime_value: time units disagree"):
        customer_lifetime_value(cdnow_bgnbd, cdnow_gamma_gamma, cdnow_summary, 12, 0.01, freq="D")
    with pytest.raises(DataError, match=r"expected one of \('D', 'W', 'M'\)"):
        customer_lifetime_value(cdnow_bgnbd, cdnow_gamma_gamma, cdnow_summary, 12, 0.01, freq="Y")


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"horizon": 0, "discount_rate": 0.01}, "horizon must be a whole number of periods >= 1"),
        ({"horizon": 2.5, "discount_rate": 0.01}, "horizon must be a whole number"),
        ({"horizon": 12, "discount_rate": -0.1}, "discount_rate must be a per-period rate >= 0"),
    ],
)
def test_bad_horizon_or_rate(cdnow_bgnbd, cdnow_gamma_gamma, cdnow_summary, kwargs, match):
    with pytest.raises(DataError, match=match):
        customer_lifetime_value(cdnow_bgnbd, cdnow_gamma_gamma, cdnow_summary, **kwargs)


def test_missing_monetary_value(cdnow_bgnbd, cdnow_gamma_gamma, cdnow_summary):
    frame = cdnow_summary.drop(columns="monetary_value")
    with pytest.raises(DataError, match=r"\['monetary_value'\] are missing"):
        customer_lifetime_value(cdnow_bgnbd, cdnow_gamma_gamma, frame, 12, 0.01)


def test_clv_on_multiindex_keeps_index(cdnow_bgnbd, cdnow_gamma_gamma, cdnow_summary):
    s = cdnow_summary.iloc[:6].copy()
    s.index = pd.MultiIndex.from_product([[1, 2, 3], ["web", "store"]])
    out = customer_lifetime_value(cdnow_bgnbd, cdnow_gamma_gamma, s, 12, 0.01)
    assert out.index.equals(s.index)


class _AnyPurchaseModel(BetaGeoNBD):
    """A purchase model CLV knows nothing about: it only answers expected_purchases."""

    kind = "AnyPurchaseModel"


def test_clv_of_any_purchase_model_uses_its_expected_purchases(
    cdnow_bgnbd, cdnow_gamma_gamma, cdnow_summary
):
    other = _AnyPurchaseModel()
    for key, value in vars(cdnow_bgnbd).items():
        if key.endswith("_"):
            setattr(other, key, value)
    s = cdnow_summary
    generic = customer_lifetime_value(other, cdnow_gamma_gamma, s, 26, 0.01)
    closed_form = customer_lifetime_value(cdnow_bgnbd, cdnow_gamma_gamma, s, 26, 0.01)
    np.testing.assert_allclose(generic, closed_form, rtol=1e-12)
