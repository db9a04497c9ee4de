"""Learned segments: k-means on log-scaled RFM features, named after rule segments."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, ClusterMixin, clone
from sklearn.cluster import KMeans
from sklearn.metrics import adjusted_rand_score
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import FunctionTransformer, StandardScaler
from sklearn.utils import check_random_state
from sklearn.utils.validation import check_is_fitted

from rfmml._compiled import compiled_module
from rfmml.errors import ConfigError, DataError
from rfmml.features._spark import is_spark
from rfmml.segments.rules import RuleSegmenter
from rfmml.segments.schemes import Scheme
from rfmml.segments.scoring import RFMScorer, _check_frame

__all__ = ["KMeansSegmenter", "silhouette_curve"]

_SEED_MAX = 2**31 - 1


def _log1p_columns(X: np.ndarray, mask: Sequence[bool]) -> np.ndarray:
    """``log1p`` of the masked columns, the others unchanged."""
    out = np.array(X, dtype=float, copy=True)
    out[:, mask] = np.log1p(out[:, mask])
    return out


def _expm1_columns(X: np.ndarray, mask: Sequence[bool]) -> np.ndarray:
    """Inverse of :func:`_log1p_columns`."""
    out = np.array(X, dtype=float, copy=True)
    out[:, mask] = np.expm1(out[:, mask])
    return out


#: From this many points on, :func:`silhouette_curve` sums distances in a compiled
#: loop (importing numba and loading the loop costs more than it saves on fewer).
#: Read at call time.
SILHOUETTE_KERNEL_MIN_ROWS = 2_000


def silhouette_curve(
    X: np.ndarray, labelings: dict[int, np.ndarray], *, chunk_size: int = 1000
) -> pd.Series:
    """Mean silhouette coefficient of several labelings of the same points.

    Euclidean distances are computed once and shared by all labelings, so
    scoring nine values of k costs little more than scoring one. From
    :data:`SILHOUETTE_KERNEL_MIN_ROWS` points on, a compiled loop (numba,
    :func:`rfmml.segments._kernels.cluster_distance_sums`) visits each pair
    once and adds its distance to both points' per-cluster sums; below that,
    or without numba, the distance matrix is built in row chunks and
    multiplied by each labeling's one-hot matrix. Values equal
    :func:`sklearn.metrics.silhouette_score` to rounding; points alone in
    their cluster score 0, as there.

    Parameters
    ----------
    X : ndarray of shape (n_samples, n_features)
        Points (already transformed and scaled).
    labelings : dict of int to ndarray of shape (n_samples,)
        Key (e.g. k) to integer cluster labels ``0..k-1``.
    chunk_size : int, default=1000
        Rows of the distance matrix held in memory at a time (numpy path).

    Returns
    -------
    pandas.Series
        Mean silhouette per key (``NaN`` when a labeling has fewer than 2 or
        ``n_samples`` or more clusters), index named ``"k"``.
    """
    X = np.asarray(X, dtype=float)
    n = len(X)
    keys = list(labelings)
    onehots, offsets, valid = [], [0], []
    for key in keys:
        labels = np.asarray(labelings[key])
        k = int(labels.max()) + 1
        onehot = np.zeros((n, k))
        onehot[np.arange(n), labels] = 1.0
        onehots.append(onehot)
        offsets.append(offsets[-1] + k)
        valid.append(2 <= len(np.unique(labels)) <= n - 1)
    kernels = _kernels() if n >= SILHOUETTE_KERNEL_MIN_ROWS else None
    if kernels is not None:
        stacked = np.array([np.asarray(labelings[key], dtype=np.int64) for key in keys])
        sums = kernels.cluster_distance_sums(
            np.ascontiguousarray(X), stacked, np.asarray(offsets[:-1], dtype=np.int64), offsets[-1]
        )
    else:
        sums = _distance_sums(X, np.hstack(onehots), chunk_size)
    scores = []
    for i, key in enumerate(keys):
        if not valid[i]:
            scores.append(np.nan)
            continue
        block = sums[:, offsets[i] : offsets[i + 1]]
        labels = np.asarray(labelings[key])
        sizes = onehots[i].sum(axis=0)
        own = block[np.arange(n), labels]
        with np.errstate(divide="ignore", invalid="ignore"):
            a = own / (sizes[labels] - 1)
            means = block / sizes
            means[np.arange(n), labels] = np.inf
            b = means.min(axis=1)
            s = (b - a) / np.maximum(a, b)
        s[sizes[labels] <= 1] = 0.0
        scores.append(float(np.mean(np.nan_to_num(s))))
    return pd.Series(scores, index=pd.Index(keys, name="k"), name="silhouette")


def _distance_sums(X: np.ndarray, onehot: np.ndarray, chunk_size: int) -> np.ndarray:
    """Per-cluster distance sums of every point: distance-matrix chunks times ``onehot``."""
    n = len(X)
    sums = np.empty((n, onehot.shape[1]))
    sq = np.einsum("ij,ij->i", X, X)
    for start in range(0, n, chunk_size):
        stop = min(start + chunk_size, n)
        d2 = sq[start:stop, None] + sq[None, :] - 2.0 * (X[start:stop] @ X.T)
        np.maximum(d2, 0.0, out=d2)
        d2[np.arange(stop - start), np.arange(start, stop)] = 0.0
        sums[start:stop] = np.sqrt(d2) @ onehot
    return sums


def _kernels() -> Any:
    """:mod:`rfmml.segments._kernels`, imported on first use; None without numba."""
    return compiled_module("rfmml.segments._kernels")


class KMeansSegmenter(ClusterMixin, BaseEstimator):
    """K-means segments on RFM features, ordered by value and named after rule segments.

    The model is a scikit-learn :class:`~sklearn.pipeline.Pipeline`: ``log1p`` of
    the skewed features, :class:`~sklearn.preprocessing.StandardScaler`, then
    :class:`~sklearn.cluster.KMeans` (k-means++, ``n_init`` restarts).

    Parameters
    ----------
    n_clusters : int or "auto", default=4
        Number of clusters, or ``"auto"`` to choose it in ``k_range`` by the mean
        silhouette. The search fits every candidate k on one seeded sample of
        ``sample_size`` customers and scores it on that sample (distances computed
        once for all k); the chosen k is then refitted on all customers.
    k_range : tuple of (int, int), default=(2, 10)
        Inclusive range of k searched by ``"auto"``.
    features : sequence of str, default=("recency_days", "n_orders", "total_spend")
        Feature columns clustered.
    log_features : sequence of str, default=("n_orders", "total_spend")
        Features passed through ``log1p`` first (they must be >= 0).
    value_col : str, default="total_spend"
        Column whose cluster mean orders the clusters: cluster 0 has the highest
        mean, so reruns and refits agree on the ids.
    scheme : str, pathlib.Path or Scheme, default="rfm11"
        Rule scheme used to name clusters and to measure agreement.
    scorer : RFMScorer, optional
        Scorer for the naming (default ``RFMScorer()``); its columns must be in ``X``.
    sample_size : int, default=10_000
        Customers sampled for the silhouette (and the ``"auto"`` search).
    n_init : int, default=3
        k-means++ restarts per fit (fixed, so results do not depend on a heuristic).
    random_state : int, RandomState or None
        Seed of the sample and of k-means; an int makes fits reproducible.

    Attributes
    ----------
    pipeline_ : sklearn.pipeline.Pipeline
        Fitted ``log -> scale -> kmeans`` pipeline; its cluster ids are already
        ordered by value, so ``pipeline_.predict`` agrees with :meth:`predict_cluster`.
    n_clusters_ : int
        Chosen number of clusters.
    silhouette_curve_ : pandas.Series
        Mean silhouette per k searched (one entry when ``n_clusters`` is an int).
    labels_ : ndarray of shape (n_customers,)
        Cluster id of each training customer (0 = most valuable). A segmenter
        loaded from JSON does not keep its training customers; there it is
        ``arange(n_clusters_)``.
    cluster_centers_ : pandas.DataFrame
        Centroids back in the features' original units (``expm1`` of the log
        features), one row per cluster.
    cluster_names_ : list of str
        Name of each cluster: the rule segment its centroid falls in when scored
        with the fitted scorer (other scorer columns at the cluster median); a
        name shared by clusters marks each with its value rank among them, e.g.
        ``"Champions (higher value)"`` and ``"Champions (lower value)"``.
    rule_segmenter_ : RuleSegmenter
        The rule segmenter fitted on the training customers, used for naming.
    rule_agreement_ : pandas.DataFrame
        Contingency table of training customers: clusters (rows, by name) by rule
        segments (columns).
    adjusted_rand_score_ : float
        Adjusted Rand index between clusters and rule segments (1 = identical
        partitions, about 0 = unrelated).

    Notes
    -----
    With a ``(customer_id, group)`` MultiIndex the customers of all groups are
    clustered together, so cluster 0 means the same thing in every group; the
    naming scorer is then fitted on the pooled customers. Profile clusters per
    group with :func:`~rfmml.segments.segment_profile`.
    """

    def __init__(
        self,
        n_clusters: int | str = 4,
        k_range: tuple[int, int] = (2, 10),
        features: Sequence[str] = ("recency_days", "n_orders", "total_spend"),
        log_features: Sequence[str] = ("n_orders", "total_spend"),
        value_col: str = "total_spend",
        scheme: str | Scheme = "rfm11",
        scorer: RFMScorer | None = None,
        sample_size: int = 10_000,
        n_init: int = 3,
        random_state: int | np.random.RandomState | None = None,
    ) -> None:
        self.n_clusters = n_clusters
        self.k_range = k_range
        self.features = features
        self.log_features = log_features
        self.value_col = value_col
        self.scheme = scheme
        self.scorer = scorer
        self.sample_size = sample_size
        self.n_init = n_init
        self.random_state = random_state

    def _check_params(self) -> None:
        if self.n_clusters != "auto" and (
            isinstance(self.n_clusters, bool)
            or not isinstance(self.n_clusters, int | np.integer)
            or self.n_clusters < 2
        ):
            raise ConfigError(
                f"n_clusters must be an integer >= 2 or 'auto', got {self.n_clusters!r}."
            )
        lo, hi = self.k_range
        if not (
            isinstance(lo, int | np.integer) and isinstance(hi, int | np.integer) and 2 <= lo <= hi
        ):
            raise ConfigError(
                f"k_range must be (low, high) integers with 2 <= low <= high, got {self.k_range!r}."
            )
        unknown = [c for c in self.log_features if c not in self.features]
        if unknown:
            raise ConfigError(f"log_features {unknown} are not in features {list(self.features)}.")
        if not isinstance(self.sample_size, int | np.integer) or self.sample_size < 10:
            raise ConfigError(f"sample_size must be an integer >= 10, got {self.sample_size!r}.")
        if not isinstance(self.n_init, int | np.integer) or self.n_init < 1:
            raise ConfigError(f"n_init must be an integer >= 1, got {self.n_init!r}.")

    def _matrix(self, X: pd.DataFrame, where: str) -> np.ndarray:
        X = _check_frame(X, list(self.features), where=where)
        return X[list(self.features)].to_numpy(dtype=float)

    def _make_pipeline(self, k: int, seed: int) -> Pipeline:
        mask = [c in self.log_features for c in self.features]
        return Pipeline(
            [
                (
                    "log",
                    FunctionTransformer(
                        _log1p_columns,
                        inverse_func=_expm1_columns,
                        kw_args={"mask": mask},
                        inv_kw_args={"mask": mask},
                        check_inverse=False,
                    ),
                ),
                ("scale", StandardScaler()),
                ("kmeans", KMeans(n_clusters=k, n_init=self.n_init, random_state=seed)),
            ]
        )

    def fit(self, X: pd.DataFrame, y: object = None) -> KMeansSegmenter:
        """Fit the pipeline (choosing k first when ``n_clusters="auto"``), order and name clusters.

        Parameters
        ----------
        X : pandas.DataFrame
            One row per customer with ``features``, ``value_col`` and the scorer's columns.
        y : ignored

        Returns
        -------
        self : KMeansSegmenter

        Raises
        ------
        ConfigError
            Invalid parameters.
        DataError
            Missing columns, NaN, negative values, empty frame, or fewer customers
            (or fewer distinct customers) than clusters.
        """
        self._check_params()
        if is_spark(X):
            return self._fit_spark(X)
        matrix = self._matrix(X, "KMeansSegmenter.fit")
        _check_frame(X, [self.value_col], where="KMeansSegmenter.fit")
        rng = check_random_state(self.random_state)
        n = len(matrix)
        sample = (
            np.sort(rng.choice(n, self.sample_size, replace=False))
            if n > self.sample_size
            else np.arange(n)
        )
        seed = int(rng.randint(_SEED_MAX))
        if self.n_clusters == "auto":
            lo, hi = int(self.k_range[0]), int(self.k_range[1])
            # Scale once on all customers; every candidate is fitted on the sample.
            prep = self._make_pipeline(2, seed)[:-1].fit(matrix)
            z = prep.transform(matrix[sample])
            n_distinct = len(np.unique(z, axis=0))
            candidates = [k for k in range(lo, hi + 1) if k <= n_distinct and k < len(sample)]
            if not candidates:
                raise DataError(
                    f"KMeansSegmenter.fit: the sample holds {n_distinct} distinct customers "
                    f"of {len(sample)}, too few for k_range {tuple(self.k_range)}."
                )
            labelings = {
                k: KMeans(n_clusters=k, n_init=self.n_init, random_state=seed).fit(z).labels_
                for k in candidates
            }
            curve = silhouette_curve(z, labelings)
            k = int(curve.index[int(np.nanargmax(curve.to_numpy()))])
        else:
            k = int(self.n_clusters)
            curve = None
        if n < k:
            raise DataError(f"KMeansSegmenter.fit: {n} customers for {k} clusters; need n >= k.")
        if curve is None:  # "auto" only tried k up to the distinct rows of its sample
            n_distinct = len(
                np.unique(self._make_pipeline(k, seed)[:-1].fit_transform(matrix), axis=0)
            )
            if n_distinct < k:
                raise DataError(
                    f"KMeansSegmenter.fit: the {n} customers hold only {n_distinct} distinct "
                    f"rows of {list(self.features)}, too few for n_clusters={k}; ask for at "
                    f"most {n_distinct} clusters or use n_clusters='auto'."
                )
        pipeline = self._make_pipeline(k, seed).fit(matrix)
        km = pipeline.named_steps["kmeans"]

        # Order clusters by the mean of value_col (descending): new id = rank.
        value = X[self.value_col].to_numpy(dtype=float)
        counts = np.bincount(km.labels_, minlength=k)
        means = np.bincount(km.labels_, weights=value, minlength=k) / np.maximum(counts, 1)
        order = np.argsort(-means, kind="stable")
        rank = np.empty(k, dtype=np.int64)
        rank[order] = np.arange(k)
        km.cluster_centers_ = km.cluster_centers_[order]
        km.labels_ = rank[km.labels_]
        self.pipeline_ = pipeline
        self.labels_ = km.labels_
        self.n_clusters_ = k
        if curve is None:
            z = pipeline[:-1].transform(matrix[sample])
            curve = silhouette_curve(z, {k: self.labels_[sample]})
        self.silhouette_curve_ = curve

        centers = pipeline[:-1].inverse_transform(km.cluster_centers_)
        self.cluster_centers_ = pd.DataFrame(
            centers, columns=list(self.features), index=pd.RangeIndex(k, name="cluster")
        )
        self._name_clusters(X)
        self.n_features_in_ = X.shape[1]
        return self

    def _fit_spark(self, X: Any) -> KMeansSegmenter:
        """Fit on a seeded sample of ``sample_size`` customers of a Spark frame (collected)."""
        from rfmml.segments._spark import check_spark_features, spark_sample

        scorer = self.scorer if self.scorer is not None else RFMScorer()
        columns = list(dict.fromkeys([*self.features, self.value_col, *scorer.columns.values()]))
        check_spark_features(X, columns, where="KMeansSegmenter.fit")
        seed = check_random_state(self.random_state).randint(_SEED_MAX)
        sample = spark_sample(X, columns, int(self.sample_size), int(seed))
        self.fit(sample)
        self.n_features_in_ = len(X.columns)
        return self

    def _name_clusters(self, X: pd.DataFrame) -> None:
        pooled = X.reset_index(drop=True)
        scorer = clone(self.scorer) if self.scorer is not None else RFMScorer()
        rules = RuleSegmenter(scheme=self.scheme, scorer=scorer).fit(pooled)
        cols = list(rules.scorer_.columns.values())
        points = pooled[cols].groupby(self.labels_).median()
        for col in cols:
            if col in self.cluster_centers_.columns:
                points[col] = self.cluster_centers_[col].to_numpy()
        raw = rules.predict(points).astype(str).tolist()
        # Clusters run from most to least valuable, so clusters sharing a rule name are
        # told apart by their value rank among themselves, every one of them marked.
        total = {name: raw.count(name) for name in raw}
        names: list[str] = []
        seen: dict[str, int] = {}
        for name in raw:
            seen[name] = seen.get(name, 0) + 1
            if total[name] == 1:
                names.append(name)
            elif total[name] == 2:
                names.append(f"{name} ({'higher' if seen[name] == 1 else 'lower'} value)")
            else:
                names.append(f"{name} (value tier {seen[name]} of {total[name]})")
        rule_labels = rules.predict(pooled)
        cluster_names = pd.Categorical.from_codes(self.labels_, categories=names)
        self.cluster_names_ = names
        self.rule_segmenter_ = rules
        self.rule_agreement_ = pd.crosstab(
            pd.Series(cluster_names, name="cluster"), rule_labels.reset_index(drop=True)
        )
        self.adjusted_rand_score_ = float(adjusted_rand_score(rule_labels.cat.codes, self.labels_))

    def predict_cluster(self, X: pd.DataFrame) -> pd.Series:
        """Cluster id of each customer (0 = most valuable).

        Parameters
        ----------
        X : pandas.DataFrame
            Customer features with the ``features`` columns.

        Returns
        -------
        pandas.Series
            Integer cluster ids named ``"cluster"``, same index as ``X``.
        """
        check_is_fitted(self)
        if is_spark(X):
            out = self._spark_clusters(X)
            return out.select(*[c for c in out.columns if c != "segment"])
        labels = self.pipeline_.predict(self._matrix(X, "KMeansSegmenter.predict"))
        return pd.Series(labels.astype(np.int64), index=X.index, name="cluster")

    def predict(self, X: pd.DataFrame) -> pd.Series:
        """Segment of each customer: the name of its cluster (see :meth:`predict_cluster`).

        Same meaning as :meth:`RuleSegmenter.predict
        <rfmml.segments.RuleSegmenter.predict>`: a categorical named ``"segment"``
        (categories in cluster order), same index as ``X``. The cluster ids are
        :meth:`predict_cluster` (and ``labels_`` for the training customers).
        """
        if is_spark(X):
            out = self._spark_clusters(X)
            return out.select(*[c for c in out.columns if c != "cluster"])
        ids = self.predict_cluster(X)
        labels = pd.Categorical.from_codes(ids.to_numpy(), categories=self.cluster_names_)
        return pd.Series(labels, index=X.index, name="segment")

    def _spark_clusters(self, X: Any) -> Any:
        from rfmml.segments._spark import spark_clusters

        check_is_fitted(self)
        return spark_clusters(self, X)

    def fit_predict(self, X: pd.DataFrame, y: object = None) -> pd.Series:
        """Fit and return the training customers' segments (see :meth:`predict`)."""
        if is_spark(X):
            return self.fit(X).predict(X)
        self.fit(X)
        labels = pd.Categorical.from_codes(self.labels_, categories=self.cluster_names_)
        return pd.Series(labels, index=X.index, name="segment")
