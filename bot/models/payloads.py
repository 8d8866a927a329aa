"""The JSON body of each shape of BFL route (:attr:`~bot.models.spec.ModelSpec.body`), built from a request.

One builder per shape in :data:`BODIES`; :meth:`~bot.models.request.GenerationRequest.bfl_payload` picks the one
the request's table entry names. Each sends only fields its routes' schemas define (``tests/bot/test_models.py``
and ``tests/bot/test_carry_on.py`` validate them against BFL's). A new shape of route (a later FLUX Tool) is a
builder here and a :data:`~bot.models.options.BodyShape` name in its table entry.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from bot.models.options import OPTION_NAMES, OUTPUT_FORMAT, BodyShape
from bot.models.video import video_body

if TYPE_CHECKING:
    from bot.models.request import GenerationRequest


def generation_body(request: GenerationRequest) -> dict[str, Any]:
    """A text-to-image or edit route: the prompt, input images, size, seed, options, safety, format."""
    model = request.model
    payload: dict[str, Any] = {"prompt": request.prompt}
    images = [image.data_b64 for image in request.input_images]
    if model.family == "flux3":
        if images:
            payload["images"] = images
    else:
        for index, data in enumerate(images):
            payload["input_image" if index == 0 else f"input_image_{index + 1}"] = data
    if model.size_mode == "dimensions":
        payload["width"] = request.width
        payload["height"] = request.height
    else:
        payload["aspect_ratio"] = request.aspect_ratio
    if model.has_seed:
        payload["seed"] = request.seed
    for option in OPTION_NAMES:
        value = getattr(request, option)
        if value is not None:
            payload[option] = value
    _add_safety(request, payload)
    if model.family != "flux3":  # FLUX 3 has no output_format (it answers JPEG)
        payload["output_format"] = OUTPUT_FORMAT
    return payload


def image_body(request: GenerationRequest) -> dict[str, Any]:
    """A FLUX Tool that takes one ``image`` and nothing to steer it (deblur: no prompt, no size, no options)."""
    [image] = request.input_images
    payload: dict[str, Any] = {"image": image.data_b64}
    if request.model.has_seed:
        payload["seed"] = request.seed
    _add_safety(request, payload)
    payload["output_format"] = OUTPUT_FORMAT
    return payload


def outpainting_body(request: GenerationRequest) -> dict[str, Any]:
    """FLUX Tools outpainting: the reference placed on the canvas, the prompt as optional guidance (no seed).

    Offsets are always explicit and ``auto_crop`` is left at its default (false): the placement keeps the reference
    inside the canvas (:mod:`bot.models.canvas`), so BFL's arithmetic never decides where it lands.
    """
    placement = request.placement
    [image] = request.input_images
    if placement is None or (image.width, image.height) != (placement.reference_width, placement.reference_height):
        raise ValueError("an outpainting request needs its placement and the reference at the placement's size")
    payload: dict[str, Any] = {"input_image": image.data_b64, **placement.request_fields()}
    if request.prompt:
        payload["prompt"] = request.prompt  # the stored (for a styled job: templated) prompt, screened at admission
    _add_safety(request, payload)
    payload["output_format"] = OUTPUT_FORMAT
    return payload


def lora_body(request: GenerationRequest) -> dict[str, Any]:
    """A FLUX.2 [klein] LoRA route: its base's generation body plus the style's ``finetune_id`` and strength."""
    if request.lora is None:
        raise ValueError(f"a request on {request.model.key} carries no LoRA")
    payload = generation_body(request)
    payload["finetune_id"] = request.lora.finetune_id
    payload["finetune_strength"] = request.lora.strength  # always sent: BFL publishes no klein default
    return payload


def _add_safety(request: GenerationRequest, payload: dict[str, Any]) -> None:
    if request.safety_tolerance is not None:  # only ever set by bot.safety, from a moderator's level
        payload["safety_tolerance"] = request.effective_safety_tolerance


BODIES: dict[BodyShape, Callable[[GenerationRequest], dict[str, Any]]] = {
    "generation": generation_body,
    "image": image_body,
    "video": video_body,  # FLUX 3 video: its shape is kept whole in bot.models.video
    "outpainting": outpainting_body,
    "lora": lora_body,
}
"""The builder of each body shape."""
