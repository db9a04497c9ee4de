"""The streamed scoring's overlapped work: the model's outputs and the segments on the pool."""

from __future__ import annotations

import warnings
from pathlib import Path

import pandas as pd
import pytest

from rfmml._threads import THREADS_ENV
from rfmml.campaign import ScoringPipeline, scoring_frame, write_predictions
from rfmml.campaign.scoring import segment_columns
from rfmml.campaign.streaming import _distinct_pairs, fit_on_table, score_features_table
from rfmml.data import load_cdnow
from rfmml.data._scan import ScannedLog
from rfmml.features import customer_features
from rfmml.features.combined import customer_features_table
from rfmml.models import BetaGeoNBD, GammaGamma
from rfmml.segments import KMeansSegmenter, RuleSegmenter


@pytest.fixture(scope="module")
def cdnow():
    tx, freq = load_cdnow(), "W"
    log = ScannedLog.from_pandas(tx)
    features, summary = customer_features(log, freq=freq)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        models = {
            "rules": RuleSegmenter("rfm11").fit(features),
            "kmeans": KMeansSegmenter(n_clusters=3, random_state=0).fit(features),
            "purchase": BetaGeoNBD().fit(summary),
            "gg": GammaGamma(zero_spend="exclude").fit(summary),
        }
    yield log, features, summary, models, freq
    log.close()


@pytest.mark.parametrize("threads", ["1", "2"])
@pytest.mark.parametrize("spend", [True, False], ids=["gamma-gamma", "no-spend-model"])
def test_overlapped_chunks_write_the_pandas_files(same_files, cdnow, tmp_path: Path, monkeypatch,
                                                  threads: str, spend: bool) -> None:  # fmt: skip
    """One thread (everything in order) or two (segments on the pool): the pandas path's files."""
    log, features, summary, m, freq = cdnow
    monkeypatch.setenv(THREADS_ENV, threads)
    pipeline = ScoringPipeline(
        rule_segmenter=m["rules"], kmeans_segmenter=m["kmeans"], purchase_model=m["purchase"],
        gamma_gamma=m["gg"] if spend else None, horizon=26, freq=freq, next_order_window=6,
    )  # fmt: skip
    write_predictions(pipeline.predict(scoring_frame(features, summary)), tmp_path / "pandas",
                      fingerprints={})  # fmt: skip
    table = customer_features_table(log, freq=freq, table=f"t{threads}{int(spend)}")
    # chunks of 997 customers: the first one waits for the outputs, every one for its segments
    got = score_features_table(table, pipeline, tmp_path / "streamed", fingerprints={},
                               chunk_rows=997)  # fmt: skip
    table.drop()
    assert got.streamed and got.n_rows == len(features)
    same_files(tmp_path / "pandas", tmp_path / "streamed")


def test_a_segment_part_computed_apart_is_the_one_computed_in_place(cdnow) -> None:
    from rfmml.campaign.playbook import load_playbook
    from rfmml.campaign.scoring import _score_customers

    _, features, summary, m, _ = cdnow
    book = load_playbook(None)
    options = dict(rule_segmenter=m["rules"], kmeans_segmenter=m["kmeans"],
                   purchase_model=m["purchase"], gamma_gamma=m["gg"], book=book)  # fmt: skip
    part = segment_columns(features, m["rules"], m["kmeans"], book)
    calls: list[int] = []

    def given():
        calls.append(1)
        return part

    apart = _score_customers(features, summary, segment_part=given, **options)
    in_place = _score_customers(features, summary, **options)
    assert calls == [1]
    pd.testing.assert_frame_equal(apart, in_place, check_exact=True)
    assert apart.attrs == in_place.attrs
    with pytest.raises(ValueError, match="needs the loaded playbook"):
        segment_columns(features, m["rules"], None, None)


def test_distinct_pairs_from_the_fit_rows_equal_the_statement(cdnow) -> None:
    log, _, _, _, freq = cdnow
    table = customer_features_table(log, freq=freq, table="pairs")
    statement = _distinct_pairs(table)  # nothing left by a fit: DuckDB counts them
    assert not table.distinct_rows
    fit_on_table(BetaGeoNBD(), table)  # leaves its distinct (frequency, recency, T) rows
    assert any({"frequency", "T"} <= set(k) for k in table.distinct_rows)
    assert _distinct_pairs(table) == statement
    count = table.connection.sql(
        'SELECT count(*) FROM (SELECT DISTINCT frequency, "T" FROM pairs)'
    ).fetchall()[0][0]
    assert statement == count
    table.drop()


@pytest.mark.parametrize("threads", ["1", "2"])
def test_a_failing_first_chunk_leaves_no_folder(cdnow, tmp_path: Path, monkeypatch,
                                                threads: str) -> None:  # fmt: skip
    """The segments' error (computed on the pool) is raised before any file is opened."""
    log, features, _, m, freq = cdnow
    monkeypatch.setenv(THREADS_ENV, threads)
    wider = features.assign(web_visits=features["recency_days"] + 1.0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        kmeans = KMeansSegmenter(
            n_clusters=3,
            random_state=0,
            features=("recency_days", "n_orders", "web_visits"),
            log_features=("n_orders",),
        ).fit(wider)
    pipeline = ScoringPipeline(rule_segmenter=m["rules"], kmeans_segmenter=kmeans,
                               purchase_model=m["purchase"], horizon=26, freq=freq)  # fmt: skip
    table = customer_features_table(log, freq=freq, table=f"failing{threads}")
    with pytest.raises(Exception, match="web_visits"):
        score_features_table(table, pipeline, tmp_path / "out", fingerprints={}, chunk_rows=997)
    table.drop()
    assert not (tmp_path / "out").exists()
