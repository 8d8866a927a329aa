"""Blocked-word matching: whole words, after normalisation, resisting simple evasion."""

import pytest

from bot.safety.matching import MAX_RULE_LENGTH, find_rule, normalize, parse_rules


@pytest.mark.parametrize(
    "prompt",
    [
        "a photo of a Dragon",
        "a photo of a DRAGON!",
        "ａ ｄｒａｇｏｎ",  # full-width (NFKC)
        "a dr\u200bag\u200don",  # zero-width space and joiner
        "a d r a g o n",  # spelled out
        "a d.r.a.g.o.n",
        "a drаgоn",  # Cyrillic а and о
        "a dr4g0n",  # digits for letters
        "a drágón",  # accents
        "a dragon\u00ad",  # soft hyphen
    ],
)
def test_a_rule_matches_through_simple_evasion(prompt):
    assert find_rule(prompt, ["dragon"]) == "dragon"


@pytest.mark.parametrize("prompt", ["dragonfly wings", "snapdragon flowers", "a drag on the road", "4 dogs"])
def test_a_rule_matches_whole_words_only(prompt):
    assert find_rule(prompt, ["dragon", "dog"]) is None


def test_phrases_match_across_repeated_spaces_and_punctuation():
    rules = parse_rules("red  panda, Blue Whale")
    assert rules == ["red panda", "blue whale"]
    assert find_rule("a RED    panda at dusk", rules) == "red panda"
    assert find_rule("a blue-whale", rules) == "blue whale"
    assert find_rule("a red and a panda", rules) is None


def test_normalize_keeps_numbers_and_punctuation_that_are_not_letters():
    assert normalize("4 cats!") == "4 cats"
    assert normalize("B@D W0RD") == "bad word"
    assert normalize("\u202eevil\u202c") == "evil"  # bidi controls are invisible format characters


def test_parse_rules_drops_empties_and_duplicates_and_refuses_long_ones():
    assert parse_rules(" , Cat,cat , ,ＣＡＴ") == ["cat"]
    with pytest.raises(ValueError, match=str(MAX_RULE_LENGTH)):
        parse_rules("x" * (MAX_RULE_LENGTH + 1))
