"""The pyfunc wrapper names the class that loads a model; tracking imports no model code."""

from __future__ import annotations

import pytest

from rfmml.tracking.models import requirements
from rfmml.tracking.pyfunc import load_class


def test_loader_is_named_not_imported():
    from rfmml.campaign import ScoringPipeline

    assert load_class("rfmml.campaign.pipeline_model:ScoringPipeline") is ScoringPipeline
    with pytest.raises(ValueError, match=r"loader must be 'rfmml.<module>:<Class>', got 'os:sys"):
        load_class("os:system")
    with pytest.raises(ValueError, match="loader must be"):
        load_class("rfmml.campaign.pipeline_model")


def test_requirements_pin_rfmml():
    from rfmml import __version__

    assert requirements()[0] == f"rfmml=={__version__}"
    assert "mlflow" in requirements()
