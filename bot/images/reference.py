"""The reference image of an outpainting (zoom out, pan): a stored result resized to its placement.

BFL's outpainting route pastes the reference at its own pixel size (spec:
``tests/specs/bfl-flux-tools-outpainting-v1.json``), so when :mod:`bot.models.canvas` had to
scale a placement down to fit 4 MP, the image must be shrunk by the same factor before it is sent:
:func:`fit_reference` resizes it to exactly ``reference_width``×``reference_height`` (LANCZOS).

Formats: an unscaled reference is sent as it is. A scaled PNG stays PNG (lossless, alpha kept);
anything else (our results are JPEG) becomes JPEG at quality 92, like :mod:`bot.images.codec`'s
re-encodes. Only the pixels and the ICC profile survive a resize; no EXIF, XMP or text chunks. The
EXIF orientation is *not* applied: the placement was computed from the stored size, which is the
stored pixels' size, and a result from BFL carries none.

:func:`fit_reference` is synchronous and CPU-bound (a 16 MP decode and resize): coroutines call
:func:`prepare_reference`, which runs it in a worker thread (``asyncio.to_thread``) so the event
loop keeps serving Discord heartbeats.
"""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import io

from PIL import Image

from bot.images.codec import (
    _ICC_SAFE_MODES,
    ALLOWED_FORMATS,
    JPEG_QUALITIES,
    EncodedImage,
    InvalidImage,
    _open_decoded,
    flatten_to_rgb,
    probe,
)
from bot.models.canvas import Placement
from bot.models.request import GenerationRequest, InputImage

__all__ = ["fit_reference", "fit_request", "prepare_reference"]

BASENAME = "reference"
_ALPHA_MODES = frozenset({"RGBA", "LA", "PA", "RGBa", "La"})


def fit_reference(data: bytes, placement: Placement) -> EncodedImage:
    """``data`` (a ``source_width``×``source_height`` image) at the placement's reference size.

    Raises :class:`~bot.images.codec.InvalidImage` if the bytes are not a JPEG/PNG/WEBP image or not
    the size the placement was computed for (the offsets would then be wrong).
    """
    info = probe(data)
    if (info.width, info.height) != (placement.source_width, placement.source_height):
        raise InvalidImage(
            f"the image is {info.width}×{info.height}, not the size its placement was computed for "
            f"({placement.source_width}×{placement.source_height})"
        )
    size = (placement.reference_width, placement.reference_height)
    if not placement.scaled:
        extension, content_type = ALLOWED_FORMATS[info.format]
        return EncodedImage(data, f"{BASENAME}.{extension}", content_type, *size, reencoded=False)
    with _open_decoded(data) as image:
        keep_png = image.format == "PNG"
        icc_profile = image.info.get("icc_profile") if image.mode in _ICC_SAFE_MODES else None
        resized = _resizable(image, keep_alpha=keep_png).resize(size, Image.Resampling.LANCZOS)
    buffer = io.BytesIO()
    if keep_png:
        resized.save(buffer, format="PNG", icc_profile=icc_profile)
    else:
        resized.save(buffer, format="JPEG", quality=JPEG_QUALITIES[0], icc_profile=icc_profile)
    fmt = "PNG" if keep_png else "JPEG"
    extension, content_type = ALLOWED_FORMATS[fmt]
    return EncodedImage(buffer.getvalue(), f"{BASENAME}.{extension}", content_type, *size, reencoded=True)


def _resizable(image: Image.Image, *, keep_alpha: bool) -> Image.Image:
    """A mode LANCZOS can resize and the target format can store: RGB or L, or RGBA for a PNG with alpha."""
    if image.mode in ("RGB", "L"):
        return image
    if keep_alpha and (image.mode in _ALPHA_MODES or (image.mode == "P" and "transparency" in image.info)):
        return image.convert("RGBA")
    return flatten_to_rgb(image)


async def prepare_reference(data: bytes, placement: Placement) -> EncodedImage:
    """:func:`fit_reference` in a worker thread, so a resize never blocks the event loop."""
    return await asyncio.to_thread(fit_reference, data, placement)


async def fit_request(request: GenerationRequest) -> GenerationRequest:
    """``request`` with its input image at its placement's reference size (unchanged when it already is, or has none).

    An outpainting mapping (:func:`bot.models.outpaint`) places the result at its own size; a scaled placement
    needs the image shrunk before it is sent, priced or stored, which is this step (in a worker thread).
    """
    placement = request.placement
    if placement is None:
        return request
    [image] = request.input_images
    if (image.width, image.height) == (placement.reference_width, placement.reference_height):
        return request
    fitted = await prepare_reference(base64.b64decode(image.data_b64), placement)
    reference = InputImage(base64.b64encode(fitted.data).decode("ascii"), fitted.width, fitted.height)
    return dataclasses.replace(request, input_images=(reference,))
