"""FLUX 3 video (``POST /v1/flux-3-video``, the Animate button and ``/animate``): its body, sizes and choices.

**The request shape lives here and nowhere else** (:func:`video_body`), so it can follow BFL if the schema moves.
It is built to BFL's own OpenAPI (``Flux3VideoInputsBody`` @ tryAGI/BlackForestLabs 3ecde7ee, vendored as
``tests/specs/bfl-flux-3-video.json``): a ``oneOf`` over four ``mode`` variants, each strict (unknown fields → 422).
Animate is the ``i2v`` variant: the still is the one plain ``keyframes`` image, so it starts the video.

BFL's newest prose (its agent skill, not a schema) says generation bodies carry no ``mode`` any more; which shape the
live API takes is unconfirmed. If BFL drops ``mode``, :data:`VIDEO_MODE` becomes ``None`` and the body is the same
fields without it (the modeless draft keeps ``keyframes``). Nothing else in the bot names these fields.

Sizes: BFL says only that "exact dimensions vary with the aspect ratio"; :func:`video_dimensions` is the nominal
size (the quality's short side, the ratio's long side, both even), shown on the card and asked of the fake.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, urlsplit

if TYPE_CHECKING:
    from bot.models.request import GenerationRequest

VIDEO_MODEL = "flux-3-video"
"""The model table's key for FLUX 3 video (its route, ``POST /v1/flux-3-video``)."""
VIDEO_MODE: str | None = "i2v"
"""The ``mode`` discriminator of a video from a still (BFL's spec @ 3ecde7ee); None: send no ``mode``."""
VIDEO_ASPECT_RATIOS: tuple[str, ...] = ("21:9", "2:1", "16:9", "4:3", "1:1", "3:4", "9:16", "9:21")
"""The ratios of BFL's i2v schema (``auto`` is left out: the size must be known to show it and to price it)."""
VIDEO_QUALITIES: dict[str, int] = {"hd": 720, "fhd": 1080}
"""The qualities offered (BFL's ``resolution``) and their short side. ``qhd``/``uhd`` have no BFL list price
(only a reseller-derived guess), so they are not offered."""
VIDEO_DEFAULT_QUALITY = "hd"
VIDEO_DURATION_RANGE = (5, 20)
"""Whole seconds, i2v's range in BFL's schema (``auto`` is not offered: it cannot be priced before the call)."""
VIDEO_DEFAULT_SECONDS = 5


def is_video_model(key: str) -> bool:
    """Whether ``key`` is the video route (its result is an MP4, delivered as one or as a link)."""
    return key == VIDEO_MODEL


def is_mp4(data: bytes) -> bool:
    """Whether ``data`` starts like an ISO-BMFF file (an ``ftyp`` box first), as BFL's MP4s do."""
    return len(data) >= 12 and data[4:8] == b"ftyp"


def video_dimensions(aspect_ratio: str, quality: str) -> tuple[int, int]:
    """The nominal ``(width, height)`` of a video: the quality's short side, the long side by the ratio (even)."""
    left, _, right = aspect_ratio.partition(":")
    ratio_w, ratio_h = int(left), int(right)
    short = VIDEO_QUALITIES[quality]
    long = 2 * round(short * max(ratio_w, ratio_h) / min(ratio_w, ratio_h) / 2)
    return (long, short) if ratio_w >= ratio_h else (short, long)


def video_body(request: GenerationRequest) -> dict[str, Any]:
    """The JSON body of ``POST /v1/flux-3-video`` for a video from one still (BFL's i2v variant)."""
    [still] = request.input_images
    payload: dict[str, Any] = {} if VIDEO_MODE is None else {"mode": VIDEO_MODE}
    payload |= {
        "prompt": request.prompt,
        "keyframes": still.data_b64,  # one plain image: it starts the video
        "aspect_ratio": request.aspect_ratio,
        "duration": request.duration or VIDEO_DEFAULT_SECONDS,
        "resolution": request.resolution or VIDEO_DEFAULT_QUALITY,
    }
    if request.safety_tolerance is not None:  # BFL caps it at 2 with an image; sent as applied (Details shows it)
        payload["safety_tolerance"] = request.effective_safety_tolerance
    return payload


def link_expiry(url: str) -> datetime | None:
    """When a result URL stops working: its ``se=`` (an Azure SAS expiry, ISO 8601 UTC); None if it has none.

    BFL's video URLs live about 2 hours; the card and the private link name this time, not a guess.
    """
    values = parse_qs(urlsplit(url).query).get("se")
    if not values:
        return None
    try:
        expiry = datetime.fromisoformat(values[0].replace("Z", "+00:00"))
    except ValueError:
        return None
    return expiry if expiry.tzinfo is not None else expiry.replace(tzinfo=UTC)
