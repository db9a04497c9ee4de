"""The top-level package: lazy public names, nothing heavy at import."""

from __future__ import annotations

import subprocess
import sys

import pytest

import rfmml


def test_public_names_resolve():
    for name in rfmml.__all__:
        assert getattr(rfmml, name) is not None


def test_import_is_light():
    code = "import sys, rfmml; print('mlflow' in sys.modules, 'sklearn' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False"]


def test_rfmml_predict_does_not_load_mlflow(tmp_path):
    """Scoring with a saved pipeline (reading, features, scores, lists, report) leaves MLflow out.

    Its import takes about a second: the experiment pipeline and MLflow are for ``run``.
    """
    code = """
import sys
from rfmml.campaign import ScoringPipeline
from rfmml.data import load_cdnow
from rfmml.features import customer_features
from rfmml.models import BetaGeoNBD, GammaGamma
from rfmml.segments import RuleSegmenter
folder = sys.argv[1]
tx = load_cdnow().head(5_000)
tx.to_parquet(folder + "/log.parquet")
features, summary = customer_features(tx, freq="W")
ScoringPipeline(rule_segmenter=RuleSegmenter("rfm11").fit(features),
                purchase_model=BetaGeoNBD().fit(summary),
                gamma_gamma=GammaGamma().fit(summary), freq="W").save(folder + "/model")
from rfmml.cli import main
try:
    main(["predict", folder + "/log.parquet", "--model", folder + "/model", "-o",
          folder + "/out", "--no-csv"])
except SystemExit as exc:
    assert exc.code == 0, exc.code
print("mlflow" in sys.modules)
"""
    out = subprocess.run([sys.executable, "-c", code, str(tmp_path)], capture_output=True,
                         text=True, check=True)  # fmt: skip
    assert out.stdout.strip().splitlines()[-1] == "False", out.stdout + out.stderr
    assert (tmp_path / "out" / "report.html").is_file()


def test_unknown_name():
    with pytest.raises(AttributeError, match="has no attribute 'nope'"):
        rfmml.nope  # noqa: B018


def test_python_dash_m_rfmml_runs_the_command():
    """``python -m rfmml --help`` failed: the package had no __main__ module."""
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    result = subprocess.run([sys.executable, "-m", "rfmml", "--help"], capture_output=True,
                            text=True, cwd=root, timeout=120)  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("Usage: rfmml ")
