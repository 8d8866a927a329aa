"""Image inspection and re-encoding to fit an upload limit, hardened against hostile files.

Every function that touches pixels is synchronous and CPU-bound; coroutines call the async wrappers
(:func:`inspect`, :func:`fit_for_upload`), which run them in a worker thread so the event loop keeps
serving Discord heartbeats while a 4 MP image is re-encoded.

Hardening (see platform-limits §0.18, §5.1): Pillow's default bomb limit is ~89 MP and only *warns*
up to twice that. FLUX outputs are at most ~4 MP, so anything above :data:`MAX_PIXELS` is refused:
Pillow's limit is lowered at import, its warning is turned into an error while we open a file, and
we check the declared size ourselves before decoding a single pixel.
"""

from __future__ import annotations

import asyncio
import io
import logging
import threading
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from PIL import Image, ImageOps, UnidentifiedImageError

log = logging.getLogger(__name__)

__all__ = [
    "ALLOWED_FORMATS",
    "MAX_PIXELS",
    "EncodedImage",
    "ImageInfo",
    "InvalidImage",
    "fit_for_upload",
    "fit_to_limit",
    "inspect",
    "inspect_image",
]

MAX_PIXELS = 40_000_000
"""Largest image we decode: 10× the biggest FLUX output, far below what exhausts memory."""

# Process-wide on purpose: no code in this bot has a reason to decode a 40+ MP image.
Image.MAX_IMAGE_PIXELS = MAX_PIXELS

ALLOWED_FORMATS: dict[str, tuple[str, str]] = {
    "JPEG": ("jpg", "image/jpeg"),
    "PNG": ("png", "image/png"),
    "WEBP": ("webp", "image/webp"),
}
"""Pillow format name → (file extension, content type). Other formats are refused unopened."""

JPEG_QUALITIES: tuple[int, ...] = (92, 85, 75, 65, 50)
"""Qualities tried in turn; 50 is the floor below which we shrink the image instead."""
DOWNSCALE_STEP = 0.85
MIN_SIDE = 16  # giving up below this: no useful picture is left
BACKGROUND = (255, 255, 255)  # transparency is flattened onto white (JPEG has no alpha)
_ICC_SAFE_MODES = frozenset({"RGB", "RGBA", "RGBa", "P", "L"})

# `warnings.catch_warnings()` swaps process-global state, so two threads entering it at once could
# leave the filter changed for everybody. Opening (a header parse) is quick, so we serialise it.
_open_lock = threading.Lock()


class InvalidImage(ValueError):
    """The bytes are not a usable JPEG/PNG/WEBP image (not an image, truncated, a bomb, or unfittable)."""


@dataclass(frozen=True)
class ImageInfo:
    """What :func:`inspect_image` found: Pillow's format name (``JPEG``, ``PNG``, ``WEBP``), size, bytes."""

    format: str
    width: int
    height: int
    size_bytes: int


@dataclass(frozen=True)
class EncodedImage:
    """Bytes ready to upload, with a filename whose extension matches the real format."""

    data: bytes
    filename: str
    content_type: str
    width: int
    height: int
    reencoded: bool


@contextmanager
def bomb_warnings_as_errors() -> Iterator[None]:
    """Around ``Image.open``: a decompression-bomb warning raises. One lock for every caller in the bot."""
    with _open_lock, warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        yield


def _open_header(data: bytes) -> Image.Image:
    """Open ``data`` reading only its header (format and size), or raise :class:`InvalidImage`."""
    if not data:
        raise InvalidImage("the file is empty")
    try:
        with bomb_warnings_as_errors():
            image = Image.open(io.BytesIO(data), formats=list(ALLOWED_FORMATS))
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise InvalidImage("the image is too large to process") from exc
    except UnidentifiedImageError as exc:
        raise InvalidImage("the file is not a JPEG, PNG or WEBP image") from exc
    except (OSError, SyntaxError, ValueError) as exc:
        raise InvalidImage("the image could not be read") from exc
    width, height = image.size
    if width <= 0 or height <= 0 or width * height > MAX_PIXELS:
        image.close()
        raise InvalidImage("the image is too large to process")
    return image


def _open_decoded(data: bytes) -> Image.Image:
    """Open ``data`` and decode every pixel, or raise :class:`InvalidImage`."""
    image = _open_header(data)
    try:
        image.load()  # decodes everything: truncated or corrupt data fails here, not later
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as exc:
        image.close()
        raise InvalidImage("the image is truncated or corrupt") from exc
    return image


def probe(data: bytes) -> ImageInfo:
    """Check ``data`` is a JPEG/PNG/WEBP image of sane size from its header alone (no pixel decode).

    Cheap enough for every downloaded result: the full decode happens at most once, later, and only
    if the image must be re-encoded to fit Discord's upload limit (:func:`fit_to_limit`).
    """
    with _open_header(data) as image:
        return ImageInfo(format=image.format or "", width=image.width, height=image.height, size_bytes=len(data))


def inspect_image(data: bytes) -> ImageInfo:
    """Check that ``data`` is a complete JPEG/PNG/WEBP image of sane size and describe it.

    Synchronous and CPU-bound (it decodes the image): from a coroutine use :func:`inspect`.
    Raises :class:`InvalidImage` for anything else.
    """
    with _open_decoded(data) as image:
        return ImageInfo(format=image.format or "", width=image.width, height=image.height, size_bytes=len(data))


def flatten_to_rgb(image: Image.Image) -> Image.Image:
    """A JPEG-encodable copy: alpha composited onto :data:`BACKGROUND`, other modes converted."""
    if image.mode in ("RGB", "L"):
        return image
    if image.mode == "P":
        image = image.convert("RGBA" if "transparency" in image.info else "RGB")
    if image.mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        rgba = image.convert("RGBA")
        flat = Image.new("RGB", rgba.size, BACKGROUND)
        flat.paste(rgba, mask=rgba.getchannel("A"))
        return flat
    if image.mode.startswith("I;16"):
        # 16-bit greyscale PNG: scale to 8 bits (a straight convert would clip everything above 255).
        return image.convert("I").point(lambda value: value / 256).convert("RGB")
    return image.convert("RGB")


def _encode_jpeg(image: Image.Image, quality: int, icc_profile: bytes | None) -> bytes:
    buffer = io.BytesIO()
    # Only what we pass is written: no EXIF, XMP or comments survive (privacy), but the ICC profile
    # does, because without it colours shift.
    image.save(buffer, format="JPEG", quality=quality, optimize=True, icc_profile=icc_profile)
    return buffer.getvalue()


def fit_to_limit(data: bytes, limit_bytes: int, *, basename: str = "fluxcord") -> EncodedImage:
    """Return ``data`` as an upload of at most ``limit_bytes`` bytes.

    Within the limit, the original bytes are returned untouched (the extension follows the real
    format). Otherwise the image is re-encoded as JPEG with metadata stripped, first lowering the
    quality (:data:`JPEG_QUALITIES`), then shrinking it by :data:`DOWNSCALE_STEP` per step with the
    aspect ratio kept. Raises :class:`InvalidImage` for bad input or when nothing fits.

    Synchronous and CPU-bound: from a coroutine use :func:`fit_for_upload`.
    """
    if limit_bytes <= 0:
        raise ValueError("limit_bytes must be positive")
    if len(data) <= limit_bytes:
        return _as_is(data, basename)
    with _open_decoded(data) as image:
        # A profile only describes the output if the colour space is unchanged (not CMYK → RGB, say).
        icc_profile = image.info.get("icc_profile") if image.mode in _ICC_SAFE_MODES else None
        # Stripping EXIF would drop the orientation tag, so apply it to the pixels first.
        source = flatten_to_rgb(ImageOps.exif_transpose(image))
    width, height = source.size
    scale = 1.0
    qualities = JPEG_QUALITIES
    while True:
        size = (max(1, round(width * scale)), max(1, round(height * scale)))
        if min(size) < MIN_SIDE:
            raise InvalidImage(f"the image cannot be made smaller than {limit_bytes:,} bytes")
        candidate = source if scale == 1.0 else source.resize(size, Image.Resampling.LANCZOS)
        for quality in qualities:
            encoded = _encode_jpeg(candidate, quality, icc_profile)
            if len(encoded) <= limit_bytes:
                log.debug("re-encoded %d bytes → %d bytes (%dx%d, quality %d)", len(data), len(encoded), *size, quality)
                return EncodedImage(encoded, f"{basename}.jpg", "image/jpeg", size[0], size[1], reencoded=True)
        # Too big even at the floor quality: shrink. Once shrinking, start each size at a middling
        # quality rather than 92, which would only cost encoder time at a size 92 already missed.
        scale *= DOWNSCALE_STEP
        qualities = JPEG_QUALITIES[2:]


def _as_is(data: bytes, basename: str) -> EncodedImage:
    """``data`` posted as it is: its header gives the name and size."""
    with _open_header(data) as header:
        extension, content_type = ALLOWED_FORMATS[header.format or ""]
        return EncodedImage(data, f"{basename}.{extension}", content_type, header.width, header.height, reencoded=False)


async def inspect(data: bytes) -> ImageInfo:
    """:func:`inspect_image` in a worker thread."""
    return await asyncio.to_thread(inspect_image, data)


async def fit_for_upload(data: bytes, limit_bytes: int, *, basename: str = "fluxcord") -> EncodedImage:
    """:func:`fit_to_limit` in a worker thread, so re-encoding never blocks the event loop."""
    return await asyncio.to_thread(fit_to_limit, data, limit_bytes, basename=basename)
