"""The chunked Parquet writer reads back as the frame ``to_parquet`` writes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

from rfmml.campaign import _parquet


def _frame(n: int) -> pd.DataFrame:
    rng = np.random.default_rng(2)
    return pd.DataFrame(
        {
            "customer_id": rng.integers(0, 10**9, n),
            "value": np.where(np.arange(n) % 5 == 0, np.nan, rng.random(n)),
            "segment": pd.Categorical(rng.choice(["Lost", "Loyal"], n), ["Loyal", "Lost"]),
            "band": pd.Categorical(
                rng.choice(["low", "high"], n), categories=["low", "high"], ordered=True
            ),  # fmt: skip
            "text": pd.Series(rng.choice(["a", "b", None], n), dtype="str"),
            "count": pd.array(np.where(np.arange(n) % 3 == 0, None, np.arange(n)), dtype="Int64"),
            "when": pd.Timestamp("2024-01-01") + pd.to_timedelta(np.arange(n) % 40, unit="D"),
        }
    )


@pytest.mark.parametrize("n", [5, 23])
def test_reads_back_as_to_parquet(tmp_path: Path, n: int) -> None:
    frame = _frame(n)
    frame.to_parquet(tmp_path / "whole.parquet", index=False)
    _parquet.write_parquet(frame, tmp_path / "chunks.parquet", chunk_rows=4)
    whole = pd.read_parquet(tmp_path / "whole.parquet")
    chunks = pd.read_parquet(tmp_path / "chunks.parquet")
    pd.testing.assert_frame_equal(chunks, whole, check_exact=True)
    assert (pq.read_schema(tmp_path / "chunks.parquet").metadata[b"pandas"]
            == pq.read_schema(tmp_path / "whole.parquet").metadata[b"pandas"])  # fmt: skip
    groups = pq.ParquetFile(tmp_path / "chunks.parquet").num_row_groups
    assert groups == -(-n // 4)


def test_types_unknown_in_the_first_chunk(tmp_path: Path) -> None:
    frame = pd.DataFrame({"note": [None] * 4 + ["x", "y"]}, dtype=object)
    frame.to_parquet(tmp_path / "whole.parquet", index=False)
    _parquet.write_parquet(frame, tmp_path / "chunks.parquet", chunk_rows=4)  # falls back
    whole = pd.read_parquet(tmp_path / "whole.parquet")
    pd.testing.assert_frame_equal(pd.read_parquet(tmp_path / "chunks.parquet"), whole)
    assert whole["note"].tolist()[4:] == ["x", "y"]
