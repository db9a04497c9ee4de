"""Writes replace whole files and folders: a failure midway keeps the previous version."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from sklearn.exceptions import NotFittedError

from rfmml._documents import replacing
from rfmml.campaign import ScoringPipeline, scoring_frame
from rfmml.errors import DataError
from rfmml.features import btyd_summary, rfm_table
from rfmml.models import BetaGeoNBD
from rfmml.segments import KMeansSegmenter


def test_a_failed_write_leaves_the_previous_file_whole(tmp_path):
    target = tmp_path / "comparison.csv"
    with replacing(target) as temporary:
        temporary.write_text("segmentation,rank\nrf_grid,1\n")
    with pytest.raises(RuntimeError, match="interrupted"), replacing(target) as temporary:
        temporary.write_text("segmentation,ra")  # half a file, then the failure
        raise RuntimeError("interrupted")
    assert target.read_text() == "segmentation,rank\nrf_grid,1\n"
    assert [p.name for p in tmp_path.iterdir()] == ["comparison.csv"]


def test_a_failed_pipeline_save_leaves_the_previous_pipeline_whole(cdnow_fitted, tmp_path):
    f = cdnow_fitted
    good = ScoringPipeline(
        rule_segmenter=f.rules, kmeans_segmenter=f.kmeans, purchase_model=f.bgnbd,
        gamma_gamma=f.gamma_gamma, freq="W", observation_end="1998-06-30",
    )  # fmt: skip
    folder = good.save(tmp_path / "model")
    before = {p.name: p.read_bytes() for p in folder.iterdir()}
    # the rule segmenter is written, then the unfitted k-means segmenter fails
    broken = ScoringPipeline(rule_segmenter=f.rules, kmeans_segmenter=KMeansSegmenter(),
                             purchase_model=f.bgnbd, freq="W")  # fmt: skip
    with pytest.raises(NotFittedError):
        broken.save(folder)
    assert {p.name: p.read_bytes() for p in folder.iterdir()} == before
    assert [p.name for p in tmp_path.iterdir()] == ["model"]  # no temporary folder left
    frame = scoring_frame(f.features, f.summary)
    pd.testing.assert_frame_equal(ScoringPipeline.load(folder).predict(frame), good.predict(frame))


def test_transactions_need_an_observation_end(cdnow_tx):
    tx = cdnow_tx[cdnow_tx["customer_id"] <= 300][["customer_id", "timestamp"]]
    summary = btyd_summary(tx, observation_end="1998-06-30", freq="W")
    pipeline = ScoringPipeline(purchase_model=BetaGeoNBD().fit(summary), freq="W")
    with pytest.raises(DataError, match="this pipeline stores none"):
        pipeline.predict(tx)
    by_date = pipeline.predict(tx, observation_end="1998-06-30")
    features = scoring_frame(rfm_table(tx, observation_end="1998-06-30"), summary)
    pd.testing.assert_frame_equal(by_date, pipeline.predict(features))
    assert "total_spend" not in by_date.columns and "clv" not in by_date.columns


def test_one_observation_end_for_transactions_and_next_order_dates(cdnow_tx, tmp_path):
    tx = cdnow_tx[cdnow_tx["customer_id"] <= 300][["customer_id", "timestamp"]]
    summary = btyd_summary(tx, observation_end="1998-06-30", freq="W")
    model = BetaGeoNBD().fit(summary)
    pipeline = ScoringPipeline(purchase_model=model, freq="W",
                               observation_end=pd.Timestamp("1998-06-30"))  # fmt: skip
    assert pipeline.observation_end == "1998-06-30"  # an ISO date, whatever was passed
    folder = pipeline.save(tmp_path / "model")
    # a pipeline saved with the time of day (an earlier format) loads to the same date
    settings = (folder / "pipeline.json").read_text()
    assert '"observation_end": "1998-06-30"' in settings
    (folder / "pipeline.json").write_text(settings.replace('"1998-06-30"', '"1998-06-30T00:00:00"'))
    loaded = ScoringPipeline.load(folder)
    assert loaded.observation_end == "1998-06-30"
    from_tx = loaded.predict(tx)
    features = scoring_frame(rfm_table(tx, observation_end="1998-06-30"), summary)
    from_features = ScoringPipeline(purchase_model=model, freq="W").predict(features)
    pd.testing.assert_frame_equal(from_tx, from_features, check_like=True)
    if "expected_next_order_date" in from_tx.columns:
        assert from_tx["expected_next_order_date"].dropna().min() >= pd.Timestamp("1998-06-30")


def test_writing_to_a_device_or_pipe_writes_through_it_and_keeps_it(tmp_path):
    """``-o /dev/null`` (or a named pipe) is written to, never renamed over."""
    import os
    import stat
    import threading

    fifo = tmp_path / "out.csv"
    os.mkfifo(fifo)
    received: list[bytes] = []
    reader = threading.Thread(target=lambda: received.append(fifo.read_bytes()), daemon=True)
    reader.start()
    with replacing(fifo) as temporary:
        temporary.write_text("customer_id,segment\n1,Champions\n")
    reader.join(timeout=10)
    assert received == [b"customer_id,segment\n1,Champions\n"]
    assert stat.S_ISFIFO(fifo.stat().st_mode)  # still the pipe, not a regular file
    assert [p.name for p in tmp_path.iterdir()] == ["out.csv"]


def test_a_link_to_a_file_keeps_the_link_and_replaces_the_file(tmp_path):
    real = tmp_path / "data" / "table.csv"
    real.parent.mkdir()
    real.write_text("old\n")
    link = tmp_path / "latest.csv"
    link.symlink_to(real)
    with replacing(link) as temporary:
        temporary.write_text("new\n")
    assert link.is_symlink() and link.resolve() == real.resolve()
    assert real.read_text() == "new\n"
    assert sorted(p.name for p in real.parent.iterdir()) == ["table.csv"]


@pytest.mark.skipif(not Path("/proc/self/fd/1").exists(), reason="needs /proc/self/fd")
def test_a_link_to_standard_output_redirected_to_a_file_is_written_through(tmp_path):
    """``-o /dev/stdout > file``: the stream gets the bytes; the link is never replaced."""
    import subprocess
    import sys

    link = tmp_path / "stdout-link"
    link.symlink_to("/proc/self/fd/1")  # what /dev/stdout is
    script = (
        "import sys\n"
        "from rfmml._documents import replacing\n"
        f"with replacing({str(link)!r}) as temporary:\n"
        "    temporary.write_text('a,b\\n1,2\\n')\n"
    )
    with open(tmp_path / "captured.txt", "wb") as captured:
        subprocess.run([sys.executable, "-c", script], stdout=captured, check=True, timeout=60)
    assert (tmp_path / "captured.txt").read_text() == "a,b\n1,2\n"
    assert link.is_symlink()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["captured.txt", "stdout-link"]
