"""Ask for more: a member's request for extra budget, waiting for a moderator's Approve or Deny.

A request (table ``budget_asks``, migration 0028) is open until a moderator decides it or it expires
(:data:`ASK_TTL`, by the injected clock: the database's). A member has at most one open request per
server (a unique index on the open ones). Deciding is once-only: the request is closed by ONE
conditional update (``… WHERE state = 'open'``) in the transaction that also writes the grant's ledger
row and its audit row, so of two moderators clicking Approve at the same moment one grants and the
other is told it was handled (:attr:`Decision.outcome`). Nobody decides their own request, and an
amount above the server's threshold (:data:`DEFAULT_ADMIN_ABOVE_MICROS` unless set) needs an
administrator.
"""

from __future__ import annotations

import enum
import logging
import secrets
from dataclasses import dataclass, replace
from datetime import timedelta
from typing import Any

from bot.audit import Actor, AuditEntry, AuditLog, Subject, SubjectKind
from bot.billing.ledger import Ledger
from bot.billing.money import format_usd
from bot.clock import Clock, to_millis, utc_now
from bot.errors import InvalidOptions, NotAllowed
from bot.storage.database import Database, Transaction

log = logging.getLogger(__name__)

ASK_TTL = timedelta(days=1)
DEFAULT_ADMIN_ABOVE_MICROS = 5_000_000  # $5: larger asks need an administrator unless the server says otherwise
MAX_REASON = 300
GONE_TEXT = "This request no longer exists."
OWN_TEXT = "This is your own request: another moderator has to decide it."
ADMIN_TEXT = (
    "This request is for {amount}, above the {limit} moderators may approve here: an administrator has to approve it."
)


class Outcome(enum.StrEnum):
    """What a click on Approve or Deny did."""

    APPROVED = "approved"
    DENIED = "denied"
    HANDLED = "handled"  # someone else decided it first (or it was already closed)
    EXPIRED = "expired"


@dataclass(frozen=True)
class Ask:
    """One request for more."""

    id: str
    guild_id: int
    user_id: int
    channel_id: int
    micros: int
    reason: str | None
    state: str
    decided_by: int | None = None


@dataclass(frozen=True)
class Decision:
    """The result of a decision: what happened, the request, and the audit row (approved or denied)."""

    outcome: Outcome
    ask: Ask
    entry: AuditEntry | None = None


class AlreadyAsked(InvalidOptions):
    """The member has an open request in this server already (nothing was stored)."""

    def __init__(self, ask: Ask) -> None:
        super().__init__(
            f"You already asked the moderators for {format_usd(ask.micros)}; wait for their answer (a request"
            " expires after a day)."
        )
        self.ask = ask


class AskStore:
    """Opens, decides and expires requests for more (``budget_asks``)."""

    def __init__(self, db: Database, ledger: Ledger, audit: AuditLog, clock: Clock = utc_now) -> None:
        self._db = db
        self._ledger = ledger
        self._audit = audit
        self._clock = clock

    async def open(self, *, guild_id: int, user_id: int, channel_id: int, micros: int, reason: str | None) -> Ask:
        """Store a new open request (an expired one is closed first); :class:`AlreadyAsked` if one is open."""
        if micros <= 0:
            raise ValueError("an ask must be positive")
        now = to_millis(self._clock())
        reason = (reason or "").strip()[:MAX_REASON] or None
        ask = Ask(secrets.token_hex(8), guild_id, user_id, channel_id, micros, reason, "open")
        expires = now + int(ASK_TTL.total_seconds() * 1000)
        async with self._db.transaction() as tx:
            await self._expire(tx, now, guild_id=guild_id, user_id=user_id)
            inserted = await tx.execute(
                "INSERT INTO budget_asks (id, guild_id, user_id, channel_id, micros, reason, state, created_at,"
                " expires_at) VALUES (?, ?, ?, ?, ?, ?, 'open', ?, ?)"
                " ON CONFLICT (guild_id, user_id) WHERE state = 'open' DO NOTHING",
                (ask.id, guild_id, user_id, channel_id, micros, reason, now, expires),
            )
        if inserted != 1:
            row = await self._db.fetch_one(
                "SELECT * FROM budget_asks WHERE guild_id = ? AND user_id = ? AND state = 'open'", (guild_id, user_id)
            )
            raise AlreadyAsked(_ask(row) if row is not None else ask)
        return ask

    async def withdraw(self, ask_id: str) -> None:
        """Remove a request that never reached the moderators (its mod-log post failed)."""
        await self._db.execute("DELETE FROM budget_asks WHERE id = ? AND state = 'open'", (ask_id,))

    async def get(self, ask_id: str) -> Ask | None:
        """A request by id."""
        row = await self._db.fetch_one("SELECT * FROM budget_asks WHERE id = ?", (ask_id,))
        return _ask(row) if row is not None else None

    async def decide(
        self, ask_id: str, *, guild_id: int, actor: Actor, approve: bool, admin_above_micros: int | None
    ) -> Decision:
        """Approve (grant through the ledger, audited, one transaction) or deny an open request, once.

        Raises (nothing changed) for a request of another server or none, the member's own request, or
        an approval above ``admin_above_micros`` (None: :data:`DEFAULT_ADMIN_ABOVE_MICROS`) by a
        moderator who is not an administrator.
        """
        ask = await self.get(ask_id)
        if ask is None or ask.guild_id != guild_id:
            raise InvalidOptions(GONE_TEXT)
        if ask.user_id == actor.id:
            raise NotAllowed(OWN_TEXT)
        limit = DEFAULT_ADMIN_ABOVE_MICROS if admin_above_micros is None else admin_above_micros
        if approve and ask.micros > limit and not actor.administrator and ask.state == "open":
            raise NotAllowed(ADMIN_TEXT.format(amount=format_usd(ask.micros), limit=format_usd(limit)))
        now = to_millis(self._clock())
        state = Outcome.APPROVED if approve else Outcome.DENIED
        async with self._db.transaction() as tx:
            if await self._expire(tx, now, id=ask_id):
                return Decision(Outcome.EXPIRED, ask)
            closed = await tx.execute(
                "UPDATE budget_asks SET state = ?, decided_by = ?, decided_at = ? WHERE id = ? AND state = 'open'",
                (state.value, actor.id, now, ask_id),
            )
            if closed != 1:
                return Decision(Outcome.HANDLED, await self.get(ask_id) or ask)
            entry = await self._record(tx, ask, actor.id, approve=approve)
        return Decision(state, replace(ask, state=state.value, decided_by=actor.id), entry)

    async def _record(self, tx: Transaction, ask: Ask, actor_id: int, *, approve: bool) -> AuditEntry:
        """The grant (when approved) and the audit row, inside the decision's transaction."""
        member = Subject(SubjectKind.MEMBER, ask.user_id)
        amount = f"+{format_usd(ask.micros)}"
        if approve:
            await self._ledger.grant(
                guild_id=ask.guild_id, user_id=ask.user_id, micros=ask.micros, actor_id=actor_id,
                note=f"ask {ask.id}", executor=tx,
            )  # fmt: skip
            return await self._audit.write(tx, ask.guild_id, actor_id, "ask.approve", member, (None, amount))
        return await self._audit.write(tx, ask.guild_id, actor_id, "ask.deny", member, (amount, None))

    async def _expire(self, tx: Transaction, now: int, **where: Any) -> int:
        """Close the open requests past their expiry matching ``where`` (column = value); how many."""
        conditions = "".join(f" AND {column} = ?" for column in where)
        return await tx.execute(
            f"UPDATE budget_asks SET state = 'expired' WHERE state = 'open' AND expires_at <= ?{conditions}",
            (now, *where.values()),
        )


def _ask(row: Any) -> Ask:
    return Ask(
        row["id"], row["guild_id"], row["user_id"], row["channel_id"], row["micros"], row["reason"], row["state"],
        row["decided_by"],
    )  # fmt: skip
