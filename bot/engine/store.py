"""The jobs table as a durable queue: admission, conditional transitions, the fair claim.

Every state change is ONE conditional update ``… WHERE id = ? AND status = <expected>`` (and, for a
process driving the job, ``AND claimed_by = <it>``), so a step can never run twice and a process that
lost a job changes nothing; every change that touches money runs in the same transaction as its
ledger row (:meth:`JobStore.apply`). Every write goes through :meth:`Database.transaction` or
:meth:`Database.execute` (the write path); reads never write. The claim that hands a queued job a BFL
slot is a single ``UPDATE … WHERE id = (SELECT … ORDER BY <fairness> LIMIT 1) RETURNING *`` statement
(:mod:`bot.engine.claim`).

Times that decide ownership (leases, takeovers, acknowledgement deadlines, timers) come from the
store's clock, which is the database's (:class:`bot.engine.dbclock.DbClock`).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from bot.billing.ledger import Ledger, ReserveTerms
from bot.billing.refunds import RefundPolicy
from bot.clock import Clock, from_millis, to_millis, utc_now
from bot.engine.claim import QueueSnapshot, claim_next, read_snapshot
from bot.engine.decision import Cost, Decision, IllegalEvent, MoneyAction, decide
from bot.engine.holders import OPEN_JOBS, Holders
from bot.engine.jobs import Job, NewJob, job_from_row, reserve_and_insert
from bot.engine.leases import ProcessIdentity
from bot.engine.states import Event, JobStatus
from bot.storage.database import Database, Transaction

log = logging.getLogger(__name__)

LATENCY_SAMPLES_KEPT = 50  # per model


@dataclass(frozen=True)
class Applied:
    """The outcome of :meth:`JobStore.apply`: the decision taken and the job as it now is."""

    decision: Decision
    job: Job
    settled_micros: int | None  # what the settlement recorded, if it settled
    before: Job  # the row as it was (a finished job's row no longer holds the interaction token)

    @property
    def reachable_job(self) -> Job:
        """The job as it now is, with the interaction token it had, to tell the member how it ended."""
        return replace(self.job, interaction_token=self.before.interaction_token)

    @property
    def over_estimate(self) -> bool:
        """The settlement recorded more than the job's estimate (the estimate was not an upper bound)."""
        return self.settled_micros is not None and self.settled_micros > self.before.estimated_micros


_UPDATABLE = {
    "cost_micros",
    "bfl_task_id",
    "polling_url",
    "error",
    "result_channel_id",
    "result_message_id",
    "result_file",
    "submitted_at",
    "ready_at",
    "sample_url",
    "bfl_stage",
    "expanded_prompt",
    "interaction_token",
    "acked",
    "next_attempt_at",
    "delivery_attempts",
}
_TIMES = {"submitted_at", "ready_at", "next_attempt_at"}  # datetimes stored as unix milliseconds


class JobStore(Holders):
    """Reads and writes jobs; the money side goes through the :class:`Ledger` in the same transaction.

    Who holds which job, the leases and the reconciler's reads are :class:`bot.engine.holders.Holders`'.
    """

    def __init__(self, db: Database, ledger: Ledger, clock: Clock = utc_now) -> None:
        self._db = db
        self._ledger = ledger
        self._clock = clock

    @property
    def db(self) -> Database:
        """The database the jobs live in (job groups share it)."""
        return self._db

    @property
    def clock(self) -> Clock:
        """The clock every ownership decision uses (the database's)."""
        return self._clock

    # -- admission ---------------------------------------------------------------------------------

    async def admit(
        self,
        job: NewJob,
        terms: ReserveTerms,
        *,
        cached: bool,
        acked: bool,
        holder: str | None = None,
    ) -> Job:
        """Reserve under ``terms`` and write the job row in ONE transaction, or raise :class:`AdmissionRefused`.

        ``cached`` admits a cache hit (0 µ$, still one image against the quotas). Admitting the same
        job id twice returns the existing job. ``holder`` is the admitting process (it acknowledges the job).
        """
        existing = await self.get(job.id)
        if existing is not None:
            return existing
        now = self._clock()
        async with self._db.transaction() as tx:
            await reserve_and_insert(tx, self._ledger, job, terms, now=now, cached=cached, acked=acked, holder=holder)
        admitted = await self.get(job.id)
        assert admitted is not None
        return admitted

    # -- transitions -------------------------------------------------------------------------------

    async def advance(self, job_id: int, expected: JobStatus, to: JobStatus, **fields: Any) -> Job | None:
        """Move a job from ``expected`` to ``to`` (no money involved); None if it was not in ``expected``."""
        async with self._db.transaction() as tx:
            return await self._move(tx, job_id, expected, to, fields, holder=None)

    async def acknowledge(self, job_id: int, *, message_id: int | None = None) -> Job | None:
        """Mark a queued or cached job acknowledged (its answer: ``message_id``), once; the job, or None."""
        async with self._db.transaction() as tx:
            row = await tx.fetch_one(
                "UPDATE jobs SET acked = 1, original_message_id = ? WHERE id = ? AND acked = 0"
                " AND status IN ('queued', 'cached') RETURNING *",
                (message_id, job_id),
            )
        return job_from_row(row) if row is not None else None

    async def update(self, job_id: int, expected: JobStatus, *, holder: str | None = None, **fields: Any) -> bool:
        """Record fields (a stage, a timer) on a job still in ``expected`` (and held by ``holder``, if given)."""
        assignments, values = _assignments(fields)
        held = " AND claimed_by = ?" if holder is not None else ""
        return (
            await self._db.execute(
                f"UPDATE jobs SET {assignments.removeprefix(', ')} WHERE id = ? AND status = ?{held}",
                (*values, job_id, expected.value, *([holder] if holder is not None else [])),
            )
            == 1
        )

    async def apply(
        self,
        job_id: int,
        event: Event,
        policy: RefundPolicy,
        *,
        expected: JobStatus | None = None,
        holder: str | None = None,
        acked: bool | None = None,
        unsent: bool = False,
        note: str = "",
        **fields: Any,
    ) -> Applied | None:
        """Decide what ``event`` does (:func:`decide`) and apply it: ledger row and state in ONE transaction.

        Returns None, changing nothing, if the job is unknown, not in ``expected`` (when given), not
        held by ``holder`` (when given: a process that lost the job changes nothing), not in the
        ``acked`` state (when given: a release for a missing acknowledgement never beats one), marked as
        possibly sent while ``unsent`` is asked (a job goes back to the queue only if its POST never left), or the event
        cannot happen in its state any more (another path got there first).
        """
        async with self._db.transaction() as tx:
            row = await tx.fetch_one(f"SELECT * FROM jobs WHERE id = ?{tx.for_update}", (job_id,))
            if row is None:
                return None
            job = job_from_row(row)
            if (
                (expected is not None and job.status is not expected)
                or (holder is not None and job.claimed_by != holder)
                or (acked is not None and job.acked is not acked)
                or (unsent and job.sent)
            ):
                return None
            try:
                decision = decide(job.status, event, policy)
            except IllegalEvent:
                log.debug("Job %s: %s ignored in state %s", job_id, event.value, job.status.value)
                return None
            settled = await self._money(tx, job, event, decision, note, fields)
            moved = await self._move(tx, job_id, job.status, decision.next_status, fields, holder=None)
            assert moved is not None  # the row is locked (or the write lock held) and its state was just read
        return Applied(decision, moved, settled, job)

    async def _money(
        self, tx: Transaction, job: Job, event: Event, decision: Decision, note: str, fields: dict[str, Any]
    ) -> int | None:
        """Write the decision's ledger row inside ``tx``; what a settlement recorded."""
        label = f"{event.value}: {note}" if note else event.value
        if decision.money is MoneyAction.RELEASE:
            await self._ledger.release(job.id, note=label, executor=tx)
            return None
        if decision.money is not MoneyAction.SETTLE:
            return None
        reported = fields.get("cost_micros", job.cost_micros)
        if decision.cost is Cost.ZERO:
            settled = 0
        elif decision.cost is Cost.ESTIMATE or reported is None:
            settled = job.estimated_micros
        else:
            settled = reported
        await self._ledger.settle(job.id, settled, refund_member=decision.refund_member, note=label, executor=tx)
        return settled

    async def claim(
        self,
        *,
        max_active: int,
        member_cap: int,
        holder: str | None = None,
        route_caps: Mapping[str, int] | None = None,
        private_after: int = 0,
    ) -> Job | None:
        """Hand the next job, by the fairness rule, a BFL slot (queued → submitting); None if none can go.

        The rule, the caps (``max_active`` for the organisation, ``route_caps`` per model: default the
        model table's, ``member_cap`` per member) and a paused server's jobs staying queued are
        :mod:`bot.engine.claim`'s. ``holder`` (the claiming process) is recorded on the job. A private
        job created before ``private_after`` (unix ms) is not claimed: its interaction would expire
        before its result could be shown (the reconciler releases it and tells the member).
        """
        row = await claim_next(
            self._db,
            now_ms=self.now_ms,
            max_active=max_active,
            member_cap=member_cap,
            holder=holder,
            caps=route_caps,
            private_after=private_after,
        )
        return None if row is None else job_from_row(row)

    async def start_sending(self, job_id: int, me: ProcessIdentity) -> Job | None:
        """Record, in its own committed write, that ``me`` is about to POST ``job_id``; None if it may not.

        Only the holder of a claimed, never-sent job may, and only while its lease (by the database's
        clock) has not expired: a process that lost its lease stops before any side effect.
        """
        now = self.now_ms()
        async with self._db.transaction() as tx:
            row = await tx.fetch_one(
                "UPDATE jobs SET submit_started_at = ?, next_attempt_at = NULL WHERE id = ? AND status = 'submitting'"
                " AND claimed_by = ? AND submit_started_at IS NULL AND bfl_task_id IS NULL AND EXISTS"
                " (SELECT 1 FROM processes p WHERE p.id = ? AND p.lease_expires_at > ?) RETURNING *",
                (now, job_id, me.id, me.id, now),
            )
        return job_from_row(row) if row is not None else None

    async def not_sent(self, job_id: int, me: ProcessIdentity, *, retry_at: datetime) -> bool:
        """BFL created nothing (a 429, a connection refused before sending): clear the mark, retry at ``retry_at``."""
        return (
            await self._db.execute(
                "UPDATE jobs SET submit_started_at = NULL, next_attempt_at = ? WHERE id = ? AND status = 'submitting'"
                " AND claimed_by = ? AND bfl_task_id IS NULL",
                (to_millis(retry_at), job_id, me.id),
            )
            == 1
        )

    async def _move(
        self,
        tx: Transaction,
        job_id: int,
        expected: JobStatus,
        to: JobStatus,
        fields: dict[str, Any],
        *,
        holder: str | None,
    ) -> Job | None:
        if to is JobStatus.DELIVERED:
            fields = {**fields, "interaction_token": None}  # the image is its last message: no credential kept
        # Any other end keeps the token (at most its 15 minutes) until the member is told (mark_told).
        if to is not expected:
            fields = {"next_attempt_at": None, **fields}  # a timer belongs to the state it was set in
        assignments, values = _assignments(fields)
        held = " AND claimed_by = ?" if holder is not None else ""
        row = await tx.fetch_one(
            f"UPDATE jobs SET status = ?, updated_at = ?{assignments} WHERE id = ? AND status = ?{held} RETURNING *",
            (to.value, self.now_ms(), *values, job_id, expected.value, *([holder] if holder is not None else [])),
        )
        return job_from_row(row) if row is not None else None

    # -- reads -------------------------------------------------------------------------------------

    async def get(self, job_id: int) -> Job | None:
        """One job, or None."""
        row = await self._db.fetch_one("SELECT * FROM jobs WHERE id = ?", (job_id,))
        return None if row is None else job_from_row(row)

    async def open_jobs(self) -> list[Job]:
        """Every job the engine still has work for, oldest first."""
        rows = await self._db.fetch_all(f"SELECT * FROM jobs WHERE {OPEN_JOBS} ORDER BY created_at, id")
        return [job_from_row(row) for row in rows]

    async def count(self, *statuses: JobStatus) -> int:
        """How many jobs are in any of ``statuses``.

        Open statuses (the queue, the slots: metrics, ``/status``) are counted among the open jobs
        alone; a finished status means reading the history, which no hot path does.
        """
        marks = ",".join("?" * len(statuses))
        among = f"{OPEN_JOBS} AND " if all(status.is_open for status in statuses) else ""
        return int(
            await self._db.fetch_value(
                f"SELECT COUNT(*) FROM jobs WHERE {among}status IN ({marks})", [s.value for s in statuses], default=0
            )
        )

    async def queue_snapshot(self) -> QueueSnapshot:
        """The queue and the running counts, read in one go (:func:`bot.engine.claim.read_snapshot`)."""
        return await read_snapshot(self._db)

    async def events(self, job_id: int) -> list[tuple[JobStatus, datetime]]:
        """The job's status history with times."""
        rows = await self._db.fetch_all(
            "SELECT status, at FROM job_events WHERE job_id = ? ORDER BY at, rowid", (job_id,)
        )
        return [(JobStatus(r["status"]), from_millis(r["at"])) for r in rows]

    # -- latency samples ---------------------------------------------------------------------------

    async def record_latency(self, model: str, seconds: float) -> None:
        """Remember one observed BFL latency (keeping the newest few per model)."""
        async with self._db.transaction() as tx:
            await tx.execute(
                "INSERT INTO model_latency (model, seconds, at) VALUES (?, ?, ?)",
                (model, max(0.0, seconds), self.now_ms()),
            )
            await tx.execute(
                "DELETE FROM model_latency WHERE model = ? AND id <= COALESCE((SELECT id FROM model_latency"
                " WHERE model = ? ORDER BY id DESC LIMIT 1 OFFSET ?), -1)",
                (model, model, LATENCY_SAMPLES_KEPT),
            )

    async def latency_samples(self) -> dict[str, list[float]]:
        """The remembered latencies per model, oldest first."""
        rows = await self._db.fetch_all("SELECT model, seconds FROM model_latency ORDER BY id")
        samples: dict[str, list[float]] = {}
        for row in rows:
            samples.setdefault(row["model"], []).append(row["seconds"])
        return samples


def _assignments(fields: dict[str, Any]) -> tuple[str, list[Any]]:
    """``", a = ?, b = ?"`` and the values for updatable job fields (datetimes as unix milliseconds)."""
    unknown = set(fields) - _UPDATABLE
    if unknown:
        raise ValueError(f"cannot update job fields {sorted(unknown)}")
    values = [to_millis(v) if name in _TIMES and isinstance(v, datetime) else v for name, v in fields.items()]
    return "".join(f", {name} = ?" for name in fields), values
