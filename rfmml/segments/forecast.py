"""Segments of predicted R, F, M values: probabilities and the predicted migration matrix.

A forecast of a customer's recency, order count and spend at a future date is
given as weighted scenarios (each a features frame and, per customer, its
probability); a fitted segmenter labels every scenario, and the probabilities
of the scenarios that land in the same segment add up. The models that produce
the scenarios live above this package (:mod:`rfmml.evaluation.migration`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
from sklearn.utils.validation import check_is_fitted

from rfmml.errors import DataError

__all__ = ["predicted_transition_matrix", "segment_probabilities"]


def _names(segmenter: Any, labels: Sequence[pd.Series]) -> list[str]:
    scheme = getattr(segmenter, "scheme_", None)
    if scheme is not None:
        return [str(name) for name in scheme.segments.index]
    return sorted({str(v) for lab in labels for v in lab.unique()})


def segment_probabilities(
    segmenter: Any, scenarios: Sequence[tuple[pd.DataFrame, np.ndarray]]
) -> pd.DataFrame:
    r"""Probability of each segment from weighted scenarios of future features.

    .. math:: P(\text{segment } s \mid i) = \sum_j w_{ij}\,
              \mathbb 1[\text{segmenter}(X^{(j)}_i) = s]

    Parameters
    ----------
    segmenter : fitted RuleSegmenter or KMeansSegmenter
        Labels each scenario with its ``predict`` (fitted once, so a segment
        means the same thresholds in every scenario).
    scenarios : sequence of (DataFrame, array)
        Features frames with the same index and, per customer, the scenario's
        probability :math:`w_{ij}`; for each customer the weights sum to 1.

    Returns
    -------
    pandas.DataFrame
        One row per customer, one column per segment (the scheme's order), the
        probabilities (rows sum to 1).

    Raises
    ------
    DataError
        No scenario, misaligned frames, or weights that do not sum to 1.
    """
    check_is_fitted(segmenter)
    if not scenarios:
        raise DataError("segment_probabilities needs at least one scenario")
    index = scenarios[0][0].index
    labels, weights = [], []
    for frame, weight in scenarios:
        if not frame.index.equals(index):
            raise DataError("every scenario's features must share the same index")
        w = np.asarray(weight, dtype=float)
        if w.shape != (len(index),):
            raise DataError(f"scenario weights must have one value per customer ({len(index)})")
        labels.append(segmenter.predict(frame).astype(str))
        weights.append(w)
    total = np.sum(weights, axis=0)
    if not np.allclose(total, 1.0, atol=1e-8):
        raise DataError(
            f"scenario weights must sum to 1 per customer, got sums in "
            f"[{total.min():.6g}, {total.max():.6g}]"
        )
    names = _names(segmenter, labels)
    code = {name: j for j, name in enumerate(names)}
    out = np.zeros((len(index), len(names)))
    rows = np.arange(len(index))
    for lab, w in zip(labels, weights, strict=True):
        cols = lab.map(code).to_numpy()
        if pd.isna(cols).any():
            raise DataError(f"segmenter returned a segment outside {names}")
        np.add.at(out, (rows, cols.astype(np.int64)), w)
    return pd.DataFrame(out, index=index, columns=pd.Index(names, name="segment"))


def predicted_transition_matrix(current: pd.Series, probabilities: pd.DataFrame) -> pd.DataFrame:
    r"""Predicted shares of each origin segment going to each segment.

    .. math:: \hat P_{sc} = \frac{1}{|S_s|} \sum_{i \in S_s} P(c \mid i)

    with :math:`S_s` the customers in segment :math:`s` now.

    Parameters
    ----------
    current : pandas.Series
        Segment of each customer now, aligned to ``probabilities``.
    probabilities : pandas.DataFrame
        :func:`segment_probabilities` output.

    Returns
    -------
    pandas.DataFrame
        Rows ``from_segment`` (those with customers), columns ``to_segment``;
        rows sum to 1.
    """
    if not current.index.equals(probabilities.index):
        raise DataError("current segments and probabilities must share the same index")
    matrix = probabilities.groupby(current.astype(str).to_numpy()).mean()
    order = [c for c in probabilities.columns if c in matrix.index]
    matrix = matrix.reindex(order + [r for r in matrix.index if r not in order])
    matrix.index.name = "from_segment"
    matrix.columns.name = "to_segment"
    return matrix
