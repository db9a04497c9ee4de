"""The TOML helper shared by configs, schemes and playbooks."""

from __future__ import annotations

import datetime as dt
import tomllib

import pytest

from rfmml._toml import check_table, dumps
from rfmml.errors import ConfigError

SPEC = {"name": str, "n": int, "rate": float, "on": bool, "tags": list, "sub": dict,
        "maybe": (str, type(None))}  # fmt: skip


def test_dumps_reads_back_identically():
    table = {
        "name": 'quote " and \\ and é',
        "n": 3,
        "rate": 0.00026,
        "tiny": 1e-12,
        "on": False,
        "day": dt.date(1997, 9, 30),
        "dropped": None,
        "pair": [2, 8],
        "inline": {"R": [30, 60], "nested": {"method": "thresholds"}, "odd key": 1},
        "section": {"penalizer": 0.0, "zero_spend": "exclude"},
        "entries": [{"name": "a", "kind": "rules"}, {"name": "b", "n_clusters": "auto"}],
    }
    back = tomllib.loads(dumps(table))
    expected = {k: v for k, v in table.items() if v is not None}
    assert back == expected


@pytest.mark.parametrize(
    ("table", "message"),
    [
        ([1], r"\[x\] must be a table, got \[1\]"),
        ({"colour": 1}, r"unknown key\(s\) \['colour'\] in \[x\]; allowed: \['maybe', 'n', "),
        ({"n": True}, r"\[x\]\.n must be an integer, got True"),
        ({"n": 2.5}, r"\[x\]\.n must be an integer, got 2\.5"),
        ({"rate": "5%"}, r"\[x\]\.rate must be a number, got '5%'"),
        ({"on": 1}, r"\[x\]\.on must be true or false, got 1"),
        ({"sub": [1]}, r"\[x\]\.sub must be a table"),
        ({"maybe": 3}, r"\[x\]\.maybe must be text, got 3"),
        ({}, r"missing required key\(s\) \['name'\] in \[x\]"),
    ],
)
def test_check_table_names_the_key(table, message):
    with pytest.raises(ConfigError, match=message):
        check_table(table, SPEC, "[x]", required=("name",))


def test_check_table_accepts_ints_as_numbers_and_none_where_allowed():
    good = {"name": "a", "rate": 1, "maybe": None, "tags": [], "sub": {}}
    assert check_table(good, SPEC, "[x]", required=("name",)) == good
