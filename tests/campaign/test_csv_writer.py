"""The chunked CSV writer writes the bytes pandas' ``to_csv`` writes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from rfmml.campaign import exports
from rfmml.campaign.exports import neutralize_cells, to_safe_csv


def _pandas_bytes(frame: pd.DataFrame, path: Path) -> bytes:
    safe = neutralize_cells(exports._tidy_ids(exports._flat(frame)))
    safe.to_csv(path, index=False, encoding="utf-8", lineterminator="\r\n",
                float_format=exports._CSV_FLOAT)  # fmt: skip
    return path.read_bytes()


def _frame(n: int) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    floats = rng.lognormal(0, 4, n) * rng.choice([-1, 1], n)
    floats[::7] = np.nan
    floats[1] = np.inf
    floats[2] = 1e-300
    floats[3] = 100.50000000000001
    text = rng.choice(["plain", 'say "hi"', "a,b", "line\nbreak", "cr\rret", "=1+2", "é ü"], n)
    return pd.DataFrame(
        {
            "customer_id": rng.integers(0, 10**12, n),
            "order_id": np.where(np.arange(n) % 5 == 0, np.nan, np.arange(n, dtype=float)),
            "value": floats,
            "flag": rng.random(n) > 0.5,
            "note": pd.Series(text, dtype="str"),
            "segment": pd.Categorical(rng.choice(["Lost", "Champions", "At Risk"], n)),
            "count": pd.array(np.where(np.arange(n) % 3 == 0, None, np.arange(n)), dtype="Int64"),
        }
    )


@pytest.mark.parametrize("n", [4, 50, 450_001])
def test_same_bytes_as_pandas(tmp_path: Path, n: int, monkeypatch: pytest.MonkeyPatch) -> None:
    frame = _frame(n)
    assert exports._write_csv_fast(neutralize_cells(exports._tidy_ids(frame)),
                                   tmp_path / "probe.csv")  # fmt: skip
    fast = to_safe_csv(frame, tmp_path / "fast.csv").read_bytes()
    assert fast == _pandas_bytes(frame, tmp_path / "pandas.csv")


def test_kinds_left_to_pandas_still_match(tmp_path: Path) -> None:
    frame = pd.DataFrame(
        {
            "customer_id": [1, 2],
            "when": pd.to_datetime(["2020-01-01 00:00", "2020-01-02 10:00"]),
            "mixed": [1, "a"],
        }
    )
    assert not exports._write_csv_fast(frame, tmp_path / "probe.csv")
    fast = to_safe_csv(frame, tmp_path / "fast.csv").read_bytes()
    assert fast == _pandas_bytes(frame, tmp_path / "pandas.csv")
