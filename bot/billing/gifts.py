"""Gifts: a member moves part of their own remaining budget for the current period to another member.

A gift is two ``grant`` rows in the ledger (:meth:`~bot.billing.ledger.Ledger.transfer`) — minus the
amount on the giver, plus it on the receiver, for the current day, week and month, like a moderator's
``/budget grant`` — one row in
``gifts`` (what the per-day gift cap counts) and one audit row, all in ONE transaction. The checks
are made in that transaction, under the same locks as the write (the bank style: the cap is checked
on every write, never from an earlier read):

* SQLite: every transaction runs alone (``BEGIN IMMEDIATE`` under the write lock);
* PostgreSQL: the gifts of one server take one advisory lock (``gifts:<guild>``, so two gifts in
  opposite directions never meet in each other's counter rows), and the giver's ``member_activity``
  row is locked ``FOR UPDATE`` — the row every reservation of the giver locks first
  (``ledger_reserve``), so a gift and the giver's own reservations take turns.

What a giver has left is, for each of their own dollar limits, ``limit + granted - spent`` where
spent counts reservations still open and granted counts earlier gifts (negative) and grants; the
smallest over their day, week and month limits. A gift never takes more than that, so the giver
never goes below zero, and the sum over both sides is zero.

The per-day cap (``guild_settings.gift_cap_micros``, ``/budget gifts cap:``) is what one member may
give per UTC day in the server; 0, the default, turns gifts off.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from bot.audit import AuditEntry, AuditLog, Subject, SubjectKind
from bot.billing.caps import Limit, Metric, Scope, scope_key
from bot.billing.ledger import Ledger
from bot.billing.money import format_usd
from bot.billing.periods import PeriodKeys
from bot.clock import Clock, to_millis, utc_now
from bot.errors import LimitReached
from bot.storage.database import Database, Transaction

MAX_NOTE = 200


class GiftRefused(LimitReached):
    """A gift that was not made (nothing changed on either side); the text says why."""


@dataclass(frozen=True)
class Gift:
    """One gift asked for: ``micros`` from ``giver_id`` to ``receiver_id`` in ``guild_id``."""

    guild_id: int
    giver_id: int
    receiver_id: int
    micros: int
    note: str | None = None


@dataclass(frozen=True)
class GiftMade:
    """A gift made: its audit row, what the giver has left now, and what they may still give today."""

    entry: AuditEntry
    left_micros: int
    cap_left_micros: int


class Gifts:
    """Makes gifts (each audited) and reads the per-day cap's use."""

    def __init__(self, db: Database, ledger: Ledger, audit: AuditLog, clock: Clock = utc_now) -> None:
        self._db = db
        self._ledger = ledger
        self._audit = audit
        self._clock = clock

    async def give(self, gift: Gift, giver_limits: Sequence[Limit]) -> GiftMade:
        """Make ``gift`` under the giver's limits (:meth:`~bot.billing.limits.LimitsService.limits_for`).

        Raises :class:`GiftRefused` with nothing written: to themselves, not positive, gifts off, over
        the day's cap, or more than the giver has left.
        """
        if gift.giver_id == gift.receiver_id:
            raise GiftRefused("You can't give budget to yourself.")
        if gift.micros <= 0:
            raise GiftRefused("A gift must be more than $0.")
        own = [lim for lim in giver_limits if lim.scope is Scope.MEMBER and lim.metric is Metric.USD]
        if not own:
            raise GiftRefused("You have no dollar budget of your own in this server, so there is nothing to give.")
        now = self._clock()
        keys = PeriodKeys.at(now)
        async with self._db.transaction() as tx:
            await _lock_giver(tx, gift)
            cap_left = await _cap_left(tx, gift, keys.day)
            if gift.micros > cap_left:
                raise GiftRefused(_over_cap_text(cap_left))
            left = await _left(tx, gift, own, keys)
            if gift.micros > left:
                raise GiftRefused(
                    f"You have {format_usd(left)} left this period; a gift can't be more than that"
                    f" ({format_usd(gift.micros)} asked)."
                )
            entry = await self._write(tx, gift, keys, now)
        return GiftMade(entry, left - gift.micros, cap_left - gift.micros)

    async def _write(self, tx: Transaction, gift: Gift, keys: PeriodKeys, now: datetime) -> AuditEntry:
        """The ledger's transfer (two grant rows), the gift's row and its audit row."""
        g = gift
        await self._ledger.transfer(
            tx, guild_id=g.guild_id, giver_id=g.giver_id, receiver_id=g.receiver_id, micros=g.micros, at=now
        )
        await tx.execute(
            "INSERT INTO gifts (guild_id, giver_id, receiver_id, micros, day, note, at) VALUES (?, ?, ?, ?, ?, ?, ?)",
            (g.guild_id, g.giver_id, g.receiver_id, g.micros, keys.day, g.note, to_millis(now)),
        )
        receiver = Subject(SubjectKind.MEMBER, g.receiver_id)  # the actor is the giver
        return await self._audit.write(tx, g.guild_id, g.giver_id, "gift", receiver, (None, format_usd(g.micros)))

    async def given_today(self, guild_id: int, giver_id: int) -> int:
        """What ``giver_id`` gave today (UTC) in ``guild_id``, in µ$."""
        day = PeriodKeys.at(self._clock()).day
        return int(
            await self._db.fetch_value(
                "SELECT CAST(COALESCE(SUM(micros), 0) AS BIGINT) FROM gifts WHERE guild_id = ? AND giver_id = ?"
                " AND day = ?",
                (guild_id, giver_id, day),
                default=0,
            )
        )


async def _lock_giver(tx: Transaction, gift: Gift) -> None:
    """PostgreSQL: the server's gift lock, then the giver's activity row (as their reservations lock it)."""
    if not tx.for_update:
        return  # SQLite: this transaction runs alone
    await tx.lock(f"gifts:{gift.guild_id}")
    await tx.execute(
        "INSERT INTO member_activity (guild_id, user_id) VALUES (?, ?) ON CONFLICT DO NOTHING",
        (gift.guild_id, gift.giver_id),
    )
    await tx.fetch_one(
        "SELECT pending_jobs FROM member_activity WHERE guild_id = ? AND user_id = ? FOR UPDATE",
        (gift.guild_id, gift.giver_id),
    )


async def _cap_left(tx: Transaction, gift: Gift, day: str) -> int:
    """What the giver may still give today under the server's cap; refuses when gifts are off."""
    cap = await tx.fetch_one("SELECT gift_cap_micros FROM guild_settings WHERE guild_id = ?", (gift.guild_id,))
    if cap is None or cap[0] <= 0:
        raise GiftRefused("Gifts are off in this server (moderators turn them on with `/budget gifts cap:`).")
    given = await tx.fetch_one(
        "SELECT CAST(COALESCE(SUM(micros), 0) AS BIGINT) FROM gifts WHERE guild_id = ? AND giver_id = ? AND day = ?",
        (gift.guild_id, gift.giver_id, day),
    )
    return max(0, int(cap[0]) - int(given[0] if given else 0))


def _over_cap_text(cap_left: int) -> str:
    if cap_left == 0:
        return "You've given all you may today in this server (the moderators' daily gift cap); try tomorrow (UTC)."
    return f"The daily gift cap here lets you give {format_usd(cap_left)} more today."


async def _left(tx: Transaction, gift: Gift, own: Sequence[Limit], keys: PeriodKeys) -> int:
    """The giver's remaining budget: the smallest ``limit + granted - spent`` over their dollar limits."""
    scope = scope_key(Scope.MEMBER, gift.guild_id, gift.giver_id)
    left: int | None = None
    for limit in own:
        row = await tx.fetch_one(
            "SELECT CAST(COALESCE(SUM(micros), 0) AS BIGINT), CAST(COALESCE(SUM(granted_micros), 0) AS BIGINT)"
            " FROM usage WHERE scope = ? AND period = ?",
            (scope, keys.of(limit.period)),
        )
        spent, granted = (int(row[0]), int(row[1])) if row else (0, 0)
        remaining = max(0, limit.value + granted - spent)
        left = remaining if left is None else min(left, remaining)
    return left or 0
