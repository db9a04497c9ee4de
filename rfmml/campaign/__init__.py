"""Campaign planning: batch predictions, playbook actions, customer lists and targeting.

- :func:`score_customers` builds the predictions table: one row per customer (and
  group) with R/F/M values and scores, rule segment, k-means cluster, probability
  alive and churn-risk band, expected purchases and spend, CLV, and the action of
  the segment from a :class:`Playbook` (TOML a marketer can edit;
  :func:`load_playbook`).
- :func:`write_predictions` / :func:`read_predictions`: Parquet and spreadsheet-safe
  CSV with a metadata file holding model and data fingerprints.
- :func:`segment_lists` / :func:`export_segment_lists`: one list per segment for
  email and ads tools; :func:`segment_changes` / :func:`export_segment_changes`:
  who entered or left each segment since the previous run.
- :func:`to_safe_csv` / :func:`neutralize_cells` neutralise CSV injection;
  :func:`hash_customer_ids` hashes ids with a secret salt for sharing.
- :class:`ScoringPipeline` bundles fitted segmenters and models with the scoring
  settings, saves them as JSON and scores a :func:`scoring_frame` (the MLflow
  pyfunc model wraps it).
- :func:`select_targets`: the customers worth contacting within a budget, with the
  expected revenue they cover per segment.

Nothing here fits a model: estimators come in fitted.

The names are imported on first use: writing a table (:mod:`rfmml.campaign.exports`)
does not import the segmenters and scikit-learn.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from rfmml._lazy import load_attribute

if TYPE_CHECKING:
    from rfmml.campaign.exports import (
        FORMULA_TRIGGERS,
        HASH_COLUMN,
        hash_customer_ids,
        neutralize_cells,
        read_predictions,
        to_safe_csv,
        write_predictions,
    )
    from rfmml.campaign.lists import (
        CHANGE_KINDS,
        LIST_COLUMNS,
        export_segment_changes,
        export_segment_lists,
        segment_changes,
        segment_lists,
        slugify,
    )
    from rfmml.campaign.pipeline_model import BTYD_COLUMNS, ScoringPipeline, scoring_frame
    from rfmml.campaign.playbook import Playbook, PlaybookEntry, load_playbook
    from rfmml.campaign.scoring import CHURN_LABELS, churn_risk_band, score_customers
    from rfmml.campaign.targeting import TargetingResult, select_targets

_LAZY = {
    "FORMULA_TRIGGERS": "rfmml.campaign.exports",
    "HASH_COLUMN": "rfmml.campaign.exports",
    "hash_customer_ids": "rfmml.campaign.exports",
    "neutralize_cells": "rfmml.campaign.exports",
    "read_predictions": "rfmml.campaign.exports",
    "to_safe_csv": "rfmml.campaign.exports",
    "write_predictions": "rfmml.campaign.exports",
    "CHANGE_KINDS": "rfmml.campaign.lists",
    "LIST_COLUMNS": "rfmml.campaign.lists",
    "export_segment_changes": "rfmml.campaign.lists",
    "export_segment_lists": "rfmml.campaign.lists",
    "segment_changes": "rfmml.campaign.lists",
    "segment_lists": "rfmml.campaign.lists",
    "slugify": "rfmml.campaign.lists",
    "BTYD_COLUMNS": "rfmml.campaign.pipeline_model",
    "ScoringPipeline": "rfmml.campaign.pipeline_model",
    "scoring_frame": "rfmml.campaign.pipeline_model",
    "Playbook": "rfmml.campaign.playbook",
    "PlaybookEntry": "rfmml.campaign.playbook",
    "load_playbook": "rfmml.campaign.playbook",
    "CHURN_LABELS": "rfmml.campaign.scoring",
    "churn_risk_band": "rfmml.campaign.scoring",
    "score_customers": "rfmml.campaign.scoring",
    "TargetingResult": "rfmml.campaign.targeting",
    "select_targets": "rfmml.campaign.targeting",
}

__all__ = [
    "BTYD_COLUMNS",
    "CHANGE_KINDS",
    "CHURN_LABELS",
    "FORMULA_TRIGGERS",
    "HASH_COLUMN",
    "LIST_COLUMNS",
    "Playbook",
    "PlaybookEntry",
    "ScoringPipeline",
    "TargetingResult",
    "churn_risk_band",
    "export_segment_changes",
    "export_segment_lists",
    "hash_customer_ids",
    "load_playbook",
    "neutralize_cells",
    "read_predictions",
    "score_customers",
    "scoring_frame",
    "segment_changes",
    "segment_lists",
    "select_targets",
    "slugify",
    "to_safe_csv",
    "write_predictions",
]


def __getattr__(name: str) -> Any:
    """A public name (or a submodule) imported on first use."""
    return load_attribute(__name__, _LAZY, globals(), name, submodules=True)


def __dir__() -> list[str]:
    return sorted(__all__)
