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


def test_scoring_with_a_saved_pipeline_does_not_load_mlflow():
    """rfmml predict's modules (reading, features, scoring, lists, report) leave MLflow out."""
    code = (
        "import sys, rfmml.cli, rfmml.campaign, rfmml.campaign.streaming, rfmml.report, "
        "rfmml.features.combined, rfmml.data.fingerprint; print('mlflow' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


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
