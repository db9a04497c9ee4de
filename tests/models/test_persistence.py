"""JSON save/load: identical predictions, metadata, no pickle, clear errors."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from sklearn.exceptions import NotFittedError

import rfmml
from rfmml.errors import DataError
from rfmml.models import BetaGeoNBD, GammaGamma, customer_lifetime_value, load_model


def test_round_trip_gives_identical_predictions(
    cdnow_bgnbd, cdnow_gamma_gamma, cdnow_summary, tmp_path
):
    bg = load_model(cdnow_bgnbd.save(tmp_path / "bg.json"))
    gg = load_model(cdnow_gamma_gamma.save(tmp_path / "gg.json"))
    assert isinstance(bg, BetaGeoNBD) and isinstance(gg, GammaGamma)
    pd.testing.assert_series_equal(bg.params_, cdnow_bgnbd.params_)
    pd.testing.assert_frame_equal(bg.summary_, cdnow_bgnbd.summary_, rtol=1e-15)
    s = cdnow_summary
    for method in ("probability_alive", "log_likelihood"):
        pd.testing.assert_series_equal(getattr(bg, method)(s), getattr(cdnow_bgnbd, method)(s))
    pd.testing.assert_series_equal(
        customer_lifetime_value(bg, gg, s, 52, 0.01),
        customer_lifetime_value(cdnow_bgnbd, cdnow_gamma_gamma, s, 52, 0.01),
    )
    assert bg.freq_ == "W"


def test_saved_document_carries_metadata(cdnow_bgnbd, tmp_path):
    path = cdnow_bgnbd.save(tmp_path / "nested" / "bg.json")
    doc = json.loads(path.read_text())
    assert doc["format"] == "rfmml.model" and doc["format_version"] == 2
    assert doc["model"] == "BetaGeoNBD"
    assert doc["rfmml_version"] == rfmml.__version__
    assert doc["hyper_parameters"] == cdnow_bgnbd.get_params()
    assert set(doc["params"]) == set(doc["standard_errors"]) == {"r", "alpha", "a", "b"}
    assert doc["log_likelihood"] == cdnow_bgnbd.log_likelihood_
    assert doc["training_fingerprint"].startswith("sha256:")
    assert doc["fit_date"] == cdnow_bgnbd.fit_date_
    assert doc["n_customers"] == 2357


def test_fingerprint_ignores_row_order_but_not_data(cdnow_summary):
    a = BetaGeoNBD().fit(cdnow_summary)
    b = BetaGeoNBD().fit(cdnow_summary.sample(frac=1.0, random_state=42))
    c = BetaGeoNBD().fit(cdnow_summary.iloc[1:])
    assert a.training_fingerprint_ == b.training_fingerprint_ != c.training_fingerprint_


def test_unfitted_model_cannot_be_saved(tmp_path):
    with pytest.raises(NotFittedError):
        BetaGeoNBD().save(tmp_path / "x.json")
    assert not (tmp_path / "x.json").exists()


def test_loading_the_wrong_class_or_a_foreign_file(cdnow_bgnbd, tmp_path):
    path = cdnow_bgnbd.save(tmp_path / "bg.json")
    with pytest.raises(TypeError, match="holds a BetaGeoNBD, not a GammaGamma"):
        GammaGamma.load(path)
    other = tmp_path / "other.json"
    other.write_text(json.dumps({"hello": 1}))
    with pytest.raises(DataError, match="is not an rfmml model file"):
        load_model(other)
    broken = tmp_path / "broken.json"
    broken.write_text("{not json")
    with pytest.raises(DataError, match="is not valid JSON"):
        load_model(broken)


def test_nan_standard_errors_survive_as_null(cdnow_gamma_gamma, tmp_path):
    model = load_model(cdnow_gamma_gamma.save(tmp_path / "gg.json"))
    model.summary_.loc["p", "std_error"] = np.nan
    doc = json.loads(model.save(tmp_path / "gg2.json").read_text())  # strict JSON, no NaN
    assert doc["standard_errors"]["p"] is None
    assert np.isnan(load_model(tmp_path / "gg2.json").summary_.loc["p", "std_error"])


def test_unknown_model_type_and_newer_format(cdnow_bgnbd, tmp_path):
    doc = json.loads(cdnow_bgnbd.save(tmp_path / "bg.json").read_text())
    (tmp_path / "unknown.json").write_text(json.dumps({**doc, "model": "ParetoNBD"}))
    with pytest.raises(DataError, match="unknown model type 'ParetoNBD'"):
        load_model(tmp_path / "unknown.json")
    (tmp_path / "newer.json").write_text(json.dumps({**doc, "format_version": 99}))
    with pytest.raises(DataError, match="uses rfmml model format version 99, newer than"):
        load_model(tmp_path / "newer.json")
