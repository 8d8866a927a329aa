"""The mod-log's background sender: announcing never waits on Discord, and transient failures are retried."""

import asyncio

import pytest

from bot.audit import AuditLog
from bot.modlog import ModLog
from bot.server_settings import ServerSettings

GUILD, CHANNEL, MOD = 100, 700, 9


class HTTPError(Exception):
    """Shaped like discord.HTTPException: what the sender looks at is ``status``."""

    def __init__(self, status):
        super().__init__(f"{status} error")
        self.status = status


class Channel:
    """A ChannelPoster whose answers the test scripts; every attempt is recorded."""

    def __init__(self, failures=(), hold=None):
        self.failures = list(failures)
        self.hold = hold  # an asyncio.Event the post waits for, like a slow channel
        self.attempts = []
        self.posted = []
        self.attempted = asyncio.Event()

    async def post_to_channel(self, channel_id, text):
        self.attempts.append((channel_id, text))
        self.attempted.set()
        if self.hold is not None:
            await self.hold.wait()
        if self.failures:
            raise self.failures.pop(0)
        self.posted.append((channel_id, text))


@pytest.fixture
async def limits(db, clock):
    service = ServerSettings(db, AuditLog(db, clock))
    await service.update(
        GUILD, "modlog_channel_id", CHANNEL, actor_id=MOD, action="modlog.set", shown=f"channel:{CHANNEL}"
    )
    return service


@pytest.fixture
async def modlog(limits):
    delays = []

    async def no_wait(delay):
        delays.append(delay)

    log = ModLog(limits, attempts=4, backoff_base=1.0, backoff_cap=60.0, sleep=no_wait)
    log.delays = delays
    yield log
    await log.close(grace=0)


async def test_announce_returns_before_a_slow_channel_answers(modlog):
    release = asyncio.Event()
    channel = modlog.poster = Channel(hold=release)
    assert await asyncio.wait_for(modlog.announce(GUILD, "🛠️ limit set"), timeout=1) is True
    await asyncio.wait_for(channel.attempted.wait(), timeout=5)
    assert channel.posted == []  # still waiting on Discord, and announce() did not
    release.set()
    await asyncio.wait_for(modlog.drain(), timeout=5)
    assert channel.posted == [(CHANNEL, "🛠️ limit set")]


async def test_transient_failures_are_retried_with_backoff_and_posted_once(modlog):
    channel = modlog.poster = Channel(failures=[HTTPError(503), OSError("connection reset")])
    await modlog.announce(GUILD, "grant")
    await asyncio.wait_for(modlog.drain(), timeout=5)
    assert channel.posted == [(CHANNEL, "grant")]
    assert len(channel.attempts) == 3
    assert len(modlog.delays) == 2 and 0 <= modlog.delays[0] <= 1.0 and 0 <= modlog.delays[1] <= 2.0


async def test_refusals_are_not_retried_and_later_posts_still_go_out(modlog):
    channel = modlog.poster = Channel(failures=[HTTPError(403)])
    await modlog.announce(GUILD, "first")
    await modlog.announce(GUILD, "second")
    await asyncio.wait_for(modlog.drain(), timeout=5)
    assert [text for _, text in channel.attempts] == ["first", "second"]
    assert channel.posted == [(CHANNEL, "second")] and modlog.delays == []


async def test_the_sender_gives_up_after_its_attempts(modlog):
    channel = modlog.poster = Channel(failures=[HTTPError(500)] * 10)
    await modlog.announce(GUILD, "doomed")
    await asyncio.wait_for(modlog.drain(), timeout=5)
    assert len(channel.attempts) == 4 and channel.posted == []


async def test_a_post_that_timed_out_is_not_sent_again(limits):
    channel = Channel(hold=asyncio.Event())  # never answers
    modlog = ModLog(limits, post_timeout=0.05)
    modlog.poster = channel
    await modlog.announce(GUILD, "maybe posted")
    await asyncio.wait_for(modlog.drain(), timeout=5)
    assert len(channel.attempts) == 1  # a timed-out post may exist: posting again could show it twice
    await modlog.close(grace=0)


async def test_posts_keep_their_order_and_lose_bidi_controls(modlog):
    channel = modlog.poster = Channel(failures=[HTTPError(502)])
    for i in range(20):
        await modlog.announce(GUILD, f"change {i} \u202efor <@1>")
    await asyncio.wait_for(modlog.drain(), timeout=5)
    assert [text for _, text in channel.posted] == [f"change {i} for <@1>" for i in range(20)]


async def test_no_channel_no_post(modlog):
    channel = modlog.poster = Channel()
    assert await modlog.announce(GUILD + 1, "nobody listens") is False
    await asyncio.wait_for(modlog.drain(), timeout=5)
    assert channel.attempts == []


async def test_close_stops_the_sender_without_waiting_for_a_stuck_channel(modlog):
    modlog.poster = Channel(hold=asyncio.Event())
    await modlog.announce(GUILD, "stuck")
    await asyncio.wait_for(modlog.close(grace=0.05), timeout=5)
