"""Requests that carry on from a result, each one mapping from the stored request: More detail.

A result button is this mapping plus one component (``cogs/_buttons.py``): the cog loads the result's
image, the mapping turns the result's stored request (:meth:`~bot.models.request.GenerationRequest.
from_record`) and that image into the next request, and the request flow prices, admits and shows it
like any other.
"""

from __future__ import annotations

from bot.errors import InvalidOptions
from bot.models.derive import retarget
from bot.models.request import GenerationRequest, InputImage

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
