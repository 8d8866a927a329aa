"""The jobs table as a durable queue: admission, conditional transitions, the fair claim.

Every state change is ONE conditional update ``… WHERE id = ? AND status = <expected>``, so a step
can never run twice, and every change that touches money runs in the same transaction as its ledger
row (:meth:`JobStore.apply`). The claim that hands a queued job a BFL slot is a single ``UPDATE … WHERE
id = (SELECT … ORDER BY <fairness> LIMIT 1) RETURNING *`` statement: the same shape works on
PostgreSQL with ``FOR UPDATE SKIP LOCKED`` when several processes share the table.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from bot.billing.ledger import Ledger, Limit
from bot.clock import Clock, from_millis, to_millis, utc_now
from bot.config import RefundPolicy
from bot.engine.decision import Cost, Decision, IllegalEvent, MoneyAction, decide
from bot.engine.leases import ProcessIdentity, provably_gone
from bot.engine.states import SLOT_HOLDERS, Event, JobStatus
from bot.storage.database import Database, Transaction

log = logging.getLogger(__name__)

KONTEXT_MAX_MODEL = "flux-kontext-max"
LATENCY_SAMPLES_KEPT = 50  # per model
_FORGET_PROCESSES_MS = 24 * 3600 * 1000  # lease rows of processes gone this long are deleted


@dataclass(frozen=True)
class NewJob:
    """Everything admission writes about a job."""

    id: int
    guild_id: int
    channel_id: int
    user_id: int
    model: str
    prompt: str
    params: dict[str, Any]
    seed: int
    width: int
    height: int
    cache_key: str
    aspect_ratio: str | None
    estimated_micros: int
    application_id: int | None = None
    interaction_token: str | None = None
    upload_limit: int = 10 * 1024 * 1024
    private: bool = False  # the whole exchange is ephemeral (only the member sees it)
    style: str | None = None  # the server style applied to the prompt (bot.styles); never sent to BFL


@dataclass(frozen=True)
class Job:
    """A job row."""

    id: int
    guild_id: int
    channel_id: int
    user_id: int
    model: str
    prompt: str
    params: dict[str, Any]
    seed: int
    width: int
    height: int
    cache_key: str
    status: JobStatus
    estimated_micros: int
    cost_micros: int | None
    bfl_task_id: str | None
    polling_url: str | None
    error: str | None
    result_channel_id: int | None
    result_message_id: int | None
    created_at: datetime
    updated_at: datetime
    aspect_ratio: str | None
    acked: bool
    application_id: int | None
    interaction_token: str | None
    upload_limit: int
    submitted_at: datetime | None
    ready_at: datetime | None
    sample_url: str | None
    bfl_stage: str | None
    expanded_prompt: str | None
    private: bool = False
    erased_at: datetime | None = None  # prompt, parameters and result links erased (bot.safety.privacy)
    claimed_by: str | None = None  # the process that holds the job (bot.engine.leases), if any
    style: str | None = None  # the server style applied to the prompt (bot.styles), shown on the card
    group_id: int | None = None  # one image of an /imagine count:N or draft group (bot.engine.groups)
    group_index: int | None = None  # its place in the group, from 0

    @property
    def settled_cost_micros(self) -> int:
        """What a settlement of this job records: BFL's reported cost, else the estimate."""
        return self.cost_micros if self.cost_micros is not None else self.estimated_micros

    @property
    def generation_seconds(self) -> float:
        """From BFL accepting the task to its result being ready (0 when either is not known)."""
        if self.submitted_at is None or self.ready_at is None:
            return 0.0
        return (self.ready_at - self.submitted_at).total_seconds()


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


@dataclass(frozen=True)
class QueueSnapshot:
    """Queued jobs (oldest first) and what is running, for queue positions."""

    queued: list[tuple[int, int, int, str, int]]  # (job id, guild, user, model, created ms)
    running_by_guild: dict[int, int]
    running_by_member: dict[tuple[int, int], int]
    turns: dict[int, int]  # guild → its last turn number


class AdmissionRefused(Exception):
    """The reservation's limits did not hold; nothing was written."""


_UPDATABLE = {
    "cost_micros",
    "bfl_task_id",
    "polling_url",
    "error",
    "result_channel_id",
    "result_message_id",
    "submitted_at",
    "ready_at",
    "sample_url",
    "bfl_stage",
    "expanded_prompt",
    "interaction_token",
    "acked",
}
_RUNNING = "('" + "', '".join(sorted(s.value for s in SLOT_HOLDERS)) + "')"
# Open jobs, worded exactly as the WHERE clause of the `jobs_open` partial index (migration 0005): SQLite
# uses a partial index only for a query that repeats that term, so every query for open jobs says
# `WHERE {OPEN_JOBS}` and reads the open jobs alone, however long the history (a test proves each one).
OPEN_JOBS = "status IN ('queued', 'submitting', 'generating', 'downloading', 'delivering', 'cached')"

# The fair claim. Among queued, acknowledged jobs whose member and model are under their caps while
# fewer than :max_active tasks run: the server with the fewest running tasks, then the one served
# longest ago (round robin), then the member with the fewest running tasks, then the oldest request.
_CLAIM_SQL = f"""
UPDATE jobs SET status = 'submitting', updated_at = :now, claimed_by = :holder
WHERE status = 'queued' AND id = (
    WITH running AS (SELECT guild_id, user_id, model FROM jobs WHERE status IN {_RUNNING}),
    total AS (SELECT COUNT(*) AS n, COUNT(CASE WHEN model = '{KONTEXT_MAX_MODEL}' THEN 1 END) AS k FROM running),
    by_guild AS (SELECT guild_id, COUNT(*) AS n FROM running GROUP BY guild_id),
    by_member AS (SELECT guild_id, user_id, COUNT(*) AS n FROM running GROUP BY guild_id, user_id)
    SELECT j.id FROM jobs j
    CROSS JOIN total
    LEFT JOIN by_guild g ON g.guild_id = j.guild_id
    LEFT JOIN by_member m ON m.guild_id = j.guild_id AND m.user_id = j.user_id
    LEFT JOIN guild_turns t ON t.guild_id = j.guild_id
    WHERE j.status = 'queued' AND j.acked = 1
      AND total.n < :max_active
      AND (j.model != '{KONTEXT_MAX_MODEL}' OR total.k < :kontext_max)
      AND COALESCE(m.n, 0) < :member_cap
    ORDER BY COALESCE(g.n, 0), COALESCE(t.turn, 0), COALESCE(m.n, 0), j.created_at, j.id
    LIMIT 1
)
RETURNING *
"""


class JobStore:
    """Reads and writes jobs; the money side goes through the :class:`Ledger` in the same transaction."""

    def __init__(self, db: Database, ledger: Ledger, clock: Clock = utc_now) -> None:
        self._db = db
        self._ledger = ledger
        self._clock = clock

    @property
    def db(self) -> Database:
        """The database the jobs live in (job groups share it)."""
        return self._db

    # -- admission ---------------------------------------------------------------------------------

    async def admit(
        self,
        job: NewJob,
        *,
        limits: Sequence[Limit],
        max_pending_jobs: int,
        cooldown_seconds: int,
        cached: bool,
        acked: bool,
        holder: str | None = None,
    ) -> Job:
        """Write the reservation and the job row in ONE transaction, or raise :class:`AdmissionRefused`.

        ``cached`` admits a cache hit (0 µ$, still one image against the quotas). Admitting the same
        job id twice returns the existing job. ``holder`` is the admitting process (it acknowledges the job).
        """
        existing = await self.get(job.id)
        if existing is not None:
            return existing
        now = self._clock()
        async with self._db.transaction() as tx:
            await reserve_and_insert(
                tx,
                self._ledger,
                job,
                limits=limits,
                max_pending_jobs=max_pending_jobs,
                cooldown_seconds=cooldown_seconds,
                now=now,
                cached=cached,
                acked=acked,
                holder=holder,
            )
        admitted = await self.get(job.id)
        assert admitted is not None
        return admitted

    # -- transitions -------------------------------------------------------------------------------

    async def advance(self, job_id: int, expected: JobStatus, to: JobStatus, **fields: Any) -> Job | None:
        """Move a job from ``expected`` to ``to`` (no money involved); None if it was not in ``expected``."""
        async with self._db.transaction() as tx:
            return await self._move(tx, job_id, expected, to, fields)

    async def acknowledge(self, job_id: int) -> Job | None:
        """Mark a queued or cached job acknowledged, once; the job, or None if there was nothing to do."""
        async with self._db.transaction() as tx:
            rows = await tx.fetch_all(
                "UPDATE jobs SET acked = 1 WHERE id = ? AND acked = 0 AND status IN ('queued', 'cached') RETURNING *",
                (job_id,),
            )
        return _job(rows[0]) if rows else None

    async def update(self, job_id: int, expected: JobStatus, **fields: Any) -> bool:
        """Record fields (e.g. the stage BFL reports) on a job still in ``expected``."""
        _check_fields(fields)
        assignments = ", ".join(f"{name} = ?" for name in fields)
        return (
            await self._db.execute(
                f"UPDATE jobs SET {assignments} WHERE id = ? AND status = ?",
                (*fields.values(), job_id, expected.value),
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
        note: str = "",
        **fields: Any,
    ) -> Applied | None:
        """Decide what ``event`` does (:func:`decide`) and apply it: ledger row and state in ONE transaction.

        Returns None, changing nothing, if the job is unknown, not in ``expected`` (when given), or
        the event cannot happen in its state any more (another path got there first).
        """
        async with self._db.transaction() as tx:
            row = await tx.fetch_one(f"SELECT * FROM jobs WHERE id = ?{tx.for_update}", (job_id,))
            if row is None:
                return None
            job = _job(row)
            if expected is not None and job.status is not expected:
                return None
            try:
                decision = decide(job.status, event, policy)
            except IllegalEvent:
                log.debug("Job %s: %s ignored in state %s", job_id, event.value, job.status.value)
                return None
            settled = None
            label = f"{event.value}: {note}" if note else event.value
            if decision.money is MoneyAction.RELEASE:
                await self._ledger.release(job_id, note=label, executor=tx)
            elif decision.money is MoneyAction.SETTLE:
                cost_reported = fields.get("cost_micros", job.cost_micros)
                if decision.cost is Cost.ZERO:
                    settled = 0
                elif decision.cost is Cost.ESTIMATE or cost_reported is None:
                    settled = job.estimated_micros
                else:
                    settled = cost_reported
                await self._ledger.settle(
                    job_id, settled, refund_member=decision.refund_member, note=label, executor=tx
                )
            moved = await self._move(tx, job_id, job.status, decision.next_status, fields)
            assert moved is not None  # the write lock is held and the state was just read
        return Applied(decision, moved, settled, job)

    async def claim(
        self, *, max_active: int, kontext_max: int, member_cap: int, holder: str | None = None
    ) -> Job | None:
        """Hand the next job, by the fairness rule, a BFL slot (queued → submitting); None if none can go.

        The running count is read across every process sharing the database, so BFL's active-task cap
        holds for all of them; ``holder`` (the claiming process) is recorded on the job.
        """
        async with self._db.transaction() as tx:
            await tx.lock("jobs.claim")  # concurrent claimers (PostgreSQL) must see one running count
            rows = await tx.fetch_all(
                _CLAIM_SQL,
                {
                    "now": to_millis(self._clock()),
                    "max_active": max_active,
                    "kontext_max": kontext_max,
                    "member_cap": member_cap,
                    "holder": holder,
                },
            )
        return _job(rows[0]) if rows else None

    async def _move(
        self, tx: Transaction, job_id: int, expected: JobStatus, to: JobStatus, fields: dict[str, Any]
    ) -> Job | None:
        _check_fields(fields)
        if not to.is_open:
            fields = {**fields, "interaction_token": None}  # a finished job needs no Discord credential
        assignments = "".join(f", {name} = ?" for name in fields)
        rows = await tx.fetch_all(
            f"UPDATE jobs SET status = ?, updated_at = ?{assignments} WHERE id = ? AND status = ? RETURNING *",
            (to.value, to_millis(self._clock()), *fields.values(), job_id, expected.value),
        )
        return _job(rows[0]) if rows else None

    # -- holders and leases (several processes) ----------------------------------------------------

    async def renew_lease(self, identity: ProcessIdentity, *, seconds: float) -> None:
        """Record that ``identity`` runs for another ``seconds``; forget processes gone for a day."""
        now = to_millis(self._clock())
        async with self._db.transaction() as tx:
            await tx.execute(
                "INSERT INTO processes (id, role, host, pid, started_at, lease_expires_at) VALUES (?, ?, ?, ?, ?, ?)"
                " ON CONFLICT (id) DO UPDATE SET lease_expires_at = excluded.lease_expires_at",
                (identity.id, identity.role, identity.machine, identity.pid, now, now + int(seconds * 1000)),
            )
            await tx.execute("DELETE FROM processes WHERE lease_expires_at < ?", (now - _FORGET_PROCESSES_MS,))

    async def release_lease(self, identity: ProcessIdentity) -> None:
        """``identity`` stopped: its jobs may be taken over at once."""
        await self._db.execute("DELETE FROM processes WHERE id = ?", (identity.id,))

    async def live_processes(self) -> list[str]:
        """The ids of processes whose lease has not expired."""
        rows = await self._db.fetch_all(
            "SELECT id FROM processes WHERE lease_expires_at > ? ORDER BY id", (to_millis(self._clock()),)
        )
        return [row["id"] for row in rows]

    async def orphaned(self, me: ProcessIdentity) -> list[Job]:
        """Open jobs that need a process and whose holder is gone (or that never had one), oldest first.

        A queued job that was acknowledged needs no holder (any process may claim it). A holder is
        gone when its lease expired or was released, or when :func:`provably_gone` says so.
        """
        live = set(await self.live_processes())
        rows = await self._db.fetch_all(
            f"SELECT * FROM jobs WHERE {OPEN_JOBS} AND NOT (status = 'queued' AND acked = 1)"
            " AND (claimed_by IS NULL OR claimed_by != ?) ORDER BY created_at, id",
            (me.id,),
        )
        jobs = [_job(row) for row in rows]
        return [
            job
            for job in jobs
            if job.claimed_by is None or job.claimed_by not in live or provably_gone(job.claimed_by, me)
        ]

    async def take(self, job: Job, me: ProcessIdentity) -> Job | None:
        """Make ``me`` the holder of ``job`` if it still has the holder it was seen with; the job, or None."""
        rows = await self._db.fetch_all(
            "UPDATE jobs SET claimed_by = ? WHERE id = ? AND COALESCE(claimed_by, '') = ? RETURNING *",
            (me.id, job.id, job.claimed_by or ""),
        )
        return _job(rows[0]) if rows else None

    async def holds(self, job_id: int, me: ProcessIdentity) -> bool:
        """Whether ``me`` still holds the claimed ``job_id`` under a lease that has not expired.

        The fence checked right before a submit: a process that lost its lease does not POST.
        """
        row = await self._db.fetch_one(
            "SELECT 1 AS held FROM jobs j JOIN processes p ON p.id = j.claimed_by"
            " WHERE j.id = ? AND j.claimed_by = ? AND j.status = 'submitting' AND p.lease_expires_at > ?",
            (job_id, me.id, to_millis(self._clock())),
        )
        return row is not None

    # -- reads -------------------------------------------------------------------------------------

    async def get(self, job_id: int) -> Job | None:
        """One job, or None."""
        row = await self._db.fetch_one("SELECT * FROM jobs WHERE id = ?", (job_id,))
        return None if row is None else _job(row)

    async def open_jobs(self) -> list[Job]:
        """Every job the engine still has work for, oldest first."""
        rows = await self._db.fetch_all(f"SELECT * FROM jobs WHERE {OPEN_JOBS} ORDER BY created_at, id")
        return [_job(row) for row in rows]

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
        """The queue and the running counts, read in one go."""
        queued = await self._db.fetch_all(
            "SELECT id, guild_id, user_id, model, created_at FROM jobs WHERE status = 'queued' AND acked = 1"
            " ORDER BY created_at, id"
        )
        running = await self._db.fetch_all(f"SELECT guild_id, user_id FROM jobs WHERE status IN {_RUNNING}")
        turns = await self._db.fetch_all("SELECT guild_id, turn FROM guild_turns")
        by_guild: dict[int, int] = {}
        by_member: dict[tuple[int, int], int] = {}
        for row in running:
            by_guild[row["guild_id"]] = by_guild.get(row["guild_id"], 0) + 1
            key = (row["guild_id"], row["user_id"])
            by_member[key] = by_member.get(key, 0) + 1
        return QueueSnapshot(
            queued=[(r["id"], r["guild_id"], r["user_id"], r["model"], r["created_at"]) for r in queued],
            running_by_guild=by_guild,
            running_by_member=by_member,
            turns={r["guild_id"]: r["turn"] for r in turns},
        )

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
                (model, max(0.0, seconds), to_millis(self._clock())),
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


async def reserve_and_insert(
    tx: Transaction,
    ledger: Ledger,
    job: NewJob,
    *,
    limits: Sequence[Limit],
    max_pending_jobs: int,
    cooldown_seconds: int,
    now: datetime,
    cached: bool,
    acked: bool,
    holder: str | None,
    group: tuple[int, int] | None = None,
) -> None:
    """Reserve ``job``'s estimate (nothing for a cache hit) and write its row, inside the caller's transaction.

    Raises :class:`AdmissionRefused` when a limit does not hold (the caller's transaction then rolls
    back). ``group``: the job's group id and index (`/imagine count:N`, :mod:`bot.engine.groups`).
    """
    reserved = await ledger.try_reserve(
        tx,
        job_id=job.id,
        guild_id=job.guild_id,
        user_id=job.user_id,
        model=job.model,
        estimated_micros=0 if cached else job.estimated_micros,
        limits=limits,
        max_pending_jobs=max_pending_jobs,
        cooldown_seconds=cooldown_seconds,
        now=now,
    )
    if not reserved:
        raise AdmissionRefused
    await _insert_job(tx, job, now=now, cached=cached, acked=acked, holder=holder, group=group)


async def _insert_job(
    tx: Transaction,
    job: NewJob,
    *,
    now: datetime,
    cached: bool,
    acked: bool,
    holder: str | None,
    group: tuple[int, int] | None,
) -> None:
    now_ms = to_millis(now)
    group_id, group_index = group if group is not None else (None, None)
    await tx.execute(
        "INSERT INTO jobs (id, guild_id, channel_id, user_id, model, prompt, params, seed, width, height,"
        " cache_key, status, estimated_micros, created_at, updated_at, aspect_ratio, acked, application_id,"
        " interaction_token, upload_limit, private, claimed_by, group_id, group_index, style)"
        " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (
            job.id,
            job.guild_id,
            job.channel_id,
            job.user_id,
            job.model,
            job.prompt,
            json.dumps(job.params, sort_keys=True),
            job.seed,
            job.width,
            job.height,
            job.cache_key,
            (JobStatus.CACHED if cached else JobStatus.QUEUED).value,
            0 if cached else job.estimated_micros,
            now_ms,
            now_ms,
            job.aspect_ratio,
            1 if acked else 0,
            job.application_id,
            job.interaction_token,
            job.upload_limit,
            1 if job.private else 0,
            holder,
            group_id,
            group_index,
            job.style,
        ),
    )


def _check_fields(fields: dict[str, Any]) -> None:
    unknown = set(fields) - _UPDATABLE
    if unknown:
        raise ValueError(f"cannot update job fields {sorted(unknown)}")


def _maybe_time(value: int | None) -> datetime | None:
    return None if value is None else from_millis(value)


def _job(row: Any) -> Job:
    return Job(
        id=row["id"],
        guild_id=row["guild_id"],
        channel_id=row["channel_id"],
        user_id=row["user_id"],
        model=row["model"],
        prompt=row["prompt"],
        params=json.loads(row["params"]),
        seed=row["seed"],
        width=row["width"],
        height=row["height"],
        cache_key=row["cache_key"],
        status=JobStatus(row["status"]),
        estimated_micros=row["estimated_micros"],
        cost_micros=row["cost_micros"],
        bfl_task_id=row["bfl_task_id"],
        polling_url=row["polling_url"],
        error=row["error"],
        result_channel_id=row["result_channel_id"],
        result_message_id=row["result_message_id"],
        created_at=from_millis(row["created_at"]),
        updated_at=from_millis(row["updated_at"]),
        aspect_ratio=row["aspect_ratio"],
        acked=bool(row["acked"]),
        application_id=row["application_id"],
        interaction_token=row["interaction_token"],
        upload_limit=row["upload_limit"],
        submitted_at=_maybe_time(row["submitted_at"]),
        ready_at=_maybe_time(row["ready_at"]),
        sample_url=row["sample_url"],
        bfl_stage=row["bfl_stage"],
        expanded_prompt=row["expanded_prompt"],
        private=bool(row["private"]),
        erased_at=_maybe_time(row["erased_at"]),
        claimed_by=row["claimed_by"],
        style=row["style"],
        group_id=row["group_id"],
        group_index=row["group_index"],
    )
