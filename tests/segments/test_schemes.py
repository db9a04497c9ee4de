from __future__ import annotations

import itertools

import pandas as pd
import pytest

from rfmml.errors import ConfigError, DataError
from rfmml.segments import Scheme, builtin_schemes, load_scheme

HIB, RISK, CANT = "Hibernating", "At Risk", "Can't Lose Them"
SLEEP, NEED, LOYAL = "About to Sleep", "Needs Attention", "Loyal"
PROM, NEW, POT, CHAMP = "Promising", "New Customers", "Potential Loyalists", "Champions"

# Issue 6, rf_grid: rows R = 5..1, columns F = 1..5.
RF_GRID = {
    5: [NEW, POT, POT, CHAMP, CHAMP],
    4: [PROM, POT, POT, LOYAL, LOYAL],
    3: [SLEEP, SLEEP, NEED, LOYAL, LOYAL],
    2: [HIB, HIB, RISK, RISK, CANT],
    1: [HIB, HIB, RISK, RISK, CANT],
}

# Issue 6, rfm11: rows R = 5..1, columns FM = 1..5.
RFM11 = {
    5: ["Recent Customers", "Potential Loyalists", "Loyal", "Champions", "Champions"],
    4: ["Promising", "Potential Loyalists", "Potential Loyalists", "Loyal", "Champions"],
    3: ["Promising", "Needs Attention", "Potential Loyalists", "Loyal", "Loyal"],
    2: ["About to Sleep", "Needs Attention", "Needs Attention", "At Risk", "At Risk"],
    1: ["Lost", "Hibernating", "At Risk", "Can't Lose Them", "Can't Lose Them"],
}


def _cells(col: str) -> pd.DataFrame:
    rows = list(itertools.product(range(1, 6), range(1, 6)))
    return pd.DataFrame(rows, columns=["R", col])


def test_builtin_schemes_are_listed():
    assert builtin_schemes() == ["rf_grid", "rfm11"]


def test_rf_grid_reproduces_the_table_cell_by_cell():
    scheme = load_scheme("rf_grid")
    cells = _cells("F")
    labels = scheme.label(cells)
    assert len(cells) == 25
    for (r, f), label in zip(cells.itertuples(index=False), labels, strict=True):
        assert label == RF_GRID[r][f - 1], (r, f)
    assert scheme.grid().to_numpy().tolist() == [RF_GRID[r] for r in range(5, 0, -1)]
    assert len(scheme.segments) == 10
    assert set(labels) == set(scheme.segment_names)


def test_rfm11_reproduces_the_table_cell_by_cell():
    scheme = load_scheme("rfm11")
    assert scheme.axes == ("R", "FM")
    cells = _cells("FM")
    labels = scheme.label(cells)
    for (r, fm), label in zip(cells.itertuples(index=False), labels, strict=True):
        assert label == RFM11[r][fm - 1], (r, fm)
    assert len(scheme.segments) == 11
    assert set(labels) == set(scheme.segment_names)


@pytest.mark.parametrize("name", ["rf_grid", "rfm11"])
def test_every_segment_has_a_description_and_an_action(name):
    segments = load_scheme(name).segments
    assert list(segments.columns) == ["description", "action"]
    assert segments.index.name == "segment"
    assert segments.apply(lambda col: col.str.len() > 0).all().all()
    assert segments.loc["Champions", "action"] == "VIP reward"
    assert "win-back offer" in set(segments["action"])


def test_label_returns_ordered_categories_aligned_to_the_input():
    scheme = load_scheme("rf_grid")
    scores = pd.DataFrame({"R": [1, 5], "F": [1, 5]}, index=pd.Index(["b", "a"], name="cid"))
    labels = scheme.label(scores)
    assert labels.name == "segment"
    assert labels.index.equals(scores.index)
    assert list(labels.cat.categories) == scheme.segment_names
    assert labels.tolist() == ["Hibernating", "Champions"]


def test_label_errors():
    scheme = load_scheme("rfm11")
    with pytest.raises(DataError, match=r"needs score column\(s\) \['FM'\]; available columns"):
        scheme.label(pd.DataFrame({"R": [1], "F": [1]}))
    with pytest.raises(DataError, match=r"'FM' has 2 of 3 values that are missing or not"):
        scheme.label(pd.DataFrame({"R": [1, 2, 3], "FM": [0, 6, 3]}))
    with pytest.raises(DataError, match=r"'R' has 1 of 2 values"):
        scheme.label(pd.DataFrame({"R": [None, 2], "FM": [1, 1]}))


CUSTOM = """
name = "two_tier"
n_scores = 3
default = "Others"

[[segments]]
name = "Best"
description = "Recent big spenders."
action = "VIP reward"

[[segments]]
name = "Others"
description = "Everyone else."
action = "newsletter"

[[rules]]
segment = "Best"
R = 3
M = [2, 3]

[[rules]]
segment = "Others"
R = 3
"""


def test_custom_scheme_first_match_wins_then_default(tmp_path):
    path = tmp_path / "two_tier.toml"
    path.write_text(CUSTOM)
    scheme = load_scheme(path)
    assert scheme.name == "two_tier"
    assert scheme.axes == ("R", "M")
    scores = pd.DataFrame({"R": [3, 3, 1, 2], "M": [3, 1, 3, 2]})
    assert scheme.label(scores).tolist() == ["Best", "Others", "Others", "Others"]
    assert load_scheme(str(path)).segment_names == ["Best", "Others"]
    assert load_scheme(scheme) is scheme


def _write(tmp_path, text: str):
    path = tmp_path / "scheme.toml"
    path.write_text(text)
    return path


def test_uncovered_cells_are_listed(tmp_path):
    text = CUSTOM.replace('default = "Others"\n', "")
    with pytest.raises(ConfigError, match=r"6 score cell\(s\) match no rule.*R1M1, R1M2"):
        load_scheme(_write(tmp_path, text))


@pytest.mark.parametrize(
    ("old", "new", "match"),
    [
        ("n_scores = 3", 'n_scores = 3\ncolour = "red"', r"unknown key\(s\) \['colour'\]"),
        ("M = [2, 3]", "X = [2, 3]", r"unknown key\(s\) \['X'\] in .*rules\[0\]; allowed"),
        ("M = [2, 3]", "M = [3, 2]", r"rules\[0\]\.M: range \[3, 2\] must satisfy"),
        ("M = [2, 3]", "M = [2, 4]", r"rules\[0\]\.M: range \[2, 4\] must satisfy"),
        ("M = [2, 3]", 'M = "high"', r"rules\[0\]\.M: expected a score or \[low, high\]"),
        ('segment = "Best"', 'segment = "Vip"', r"rules\[0\]\.segment 'Vip' is not declared"),
        ('default = "Others"', 'default = "Rest"', "default 'Rest' is not declared"),
        ('action = "newsletter"', 'action = ""', r"segments\[1\]\.action must be a non-empty"),
        ('action = "newsletter"', 'action = "x"\ncolor = 1', r"\['color'\] in .*segments\[1\]"),
        ('name = "Others"', 'name = "Best"', r"segments\.name repeated: \['Best'\]"),
        ("n_scores = 3", "n_scores = 1", "n_scores must be an integer in 2..20"),
    ],
)
def test_invalid_schemes_name_the_key(tmp_path, old, new, match):
    assert old in CUSTOM
    with pytest.raises(ConfigError, match=match):
        load_scheme(_write(tmp_path, CUSTOM.replace(old, new, 1)))


def test_load_errors(tmp_path):
    with pytest.raises(ConfigError, match=r"unknown scheme 'rfm12'; built-in schemes are"):
        load_scheme("rfm12")
    with pytest.raises(ConfigError, match="cannot read scheme file"):
        load_scheme(tmp_path / "missing.toml")
    with pytest.raises(ConfigError, match="is not valid TOML"):
        load_scheme(_write(tmp_path, "name = "))
    with pytest.raises(ConfigError, match="rules must be a non-empty list"):
        load_scheme(_write(tmp_path, CUSTOM.split("[[rules]]")[0]))


def test_grid_needs_two_axes(tmp_path):
    scheme = load_scheme(_write(tmp_path, CUSTOM.replace("M = [2, 3]\n", "")))
    assert scheme.axes == ("R",)
    with pytest.raises(ConfigError, match=r"uses 1 score keys \('R',\); grid\(\) needs exactly"):
        scheme.grid()


def test_scheme_from_dict():
    scheme = Scheme.from_dict(
        {
            "segments": [{"name": "All", "description": "Everyone.", "action": "newsletter"}],
            "rules": [{"segment": "All"}],
        }
    )
    assert scheme.label(pd.DataFrame({"R": [1, 5]})).tolist() == ["All", "All"]
