"""Requests that carry on from a result, each one mapping from the stored request: More detail, Sharpen, Zoom, pans.

The outpainting buttons are Zoom out 1.5×, Zoom out 2× and the four pans (:func:`outpainting`).

A result button is this mapping plus one component (``cogs/_buttons.py``): the cog loads the result's
image, the mapping turns the result's stored request (:meth:`~bot.models.request.GenerationRequest.
from_record`) and that image into the next request, and the request flow prices, admits and shows it
like any other.
"""

from __future__ import annotations

from collections.abc import Callable

from bot.errors import InvalidOptions
from bot.models.canvas import ACTIONS, placement_for
from bot.models.derive import retarget
from bot.models.options import PIXELS_PER_MEGAPIXEL
from bot.models.request import GenerationRequest, InputImage
from bot.models.sizes import nearest_aspect_ratio
from bot.models.table import get_model

DETAIL_MODEL = "flux-3-image"
"""More detail renders on FLUX 3 Image, the one model with tiers above 1 MP (BFL has no plain upscaler)."""
TOP_TIER = "4k"


def detail_tier(request: GenerationRequest) -> str:
    """The tier More detail renders ``request``'s result at: 2k, or 4k from a FLUX 3 2k result."""
    current = request.resolution if request.model.key == DETAIL_MODEL else None
    if current == TOP_TIER:
        raise InvalidOptions(
            "This image is already at FLUX 3's highest resolution (4k): there is no more detail to add."
        )
    return TOP_TIER if current == "2k" else "2k"


def more_detail(request: GenerationRequest, result: InputImage) -> GenerationRequest:
    """More detail: the same prompt (and style) on FLUX 3 at the next tier, with the result as its reference."""
    return retarget(request, DETAIL_MODEL, resolution=detail_tier(request), input_images=(result,))


SHARPEN_MODEL = "flux-tools/deblur-v1"
"""Sharpen sends the result to BFL's deblur tool (a button-only route of the model table)."""
SHARPEN_FIT = 1.05
"""How far over deblur's input limit a result may be and still be fitted to it when loaded (a shrink of at most
2.5% a side): FLUX 3's 2k tier is 4.2 MP, just over the 2048² limit. Anything larger (a 4k result) is refused."""


def sharpen(request: GenerationRequest, result: InputImage) -> GenerationRequest:
    """Sharpen: the result alone, on deblur, at its own size, with the seed kept where both routes take one.

    The prompt and style stay on the request (the card, Details and history show what the image is of) but
    deblur is sent none. A result larger than deblur takes is refused before anything is loaded or charged.
    """
    spec = get_model(SHARPEN_MODEL)
    pixels = request.width * request.height  # the result's size as asked (its image is loaded after this check)
    if pixels > spec.input_max_megapixels * PIXELS_PER_MEGAPIXEL * SHARPEN_FIT:
        raise InvalidOptions(
            f"This image is {pixels / PIXELS_PER_MEGAPIXEL:.1f} MP, and Sharpen works on images of at most 4 MP"
            " (BFL's deblur limit), so it can't sharpen this one. Nothing was charged."
        )
    return retarget(request, spec, input_images=(result,))


CANVAS_MODEL = "flux-tools/outpainting-v1"
"""Zoom out and the pans send the result to BFL's outpainting tool (a button-only route of the model table)."""


def outpaint(request: GenerationRequest, result: InputImage, key: str) -> GenerationRequest:
    """The outpainting button ``key`` (a :data:`bot.models.canvas.ACTIONS` key): ``result`` placed on its canvas.

    The placement is computed from the result's own size (the loaded image's: a zoom of a zoom starts from the
    first canvas), within BFL's 4 MP. The stored prompt (the templated one for a styled job) goes as guidance;
    the request keeps its style for the card. ``result`` is at its own size here: when the placement is
    scaled, :func:`bot.images.reference.fit_request` resizes it to the reference size before it is sent.
    """
    spec = get_model(CANVAS_MODEL)
    placement = placement_for(key, result.width, result.height)
    ratio = nearest_aspect_ratio(spec, placement.canvas_width, placement.canvas_height)
    return retarget(request, spec, input_images=(result,), placement=placement, aspect_ratio=ratio)


def outpainting(key: str) -> Callable[[GenerationRequest, InputImage], GenerationRequest]:
    """The mapping of one outpainting button (``zoom15``, ``zoom2``, ``pan_left`` …), as a carry-on takes it."""
    if key not in ACTIONS:
        raise KeyError(key)

    def mapping(request: GenerationRequest, result: InputImage) -> GenerationRequest:
        return outpaint(request, result, key)

    mapping.__name__ = f"outpaint_{key}"
    mapping.__doc__ = f"{ACTIONS[key].title}: :func:`outpaint` with the ``{key}`` placement."
    return mapping
