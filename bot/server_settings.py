"""Per-server switches: the pause, the moderator role, the mod-log, the models, asks, gifts, the priority role.

Each change is audited (:class:`bot.audit.AuditLog`) in the transaction that makes it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from bot.audit import SERVER, AuditEntry, AuditLog
from bot.billing.money import format_usd
from bot.storage.database import Database

COLUMNS = (
    "paused",
    "moderator_role_id",
    "modlog_channel_id",
    "fallback_model",
    "draft_model",
    "ask_admin_above_micros",
    "gift_cap_micros",
    "priority_role_id",
)


# How an earlier value is shown in the audit row, when not as stored.
_SHOWN: dict[str, Callable[[Any], str]] = {"gift_cap_micros": lambda micros: format_usd(micros) if micros else "off"}


@dataclass(frozen=True)
class GuildSettings:
    """Per-server switches."""

    paused: bool = False
    moderator_role_id: int | None = None
    modlog_channel_id: int | None = None
    fallback_model: str | None = None  # offered when a model's circuit breaker refuses (bot/engine/fallback.py)
    draft_model: str | None = None  # `/imagine draft:true` candidates; None: the DRAFT_MODEL setting
    ask_admin_above_micros: int | None = None  # asks for more above this need an administrator (None: the default)
    gift_cap_micros: int = 0  # what one member may give per UTC day (`/gift`, bot/billing/gifts.py); 0: off
    priority_role_id: int | None = None  # its members' jobs go first within the server (`/budget priority`)


class ServerSettings:
    """Reads and changes the per-server switches (``guild_settings``)."""

    def __init__(self, db: Database, audit: AuditLog) -> None:
        self._db = db
        self._audit = audit

    async def guild_settings(self, guild_id: int) -> GuildSettings:
        """The server's switches (defaults when never set)."""
        row = await self._db.fetch_one(
            f"SELECT {', '.join(COLUMNS)} FROM guild_settings WHERE guild_id = ?",
            (guild_id,),
        )
        if row is None:
            return GuildSettings()
        return GuildSettings(bool(row["paused"]), *(row[column] for column in COLUMNS[1:]))

    async def update(
        self, guild_id: int, column: str, value: int | str | None, *, actor_id: int, action: str, shown: str | None
    ) -> AuditEntry:
        """Change one switch (one of :data:`COLUMNS`), audited as ``action`` with ``shown`` as its new value."""
        if column not in COLUMNS:
            raise ValueError(f"unknown guild setting {column}")
        async with self._db.transaction() as tx:
            before = await tx.fetch_one(f"SELECT {column} FROM guild_settings WHERE guild_id = ?", (guild_id,))
            await tx.execute(
                f"INSERT INTO guild_settings (guild_id, {column}) VALUES (?, ?)"
                f" ON CONFLICT (guild_id) DO UPDATE SET {column} = excluded.{column}",
                (guild_id, value),
            )
            old = None if before is None or before[0] is None else _SHOWN.get(column, str)(before[0])
            return await self._audit.write(tx, guild_id, actor_id, action, SERVER, (old, shown))
