"""A button's request, derived from the stored job (Reroll, and an edit's Reroll).

Kept apart from the flow (:mod:`cogs._flow`) as single calls: each maps a stored job to the request a
button runs, so the derivation can change (the request record) without touching the flow.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import dataclasses
import io
import random
import secrets
from typing import Any

from PIL import Image

from bot.engine.store import Job
from bot.errors import FluxcordError
from bot.models import MAX_SEED, OPTION_NAMES, GenerationRequest, InputImage, build_request, get_model

IMAGE_FIELDS = ("input_image", *(f"input_image_{n}" for n in range(2, 9)))


def reroll_request(job: Job, *, max_prompt_length: int) -> GenerationRequest:
    """The request of an earlier job with a fresh seed (and its style, for the card)."""
    options = {name: job.params.get(name) for name in OPTION_NAMES}
    request = build_request(
        model=job.model,
        prompt=job.prompt,  # a styled job's prompt is already the templated one
        aspect_ratio=job.aspect_ratio or job.params.get("aspect_ratio"),
        seed=None,
        max_prompt_length=max_prompt_length,
        **options,
    )
    return dataclasses.replace(request, style=job.style)


async def edit_reroll_request(job: Job, *, max_prompt_length: int) -> GenerationRequest:
    """An edit's Reroll: the same inputs and options, a new seed (FLUX 3: simply again)."""
    images = await asyncio.to_thread(inputs_from_params, job.params)
    spec = get_model(job.model)
    options = {name: job.params.get(name) for name in OPTION_NAMES}
    return build_request(
        model=spec.key,
        prompt=job.prompt,
        aspect_ratio=job.aspect_ratio or job.params.get("aspect_ratio"),
        seed=None,
        input_images=images,
        max_prompt_length=max_prompt_length,
        **options,
    )


def input_strings(params: dict[str, Any]) -> list[str]:
    """The base64 input images a stored payload carries."""
    images = params.get("images")
    found = [images] if isinstance(images, str) else list(images or [])
    found += [params[f] for f in IMAGE_FIELDS if isinstance(params.get(f), str)]
    return found


def has_inputs(params: dict[str, Any]) -> bool:
    """Whether a stored payload is an edit's (its Reroll takes its input images along)."""
    return bool(input_strings(params))


def inputs_from_params(params: dict[str, Any]) -> list[InputImage]:
    """The input images a stored payload carries, with their sizes (read from the headers)."""
    images = []
    for data in input_strings(params):
        try:
            with Image.open(io.BytesIO(base64.b64decode(data, validate=True))) as image:
                width, height = image.size
        except (binascii.Error, OSError, ValueError) as exc:
            raise FluxcordError("That image's inputs can no longer be read, so it can't be rerolled.") from exc
        images.append(InputImage(data_b64=data, width=width, height=height))
    return images


def distinct_seeds(count: int, first: int, *, consecutive: bool, rng: random.Random | None = None) -> list[int]:
    """``count`` different seeds starting with ``first``: ``first + 1``, … when ``consecutive``, else random."""
    if consecutive:
        return [(first + i) % (MAX_SEED + 1) for i in range(count)]
    draw = rng or random.SystemRandom()
    seeds = [first]
    while len(seeds) < count:
        seed = draw.randint(0, MAX_SEED)
        if seed not in seeds:
            seeds.append(seed)
    return seeds


def group_requests(request: GenerationRequest, count: int, *, seed_given: bool) -> list[GenerationRequest]:
    """``count`` copies of a validated request, each a different image.

    Distinct seeds (the member's and the next ones, if given), or, for a model without a seed, a fresh
    nonce each (so none is ever a cache hit).
    """
    if not request.model.has_seed:
        return [request] + [dataclasses.replace(request, nonce=secrets.token_hex(8)) for _ in range(count - 1)]
    return [dataclasses.replace(request, seed=s) for s in distinct_seeds(count, request.seed, consecutive=seed_given)]
