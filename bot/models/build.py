"""Validation: a member's options turned into a :class:`~bot.models.request.GenerationRequest` (:func:`build_request`).

Every check of an option's value against the model is :meth:`bot.models.spec.ModelSpec.accepts`;
this module only words the refusals.
"""

from __future__ import annotations

import random
import secrets
from collections.abc import Sequence
from typing import Any

from bot.errors import InvalidOptions
from bot.models.canvas import Placement
from bot.models.lora import Lora
from bot.models.options import (
    DEFAULT_ASPECT_RATIO,
    DEFAULT_MODEL,
    FLUX3_DEFAULT_RESOLUTION,
    MAX_SEED,
)
from bot.models.options import echo as _echo
from bot.models.request import GenerationRequest, InputImage
from bot.models.sizes import dimensions_for, nearest_aspect_ratio, tier_dimensions
from bot.models.spec import BOOLEAN_OPTIONS, ModelSpec
from bot.models.table import get_model, models_supporting, models_taking_images
from bot.models.video import VIDEO_DEFAULT_QUALITY, VIDEO_DEFAULT_SECONDS, video_dimensions


def _unsupported(spec: ModelSpec, option: str) -> InvalidOptions:
    others = [m.label for m in models_supporting(option)]
    tail = f" Models that do: {', '.join(others)}." if others else ""
    return InvalidOptions(f"{spec.label} doesn't support `{option}`.{tail}")


def _format_number(value: float) -> str:
    return f"{value:g}"


def build_request(
    *,
    model: str | None,
    prompt: str,
    aspect_ratio: str | None,
    seed: int | None,
    steps: int | None = None,
    guidance: float | None = None,
    raw: bool | None = None,
    prompt_upsampling: bool | None = None,
    resolution: str | None = None,
    grounding: bool | None = None,
    duration: int | None = None,
    input_images: Sequence[InputImage] = (),
    allow_grounding: bool = False,
    max_prompt_length: int = 1000,
    rng: random.Random | None = None,
    placement: Placement | None = None,
    lora: Lora | None = None,
) -> GenerationRequest:
    """Validate a member's options and turn them into a :class:`GenerationRequest`.

    Raises :class:`bot.errors.InvalidOptions` with a message fit for Discord for anything the chosen
    model would refuse, so no invalid request is ever charged or sent. ``None`` means "not given":
    the model defaults to :data:`DEFAULT_MODEL`, the aspect ratio to 1:1, and the seed is drawn from
    ``rng`` (a :class:`random.SystemRandom` by default) so the member can reproduce the image later.
    ``placement``: an outpainting route's canvas (required there, refused elsewhere).
    ``lora``: a LoRA style's, given exactly for a LoRA route (:attr:`ModelSpec.lora_base`).
    """
    spec = get_model(DEFAULT_MODEL if model is None else model.strip())
    _check_lora(spec, lora)
    text = _checked_prompt(prompt, max_prompt_length)
    images = _checked_images(spec, input_images)
    _check_placement(spec, placement, images)
    ratio = _checked_ratio(spec, aspect_ratio, images)
    seed, nonce = _checked_seed(spec, seed, rng)
    given: dict[str, Any] = {
        "steps": steps,
        "guidance": guidance,
        "raw": raw,
        "prompt_upsampling": prompt_upsampling,
        "resolution": resolution,
        "grounding": grounding,
        "duration": duration,
    }
    options = _checked_options(spec, given, allow_grounding=allow_grounding)
    width, height = _output_size(spec, ratio, options, images, placement)
    return GenerationRequest(
        model=spec,
        prompt=text,
        aspect_ratio=ratio,
        width=width,
        height=height,
        seed=seed,
        input_images=images,
        nonce=nonce,
        placement=placement,
        lora=lora,
        **options,
    )


def _check_lora(spec: ModelSpec, lora: Lora | None) -> None:
    """A LoRA route takes exactly a LoRA style's LoRA; no other route takes one."""
    if spec.lora_base is not None and lora is None:
        raise InvalidOptions(f"{spec.label} runs only through a LoRA style (`/style list`).")
    if spec.lora_base is None and lora is not None:
        raise ValueError(f"{spec.key} takes no LoRA")


def _output_size(
    spec: ModelSpec,
    ratio: str,
    options: dict[str, Any],
    images: Sequence[InputImage],
    placement: Placement | None,
) -> tuple[int, int]:
    """The output's width and height by the route's size mode (a video's length and quality are filled in here)."""
    if spec.size_mode == "video":  # the length and quality are always set, so the card and the price name them
        options["duration"] = options["duration"] or VIDEO_DEFAULT_SECONDS
        options["resolution"] = options["resolution"] or VIDEO_DEFAULT_QUALITY
        return video_dimensions(ratio, options["resolution"])
    if spec.size_mode == "resolution":
        return tier_dimensions(spec, ratio, options.get("resolution") or FLUX3_DEFAULT_RESOLUTION)
    if spec.size_mode == "input":  # a FLUX Tool regenerates its one input image at that image's size
        return images[0].width, images[0].height
    if placement is not None:  # an outpainting renders its canvas
        return placement.canvas_width, placement.canvas_height
    return dimensions_for(spec, ratio)


def _check_placement(spec: ModelSpec, placement: Placement | None, images: Sequence[InputImage]) -> None:
    """A canvas route needs a placement of its one image (at the result's size, or already at the reference's)."""
    if spec.size_mode != "canvas":
        if placement is not None:
            raise ValueError(f"{spec.key} takes no placement")
        return
    if placement is None:
        raise InvalidOptions(f"{spec.label} works only through the Zoom out and pan buttons under a result.")
    sizes = {(placement.source_width, placement.source_height), (placement.reference_width, placement.reference_height)}
    if len(images) != 1 or (images[0].width, images[0].height) not in sizes:
        raise InvalidOptions(f"{spec.label} works on one image, the result its canvas was computed for.")


def _checked_prompt(prompt: str, max_prompt_length: int) -> str:
    text = (prompt or "").strip()
    if not text:
        raise InvalidOptions("The prompt is empty. Describe the image you want.")
    if len(text) > max_prompt_length:
        raise InvalidOptions(f"The prompt is too long ({len(text):,} characters). The limit is {max_prompt_length:,}.")
    return text


def _checked_images(spec: ModelSpec, input_images: Sequence[InputImage]) -> tuple[InputImage, ...]:
    images = tuple(input_images)
    if images and not spec.takes_images:
        editors = ", ".join(m.label for m in models_taking_images())
        raise InvalidOptions(f"{spec.label} doesn't take input images. Models that do: {editors}.")
    if len(images) > spec.max_input_images:
        raise InvalidOptions(f"{spec.label} takes at most {spec.max_input_images} input images.")
    if spec.size_mode in ("input", "video") and len(images) != 1:
        raise InvalidOptions(f"{spec.label} works on one image: attach exactly one.")
    return images


def _checked_ratio(spec: ModelSpec, aspect_ratio: str | None, images: Sequence[InputImage]) -> str:
    if aspect_ratio is not None:
        ratio = aspect_ratio.strip()
    elif images:
        first = images[0]
        ratio = "auto" if "auto" in spec.aspect_ratios else nearest_aspect_ratio(spec, first.width, first.height)
    else:
        ratio = DEFAULT_ASPECT_RATIO
    if ratio not in spec.aspect_ratios:
        raise InvalidOptions(
            f"Unknown aspect ratio `{_echo(ratio)}` for {spec.label}. Choose one of: {', '.join(spec.aspect_ratios)}."
        )
    return ratio


def _checked_seed(spec: ModelSpec, seed: int | None, rng: random.Random | None) -> tuple[int, str | None]:
    """The seed to send, and the nonce of a model without one (every such request is a new image)."""
    if not spec.has_seed:
        if seed is not None:
            raise InvalidOptions(f"{spec.label} has no seed: every request makes a new image.")
        return 0, secrets.token_hex(8)
    if seed is None:
        return (rng or random.SystemRandom()).randint(0, MAX_SEED), None
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed <= MAX_SEED:
        raise InvalidOptions(f"`seed` must be a whole number between 0 and {MAX_SEED:,}.")
    return seed, None


def _checked_options(spec: ModelSpec, given: dict[str, Any], *, allow_grounding: bool) -> dict[str, Any]:
    """The given options (``None``: not given), each one the model accepts, or a refusal that says why not."""
    for option, value in given.items():
        if value is not None and not spec.supports(option):
            raise _unsupported(spec, option)
    for option, value in given.items():
        if value is not None and not spec.accepts(option, value):
            raise _out_of_range(spec, option, value)
    options = dict(given)
    if options["guidance"] is not None:
        options["guidance"] = float(options["guidance"])  # 3 and 3.0 must give the same payload and cache key
    if spec.supports("grounding"):
        if options["grounding"] and not allow_grounding:
            raise InvalidOptions(
                "Grounding sends your prompt to web search, and a moderator has not allowed it on this server."
            )
        options["grounding"] = bool(options["grounding"])  # FLUX 3 grounds by default: off unless asked and allowed
    return options


def _out_of_range(spec: ModelSpec, option: str, value: object) -> InvalidOptions:
    """The refusal of a supported option whose value the model does not accept."""
    if option == "steps":
        low, high = spec.steps_range or (0, -1)
        return InvalidOptions(f"`steps` must be between {low} and {high} for {spec.label}.")
    if option == "guidance":
        g_low, g_high = spec.guidance_range or (0.0, -1.0)
        return InvalidOptions(
            f"`guidance` must be between {_format_number(g_low)} and {_format_number(g_high)} for {spec.label}."
        )
    if option in BOOLEAN_OPTIONS:
        return InvalidOptions(f"`{option}` must be true or false.")
    if option == "duration":
        d_low, d_high = spec.duration_range or (0, -1)
        return InvalidOptions(f"A video's length must be a whole number of seconds between {d_low} and {d_high}.")
    tiers = ", ".join(spec.resolutions)
    return InvalidOptions(f"Unknown resolution `{_echo(value)}`. Choose one of: {tiers}.")
