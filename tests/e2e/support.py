"""Helpers shared by the end-to-end tests."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from bot.config import Settings
from bot.engine.engine import JobEngine
from tests.e2e.fake_discord import Perm

MEMBER_PERMISSIONS = Perm.VIEW_CHANNEL | Perm.SEND_MESSAGES


def bot_settings(fake: Any, fake_bfl: Any, folder: Path, **overrides: Any) -> Settings:
    """Settings pointing the bot at the fake Discord and fake BFL, with its files in ``folder``."""
    return Settings(
        _env_file=None,
        discord_token=fake.token,
        bfl_api_key=fake_bfl.api_key,
        bfl_api_url=fake_bfl.url,
        discord_api_url=fake.api_url,
        discord_gateway_url=fake.gateway_url,
        database_path=folder / "fluxcord.sqlite3",
        cache_dir=folder / "cache",
        **overrides,
    )


def loaded_cog_module(bot: Any, name: str = "cogs.imagine") -> Any:
    """The module object the bot loaded (``load_extension`` executes a fresh copy of the file)."""
    return bot.extensions[name]


def hold_admissions(monkeypatch: Any) -> asyncio.Event:
    """Make every admission wait until the returned event is set (a slow database, on demand)."""
    released = asyncio.Event()
    real_admit = JobEngine.admit

    async def slow_admit(self: JobEngine, *args: Any, **kwargs: Any) -> Any:
        await released.wait()
        return await real_admit(self, *args, **kwargs)

    monkeypatch.setattr(JobEngine, "admit", slow_admit)
    return released


def uid(member: dict[str, Any]) -> int:
    """A fake member's user id."""
    return int(member["user"]["id"])


async def first_answer(harness: Any, interaction: Any) -> Any:
    """Wait until ``interaction`` is acknowledged and has its first answer (the original message or a followup)."""
    await interaction.wait_acked()
    await harness.fake.wait_for(lambda: interaction.original_message is not None or interaction.followups)
    return interaction


def text_of(interaction: Any) -> str:
    """Every text the bot answered ``interaction`` with: contents, embed titles, descriptions, authors, fields."""
    parts = []
    for message in [interaction.original_message, *interaction.followups]:
        if message:
            parts.append(message.get("content") or "")
            for embed in message.get("embeds") or []:
                parts += [embed.get("title") or "", embed.get("description") or ""]
                parts.append((embed.get("author") or {}).get("name") or "")
                parts += [f"{f['name']}: {f['value']}" for f in embed.get("fields", [])]
    return "\n".join(parts)


async def rows(harness: Any, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """The rows of ``sql`` in the bot's database, as tuples."""
    return [tuple(r) for r in await harness.services.db.fetch_all(sql, params)]
