"""Fixtures for end-to-end tests against the local fake Discord (see the ``fake_discord`` package)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
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
class BotHarness:
    """A running Fluxcord bot wired to a fake Discord and a fake BFL, plus helpers for tests."""

    def __init__(self, bot, fake, bfl, settings):
        self.bot = bot
        self.fake = fake
        self.bfl = bfl
        self.settings = settings
        self.services = bot.services
        # Instrumentation, not a mock: every real job state change also wakes tests waiting on it.
        self.job_changed = asyncio.Condition()
        store = self.services.jobs
        for name in ("apply", "advance", "claim", "update", "admit"):
            setattr(store, name, self._notifying(getattr(store, name)))
        groups = self.services.engine.groups  # /imagine count and draft: a group posted is a change too
        for name in ("admit", "acknowledge", "claim_posting", "mark_posted"):
            setattr(groups, name, self._notifying(getattr(groups, name)))

    def _notifying(self, method):
        async def wrapper(*args, **kwargs):
            try:
                return await method(*args, **kwargs)
            finally:
                async with self.job_changed:
                    self.job_changed.notify_all()

        return wrapper

    async def imagine(self, *, user=None, wait=True, **options):
        """Dispatch `/imagine` and (by default) wait until the bot finished with it."""
        options.setdefault("prompt", "a red fox in the snow")
        interaction = await self.fake.slash("imagine", options, user=user)
        if wait:
            await self.finished(interaction)
        return interaction

    async def finished(self, interaction, timeout=15.0):
        """Wait until the bot is done with this interaction: refused, failed, or delivered."""
        await self.fake.wait_for(lambda: interaction.acked, timeout=timeout)

        async def done():
            if interaction.ephemeral or interaction.followups:
                return True  # refused privately: no job was started
            job = await self.services.jobs.get(int(interaction.id))
            return job is not None and not job.status.is_open

        await self.wait_until(done, timeout)
        if not interaction.ephemeral:  # the final edit is recorded just before the job is marked done
            await self.fake.wait_for(lambda: not _is_progress(interaction.original_message), timeout=timeout)
        return interaction

    async def wait_until(self, predicate, timeout=15.0):
        """Wait, without polling, until an async predicate over the bot's state holds."""
        async with asyncio.timeout(timeout):
            async with self.job_changed:
                while not await predicate():
                    await self.job_changed.wait()

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


def _is_progress(message):
    content = (message or {}).get("content") or ""
    return (
        not message or bool(message.get("flags", 0) & 128) or content[:1] in {"⏳", "⏸", "📨", "🎨", "📥", "🧠", "📦"}
    )


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
async def harness(
    discord_endpoints, fake_bfl, tmp_path, backend, bot_settings_overrides, monkeypatch
) -> AsyncIterator[BotHarness]:
    """The real bot, logged in to the fake Discord and using the fake BFL (on each database backend)."""
    from bot.app import assemble
    from tests.e2e.support import bot_settings

    fake = discord_endpoints
    settings = bot_settings(fake, fake_bfl, tmp_path, **(backend | bot_settings_overrides))
    async with (
        assemble(
            settings,
            bfl_options={"backoff_base": 0.001, "backoff_cap": 0.01},
            guild_ready_timeout=0.05,
        ) as bot,
        fake.run_bot(bot),
    ):
        harness = BotHarness(bot, fake, fake_bfl, settings)
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
