"""Untrusted input images (edits): fetched only from Discord, sniffed, defused, stripped, re-encoded.

An edit's input is a member's file, so everything about it is hostile until proven otherwise:

* **Where from.** Only attachment URLs on Discord's CDN hosts (:data:`DISCORD_CDN_HOSTS`), on the
  host of ``DISCORD_API_URL`` (any port) when that points elsewhere (a proxy or a local test server,
  whose CDN is another origin, as Discord's is), or under ``DISCORD_CDN_URL`` when it is set. Never an
  arbitrary embed URL, never a redirect (a redirect could lead anywhere: SSRF).
* **How big.** At most :data:`MAX_INPUT_BYTES` (20 MiB), checked against the declared size, the
  ``Content-Length`` and the bytes actually read; at most :data:`MAX_INPUT_PIXELS` declared pixels,
  checked from the header before a single pixel is decoded (decompression bombs).
* **What.** The type is sniffed from the bytes (PNG, JPEG, WebP, the first frame of a GIF), not the
  file name or the declared content type.
* **What leaves.** The decoded pixels only: EXIF (GPS included), XMP and text chunks are dropped by
  re-encoding to JPEG after applying the EXIF orientation; the image is scaled into what the model
  accepts (FLUX.2 ≤ 4 MP, FLUX 3 ≤ 16 MP and ≥ 256×256) and sent as base64, because Discord's CDN
  links expire and a durable job must not depend on them.

Pixel work is synchronous (:func:`prepare_image`); coroutines use :func:`prepare`, which runs it in a
worker thread.
"""

from __future__ import annotations

import asyncio
import base64
import io
import logging
import math
import struct
from dataclasses import dataclass
from urllib.parse import urlsplit

import aiohttp
from PIL import Image, ImageOps, UnidentifiedImageError

from bot.errors import FluxcordError
from bot.images.codec import bomb_warnings_as_errors, flatten_to_rgb
from bot.models import InputImage, ModelSpec

log = logging.getLogger(__name__)

__all__ = [
    "DISCORD_CDN_HOSTS",
    "MAX_INPUT_BYTES",
    "MAX_INPUT_PIXELS",
    "BadInputImage",
    "InputFetcher",
    "prepare",
    "prepare_image",
    "sniff",
]

DISCORD_CDN_HOSTS = frozenset({"cdn.discordapp.com", "media.discordapp.net"})
MAX_INPUT_BYTES = 20 * 1024 * 1024
MAX_INPUT_PIXELS = 40_000_000
"""Largest declared size we decode (BFL takes 20 MP; a phone photo is 12–50 MP; a bomb is far more)."""
MAX_ASPECT = 64  # FLUX 3 refuses references more extreme than 64:1
MIN_USEFUL_SIDE = 16  # below this no picture is left to edit
FETCH_TIMEOUT_SECONDS = 20.0
JPEG_QUALITY = 90

_SIGNATURES: tuple[tuple[str, bytes, int], ...] = (
    ("PNG", b"\x89PNG\r\n\x1a\n", 0),
    ("JPEG", b"\xff\xd8\xff", 0),
    ("GIF", b"GIF87a", 0),
    ("GIF", b"GIF89a", 0),
    ("WEBP", b"WEBP", 8),
)


class BadInputImage(FluxcordError):
    """An input image we refuse; the message says why, privately, and nothing was sent or charged."""


def sniff(data: bytes) -> str:
    """The format the bytes really are (``PNG``, ``JPEG``, ``GIF``, ``WEBP``), whatever the file is called."""
    for name, magic, offset in _SIGNATURES:
        if data[offset : offset + len(magic)] == magic and (name != "WEBP" or data[:4] == b"RIFF"):
            return name
    raise BadInputImage("That file isn't a PNG, JPEG, WebP or GIF image.")


def _declared_size(kind: str, data: bytes) -> tuple[int, int] | None:
    """The size a PNG or GIF header declares (read by hand: a bomb need not be a valid file)."""
    if kind == "PNG" and data[12:16] == b"IHDR" and len(data) >= 24:
        width, height = struct.unpack(">II", data[16:24])
        return width, height
    if kind == "GIF" and len(data) >= 10:
        width, height = struct.unpack("<HH", data[6:10])
        return width, height
    return None


def prepare_image(data: bytes, *, max_megapixels: float, min_side: int, label: str = "the model") -> InputImage:
    """Defuse, strip and re-encode ``data`` into an :class:`InputImage` that ``label`` accepts.

    Synchronous and CPU-bound: from a coroutine use :func:`prepare`. Raises :class:`BadInputImage`.
    """
    if not data:
        raise BadInputImage("That file is empty.")
    if len(data) > MAX_INPUT_BYTES:
        raise BadInputImage(_too_big(len(data)))
    kind = sniff(data)
    declared = _declared_size(kind, data)
    if declared is not None and declared[0] * declared[1] > MAX_INPUT_PIXELS:
        raise BadInputImage(_bomb())  # from the header bytes alone, before Pillow parses anything
    try:
        with bomb_warnings_as_errors():
            image = Image.open(io.BytesIO(data), formats=[kind])
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise BadInputImage(_bomb()) from exc
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise BadInputImage("That image is damaged and can't be read.") from exc
    with image:
        width, height = image.size
        if width <= 0 or height <= 0 or width * height > MAX_INPUT_PIXELS:
            raise BadInputImage(_bomb())
        if max(width, height) > MAX_ASPECT * min(width, height):
            raise BadInputImage(f"That image is too narrow: at most {MAX_ASPECT}:1.")
        if min(width, height) < MIN_USEFUL_SIDE:
            raise BadInputImage(f"That image is too small ({width}×{height}) to edit.")
        try:
            image.seek(0)  # a GIF: its first frame only
            image.load()  # truncated or corrupt data fails here
            upright = ImageOps.exif_transpose(image)  # the orientation tag goes with the EXIF
        except (OSError, SyntaxError, ValueError, EOFError, Image.DecompressionBombError) as exc:
            raise BadInputImage("That image is truncated or damaged and can't be read.") from exc
        icc = image.info.get("icc_profile")
        flat = flatten_to_rgb(upright)
        rgb = flat.copy() if flat is image else flat  # the source closes with this block
    rgb = _fit(rgb, max_pixels=int(max_megapixels * 1_000_000), min_side=min_side, label=label)
    buffer = io.BytesIO()
    # Only what is passed here is written: no EXIF, GPS, XMP or comments survive; the ICC profile does
    # (without it colours shift).
    rgb.save(buffer, format="JPEG", quality=JPEG_QUALITY, icc_profile=icc if isinstance(icc, bytes) else None)
    encoded = base64.b64encode(buffer.getvalue()).decode("ascii")
    return InputImage(data_b64=encoded, width=rgb.width, height=rgb.height)


async def prepare(data: bytes, spec: ModelSpec) -> InputImage:
    """:func:`prepare_image` for ``spec``'s input limits, in a worker thread."""
    return await asyncio.to_thread(
        prepare_image,
        data,
        max_megapixels=spec.input_max_megapixels,
        min_side=spec.input_min_side,
        label=spec.label,
    )


def _fit(image: Image.Image, *, max_pixels: int, min_side: int, label: str) -> Image.Image:
    """Scale down to ``max_pixels``, or up to ``min_side`` on the short side (aspect kept)."""
    width, height = image.size
    scale = 1.0
    if width * height > max_pixels:
        scale = math.sqrt(max_pixels / (width * height)) * 0.999
    elif min(width, height) < min_side:
        scale = min_side / min(width, height)
        if width * height * scale * scale > max_pixels:
            raise BadInputImage(f"That image's shape doesn't fit {label}'s limits.")
    if scale == 1.0:
        return image
    size = (max(min_side, math.floor(width * scale)), max(min_side, math.floor(height * scale)))
    if scale > 1:
        size = (max(min_side, math.ceil(width * scale)), max(min_side, math.ceil(height * scale)))
    return image.resize(size, Image.Resampling.LANCZOS)


def _too_big(size: int) -> str:
    return f"That file is too big ({size / 1024 / 1024:.1f} MiB); the limit is {MAX_INPUT_BYTES // 1024 // 1024} MiB."


def _bomb() -> str:
    return f"That image is too large to process (at most {MAX_INPUT_PIXELS // 1_000_000} megapixels)."


@dataclass(frozen=True)
class _Prefix:
    """An explicit CDN (``DISCORD_CDN_URL``): its scheme, host and port exactly, and URLs under its path."""

    scheme: str
    host: str
    port: int
    path: str  # "" or "/some/prefix" (no trailing slash)

    def covers(self, scheme: str, host: str, port: int, path: str) -> bool:
        under = not self.path or path == self.path or path.startswith(self.path + "/")
        return (scheme, host, port) == (self.scheme, self.host, self.port) and under


_DEFAULT_PORTS = {"https": 443, "http": 80}
_DISCORD_API_HOSTS = frozenset({"discord.com", "discordapp.com"})


def _parts(url: str) -> tuple[str, str, int, str] | None:
    """(scheme, host, port, path) of an http(s) URL, or None for anything else (or a bad port)."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return None
    scheme = parts.scheme.lower()
    host = (parts.hostname or "").lower()
    if scheme not in _DEFAULT_PORTS or not host:
        return None
    return scheme, host, port if port is not None else _DEFAULT_PORTS[scheme], parts.path


class InputFetcher:
    """Downloads attachment bytes from Discord's CDN (or the configured Discord hosts) with a size cap.

    Allowed: :data:`DISCORD_CDN_HOSTS` over https; when ``discord_api_url`` is not Discord's own, its
    host on any port and over http or https (a proxy or a local Discord serves its CDN as another
    origin, typically another port); and ``cdn_url`` (``DISCORD_CDN_URL``), exactly its origin and path.
    """

    def __init__(
        self,
        discord_api_url: str,
        *,
        cdn_url: str | None = None,
        max_bytes: int = MAX_INPUT_BYTES,
        timeout: float = FETCH_TIMEOUT_SECONDS,
    ) -> None:
        api = _parts(discord_api_url)
        self._api_host: str | None = api[1] if api is not None and api[1] not in _DISCORD_API_HOSTS else None
        cdn = _parts(cdn_url) if cdn_url else None
        self._cdn = _Prefix(cdn[0], cdn[1], cdn[2], cdn[3].rstrip("/")) if cdn is not None else None
        self._max_bytes = max_bytes
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self._session: aiohttp.ClientSession | None = None

    def allowed(self, url: str) -> bool:
        """Whether ``url`` is on a host we fetch member files from."""
        parts = _parts(url)
        if parts is None:
            return False
        scheme, host, port, path = parts
        if scheme == "https" and host in DISCORD_CDN_HOSTS and port == 443:
            return True
        if self._api_host is not None and host == self._api_host:
            return True
        return self._cdn is not None and self._cdn.covers(scheme, host, port, path)

    async def fetch(self, url: str, *, declared_size: int | None = None) -> bytes:
        """The bytes at ``url``, or :class:`BadInputImage` (wrong host, too big, unreachable)."""
        if not self.allowed(url):
            raise BadInputImage("I only read images attached to Discord messages.")
        if declared_size is not None and declared_size > self._max_bytes:
            raise BadInputImage(_too_big(declared_size))
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(timeout=self._timeout)
        try:
            async with self._session.get(url, allow_redirects=False) as response:
                if response.status != 200:
                    log.info("Input image fetch answered HTTP %s", response.status)
                    raise BadInputImage("I couldn't download that image from Discord. Please try again.")
                if response.content_length is not None and response.content_length > self._max_bytes:
                    raise BadInputImage(_too_big(response.content_length))
                chunks: list[bytes] = []
                total = 0
                async for chunk in response.content.iter_chunked(64 * 1024):
                    total += len(chunk)
                    if total > self._max_bytes:
                        raise BadInputImage(_too_big(total))
                    chunks.append(chunk)
                return b"".join(chunks)
        except (aiohttp.ClientError, TimeoutError) as exc:
            log.info("Input image fetch failed: %s", type(exc).__name__)
            raise BadInputImage("I couldn't download that image from Discord. Please try again.") from exc

    async def close(self) -> None:
        """Close the HTTP session."""
        if self._session is not None:
            await self._session.close()
