"""The model-choice helpers shared by the pandas and the Spark run."""

from __future__ import annotations

import pytest

from rfmml.evaluation.model_choice import baseline_beats_message


@pytest.mark.parametrize(
    ("selection", "model", "baseline", "said"),
    [
        ("purchases_mae", 0.95, 0.91, True),  # lower is better: the baseline wins
        ("purchases_mae", 0.91, 0.95, False),
        ("purchases_mae", 0.91, 0.91, False),  # a tie is not a defeat
        ("buy_again_auc", 0.70, 0.72, True),  # higher is better
        ("buy_again_auc", 0.72, 0.70, False),
        ("aic", 100.0, float("nan"), False),  # the baseline has no AIC
    ],
)
def test_baseline_beats_message_follows_the_metric_direction(selection, model, baseline, said):
    line = baseline_beats_message({selection: model}, {selection: baseline}, selection, "BG/NBD")
    assert (line is not None) == said
    if said:
        assert line.startswith(
            f"the naive baseline (calibration rate carried forward) beats the best purchase "
            f"model on {selection}: {baseline:.4g} against {model:.4g} for BG/NBD"
        )
