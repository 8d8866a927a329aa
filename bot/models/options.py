"""The constants every model shares: aspect ratios, option names, FLUX 3's tiers, seeds, output format."""

from __future__ import annotations

from typing import Literal

ASPECT_RATIOS: tuple[str, ...] = ("1:1", "16:9", "9:16", "4:3", "3:4", "3:2", "2:3", "21:9", "9:21")
"""Aspect ratios offered to members. All lie within 21:9…9:21, the range BFL's aspect-ratio models accept."""

DEFAULT_ASPECT_RATIO = "1:1"
DEFAULT_MODEL = "flux-pro-1.1"
MAX_SEED = 2**32 - 1
"""Seeds are limited to 32 bits: the schema only says ``integer``, and every FLUX frontend uses uint32."""

OPTION_NAMES: tuple[str, ...] = (
    "steps",
    "guidance",
    "raw",
    "prompt_upsampling",
    "resolution",
    "grounding",
    "duration",
)
"""The optional knobs a model may accept (``seed`` is not listed: see :attr:`ModelSpec.has_seed`). ``resolution`` is
FLUX 3 Image's tier or FLUX 3 video's quality (each route's own values: :attr:`ModelSpec.resolutions`); ``duration``
is a video's length in whole seconds."""

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

SizeMode = Literal["dimensions", "aspect_ratio", "resolution", "input", "canvas", "video"]
"""What sets the output size: width/height sent, an aspect ratio sent, FLUX 3's tier, the input image's own size, an
outpainting canvas (the request's :class:`~bot.models.canvas.Placement`), or a video's quality and ratio
(:func:`bot.models.video.video_dimensions`)."""
BodyShape = Literal["generation", "image", "outpainting", "lora", "video"]
"""The JSON body a route takes (:mod:`bot.models.payloads`): ``generation``, a prompt with its options, size and
input images (every text-to-image and edit route); ``image``, one ``image`` and nothing to steer it (FLUX Tools
deblur); ``outpainting``, one ``input_image`` placed on a canvas (``width``, ``height``, offsets) with the prompt as
optional guidance (FLUX Tools outpainting: Zoom out and the pan arrows); ``lora``, a generation body plus
``finetune_id``/``finetune_strength`` (the klein ``-finetuned`` routes); ``video``, FLUX 3 video from a still
(:func:`bot.models.video.video_body`)."""
Family = Literal["flux1", "flux2", "flux3"]


def echo(value: object, limit: int = 40) -> str:
    """User input made safe to quote inside backticks in a Discord message."""
    text = str(value).replace("`", "'").replace("\n", " ")
    return text if len(text) <= limit else text[: limit - 1] + "…"
