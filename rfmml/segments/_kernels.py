"""Compiled loop of the k-means silhouettes (numba), imported on first use.

:func:`rfmml.segments.kmeans.silhouette_curve` needs, for every point and
every cluster of several labelings, the sum of the point's Euclidean
distances to the cluster's points. The numpy path builds the distance matrix
in row chunks and multiplies it by one-hot matrices; this loop visits each
pair of points once, computes its distance directly (``sqrt(sum (x_i -
x_j)^2)``, without the ``|x|^2 + |y|^2 - 2 x.y`` cancellation) and adds it to
both points' sums: about six times faster on 10,000 points in three
dimensions, with no distance matrix in memory.
"""

from __future__ import annotations

import math

import numpy as np

from rfmml._jit import jit

__all__ = ["cluster_distance_sums"]


@jit
def cluster_distance_sums(X, labels, offsets, width):  # pragma: no cover - compiled
    """Per-cluster sums of distances of every point, for several labelings at once.

    ``sums[i, offsets[m] + c]`` is the sum of the distances from point ``i``
    to the points of cluster ``c`` of labeling ``m`` (``labels[m]``); the
    array has ``width`` columns.
    """
    n, d = X.shape
    n_labelings = labels.shape[0]
    sums = np.zeros((n, width))
    for i in range(n):
        for j in range(i + 1, n):
            s = 0.0
            for f in range(d):
                diff = X[i, f] - X[j, f]
                s += diff * diff
            dist = math.sqrt(s)
            for m in range(n_labelings):
                sums[i, offsets[m] + labels[m, j]] += dist
                sums[j, offsets[m] + labels[m, i]] += dist
    return sums
