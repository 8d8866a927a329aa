"""One model's facts (:class:`ModelSpec`): sizes, options and their ranges, input limits, caps, price.

:meth:`ModelSpec.accepts` is the one check of an option's value against the model: validation
(:func:`bot.models.build_request`) and retargeting a request to another model
(:meth:`bot.models.GenerationRequest.retarget`, the fallback offer) both use it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from bot.models.options import (
    ASPECT_RATIOS,
    FLUX3_RESOLUTIONS,
    OPTION_NAMES,
    PIXELS_PER_MEGAPIXEL,
    BodyShape,
    Family,
    SizeMode,
)
from bot.models.pricing import Price

BOOLEAN_OPTIONS: frozenset[str] = frozenset({"raw", "prompt_upsampling", "grounding"})
"""The options that are switches (true or false)."""


@dataclass(frozen=True)
class ModelSpec:
    """One BFL text-to-image endpoint: what it accepts, how big its images are, what it costs.

    ``min_side``/``max_side``/``multiple``/``max_megapixels`` are the limits the endpoint enforces on
    ``width``/``height`` (for ``size_mode == "aspect_ratio"`` models, which take no dimensions, they
    describe the nominal output and are used for display only).
    """

    key: str
    label: str
    family: Family
    size_mode: SizeMode
    multiple: int
    min_side: int
    max_side: int
    max_megapixels: float
    target_megapixels: float
    options: frozenset[str]
    price: Price
    steps_range: tuple[int, int] | None = None
    guidance_range: tuple[float, float] | None = None
    max_active_tasks: int = 24
    """BFL's cap on active tasks for this route; the claim (bot.engine.claim) keeps it inside BFL_MAX_ACTIVE_TASKS."""
    has_seed: bool = True
    aspect_ratios: tuple[str, ...] = ASPECT_RATIOS
    max_input_images: int = 0
    """How many input images the endpoint takes (0: text-to-image only)."""
    input_max_megapixels: float = 4.0
    input_min_side: int = 64
    safety_range: tuple[int, int] = (0, 6)
    """The endpoint's ``safety_tolerance`` range (FLUX.1/Kontext 0–6, FLUX.2 0–5, FLUX 3 0–4)."""
    image_safety_max: int | None = None
    """The highest ``safety_tolerance`` the endpoint applies when input images are attached (FLUX 3: 2,
    whatever is sent); None: no such cap."""
    takes_user: bool = True
    """Whether the route's schema has ``user``, the opaque end-user id (every route in BFL's 2026 spec but
    FLUX 3 Image, whose strict schema refuses unknown fields, and the FLUX.1 Ultra finetune)."""
    body: BodyShape = "generation"
    """The shape of the route's JSON body (:data:`bot.models.payloads.BODIES` builds it from a request)."""
    duration_range: tuple[int, int] | None = None
    """A video's length in whole seconds (FLUX 3 video: 5–20), set exactly when ``duration`` is an option."""
    resolutions: tuple[str, ...] = tuple(FLUX3_RESOLUTIONS)
    """The values of ``resolution`` where it is an option: FLUX 3 Image's tiers, or a video's qualities."""
    button_only: bool = False
    """Reached only through a result button (a FLUX Tools route: Sharpen's deblur), never picked by a member:
    not in ``/imagine``'s or ``/edit``'s choices, ``/prefs``, ``DEFAULT_MODEL``/``DRAFT_MODEL`` or ``/budget``'s
    draft and fallback models (:func:`bot.models.offered_models`)."""
    lora_base: str | None = None
    """A FLUX.2 [klein] LoRA route (``-finetuned``, body ``lora``): the base model it adds a LoRA to. Reached only
    through a LoRA style (:mod:`bot.styles`), never picked by a member (:attr:`offered`)."""

    def __post_init__(self) -> None:
        unknown = self.options - set(OPTION_NAMES)
        if unknown:
            raise ValueError(f"{self.key}: unknown options {sorted(unknown)}")
        if ("steps" in self.options) != (self.steps_range is not None):
            raise ValueError(f"{self.key}: steps_range must be set exactly when steps is supported")
        if ("guidance" in self.options) != (self.guidance_range is not None):
            raise ValueError(f"{self.key}: guidance_range must be set exactly when guidance is supported")
        if ("duration" in self.options) != (self.duration_range is not None):
            raise ValueError(f"{self.key}: duration_range must be set exactly when duration is supported")
        if (self.size_mode == "input") != (self.body == "image") or (self.body == "image" and self.options):
            raise ValueError(f"{self.key}: an `image` body renders at its input's size and takes no options")
        outpainting = self.body == "outpainting"
        if (self.size_mode == "canvas") != outpainting or (outpainting and self.options):
            raise ValueError(f"{self.key}: an `outpainting` body renders its placement's canvas and takes no options")
        if (self.body == "lora") != (self.lora_base is not None):
            raise ValueError(f"{self.key}: a `lora` body is exactly a LoRA route's (lora_base set)")

    @property
    def offered(self) -> bool:
        """Whether members pick this model themselves: not a button-only route, nor a LoRA style's route."""
        return not self.button_only and self.lora_base is None

    @property
    def max_pixels(self) -> int:
        """The megapixel cap as a pixel count."""
        return round(self.max_megapixels * PIXELS_PER_MEGAPIXEL)

    @property
    def target_pixels(self) -> int:
        """The pixel count we aim for when turning an aspect ratio into a size."""
        return round(self.target_megapixels * PIXELS_PER_MEGAPIXEL)

    def supports(self, option: str) -> bool:
        """Whether the endpoint accepts ``option`` (one of :data:`OPTION_NAMES`)."""
        return option in self.options

    def accepts(self, option: str, value: Any) -> bool:
        """Whether the endpoint takes ``option`` set to ``value``: supported, of the right type, within range.

        ``None`` (not sent) is never "accepted": there is nothing to send.
        """
        if value is None or not self.supports(option):
            return False
        if option == "steps":
            low, high = self.steps_range or (0, -1)
            return not isinstance(value, bool) and isinstance(value, int) and low <= value <= high
        if option == "guidance":
            g_low, g_high = self.guidance_range or (0.0, -1.0)
            number = not isinstance(value, bool) and isinstance(value, int | float)
            return number and math.isfinite(value) and g_low <= value <= g_high
        if option == "resolution":
            return value in self.resolutions
        if option == "duration":
            d_low, d_high = self.duration_range or (0, -1)
            return not isinstance(value, bool) and isinstance(value, int) and d_low <= value <= d_high
        return isinstance(value, bool)  # the switches (BOOLEAN_OPTIONS)

    def accepts_input(self, width: int, height: int) -> bool:
        """Whether the endpoint takes an input image of ``width``×``height`` (within its size limits)."""
        too_big = width * height > self.input_max_megapixels * PIXELS_PER_MEGAPIXEL
        return not too_big and min(width, height) >= self.input_min_side

    @property
    def takes_images(self) -> bool:
        """Whether the endpoint edits (takes input images)."""
        return self.max_input_images > 0

    def estimate_cost_micros(
        self,
        width: int,
        height: int,
        inputs: Sequence[int] = (),
        resolution: str | None = None,
        seconds: int | None = None,
    ) -> int:
        """Upper-bound cost in micro-dollars of one ``width``×``height`` output from ``inputs`` (pixels each).

        ``seconds``: a video's length (FLUX 3 video is priced per second).
        """
        return self.price.estimate_micros(width * height, inputs, resolution, seconds)

    def describe_price(self) -> str:
        """The price for people: ``$0.04/image`` or ``from $0.03 (+$0.015/extra MP)``."""
        return self.price.describe()
