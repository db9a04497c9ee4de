"""Rule-based segmentation: RFM scores mapped through a scheme."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
from sklearn.base import BaseEstimator, TransformerMixin, clone
from sklearn.utils.validation import check_is_fitted

from rfmml.errors import ConfigError
from rfmml.features._spark import is_spark
from rfmml.segments.schemes import Scheme, load_scheme
from rfmml.segments.scoring import RFMScorer

__all__ = ["RuleSegmenter"]


class RuleSegmenter(TransformerMixin, BaseEstimator):
    """Segment customers with a rule scheme over their R, F, M scores.

    Parameters
    ----------
    scheme : str, pathlib.Path or Scheme, default="rf_grid"
        Built-in scheme name (``"rf_grid"``, ``"rfm11"``), a TOML file, or a
        :class:`~rfmml.segments.Scheme`.
    scorer : RFMScorer, optional
        Scorer whose clone is fitted in ``fit``; ``None`` means ``RFMScorer()``.
        Its ``n_scores`` must equal the scheme's.

    Attributes
    ----------
    scheme_ : Scheme
        The loaded scheme (``scheme_.segments`` has each segment's description and
        recommended action).
    scorer_ : RFMScorer
        The fitted scorer.
    n_features_in_ : int

    Examples
    --------
    >>> import pandas as pd
    >>> X = pd.DataFrame({"recency_days": [3.0, 30.0, 90.0, 200.0, 400.0],
    ...                   "n_orders": [8, 4, 3, 2, 1],
    ...                   "total_spend": [400.0, 150.0, 80.0, 40.0, 15.0]})
    >>> RuleSegmenter("rf_grid").fit_predict(X).tolist()
    ['Champions', 'Loyal', 'Needs Attention', 'Hibernating', 'Hibernating']
    """

    def __init__(self, scheme: str | Path | Scheme = "rf_grid", scorer: RFMScorer | None = None):
        self.scheme = scheme
        self.scorer = scorer

    def fit(self, X: pd.DataFrame, y: object = None) -> RuleSegmenter:
        """Load the scheme and fit a clone of the scorer.

        Parameters
        ----------
        X : pandas.DataFrame
            Customer features (see :class:`RFMScorer` for the columns).
        y : ignored

        Returns
        -------
        self : RuleSegmenter

        Raises
        ------
        ConfigError
            Invalid scheme, or the scheme and scorer disagree on ``n_scores``.
        DataError
            Bad features frame.
        """
        scheme = load_scheme(self.scheme)
        scorer = clone(self.scorer) if self.scorer is not None else RFMScorer()
        if scorer.n_scores != scheme.n_scores:
            raise ConfigError(
                f"scheme {scheme.name!r} is defined on scores 1..{scheme.n_scores} but the "
                f"scorer has n_scores={scorer.n_scores}; make them equal."
            )
        self.scorer_ = scorer.fit(X)
        self.scheme_ = scheme
        self.n_features_in_ = self.scorer_.n_features_in_
        return self

    def transform(self, X: pd.DataFrame) -> pd.DataFrame:
        """Scores and segment of each customer.

        Parameters
        ----------
        X : pandas.DataFrame
            Customer features.

        Returns
        -------
        pandas.DataFrame or pyspark.sql.DataFrame
            ``R``, ``F``, ``M``, ``FM``, ``RFM`` and ``segment`` (categorical), same
            index as ``X``; for a Spark frame, ``customer_id`` and those columns
            (``segment`` as text), computed in Spark.
        """
        check_is_fitted(self)
        scores = self.scorer_.transform(X)
        if is_spark(scores):
            from rfmml.segments._spark import spark_label

            return spark_label(scores, self.scheme_)
        scores["segment"] = self.scheme_.label(scores)
        return scores

    def _transform_categories(self, X: pd.DataFrame) -> pd.DataFrame:
        """:meth:`transform` of a pandas frame with ``RFM`` as a categorical, where it can.

        The labels as codes into every label (see
        :meth:`RFMScorer._transform_categories`); a scorer whose ``transform`` is
        its own gives its frame as it is.
        """
        check_is_fitted(self)
        scorer = self.scorer_
        if type(scorer).transform is RFMScorer.transform:
            scores = scorer._transform_categories(X)
        else:
            scores = scorer.transform(X)
        scores["segment"] = self.scheme_.label(scores)
        return scores

    def predict(self, X: pd.DataFrame) -> pd.Series:
        """Segment of each customer: the categorical ``segment`` column of :meth:`transform`."""
        check_is_fitted(self)
        if is_spark(X):
            out = self.transform(X)
            return out.select(*[c for c in out.columns if c in ("customer_id", "segment")])
        return self.scheme_.label(self.scorer_.transform(X))

    def fit_predict(self, X: pd.DataFrame, y: object = None) -> pd.Series:
        """Fit on ``X`` and return its segments (see :meth:`predict`)."""
        return self.fit(X).predict(X)

    def get_feature_names_out(self, input_features: object = None) -> list[str]:
        """Names of the ``transform`` output columns."""
        return ["R", "F", "M", "FM", "RFM", "segment"]
