"""What a user notices first: counts, float noise, notes and names."""

from __future__ import annotations

import re

import pandas as pd
from rich.console import Console

from rfmml.campaign.exports import hash_customer_ids, to_safe_csv
from rfmml.cli import _table
from rfmml.data import read_transactions
from rfmml.segments import load_scheme


def _render(frame: pd.DataFrame) -> str:
    console = Console(width=200, record=True)
    console.print(_table(frame))
    return console.export_text()


def test_counts_print_as_integers_beside_floats():
    frame = pd.DataFrame(
        {"silhouette": [0.41234, 0.3], "n_segments": [4.0, 10.0], "customers": [2357, 23570]},
        index=pd.Index(["rf_grid", "rfm11"], name="segmentation"),
    )
    text = _render(frame)
    assert re.search(r"│\s+4 │", text) and "10 │" in text and "23,570" in text
    assert "4.000" not in text and "0.412" in text


def test_csv_has_no_float_noise_and_float_ids_are_integers(tmp_path):
    frame = pd.DataFrame({"customer_id": [12346.0, 17850.0], "clv": [100.50000000000001, 1e-7]})
    to_safe_csv(frame, tmp_path / "t.csv")
    lines = (tmp_path / "t.csv").read_text().splitlines()
    assert lines[1:] == ["12346,100.5", "17850,1e-07"]
    # a float id hashes as the integer it stands for
    assert hash_customer_ids([12346.0], "s").iloc[0] == hash_customer_ids([12346], "s").iloc[0]


def test_time_zone_notes_read_as_sentences():
    stamps = pd.to_datetime(["2024-01-01 23:30"]).tz_localize("Asia/Tokyo")
    _, report = read_transactions(
        pd.DataFrame({"customer_id": [1], "timestamp": stamps, "amount": [1.0]})
    )
    assert report.notes == ["timestamps in time zone Asia/Tokyo converted to its wall-clock time"]
    offsets = pd.DataFrame(
        {"customer_id": [1, 1], "timestamp": ["2021-03-27T23:30:00+00:00",
                                              "2021-03-29T00:30:00+01:00"], "amount": [1.0, 2.0]}
    )  # fmt: skip
    _, report = read_transactions(offsets)
    assert report.notes == ["timestamps with several UTC offsets kept at their own wall-clock time"]


def test_schemes_spell_each_segment_one_way():
    names = set(load_scheme("rf_grid").segment_names) | set(load_scheme("rfm11").segment_names)

    def stem(name: str) -> str:
        return re.sub(r"s\b", "", name.lower())

    by_stem: dict[str, set[str]] = {}
    for name in names:
        by_stem.setdefault(stem(name), set()).add(name)
    assert {k: v for k, v in by_stem.items() if len(v) > 1} == {}
    assert {"Needs Attention", "Potential Loyalists"} <= names
