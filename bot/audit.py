"""The audit log: every moderator change (limits, switches, safety rules, styles, forgets), one row each.

A row names what changed by id (:class:`Subject`: ``member:<id>``, ``role:<id>``, ``channel:<id>``,
``server``) or by a plain label (``blocked words``, a style's name), never by Discord markup: the
mod-log and ``/budget`` render it at display time (``cogs/_render.py``). Rows written before that
hold a mention as text; they are shown as they are.
"""

from __future__ import annotations

import enum
import logging
from dataclasses import dataclass
from datetime import datetime

from bot.clock import Clock, from_millis, to_millis, utc_now
from bot.errors import NotAllowed
from bot.storage.database import Database, Transaction

log = logging.getLogger(__name__)


class SubjectKind(enum.StrEnum):
    """What an audit row (or a limit) is about."""

    MEMBER = "member"
    ROLE = "role"
    CHANNEL = "channel"
    SERVER = "server"


@dataclass(frozen=True)
class Subject:
    """A member, a role (@everyone's id is the guild's), a channel, or the whole server (id 0)."""

    kind: SubjectKind
    id: int = 0

    def key(self) -> str:
        """How a row stores it: ``member:<id>``, ``role:<id>``, ``channel:<id>`` or ``server``."""
        return "server" if self.kind is SubjectKind.SERVER else f"{self.kind.value}:{self.id}"

    @classmethod
    def parse(cls, stored: str) -> Subject | None:
        """The subject a stored target names; None for a plain label (or an old row's text)."""
        if stored == "server":
            return cls(SubjectKind.SERVER)
        kind, _, number = stored.partition(":")
        if kind in SubjectKind.__members__.values() and number.isdigit():
            return cls(SubjectKind(kind), int(number))
        return None


SERVER = Subject(SubjectKind.SERVER)


@dataclass(frozen=True)
class Actor:
    """The moderator making a change: whether they are an administrator, and their roles (from the payload).

    A change that benefits its own maker (item 7 of issue 24: a grant to themselves, a limit of
    theirs raised) needs an administrator, and its audit row says so (``self_benefiting``).
    """

    id: int
    administrator: bool = False
    role_ids: tuple[int, ...] = ()

    def is_subject_of(self, target: Subject, guild_id: int) -> bool:
        """Whether a limit on ``target`` applies to this moderator: themselves, or a role they hold (@everyone too)."""
        if target.kind is SubjectKind.MEMBER:
            return target.id == self.id
        return target.kind is SubjectKind.ROLE and (target.id == guild_id or target.id in self.role_ids)

    def allow(self, self_benefiting: bool) -> bool:
        """Whether this change may go ahead (raises :class:`SelfBenefitRefused` if not); ``self_benefiting`` back."""
        if self_benefiting and not self.administrator:
            raise SelfBenefitRefused(SELF_BENEFIT_TEXT)
        return self_benefiting


SELF_BENEFIT_TEXT = (
    "This would benefit you, so it needs an administrator. Ask an administrator, or another moderator, to do it."
)


class SelfBenefitRefused(NotAllowed):
    """A moderator who is not an administrator tried a change that benefits themselves (nothing changed)."""


@dataclass(frozen=True)
class AuditEntry:
    """One moderator change; ``target`` is a :meth:`Subject.key` or a plain label."""

    guild_id: int
    actor_id: int
    action: str
    target: str
    old_value: str | None
    new_value: str | None
    at: datetime
    self_benefiting: bool = False  # the change benefits the moderator who made it (an administrator)

    @property
    def subject(self) -> Subject | None:
        """What the change is about, when the row names it by id."""
        return Subject.parse(self.target)


class AuditLog:
    """Writes and reads the ``audit_log`` table."""

    def __init__(self, db: Database, clock: Clock = utc_now) -> None:
        self._db = db
        self._clock = clock

    async def record(
        self, guild_id: int, actor_id: int, action: str, target: Subject | str, old: str | None, new: str | None
    ) -> AuditEntry:
        """Write an audit entry for a change made elsewhere (its own transaction)."""
        async with self._db.transaction() as tx:
            return await self.write(tx, guild_id, actor_id, action, target, (old, new))

    async def write(
        self,
        tx: Transaction,
        guild_id: int,
        actor_id: int,
        action: str,
        target: Subject | str,
        change: tuple[str | None, str | None],
        *,
        self_benefiting: bool = False,
    ) -> AuditEntry:
        """Write an audit entry inside ``tx`` (the change and its row commit together); ``change``: old, new.

        ``self_benefiting``: the change benefits its maker (allowed for administrators; flagged).
        """
        now = self._clock()
        stored = target.key() if isinstance(target, Subject) else target
        old, new = change
        await tx.execute(
            "INSERT INTO audit_log (guild_id, actor_id, action, target, old_value, new_value, at, self_benefiting)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (guild_id, actor_id, action, stored, old, new, to_millis(now), int(self_benefiting)),
        )
        flag = " (self-benefiting)" if self_benefiting else ""
        log.info("Audit: guild %s actor %s %s %s: %s -> %s%s", guild_id, actor_id, action, stored, old, new, flag)
        return AuditEntry(guild_id, actor_id, action, stored, old, new, now, self_benefiting)

    async def recent(self, guild_id: int, limit: int = 20) -> list[AuditEntry]:
        """The most recent moderator changes, newest first."""
        rows = await self._db.fetch_all(
            "SELECT guild_id, actor_id, action, target, old_value, new_value, at, self_benefiting FROM audit_log"
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
                bool(r["self_benefiting"]),
            )
            for r in rows
        ]
