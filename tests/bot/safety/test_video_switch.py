"""``/safety video allowed:``: FLUX 3 video (Animate) is off per server by default, audited when switched."""

import base64
import io

import pytest
from PIL import Image

from bot.models import InputImage, animate
from bot.safety.errors import BlockedPrompt, VideoNotAllowed
from bot.safety.matching import parse_rules
from tests.bot.safety.test_service import ALICE, CHANNEL, GUILD, MOD, OTHER_GUILD, audit, notes, safety, screen

__all__ = ["notes", "safety"]  # the fixtures


def video(motion: str = "the waves roll in"):
    buffer = io.BytesIO()
    Image.new("RGB", (640, 360), "teal").save(buffer, format="PNG")
    still = InputImage(base64.b64encode(buffer.getvalue()).decode(), 640, 360)
    return animate(still, motion=motion, seconds=None, quality=None)


async def test_video_is_off_by_default_and_refused_with_nothing_charged(safety):
    assert not await safety.video_allowed(GUILD) and not (await safety.rules(GUILD)).video
    with pytest.raises(VideoNotAllowed, match="Nothing was generated or charged"):
        await screen(safety, video())


async def test_a_moderator_switches_it_on_for_one_server_and_the_change_is_audited(safety, db):
    await safety.set_video(GUILD, True, actor_id=MOD)
    screened = await screen(safety, video())
    assert screened.safety_tolerance == 2 and screened.bfl_payload()["safety_tolerance"] == 2  # capped with a still
    assert await safety.video_allowed(GUILD) and (await safety.rules(GUILD)).video
    with pytest.raises(VideoNotAllowed):
        await screen(safety, video(), guild_id=OTHER_GUILD)
    assert (GUILD, MOD, "safety.video", "server") in await audit(db)
    await safety.set_video(GUILD, False, actor_id=MOD)
    with pytest.raises(VideoNotAllowed):
        await screen(safety, video())


async def test_blocked_words_apply_to_the_motion_prompt(safety):
    await safety.set_video(GUILD, True, actor_id=MOD)
    await safety.add_words(GUILD, parse_rules("explode"), actor_id=MOD)
    with pytest.raises(BlockedPrompt, match="“explode”"):
        await screen(safety, video("the lighthouse will explode"), user_id=ALICE, channel_id=CHANNEL)
