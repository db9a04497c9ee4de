"""Metrics that compare segmentations of the same customers.

Every segmentation of an experiment (rule schemes, k-means with several k) is
scored on the **same standardized feature space** (:func:`standardized_features`)
and the **same holdout outcome** (the holdout columns of
:func:`rfmml.features.calibration_holdout`), so the numbers can be set side by
side (:func:`compare_table`). Four families of metrics:

- cluster quality in feature space (:func:`cluster_quality`): silhouette,
  Davies-Bouldin, Calinski-Harabasz;
- predictive value on the holdout period (:func:`holdout_separation`): spend
  variance explained, buy-again AUC, top revenue capture, best segment lift;
- stability under bootstrap resampling (:func:`stability`): adjusted Rand index;
- shape (:func:`segmentation_shape`): number of segments, segment shares, size
  entropy.

:func:`evaluate_segmentation` returns all of them as one flat ``dict`` of floats,
which is what the tracking code logs per child run. Metrics that are undefined
for a labeling (for example a silhouette with a single segment) are ``NaN``,
never an exception; the pipeline logs them as absent.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
from sklearn.base import clone
from sklearn.metrics import (
    adjusted_rand_score,
    calinski_harabasz_score,
    davies_bouldin_score,
    roc_auc_score,
    silhouette_score,
)
from sklearn.utils import check_random_state

from rfmml.errors import ConfigError, DataError, require_columns
from rfmml.evaluation.metrics import DEFAULT_PRIMARY, higher_is_better

__all__ = [
    "cluster_quality",
    "compare_table",
    "evaluate_segmentation",
    "holdout_separation",
    "segmentation_shape",
    "stability",
    "standardized_features",
]

#: Default feature columns of the shared standardized space.
FEATURE_COLUMNS = ("recency_days", "n_orders", "total_spend")
#: Feature columns of the shared space for logs without amounts.
FEATURE_COLUMNS_NO_SPEND = ("recency_days", "n_orders")
#: Holdout metrics that need amounts (left out for logs without them).
SPEND_METRICS = ("spend_variance_explained", "top_revenue_capture", "best_segment_lift")


# --------------------------------------------------------------------------- checks


def _check_labels(labels: object, where: str) -> pd.Series:
    """Labels as a Series; no missing values."""
    if isinstance(labels, pd.Series):
        series = labels
    elif isinstance(labels, np.ndarray | list | tuple | pd.Categorical | pd.Index):
        series = pd.Series(labels)
    else:
        raise TypeError(
            f"{where}: labels must be a pandas Series (or array) of segment labels, "
            f"got {type(labels).__name__}."
        )
    n_missing = int(series.isna().sum())
    if n_missing:
        raise DataError(
            f"{where}: labels has {n_missing} of {len(series)} missing values; give every "
            "customer a segment (or drop the unlabelled customers from every input)."
        )
    return series


def _align(
    name: str, series: pd.Series, index: pd.Index, where: str, reference: str = "labels"
) -> pd.Series:
    """``series`` in the order of ``index`` (the ids of ``reference``), or a DataError.

    The same ids in another order are reordered; different ids, or duplicated
    ids, raise a DataError that counts them.
    """
    if not isinstance(series, pd.Series):
        raise TypeError(
            f"{where}: {name} must be a pandas Series aligned with {reference}, "
            f"got {type(series).__name__}."
        )
    if series.index.equals(index) and not index.has_duplicates:
        return series
    only_ref = index.difference(series.index)
    only_other = series.index.difference(index)
    n_bad = len(only_ref) + len(only_other)
    if n_bad == 0 and not series.index.has_duplicates and not index.has_duplicates:
        return series.reindex(index)
    if n_bad == 0:
        raise DataError(
            f"{where}: {name} and {reference} hold the same ids but with duplicates "
            f"({int(series.index.duplicated().sum())} in {name}, "
            f"{int(index.duplicated().sum())} in {reference}); give one row per customer."
        )
    raise DataError(
        f"{where}: {n_bad} customer ids do not match between {reference} and {name} "
        f"({len(only_ref)} only in {reference}, {len(only_other)} only in {name}; "
        f"{len(index)} in {reference}, {len(series)} in {name}). Compute them on the same "
        "customers, e.g. rfm_table(tx, observation_end=calibration_end) with "
        "calibration_holdout(...)."
    )


def _check_finite(name: str, values: pd.Series, where: str, *, non_negative: bool) -> np.ndarray:
    """Float values of a Series; DataError on NaN, infinite or (optionally) negative values."""
    numeric = pd.to_numeric(values, errors="coerce").to_numpy(dtype=float)
    n_bad = int((~np.isfinite(numeric)).sum())
    if n_bad:
        raise DataError(
            f"{where}: {name} has {n_bad} of {len(numeric)} missing, non-numeric or "
            "infinite values. Fill or drop those customers first."
        )
    if non_negative:
        n_neg = int((numeric < 0).sum())
        if n_neg:
            raise DataError(
                f"{where}: {name} has {n_neg} of {len(numeric)} negative values; it must be >= 0."
            )
    return numeric


def _codes(labels: pd.Series) -> tuple[np.ndarray, pd.Index]:
    """Integer codes ``0..k-1`` of the observed labels (unused categories dropped)."""
    codes, uniques = pd.factorize(labels.to_numpy(), sort=False)
    return codes.astype(np.int64), pd.Index(uniques)


# --------------------------------------------------------------------------- features


def standardized_features(
    features: pd.DataFrame,
    columns: Sequence[str] = FEATURE_COLUMNS,
    log: bool | Sequence[str] = True,
) -> pd.DataFrame:
    """The shared feature space: ``log1p`` of skewed columns, then z-scores.

    For each column ``x`` (after ``log1p`` when it is logged)::

        z = (x - mean(x)) / sd(x)        # population sd (ddof=0), as StandardScaler

    A constant column (``sd = 0``) becomes all zeros rather than ``NaN``.

    Parameters
    ----------
    features : pandas.DataFrame
        One row per customer, e.g. :func:`rfmml.features.rfm_table`.
    columns : sequence of str, default=("recency_days", "n_orders", "total_spend")
        Columns of the feature space, in order.
    log : bool or sequence of str, default=True
        ``True`` applies ``log1p`` to every column (recency, counts and spend are
        all right-skewed), ``False`` to none, a sequence to the columns named.

    Returns
    -------
    pandas.DataFrame
        Float columns ``columns`` with mean 0 and sd 1 (0 for constant
        columns), same index as ``features``.

    Raises
    ------
    TypeError
        ``features`` is not a DataFrame.
    DataError
        Missing columns, an empty frame, missing/non-numeric/infinite values,
        or negative values in a logged column (``log1p`` needs ``x >= 0``);
        the message names the column and counts the rows.
    ConfigError
        ``log`` names a column that is not in ``columns``.
    """
    where = "standardized_features"
    if not isinstance(features, pd.DataFrame):
        raise TypeError(
            f"{where} expects a pandas DataFrame of customer features, got "
            f"{type(features).__name__}. Build one with rfmml.features.rfm_table(tx)."
        )
    columns = list(columns)
    require_columns(features, columns, where)
    if len(features) == 0:
        raise DataError(f"{where}: the features frame is empty (0 customers).")
    if log is True:
        logged = set(columns)
    elif log is False:
        logged = set()
    else:
        logged = set(log)
        unknown = sorted(logged - set(columns))
        if unknown:
            raise ConfigError(f"{where}: log names {unknown}, which are not in columns {columns}.")
    out = {}
    for col in columns:
        x = _check_finite(f"column {col!r}", features[col], where, non_negative=col in logged)
        if col in logged:
            x = np.log1p(x)
        sd = x.std()
        out[col] = (x - x.mean()) / sd if sd > 0 else np.zeros_like(x)
    return pd.DataFrame(out, index=features.index, columns=columns)


# --------------------------------------------------------------------------- cluster quality


def cluster_quality(
    X_std: pd.DataFrame | np.ndarray,
    labels: pd.Series | np.ndarray,
    sample_size: int | None = 10_000,
    random_state: int | np.random.RandomState | None = 0,
) -> dict[str, float]:
    """Internal cluster-quality indices of a labeling in the standardized space.

    - ``silhouette``: mean over customers of ``s_i = (b_i - a_i) / max(a_i, b_i)``,
      with ``a_i`` the mean Euclidean distance to the other members of its
      segment and ``b_i`` the smallest mean distance to another segment's
      members (``s_i = 0`` alone in a segment). In ``[-1, 1]``, higher is
      better. Computed on a seeded random sample of at most ``sample_size``
      customers (the same sample :func:`sklearn.metrics.silhouette_score` draws
      with ``sample_size`` and ``random_state``), as it is quadratic in ``n``.
    - ``davies_bouldin``: ``(1/k) sum_i max_{j != i} (s_i + s_j) / d(c_i, c_j)``
      with ``s_i`` the mean distance of segment ``i``'s members to its centroid
      ``c_i``. ``>= 0``, lower is better. All customers.
    - ``calinski_harabasz``: ``[B / (k - 1)] / [W / (n - k)]``, the ratio of
      between-segment to within-segment dispersion (sums of squared distances
      to the overall and segment centroids). Higher is better. All customers.

    Parameters
    ----------
    X_std : pandas.DataFrame or ndarray of shape (n_customers, n_features)
        Standardized features (:func:`standardized_features`).
    labels : pandas.Series or ndarray of shape (n_customers,)
        Segment of each customer; when both inputs are pandas objects their
        indexes must hold the same ids.
    sample_size : int or None, default=10_000
        Customers sampled for the silhouette; ``None`` uses all.
    random_state : int, RandomState or None, default=0
        Seed of the silhouette sample.

    Returns
    -------
    dict
        ``silhouette``, ``davies_bouldin``, ``calinski_harabasz`` (floats).
        The indices are undefined unless ``2 <= k <= n - 1`` (``k`` observed
        segments, ``n`` customers): with a single segment, or every customer in
        its own segment, all three are ``NaN``, and so is the silhouette when its
        sample holds a single segment. No exception is raised for such labelings.

    Raises
    ------
    TypeError
        Wrong input types.
    DataError
        Missing labels, non-finite features, or a length/id mismatch.
    """
    where = "cluster_quality"
    positional = not isinstance(labels, pd.Series)
    labels = _check_labels(labels, where)
    if isinstance(X_std, pd.DataFrame):
        if not positional:
            labels = _align("labels", labels, X_std.index, where, reference="X_std")
        X = X_std.to_numpy(dtype=float)
    elif isinstance(X_std, np.ndarray):
        X = np.asarray(X_std, dtype=float)
    else:
        raise TypeError(
            f"{where}: X_std must be a DataFrame or ndarray, got {type(X_std).__name__}."
        )
    if X.ndim != 2 or X.shape[0] != len(labels):
        raise DataError(
            f"{where}: X_std has shape {X.shape} but there are {len(labels)} labels; "
            "give one row of features per labelled customer."
        )
    n_bad = int((~np.isfinite(X)).any(axis=1).sum())
    if n_bad:
        raise DataError(
            f"{where}: X_std has {n_bad} of {len(X)} rows with missing or infinite values; "
            "build it with standardized_features."
        )
    codes, uniques = _codes(labels)
    n, k = len(codes), len(uniques)
    nan = {"silhouette": np.nan, "davies_bouldin": np.nan, "calinski_harabasz": np.nan}
    if not 1 < k < n:
        return nan
    if sample_size is not None and sample_size < n:
        sample = check_random_state(random_state).permutation(n)[:sample_size]
    else:
        sample = np.arange(n)
    k_sample = len(np.unique(codes[sample]))
    silhouette = (
        float(silhouette_score(X[sample], codes[sample])) if 1 < k_sample < len(sample) else np.nan
    )
    return {
        "silhouette": silhouette,
        "davies_bouldin": float(davies_bouldin_score(X, codes)),
        "calinski_harabasz": float(calinski_harabasz_score(X, codes)),
    }


# --------------------------------------------------------------------------- holdout


def holdout_separation(
    labels: pd.Series,
    calibration_value: pd.Series,
    holdout_purchases: pd.Series,
    holdout_spend: pd.Series | None,
    top_share: float = 0.2,
) -> dict[str, float]:
    """How well segments, ranked by calibration value, separate holdout behaviour.

    Segments are ordered by their mean calibration value ``v_s`` (e.g. mean
    calibration spend), the only information a marketer has when choosing whom
    to target. Segments with equal ``v_s`` cannot be told apart by this score
    and are treated as one block. With ``n`` customers, ``y_i`` the holdout spend,
    ``b_i = 1[holdout purchases > 0]``, ``n_s`` and ``R_s = sum_{i in s} y_i``
    the size and holdout revenue of segment ``s`` and ``R = sum_s R_s``:

    - ``spend_variance_explained`` (eta squared): share of the variance of the
      holdout spend explained by the segment means,
      ``SS_between / SS_total = sum_s n_s (ybar_s - ybar)^2 / sum_i (y_i - ybar)^2``;
      in ``[0, 1]``, ``NaN`` when all spends are equal.
    - ``buy_again_auc``: ROC AUC of the event ``b_i`` when each customer is
      scored by ``v_s`` of their segment; customers of one segment are tied, and
      a tie counts 1/2 (rank-based AUC, :func:`sklearn.metrics.roc_auc_score`).
      1 = the segments rank every future buyer above every non-buyer, 0.5 = no
      better than chance (a single segment), 0 = exactly reversed. ``NaN`` when
      every customer, or no customer, buys again.
    - ``top_revenue_capture``: share of ``R`` captured by the highest-value
      segments covering ``top_share`` of the customers. Segments are taken whole
      in order of ``v_s`` until the next would overshoot ``m = top_share * n``;
      of that segment the fraction ``(m - customers taken) / n_s`` is taken,
      assuming its revenue is spread evenly over its customers::

          capture = (sum_{whole s} R_s + fraction * R_last) / R

      ``NaN`` when ``R <= 0``.
    - ``best_segment_lift``: holdout revenue per customer of the best segment
      (highest ``v_s``) over that of all customers, ``(R_best / n_best) / (R / n)``;
      ``NaN`` when ``R = 0``.
    - ``buy_again_rate_best`` and ``buy_again_rate_overall``: share of customers
      with a holdout purchase in the best segment and overall.

    Parameters
    ----------
    labels : pandas.Series
        Segment of each customer, indexed by customer id (or a MultiIndex).
    calibration_value : pandas.Series
        Value known at the end of calibration that orders segments (e.g.
        ``rfm_table(...)["total_spend"]``).
    holdout_purchases : pandas.Series
        Purchases in the holdout period (``frequency_holdout``), ``>= 0``.
    holdout_spend : pandas.Series or None
        Revenue of each customer in the holdout period; ``None`` for a log
        without amounts leaves out the spend metrics
        (``spend_variance_explained``, ``top_revenue_capture``,
        ``best_segment_lift``).
    top_share : float, default=0.2
        Share of customers targeted for ``top_revenue_capture``, in ``(0, 1]``.

    Returns
    -------
    dict
        The six metrics above (three without ``holdout_spend``), as floats.

    Raises
    ------
    TypeError
        An input is not a pandas Series.
    DataError
        Empty input, indexes holding different customer ids (the message counts
        them), missing or infinite values, or negative holdout purchases.
    ValueError
        ``top_share`` outside ``(0, 1]``.
    """
    where = "holdout_separation"
    if not 0 < top_share <= 1:
        raise ValueError(f"{where}: top_share must be in (0, 1], got {top_share!r}.")
    if not isinstance(labels, pd.Series):
        raise TypeError(f"{where}: labels must be a pandas Series, got {type(labels).__name__}.")
    labels = _check_labels(labels, where)
    if len(labels) == 0:
        raise DataError(f"{where}: labels is empty (0 customers); nothing to evaluate.")
    index = labels.index
    value = _check_finite(
        "calibration_value",
        _align("calibration_value", calibration_value, index, where),
        where,
        non_negative=False,
    )
    purchases = _check_finite(
        "holdout_purchases",
        _align("holdout_purchases", holdout_purchases, index, where),
        where,
        non_negative=True,
    )
    has_spend = holdout_spend is not None
    spend = (
        _check_finite(
            "holdout_spend",
            _align("holdout_spend", holdout_spend, index, where),
            where,
            non_negative=False,
        )
        if holdout_spend is not None
        else np.zeros(len(index))
    )
    codes, _ = _codes(labels)
    n = len(codes)
    k = int(codes.max()) + 1
    sizes = np.bincount(codes, minlength=k).astype(float)
    seg_value = np.bincount(codes, weights=value, minlength=k) / sizes
    score = seg_value[codes]

    # Blocks of segments with equal mean calibration value, best first.
    block_values, block = np.unique(-score, return_inverse=True)
    n_blocks = len(block_values)
    block_sizes = np.bincount(block, minlength=n_blocks).astype(float)
    block_revenue = np.bincount(block, weights=spend, minlength=n_blocks)
    bought = purchases > 0
    total_revenue = float(spend.sum())

    # eta squared
    mean_spend = spend.mean()
    ss_total = float(((spend - mean_spend) ** 2).sum())
    seg_spend = np.bincount(codes, weights=spend, minlength=k) / sizes
    ss_between = float((sizes * (seg_spend - mean_spend) ** 2).sum())
    eta2 = min(max(ss_between / ss_total, 0.0), 1.0) if ss_total > 0 else np.nan

    auc = float(roc_auc_score(bought, score)) if 0 < bought.sum() < n else np.nan

    # top revenue capture, last block pro-rated
    target = top_share * n
    before = np.concatenate([[0.0], np.cumsum(block_sizes)[:-1]])
    fraction = np.clip((target - before) / block_sizes, 0.0, 1.0)
    captured = float((fraction * block_revenue).sum())
    capture = captured / total_revenue if total_revenue > 0 else np.nan

    best = block == 0
    overall_per_customer = total_revenue / n
    lift = (
        float(block_revenue[0] / block_sizes[0]) / overall_per_customer
        if overall_per_customer != 0
        else np.nan
    )
    metrics = {
        "spend_variance_explained": float(eta2),
        "buy_again_auc": float(auc),
        "top_revenue_capture": float(capture),
        "best_segment_lift": float(lift),
        "buy_again_rate_best": float(bought[best].mean()),
        "buy_again_rate_overall": float(bought.mean()),
    }
    if not has_spend:
        for key in SPEND_METRICS:
            del metrics[key]
    return metrics


# --------------------------------------------------------------------------- stability


def _bootstrap_frame(features: pd.DataFrame, rows: np.ndarray) -> pd.DataFrame:
    """Rows of a resample with a fresh unique customer level (group levels kept)."""
    sample = features.iloc[rows]
    if isinstance(sample.index, pd.MultiIndex):
        levels = [np.arange(len(rows))] + [
            sample.index.get_level_values(i) for i in range(1, sample.index.nlevels)
        ]
        return sample.set_axis(pd.MultiIndex.from_arrays(levels, names=sample.index.names))
    return sample.set_axis(pd.RangeIndex(len(rows), name=sample.index.name))


def _resample_rows(features: pd.DataFrame, m: int, rng: np.random.RandomState) -> np.ndarray:
    """Row positions of one bootstrap resample of about ``m`` rows.

    With a ``(customer_id, group, ...)`` index the draw is stratified by group:
    each group gets ``max(1, round(n_g m / n))`` rows drawn from its own rows, so
    every group is present (per-group scorers must see every group they will
    label) and keeps its share.
    """
    n = len(features)
    if not isinstance(features.index, pd.MultiIndex):
        return rng.randint(0, n, size=m)
    groups = pd.MultiIndex.from_arrays(
        [features.index.get_level_values(i) for i in range(1, features.index.nlevels)]
    ) if features.index.nlevels > 2 else features.index.get_level_values(1)  # fmt: skip
    codes, _ = pd.factorize(groups)
    order = np.argsort(codes, kind="stable")
    counts = np.bincount(codes)
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    sizes = np.maximum(1, np.rint(counts * (m / n)).astype(np.int64))
    picks = [order[start + rng.randint(0, count, size=size)]
             for start, count, size in zip(starts, counts, sizes, strict=True)]  # fmt: skip
    return np.concatenate(picks)


def stability(
    segmenter: object,
    features: pd.DataFrame,
    n_bootstrap: int = 10,
    random_state: int | np.random.RandomState | None = 0,
    *,
    max_rows: int | None = 50_000,
) -> dict[str, float]:
    """Agreement of a segmentation with itself refitted on bootstrap resamples.

    The reference labels come from ``clone(segmenter)`` fitted on all of
    ``features``. Then, ``n_bootstrap`` times, a clone is fitted on a resample
    of ``m = min(n, max_rows)`` customers drawn with replacement (an
    ``m``-out-of-``n`` bootstrap; with ``m = n`` the classic one), it labels
    **all** customers with ``predict``, and the adjusted Rand index (ARI)
    between those labels and the reference is recorded::

        ARI = (RI - E[RI]) / (max RI - E[RI])

    where RI is the share of customer pairs on which the two partitions agree
    (together in both or apart in both). 1 = identical partitions (label names
    do not matter), about 0 = no more agreement than chance, negative = less.

    Drawn rows get a fresh unique customer id before fitting (duplicates would
    break index-aligned estimators); other index levels, such as a group, are
    kept, and the draw is stratified by group (every group present, in
    proportion), so grouped scoring still works.

    Parameters
    ----------
    segmenter : estimator
        An unfitted or fitted segmenter with ``fit`` and ``predict``
        (:class:`~rfmml.segments.RuleSegmenter`,
        :class:`~rfmml.segments.KMeansSegmenter`); it is cloned, never modified.
    features : pandas.DataFrame
        The customer features the segmenter is fitted on.
    n_bootstrap : int, default=10
        Number of resamples (>= 1).
    random_state : int, RandomState or None, default=0
        Seed of the resamples; an int gives identical results on rerun (as long
        as the segmenter itself is seeded, e.g. ``KMeansSegmenter(random_state=0)``).
    max_rows : int or None, default=50_000
        Cap on the rows of each resample, for speed on large customer bases
        (each k-means fit costs time linear in its rows); ``None`` draws ``n``
        rows. The reference fit always uses every customer.

    Returns
    -------
    dict
        ``stability_ari_mean`` and ``stability_ari_std`` (population sd) of the
        ``n_bootstrap`` ARIs.

    Raises
    ------
    TypeError
        ``features`` is not a DataFrame, or ``segmenter`` lacks ``fit``/``predict``.
    DataError
        Empty ``features``.
    ValueError
        ``n_bootstrap`` or ``max_rows`` below 1.
    """
    where = "stability"
    if not (hasattr(segmenter, "fit") and hasattr(segmenter, "predict")):
        raise TypeError(
            f"{where}: segmenter must have fit and predict methods (e.g. RuleSegmenter, "
            f"KMeansSegmenter), got {type(segmenter).__name__}."
        )
    if not isinstance(features, pd.DataFrame):
        raise TypeError(
            f"{where} expects a pandas DataFrame of customer features, got "
            f"{type(features).__name__}."
        )
    if len(features) == 0:
        raise DataError(f"{where}: the features frame is empty (0 customers).")
    if (
        isinstance(n_bootstrap, bool)
        or not isinstance(n_bootstrap, int | np.integer)
        or (n_bootstrap < 1)
    ):
        raise ValueError(f"{where}: n_bootstrap must be an integer >= 1, got {n_bootstrap!r}.")
    if max_rows is not None and max_rows < 1:
        raise ValueError(f"{where}: max_rows must be >= 1 or None, got {max_rows!r}.")
    n = len(features)
    m = n if max_rows is None else min(n, int(max_rows))
    reference, _ = _codes(pd.Series(np.asarray(clone(segmenter).fit(features).predict(features))))
    rng = check_random_state(random_state)
    scores = []
    for _ in range(n_bootstrap):
        rows = _resample_rows(features, m, rng)
        fitted = clone(segmenter).fit(_bootstrap_frame(features, rows))
        labels, _ = _codes(pd.Series(np.asarray(fitted.predict(features))))
        scores.append(float(adjusted_rand_score(reference, labels)))
    return {
        "stability_ari_mean": float(np.mean(scores)),
        "stability_ari_std": float(np.std(scores)),
    }


# --------------------------------------------------------------------------- shape


def segmentation_shape(labels: pd.Series | np.ndarray) -> dict[str, float]:
    """Number and relative sizes of the segments.

    With ``p_s = n_s / n`` the share of customers in segment ``s`` and ``k`` the
    number of segments holding at least one customer (unused categories of a
    categorical do not count):

    - ``n_segments``: ``k``;
    - ``smallest_segment_share``, ``largest_segment_share``: ``min p_s``, ``max p_s``;
    - ``size_entropy``: Shannon entropy ``H = -sum_s p_s ln p_s`` (nats), 0 for one
      segment, ``ln k`` for ``k`` equal segments;
    - ``size_entropy_normalized``: ``H / ln k`` (Pielou's evenness), 1.0 when all
      segments have the same size. Defined as 1.0 for ``k = 1`` (one segment is
      trivially of equal sizes; ``n_segments`` flags that case).

    With no customers at all, ``n_segments`` is 0, ``size_entropy`` 0.0 and the
    shares and normalized entropy are ``NaN``.

    Parameters
    ----------
    labels : pandas.Series or ndarray
        Segment of each customer.

    Returns
    -------
    dict
        The five values above, as floats.

    Raises
    ------
    TypeError
        ``labels`` is not a Series or array.
    DataError
        Missing labels.
    """
    labels = _check_labels(labels, "segmentation_shape")
    codes, uniques = _codes(labels)
    k = len(uniques)
    if k == 0:
        return {
            "n_segments": 0.0,
            "smallest_segment_share": np.nan,
            "largest_segment_share": np.nan,
            "size_entropy": 0.0,
            "size_entropy_normalized": np.nan,
        }
    shares = np.bincount(codes, minlength=k) / len(codes)
    entropy = float(-(shares * np.log(shares)).sum())
    return {
        "n_segments": float(k),
        "smallest_segment_share": float(shares.min()),
        "largest_segment_share": float(shares.max()),
        "size_entropy": entropy,
        "size_entropy_normalized": entropy / float(np.log(k)) if k > 1 else 1.0,
    }


# --------------------------------------------------------------------------- all together


def evaluate_segmentation(
    labels: pd.Series,
    features: pd.DataFrame,
    cal_holdout: pd.DataFrame | None = None,
    *,
    X_std: pd.DataFrame | None = None,
    holdout_spend: pd.Series | None = None,
    calibration_value: pd.Series | None = None,
    segmenter: object | None = None,
    n_bootstrap: int = 10,
    random_state: int | np.random.RandomState | None = 0,
    sample_size: int | None = 10_000,
) -> dict[str, float]:
    """Every segmentation metric of one labeling, as one flat dict of floats.

    Keys, in order: :func:`segmentation_shape` (``n_segments``,
    ``smallest_segment_share``, ``largest_segment_share``, ``size_entropy``,
    ``size_entropy_normalized``), :func:`cluster_quality` (``silhouette``,
    ``davies_bouldin``, ``calinski_harabasz``), :func:`holdout_separation`
    (``spend_variance_explained``, ``buy_again_auc``, ``top_revenue_capture``,
    ``best_segment_lift``, ``buy_again_rate_best``, ``buy_again_rate_overall``)
    when ``cal_holdout`` is given, and :func:`stability` (``stability_ari_mean``,
    ``stability_ari_std``) when ``segmenter`` is given. Undefined metrics are
    ``NaN``; see each function for the definitions.

    A log without amounts (``features`` without ``total_spend`` and
    ``cal_holdout`` without ``spend_holdout``) is judged on what exists: the
    feature space is recency and orders, segments are ordered by their mean
    calibration ``n_orders`` and the spend metrics are left out (absent, not
    ``NaN``).

    To compare segmentations, call this with the same ``features``,
    ``cal_holdout``, ``X_std`` and ``holdout_spend`` for all of them.

    Parameters
    ----------
    labels : pandas.Series
        Segment of each customer, aligned to ``features`` (and ``cal_holdout``).
    features : pandas.DataFrame
        Calibration-period customer features (:func:`rfmml.features.rfm_table`
        with ``observation_end`` = calibration end).
    cal_holdout : pandas.DataFrame, optional
        :func:`rfmml.features.calibration_holdout` for the same customers. Its
        ``frequency_holdout`` is the holdout purchase count. Without it the
        holdout metrics are left out.
    X_std : pandas.DataFrame, optional
        Standardized feature space; default ``standardized_features(features)``.
        Pass it once computed to share it between segmentations.
    holdout_spend : pandas.Series, optional
        Holdout revenue per customer. Default ``cal_holdout["spend_holdout"]``,
        the exact total that :func:`rfmml.features.calibration_holdout` returns.
    calibration_value : pandas.Series, optional
        Value that orders segments in the holdout metrics; default
        ``features["total_spend"]`` (calibration-period spend).
    segmenter : estimator, optional
        The segmenter that produced ``labels``; given, :func:`stability` is run
        on ``features`` (a clone is refitted, ``segmenter`` is not modified).
    n_bootstrap : int, default=10
        Bootstrap resamples for :func:`stability`.
    random_state : int, RandomState or None, default=0
        Seed of the silhouette sample and the bootstrap.
    sample_size : int or None, default=10_000
        Silhouette sample size.

    Returns
    -------
    dict of str to float

    Raises
    ------
    TypeError, DataError, ValueError
        From the functions above: bad types, misaligned customer ids, missing
        columns (``total_spend``, ``frequency_holdout``, ``spend_holdout``)
        or invalid values.
    """
    where = "evaluate_segmentation"
    if not isinstance(features, pd.DataFrame):
        raise TypeError(
            f"{where} expects a pandas DataFrame of customer features, got "
            f"{type(features).__name__}."
        )
    if not isinstance(labels, pd.Series):
        raise TypeError(f"{where}: labels must be a pandas Series, got {type(labels).__name__}.")
    labels = _align("labels", labels, features.index, where, reference="features")
    no_spend = (
        "total_spend" not in features.columns
        and holdout_spend is None
        and (cal_holdout is None or "spend_holdout" not in cal_holdout.columns)
    )
    if X_std is None:
        X_std = standardized_features(
            features, FEATURE_COLUMNS_NO_SPEND if no_spend else FEATURE_COLUMNS
        )
    result = segmentation_shape(labels)
    result.update(
        cluster_quality(X_std, labels, sample_size=sample_size, random_state=random_state)
    )
    if cal_holdout is not None:
        if not isinstance(cal_holdout, pd.DataFrame):
            raise TypeError(
                f"{where}: cal_holdout must be a pandas DataFrame from "
                f"rfmml.features.calibration_holdout, got {type(cal_holdout).__name__}."
            )
        spend_needed = holdout_spend is None and not no_spend
        needed = ["frequency_holdout"] + (["spend_holdout"] if spend_needed else [])
        missing = [c for c in needed if c not in cal_holdout.columns]
        if missing:
            raise DataError(
                f"{where}: cal_holdout is missing column(s) {missing}; build it with "
                "rfmml.features.calibration_holdout on transactions with amounts, or pass "
                "holdout_spend."
            )
        if calibration_value is None and no_spend:
            calibration_value = features["n_orders"]
        if calibration_value is None:
            if "total_spend" not in features.columns:
                raise DataError(
                    f"{where}: features has no 'total_spend' column to order segments by; "
                    "pass calibration_value."
                )
            calibration_value = features["total_spend"]
        purchases = cal_holdout["frequency_holdout"]
        if holdout_spend is None and not no_spend:
            holdout_spend = cal_holdout["spend_holdout"]
        result.update(holdout_separation(labels, calibration_value, purchases, holdout_spend))
    if segmenter is not None:
        result.update(
            stability(segmenter, features, n_bootstrap=n_bootstrap, random_state=random_state)
        )
    return {key: float(value) for key, value in result.items()}


def compare_table(
    results: Mapping[str, Mapping[str, float]], primary: str = DEFAULT_PRIMARY
) -> pd.DataFrame:
    """Side-by-side table of segmentations, ranked by one metric (``comparison.csv``).

    Parameters
    ----------
    results : mapping of str to mapping of str to float
        Segmentation name to its metrics (:func:`evaluate_segmentation`).
    primary : str, default="buy_again_auc"
        Metric that ranks the segmentations, in the direction the registry
        :data:`rfmml.evaluation.metrics.SEGMENTATION_METRICS` gives it
        (ascending for ``davies_bouldin`` and ``stability_ari_std``).

    Returns
    -------
    pandas.DataFrame
        One row per segmentation (index ``segmentation``), one column per metric
        (union over all results, ``NaN`` where absent) and ``rank`` (1 = best,
        ties share the lowest rank, ``<NA>`` when the primary metric is ``NaN``),
        sorted by rank (unranked last, input order within ties).
        ``attrs["primary"]`` names the ranking metric.

    Raises
    ------
    ConfigError
        ``primary`` is not a metric of any result, or has no direction.
    """
    frame = pd.DataFrame.from_dict(
        {name: dict(metrics) for name, metrics in results.items()}, orient="index", dtype=float
    )
    frame.index.name = "segmentation"
    if primary not in frame.columns:
        raise ConfigError(
            f"compare_table: primary metric {primary!r} is not in the results; available "
            f"metrics are {list(frame.columns)}."
        )
    ascending = not higher_is_better(primary)
    rank = frame[primary].rank(method="min", ascending=ascending, na_option="keep")
    frame["rank"] = rank.astype("Int64")
    order = np.lexsort((np.arange(len(frame)), rank.fillna(np.inf).to_numpy()))
    table = frame.iloc[order]
    table.attrs["primary"] = primary
    return table
