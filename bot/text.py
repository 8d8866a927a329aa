"""Text from members: what counts as visible, and the control characters the bot never echoes.

Two different cleanings, on purpose:

* :func:`strip_bidi` removes the Unicode bidirectional controls (embeddings, overrides, isolates and
  marks). They make text render in a different order than it is stored, so a card, a reply or a
  mod-log line could be made to show something other than what was typed. Every text the bot echoes
  goes through it.
* :func:`has_visible_text` decides whether anything would show at all, ignoring whitespace, format
  characters (zero-width spaces and joiners, the BOM, soft hyphens, bidi controls), variation
  selectors and the "blank" letters that render as nothing. A prompt without anything visible is
  refused before any call or charge. Zero-width joiners *inside* a prompt are kept: emoji sequences
  such as 👩‍💻 need them.
"""

from __future__ import annotations

import unicodedata

from bot.errors import InvalidOptions

__all__ = ["BIDI_CONTROLS", "clean_prompt", "has_visible_text", "strip_bidi"]

BIDI_CONTROLS = frozenset(
    "\u061c"  # ARABIC LETTER MARK
    "\u200e\u200f"  # LEFT-TO-RIGHT / RIGHT-TO-LEFT MARK
    "\u202a\u202b\u202c\u202d\u202e"  # LRE, RLE, PDF, LRO, RLO
    "\u2066\u2067\u2068\u2069"  # LRI, RLI, FSI, PDI
)
_BIDI_TABLE = dict.fromkeys(map(ord, BIDI_CONTROLS))

# Letters and symbols that render as empty space (Hangul fillers, the blank Braille pattern).
_BLANK_LETTERS = frozenset("\u115f\u1160\u3164\uffa0\u2800")
_INVISIBLE_CATEGORIES = frozenset({"Cc", "Cf", "Zs", "Zl", "Zp"})

EMPTY_PROMPT = "The prompt is empty once spaces and invisible characters are removed. Describe the image you want."


def strip_bidi(text: str) -> str:
    """``text`` without bidirectional embedding, override, isolate and mark characters."""
    return text.translate(_BIDI_TABLE)


def _invisible(char: str) -> bool:
    if char.isspace() or char in _BLANK_LETTERS:
        return True
    if "\ufe00" <= char <= "\ufe0f" or "\U000e0100" <= char <= "\U000e01ef":  # variation selectors
        return True
    return unicodedata.category(char) in _INVISIBLE_CATEGORIES


def has_visible_text(text: str) -> bool:
    """Whether anything in ``text`` would be seen (see the module docstring for what is not)."""
    return not all(_invisible(char) for char in text)


def clean_prompt(text: str | None) -> str:
    """The prompt as the bot stores, sends and echoes it; :class:`InvalidOptions` if nothing is visible.

    Bidirectional controls are removed everywhere and invisible characters at either end are trimmed;
    what is left must contain something visible.
    """
    cleaned = strip_bidi(text or "")
    start, end = 0, len(cleaned)
    while start < end and _invisible(cleaned[start]):
        start += 1
    while end > start and _invisible(cleaned[end - 1]):
        end -= 1
    cleaned = cleaned[start:end]
    if not cleaned:
        raise InvalidOptions(EMPTY_PROMPT)
    return cleaned
