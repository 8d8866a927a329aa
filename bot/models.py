"""The model table: one entry per BFL endpoint drives validation, the command's choices, prices and docs.

Everything here is checked against BFL's OpenAPI spec (``tests/specs/bfl-openapi-2026.json``, late
2026) by ``tests/bot/test_models.py``: every payload we build validates against its endpoint's
request schema and carries no field the schema does not define (BFL answers unknown or out-of-range
fields with a 422, and a test server rejects them too).

Money is integer micro-dollars (see :mod:`bot.billing.money`); megapixels are *decimal* (10⁶ pixels), which is
how BFL reports ``output_mp`` (1440×1440 → 2.07) and, being the smaller unit, keeps our megapixel
estimates an upper bound.
"""

from __future__ import annotations

import functools
import hashlib
import json
import math
import random
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

from bot.billing.money import format_usd
from bot.errors import InvalidOptions
from bot.safety.levels import applied_tolerance

__all__ = [
    "ASPECT_RATIOS",
    "DEFAULT_ASPECT_RATIO",
    "DEFAULT_MODEL",
    "FLUX3_ASPECT_RATIOS",
    "FLUX3_RESOLUTIONS",
    "MAX_SEED",
    "MODELS",
    "OPTION_NAMES",
    "FlatPrice",
    "GenerationRequest",
    "InputImage",
    "MegapixelPrice",
    "ModelSpec",
    "TierPrice",
    "build_request",
    "dimensions_for",
    "flux3_resolution_prices",
    "get_model",
    "models_supporting",
    "models_taking_images",
    "nearest_aspect_ratio",
]

ASPECT_RATIOS: tuple[str, ...] = ("1:1", "16:9", "9:16", "4:3", "3:4", "3:2", "2:3", "21:9", "9:21")
"""Aspect ratios offered to members. All lie within 21:9…9:21, the range BFL's aspect-ratio models accept."""

DEFAULT_ASPECT_RATIO = "1:1"
DEFAULT_MODEL = "flux-pro-1.1"
MAX_SEED = 2**32 - 1
"""Seeds are limited to 32 bits: the schema only says ``integer``, and every FLUX frontend uses uint32."""

OPTION_NAMES: tuple[str, ...] = ("steps", "guidance", "raw", "prompt_upsampling", "resolution", "grounding")
"""The optional knobs a model may accept (``seed`` is not listed: see :attr:`ModelSpec.has_seed`)."""

FLUX3_ASPECT_RATIOS: tuple[str, ...] = (
    "auto",
    "21:9",
    "2:1",
    "16:9",
    "7:5",
    "3:2",
    "4:3",
    "5:4",
    "1:1",
    "4:5",
    "3:4",
    "5:7",
    "2:3",
    "1:2",
    "9:16",
    "9:21",
)
"""FLUX 3 Image's own ratios (``auto``: follow the reference image, or the model's choice)."""

FLUX3_RESOLUTIONS: dict[str, float] = {"768sq": 0.6, "1k": 1.0, "1.5k": 2.4, "2k": 4.2, "4k": 16.8}
"""FLUX 3's equal-area resolution tiers and their nominal decimal megapixels (BFL's figures)."""
FLUX3_DEFAULT_RESOLUTION = "1k"

OUTPUT_FORMAT = "jpeg"  # JPEG keeps 4 MP results well under Discord's 10 MiB upload limit
PIXELS_PER_MEGAPIXEL = 1_000_000

SizeMode = Literal["dimensions", "aspect_ratio", "resolution"]
Family = Literal["flux1", "flux2", "flux3"]


def _ceil_megapixels(pixels: int) -> int:
    """Whole decimal megapixels, rounded up (an upper bound), at least 1."""
    return max(1, -(-pixels // PIXELS_PER_MEGAPIXEL))  # integer ceiling, no floats near money


@dataclass(frozen=True)
class FlatPrice:
    """A flat price per image, whatever its size (the FLUX.1 family)."""

    micros: int
    strategy: ClassVar[str] = "flat"

    def estimate_micros(self, pixels: int, inputs: Sequence[int] = (), resolution: str | None = None) -> int:
        """The price of one image of ``pixels`` pixels (neither the size nor the inputs matter)."""
        return self.micros

    def describe(self) -> str:
        """The price for people, e.g. ``$0.04/image``."""
        return f"{format_usd(self.micros)}/image"


@dataclass(frozen=True)
class MegapixelPrice:
    """FLUX.2 pricing: the first megapixel costs ``first_mp_micros``, each further one ``extra_mp_micros``.

    BFL bills fractional megapixels in ways its docs do not pin down (an observed ``flux-2-pro`` task of
    1.98 MP cost 4.5 credits, i.e. 2 MP). To keep a budget reservation an *upper bound*, output megapixels
    are rounded **up** to whole decimal megapixels: 1.0 MP → 1, 1.01 MP → 2. The settled amount comes
    from the submit response's ``cost`` anyway.
    """

    first_mp_micros: int
    extra_mp_micros: int
    strategy: ClassVar[str] = "megapixel"

    def estimate_micros(self, pixels: int, inputs: Sequence[int] = (), resolution: str | None = None) -> int:
        """Upper-bound price of one output of ``pixels`` pixels from input images of ``inputs`` pixels.

        An edit bills its inputs too (bfl-api.md §00.8: a 1 MP-in, 1 MP-out ``flux-2-pro`` edit costs
        about $0.045 = first MP + one extra MP): each input is rounded up to whole megapixels on its own
        and billed at the extra-megapixel rate.
        """
        megapixels = _ceil_megapixels(pixels) + sum(_ceil_megapixels(p) for p in inputs)
        return self.first_mp_micros + (megapixels - 1) * self.extra_mp_micros

    def describe(self) -> str:
        """The price for people, e.g. ``from $0.03 (+$0.015/extra MP)``."""
        return f"from {format_usd(self.first_mp_micros)} (+{format_usd(self.extra_mp_micros)}/extra MP)"


@dataclass(frozen=True)
class TierPrice:
    """FLUX 3 pricing: one price per resolution tier, whatever the aspect ratio.

    BFL publishes 1k, 2k and 4k (secondary sources); a tier without a published price takes the next
    published one above it, so an estimate stays an upper bound. The ledger settles with the ``cost`` BFL
    reports anyway.
    """

    tiers: tuple[tuple[str, int], ...]
    strategy: ClassVar[str] = "resolution"

    def estimate_micros(self, pixels: int, inputs: Sequence[int] = (), resolution: str | None = None) -> int:
        """The price of the ``resolution`` tier (the default tier when ``None``)."""
        prices = dict(self.tiers)
        return prices[resolution or FLUX3_DEFAULT_RESOLUTION]

    def describe(self) -> str:
        """The price for people, e.g. ``$0.048 (1k) to $0.607 (4k)``."""
        low, high = self.tiers[0], self.tiers[-1]
        default = dict(self.tiers)[FLUX3_DEFAULT_RESOLUTION]
        return f"{format_usd(default)} at 1k ({format_usd(low[1])}–{format_usd(high[1])} by resolution)"


Price = FlatPrice | MegapixelPrice | TierPrice


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

    def __post_init__(self) -> None:
        unknown = self.options - set(OPTION_NAMES)
        if unknown:
            raise ValueError(f"{self.key}: unknown options {sorted(unknown)}")
        if ("steps" in self.options) != (self.steps_range is not None):
            raise ValueError(f"{self.key}: steps_range must be set exactly when steps is supported")
        if ("guidance" in self.options) != (self.guidance_range is not None):
            raise ValueError(f"{self.key}: guidance_range must be set exactly when guidance is supported")

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

    @property
    def takes_images(self) -> bool:
        """Whether the endpoint edits (takes input images)."""
        return self.max_input_images > 0

    def estimate_cost_micros(
        self, width: int, height: int, inputs: Sequence[int] = (), resolution: str | None = None
    ) -> int:
        """Upper-bound cost in micro-dollars of one ``width``×``height`` output from ``inputs`` (pixels each)."""
        return self.price.estimate_micros(width * height, inputs, resolution)

    def describe_price(self) -> str:
        """The price for people: ``$0.04/image`` or ``from $0.03 (+$0.015/extra MP)``."""
        return self.price.describe()


_FLUX1_SIDE: dict[str, Any] = {"multiple": 32, "min_side": 256, "max_side": 1440, "max_megapixels": 1440 * 1440 / 1e6}
# FLUX.2: the schema only says "minimum 64"; BFL's docs add "multiples of 16, max 4 MP (e.g.
# 2048×2048)". 2048×2048 is 4.19 decimal MP, so "4 MP" there means 2048²; we cap sides at 2048 too,
# which is conservative (we only ever ask for ~1 MP).
_FLUX2_SIDE: dict[str, Any] = {"multiple": 16, "min_side": 64, "max_side": 2048, "max_megapixels": 2048 * 2048 / 1e6}
# FLUX.2 inputs: up to 8 images (Flux2Inputs: input_image … input_image_8), sent at ≤ 4 MP (the output cap;
# BFL's own limit is 20 MP per input, but every input megapixel is billed).
_FLUX2_INPUTS: dict[str, Any] = {"max_input_images": 8, "input_max_megapixels": 4.0, "safety_range": (0, 5)}
_ONE_MP_SQUARE = 1024 * 1024 / 1e6  # FLUX.1 is trained around 1024²: 1:1 → 1024×1024

MODELS: dict[str, ModelSpec] = {
    spec.key: spec
    for spec in (
        ModelSpec(
            key="flux-pro-1.1",
            label="FLUX1.1 [pro]",
            family="flux1",
            size_mode="dimensions",
            **_FLUX1_SIDE,
            target_megapixels=_ONE_MP_SQUARE,
            options=frozenset({"prompt_upsampling"}),
            price=FlatPrice(40_000),
        ),
        ModelSpec(
            key="flux-pro-1.1-ultra",
            label="FLUX1.1 [pro] Ultra",
            family="flux1",
            size_mode="aspect_ratio",
            # Not sent: Ultra takes only `aspect_ratio` and renders ~4 MP (2048×2048 at 1:1).
            multiple=32,
            min_side=256,
            max_side=4096,
            max_megapixels=4.5,
            target_megapixels=2048 * 2048 / 1e6,
            options=frozenset({"raw", "prompt_upsampling"}),
            price=FlatPrice(60_000),
        ),
        ModelSpec(
            key="flux-dev",
            label="FLUX.1 [dev]",
            family="flux1",
            size_mode="dimensions",
            **_FLUX1_SIDE,
            target_megapixels=_ONE_MP_SQUARE,
            options=frozenset({"steps", "guidance", "prompt_upsampling"}),
            steps_range=(1, 50),
            guidance_range=(1.5, 5.0),
            price=FlatPrice(25_000),
        ),
        ModelSpec(
            key="flux-kontext-pro",
            label="FLUX.1 Kontext [pro]",
            family="flux1",
            size_mode="aspect_ratio",
            # Not sent: Kontext takes `aspect_ratio` and renders "~1 MP total".
            multiple=16,
            min_side=256,
            max_side=2048,
            max_megapixels=1.5,
            target_megapixels=_ONE_MP_SQUARE,
            options=frozenset({"prompt_upsampling"}),
            price=FlatPrice(40_000),
            max_input_images=4,
        ),
        ModelSpec(
            key="flux-kontext-max",
            label="FLUX.1 Kontext [max]",
            family="flux1",
            size_mode="aspect_ratio",
            multiple=16,
            min_side=256,
            max_side=2048,
            max_megapixels=1.5,
            target_megapixels=_ONE_MP_SQUARE,
            options=frozenset({"prompt_upsampling"}),
            price=FlatPrice(80_000),
            max_active_tasks=6,  # BFL's tighter concurrency cap for this endpoint
            max_input_images=4,
        ),
        ModelSpec(
            key="flux-2-pro",
            label="FLUX.2 [pro]",
            family="flux2",
            size_mode="dimensions",
            **_FLUX2_SIDE,
            # Aim at (not over) 1 MP so the default size costs exactly the first-megapixel price.
            target_megapixels=1.0,
            # `Flux2Inputs` defines no prompt_upsampling (docs tables do; the schema wins).
            options=frozenset(),
            price=MegapixelPrice(first_mp_micros=30_000, extra_mp_micros=15_000),
            **_FLUX2_INPUTS,
        ),
        ModelSpec(
            key="flux-2-max",
            label="FLUX.2 [max]",
            family="flux2",
            size_mode="dimensions",
            **_FLUX2_SIDE,
            target_megapixels=1.0,
            options=frozenset(),
            price=MegapixelPrice(first_mp_micros=70_000, extra_mp_micros=30_000),
            **_FLUX2_INPUTS,
        ),
        ModelSpec(
            key="flux-2-flex",
            label="FLUX.2 [flex]",
            family="flux2",
            size_mode="dimensions",
            **_FLUX2_SIDE,
            target_megapixels=1.0,
            # The API's default for flex is prompt_upsampling=true; we send it only when asked.
            options=frozenset({"steps", "guidance", "prompt_upsampling"}),
            steps_range=(1, 50),
            guidance_range=(1.5, 10.0),
            # Pricing pages disagree ($0.05/MP on the newest, $0.06/MP elsewhere): take the higher one.
            price=MegapixelPrice(first_mp_micros=60_000, extra_mp_micros=60_000),
            **_FLUX2_INPUTS,
        ),
        ModelSpec(
            key="flux-2-klein-4b",
            label="FLUX.2 [klein] 4B",
            family="flux2",
            size_mode="dimensions",
            **_FLUX2_SIDE,
            target_megapixels=1.0,
            options=frozenset(),
            price=MegapixelPrice(first_mp_micros=14_000, extra_mp_micros=1_000),
            **{**_FLUX2_INPUTS, "max_input_images": 4},  # Flux2KleinInputs: input_image … input_image_4
        ),
        ModelSpec(
            key="flux-2-klein-9b",
            label="FLUX.2 [klein] 9B",
            family="flux2",
            size_mode="dimensions",
            **_FLUX2_SIDE,
            target_megapixels=1.0,
            options=frozenset(),
            # bfl-api.md §00.8: a 1 MP-in, 1 MP-out edit costs about $0.017.
            price=MegapixelPrice(first_mp_micros=15_000, extra_mp_micros=2_000),
            **{**_FLUX2_INPUTS, "max_input_images": 4},
        ),
        ModelSpec(
            key="flux-3-image",
            label="FLUX 3 Image",
            family="flux3",
            size_mode="resolution",
            # Not sent: FLUX 3 takes `aspect_ratio` and an equal-area `resolution` tier (display only).
            multiple=16,
            min_side=256,
            max_side=8192,
            max_megapixels=16.8,
            target_megapixels=1.0,
            options=frozenset({"resolution", "grounding"}),
            # 1k $0.048, 2k $0.10, 4k $0.607 (bfl-api.md §00.2); 768sq and 1.5k take the tier above.
            price=TierPrice((("768sq", 48_000), ("1k", 48_000), ("1.5k", 100_000), ("2k", 100_000), ("4k", 607_000))),
            has_seed=False,
            aspect_ratios=FLUX3_ASPECT_RATIOS,
            max_input_images=10,
            input_max_megapixels=16.0,
            input_min_side=256,
            safety_range=(0, 4),
            image_safety_max=2,  # BFL caps FLUX 3 at 2 when images are attached (bfl-api.md §00 / issue 21)
            takes_user=False,  # Flux3ImageInputs is strict and has no `user`
        ),
    )
}
"""Every model members can pick, by BFL endpoint name, in the order the command lists them."""

assert DEFAULT_MODEL in MODELS


def get_model(key: str) -> ModelSpec:
    """The spec for ``key``, or :class:`InvalidOptions` naming the models that exist."""
    try:
        return MODELS[key]
    except KeyError:
        names = ", ".join(f"`{k}`" for k in MODELS)
        raise InvalidOptions(f"Unknown model `{_echo(key)}`. Choose one of: {names}.") from None


def models_supporting(option: str) -> list[ModelSpec]:
    """The models that accept ``option``, in table order."""
    return [spec for spec in MODELS.values() if spec.supports(option)]


def models_taking_images() -> list[ModelSpec]:
    """The models that edit (take input images), in table order."""
    return [spec for spec in MODELS.values() if spec.takes_images]


def flux3_resolution_prices() -> list[tuple[str, int]]:
    """Each FLUX 3 ``resolution`` tier with its price in micro-dollars, in tier order (the option's choices)."""
    spec = MODELS["flux-3-image"]
    return [(tier, spec.estimate_cost_micros(1, 1, (), tier)) for tier in FLUX3_RESOLUTIONS]


def _parse_ratio(aspect_ratio: str) -> tuple[int, int]:
    left, _, right = aspect_ratio.partition(":")
    return int(left), int(right)


@functools.lru_cache(maxsize=256)
def dimensions_for(spec: ModelSpec, aspect_ratio: str) -> tuple[int, int]:
    """The ``(width, height)`` a request for ``aspect_ratio`` on ``spec`` produces.

    For ``dimensions`` models this is what we send: multiples of ``spec.multiple`` within the side
    limits and the megapixel cap (and, for megapixel-priced models, not above the target, so the
    default size stays in the cheapest price step), chosen to match the ratio as closely as the
    multiple allows while staying near ``target_megapixels``. For ``aspect_ratio`` models it is the
    nominal output size, for display and cost estimates only.
    """
    if aspect_ratio not in spec.aspect_ratios:
        raise ValueError(f"unsupported aspect ratio {aspect_ratio!r}")
    if spec.size_mode == "resolution":
        return _tier_dimensions(spec, aspect_ratio, FLUX3_DEFAULT_RESOLUTION)
    ratio_w, ratio_h = _parse_ratio(aspect_ratio)
    ratio = ratio_w / ratio_h
    target = spec.target_pixels
    cap = spec.max_pixels
    if isinstance(spec.price, MegapixelPrice):
        cap = min(cap, target)
    step = spec.multiple
    best: tuple[tuple[float, int], int, int] | None = None
    for height in range(_round_up(spec.min_side, step), spec.max_side + 1, step):
        exact_width = height * ratio
        for width in {math.floor(exact_width / step) * step, math.ceil(exact_width / step) * step}:
            if not spec.min_side <= width <= spec.max_side or width * height > cap:
                continue
            # Ratio accuracy matters most; area closeness breaks near-ties. The 0.1 weight was found by
            # trying every ratio: it keeps exact ratios where the multiple allows (1152×864 for 4:3)
            # without drifting far from the target area.
            score = abs(math.log(width / height / ratio)) + 0.1 * abs(math.log(width * height / target))
            candidate = ((score, -width * height), width, height)
            if best is None or candidate[0] < best[0]:
                best = candidate
    if best is None:  # pragma: no cover - the table's limits always admit a size
        raise ValueError(f"no size for {aspect_ratio} on {spec.key}")
    return best[1], best[2]


def _round_up(value: int, step: int) -> int:
    return -(-value // step) * step


def _tier_dimensions(spec: ModelSpec, aspect_ratio: str, resolution: str) -> tuple[int, int]:
    """FLUX 3's nominal size for a ratio and a tier (``auto`` shown as square): display only."""
    ratio_w, ratio_h = (1, 1) if aspect_ratio == "auto" else _parse_ratio(aspect_ratio)
    area = FLUX3_RESOLUTIONS[resolution] * PIXELS_PER_MEGAPIXEL
    width = max(spec.min_side, round(math.sqrt(area * ratio_w / ratio_h) / spec.multiple) * spec.multiple)
    height = max(spec.min_side, round(math.sqrt(area * ratio_h / ratio_w) / spec.multiple) * spec.multiple)
    return width, height


def nearest_aspect_ratio(spec: ModelSpec, width: int, height: int) -> str:
    """The model's fixed aspect ratio closest to ``width``×``height`` (for an edit that names none)."""
    fixed = [r for r in spec.aspect_ratios if r != "auto"]
    return min(fixed, key=lambda r: abs(math.log(width / height) - math.log(_ratio_value(r))))


def _ratio_value(aspect_ratio: str) -> float:
    left, right = _parse_ratio(aspect_ratio)
    return left / right


@dataclass(frozen=True)
class InputImage:
    """An input image ready for BFL: base64 of a re-encoded, metadata-free image, and its size."""

    data_b64: str
    width: int
    height: int

    @property
    def pixels(self) -> int:
        """Its pixel count (FLUX.2 bills input megapixels)."""
        return self.width * self.height


@dataclass(frozen=True)
class GenerationRequest:
    """A validated text-to-image request; build it with :func:`build_request`.

    Options left as ``None`` are not sent, so BFL applies the endpoint's own default.
    """

    model: ModelSpec
    prompt: str
    aspect_ratio: str
    width: int
    height: int
    seed: int
    steps: int | None = None
    guidance: float | None = None
    raw: bool | None = None
    prompt_upsampling: bool | None = None
    resolution: str | None = None
    grounding: bool | None = None
    input_images: tuple[InputImage, ...] = ()
    nonce: str | None = None
    """Set for models without a seed: every such request is a new image, so it never hits the cache."""
    safety_tolerance: int | None = None
    """The server's safety level mapped onto this model's range (set by :mod:`bot.safety`); None: BFL's default."""
    style: str | None = None
    """The server style applied to ``prompt`` (:mod:`bot.styles`): recorded on the job and shown on the card,
    never sent to BFL (nor part of the cache key: the templated prompt already is)."""

    def bfl_payload(self) -> dict[str, Any]:
        """Exactly the JSON body for ``POST /v1/<model.key>``: only fields the endpoint's schema defines."""
        payload: dict[str, Any] = {"prompt": self.prompt}
        images = [image.data_b64 for image in self.input_images]
        if self.model.family == "flux3":
            if images:
                payload["images"] = images
        else:
            for index, data in enumerate(images):
                payload["input_image" if index == 0 else f"input_image_{index + 1}"] = data
        if self.model.size_mode == "dimensions":
            payload["width"] = self.width
            payload["height"] = self.height
        else:
            payload["aspect_ratio"] = self.aspect_ratio
        if self.model.has_seed:
            payload["seed"] = self.seed
        for option in OPTION_NAMES:
            value = getattr(self, option)
            if value is not None:
                payload[option] = value
        if self.safety_tolerance is not None:  # only ever set by bot.safety, from a moderator's level
            payload["safety_tolerance"] = self.effective_safety_tolerance
        if self.model.family != "flux3":  # FLUX 3 has no output_format (it answers JPEG)
            payload["output_format"] = OUTPUT_FORMAT
        return payload

    @property
    def effective_safety_tolerance(self) -> int | None:
        """The ``safety_tolerance`` the model applies: the dial's value, within the model's cap for inputs.

        FLUX 3 with input images applies at most 2 whatever is sent, so that is what is sent (and
        stored with the job, so Details shows it). None: not set (BFL's default applies).
        """
        if self.safety_tolerance is None:
            return None
        return applied_tolerance(self.safety_tolerance, self.model.image_safety_max, bool(self.input_images))

    @property
    def cacheable(self) -> bool:
        """Whether an identical request gives the identical image (not for models without a seed)."""
        return self.nonce is None

    def cache_key(self) -> str:
        """A sha256 hex digest identifying the image this request produces.

        Identical requests (same model, prompt, size, options and seed) share a key; any difference
        changes it. It covers the exact payload, so a change in what we send invalidates old entries.
        """
        canonical: dict[str, Any] = {
            "v": 1,
            "model": self.model.key,
            "aspect_ratio": self.aspect_ratio,
            "payload": self.bfl_payload(),
        }
        if self.nonce is not None:
            canonical["nonce"] = self.nonce
        blob = json.dumps(canonical, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
        return hashlib.sha256(blob.encode("utf-8")).hexdigest()

    @property
    def megapixels(self) -> float:
        """Output size in decimal megapixels (for display; prices use integer pixel counts)."""
        return self.width * self.height / PIXELS_PER_MEGAPIXEL

    @property
    def estimated_cost_micros(self) -> int:
        """Upper-bound cost in micro-dollars (what a budget reservation should hold), inputs included."""
        return self.model.estimate_cost_micros(
            self.width, self.height, [image.pixels for image in self.input_images], self.resolution
        )


def _echo(value: object, limit: int = 40) -> str:
    """User input made safe to quote inside backticks in a Discord message."""
    text = str(value).replace("`", "'").replace("\n", " ")
    return text if len(text) <= limit else text[: limit - 1] + "…"


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
    input_images: Sequence[InputImage] = (),
    allow_grounding: bool = False,
    max_prompt_length: int = 1000,
    rng: random.Random | None = None,
) -> GenerationRequest:
    """Validate a member's options and turn them into a :class:`GenerationRequest`.

    Raises :class:`bot.errors.InvalidOptions` with a message fit for Discord for anything the chosen
    model would refuse, so no invalid request is ever charged or sent. ``None`` means "not given":
    the model defaults to :data:`DEFAULT_MODEL`, the aspect ratio to 1:1, and the seed is drawn from
    ``rng`` (a :class:`random.SystemRandom` by default) so the member can reproduce the image later.
    """
    spec = get_model(DEFAULT_MODEL if model is None else model.strip())

    text = (prompt or "").strip()
    if not text:
        raise InvalidOptions("The prompt is empty. Describe the image you want.")
    if len(text) > max_prompt_length:
        raise InvalidOptions(f"The prompt is too long ({len(text):,} characters). The limit is {max_prompt_length:,}.")

    images = tuple(input_images)
    if images and not spec.takes_images:
        editors = ", ".join(m.label for m in models_taking_images())
        raise InvalidOptions(f"{spec.label} doesn't take input images. Models that do: {editors}.")
    if len(images) > spec.max_input_images:
        raise InvalidOptions(f"{spec.label} takes at most {spec.max_input_images} input images.")

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

    nonce = None
    if not spec.has_seed:
        if seed is not None:
            raise InvalidOptions(f"{spec.label} has no seed: every request makes a new image.")
        seed, nonce = 0, secrets.token_hex(8)
    elif seed is None:
        seed = (rng or random.SystemRandom()).randint(0, MAX_SEED)
    elif isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed <= MAX_SEED:
        raise InvalidOptions(f"`seed` must be a whole number between 0 and {MAX_SEED:,}.")

    given = {
        "steps": steps,
        "guidance": guidance,
        "raw": raw,
        "prompt_upsampling": prompt_upsampling,
        "resolution": resolution,
        "grounding": grounding,
    }
    for option, value in given.items():
        if value is not None and not spec.supports(option):
            raise _unsupported(spec, option)

    if steps is not None:
        low, high = spec.steps_range or (0, -1)
        if isinstance(steps, bool) or not isinstance(steps, int) or not low <= steps <= high:
            raise InvalidOptions(f"`steps` must be between {low} and {high} for {spec.label}.")
    if guidance is not None:
        g_low, g_high = spec.guidance_range or (0.0, -1.0)
        if (
            isinstance(guidance, bool)
            or not isinstance(guidance, int | float)
            or not math.isfinite(guidance)
            or not g_low <= guidance <= g_high
        ):
            raise InvalidOptions(
                f"`guidance` must be between {_format_number(g_low)} and {_format_number(g_high)} for {spec.label}."
            )
        guidance = float(guidance)  # 3 and 3.0 must give the same payload and cache key
    for option, value in (("raw", raw), ("prompt_upsampling", prompt_upsampling), ("grounding", grounding)):
        if value is not None and not isinstance(value, bool):
            raise InvalidOptions(f"`{option}` must be true or false.")
    if resolution is not None and resolution not in FLUX3_RESOLUTIONS:
        tiers = ", ".join(FLUX3_RESOLUTIONS)
        raise InvalidOptions(f"Unknown resolution `{_echo(resolution)}`. Choose one of: {tiers}.")
    if spec.supports("grounding"):
        if grounding and not allow_grounding:
            raise InvalidOptions(
                "Grounding sends your prompt to web search, and a moderator has not allowed it on this server."
            )
        grounding = bool(grounding)  # FLUX 3 grounds by default: off unless asked for and allowed

    if spec.size_mode == "resolution":
        width, height = _tier_dimensions(spec, ratio, resolution or FLUX3_DEFAULT_RESOLUTION)
    else:
        width, height = dimensions_for(spec, ratio)
    return GenerationRequest(
        model=spec,
        prompt=text,
        aspect_ratio=ratio,
        width=width,
        height=height,
        seed=seed,
        steps=steps,
        guidance=guidance,
        raw=raw,
        prompt_upsampling=prompt_upsampling,
        resolution=resolution,
        grounding=grounding,
        input_images=images,
        nonce=nonce,
    )
