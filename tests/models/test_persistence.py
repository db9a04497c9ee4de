"""JSON save/load: identical predictions, metadata, no pickle, clear errors."""

from __future__ import annotations

import json
from pathlib import Path

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
    (tmp_path / "unknown.json").write_text(json.dumps({**doc, "model": "NoSuchModel"}))
    with pytest.raises(DataError, match="unknown model type 'NoSuchModel'"):
        load_model(tmp_path / "unknown.json")
    (tmp_path / "newer.json").write_text(json.dumps({**doc, "format_version": 99}))
    with pytest.raises(DataError, match="uses rfmml model format version 99, newer than"):
        load_model(tmp_path / "newer.json")


@pytest.mark.parametrize("name", ["bgnbd", "gamma_gamma"])
def test_documents_of_format_version_1_still_load(name, request, cdnow_summary):
    """Files written by rfmml 0.1 (``"format": "rfmml-model"``, version 1) load and predict."""
    path = Path(__file__).parent / "data" / f"{name}_format1.json"
    old = json.loads(path.read_text())
    assert old["format"] == "rfmml-model" and old["format_version"] == 1
    model = load_model(path)
    fitted = request.getfixturevalue(f"cdnow_{name}")
    assert type(model) is type(fitted)
    assert model.get_fitted_params() == old["params"]  # exactly the saved numbers
    # the same optimum as today's fit (Gamma-Gamma's p and v lie on a flat ridge)
    np.testing.assert_allclose(model.params_, fitted.params_, rtol=1e-6)
    pd.testing.assert_frame_equal(model.summary_, fitted.summary_, rtol=1e-6)
    assert model.freq_ == "W" and model.training_fingerprint_ == fitted.training_fingerprint_
    if name == "gamma_gamma":
        assert model.correlation_ == old["correlation"] == pytest.approx(fitted.correlation_)
        s = cdnow_summary
        pd.testing.assert_series_equal(
            model.expected_order_value(s), fitted.expected_order_value(s), rtol=1e-6
        )
    else:
        pd.testing.assert_series_equal(
            model.probability_alive(cdnow_summary),
            fitted.probability_alive(cdnow_summary),
            rtol=1e-6,
        )
    # saving again writes the current format
    doc = json.loads(model.save(Path(request.getfixturevalue("tmp_path")) / "new.json").read_text())
    assert doc["format"] == "rfmml.model" and doc["format_version"] == 2


def test_infinite_values_use_the_codecs_float_convention(cdnow_gamma_gamma, tmp_path):
    model = load_model(cdnow_gamma_gamma.save(tmp_path / "gg.json"))
    model.log_likelihood_ = -np.inf
    doc = json.loads(model.save(tmp_path / "inf.json").read_text())
    assert doc["log_likelihood"] == "-inf"
    assert load_model(tmp_path / "inf.json").log_likelihood_ == -np.inf
