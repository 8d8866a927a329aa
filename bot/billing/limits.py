"""Which limits apply to a member, and the moderator changes to them (each one audited).

Resolution, per metric (dollars, images):
- member-level settings win outright (a member override replaces role limits for that metric);
- otherwise the member's roles, @everyone included: per period, the most generous of the roles
  that set that period applies (a period no role sets is not capped; when money is at stake a role
  that is silent about a period does not lift another role's cap on it);
- otherwise the bot's conservative defaults from settings.
Server limits come from `/budget server`, else the default server budget; the bot-wide budget
always applies.
"""

from __future__ import annotations

import enum
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from bot.billing.ledger import Ledger, Limit, Metric, Scope, describe_limit
from bot.billing.money import format_usd
from bot.clock import Clock, from_millis, to_millis, utc_now
from bot.config import Period, Settings
from bot.storage.database import Database, Transaction

log = logging.getLogger(__name__)


class TargetKind(enum.StrEnum):
    """What a moderator's limit is set on."""

    MEMBER = "member"
    ROLE = "role"
    SERVER = "server"


@dataclass(frozen=True)
class Target:
    """A member, a role (@everyone's id is the guild's) or the whole server."""

    kind: TargetKind
    id: int

    def mention(self, guild_id: int) -> str:
        """How to show the target in Discord (mentions are never pinged by the bot)."""
        if self.kind is TargetKind.MEMBER:
            return f"<@{self.id}>"
        if self.kind is TargetKind.ROLE:
            return "@everyone" if self.id == guild_id else f"<@&{self.id}>"
        return "the server"


@dataclass(frozen=True)
class LimitSetting:
    """One row a moderator set."""

    target: Target
    metric: Metric
    period: Period
    value: int

    def describe(self) -> str:
        """``$2.00 per week`` / ``10 images per day``."""
        return describe_limit(self.metric, self.period, self.value)


@dataclass(frozen=True)
class AuditEntry:
    """One moderator change."""

    guild_id: int
    actor_id: int
    action: str
    target: str
    old_value: str | None
    new_value: str | None
    at: datetime

    def describe(self) -> str:
        """A one-line, human summary for the mod-log channel."""
        change = f"{self.old_value or '—'} → {self.new_value or '—'}"
        return f"<@{self.actor_id}> {self.action.replace('.', ' ')} for {self.target}: {change}"


@dataclass(frozen=True)
class GuildSettings:
    """Per-server switches."""

    paused: bool = False
    moderator_role_id: int | None = None
    modlog_channel_id: int | None = None
    fallback_model: str | None = None  # offered when a model's circuit breaker refuses (bot/engine/fallback.py)
    draft_model: str | None = None  # `/imagine draft:true` candidates; None: the DRAFT_MODEL setting


class LimitsService:
    """Reads and changes limits and per-server settings; every change lands in the audit log."""

    def __init__(self, db: Database, settings: Settings, clock: Clock = utc_now) -> None:
        self._db = db
        self._settings = settings
        self._clock = clock

    async def limits_for(self, guild_id: int, user_id: int, role_ids: Sequence[int]) -> list[Limit]:
        """Every limit that applies to ``user_id`` in ``guild_id`` right now."""
        roles = {guild_id, *role_ids}
        placeholders = ",".join("?" * len(roles))
        rows = await self._db.fetch_all(
            "SELECT target_kind, target_id, metric, period, value FROM limits WHERE guild_id = ? AND ("
            " target_kind = 'server' OR (target_kind = 'member' AND target_id = ?)"
            f" OR (target_kind = 'role' AND target_id IN ({placeholders})))",
            (guild_id, user_id, *roles),
        )
        settings = [_setting(row) for row in rows]
        limits: list[Limit] = []
        for metric in Metric:
            limits += self._member_limits(guild_id, metric, [s for s in settings if s.metric is metric])
        server = [s for s in settings if s.target.kind is TargetKind.SERVER and s.metric is Metric.USD]
        if server:
            limits += [Limit(Scope.SERVER, Metric.USD, s.period, s.value, "set by moderators") for s in server]
        else:
            default = self._settings.default_server_daily_budget_micros
            limits.append(Limit(Scope.SERVER, Metric.USD, Period.DAY, default, "the bot's default"))
        limits.append(
            Limit(
                Scope.BOT,
                Metric.USD,
                self._settings.bot_budget_period,
                self._settings.bot_budget_micros,
                "set by the bot's owner",
            )
        )
        return limits

    def _member_limits(self, guild_id: int, metric: Metric, settings: list[LimitSetting]) -> list[Limit]:
        own = [s for s in settings if s.target.kind is TargetKind.MEMBER]
        if own:
            return [Limit(Scope.MEMBER, metric, s.period, s.value, "your personal limit") for s in own]
        by_role: dict[int, dict[Period, int]] = {}
        for s in settings:
            if s.target.kind is TargetKind.ROLE:
                by_role.setdefault(s.target.id, {})[s.period] = s.value
        if by_role:
            limits = []
            for period in Period:
                candidates = [(role, periods[period]) for role, periods in by_role.items() if period in periods]
                if candidates:
                    role_id, value = max(candidates, key=lambda rv: rv[1])
                    source = "the server default" if role_id == guild_id else f"your <@&{role_id}> role"
                    limits.append(Limit(Scope.MEMBER, metric, period, value, source))
            return limits
        if metric is Metric.USD:
            value = self._settings.default_member_daily_budget_micros
        else:
            value = self._settings.default_member_daily_images
        return [Limit(Scope.MEMBER, metric, Period.DAY, value, "the bot's default")]

    async def settings_for(self, target: Target, guild_id: int) -> list[LimitSetting]:
        """What moderators set on one target."""
        rows = await self._db.fetch_all(
            "SELECT target_kind, target_id, metric, period, value FROM limits"
            " WHERE guild_id = ? AND target_kind = ? AND target_id = ? ORDER BY metric, period",
            (guild_id, target.kind.value, target.id),
        )
        return [_setting(row) for row in rows]

    async def all_settings(self, guild_id: int) -> list[LimitSetting]:
        """Everything moderators set in a server."""
        rows = await self._db.fetch_all(
            "SELECT target_kind, target_id, metric, period, value FROM limits WHERE guild_id = ?"
            " ORDER BY target_kind, target_id, metric, period",
            (guild_id,),
        )
        return [_setting(row) for row in rows]

    async def set_limit(
        self, guild_id: int, setting: LimitSetting, *, actor_id: int
    ) -> tuple[AuditEntry, LimitSetting | None]:
        """Create or replace one limit; return the audit entry and the previous setting."""
        target = setting.target
        async with self._db.transaction() as tx:
            row = await tx.fetch_one(
                "SELECT target_kind, target_id, metric, period, value FROM limits WHERE guild_id = ?"
                " AND target_kind = ? AND target_id = ? AND metric = ? AND period = ?",
                (guild_id, target.kind.value, target.id, setting.metric.value, setting.period.value),
            )
            old = _setting(row) if row else None
            now = to_millis(self._clock())
            await tx.execute(
                "INSERT INTO limits (guild_id, target_kind, target_id, metric, period, value, updated_by,"
                " updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (guild_id, target_kind, target_id,"
                " metric, period) DO UPDATE SET value = excluded.value, updated_by = excluded.updated_by,"
                " updated_at = excluded.updated_at",
                (
                    guild_id,
                    target.kind.value,
                    target.id,
                    setting.metric.value,
                    setting.period.value,
                    setting.value,
                    actor_id,
                    now,
                ),
            )
            entry = await self._audit(
                tx,
                guild_id,
                actor_id,
                f"{setting.metric.value} limit.set",
                target.mention(guild_id),
                old.describe() if old else None,
                setting.describe(),
            )
        return entry, old

    async def clear_member(self, guild_id: int, user_id: int, *, actor_id: int) -> AuditEntry:
        """Remove every override set on one member (they fall back to their roles)."""
        target = Target(TargetKind.MEMBER, user_id)
        async with self._db.transaction() as tx:
            rows = await tx.fetch_all(
                "SELECT target_kind, target_id, metric, period, value FROM limits"
                " WHERE guild_id = ? AND target_kind = 'member' AND target_id = ?",
                (guild_id, user_id),
            )
            await tx.execute(
                "DELETE FROM limits WHERE guild_id = ? AND target_kind = 'member' AND target_id = ?",
                (guild_id, user_id),
            )
            old = ", ".join(_setting(r).describe() for r in rows) or None
            return await self._audit(
                tx, guild_id, actor_id, "overrides.reset", target.mention(guild_id), old, "role limits"
            )

    async def guild_settings(self, guild_id: int) -> GuildSettings:
        """The server's switches (defaults when never set)."""
        row = await self._db.fetch_one(
            "SELECT paused, moderator_role_id, modlog_channel_id, fallback_model, draft_model FROM guild_settings"
            " WHERE guild_id = ?",
            (guild_id,),
        )
        if row is None:
            return GuildSettings()
        return GuildSettings(
            bool(row["paused"]),
            row["moderator_role_id"],
            row["modlog_channel_id"],
            row["fallback_model"],
            row["draft_model"],
        )

    async def update_guild_setting(
        self, guild_id: int, column: str, value: int | str | None, *, actor_id: int, action: str, shown: str | None
    ) -> AuditEntry:
        """Change one per-server switch (``paused``, the moderator role, the mod-log, the fallback/draft model)."""
        if column not in {"paused", "moderator_role_id", "modlog_channel_id", "fallback_model", "draft_model"}:
            raise ValueError(f"unknown guild setting {column}")
        async with self._db.transaction() as tx:
            before = await tx.fetch_one(
                f"SELECT {column} FROM guild_settings WHERE guild_id = ?",
                (guild_id,),
            )
            await tx.execute(
                f"INSERT INTO guild_settings (guild_id, {column}) VALUES (?, ?)"
                f" ON CONFLICT (guild_id) DO UPDATE SET {column} = excluded.{column}",
                (guild_id, value),
            )
            old = None if before is None or before[0] is None else str(before[0])
            return await self._audit(tx, guild_id, actor_id, action, "the server", old, shown)

    async def audit_log(self, guild_id: int, limit: int = 20) -> list[AuditEntry]:
        """The most recent moderator changes, newest first."""
        rows = await self._db.fetch_all(
            "SELECT guild_id, actor_id, action, target, old_value, new_value, at FROM audit_log"
            " WHERE guild_id = ? ORDER BY id DESC LIMIT ?",
            (guild_id, limit),
        )
        return [
            AuditEntry(
                r["guild_id"],
                r["actor_id"],
                r["action"],
                r["target"],
                r["old_value"],
                r["new_value"],
                from_millis(r["at"]),
            )
            for r in rows
        ]

    async def grant(
        self, ledger: Ledger, *, guild_id: int, user_id: int, micros: int, actor_id: int, target: str
    ) -> AuditEntry:
        """Give a member a one-off extra ``micros`` for the current periods, audited: ONE transaction.

        ``target`` is how the audit log names the member (their mention). If the audit row cannot be
        written, the grant is rolled back with it and the error raised.
        """
        async with self._db.transaction() as tx:
            await ledger.grant(guild_id=guild_id, user_id=user_id, micros=micros, actor_id=actor_id, executor=tx)
            return await self._audit(tx, guild_id, actor_id, "grant", target, None, f"+{format_usd(micros)}")

    async def record(
        self, guild_id: int, actor_id: int, action: str, target: str, old: str | None, new: str | None
    ) -> AuditEntry:
        """Write an audit entry for a change made elsewhere."""
        async with self._db.transaction() as tx:
            return await self._audit(tx, guild_id, actor_id, action, target, old, new)

    async def _audit(
        self,
        tx: Transaction,
        guild_id: int,
        actor_id: int,
        action: str,
        target: str,
        old: str | None,
        new: str | None,
    ) -> AuditEntry:
        now = self._clock()
        await tx.execute(
            "INSERT INTO audit_log (guild_id, actor_id, action, target, old_value, new_value, at)"
            " VALUES (?, ?, ?, ?, ?, ?, ?)",
            (guild_id, actor_id, action, target, old, new, to_millis(now)),
        )
        log.info("Audit: guild %s actor %s %s %s: %s -> %s", guild_id, actor_id, action, target, old, new)
        return AuditEntry(guild_id, actor_id, action, target, old, new, now)


def _setting(row: Mapping[str, Any]) -> LimitSetting:
    return LimitSetting(
        Target(TargetKind(row["target_kind"]), row["target_id"]),
        Metric(row["metric"]),
        Period(row["period"]),
        row["value"],
    )
