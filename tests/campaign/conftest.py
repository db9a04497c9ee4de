"""Fitted models and prediction tables on real data, built once per session.

``cdnow_tx`` and ``online_retail_tx`` come from ``tests/conftest.py``. The rule and
k-means segmenters and the BG/NBD and Gamma-Gamma models are fitted on the CDNOW
weekly summary at 1998-06-30 (the end of the log); the 1997-12-31 snapshot is
scored with the same fitted models so segment changes compare like with like.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
import pytest

from rfmml.campaign import score_customers
from rfmml.features import btyd_summary, rfm_table
from rfmml.models import BetaGeoNBD, GammaGamma
from rfmml.segments import KMeansSegmenter, RuleSegmenter

LATE = "1998-06-30"
EARLY = "1997-12-31"


@dataclass
class Fitted:
    features: pd.DataFrame
    summary: pd.DataFrame
    rules: RuleSegmenter
    kmeans: KMeansSegmenter
    bgnbd: BetaGeoNBD
    gamma_gamma: GammaGamma

    def score(self, features=None, summary=None, **kwargs) -> pd.DataFrame:
        args = {
            "rule_segmenter": self.rules,
            "kmeans_segmenter": self.kmeans,
            "purchase_model": self.bgnbd,
            "gamma_gamma": self.gamma_gamma,
        }
        args.update(kwargs)
        return score_customers(
            self.features if features is None else features,
            self.summary if summary is None else summary,
            **args,
        )


def _spend_fit_rows(summary: pd.DataFrame) -> pd.DataFrame:
    # Gamma-Gamma needs a positive mean spend for repeat buyers (CDNOW has one at 0).
    return summary[(summary["frequency"] == 0) | (summary["monetary_value"] > 0)]


@pytest.fixture(scope="session")
def cdnow_fitted(cdnow_tx) -> Fitted:
    features = rfm_table(cdnow_tx, observation_end=LATE)
    summary = btyd_summary(cdnow_tx, observation_end=LATE, freq="W")
    return Fitted(
        features=features,
        summary=summary,
        rules=RuleSegmenter("rf_grid").fit(features),
        kmeans=KMeansSegmenter(n_clusters=4, random_state=0).fit(features),
        bgnbd=BetaGeoNBD().fit(summary),
        gamma_gamma=GammaGamma().fit(_spend_fit_rows(summary)),
    )


@pytest.fixture(scope="session")
def _cdnow_table(cdnow_fitted) -> pd.DataFrame:
    return cdnow_fitted.score()


@pytest.fixture
def cdnow_table(_cdnow_table) -> pd.DataFrame:
    """Predictions of the 23,570 CDNOW customers at 1998-06-30 (a fresh copy)."""
    table = _cdnow_table.copy()
    table.attrs = dict(_cdnow_table.attrs)
    return table


@pytest.fixture(scope="session")
def cdnow_early_table(cdnow_tx, cdnow_fitted) -> pd.DataFrame:
    """The same fitted models scoring the 1997-12-31 snapshot."""
    return cdnow_fitted.score(
        rfm_table(cdnow_tx, observation_end=EARLY),
        btyd_summary(cdnow_tx, observation_end=EARLY, freq="W"),
    )


@pytest.fixture(scope="session")
def retail_by_country(online_retail_tx) -> pd.DataFrame:
    """Online Retail predictions per (customer_id, country)."""
    features = rfm_table(online_retail_tx, group="country")
    summary = btyd_summary(online_retail_tx, freq="D", group="country")
    return score_customers(
        features,
        summary,
        rule_segmenter=RuleSegmenter("rfm11").fit(features),
        kmeans_segmenter=KMeansSegmenter(n_clusters=3, random_state=0).fit(features),
        purchase_model=BetaGeoNBD().fit(summary),
        gamma_gamma=GammaGamma().fit(_spend_fit_rows(summary)),
        horizon=180,
        discount_rate=0.0003,
    )


def _same_prediction_files(a: Path, b: Path) -> None:
    """The predictions files in folders ``a`` and ``b`` are the same (but their creation time)."""
    left, right = pq.read_table(a / "predictions.parquet"), pq.read_table(b / "predictions.parquet")
    assert left.schema.equals(right.schema, check_metadata=True)
    for column in left.column_names:
        assert left[column].equals(right[column]), column
    assert (a / "predictions.csv").read_bytes() == (b / "predictions.csv").read_bytes()
    metas = [json.loads((d / "predictions.meta.json").read_text()) for d in (a, b)]
    for meta in metas:
        meta.pop("created")
    assert metas[0] == metas[1]


@pytest.fixture(scope="session")
def same_files():
    """:func:`_same_prediction_files`, for the streaming tests."""
    return _same_prediction_files
