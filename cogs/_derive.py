"""A button's request, derived from the stored job's request record (Reroll, and an edit's Reroll).

Kept apart from the flow (:mod:`cogs._flow`) as single calls: each maps a stored job to the request a
button runs, so the derivation can change (the request record) without touching the flow.
"""

from __future__ import annotations

import asyncio
import dataclasses
import random
import secrets
from typing import Any

from bot.engine.store import Job
from bot.models import MAX_SEED, GenerationRequest, rerolled
from bot.models.derive import IMAGE_FIELDS


async def reroll_request(job: Job) -> GenerationRequest:
    """An earlier job's stored request with a fresh seed (FLUX 3: simply again); an edit's keeps its inputs.

    Off the event loop: a row written before the request record derives it from its payload once,
    decoding its input images' headers.
    """
    return rerolled(await asyncio.to_thread(job.generation_request))


def input_strings(params: dict[str, Any]) -> list[str]:
    """The base64 input images a stored payload carries."""
    images = params.get("images")
    found = [images] if isinstance(images, str) else list(images or [])
    found += [params[f] for f in IMAGE_FIELDS if isinstance(params.get(f), str)]
    return found


def has_inputs(params: dict[str, Any]) -> bool:
    """Whether a stored payload is an edit's (its Reroll takes its input images along)."""
    return bool(input_strings(params))


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
