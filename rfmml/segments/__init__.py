"""Customer segments: RFM scores, rule schemes, k-means clusters, profiles and transitions.

- :class:`RFMScorer` scores recency, frequency and monetary value 1..n (quantiles
  learned in ``fit`` or business thresholds); :func:`linear_score` combines scores
  and features with user weights.
- :func:`load_scheme` reads a rule scheme (TOML data: ``rf_grid``, ``rfm11`` or a
  user file) into a :class:`Scheme`; :class:`RuleSegmenter` scores and labels.
- :class:`KMeansSegmenter` clusters log-scaled RFM features and names each cluster
  after the rule segment of its centroid.
- :func:`segment_profile` summarises segments; :func:`segment_transitions` follows
  customers between segments across snapshot dates.

With a ``(customer_id, group)`` MultiIndex on the features, scores and profiles are
computed within each group.
"""

from __future__ import annotations

from rfmml.segments.kmeans import KMeansSegmenter, silhouette_curve
from rfmml.segments.profiles import segment_profile, top_revenue_share
from rfmml.segments.rules import RuleSegmenter
from rfmml.segments.schemes import Rule, Scheme, builtin_schemes, load_scheme
from rfmml.segments.scoring import RFMScorer, linear_score
from rfmml.segments.transitions import NEW, SegmentTransitions, segment_transitions

__all__ = [
    "NEW",
    "KMeansSegmenter",
    "RFMScorer",
    "Rule",
    "RuleSegmenter",
    "Scheme",
    "SegmentTransitions",
    "builtin_schemes",
    "linear_score",
    "load_scheme",
    "segment_profile",
    "segment_transitions",
    "silhouette_curve",
    "top_revenue_share",
]
