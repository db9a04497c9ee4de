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


def test_logged_model_scores_transactions_as_of_the_stored_observation_end(small_run, store):
    """3: the pyfunc model takes the transactions themselves and builds the features."""
    import mlflow
    import pandas as pd

    from rfmml.tracking.pyfunc import to_plain

    mlflow.set_tracking_uri(store)
    model = mlflow.pyfunc.load_model(small_run.model_uri)
    tx = small_run.evaluation.transactions[["customer_id", "timestamp", "amount"]]
    assert small_run.pipeline.observation_end == "1998-06-30"  # an ISO date
    from_tx = model.predict(tx.reset_index(drop=True))
    want = to_plain(small_run.predictions)
    pd.testing.assert_frame_equal(from_tx, want, check_dtype=False)
    # the features frame still works, and the signature lists both kinds, every column optional
    from_features = model.predict(small_run.scoring_input.reset_index())
    pd.testing.assert_frame_equal(from_features, want, check_dtype=False)
    inputs = {spec.name: spec for spec in model.metadata.signature.inputs.inputs}
    assert {"frequency", "recency_days", "timestamp", "amount"} <= set(inputs)
    assert not any(spec.required for spec in inputs.values())
    assert "transactions" in model.metadata.metadata["rfmml_inputs"]
    # later purchases are not counted: the stored observation end holds
    late = pd.DataFrame(
        {"customer_id": [tx["customer_id"].iloc[0]], "timestamp": [pd.Timestamp("1999-01-05")],
         "amount": [10.0]}
    )  # fmt: skip
    pd.testing.assert_frame_equal(
        model.predict(pd.concat([tx, late], ignore_index=True)), want, check_dtype=False
    )
    # a transactions frame without the amounts this pipeline's spend model needs
    with pytest.raises(Exception, match=r"lack column\(s\) \['amount'\]"):
        small_run.pipeline.predict(tx.drop(columns="amount"))
