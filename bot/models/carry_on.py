"""Requests that carry on from a result, each one mapping from the stored request: More detail, Sharpen.

A result button is this mapping plus one component (``cogs/_buttons.py``): the cog loads the result's
image, the mapping turns the result's stored request (:meth:`~bot.models.request.GenerationRequest.
from_record`) and that image into the next request, and the request flow prices, admits and shows it
like any other.
"""

from __future__ import annotations

from bot.errors import InvalidOptions
from bot.models.derive import retarget
from bot.models.options import PIXELS_PER_MEGAPIXEL
from bot.models.request import GenerationRequest, InputImage
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
