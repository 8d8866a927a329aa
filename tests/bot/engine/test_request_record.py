"""A job keeps its request: the record goes through a real database (SQLite and PostgreSQL) and back."""

from __future__ import annotations

import base64
import dataclasses
import io
import json

import pytest
from PIL import Image

from bot.billing.ledger import Ledger, ReserveTerms
from bot.engine.admission import Requester, new_job
from bot.engine.store import JobStore
from bot.models import MODELS, GenerationRequest, InputImage, build_request, rerolled
from tests.bot.test_models_record import full_request


def png(width: int, height: int) -> InputImage:
    buffer = io.BytesIO()
    Image.new("RGB", (width, height), "blue").save(buffer, format="PNG")
    return InputImage(base64.b64encode(buffer.getvalue()).decode(), width, height)


def request_for(key: str) -> GenerationRequest:
    spec = MODELS[key]
    options = {"steps": 12} if spec.supports("steps") else {}
    if spec.supports("resolution"):
        options["resolution"] = "1.5k" if "1.5k" in spec.resolutions else spec.resolutions[-1]  # a video: fhd
    images = [png(320, 256)] if spec.takes_images else []
    request = build_request(model=key, prompt="a lantern", aspect_ratio=None, seed=None, input_images=images, **options)
    return dataclasses.replace(request, safety_tolerance=1, style="Noir")


@pytest.fixture
async def store(db, clock):
    return JobStore(db, Ledger(db, clock), clock)


async def admit(store, job):
    return await store.admit(job, ReserveTerms([], 100), cached=False, acked=True)


def who(job_id: int) -> Requester:
    return Requester(job_id=job_id, guild_id=1, channel_id=2, user_id=3)


async def test_every_models_request_comes_back_from_the_job_row(store):
    for job_id, spec in enumerate(MODELS.values(), start=1):
        request = full_request(spec)  # every option it supports, input images where it takes them, a style
        await admit(store, new_job(request, who(job_id), request.cache_key()))
        job = await store.get(job_id)
        assert job is not None and job.generation_request() == request, spec.key


async def test_a_reroll_uses_the_stored_request_not_the_payload(store, db):
    request = build_request(model="flux-dev", prompt="a lantern", aspect_ratio="3:2", seed=4, steps=20)
    job = new_job(request, who(1), request.cache_key())
    await admit(store, dataclasses.replace(job, params={**job.params, "steps": 45, "prompt": "not this"}))
    again = rerolled((await store.get(1)).generation_request())
    assert (again.steps, again.prompt, again.aspect_ratio) == (20, "a lantern", "3:2")


async def test_a_job_row_without_a_record_is_derived_from_its_columns_and_payload(store, db):
    request = dataclasses.replace(request_for("flux-2-flex"), nonce=None)
    await admit(store, new_job(request, who(1), request.cache_key()))
    await db.execute("UPDATE jobs SET request = NULL WHERE id = 1")  # as written before migration 0021
    job = await store.get(1)
    assert job.request is None and job.generation_request() == request
    assert json.loads(json.dumps(rerolled(job.generation_request()).to_record()))["images"]  # inputs kept
