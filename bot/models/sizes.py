"""Sizes: the width and height a model renders for an aspect ratio (or a FLUX 3 resolution tier)."""

from __future__ import annotations

import functools
import math

from bot.models.options import FLUX3_DEFAULT_RESOLUTION, FLUX3_RESOLUTIONS, PIXELS_PER_MEGAPIXEL
from bot.models.pricing import MegapixelPrice
from bot.models.spec import ModelSpec


def _parse_ratio(aspect_ratio: str) -> tuple[int, int]:
    left, _, right = aspect_ratio.partition(":")
    return int(left), int(right)


@functools.lru_cache(maxsize=256)
def dimensions_for(spec: ModelSpec, aspect_ratio: str) -> tuple[int, int]:
    """The ``(width, height)`` a request for ``aspect_ratio`` on ``spec`` produces.

    For ``dimensions`` models this is what we send: multiples of ``spec.multiple`` within the side
    limits and the megapixel cap (and, for megapixel-priced models, not above the target, so the
    default size stays in the cheapest price step), chosen to match the ratio as closely as the
    multiple allows while staying near ``target_megapixels``. For ``aspect_ratio`` models it is the
    nominal output size, for display and cost estimates only.
    """
    if aspect_ratio not in spec.aspect_ratios:
        raise ValueError(f"unsupported aspect ratio {aspect_ratio!r}")
    if spec.size_mode == "resolution":
        return tier_dimensions(spec, aspect_ratio, FLUX3_DEFAULT_RESOLUTION)
    ratio_w, ratio_h = _parse_ratio(aspect_ratio)
    ratio = ratio_w / ratio_h
    target = spec.target_pixels
    cap = spec.max_pixels
    if isinstance(spec.price, MegapixelPrice):
        cap = min(cap, target)
    step = spec.multiple
    best: tuple[tuple[float, int], int, int] | None = None
    for height in range(_round_up(spec.min_side, step), spec.max_side + 1, step):
        exact_width = height * ratio
        for width in {math.floor(exact_width / step) * step, math.ceil(exact_width / step) * step}:
            if not spec.min_side <= width <= spec.max_side or width * height > cap:
                continue
            # Ratio accuracy matters most; area closeness breaks near-ties. The 0.1 weight was found by
            # trying every ratio: it keeps exact ratios where the multiple allows (1152×864 for 4:3)
            # without drifting far from the target area.
            score = abs(math.log(width / height / ratio)) + 0.1 * abs(math.log(width * height / target))
            candidate = ((score, -width * height), width, height)
            if best is None or candidate[0] < best[0]:
                best = candidate
    if best is None:  # pragma: no cover - the table's limits always admit a size
        raise ValueError(f"no size for {aspect_ratio} on {spec.key}")
    return best[1], best[2]


def _round_up(value: int, step: int) -> int:
    return -(-value // step) * step


def tier_dimensions(spec: ModelSpec, aspect_ratio: str, resolution: str) -> tuple[int, int]:
    """FLUX 3's nominal size for a ratio and a tier (``auto`` shown as square): display only."""
    ratio_w, ratio_h = (1, 1) if aspect_ratio == "auto" else _parse_ratio(aspect_ratio)
    area = FLUX3_RESOLUTIONS[resolution] * PIXELS_PER_MEGAPIXEL
    width = max(spec.min_side, round(math.sqrt(area * ratio_w / ratio_h) / spec.multiple) * spec.multiple)
    height = max(spec.min_side, round(math.sqrt(area * ratio_h / ratio_w) / spec.multiple) * spec.multiple)
    return width, height


def nearest_aspect_ratio(spec: ModelSpec, width: int, height: int) -> str:
    """The model's fixed aspect ratio closest to ``width``×``height`` (for an edit that names none)."""
    fixed = [r for r in spec.aspect_ratios if r != "auto"]
    return min(fixed, key=lambda r: abs(math.log(width / height) - math.log(_ratio_value(r))))


def _ratio_value(aspect_ratio: str) -> float:
    left, right = _parse_ratio(aspect_ratio)
    return left / right
