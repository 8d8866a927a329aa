"""The money ledger: reserve before a BFL submit, then settle or release — atomically, idempotently.

One interface, two ways to keep it on the two backends:

* **SQLite** (one writer at a time): a reservation is ONE conditional SQL statement (``INSERT …
  SELECT … WHERE <every limit holds>``) in a transaction, checked against the counters and written
  with them (triggers, migration 0002), so fifty concurrent reservations can never overspend.
* **PostgreSQL** (many processes at once): the server and bot counters are split into shards and
  their caps enforced by escrow — allowances of the cap held in the shards — so no row is locked by
  every writer, and no cap is ever exceeded, across processes and crashes. A reservation is one
  call, ``ledger_reserve()`` (migration ``postgres/0016``); the design and why it holds are in
  :mod:`bot.billing.escrow`.

Either way a counter's value is the sum of its rows, a refusal writes nothing, and a job has at most
one reserve and one outcome row (unique indexes), so repeating a step after a retry or a crash never
charges twice. :meth:`Ledger.verify_counters` rebuilds the counters from the rows
(:mod:`bot.billing.bookkeeping`).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from bot.billing import escrow
from bot.billing.bookkeeping import read_counter, verify_counters, verify_open
from bot.billing.caps import (  # re-exported: the ledger's callers import them from here
    Demand,
    Limit,
    LimitStatus,
    Metric,
    ReserveRequest,
    ReserveTerms,
    Scope,
    describe_limit,
    scope_key,
)
from bot.billing.periods import PeriodKeys, period_end
from bot.billing.refusals import CoolingDown, LimitRefused, OverLimit, TooManyPending
from bot.billing.retry import reserve_or_explain
from bot.clock import Clock, from_millis, to_millis, utc_now
from bot.errors import GenerationPaused
from bot.storage.database import Database, Transaction

__all__ = [
    "BUSY_TEXT",
    "Demand",
    "Ledger",
    "Limit",
    "LimitStatus",
    "Metric",
    "Reservation",
    "ReserveRequest",
    "ReserveTerms",
    "Scope",
    "describe_limit",
    "read_counter",
    "scope_key",
]

log = logging.getLogger(__name__)

BUSY_TEXT = "The bot is very busy right now; please try again in a moment."
ATTEMPTS = 4  # a reservation tries again after a refusal that nothing explains (and after a refill)


class Executor(Protocol):
    """Runs one write statement: the :class:`Database` itself, or a transaction it opened."""

    async def execute(self, sql: str, params: Sequence[object] = ()) -> int:
        """Run ``sql``; return the number of rows it changed."""


class _Refused(Exception):
    """A reservation's limits did not hold (raised inside its transaction to roll it back)."""


@dataclass(frozen=True)
class Reservation:
    """Money held for one job until it is settled or released."""

    job_id: int
    guild_id: int
    user_id: int
    estimated_micros: int
    reserved_at: datetime


_RESERVE_COLUMNS = (
    "kind, job_id, guild_id, user_id, model, server_micros, member_micros, member_images, day, week, month, at"
)
_USED = {
    (Scope.MEMBER, Metric.USD): "micros - granted_micros",
    (Scope.MEMBER, Metric.IMAGES): "images",
    (Scope.SERVER, Metric.USD): "micros",
    (Scope.SERVER, Metric.IMAGES): "images",
    (Scope.BOT, Metric.USD): "micros",
    (Scope.BOT, Metric.IMAGES): "images",
}


# A counter may be spread over shards (PostgreSQL, migration 0016): its value is the sum of its rows.


class Ledger:
    """Reservations, settlements, releases, grants and adjustments over the `ledger` table."""

    def __init__(self, db: Database, clock: Clock = utc_now) -> None:
        self._db = db
        self._clock = clock
        # PostgreSQL: counter shards and escrow (bot.billing.escrow); SQLite: plain conditional inserts.
        self._escrow = getattr(db, "backend", "sqlite") == "postgresql"

    async def reserve(
        self,
        *,
        job_id: int,
        guild_id: int,
        user_id: int,
        model: str,
        estimated_micros: int,
        terms: ReserveTerms,
    ) -> Reservation:
        """Hold ``estimated_micros`` and one image under ``terms``, or refuse with no side effect.

        Raises :class:`GenerationPaused` or :class:`LimitRefused` (which limit, what is left, when it
        resets). Reserving the same ``job_id`` again returns the existing reservation.
        """

        async def attempt(now: datetime) -> Reservation | None:
            request = ReserveRequest(job_id, guild_id, user_id, model, estimated_micros, terms, now)
            if await self._reserve_once(request):
                return Reservation(job_id, guild_id, user_id, estimated_micros, now)
            return await self.reservation(job_id)  # reserving the same job again: the existing one

        async def explain(now: datetime) -> None:
            await self.explain_refusal(Demand(guild_id, user_id, estimated_micros), terms, now)

        return await reserve_or_explain(self._clock, attempt, explain, attempts=ATTEMPTS, busy=BUSY_TEXT)

    async def _reserve_once(self, request: ReserveRequest) -> bool:
        if self._escrow:  # one statement, its own transaction
            return await escrow.reserve(self._db, request)
        try:
            async with self._db.transaction() as tx:
                if not await self.try_reserve(tx, request):
                    raise _Refused
        except _Refused:
            return False
        return True

    async def try_reserve(self, tx: Transaction, request: ReserveRequest) -> bool:
        """Write the reservation inside the open transaction ``tx`` (an admission writes its job beside it).

        True if every limit held and the row was written; False if not: then roll ``tx`` back (on
        PostgreSQL it is aborted), and :meth:`explain_refusal` says why — or, when nothing refuses,
        readies what a second try needs.
        """
        if self._escrow:
            return await escrow.reserve(tx, request)
        r, terms = request, request.terms
        keys = PeriodKeys.at(r.now)
        now_ms = to_millis(r.now)
        conditions = [
            "NOT EXISTS (SELECT 1 FROM guild_settings WHERE guild_id = ? AND paused = 1)",
            "COALESCE((SELECT pending_jobs FROM member_activity WHERE guild_id = ? AND user_id = ?), 0) < ?",
        ]
        params: list[object] = [r.guild_id, r.guild_id, r.user_id, terms.max_pending_jobs]
        if terms.cooldown_seconds > 0:
            conditions.append(
                "COALESCE((SELECT last_reserved_at FROM member_activity WHERE guild_id = ? AND user_id = ?), 0) <= ?"
            )
            params += [r.guild_id, r.user_id, now_ms - terms.cooldown_seconds * 1000]
        for limit in terms.limits:
            used = _USED[(limit.scope, limit.metric)]
            cost = r.demand.needed(limit.metric)
            conditions.append(f"COALESCE((SELECT {used} FROM usage WHERE scope = ? AND period = ?), 0) + ? <= ?")
            params += [scope_key(limit.scope, r.guild_id, r.user_id), keys.of(limit.period), cost, limit.value]
        sql = (
            f"INSERT INTO ledger ({_RESERVE_COLUMNS}) SELECT 'reserve', CAST(? AS BIGINT), CAST(? AS BIGINT),"
            " CAST(? AS BIGINT), CAST(? AS TEXT), CAST(? AS BIGINT), CAST(? AS BIGINT), 1, CAST(? AS TEXT),"
            " CAST(? AS TEXT), CAST(? AS TEXT), CAST(? AS BIGINT) WHERE "
            + " AND ".join(conditions)
            + " ON CONFLICT DO NOTHING"
        )
        row_values = [r.job_id, r.guild_id, r.user_id, r.model, r.estimated_micros, r.estimated_micros]
        row_values += [keys.day, keys.week, keys.month, now_ms]
        return await tx.execute(sql, [*row_values, *params]) == 1

    async def explain_refusal(self, demand: Demand, terms: ReserveTerms, now: datetime) -> None:
        """Raise the refusal that explains why a reservation of ``demand`` under ``terms`` was not written.

        Returns if none applies. ``demand.images`` > 1: an all-or-nothing group of that many images
        costing ``demand.estimated_micros`` in all. Raises :class:`GenerationPaused`, or
        :class:`LimitRefused` carrying the refusal as data.
        """
        guild_id, user_id, images = demand.guild_id, demand.user_id, demand.images
        if await self._db.fetch_value("SELECT paused FROM guild_settings WHERE guild_id = ?", (guild_id,), default=0):
            raise GenerationPaused
        for status in await self.statuses(guild_id, user_id, terms.limits):
            self._check(status, demand)
        activity = await self._db.fetch_one(
            "SELECT pending_jobs, last_reserved_at FROM member_activity WHERE guild_id = ? AND user_id = ?",
            (guild_id, user_id),
        )
        pending = activity["pending_jobs"] if activity is not None else 0
        if pending + images > terms.max_pending_jobs:  # a group's images count together
            raise LimitRefused(TooManyPending(pending, terms.max_pending_jobs, images))
        if activity is not None and terms.cooldown_seconds > 0:
            ready_ms = activity["last_reserved_at"] + terms.cooldown_seconds * 1000
            if ready_ms > to_millis(now):
                raise LimitRefused(CoolingDown(from_millis(ready_ms)))
        if self._escrow:  # nothing refuses: make sure the member's shard holds the allowances a retry needs
            short = await escrow.refill(self._db, demand, terms.limits, now)
            if short is not None:  # by an exact count, the cap cannot hold this (money spent meanwhile)
                [status] = await self.statuses(guild_id, user_id, [short])
                self._check(status, demand)

    @staticmethod
    def _check(status: LimitStatus, demand: Demand) -> None:
        """Raise :class:`LimitRefused` if ``demand`` does not fit ``status``."""
        needed = demand.needed(status.limit.metric)
        if status.used + needed > status.allowance:
            raise LimitRefused(OverLimit(status, needed, demand.images))

    async def statuses(self, guild_id: int, user_id: int, limits: Sequence[Limit]) -> list[LimitStatus]:
        """The current use of each limit (for refusals and ``/quota``)."""
        now = self._clock()
        keys = PeriodKeys.at(now)
        result = []
        for limit in limits:
            micros, images, granted = await read_counter(
                self._db, scope_key(limit.scope, guild_id, user_id), keys.of(limit.period)
            )
            if limit.metric is Metric.IMAGES:
                used, granted = images, 0
            elif limit.scope is Scope.MEMBER:
                used = micros
            else:
                used, granted = micros, 0
            result.append(LimitStatus(limit, used, granted, period_end(limit.period, now)))
        return result

    async def settle(
        self,
        job_id: int,
        cost_micros: int,
        *,
        refund_member: bool = False,
        note: str = "",
        executor: Executor | None = None,
    ) -> bool:
        """Record what BFL charged for the job; True if this call settled it (False: already done).

        ``refund_member`` keeps the charge on the server and bot totals (the money did leave the BFL
        account) but gives the member back their money and image (e.g. a provider error).
        """
        if cost_micros < 0:
            raise ValueError("a cost cannot be negative")
        refund = 1 if refund_member else 0
        return (
            await (executor or self._db).execute(
                f"INSERT INTO ledger ({_RESERVE_COLUMNS}, note) "
                "SELECT 'settle', job_id, guild_id, user_id, model, ? - server_micros,"
                " CASE WHEN ? = 1 THEN -member_micros ELSE ? - member_micros END,"
                " CASE WHEN ? = 1 THEN -1 ELSE 0 END, day, week, month, CAST(? AS BIGINT), CAST(? AS TEXT)"
                " FROM ledger WHERE job_id = ? AND kind = 'reserve' ON CONFLICT DO NOTHING",
                (cost_micros, refund, cost_micros, refund, to_millis(self._clock()), note or None, job_id),
            )
            == 1
        )

    async def release(self, job_id: int, *, note: str = "", executor: Executor | None = None) -> bool:
        """Give back everything a job held (BFL never accepted it); True if this call released it."""
        return (
            await (executor or self._db).execute(
                f"INSERT INTO ledger ({_RESERVE_COLUMNS}, note) "
                "SELECT 'release', job_id, guild_id, user_id, model, -server_micros, -member_micros,"
                " -member_images, day, week, month, CAST(? AS BIGINT), CAST(? AS TEXT)"
                " FROM ledger WHERE job_id = ? AND kind = 'reserve' ON CONFLICT DO NOTHING",
                (to_millis(self._clock()), note or None, job_id),
            )
            == 1
        )

    async def grant(
        self,
        *,
        guild_id: int,
        user_id: int,
        micros: int,
        actor_id: int,
        note: str = "",
        executor: Executor | None = None,
    ) -> None:
        """Give a member a one-off extra allowance for the current day, week and month.

        ``executor``: the transaction that also writes the grant's audit row
        (:meth:`bot.billing.limits.LimitsService.grant`), so neither exists without the other.
        """
        if micros <= 0:
            raise ValueError("a grant must be positive")
        await self._grant_row(executor or self._db, guild_id, user_id, micros, actor_id, note, self._clock())

    async def transfer(
        self, tx: Transaction, *, guild_id: int, giver_id: int, receiver_id: int, micros: int, at: datetime
    ) -> None:
        """Move ``micros`` of the giver's allowance for the periods of ``at`` to the receiver (a gift).

        Two ``grant`` rows in ``tx``, minus on the giver and plus on the receiver: the sum is zero. The
        caller checks, under the same transaction's locks, that the giver has that much left.
        """
        if micros <= 0 or giver_id == receiver_id:
            raise ValueError("a transfer moves a positive amount between two members")
        await self._grant_row(tx, guild_id, giver_id, -micros, giver_id, f"gift to {receiver_id}", at)
        await self._grant_row(tx, guild_id, receiver_id, micros, giver_id, f"gift from {giver_id}", at)

    @staticmethod
    async def _grant_row(
        executor: Executor, guild_id: int, user_id: int, micros: int, actor_id: int, note: str, at: datetime
    ) -> None:
        """One ``grant`` row: ``micros`` more (or, negative, less) allowance for the periods of ``at``."""
        keys = PeriodKeys.at(at)
        await executor.execute(
            f"INSERT INTO ledger ({_RESERVE_COLUMNS}, actor_id, note) "
            "VALUES ('grant', NULL, ?, ?, NULL, 0, ?, 0, ?, ?, ?, ?, ?, ?)",
            (guild_id, user_id, micros, keys.day, keys.week, keys.month, to_millis(at), actor_id, note or None),
        )

    async def reservation(self, job_id: int) -> Reservation | None:
        """The reservation row of a job, if any."""
        row = await self._db.fetch_one(
            "SELECT guild_id, user_id, server_micros, at FROM ledger WHERE job_id = ? AND kind = 'reserve'",
            (job_id,),
        )
        if row is None:
            return None
        return Reservation(job_id, row["guild_id"], row["user_id"], row["server_micros"], from_millis(row["at"]))

    async def outcome(self, job_id: int) -> str | None:
        """``'settle'`` or ``'release'`` once the job is resolved, else None."""
        return await self._db.fetch_value(
            "SELECT kind FROM ledger WHERE job_id = ? AND kind IN ('settle', 'release')", (job_id,)
        )

    async def member_charged(self, job_id: int) -> bool:
        """Whether the member pays for ``job_id``: it is settled and the member was not refunded.

        What the member is told about a job's money is read here, from its one outcome row, never
        guessed from the last thing that happened to the job.
        """
        row = await self._db.fetch_one(
            "SELECT kind, member_images FROM ledger WHERE job_id = ? AND kind IN ('settle', 'release')", (job_id,)
        )
        return row is not None and row["kind"] == "settle" and row["member_images"] >= 0

    async def open_job_ids(self) -> list[int]:
        """Jobs whose reservation is neither settled nor released, in the order they were reserved.

        Read from ``ledger_open``, which triggers keep as the ledger is written (migration 0016): the
        open reservations alone, however many were ever made.
        """
        rows = await self._db.fetch_all("SELECT job_id FROM ledger_open ORDER BY reserve_id")
        return [row["job_id"] for row in rows]

    async def verify_counters(self, *, since: datetime | None = None) -> list[str]:
        """Rebuild the counters from the ledger rows; return the mismatches (empty when consistent).

        ``since``: only the periods starting then or later (:mod:`bot.billing.bookkeeping`); a full check
        (``since`` None) also compares ``ledger_open`` with the reservations still open.
        """
        problems = await verify_counters(self._db, since=since)
        return problems + (await verify_open(self._db) if since is None else [])
