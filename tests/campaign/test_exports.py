from __future__ import annotations

import csv
import hashlib
import json

import numpy as np
import pandas as pd
import pytest

import rfmml
from rfmml.campaign import (
    hash_customer_ids,
    neutralize_cells,
    read_predictions,
    to_safe_csv,
    write_predictions,
)
from rfmml.errors import DataError

ATTACKS = ["=HYPERLINK(\"http://evil.example\",\"click\")", "-1+2", "+33 1 23", "@SUM(A1)",
           "\t=1", "\r=1", "plain", "a=b"]  # fmt: skip


def _rows(path) -> list[list[str]]:
    with open(path, newline="", encoding="utf-8") as handle:
        return list(csv.reader(handle))


def test_neutralize_cells_prefixes_formula_text_only():
    frame = pd.DataFrame(
        {
            "customer_id": ATTACKS,
            "amount": [-3.5, 1.0, -2.0, 0.0, 4.0, 5.0, -1.0, 2.0],
            "mixed": [-1, "-1", "=x", None, 2.5, "ok", np.nan, "@"],
        }
    )
    out = neutralize_cells(frame)
    assert out["customer_id"].tolist() == [
        "'=HYPERLINK(\"http://evil.example\",\"click\")", "'-1+2", "'+33 1 23", "'@SUM(A1)",
        "'\t=1", "'\r=1", "plain", "a=b",
    ]  # fmt: skip
    # Numbers stay numbers, including negative ones, in numeric and object columns.
    pd.testing.assert_series_equal(out["amount"], frame["amount"])
    assert out["mixed"].tolist()[:4] == [-1, "'-1", "'=x", None]
    assert out["mixed"].tolist()[4:6] == [2.5, "ok"] and out["mixed"].tolist()[-1] == "'@"
    assert frame["customer_id"].iloc[0].startswith("=")  # input untouched


def test_neutralize_cells_handles_categoricals_and_headers():
    frame = pd.DataFrame({"=cmd": pd.Categorical(["=a", "b", "=a"]), "n": [1, 2, 3]})
    out = neutralize_cells(frame)
    assert list(out.columns) == ["'=cmd", "n"]
    assert out["'=cmd"].tolist() == ["'=a", "b", "'=a"]


def test_to_safe_csv_round_trip(tmp_path):
    frame = pd.DataFrame({"customer_id": ATTACKS, "clv": np.linspace(-2.0, 5.0, len(ATTACKS))})
    path = to_safe_csv(frame, tmp_path / "sub" / "list.csv")
    rows = _rows(path)
    assert rows[0] == ["customer_id", "clv"]
    first_chars = {row[0][0] for row in rows[1:] if row[0][:1]}
    assert not first_chars & {"=", "+", "-", "@", "\t", "\r"}
    assert rows[2][0] == "'-1+2"
    assert float(rows[1][1]) == -2.0  # a negative number is written as a number
    back = pd.read_csv(path)
    np.testing.assert_allclose(back["clv"], frame["clv"])


def test_hashing_is_deterministic_salted_and_documented():
    ids = pd.Series([1, 2, "1", 12346], index=list("abcd"))
    hashed = hash_customer_ids(ids, salt="s3cret")
    assert hashed.name == "customer_id_sha256"
    assert list(hashed.index) == list("abcd")
    assert hashed.str.fullmatch(r"[0-9a-f]{64}").all()
    assert hashed["a"] == hashlib.sha256(b"s3cret:1").hexdigest()  # the documented formula
    assert hashed["a"] == hashed["c"]  # 1 and "1" are the same id
    assert hashed.is_unique is False and hashed.nunique() == 3
    again = hash_customer_ids(np.array([1, 2, "1", 12346], dtype=object), salt="s3cret")
    assert again.tolist() == hashed.tolist()
    other = hash_customer_ids(ids, salt="pepper")
    assert not (other == hashed).any()


def test_hashing_needs_a_salt_and_ids():
    for salt in (None, ""):
        with pytest.raises(ValueError, match="needs a non-empty salt"):
            hash_customer_ids([1, 2], salt)
    with pytest.raises(TypeError, match="salt must be text"):
        hash_customer_ids([1, 2], b"bytes")
    with pytest.raises(ValueError, match="1 of 3 customer ids are missing"):
        hash_customer_ids(pd.Series([1.0, np.nan, 3.0]), "s")


def test_write_and_read_predictions(cdnow_fitted, cdnow_table, tmp_path):
    fingerprints = {
        "bgnbd": cdnow_fitted.bgnbd.training_fingerprint_,
        "gamma_gamma": cdnow_fitted.gamma_gamma.training_fingerprint_,
        "data": "sha256:abc",
    }
    paths = write_predictions(cdnow_table, tmp_path / "run", fingerprints=fingerprints)
    assert set(paths) == {"parquet", "csv", "meta"}
    assert [p.name for p in paths.values()] == [
        "predictions.parquet", "predictions.csv", "predictions.meta.json",
    ]  # fmt: skip
    meta = json.loads(paths["meta"].read_text())
    assert meta["format"] == "rfmml-predictions"
    assert meta["n_rows"] == len(cdnow_table) == 23_570
    assert meta["columns"] == list(cdnow_table.columns)
    assert meta["index"] == ["customer_id"]
    assert meta["fingerprints"] == fingerprints
    assert meta["rfmml_version"] == rfmml.__version__
    assert meta["scoring"]["freq"] == "W" and meta["scoring"]["horizon"] == 52

    back = read_predictions(tmp_path / "run")
    pd.testing.assert_frame_equal(back, cdnow_table)
    assert back.attrs["scheme"] == "rf_grid"
    assert back["churn_risk"].cat.ordered
    plain = pd.read_parquet(paths["parquet"])
    assert list(plain.columns) == list(cdnow_table.columns) and len(plain) == 23_570
    csv_back = pd.read_csv(paths["csv"])
    assert list(csv_back.columns) == list(cdnow_table.columns)
    np.testing.assert_allclose(csv_back["clv"], cdnow_table["clv"], rtol=1e-12)

    # a few columns (in the file's order, the index key added), text as categoricals
    few = read_predictions(tmp_path / "run", ["segment", "clv", "no such column"],
                           text_as_category=True)  # fmt: skip
    assert list(few.columns) == ["customer_id", "segment", "clv"]
    assert few.index.equals(back.index) and few.attrs == back.attrs
    assert isinstance(few["segment"].dtype, pd.CategoricalDtype)
    assert few["segment"].astype(str).equals(back["segment"].astype(str))
    np.testing.assert_array_equal(few["clv"], back["clv"])
    compact = read_predictions(tmp_path / "run", text_as_category=True)
    text = [c for c in back.columns if pd.api.types.is_string_dtype(back[c].dtype)]
    assert text and all(isinstance(compact[c].dtype, pd.CategoricalDtype) for c in text)
    for column in back.columns:
        assert compact[column].astype(back[column].dtype).equals(back[column]), column


def test_write_predictions_per_group(retail_by_country, tmp_path):
    paths = write_predictions(retail_by_country, tmp_path, fingerprints={}, formats=["parquet"])
    assert set(paths) == {"parquet", "meta"}
    back = read_predictions(paths["parquet"])
    assert back.index.names == ["customer_id", "country"]
    pd.testing.assert_frame_equal(back, retail_by_country)


def test_write_predictions_errors(cdnow_table, tmp_path):
    with pytest.raises(ValueError, match=r"non-empty subset of \['parquet', 'csv'\]"):
        write_predictions(cdnow_table, tmp_path, fingerprints={}, formats=("xlsx",))
    with pytest.raises(TypeError, match="fingerprints must be a dict"):
        write_predictions(cdnow_table, tmp_path, fingerprints="sha256:abc")
    with pytest.raises(TypeError, match="write_predictions expects a DataFrame"):
        write_predictions([1], tmp_path, fingerprints={})
    with pytest.raises(DataError, match="no predictions file at"):
        read_predictions(tmp_path / "missing")
    (tmp_path / "predictions.parquet").write_bytes(b"")
    with pytest.raises(DataError, match="cannot read predictions from"):
        read_predictions(tmp_path)
    (tmp_path / "predictions.meta.json").write_text('{"format": "other"}')
    with pytest.raises(DataError, match="is not rfmml predictions metadata"):
        read_predictions(tmp_path)
