"""Image inspection and re-encoding with real images: pass-through, shrinking, hostile input."""

from __future__ import annotations

import asyncio
import io
import os
import struct
import threading
import zlib

import pytest
from PIL import Image

from bot.images import codec as images
from bot.images.codec import (
    MAX_PIXELS,
    EncodedImage,
    ImageInfo,
    InvalidImage,
    fit_for_upload,
    fit_to_limit,
    inspect,
    inspect_image,
)


def encode(image: Image.Image, fmt: str, **params) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **params)
    return buffer.getvalue()


def small_jpeg() -> bytes:
    return encode(Image.new("RGB", (64, 48), (200, 30, 30)), "JPEG", quality=90)


@pytest.fixture(scope="module")
def noisy_png() -> bytes:
    """A 2048×1536 random-noise PNG: incompressible, ~9 MB."""
    width, height = 2048, 1536
    noise = Image.frombytes("RGB", (width, height), os.urandom(width * height * 3))
    return encode(noise, "PNG", compress_level=1)


def png_chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF)


def bomb_png(width: int, height: int) -> bytes:
    """A tiny PNG whose header declares width×height pixels (the body is one compressed row)."""
    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)  # 8-bit greyscale
    data = zlib.compress(b"\x00" * (width + 1), 9)
    return b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", header) + png_chunk(b"IDAT", data) + png_chunk(b"IEND", b"")


# -- hardening --------------------------------------------------------------------------------


def test_pillow_limit_lowered_at_import():
    """Importing bot.images.codec lowers Pillow's decompression-bomb limit to MAX_PIXELS (≤ 40 MP)."""
    assert Image.MAX_IMAGE_PIXELS == MAX_PIXELS <= 40_000_000


@pytest.mark.parametrize(
    "size",
    [
        (7000, 7000),  # 49 MP: Pillow alone would only warn (between 1× and 2× its limit)
        (20000, 20000),  # 400 MP: Pillow raises by itself
    ],
)
def test_decompression_bomb_refused(size):
    """A small PNG declaring a huge size is refused before any pixel is decoded."""
    data = bomb_png(*size)
    assert len(data) < 100_000
    with pytest.raises(InvalidImage, match="too large") as info:
        inspect_image(data)
    # Pillow's own check fired (the 49 MP warning was raised as an error), not just ours.
    assert isinstance(info.value.__cause__, Image.DecompressionBombWarning | Image.DecompressionBombError)
    with pytest.raises(InvalidImage):
        fit_to_limit(data, 10)


def test_bomb_warning_filter_does_not_leak():
    """Turning the bomb warning into an error is scoped: the global filters are unchanged afterwards."""
    import warnings

    before = list(warnings.filters)
    with pytest.raises(InvalidImage):
        inspect_image(bomb_png(7000, 7000))
    assert warnings.filters == before


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"definitely not an image",
        b"GIF89a" + b"\x00" * 100,
        encode(Image.new("RGB", (8, 8)), "GIF"),
        encode(Image.new("RGB", (8, 8)), "BMP"),
    ],
    ids=["empty", "text", "gif-garbage", "gif", "bmp"],
)
def test_non_images_and_other_formats_refused(data):
    """Anything but a JPEG/PNG/WEBP raises InvalidImage."""
    with pytest.raises(InvalidImage):
        inspect_image(data)


def test_truncated_images_refused():
    """Cut-off JPEG and PNG data fails the full decode."""
    image = Image.frombytes("RGB", (256, 256), os.urandom(256 * 256 * 3))
    for fmt in ("JPEG", "PNG"):
        data = encode(image, fmt)
        with pytest.raises(InvalidImage):
            inspect_image(data[: len(data) // 2])


# -- inspection -------------------------------------------------------------------------------


@pytest.mark.parametrize(("fmt", "expected"), [("JPEG", "JPEG"), ("PNG", "PNG"), ("WEBP", "WEBP")])
def test_inspect_reports_format_and_size(fmt, expected):
    """inspect_image names the real format and dimensions."""
    data = encode(Image.new("RGB", (120, 80), (10, 20, 30)), fmt)
    assert inspect_image(data) == ImageInfo(format=expected, width=120, height=80, size_bytes=len(data))


# -- fitting ----------------------------------------------------------------------------------


def test_small_image_passes_through_unchanged():
    """Within the limit, the exact bytes come back with the right extension."""
    data = small_jpeg()
    result = fit_to_limit(data, 10 * 1024 * 1024, basename="cat")
    assert result == EncodedImage(
        data=data, filename="cat.jpg", content_type="image/jpeg", width=64, height=48, reencoded=False
    )
    png = encode(Image.new("RGBA", (10, 10)), "PNG")
    assert fit_to_limit(png, len(png)).filename == "fluxcord.png"  # exactly at the limit is fine


def test_noisy_png_reencoded_under_limit(noisy_png):
    """A large noisy PNG is re-encoded as JPEG under 1 MB, still decodes, and keeps its aspect ratio."""
    limit = 1_000_000
    assert len(noisy_png) > limit
    result = fit_to_limit(noisy_png, limit)
    assert result.reencoded and result.filename == "fluxcord.jpg" and result.content_type == "image/jpeg"
    assert len(result.data) <= limit
    info = inspect_image(result.data)
    assert info.format == "JPEG" and (info.width, info.height) == (result.width, result.height)
    assert result.width <= 2048
    assert abs(result.width / result.height - 2048 / 1536) < 0.01


def test_reencode_lowers_quality_before_size():
    """When a lower quality is enough, the dimensions are kept."""
    gradient = Image.linear_gradient("L").resize((1024, 1024)).convert("RGB")
    data = encode(gradient, "PNG", compress_level=0)
    result = fit_to_limit(data, len(data) // 4)
    assert result.reencoded and (result.width, result.height) == (1024, 1024)


def test_reencode_strips_exif_and_applies_orientation():
    """EXIF is dropped on re-encode, with the orientation baked into the pixels first."""
    image = Image.frombytes("RGB", (300, 200), os.urandom(300 * 200 * 3))
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90° clockwise when displayed
    exif[0x010F] = "SecretCam"
    data = encode(image, "JPEG", quality=100, exif=exif)
    result = fit_to_limit(data, len(data) - 1)
    with Image.open(io.BytesIO(result.data)) as out:
        assert not out.getexif()
        assert "exif" not in out.info
        assert out.size == (200, 300)


def test_transparency_flattened():
    """RGBA input becomes an RGB JPEG with transparent areas on the background colour."""
    image = Image.new("RGBA", (400, 400), (0, 0, 0, 0))
    image.paste(Image.frombytes("RGBA", (200, 200), os.urandom(200 * 200 * 4)), (0, 0))
    data = encode(image, "PNG")
    result = fit_to_limit(data, len(data) - 1)
    with Image.open(io.BytesIO(result.data)) as out:
        assert out.mode == "RGB"
        assert all(c > 245 for c in out.getpixel((350, 350)))


def test_impossible_limit_raises():
    """A limit no JPEG can meet raises InvalidImage instead of looping."""
    with pytest.raises(InvalidImage, match="cannot be made smaller"):
        fit_to_limit(encode(Image.new("RGB", (256, 256), (1, 2, 3)), "PNG", compress_level=0), 100)


def test_non_positive_limit_is_a_bug():
    """A zero limit is a programming error, not a bad image."""
    with pytest.raises(ValueError, match="limit_bytes"):
        fit_to_limit(small_jpeg(), 0)


# -- async wrappers ---------------------------------------------------------------------------


async def test_fit_for_upload_runs_in_a_thread_and_loop_stays_responsive(noisy_png, monkeypatch):
    """fit_for_upload works in a worker thread while the event loop keeps running callbacks."""
    threads: list[threading.Thread] = []
    real = images.fit_to_limit

    def spy(*args, **kwargs):
        threads.append(threading.current_thread())
        return real(*args, **kwargs)

    monkeypatch.setattr(images, "fit_to_limit", spy)
    ticks = 0
    stop = asyncio.Event()

    async def ticker():
        nonlocal ticks
        while not stop.is_set():
            ticks += 1
            await asyncio.sleep(0.005)

    task = asyncio.create_task(ticker())
    result = await fit_for_upload(noisy_png, 1_000_000, basename="art")
    stop.set()
    await task
    assert threads and threads[0] is not threading.main_thread()
    assert ticks > 3  # the loop ran while the image was being re-encoded
    assert result.filename == "art.jpg" and len(result.data) <= 1_000_000


async def test_inspect_async_matches_sync():
    """inspect() returns what inspect_image() does, and raises the same way."""
    data = small_jpeg()
    assert await inspect(data) == inspect_image(data)
    with pytest.raises(InvalidImage):
        await inspect(b"nope")
