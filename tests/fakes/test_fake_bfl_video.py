"""The fake BFL's FLUX 3 video route (``POST /v1/flux-3-video``): BFL's schema, stages, prices, cap, MP4s, ``se=``."""

from __future__ import annotations

import datetime
import urllib.parse
from collections.abc import AsyncIterator
from decimal import Decimal
from typing import Any

import aiohttp
import pytest

from tests.fakes.fake_bfl import (
    VIDEO_MAX_ACTIVE,
    VIDEO_MODEL,
    VIDEO_STAGES,
    Behaviour,
    FakeBfl,
    mp4_facts,
    validate_body,
)
from tests.fakes.test_fake_bfl import png_base64, poll_through, submit


@pytest.fixture
async def http(fake_bfl: FakeBfl) -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(base_url=fake_bfl.url, headers={"x-key": fake_bfl.api_key}) as session:
        yield session


def i2v(**fields: Any) -> dict[str, Any]:
    return {"mode": "i2v", "prompt": "waves", "keyframes": png_base64(1024, 576), **fields}


@pytest.mark.parametrize(
    ("body", "wrong"),
    [
        (i2v(duration=4), "duration"),
        (i2v(duration=21), "duration"),
        (i2v(resolution="8k"), "resolution"),
        (i2v(seed=1), "seed"),  # no seed in any variant; every variant is strict
        (i2v(webhook_url="https://example.com/hook"), "webhook_url"),
        ({"prompt": "waves", "keyframes": png_base64()}, "mode"),  # the spec's bodies all carry `mode`
        (i2v(keyframes=png_base64(200, 200)), "keyframes"),  # keyframes are at least 256×256 (BFL's prose)
    ],
)
def test_bodies_are_validated_against_bfls_mode_variants(body: dict[str, Any], wrong: str) -> None:
    assert validate_body(VIDEO_MODEL, body) != []
    assert validate_body(VIDEO_MODEL, i2v(duration=8, resolution="fhd", aspect_ratio="16:9", safety_tolerance=2)) == []


async def test_video_plays_its_stages_and_serves_an_mp4_of_the_asked_size_and_length(
    fake_bfl: FakeBfl, http: aiohttp.ClientSession
) -> None:
    fake_bfl.script(Behaviour(run_seconds=1.2, stages=VIDEO_STAGES))
    status, answer = await submit(http, VIDEO_MODEL, i2v(duration=8, resolution="fhd", aspect_ratio="9:16"))
    assert status == 200, answer
    assert Decimal(str(answer["cost"])) == Decimal(29 * 8)  # $0.29/s at fhd: 232 credits for 8 s
    answers = await poll_through(http, answer["polling_url"])
    stages = [a["status"] for a in answers]
    assert [s for i, s in enumerate(stages) if i == 0 or stages[i - 1] != s] == [*VIDEO_STAGES, "Ready"]
    result = answers[-1]["result"]
    assert result["samples"] == [result["sample"]] and result["duration"] == 8
    expiry = urllib.parse.parse_qs(urllib.parse.urlsplit(result["sample"]).query)["se"][0]
    left = datetime.datetime.strptime(expiry, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=datetime.UTC)
    assert datetime.timedelta(hours=1.9) < left - datetime.datetime.now(datetime.UTC) <= datetime.timedelta(hours=2)
    async with aiohttp.ClientSession() as plain, plain.get(result["sample"]) as resp:
        assert resp.status == 200 and resp.content_type == "video/mp4"
        assert mp4_facts(await resp.read()) == (1080, 1920, 8.0)
    assert fake_bfl.schema_errors == []


async def test_padding_makes_a_large_mp4_and_hd_is_priced_per_second(
    fake_bfl: FakeBfl, http: aiohttp.ClientSession
) -> None:
    fake_bfl.script(Behaviour(video_padding=12 * 1024 * 1024))
    _, answer = await submit(http, VIDEO_MODEL, i2v())  # duration and resolution left to BFL: 5 s at hd here
    assert Decimal(str(answer["cost"])) == Decimal(85)
    ready = (await poll_through(http, answer["polling_url"]))[-1]
    async with aiohttp.ClientSession() as plain, plain.get(ready["result"]["sample"]) as resp:
        data = await resp.read()
    assert len(data) > 12 * 1024 * 1024 and mp4_facts(data)[:2] == (1280, 720)  # `auto`: the keyframe's 16:9 at hd


async def test_at_most_five_videos_run_at_once(fake_bfl: FakeBfl, http: aiohttp.ClientSession) -> None:
    fake_bfl.script(*[Behaviour(run_seconds=60) for _ in range(VIDEO_MAX_ACTIVE + 1)])
    statuses = [(await submit(http, VIDEO_MODEL, i2v()))[0] for _ in range(VIDEO_MAX_ACTIVE + 1)]
    assert statuses == [200] * VIDEO_MAX_ACTIVE + [429]
    assert (await submit(http, "flux-dev", {"prompt": "x"}))[0] == 200  # another route is not held back
