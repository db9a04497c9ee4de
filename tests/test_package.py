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


def test_campaign_names_resolve_and_writing_a_table_leaves_scikit_learn_out(tmp_path):
    """``rfmml features`` writes its CSV with ``rfmml.campaign.exports``, which does not import
    the segmenters (scikit-learn and SciPy's statistics: about a second of a short command)."""
    import rfmml.campaign as campaign

    for name in campaign.__all__:
        assert getattr(campaign, name) is not None
    assert campaign.streaming.__name__ == "rfmml.campaign.streaming"  # a submodule by attribute
    with pytest.raises(AttributeError, match="has no attribute 'nope'"):
        campaign.nope  # noqa: B018
    code = """
import sys
import pandas as pd
from rfmml.cli import main
folder = sys.argv[1]
pd.DataFrame({"customer_id": [1, 1, 2], "timestamp": ["2024-01-02", "2024-02-03", "2024-01-05"],
              "amount": [10.0, 12.5, 7.0]}).to_csv(folder + "/log.csv", index=False)
try:
    main(["features", folder + "/log.csv", "-o", folder + "/features.csv"])
except SystemExit as exc:
    assert exc.code == 0, exc.code
print(sorted(m for m in ("sklearn", "scipy.stats", "rfmml.segments") if m in sys.modules))
"""
    out = subprocess.run([sys.executable, "-c", code, str(tmp_path)], capture_output=True,
                         text=True, check=True)  # fmt: skip
    assert out.stdout.strip().splitlines()[-1] == "[]", out.stdout + out.stderr
    assert (tmp_path / "features.csv").read_text().count("\n") == 3  # a header, two customers


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
