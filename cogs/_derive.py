"""A button's request, derived from the stored job's request record (Reroll, Vary, Edit, an edit's Reroll).

Kept apart from the flow (:mod:`cogs._flow`) as single calls: each maps a stored job to the request a
button runs, from its request record (``jobs.request``), never from the BFL payload; a row admitted
before the record was kept (migration 0021) derives it once (:meth:`bot.engine.jobs.NewJob.generation_request`).
"""

from __future__ import annotations

import asyncio
import dataclasses
import random
import secrets

from bot.engine.store import Job
from bot.models import MAX_SEED, GenerationRequest, rerolled


async def stored_request(job: Job) -> GenerationRequest:
    """The request ``job`` was admitted with: its stored record (what Vary, Edit and Reroll start from).

    Off the event loop: a row written before the request record derives it from its payload once,
    decoding its input images' headers.
    """
    return await asyncio.to_thread(job.generation_request)


async def reroll_request(job: Job) -> GenerationRequest:
    """An earlier job's stored request with a fresh seed (FLUX 3: simply again); an edit's keeps its inputs."""
    return rerolled(await stored_request(job))


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
