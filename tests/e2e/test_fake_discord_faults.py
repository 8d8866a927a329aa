"""The fake Discord's faults and durable-delivery features, against the real discord.py client.

429 without the proxy headers (discord.py gives up), 5xx, dead interaction tokens, slow answers, dropped
connections, channel-message ``nonce`` + ``enforce_nonce``, DMs (open and closed), message history,
several servers, and seeded random faults.
"""

from __future__ import annotations

import asyncio
import io
from collections.abc import AsyncIterator

import aiohttp
import discord
import pytest

from tests.e2e.fake_discord import DiscordFaultRates, FakeDiscord, Fault, Perm, RandomDiscordFaults, RecordedCall
from tests.e2e.test_fake_discord import PNG, ProbeBot


@pytest.fixture
async def bot(discord_endpoints: FakeDiscord) -> AsyncIterator[ProbeBot]:
    async with discord_endpoints.run_bot(ProbeBot(discord_endpoints.guild_id, discord.Intents.default())) as probe:
        yield probe


@pytest.fixture
def fake(bot: ProbeBot, discord_endpoints: FakeDiscord) -> FakeDiscord:
    """The fake, with the probe bot connected and ready."""
    return discord_endpoints


def channel(bot: ProbeBot, fake: FakeDiscord) -> discord.PartialMessageable:
    return bot.get_partial_messageable(fake.channel_id)


async def test_a_429_without_the_proxy_header_is_not_retried(fake: FakeDiscord, bot: ProbeBot) -> None:
    fake.faults.script("create_message", Fault.rate_limited(0.1))
    with pytest.raises(discord.HTTPException) as raised:
        await channel(bot, fake).send("hello")
    assert raised.value.status == 429
    assert [c.status for c in fake.find_calls("create_message")] == [429]  # discord.py gave up at once
    assert fake.faults.injected == {"rate_limited": 1} and fake.violations == []


async def test_a_429_with_the_proxy_header_is_retried(fake: FakeDiscord, bot: ProbeBot) -> None:
    fake.faults.script("create_message", Fault.rate_limited(0.05, via=True))
    sent = await channel(bot, fake).send("hello")
    assert [c.status for c in fake.find_calls("create_message")] == [429, 200]
    assert fake.messages[str(sent.id)]["content"] == "hello"


async def test_a_503_on_a_channel_post_fails_it(fake: FakeDiscord, bot: ProbeBot) -> None:
    fake.faults.script("create_message", Fault.server_error(503))
    with pytest.raises(discord.DiscordServerError):
        await channel(bot, fake).send("hello")
    [call] = fake.find_calls("create_message")
    assert (call.status, call.fault) == (503, "server_error")
    assert not any(m["content"] == "hello" for m in fake.messages.values())


@pytest.mark.parametrize("code", [50027, 10015])
async def test_a_dead_token_stays_dead(fake: FakeDiscord, bot: ProbeBot, code: int) -> None:
    it = await fake.slash("draw", {"prompt": "x", "wait": True})
    await it.wait_acked()
    fake.faults.script("update_original_webhook_message", Fault.dead_token(code))
    bot.release.set()
    await fake.wait_for(lambda: bot.errors)
    assert bot.errors[0].code == code
    webhook = discord.Webhook.partial(fake.application_id, it.token, client=bot)
    with pytest.raises(discord.HTTPException) as later:  # a different route, later: still dead
        await webhook.send("follow-up", wait=True)
    assert later.value.code == code
    assert it.dead_token == code and fake.violations == []  # injected, so not the bot's mistake


async def test_a_slow_answer(fake: FakeDiscord, bot: ProbeBot) -> None:
    fake.faults.script("create_message", Fault.slow(0.3))
    loop = asyncio.get_running_loop()
    started = loop.time()
    await channel(bot, fake).send("late")
    assert loop.time() - started >= 0.3


@pytest.mark.parametrize("after", [False, True])
async def test_a_dropped_connection(fake: FakeDiscord, bot: ProbeBot, after: bool) -> None:
    fake.faults.script("create_message", Fault.disconnect(after=after))
    with pytest.raises(aiohttp.ClientError):  # not an HTTPException: discord.py cannot tell what happened
        await channel(bot, fake).send("lost answer")
    assert any(m["content"] == "lost answer" for m in fake.messages.values()) is after
    assert fake.find_calls("create_message")[0].status == 0


async def test_a_nonce_with_enforce_nonce_dedupes_a_retried_post(fake: FakeDiscord, bot: ProbeBot) -> None:
    first = await channel(bot, fake).send("once", nonce="job-7-post")
    again = await channel(bot, fake).send("once", nonce="job-7-post")
    other = await channel(bot, fake).send("once", nonce="job-8-post")
    assert first.id == again.id != other.id
    assert [c.nonce_reused for c in fake.find_calls("create_message")] == [False, True, False]
    assert fake.find_calls("create_message")[0].json["enforce_nonce"] is True  # what discord.py sends
    fake.nonce_window_s = 0.0  # past Discord's "few minutes": a new message
    fake.clock.advance(1)
    later = await channel(bot, fake).send("once", nonce="job-7-post")
    assert later.id != first.id
    assert sum(m["content"] == "once" for m in fake.messages.values()) == 3
    assert fake.schema_errors == []


async def test_dms_open_and_closed(fake: FakeDiscord, bot: ProbeBot) -> None:
    member = fake.add_member(name="dm-me", permissions=Perm.VIEW_CHANNEL)
    closed = fake.add_member(name="no-dms", permissions=Perm.VIEW_CHANNEL)
    fake.closed_dms.add(int(closed["user"]["id"]))
    opened = await (await bot.fetch_user(int(member["user"]["id"]))).create_dm()
    sent = await opened.send("your image")
    assert fake.messages[str(sent.id)]["channel_id"] == str(opened.id)
    refused = await (await bot.fetch_user(int(closed["user"]["id"]))).create_dm()
    with pytest.raises(discord.Forbidden) as raised:
        await refused.send("your image")
    assert raised.value.code == 50007
    assert [c.operation for c in fake.calls if c.operation == "create_dm"] == ["create_dm", "create_dm"]
    assert fake.schema_errors == []


async def test_message_history_shows_an_image_replaced_by_text(fake: FakeDiscord, bot: ProbeBot) -> None:
    sent = await channel(bot, fake).send("card", file=discord.File(io.BytesIO(PNG), "image.png"))
    await sent.edit(content="sorry, an error", attachments=[])
    versions = fake.message_history[str(sent.id)]
    assert [(v.text, v.attachments) for v in versions] == [("card", 1), ("sorry, an error", 0)]


async def test_several_servers(discord_endpoints: FakeDiscord) -> None:
    fake = discord_endpoints
    other = fake.add_guild("second server")
    room = fake.add_channel("images", guild_id=other)
    member = fake.add_member(name="elsewhere", guild_id=other, permissions=Perm.VIEW_CHANNEL)
    async with fake.run_bot(ProbeBot(fake.guild_id, discord.Intents.default())) as probe:
        await fake.wait_for(lambda: len(probe.guilds) == 2)
        guild = probe.get_guild(other)
        assert guild is not None and guild.name == "second server"
        assert [c.name for c in guild.text_channels] == ["images"]
        fetched = await guild.fetch_member(int(member["user"]["id"]))
        assert fetched.id == int(member["user"]["id"])
        with pytest.raises(discord.NotFound):  # not a member of the fake's own server
            await probe.get_guild(fake.guild_id).fetch_member(int(member["user"]["id"]))
        assert [v.code for v in fake.take_violations()] == [10007]
        third = fake.add_guild("third")  # joined while connected: GUILD_CREATE before the next dispatch
        await fake.flush_events()
        await fake.wait_for(lambda: probe.get_guild(third) is not None)
    payload = fake._base_interaction(2, user=member, channel=room)
    assert payload["guild_id"] == str(other) and payload["channel_id"] == room["id"]
    with pytest.raises(KeyError):
        fake._base_interaction(2, user=member, channel=None)  # the fake's own channel: not their server
    assert fake.schema_errors == [] and fake.response_schema_errors == []


def _call(operation: str, token: str) -> RecordedCall:
    return RecordedCall("PATCH", "/x", {}, None, [], False, 0.0, operation, token=token)


def test_random_faults_are_reproducible_per_token_whatever_the_interleaving() -> None:
    tokens = [f"token-{n}" for n in range(300)]
    ops = ["update_original_webhook_message", "create_interaction_response"]
    one, two = RandomDiscordFaults(3), RandomDiscordFaults(3)
    forward = {(t, op): [one(_call(op, t)) for _ in range(3)] for t in tokens for op in ops}
    backward = {(t, op): [two(_call(op, t)) for _ in range(3)] for op in ops for t in reversed(tokens)}
    assert forward == backward
    drawn = [f for faults in forward.values() for f in faults if f is not None]
    assert {f.kind for f in drawn} == {"rate_limited", "server_error", "dead_token", "slow", "disconnect"}
    assert all(f.kind != "dead_token" for (_, op), fs in forward.items() for f in fs if f and op != ops[0])
    assert RandomDiscordFaults(3)(_call("get_gateway_bot", "x")) is None  # not a request route


def test_random_fault_rates_are_checked_and_scaled() -> None:
    assert DiscordFaultRates().scaled(2).slow == pytest.approx(0.06)
    with pytest.raises(ValueError, match="sum to"):
        DiscordFaultRates().scaled(20)
    fault = RandomDiscordFaults(1, DiscordFaultRates.only(rate_limited=1.0))(_call("create_message", "t"))
    assert fault is not None and fault.kind == "rate_limited" and not fault.via
