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
"""

from __future__ import annotations

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
