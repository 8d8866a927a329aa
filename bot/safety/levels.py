"""One safety dial, mapped onto each model family's ``safety_tolerance`` range.

BFL's ranges differ by family (0 is strictest everywhere): FLUX.1 and Kontext 0–6, FLUX.2 0–5,
FLUX 3 0–4, each with the API default 2. ``standard`` is that default; ``strict`` is 0;
``relaxed`` is 4 (FLUX 3: 3), one step short of each family's loosest value, and is only ever
applied in age-restricted channels.

Some models apply less than they are sent: FLUX 3 caps ``safety_tolerance`` at 2 when input images
are attached, whatever the request says (:attr:`bot.models.ModelSpec.image_safety_max`). The bot sends
and shows what the model applies (:func:`applied_tolerance`), never a value it would silently lower.
"""

from __future__ import annotations

import enum

__all__ = ["DEFAULT_TOLERANCE", "RANGES", "SafetyLevel", "applied_tolerance", "tolerance_for"]

DEFAULT_TOLERANCE = 2  # BFL's default for every family


class SafetyLevel(enum.StrEnum):
    """How strict the image provider's own filter is asked to be."""

    STRICT = "strict"
    STANDARD = "standard"
    RELAXED = "relaxed"


RANGES: dict[str, tuple[int, int]] = {"flux1": (0, 6), "flux2": (0, 5), "flux3": (0, 4)}
_TOLERANCE: dict[str, dict[SafetyLevel, int]] = {
    "flux1": {SafetyLevel.STRICT: 0, SafetyLevel.STANDARD: 2, SafetyLevel.RELAXED: 4},
    "flux2": {SafetyLevel.STRICT: 0, SafetyLevel.STANDARD: 2, SafetyLevel.RELAXED: 4},
    "flux3": {SafetyLevel.STRICT: 0, SafetyLevel.STANDARD: 2, SafetyLevel.RELAXED: 3},
}


def tolerance_for(family: str, level: SafetyLevel) -> int:
    """The ``safety_tolerance`` to send to a model of ``family`` (an unknown family gets the default)."""
    table = _TOLERANCE.get(family)
    return DEFAULT_TOLERANCE if table is None else table[level]


def applied_tolerance(tolerance: int, image_cap: int | None, has_images: bool) -> int:
    """The tolerance a model applies to a request: ``tolerance``, lowered to ``image_cap`` with input images."""
    if has_images and image_cap is not None:
        return min(tolerance, image_cap)
    return tolerance
