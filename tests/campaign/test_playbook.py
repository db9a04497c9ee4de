from __future__ import annotations

import pytest

from rfmml.campaign import Playbook, PlaybookEntry, load_playbook
from rfmml.errors import ConfigError
from rfmml.segments import builtin_schemes, load_scheme

MINIMAL = 'name = "mine"\n[default]\naction = "newsletter"\n'


@pytest.mark.parametrize("scheme_name", ["rf_grid", "rfm11"])
def test_shipped_playbook_covers_every_builtin_segment(scheme_name):
    playbook = load_playbook(None)
    scheme = load_scheme(scheme_name)
    for segment in scheme.segment_names:
        assert segment in playbook.entries, segment  # an entry, not a fallback
        entry = playbook.entry(segment, scheme)
        assert entry.action.strip() and entry.channel.strip() and entry.priority >= 1


def test_builtin_schemes_are_the_two_covered():
    assert builtin_schemes() == ["rf_grid", "rfm11"]


def test_fallback_order(tmp_path):
    path = tmp_path / "book.toml"
    path.write_text(MINIMAL + '[segments."Champions"]\naction = "gift"\npriority = 2\n')
    playbook = load_playbook(path)
    scheme = load_scheme("rf_grid")
    # 1. the playbook entry; channel from the default when omitted
    assert playbook.entry("Champions", scheme) == PlaybookEntry("gift", "", 2)
    # 2. the scheme's own recommended action
    assert playbook.action("At Risk", scheme) == scheme.segments.loc["At Risk", "action"]
    # 3. the default
    assert playbook.action("At Risk") == "newsletter"
    assert playbook.action("Martians", scheme) == "newsletter"
    frame = playbook.to_frame()
    assert list(frame.index) == ["Champions", "(default)"]
    assert list(frame.columns) == ["action", "channel", "priority"]


def test_load_playbook_passes_a_playbook_through():
    playbook = Playbook(default=PlaybookEntry("x", "email", 3))
    assert load_playbook(playbook) is playbook


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('colour = "red"\n' + MINIMAL, r"unknown key\(s\) \['colour'\]"),
        ('name = "x"\n', r"a \[default\] table with at least an action is required"),
        ("name = 3\n" + MINIMAL.split("\n", 1)[1], "name must be text"),
        ('[default]\naction = ""\n', "default.action must be non-empty text"),
        (MINIMAL + '[segments."At Risk"]\naction = "call"\npriority = 0\n',
         r'segments\."At Risk"\.priority must be an integer >= 1'),
        (MINIMAL + '[segments."At Risk"]\naction = "call"\npriority = true\n',
         r'segments\."At Risk"\.priority must be an integer'),
        (MINIMAL + '[segments."Lost"]\nchannel = "email"\n',
         r'segments\."Lost"\.action must be non-empty text'),
        (MINIMAL + '[segments."Lost"]\naction = "x"\nbudget = 3\n',
         r"unknown key\(s\) \['budget'\] in .*segments\.\"Lost\"; allowed: \["),
        (MINIMAL + '[segments."Lost"]\naction = "x"\nchannel = 5\n',
         r'segments\."Lost"\.channel must be text'),
        ('segments = 3\n' + MINIMAL, "segments must be tables"),
        (MINIMAL + '[segments]\nLost = "x"\n', r'segments\."Lost" must be a table'),
        ("[default\n", "is not valid TOML"),
    ],
)  # fmt: skip
def test_invalid_playbooks_name_the_bad_key(tmp_path, text, message):
    path = tmp_path / "book.toml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=message):
        load_playbook(path)


def test_unreadable_playbook(tmp_path):
    with pytest.raises(ConfigError, match="cannot read playbook file"):
        load_playbook(tmp_path / "missing.toml")
    with pytest.raises(ConfigError, match="a playbook must be a table"):
        Playbook.from_dict([1, 2])


def test_custom_playbook_drives_the_table(cdnow_fitted, tmp_path):
    path = tmp_path / "book.toml"
    path.write_text(MINIMAL + '[segments."Champions"]\naction = "=cmd gift"\nchannel = "sms"\n')
    table = cdnow_fitted.score(
        playbook=path, kmeans_segmenter=None, purchase_model=None, gamma_gamma=None
    )
    champions = table[table["segment"] == "Champions"]
    assert (champions["action"] == "=cmd gift").all()
    assert (champions["action_channel"] == "sms").all()
    at_risk = table[table["segment"] == "At Risk"]
    assert (at_risk["action"] == "win-back offer").all()  # rf_grid's own action
    assert table.attrs["playbook"] == str(path)
