"""The model table and requests: one entry per BFL endpoint drives validation, the command's choices, prices and docs.

Everything here is checked against BFL's OpenAPI spec (``tests/specs/bfl-openapi-2026.json``, late
2026) by ``tests/bot/test_models.py``: every payload we build validates against its endpoint's
request schema and carries no field the schema does not define (BFL answers unknown or out-of-range
fields with a 422, and a test server rejects them too).

Money is integer micro-dollars (see :mod:`bot.billing.money`); megapixels are *decimal* (10⁶ pixels), which is
how BFL reports ``output_mp`` (1440×1440 → 2.07) and, being the smaller unit, keeps our megapixel
estimates an upper bound.

The modules: :mod:`~bot.models.options` (shared constants), :mod:`~bot.models.pricing` (price
strategies), :mod:`~bot.models.spec` (:class:`ModelSpec`, with :meth:`ModelSpec.accepts`),
:mod:`~bot.models.table` (:data:`MODELS`, every per-model fact), :mod:`~bot.models.sizes`,
:mod:`~bot.models.request` (:class:`GenerationRequest` and its record), :mod:`~bot.models.payloads` (the
JSON body of each shape of route), :mod:`~bot.models.build` (:func:`build_request`, validation),
:mod:`~bot.models.derive` (requests made from a stored one) and :mod:`~bot.models.carry_on` (the result
buttons' mappings).
"""

from __future__ import annotations

from bot.models.animate import animate
from bot.models.build import build_request
from bot.models.carry_on import more_detail, outpaint, outpainting, sharpen
from bot.models.derive import final_request, legacy_record, rerolled, retarget
from bot.models.options import (
    ASPECT_RATIOS,
    DEFAULT_ASPECT_RATIO,
    DEFAULT_MODEL,
    FLUX3_ASPECT_RATIOS,
    FLUX3_DEFAULT_RESOLUTION,
    FLUX3_RESOLUTIONS,
    MAX_SEED,
    OPTION_NAMES,
    OUTPUT_FORMAT,
    PIXELS_PER_MEGAPIXEL,
)
from bot.models.pricing import FlatPrice, MegapixelPrice, Price, SecondPrice, TierPrice, UpperBoundPrice
from bot.models.request import GenerationRequest, InputImage
from bot.models.sizes import dimensions_for, nearest_aspect_ratio
from bot.models.spec import ModelSpec
from bot.models.table import (
    MODELS,
    flux3_resolution_prices,
    get_model,
    is_offered,
    models_supporting,
    models_taking_images,
    offered_models,
)

__all__ = [
    "ASPECT_RATIOS",
    "DEFAULT_ASPECT_RATIO",
    "DEFAULT_MODEL",
    "FLUX3_ASPECT_RATIOS",
    "FLUX3_DEFAULT_RESOLUTION",
    "FLUX3_RESOLUTIONS",
    "MAX_SEED",
    "MODELS",
    "OPTION_NAMES",
    "OUTPUT_FORMAT",
    "PIXELS_PER_MEGAPIXEL",
    "FlatPrice",
    "GenerationRequest",
    "InputImage",
    "MegapixelPrice",
    "ModelSpec",
    "Price",
    "SecondPrice",
    "TierPrice",
    "UpperBoundPrice",
    "animate",
    "build_request",
    "dimensions_for",
    "final_request",
    "flux3_resolution_prices",
    "get_model",
    "is_offered",
    "legacy_record",
    "models_supporting",
    "models_taking_images",
    "more_detail",
    "nearest_aspect_ratio",
    "offered_models",
    "outpaint",
    "outpainting",
    "rerolled",
    "retarget",
    "sharpen",
]
