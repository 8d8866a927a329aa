"""The model table: one entry per BFL endpoint drives validation, the command's choices, prices, caps and docs.

Every per-model fact (sizes, options and their ranges, input limits, the route's active-task cap,
prices, safety ranges) lives in its :class:`~bot.models.spec.ModelSpec` here and nowhere else.
"""

from __future__ import annotations

from typing import Any

from bot.errors import InvalidOptions
from bot.models.canvas import MAX_CANVAS_PIXELS
from bot.models.options import DEFAULT_MODEL, FLUX3_ASPECT_RATIOS, FLUX3_RESOLUTIONS, echo
from bot.models.pricing import FlatPrice, MegapixelPrice, SecondPrice, TierPrice, UpperBoundPrice
from bot.models.spec import ModelSpec
from bot.models.video import (
    VIDEO_ASPECT_RATIOS,
    VIDEO_DEFAULT_SECONDS,
    VIDEO_DURATION_RANGE,
    VIDEO_MODEL,
    VIDEO_QUALITIES,
    video_dimensions,
)

_FLUX1_SIDE = {"multiple": 32, "min_side": 256, "max_side": 1440, "max_megapixels": 1440 * 1440 / 1e6}
_ONE_MP_SQUARE = 1024 * 1024 / 1e6  # FLUX.1 is trained around 1024²: 1:1 → 1024×1024


def _flux1(key: str, label: str, micros: int, **facts: Any) -> ModelSpec:
    """A FLUX.1 entry: width and height within 256–1440 (multiples of 32) around 1024², a flat price."""
    common = {"family": "flux1", "size_mode": "dimensions", **_FLUX1_SIDE, "target_megapixels": _ONE_MP_SQUARE}
    return ModelSpec(key=key, label=label, price=FlatPrice(micros), **{**common, **facts})


def _kontext(key: str, label: str, micros: int, **facts: Any) -> ModelSpec:
    """A FLUX.1 Kontext entry: an aspect ratio, "~1 MP total", up to 4 input images, a flat price."""
    # Not sent: Kontext takes `aspect_ratio` and renders "~1 MP total" (the sizes are for display).
    sizes = {"multiple": 16, "min_side": 256, "max_side": 2048, "max_megapixels": 1.5}
    common = {"target_megapixels": _ONE_MP_SQUARE, "options": frozenset({"prompt_upsampling"}), "max_input_images": 4}
    return _flux1(key, label, micros, size_mode="aspect_ratio", **{**sizes, **common, **facts})


# FLUX.2: the schema only says "minimum 64"; BFL's docs add "multiples of 16, max 4 MP (e.g.
# 2048×2048)". 2048×2048 is 4.19 decimal MP, so "4 MP" there means 2048²; we cap sides at 2048 too,
# which is conservative (we only ever ask for ~1 MP).
_FLUX2_SIDE = {"multiple": 16, "min_side": 64, "max_side": 2048, "max_megapixels": 2048 * 2048 / 1e6}
# FLUX.2 inputs: up to 8 images (Flux2Inputs: input_image … input_image_8), sent at ≤ 4 MP (the output cap;
# BFL's own limit is 20 MP per input, but every input megapixel is billed).
_FLUX2_INPUTS: dict[str, Any] = {"max_input_images": 8, "input_max_megapixels": 4.0, "safety_range": (0, 5)}


# Deblur's input (and so output) limit, "at most 4 MP" per BFL's SDK (not in its schema), read as FLUX.2's 2048².
_DEBLUR_MAX_MEGAPIXELS = 2048 * 2048 / 1e6
# Outpainting's canvas cap, width × height ≤ 4 MP (BFL's SDK; not in its schema): bot.models.canvas's 2048².
_CANVAS_MAX_MEGAPIXELS = MAX_CANVAS_PIXELS / 1e6


def _video() -> ModelSpec:
    """FLUX 3 video (the Animate button and ``/animate``): a still and a motion prompt, priced per second."""
    long, short = video_dimensions("21:9", "fhd")  # the largest video offered: display limits only
    return ModelSpec(
        key=VIDEO_MODEL,  # POST /v1/flux-3-video; the body's shape is bot.models.video's alone
        label="FLUX 3 Video",
        family="flux3",  # FLUX 3's safety mapping; its range is 0–4 and BFL applies at most 2 with an image
        size_mode="video",
        body="video",
        multiple=2,
        min_side=short // 3 * 2,
        max_side=long,
        max_megapixels=long * short / 1e6,
        target_megapixels=1280 * 720 / 1e6,
        options=frozenset({"duration", "resolution"}),
        duration_range=VIDEO_DURATION_RANGE,
        resolutions=tuple(VIDEO_QUALITIES),
        # BFL's list per second of output (i2v as t2v): hd $0.17/s, fhd $0.29/s (landscape-2026-12 §1.5, docs.bfl.ai;
        # resellers' fixed markups agree). 5 s at hd: $0.85; 20 s at fhd: $5.80. Settled from BFL's `cost`.
        price=SecondPrice(rates=(("hd", 170_000), ("fhd", 290_000)), default_seconds=VIDEO_DEFAULT_SECONDS),
        # "5 active generations per organization" (BFL's flux3-video skill): a 6th video waits queued for a slot.
        max_active_tasks=5,
        has_seed=False,  # no seed in any variant: every video is new (never served from the image cache)
        aspect_ratios=VIDEO_ASPECT_RATIOS,
        max_input_images=1,
        input_max_megapixels=16.0,  # keyframes: ≤ 20 MB each, no pixel limit published; FLUX 3's 16 MP kept
        input_min_side=256,  # keyframes "each >= 256x256"
        safety_range=(0, 4),
        image_safety_max=2,  # "requests with images/video are capped at safety_tolerance 2 whatever is sent"
        button_only=True,
    )


def _flux2(key: str, label: str, first_mp: int, extra_mp: int, **facts: Any) -> ModelSpec:
    """A FLUX.2 entry: width and height (multiples of 16, ≤ 2048), up to 8 inputs, priced per megapixel."""
    common = {
        "family": "flux2",
        "size_mode": "dimensions",
        **_FLUX2_SIDE,
        # Aim at (not over) 1 MP so the default size costs exactly the first-megapixel price.
        "target_megapixels": 1.0,
        # `Flux2Inputs` defines no prompt_upsampling (docs tables do; the schema wins).
        "options": frozenset(),
        **_FLUX2_INPUTS,
    }
    price = facts.pop("price", None) or MegapixelPrice(first_mp_micros=first_mp, extra_mp_micros=extra_mp)
    return ModelSpec(key=key, label=label, price=price, **{**common, **facts})


# A LoRA route's bound (BFL publishes no price for the public-beta LoRA routes; the ledger settles from `cost`):
# FLUX.2 [pro]'s list rates, $0.03 for the first megapixel and $0.015 for each further megapixel of output and of
# input, each rounded up. That is twice [klein]'s first-megapixel price and 7.5x its extra-megapixel rate, above the
# 1.5x that BFL's FLUX.1 finetuned routes cost over their base (6 credits against 4). A 1 MP image: $0.03.
_LORA_PRICE = UpperBoundPrice(first_mp_micros=30_000, extra_mp_micros=15_000)


def _klein_lora(key: str, base: str) -> ModelSpec:
    """A FLUX.2 [klein] ``-finetuned`` route: its base's sizes and inputs, a ``lora`` body, an upper-bound price.

    The schema (``Flux2KleinFinetuneInputs``) is the base's plus ``finetune_id``/``finetune_strength``.
    """
    klein = {"flux-2-klein-9b": "FLUX.2 [klein] 9B", "flux-2-klein-4b": "FLUX.2 [klein] 4B"}[base]
    facts: dict[str, Any] = {"max_input_images": 4, "body": "lora", "lora_base": base, "price": _LORA_PRICE}
    return _flux2(key, f"{klein} + LoRA", 0, 0, **facts)


MODELS: dict[str, ModelSpec] = {
    spec.key: spec
    for spec in (
        _flux1("flux-pro-1.1", "FLUX1.1 [pro]", 40_000, options=frozenset({"prompt_upsampling"})),
        _flux1(
            "flux-pro-1.1-ultra",
            "FLUX1.1 [pro] Ultra",
            60_000,
            # Not sent: Ultra takes only `aspect_ratio` and renders ~4 MP (2048×2048 at 1:1).
            size_mode="aspect_ratio",
            max_side=4096,
            max_megapixels=4.5,
            target_megapixels=2048 * 2048 / 1e6,
            options=frozenset({"raw", "prompt_upsampling"}),
        ),
        _flux1(
            "flux-dev",
            "FLUX.1 [dev]",
            25_000,
            options=frozenset({"steps", "guidance", "prompt_upsampling"}),
            steps_range=(1, 50),
            guidance_range=(1.5, 5.0),
        ),
        _kontext("flux-kontext-pro", "FLUX.1 Kontext [pro]", 40_000),
        # BFL's tighter concurrency cap for this endpoint: the one place it is written (bot.engine.claim keeps it).
        _kontext("flux-kontext-max", "FLUX.1 Kontext [max]", 80_000, max_active_tasks=6),
        _flux2("flux-2-pro", "FLUX.2 [pro]", 30_000, 15_000),
        _flux2("flux-2-max", "FLUX.2 [max]", 70_000, 30_000),
        _flux2(
            "flux-2-flex",
            "FLUX.2 [flex]",
            # Pricing pages disagree ($0.05/MP on the newest, $0.06/MP elsewhere): take the higher one.
            60_000,
            60_000,
            # The API's default for flex is prompt_upsampling=true; we send it only when asked.
            options=frozenset({"steps", "guidance", "prompt_upsampling"}),
            steps_range=(1, 50),
            guidance_range=(1.5, 10.0),
        ),
        # Flux2KleinInputs: input_image … input_image_4.
        _flux2("flux-2-klein-4b", "FLUX.2 [klein] 4B", 14_000, 1_000, max_input_images=4),
        # bfl-api.md §00.8: a 1 MP-in, 1 MP-out edit costs about $0.017.
        _flux2("flux-2-klein-9b", "FLUX.2 [klein] 9B", 15_000, 2_000, max_input_images=4),
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
        # The klein LoRA routes below are reached only through a LoRA style (bot.styles), never picked.
        _klein_lora("flux-2-klein-9b-finetuned", "flux-2-klein-9b"),
        _klein_lora("flux-2-klein-4b-finetuned", "flux-2-klein-4b"),
        # The FLUX Tools below are reached only through a result button (button_only), never picked.
        ModelSpec(
            key="flux-tools/deblur-v1",  # POST /v1/flux-tools/deblur-v1: the Sharpen button
            label="FLUX.2 Deblur",
            family="flux2",  # a FLUX.2 [klein] 9B LoRA: FLUX.2's safety mapping and range (0–5, its schema's)
            size_mode="input",  # Flux2DeblurInputs has no size: the result is the input image, regenerated sharp
            body="image",  # `image`, `seed`, `safety_tolerance`, `output_format` (no prompt)
            multiple=1,
            min_side=64,
            max_side=8192,
            max_megapixels=_DEBLUR_MAX_MEGAPIXELS,
            target_megapixels=1.0,
            options=frozenset(),
            # BFL publishes no price for deblur (it settles from `cost`). The bound: FLUX.2 [pro]'s list rates,
            # $0.03 for the first megapixel and $0.015 for each further megapixel of output and of input, each
            # rounded up. That is at or above every related list price: deblur runs on [klein] 9B ($0.015 +
            # $0.002/MP), erase, its sibling tool, is reported at $0.03 + $0.004/MP. A 1 MP result: $0.045.
            price=UpperBoundPrice(first_mp_micros=30_000, extra_mp_micros=15_000),
            max_input_images=1,
            input_max_megapixels=_DEBLUR_MAX_MEGAPIXELS,
            safety_range=(0, 5),
            button_only=True,
        ),
        _video(),
        ModelSpec(
            key="flux-tools/outpainting-v1",  # POST /v1/flux-tools/outpainting-v1: Zoom out 1.5×/2× and the pans
            label="FLUX Outpainting",
            family="flux2",  # FluxOutpaintingInputs' safety range is FLUX.2's (0–5): FLUX.2's mapping of the dial
            size_mode="canvas",  # the output is the canvas the placement asks for (bot.models.canvas)
            body="outpainting",  # `input_image`, `width`/`height`, both offsets, `prompt` (guidance), safety, format
            multiple=16,  # our canvas rule (BFL documents none for this route)
            min_side=64,
            max_side=8192,  # no per-side limit documented; the 4 MP area cap binds first
            max_megapixels=_CANVAS_MAX_MEGAPIXELS,
            target_megapixels=1.0,
            options=frozenset(),
            has_seed=False,  # FluxOutpaintingInputs has no seed: every zoom is a new image (never a cache hit)
            # BFL publishes no price for outpainting (it settles from `cost`). The only figure found is a third
            # party's "from $0.10/MP" (unconfirmed; BFL's notes say mode `fast` costs less, and we send the
            # default, `high`). The bound: $0.10 for every started megapixel of the canvas (that figure, per MP
            # rounded up, so "from" is covered by the rounding), plus each input megapixel (rounded up) at FLUX.2
            # [pro]'s extra rate, $0.015, in case the reference is billed too. A 1 MP result zoomed out 1.5×
            # (a 1536² canvas, 2.36 MP): 3 × $0.10 + 2 × $0.015 = $0.33; zoomed out 2× (2048², 4.19 MP): $0.53.
            price=UpperBoundPrice(first_mp_micros=100_000, extra_mp_micros=100_000, input_mp_micros=15_000),
            max_input_images=1,
            input_max_megapixels=_CANVAS_MAX_MEGAPIXELS,  # a result is fitted to 4 MP when loaded, then placed
            safety_range=(0, 5),
            button_only=True,
        ),
    )
}
"""Every BFL route the bot uses, by endpoint name (``POST /v1/<key>``): the models members can pick, in the order
the command lists them (:func:`offered_models`), then the routes only a result button reaches."""

assert DEFAULT_MODEL in MODELS


def get_model(key: str) -> ModelSpec:
    """The spec for ``key`` (any route, a button-only one too), or :class:`InvalidOptions` naming the models."""
    try:
        return MODELS[key]
    except KeyError:
        names = ", ".join(f"`{spec.key}`" for spec in offered_models())
        raise InvalidOptions(f"Unknown model `{echo(key)}`. Choose one of: {names}.") from None


def offered_models() -> list[ModelSpec]:
    """The models members pick (every command's choices, defaults, drafts, fallbacks): :attr:`ModelSpec.offered`.

    All but the button-only routes and the LoRA routes.
    """
    return [spec for spec in MODELS.values() if spec.offered]


def is_offered(key: str) -> bool:
    """Whether ``key`` is a model members may pick (:func:`offered_models`)."""
    spec = MODELS.get(key)
    return spec is not None and spec.offered


def models_supporting(option: str) -> list[ModelSpec]:
    """The models members can pick that accept ``option``, in table order."""
    return [spec for spec in offered_models() if spec.supports(option)]


def models_taking_images() -> list[ModelSpec]:
    """The models members can pick that edit (take input images), in table order."""
    return [spec for spec in offered_models() if spec.takes_images]


def flux3_resolution_prices() -> list[tuple[str, int]]:
    """Each FLUX 3 ``resolution`` tier with its price in micro-dollars, in tier order (the option's choices)."""
    spec = MODELS["flux-3-image"]
    return [(tier, spec.estimate_cost_micros(1, 1, (), tier)) for tier in FLUX3_RESOLUTIONS]
