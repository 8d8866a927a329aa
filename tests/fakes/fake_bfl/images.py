"""Images of the fake BFL API: decoding sizes of input images and rendering output images."""

from __future__ import annotations

import base64
import io
import random
from typing import Any

from PIL import Image, ImageDraw

_PIL_FORMATS = {"jpeg": "JPEG", "png": "PNG", "webp": "WEBP"}
_CONTENT_TYPES = {"jpeg": "image/jpeg", "png": "image/png", "webp": "image/webp", "mp4": "video/mp4"}


def _decoded_size(data: Any) -> tuple[int, int] | None:
    if not isinstance(data, str):
        return None
    try:
        with Image.open(io.BytesIO(base64.b64decode(data.split(",")[-1], validate=False))) as image:
            return image.size
    except Exception:
        return None


def render_image(width: int, height: int, output_format: str, seed: int) -> bytes:
    """A real, decodable image: a solid colour with a few shapes, chosen by ``seed``."""
    rnd = random.Random(seed)
    image = Image.new("RGB", (width, height), tuple(rnd.randrange(256) for _ in range(3)))
    draw = ImageDraw.Draw(image)
    for _ in range(4):
        x0, y0 = rnd.randrange(width), rnd.randrange(height)
        x1, y1 = (
            min(width, x0 + rnd.randrange(1, width // 2 + 2)),
            min(height, y0 + rnd.randrange(1, height // 2 + 2)),
        )
        colour = tuple(rnd.randrange(256) for _ in range(3))
        if rnd.random() < 0.5:
            draw.ellipse((x0, y0, x1, y1), fill=colour)
        else:
            draw.rectangle((x0, y0, x1, y1), fill=colour)
    draw.line((0, 0, width - 1, height - 1), fill=(255, 255, 255), width=max(1, width // 100))
    buffer = io.BytesIO()
    image.save(buffer, format=_PIL_FORMATS[output_format], quality=85)
    return buffer.getvalue()
