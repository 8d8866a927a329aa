"""FLUX 3 video jobs through the engine and the fake BFL: the switch, the per-second price, the 5-video cap, MP4s."""

import asyncio
import base64
import io

import pytest
from PIL import Image

from bot.models import InputImage, animate
from bot.safety.errors import VideoNotAllowed
from tests.bot.engine.conftest import GUILD, who
from tests.fakes.fake_bfl import VIDEO_MODEL, VIDEO_STAGES, Behaviour, mp4_facts


def video(seconds=None, quality=None):
    buffer = io.BytesIO()
    Image.new("RGB", (1024, 576), "teal").save(buffer, format="PNG")
    still = InputImage(base64.b64encode(buffer.getvalue()).decode(), 1024, 576)
    return animate(still, motion="the waves roll in", seconds=seconds, quality=quality)


@pytest.fixture
async def harness(make_engine):
    """Budgets a few videos fit in (a member's default day, $0.50, is less than one 5-second clip: refused)."""
    return await make_engine(DEFAULT_MEMBER_DAILY_USD="20", DEFAULT_SERVER_DAILY_USD="50", member_max_pending_jobs=10)


async def test_a_video_over_the_members_daily_budget_is_refused_before_anything(make_engine, fake_bfl):
    from bot.billing.refusals import LimitRefused

    harness = await make_engine()
    await harness.safety.set_video(GUILD, True, actor_id=1)
    with pytest.raises(LimitRefused):
        await harness.engine.admit(video(), who(1), acked=True)
    assert fake_bfl.submits == []


async def reserved(harness, job_id):
    return await harness.db.fetch_value(
        "SELECT member_micros FROM ledger WHERE job_id = ? AND kind = 'reserve'", (job_id,)
    )


async def test_a_video_is_refused_before_anything_while_the_server_has_it_off(harness, fake_bfl):
    with pytest.raises(VideoNotAllowed):
        await harness.engine.admit(video(), who(1), acked=True)
    assert fake_bfl.submits == [] and await harness.ledger_kinds(1) == []


async def test_a_video_is_made_played_through_its_stages_settled_per_second_and_never_cached(harness, fake_bfl):
    await harness.safety.set_video(GUILD, True, actor_id=1)
    fake_bfl.script(Behaviour(run_seconds=0.6, stages=VIDEO_STAGES))
    request = video(seconds=8, quality="fhd")
    result = await harness.generate(1, request)
    assert mp4_facts(result.data) == (1920, 1080, 8.0)  # the MP4 as BFL made it: never re-encoded
    assert request.estimated_cost_micros == await reserved(harness, 1) == result.cost_micros == 2_320_000
    assert await harness.ledger_kinds(1) == ["reserve", "settle"]
    assert await harness.cache.get_entry(request.cache_key()) is None  # videos are not kept in the image cache
    assert fake_bfl.submits[0].body["mode"] == "i2v" and fake_bfl.schema_errors == []


async def test_a_sixth_video_waits_queued_for_one_of_the_five_slots(harness, fake_bfl):
    await harness.safety.set_video(GUILD, True, actor_id=1)
    release = asyncio.Event()
    fake_bfl.script(Behaviour(release=release), times=6)
    for job_id in range(1, 7):  # three members, two each: each member's own cap (2) lets all six run but for BFL's
        await harness.engine.admit(video(), who(job_id, user=100 + (job_id - 1) // 2), acked=True)
    await fake_bfl.wait_for(lambda: len(fake_bfl.submits) == 5)
    assert (await harness.store.get(6)).status.value == "queued"  # waiting for a slot, not refused
    release.set()
    for job_id in range(1, 7):
        assert mp4_facts((await harness.ended(job_id)).data)[:2] == (1280, 720)
    assert fake_bfl.max_active_seen_by_model[VIDEO_MODEL] == 5 and len(fake_bfl.submits) == 6
    assert all(s.status == 200 for s in fake_bfl.submits)  # the bot kept the cap: BFL never answered 429
