"""Fixtures for end-to-end tests against the local fake Discord (see the ``fake_discord`` package)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import discord
import pytest
import yarl

from tests.e2e.fake_discord import FakeDiscord


@pytest.fixture
def fake_discord_options() -> dict[str, Any]:
    """Constructor kwargs for ``fake_discord``; override per test with
    ``@pytest.mark.parametrize("fake_discord_options", [{"ack_deadline_s": 0.2}])``."""
    return {}


@pytest.fixture
async def fake_discord(fake_discord_options: dict[str, Any]) -> AsyncIterator[FakeDiscord]:
    """A started :class:`FakeDiscord`; at teardown it asserts nothing unexpected was recorded.

    Tests that provoke a violation on purpose remove it with ``fake.take_violations(code)`` (or
    ``take_schema_errors()``), or set ``fake.assert_clean_at_teardown = False``.
    """
    async with FakeDiscord(**fake_discord_options) as fake:
        yield fake
        if fake.assert_clean_at_teardown:
            fake.assert_clean()


@pytest.fixture
def discord_endpoints(monkeypatch: pytest.MonkeyPatch, fake_discord: FakeDiscord) -> FakeDiscord:
    """Point discord.py's REST base and gateway at ``fake_discord`` (undone after the test)."""
    monkeypatch.setattr(discord.http.Route, "BASE", fake_discord.api_url)
    monkeypatch.setattr(discord.gateway.DiscordWebSocket, "DEFAULT_GATEWAY", yarl.URL(fake_discord.gateway_url))
    return fake_discord


# --- the real bot, built by the same factory as `python -m bot`, against both fakes ---------------
class EngineEvents:
    """The harness's :class:`~bot.engine.observer.JobObserver`: what the engine reports, as events to wait on.

    The bot is built with this observer (``engine_options``, as any observer is wired); each report
    is passed on to the bot's own metrics and wakes every test waiting on the bot's state. Nothing of
    the bot is patched: a test waits on what the engine says happened, never on what Discord shows.
    """

    def __init__(self) -> None:
        self.changes: list[tuple[int, str]] = []  # (job or group id, new status / admitted / acknowledged / ...)
        self.metrics: Any = None  # the bot's own observer, once the bot is built
        self._tick = asyncio.Event()

    def tick(self) -> asyncio.Event:
        """The event set by the next report (take it before reading the state it may change)."""
        return self._tick

    def poke(self) -> None:
        """Wake every waiter (a report, or a test's own instrumentation)."""
        self._tick.set()
        self._tick = asyncio.Event()

    def seen(self, job_id: int, change: str | None = None) -> bool:
        """Whether the engine reported a change of ``job_id`` (that ``change``, if given)."""
        return any(i == job_id and change in (None, what) for i, what in self.changes)

    def _report(self, name: str, *args: Any) -> None:
        if self.metrics is not None:
            getattr(self.metrics, name)(*args)
        self.poke()

    def job_changed(self, job_id: int, change: str) -> None:
        """A job's (or group's) row changed."""
        self.changes.append((job_id, change))
        self._report("job_changed", job_id, change)

    def job_ended(self, model: str, outcome: str) -> None:
        """A job ended."""
        self._report("job_ended", model, outcome)

    def bfl_latency(self, model: str, seconds: float) -> None:
        """A BFL latency sample."""
        self._report("bfl_latency", model, seconds)

    def spent(self, model: str, micros: int) -> None:
        """A settlement."""
        self._report("spent", model, micros)

    def refused(self, reason: str) -> None:
        """An admission refused."""
        self._report("refused", reason)

    def breaker_refused(self, model: str) -> None:
        """A circuit breaker refused."""
        self._report("breaker_refused", model)


def settled(job) -> bool:
    """A job is settled when it ended and the member saw how: its image posted, or told, or no token left."""
    from bot.engine.states import JobStatus

    return not job.status.is_open and (job.status is JobStatus.DELIVERED or job.told or job.interaction_token is None)


def _loading(message) -> bool:
    return not message or bool(message.get("flags", 0) & 128)  # a deferral's "thinking…" (Discord's flag)


class BotHarness:
    """A running Fluxcord bot wired to a fake Discord and a fake BFL, plus helpers for tests.

    Built by :func:`running_bot`, which gives the bot ``events`` as its engine observer.
    """

    def __init__(self, bot, fake, bfl, settings, events: EngineEvents):
        self.bot = bot
        self.fake = fake
        self.bfl = bfl
        self.settings = settings
        self.services = bot.services
        self.events = events

    async def imagine(self, *, user=None, wait=True, **options):
        """Dispatch `/imagine` and (by default) wait until the bot finished with it."""
        options.setdefault("prompt", "a red fox in the snow")
        interaction = await self.fake.slash("imagine", options, user=user)
        if wait:
            await self.finished(interaction)
        return interaction

    async def finished(self, interaction, timeout=15.0):
        """Wait until the bot is done with this interaction: refused, or its job (or group) settled.

        Admission comes before the answer (or, past the acknowledgement budget, before the deferred
        answer is edited), so once the interaction is answered the engine has reported its job, or
        there is none (refused).
        """
        key = int(interaction.id)

        def answered():
            return interaction.acked and (
                self.events.seen(key, "admitted") or interaction.followups or not _loading(interaction.original_message)
            )

        await self.fake.wait_for(answered, timeout=timeout)
        if self.events.seen(key, "admitted"):
            if await self.services.engine.groups.get(key) is not None:
                await self.group_settled(key, timeout)
            else:
                await self.job_settled(key, timeout)
        return interaction

    async def job_settled(self, job, timeout=15.0):
        """Wait until a job (an id, or an interaction whose id it is) is :func:`settled`; the job."""
        job_id = int(getattr(job, "id", job))

        async def done():
            row = await self.services.jobs.get(job_id)
            return row if row is not None and settled(row) else None

        return await self.wait_until(done, timeout)

    async def group_settled(self, group_id, timeout=20.0):
        """Wait until a group is posted (or given up) and none of its images is open; its members."""
        groups = self.services.engine.groups

        async def done():
            group = await groups.get(group_id)
            members = await groups.members(group_id)
            posted = group is not None and group.posted_at is not None
            return members if posted and not any(m.status.is_open for m in members) else None

        return await self.wait_until(done, timeout)

    async def wait_state(self, job_id, *statuses, timeout=15.0):
        """Wait until the job's row is in one of ``statuses``; the job."""

        async def reached():
            row = await self.services.jobs.get(int(job_id))
            return row if row is not None and row.status in statuses else None

        return await self.wait_until(reached, timeout)

    async def wait_until(self, predicate, timeout=15.0):
        """Wait until an async predicate over the bot's state holds (re-read after each engine report); its value."""
        try:
            async with asyncio.timeout(timeout):
                while True:
                    tick = self.events.tick()
                    if value := await predicate():
                        return value
                    await tick.wait()
        except TimeoutError:
            raise TimeoutError(f"not reached in {timeout}s; last engine reports: {self.events.changes[-10:]}") from None

    def reply_text(self, interaction):
        """What the member finally sees: the ephemeral reply or the @original content/embed."""
        messages = [interaction.original_message, *interaction.followups]
        texts = []
        for message in messages:
            if not message:
                continue
            texts.append(message.get("content") or "")
            for embed in message.get("embeds") or []:
                texts.append(embed.get("description") or "")
                texts += [f"{f['name']}: {f['value']}" for f in embed.get("fields", [])]
        return "\n".join(texts)


@asynccontextmanager
async def running_bot(
    fake, bfl, settings, *, bfl_options=None, engine_options=None, clock=None
) -> AsyncIterator[BotHarness]:
    """The real bot (``assemble``, as `python -m bot` builds it), logged in to ``fake``.

    ``bfl_options``: the BFL client's (default: fast polls and back-offs); ``engine_options``: the job engine's;
    ``clock``: the bot's (default: the wall clock).
    """
    from bot.app import assemble

    events = EngineEvents()
    fast = {"backoff_base": 0.001, "backoff_cap": 0.01}
    options = dict(fast if bfl_options is None else bfl_options)
    options["engine_options"] = {"observer": events} | options.get("engine_options", {}) | (engine_options or {})
    timing = {"clock": clock} if clock is not None else {}
    async with assemble(settings, bfl_options=options, guild_ready_timeout=0.05, **timing) as bot:
        events.metrics = bot.services.ops.metrics  # before the engine starts: the bot's metrics miss nothing
        async with fake.run_bot(bot):
            yield BotHarness(bot, fake, bfl, settings, events)


@pytest.fixture
def bot_settings_overrides() -> dict[str, Any]:
    """Extra Settings for the bot under test (override per test or module)."""
    return {}


def pytest_collection_modifyitems(config, items):
    """A test marked ``sqlite_only`` (it checks the SQLite file itself) runs on SQLite only."""
    keep, dropped = [], []
    for item in items:
        callspec = getattr(item, "callspec", None)
        on_postgres = callspec is not None and callspec.params.get("backend") == "postgresql"
        (dropped if on_postgres and item.get_closest_marker("sqlite_only") else keep).append(item)
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        items[:] = keep


def _backends() -> list[str]:
    import os

    return os.environ.get("FLUXCORD_E2E_BACKENDS", "sqlite,postgresql").split(",")


@pytest.fixture(params=_backends())
def backend(request) -> dict[str, Any]:
    """The database the bot under test uses: every harness test runs on SQLite and on PostgreSQL."""
    if request.param == "postgresql":
        return {"database_url": request.getfixturevalue("pg_url"), "database_pool_size": 4}
    return {}


@pytest.fixture
def engine_options() -> dict[str, Any]:
    """Extra job-engine options for the bot under test, given at construction (override per module)."""
    return {}


@pytest.fixture
async def harness(
    discord_endpoints, fake_bfl, tmp_path, backend, bot_settings_overrides, engine_options
) -> AsyncIterator[BotHarness]:
    """The real bot, logged in to the fake Discord and using the fake BFL (on each database backend)."""
    from tests.e2e.support import bot_settings

    fake = discord_endpoints
    settings = bot_settings(fake, fake_bfl, tmp_path, **(backend | bot_settings_overrides))
    async with running_bot(fake, fake_bfl, settings, engine_options=engine_options) as harness:
        yield harness
    assert fake_bfl.schema_errors == []


@pytest.fixture
def people(harness):
    """A plain member, a moderator (Manage Server) and an administrator in the fake server."""
    from tests.e2e.fake_discord import Perm
    from tests.e2e.support import MEMBER_PERMISSIONS

    fake = harness.fake
    return {
        "member": fake.add_member(name="member", permissions=MEMBER_PERMISSIONS),
        "mod": fake.add_member(name="mod", permissions=MEMBER_PERMISSIONS | Perm.MANAGE_GUILD),
        "admin": fake.add_member(name="admin", permissions=Perm.ADMINISTRATOR),
    }


@pytest.fixture
async def modlog(harness, people):
    """A mod-log channel, set by a moderator through `/budget modlog`."""
    channel = harness.fake.add_channel("mod-log")
    interaction = await harness.fake.slash(
        "budget", {"channel": int(channel["id"])}, subcommand="modlog", user=people["mod"]
    )
    await interaction.wait_acked()
    return channel
