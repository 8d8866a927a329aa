import pytest

from bot.errors import InvalidOptions
from bot.text import BIDI_CONTROLS, EMPTY_PROMPT, clean_prompt, has_visible_text, strip_bidi

INVISIBLE_ONLY = [
    "",
    "   \t\n",
    "\u200b\u200b\u200b",  # zero-width spaces
    "\u200c\u200d\u2060\ufeff",  # ZWNJ, ZWJ, word joiner, BOM
    "\u202e\u202d\u2066\u2069\u200e\u200f",  # bidi overrides, isolates, marks
    "\u3164\u3164",  # Hangul filler (renders as nothing)
    "\u2800",  # blank Braille pattern
    "\u00ad\u180e",  # soft hyphen, Mongolian vowel separator
    "\ufe0f\u00a0\u3000",  # a lone variation selector, no-break and ideographic spaces
]


@pytest.mark.parametrize("text", INVISIBLE_ONLY)
def test_a_prompt_with_nothing_visible_is_refused(text):
    assert not has_visible_text(text)
    with pytest.raises(InvalidOptions) as info:
        clean_prompt(text)
    assert info.value.user_message == EMPTY_PROMPT


def test_bidi_controls_are_removed_everywhere_and_invisible_edges_trimmed():
    assert clean_prompt("\u200b  a \u202efox\u202c in snow \u2066\u200b") == "a fox in snow"


def test_joiners_inside_a_prompt_are_kept_for_emoji_sequences():
    programmer = "\U0001f469\u200d\U0001f4bb"  # woman technologist: two emoji and a zero-width joiner
    assert clean_prompt(f"a {programmer} at work") == f"a {programmer} at work"


def test_strip_bidi_removes_exactly_the_bidi_controls():
    text = "".join(sorted(BIDI_CONTROLS)) + "abc\u200d"
    assert strip_bidi(text) == "abc\u200d"
    assert len(BIDI_CONTROLS) == 12


@pytest.mark.parametrize("text", ["x", "猫", "🦊", " . "])
def test_visible_text(text):
    assert has_visible_text(text)
    assert clean_prompt(text) == text.strip()
