"""The saved-document codec, and documents written by rfmml 0.1 that must still load."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from rfmml._documents import (
    check_document,
    decode_float,
    encode,
    envelope,
    read_document,
    rfmml_version,
    write_document,
)
from rfmml.campaign import ScoringPipeline
from rfmml.errors import DataError
from rfmml.models import BetaGeoNBD, GammaGamma
from rfmml.segments import KMeansSegmenter, RuleSegmenter
from rfmml.segments.persistence import load_segmenter, save_segmenter

OLD = Path(__file__).parent / "models" / "data"


def test_one_float_convention_round_trips():
    values = {"a": 0.1, "b": float("nan"), "c": float("inf"), "d": -float("inf"), "e": 3}
    encoded = encode({**values, "arr": np.array([1.5, np.nan]), "n": np.float64(2.5)})
    assert encoded == {"a": 0.1, "b": None, "c": "inf", "d": "-inf", "e": 3,
                       "arr": [1.5, None], "n": 2.5}  # fmt: skip
    text = json.dumps(encoded, allow_nan=False)
    back = {k: decode_float(v) for k, v in json.loads(text).items() if k != "arr"}
    assert back["a"] == 0.1 and math.isnan(back["b"]) and back["c"] == math.inf
    assert back["d"] == -math.inf and back["n"] == 2.5
    x = 0.1 + 0.2  # repr precision: bit-identical after the round trip
    assert decode_float(json.loads(json.dumps(encode(x)))) == x
    with pytest.raises(DataError, match="expected a number, null, 'inf' or '-inf'"):
        decode_float("many")


def test_envelope_and_version_checks(tmp_path):
    doc = envelope("rfmml.test", 3, {"x": 1.0})
    assert doc == {"format": "rfmml.test", "format_version": 3,
                   "rfmml_version": rfmml_version(), "x": 1.0}  # fmt: skip
    with pytest.raises(ValueError, match="envelope keys"):
        envelope("rfmml.test", 3, {"format": "other"})
    path = write_document(tmp_path / "a" / "doc.json", "rfmml.test", 3, {"x": float("nan")})
    version, read = read_document(path, "rfmml.test", 3, what="rfmml test", hint="")
    assert version == 3 and read["x"] is None
    with pytest.raises(DataError, match=r"uses rfmml test format version 3, newer than this"):
        read_document(path, "rfmml.test", 2, what="rfmml test", hint="")
    with pytest.raises(DataError, match=r"does not exist or is not a file; expected an rfmml"):
        read_document(tmp_path / "none.json", "rfmml.test", 3, what="rfmml test", hint="")
    with pytest.raises(DataError, match=r'is not an rfmml other file \(missing "format"'):
        read_document(path, "rfmml.other", 3, what="rfmml other", hint="")
    legacy = {"format": "old/1", "y": 2}
    version, read = check_document(
        legacy, "rfmml.test", 3, source="x", what="t", hint="",
        legacy=lambda d: {**d, "format": "rfmml.test", "format_version": 1},
    )  # fmt: skip
    assert version == 1 and read["y"] == 2


def test_a_scoring_pipeline_saved_by_rfmml_0_1_loads_and_predicts_as_before(tmp_path):
    folder = OLD / "pipeline_format1"
    assert json.loads((folder / "pipeline.json").read_text())["format"] == (
        "rfmml.scoring_pipeline/1"
    )
    pipeline = ScoringPipeline.load(folder)
    assert isinstance(pipeline.purchase_model, BetaGeoNBD)
    assert pipeline.bgnbd is pipeline.purchase_model
    assert isinstance(pipeline.gamma_gamma, GammaGamma)
    assert isinstance(pipeline.rule_segmenter, RuleSegmenter)
    assert isinstance(pipeline.kmeans_segmenter, KMeansSegmenter)
    assert pipeline.churn_basis == "alive"  # what version 1 banded
    frame = pd.read_csv(OLD / "pipeline_format1_input.csv", index_col="customer_id")
    before = pd.read_csv(OLD / "pipeline_format1_predictions.csv", index_col=0)
    now = pipeline.predict(frame)
    before.columns = list(now.columns.drop("probability_no_purchase"))  # customer_id twice
    assert set(before.columns) < set(now.columns)
    assert set(now.columns) - set(before.columns) == {"probability_no_purchase"}
    for col in before.columns:
        if pd.api.types.is_numeric_dtype(before[col]):
            np.testing.assert_allclose(now[col].to_numpy(float), before[col], rtol=1e-12)
        else:
            assert (now[col].astype(str).to_numpy() == before[col].astype(str).to_numpy()).all()
    # saving writes the current formats, and they load back to the same predictions
    again = ScoringPipeline.load(pipeline.save(tmp_path / "again"))
    settings = json.loads((tmp_path / "again" / "pipeline.json").read_text())
    assert settings["format"] == "rfmml.scoring_pipeline" and settings["format_version"] == 2
    assert settings["parts"]["purchase_model"] == "purchase_model.json"
    pd.testing.assert_frame_equal(again.predict(frame), now)


def test_segmenters_saved_by_rfmml_0_1_load(tmp_path):
    frame = pd.read_csv(OLD / "pipeline_format1_input.csv", index_col="customer_id")
    for name in ("rule_segmenter", "kmeans_segmenter"):
        path = OLD / "pipeline_format1" / f"{name}.json"
        assert json.loads(path.read_text())["format"] == "rfmml.segmenter/1"
        segmenter = load_segmenter(path)
        resaved = save_segmenter(segmenter, tmp_path / f"{name}.json")
        doc = json.loads(resaved.read_text())
        assert doc["format"] == "rfmml.segmenter" and doc["format_version"] == 2
        again = load_segmenter(resaved)
        if name == "rule_segmenter":
            pd.testing.assert_frame_equal(again.transform(frame), segmenter.transform(frame))
        else:
            pd.testing.assert_series_equal(again.predict(frame), segmenter.predict(frame))
            old_curve = json.loads(path.read_text())["silhouette_curve"]
            assert doc["silhouette_curve"] == old_curve  # NaN as null in both


def test_a_folder_without_pipeline_json_is_refused_in_one_line(tmp_path):
    with pytest.raises(DataError, match="holds no pipeline.json"):
        ScoringPipeline.load(tmp_path)


def test_purchase_model_given_twice_is_refused(tmp_path):
    folder = OLD / "pipeline_format1"
    a = ScoringPipeline.load(folder).purchase_model
    b = ScoringPipeline.load(folder).purchase_model
    with pytest.raises(ValueError, match="pass the purchase model once"):
        ScoringPipeline(bgnbd=a, purchase_model=b)


def _join_freeing_threads() -> None:
    import threading

    for thread in threading.enumerate():
        if thread.name == "rfmml-free-replaced":
            thread.join()


@pytest.mark.parametrize("size", [0, 10, 4096])
def test_a_large_file_replaced_is_freed_after_the_rename(tmp_path, monkeypatch, size):
    """From FREE_IN_THREAD_BYTES the old file is freed in a thread: nothing is left over."""
    from rfmml import _documents

    monkeypatch.setattr(_documents, "FREE_IN_THREAD_BYTES", 100)
    target = tmp_path / "predictions.parquet"
    target.write_bytes(b"o" * size)
    with open(target, "rb") as reader:  # a reader of the old file keeps reading it
        with _documents.replacing(target) as temporary:
            temporary.write_bytes(b"new")
        assert target.read_bytes() == b"new"
        assert reader.read() == b"o" * size
    _join_freeing_threads()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["predictions.parquet"]

    with pytest.raises(RuntimeError), _documents.replacing(target) as temporary:
        temporary.write_bytes(b"half")
        raise RuntimeError("the writer failed")
    _join_freeing_threads()
    assert target.read_bytes() == b"new"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["predictions.parquet"]
