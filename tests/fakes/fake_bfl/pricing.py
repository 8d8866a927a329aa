"""What BFL charges and what size it renders: flat and per-megapixel prices, FLUX 3 tiers, output sizes."""

from __future__ import annotations

from collections.abc import Sequence
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from tests.fakes.fake_bfl.constants import (
    FLUX3_MODEL,
    FLUX3_TIER_PIXELS,
    VIDEO_MODEL,
    VIDEO_SECOND_PRICES,
    VIDEO_SHORT_SIDES,
)
from tests.fakes.fake_bfl.images import _decoded_size
from tests.fakes.fake_bfl.validation import _parse_ratio, generation_routes

#: FLUX 3 prices per resolution tier, in credits (1k, 2k, 4k as published; the others below our estimates).
FLUX3_TIER_PRICES: dict[str, Decimal] = {
    "768sq": Decimal("3.5"),
    "1k": Decimal("4.8"),
    "1.5k": Decimal("7.5"),
    "2k": Decimal("10"),
    "4k": Decimal("60.7"),
}
# FLUX.1 prices are flat per image, in credits (1 credit = $0.01); bfl-api.md §5.
FLAT_PRICES: dict[str, Decimal] = {
    "flux-pro-1.1": Decimal("4"),
    "flux-pro-1.1-ultra": Decimal("6"),
    "flux-pro-1.1-ultra-finetuned": Decimal("6"),
    "flux-dev": Decimal("2.5"),
    "flux-kontext-pro": Decimal("4"),
    "flux-kontext-max": Decimal("8"),
    "flux-pro-1.0-fill": Decimal("5"),
    "flux-pro-1.0-fill-finetuned": Decimal("5"),
    "flux-pro-1.0-expand": Decimal("5"),
}
# FLUX.2 prices: (first megapixel, each further megapixel) in credits; bfl-api.md §5 rate card.
MEGAPIXEL_PRICES: dict[str, tuple[Decimal, Decimal]] = {
    "flux-2-pro": (Decimal("3"), Decimal("1.5")),
    "flux-2-pro-preview": (Decimal("3"), Decimal("1.5")),
    "flux-2-max": (Decimal("7"), Decimal("3")),
    "flux-2-flex": (Decimal("5"), Decimal("5")),
    "flux-2-klein-4b": (Decimal("1.4"), Decimal("0.1")),
    "flux-2-klein-9b": (Decimal("1.5"), Decimal("0.2")),
    "flux-2-klein-9b-preview": (Decimal("1.5"), Decimal("0.2")),
    # Deblur has no published price; it runs on [klein] 9B, so the fake bills [klein] 9B's rates (input included).
    "flux-tools/deblur-v1": (Decimal("1.5"), Decimal("0.2")),
    # The klein LoRA routes have no published price (public beta); the fake bills a little over their base's.
    "flux-2-klein-4b-finetuned": (Decimal("1.6"), Decimal("0.2")),
    "flux-2-klein-9b-finetuned": (Decimal("1.8"), Decimal("0.3")),
}
# Outpainting has no published price; the fake bills the one figure found (a third party's "from $0.10/MP", 10
# credits per megapixel of the canvas, its input not billed), below the bot's documented bound.
OUTPUT_MEGAPIXEL_PRICES: dict[str, Decimal] = {"flux-tools/outpainting-v1": Decimal("10")}
# Output pixels for aspect-ratio models: Kontext about 1 MP, Ultra up to 4 MP.
_ASPECT_TARGET_PIXELS = {"flux-kontext-pro": 1 << 20, "flux-kontext-max": 1 << 20}
_ULTRA_TARGET_PIXELS = 4 << 20


def price_credits(
    model: str, width: int, height: int, input_pixels: Sequence[int] = (), body: dict[str, Any] | None = None
) -> Decimal:
    """What the fake charges, in credits: FLUX.1 flat; FLUX.2 first MP + each further MP; FLUX 3 per tier; FLUX 3
    video per second (:func:`video_credits` of ``body``; without one, 5 s at hd).

    Megapixels are rounded to 2 decimals like BFL's ``output_mp``; the price to 0.01 credit.
    FLUX.2 edits also pay their input megapixels at the extra-megapixel rate (bfl-api.md §00.8).
    """
    if model == VIDEO_MODEL:
        return video_credits(body or {})
    if model in FLAT_PRICES:
        return FLAT_PRICES[model]
    if model == FLUX3_MODEL:
        tier = min(FLUX3_TIER_PIXELS, key=lambda t: abs(FLUX3_TIER_PIXELS[t] - width * height))
        return FLUX3_TIER_PRICES[tier]
    if model in OUTPUT_MEGAPIXEL_PRICES:
        output = (Decimal(width * height) / 1_000_000).quantize(Decimal("0.01"), ROUND_HALF_UP)
        return (OUTPUT_MEGAPIXEL_PRICES[model] * output).quantize(Decimal("0.01"), ROUND_HALF_UP).normalize()
    first, extra = MEGAPIXEL_PRICES.get(model, (Decimal("5"), Decimal("0")))
    megapixels = (Decimal(width * height + sum(input_pixels)) / 1_000_000).quantize(Decimal("0.01"), ROUND_HALF_UP)
    price = first + extra * max(Decimal(0), megapixels - 1)
    return price.quantize(Decimal("0.01"), ROUND_HALF_UP).normalize()


def video_seconds(body: dict[str, Any]) -> int:
    """A video's length: its ``duration``, or for ``auto`` the default the fake picks (5 s)."""
    duration = body.get("duration")
    return duration if isinstance(duration, int) else 5


def video_credits(body: dict[str, Any]) -> Decimal:
    """What a FLUX 3 video costs, in credits: its seconds at its mode's and resolution's per-second price."""
    resolution = "draft" if body.get("draft") else body.get("resolution") or "hd"
    key = (
        f"v2v-{resolution}" if body.get("mode") == "v2v" and f"v2v-{resolution}" in VIDEO_SECOND_PRICES else resolution
    )
    return Decimal(VIDEO_SECOND_PRICES[key] * video_seconds(body))


def _video_size(body: dict[str, Any]) -> tuple[int, int]:
    short = VIDEO_SHORT_SIDES[body.get("resolution") or "hd"]
    ratio = body.get("aspect_ratio") or "auto"
    if ratio == "auto":
        frames = body.get("keyframes")
        first = frames if isinstance(frames, str) else (frames or [None])[0]
        w, h = _decoded_size(first[1] if isinstance(first, list) else first) or (16, 9)
    else:
        w, h = (int(part) for part in ratio.split(":"))
    long = 2 * round(short * max(w, h) / min(w, h) / 2)
    return (long, short) if w >= h else (short, long)


def output_size(model: str, body: dict[str, Any]) -> tuple[int, int]:
    """The pixel size the fake renders for a (valid) request."""
    if model == VIDEO_MODEL:
        return _video_size(body)
    route = generation_routes()[model]
    props = route.schema.get("properties", {})
    if model == FLUX3_MODEL:
        pixels = FLUX3_TIER_PIXELS[body.get("resolution") or "1k"]
        ratio = body.get("aspect_ratio") or "auto"
        if ratio == "auto":
            images = body.get("images")
            first = images if isinstance(images, str) else (images or [None])[0]
            w, h = _decoded_size(first) or (1, 1)
        else:
            w, h = (int(part) for part in ratio.split(":"))
        return (round((pixels * w / h) ** 0.5 / 16) * 16, round((pixels * h / w) ** 0.5 / 16) * 16)
    if "width" in props:
        width = body.get("width") or props["width"].get("default") or 0
        height = body.get("height") or props["height"].get("default") or 0
        # FLUX.2 uses 0/None for "auto": 1024×1024 for text-to-image.
        return (int(width) or 1024, int(height) or 1024)
    if "aspect_ratio" in props:
        default = props["aspect_ratio"].get("default") or "1:1"
        w, h = _parse_ratio(body.get("aspect_ratio") or default) or (1, 1)
        target = _ASPECT_TARGET_PIXELS.get(model, _ULTRA_TARGET_PIXELS)
        width = round((target * w / h) ** 0.5 / 32) * 32
        height = round((target * h / w) ** 0.5 / 32) * 32
        return (width, height)
    # Fill/Expand/Deblur: the size of the input image (plus Expand's margins).
    size = _decoded_size(body.get("image")) or (1024, 1024)
    return (
        size[0] + int(body.get("left") or 0) + int(body.get("right") or 0),
        size[1] + int(body.get("top") or 0) + int(body.get("bottom") or 0),
    )


def input_pixels(body: dict[str, Any]) -> list[int]:
    """Pixel counts of the decodable input images of a request (``input_image*``, FLUX 3 ``images``, ``image``)."""
    images = body.get("images")
    datas = [images] if isinstance(images, str) else list(images or [])
    datas += [body["image"]] if isinstance(body.get("image"), str) else []
    datas += [body["keyframes"]] if isinstance(body.get("keyframes"), str) else []
    datas += [body[k] for k in sorted(body) if k.startswith("input_image") and body[k] is not None]
    sizes = [_decoded_size(data) for data in datas]
    return [w * h for w, h in (size for size in sizes if size is not None)]
