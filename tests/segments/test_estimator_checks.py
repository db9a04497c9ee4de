"""Estimator contract for RFMScorer, RuleSegmenter and KMeansSegmenter.

The three take a customer-features DataFrame with named columns (recency_days,
n_orders, total_spend) and refuse anonymous numpy arrays, so the data-driven
checks of ``parametrize_with_checks`` (random float arrays with 1-10 unnamed, often
negative, columns) do not apply. We run every scikit-learn check that needs no data,
then the same contract on real CDNOW features: clone, get_params round trip, fit
returns self, NotFittedError, refit determinism, X left untouched and not stored.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.base import clone
from sklearn.exceptions import NotFittedError
from sklearn.utils import estimator_checks as ec

from rfmml.segments import KMeansSegmenter, RFMScorer, RuleSegmenter

DATA_FREE_CHECKS = [
    ec.check_estimator_cloneable,
    ec.check_estimator_repr,
    ec.check_no_attributes_set_in_init,
    ec.check_parameters_default_constructible,
    ec.check_get_params_invariance,
    ec.check_set_params,
    ec.check_do_not_raise_errors_in_init_or_set_params,
    ec.check_mixin_order,
    ec.check_valid_tag_types,
    ec.check_estimator_tags_renamed,
]

ESTIMATORS = [
    RFMScorer(),
    RFMScorer(
        method="thresholds",
        thresholds={"R": [30, 90, 180, 365], "F": [2, 3, 5, 10], "M": [20, 50, 100, 500]},
    ),
    RuleSegmenter(scheme="rfm11", scorer=RFMScorer(n_scores=5)),
    KMeansSegmenter(n_clusters=3, random_state=0, sample_size=2000),
]


def _id(est) -> str:
    return type(est).__name__


@pytest.mark.parametrize("check", DATA_FREE_CHECKS, ids=lambda c: c.__name__)
@pytest.mark.parametrize("estimator", ESTIMATORS, ids=_id)
def test_data_free_sklearn_checks(estimator, check):
    check(type(estimator).__name__, clone(estimator))


def _output(est, X):
    if isinstance(est, RFMScorer):
        return est.transform(X)
    return est.predict(X)


@pytest.mark.parametrize("estimator", ESTIMATORS, ids=_id)
def test_contract_on_cdnow(estimator, cdnow_features):
    X = cdnow_features.iloc[::4]
    before = X.copy()
    est = clone(estimator)
    assert clone(est).get_params().keys() == est.get_params().keys()
    params = est.get_params(deep=False)
    assert type(est)(**params).get_params(deep=False).keys() == params.keys()
    with pytest.raises(NotFittedError):
        _output(est, X)
    assert est.fit(X) is est
    pd.testing.assert_frame_equal(X, before)  # fit does not modify X
    first = _output(est, X)
    assert first.index.equals(X.index)
    refit = clone(estimator).fit(X)
    pd.testing.assert_series_equal(
        pd.Series(np.asarray(_output(refit, X)).ravel()),
        pd.Series(np.asarray(first).ravel()),
    )
    # Never keep X: no fitted attribute is a frame or array with one row per customer.
    for name, value in vars(est).items():
        if name.endswith("_") and name != "labels_":
            assert not (isinstance(value, pd.DataFrame | np.ndarray) and len(value) == len(X)), name
    # Hyper-parameters are stored unmodified.
    assert est.get_params(deep=False) == params
