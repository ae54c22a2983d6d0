"""Tests of transcript normalization."""

import pytest

from ent.text.normalize import normalize_text


@pytest.mark.parametrize(
    "raw, expected",
    [
        ("Hello, World!", "hello world"),
        ("  many   spaces\there \n", "many spaces here"),
        ("ﬁne ２ ＡＢ", "fine 2 ab"),  # NFKC: ligature, full-width digit and letters
        ("Don’t stop", "don't stop"),  # typographic apostrophe
        ("'tis rock'n'roll'", "tis rock'n'roll"),  # apostrophes at word edges go
        ("well-known, right? yes; no: \"quoted\"", "well known right yes no quoted"),
        ("yes [laughter] ok <noise> fine {breath}", "yes ok fine"),
        ("50% + $3", "50 3"),  # symbols become spaces
        ("Café NAÏVE", "café naïve"),
        ("", ""),
        ("[laughter]", ""),
        ("?!...", ""),
    ],
)
def test_rules(raw, expected):
    assert normalize_text(raw) == expected


def test_case_options():
    assert normalize_text("Hello World", case="upper") == "HELLO WORLD"
    assert normalize_text("Hello World", case="keep") == "Hello World"
    assert normalize_text("straße", case="upper") == "STRASSE"
    with pytest.raises(ValueError, match="case"):
        normalize_text("x", case="title")


def test_apostrophe_removal_joins_words():
    assert normalize_text("Don't you're", keep_apostrophe=False) == "dont youre"


def test_tags_kept_on_request():
    assert normalize_text("a [laughter] b", remove_tags=False) == "a laughter b"


def test_protected_symbols_survive():
    out = normalize_text("Yes<noise>OK [laughter]", keep=["<noise>"])
    assert out == "yes <noise> ok"


@pytest.mark.parametrize("raw", ["Don’t [noise] stop, rock'n'roll!", "ǅ ﬃ straße İstanbul", "a '' b ' c"])
@pytest.mark.parametrize("case", ["lower", "upper", "keep"])
def test_idempotent(raw, case):
    once = normalize_text(raw, case=case)
    assert normalize_text(once, case=case) == once
