"""The safety rules at admission and the strike counter, against a real SQLite file."""

from datetime import timedelta

import pytest

from bot.audit import AuditLog
from bot.config import Settings
from bot.models import build_request
from bot.safety.errors import BlockedPrompt, ChannelNotAllowed, GroundingNotAllowed, MemberBlocked, ModelNotAllowed
from bot.safety.levels import SafetyLevel
from bot.safety.matching import parse_rules
from bot.safety.notices import Block, ChannelsOnly
from bot.safety.service import SafetyService
from cogs._render import error_text, notice_text

GUILD, OTHER_GUILD, CHANNEL, MOD, ALICE = 10, 11, 20, 30, 40


@pytest.fixture
def notes():
    return []


@pytest.fixture
async def safety(db, clock, notes):
    settings = Settings(_env_file=None, discord_token="t" * 12, bfl_api_key="k" * 12, moderation_strikes=3)

    async def notice(guild_id, note):
        notes.append((guild_id, notice_text(note)))  # as the mod-log words it

    return SafetyService(db, AuditLog(db, clock), settings, render=notice_text, clock=clock, notice=notice)


def request(prompt="a fox", model="flux-pro-1.1"):
    return build_request(model=model, prompt=prompt, aspect_ratio=None, seed=1)


async def screen(safety, req=None, **where):
    where = {"guild_id": GUILD, "channel_id": CHANNEL, "user_id": ALICE, **where}
    return await safety.screen(req or request(), **where)


async def audit(db):
    return [tuple(r) for r in await db.fetch_all("SELECT guild_id, actor_id, action, target FROM audit_log")]


async def test_without_rules_the_request_gets_bfls_default_tolerance(safety):
    screened = await screen(safety)
    assert screened.safety_tolerance == 2 and screened.bfl_payload()["safety_tolerance"] == 2


async def test_a_blocked_word_refuses_names_the_rule_and_notes_the_mod_log_without_the_prompt(safety, notes):
    await safety.add_words(GUILD, parse_rules("dragon"), actor_id=MOD)
    with pytest.raises(BlockedPrompt, match="“dragon”"):
        await screen(safety, request("a secret d r a g o n prompt"))
    assert len(notes) == 1 and "dragon" in notes[0][1] and "secret" not in notes[0][1]
    await screen(safety, request("a dragon"), guild_id=OTHER_GUILD)  # rules are per server


async def test_a_block_refuses_with_reason_and_end_and_expires(safety, db, clock):
    await safety.block(GUILD, ALICE, hours=2, reason="spam", actor_id=MOD)
    with pytest.raises(MemberBlocked) as refused:
        await screen(safety)
    block = refused.value.notice
    assert isinstance(block, Block) and block.reason == "spam" and block.until == clock() + timedelta(hours=2)
    assert "spam" in error_text(refused.value) and "<t:" in error_text(refused.value)
    clock.advance(hours=2, seconds=1)
    await screen(safety)  # over
    await safety.block(GUILD, ALICE, hours=None, reason=None, actor_id=MOD)
    assert await safety.unblock(GUILD, ALICE, actor_id=MOD) is not None
    await screen(safety)
    assert [a for _, _, a, _ in await audit(db)] == ["safety.block", "safety.block", "safety.unblock"]


async def test_allowed_channels_and_models_refuse_elsewhere(safety):
    await safety.set_channel(GUILD, 99, True, actor_id=MOD)
    with pytest.raises(ChannelNotAllowed) as refused:
        await screen(safety)
    assert refused.value.notice == ChannelsOnly([99]) and "<#99>" in error_text(refused.value)
    await screen(safety, channel_id=99)
    await safety.set_models(GUILD, ["flux-dev"], actor_id=MOD)
    with pytest.raises(ModelNotAllowed, match="flux-dev"):
        await screen(safety, channel_id=99)
    await screen(safety, request(model="flux-dev"), channel_id=99)


async def test_levels_per_channel_and_relaxed_only_where_age_restricted(safety):
    await safety.set_level(GUILD, None, SafetyLevel.STRICT, actor_id=MOD)
    await safety.set_level(GUILD, 77, SafetyLevel.RELAXED, actor_id=MOD)
    assert (await screen(safety)).safety_tolerance == 0
    assert (await screen(safety, channel_id=77, age_restricted=True)).safety_tolerance == 4
    assert (await screen(safety, request(model="flux-2-pro"), channel_id=77, age_restricted=True)).safety_tolerance == 4
    # The channel lost its age restriction since: standard, never relaxed.
    assert (await screen(safety, channel_id=77, age_restricted=False)).safety_tolerance == 2


async def test_grounding_is_refused_unless_the_server_allows_it(safety):
    import dataclasses

    grounded = dataclasses.replace(request(), grounding=True)
    with pytest.raises(GroundingNotAllowed):
        await screen(safety, grounded)
    await safety.set_grounding(GUILD, True, actor_id=MOD)
    await screen(safety, grounded)


async def test_strikes_within_an_hour_block_once_audited_and_explained(safety, db, clock, notes):
    async def moderated(job_id):
        return await safety.moderated(
            guild_id=GUILD,
            channel_id=CHANNEL,
            user_id=ALICE,
            job_id=job_id,
            model="flux-dev",
            prompt="p||x",
            stage="content",
        )

    assert await moderated(1) is None
    clock.advance(minutes=61)  # the first strike leaves the window
    assert await moderated(2) is None
    assert await moderated(3) is None
    assert await moderated(3) is None  # the same job never counts twice
    notice = await moderated(4)
    assert notice and "3 moderated results" in notice and "<t:" in notice
    assert await moderated(5) is None  # already blocked: not blocked again
    with pytest.raises(MemberBlocked):
        await screen(safety)
    assert [(a, t) for _, actor, a, t in await audit(db) if actor == 0] == [("safety.block", f"member:{ALICE}")]
    assert any("is blocked until <t:" in text for _, text in notes)
    assert all("||p|\u200b|x||" in text for _, text in notes if "filter blocked" in text)  # spoiler can't be closed
    clock.advance(hours=1, seconds=1)
    await screen(safety)  # MODERATION_BLOCK_HOURS later it is over
