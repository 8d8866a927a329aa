"""Blocked words and phrases: matching that survives simple evasion.

Both the rule and the prompt go through :func:`normalize`: Unicode NFKC, case folding, accents and
invisible characters (zero-width spaces, joiners, soft hyphens, bidi controls) removed, common
look-alike letters (Cyrillic and Greek homoglyphs, a few digit and symbol substitutes) mapped to
Latin, and every run of punctuation or spacing collapsed to one space. A rule then matches on whole
words only: ``cat`` matches "a CAT!" and "ｃａｔ" but not "catalogue". Letters spelled out one by one
("c a t", "c.a.t") are joined and searched as well.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable

__all__ = ["MAX_RULE_LENGTH", "find_rule", "normalize", "parse_rules"]

MAX_RULE_LENGTH = 100
_LOOKALIKES = str.maketrans(
    {
        # Cyrillic
        "а": "a", "в": "b", "е": "e", "ё": "e", "к": "k", "м": "m", "н": "h", "о": "o", "р": "p",
        "с": "c", "т": "t", "у": "y", "х": "x", "і": "i", "ї": "i", "ј": "j", "ѕ": "s", "ԁ": "d",
        "ɡ": "g", "ԛ": "q", "ԝ": "w",
        # Greek
        "α": "a", "β": "b", "ε": "e", "η": "n", "ι": "i", "κ": "k", "ν": "v", "ο": "o", "ρ": "p",
        "τ": "t", "υ": "u", "χ": "x", "ω": "w", "ς": "s", "σ": "s",
        # Latin look-alikes that NFKC keeps
        "ı": "i", "ł": "l", "ø": "o", "đ": "d", "ß": "ss",
    }
)  # fmt: skip
# Digits and symbols standing in for letters, replaced only inside a word that has letters ("b4d",
# "b@d"), so "4 cats" or "cat!" stay what they are.
_SUBSTITUTES = str.maketrans({"0": "o", "1": "i", "3": "e", "4": "a", "5": "s", "7": "t", "@": "a", "$": "s"})
_INNER_SYMBOL = re.compile(r"(?<=[^\W_])[@$!|](?=[^\W_])")
_SEPARATORS = re.compile(r"[\W_]+")


def normalize(text: str) -> str:
    """``text`` as rules and prompts are compared: see the module docstring."""
    folded = unicodedata.normalize("NFKC", text).casefold()
    # Accents off (é → e), then invisible format characters (category Cf: ZWSP, ZWJ, bidi marks…) out.
    decomposed = unicodedata.normalize("NFKD", folded)
    kept = "".join(ch for ch in decomposed if unicodedata.category(ch) not in {"Mn", "Cf"})
    tokens = []
    for token in kept.translate(_LOOKALIKES).split():
        if any(ch.isalpha() for ch in token):
            token = _INNER_SYMBOL.sub(lambda m: {"!": "i", "|": "l"}.get(m[0], m[0]), token).translate(_SUBSTITUTES)
        tokens.append(token)
    return " ".join(_SEPARATORS.sub(" ", " ".join(tokens)).split())


def _spelled_runs(words: list[str]) -> list[str]:
    """Runs of two or more single letters, joined: ``a d r a g o n`` → ``adragon``."""
    runs: list[str] = []
    run: list[str] = []
    for word in [*words, ""]:
        if len(word) == 1:
            run.append(word)
            continue
        if len(run) >= 2:
            runs.append("".join(run))
        run = []
    return runs


def find_rule(prompt: str, rules: Iterable[str]) -> str | None:
    """The first rule (already normalized) the prompt matches, or None.

    A rule matches as whole words, or inside a run of letters spelled out one by one (where there
    are no word boundaries left to respect).
    """
    words = normalize(prompt).split()
    haystack = f" {' '.join(words)} "
    spelled = "|".join(_spelled_runs(words))  # "|" never occurs in a normalized rule
    for rule in rules:
        if not rule:
            continue
        if f" {rule} " in haystack or (spelled and rule.replace(" ", "") in spelled):
            return rule
    return None


def parse_rules(text: str) -> list[str]:
    """Comma-separated words or phrases, normalized, empty ones dropped, duplicates removed (order kept).

    Raises :class:`ValueError` naming a rule that is too long.
    """
    rules: list[str] = []
    for part in text.split(","):
        rule = normalize(part)
        if not rule:
            continue
        if len(rule) > MAX_RULE_LENGTH:
            raise ValueError(f"a word or phrase is at most {MAX_RULE_LENGTH} characters")
        if rule not in rules:
            rules.append(rule)
    return rules
