"""Which limits apply to a member, and the moderator changes to them (each one audited).

Per-server switches live in :mod:`bot.server_settings`, the audit log in :mod:`bot.audit`.

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

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from bot.audit import Actor, AuditEntry, AuditLog, Subject, SubjectKind
from bot.billing.caps import Limit, Metric, Scope, Source, describe_limit
from bot.billing.ledger import Ledger
from bot.billing.money import format_usd
from bot.billing.periods import Period
from bot.clock import Clock, to_millis, utc_now
from bot.config import Settings
from bot.storage.database import Database

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class LimitSetting:
    """One row a moderator set."""

    target: Subject
    metric: Metric
    period: Period
    value: int

    def describe(self) -> str:
        """``$2.00 per week`` / ``10 images per day`` (as audit rows store it)."""
        return describe_limit(self.metric, self.period, self.value)


class LimitsService:
    """Resolves the limits that apply to a member, and the moderators' changes to them (each audited)."""

    def __init__(self, db: Database, settings: Settings, audit: AuditLog, clock: Clock = utc_now) -> None:
        self._db = db
        self._settings = settings
        self._audit = audit
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
        server = [s for s in settings if s.target.kind is SubjectKind.SERVER and s.metric is Metric.USD]
        if server:
            limits += [Limit(Scope.SERVER, Metric.USD, s.period, s.value, Source.MODERATORS) for s in server]
        else:
            default = self._settings.default_server_daily_budget_micros
            limits.append(Limit(Scope.SERVER, Metric.USD, Period.DAY, default, Source.BOT_DEFAULT))
        limits.append(
            Limit(
                Scope.BOT,
                Metric.USD,
                self._settings.bot_budget_period,
                self._settings.bot_budget_micros,
                Source.OWNER,
            )
        )
        return limits

    def _member_limits(self, guild_id: int, metric: Metric, settings: list[LimitSetting]) -> list[Limit]:
        own = [s for s in settings if s.target.kind is SubjectKind.MEMBER]
        if own:
            return [Limit(Scope.MEMBER, metric, s.period, s.value, Source.PERSONAL) for s in own]
        by_role: dict[int, dict[Period, int]] = {}
        for s in settings:
            if s.target.kind is SubjectKind.ROLE:
                by_role.setdefault(s.target.id, {})[s.period] = s.value
        if by_role:
            limits = []
            for period in Period:
                candidates = [(role, periods[period]) for role, periods in by_role.items() if period in periods]
                if candidates:
                    role_id, value = max(candidates, key=lambda rv: rv[1])
                    if role_id == guild_id:
                        limits.append(Limit(Scope.MEMBER, metric, period, value, Source.SERVER_DEFAULT))
                    else:
                        limits.append(Limit(Scope.MEMBER, metric, period, value, Source.ROLE, role_id))
            return limits
        if metric is Metric.USD:
            value = self._settings.default_member_daily_budget_micros
        else:
            value = self._settings.default_member_daily_images
        return [Limit(Scope.MEMBER, metric, Period.DAY, value, Source.BOT_DEFAULT)]

    async def settings_for(self, target: Subject, guild_id: int) -> list[LimitSetting]:
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
        self, guild_id: int, setting: LimitSetting, *, actor_id: int | Actor
    ) -> tuple[AuditEntry, LimitSetting | None]:
        """Create or replace one limit; return the audit entry and the previous setting.

        ``actor_id``: a moderator (:class:`Actor`) is refused a raise of a limit that applies to
        themselves unless an administrator (:class:`bot.audit.SelfBenefitRefused`, nothing written);
        a new limit counts as a raise. A bare id is trusted (no such check).
        """
        actor, actor_id = _who(actor_id)
        target = setting.target
        async with self._db.transaction() as tx:
            row = await tx.fetch_one(
                "SELECT target_kind, target_id, metric, period, value FROM limits WHERE guild_id = ?"
                " AND target_kind = ? AND target_id = ? AND metric = ? AND period = ?",
                (guild_id, target.kind.value, target.id, setting.metric.value, setting.period.value),
            )
            old = _setting(row) if row else None
            raised = old is None or setting.value > old.value
            benefits = actor is not None and actor.allow(raised and actor.is_subject_of(target, guild_id))
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
            change = (old.describe() if old else None, setting.describe())
            action = f"{setting.metric.value} limit.set"
            entry = await self._audit.write(tx, guild_id, actor_id, action, target, change, self_benefiting=benefits)
        return entry, old

    async def clear_member(self, guild_id: int, user_id: int, *, actor_id: int | Actor) -> AuditEntry:
        """Remove every override set on one member (they fall back to their roles).

        A moderator (:class:`Actor`) removing their own overrides needs an administrator (it may raise them).
        """
        actor, actor_id = _who(actor_id)
        target = Subject(SubjectKind.MEMBER, user_id)
        async with self._db.transaction() as tx:
            rows = await tx.fetch_all(
                "SELECT target_kind, target_id, metric, period, value FROM limits"
                " WHERE guild_id = ? AND target_kind = 'member' AND target_id = ?",
                (guild_id, user_id),
            )
            benefits = actor is not None and actor.allow(bool(rows) and actor.is_subject_of(target, guild_id))
            await tx.execute(
                "DELETE FROM limits WHERE guild_id = ? AND target_kind = 'member' AND target_id = ?",
                (guild_id, user_id),
            )
            old = ", ".join(_setting(r).describe() for r in rows) or None
            change = (old, "role limits")
            return await self._audit.write(
                tx, guild_id, actor_id, "overrides.reset", target, change, self_benefiting=benefits
            )

    async def grant(
        self, ledger: Ledger, *, guild_id: int, user_id: int, micros: int, actor_id: int | Actor
    ) -> AuditEntry:
        """Give a member a one-off extra ``micros`` for the current periods, audited: ONE transaction.

        If the audit row cannot be written, the grant is rolled back with it and the error raised. A
        moderator (:class:`Actor`) granting themselves needs an administrator; the row is flagged.
        """
        actor = actor_id if isinstance(actor_id, Actor) else Actor(actor_id, administrator=True)
        benefits = actor.allow(user_id == actor.id)
        member = Subject(SubjectKind.MEMBER, user_id)
        change = (None, f"+{format_usd(micros)}")
        async with self._db.transaction() as tx:
            await ledger.grant(guild_id=guild_id, user_id=user_id, micros=micros, actor_id=actor.id, executor=tx)
            return await self._audit.write(tx, guild_id, actor.id, "grant", member, change, self_benefiting=benefits)


def _who(actor: int | Actor) -> tuple[Actor | None, int]:
    """The moderator to check for self-benefit (None: a bare id, trusted), and their id."""
    return (actor, actor.id) if isinstance(actor, Actor) else (None, actor)


def _setting(row: Mapping[str, Any]) -> LimitSetting:
    return LimitSetting(
        Subject(SubjectKind(row["target_kind"]), row["target_id"]),
        Metric(row["metric"]),
        Period(row["period"]),
        row["value"],
    )
