"""Who holds which job: process leases, takeovers, and the reconciler's reads (part of :class:`JobStore`).

Every time here is the store's clock, the database's (:class:`bot.engine.dbclock.DbClock`). Writes go
through the write path (:meth:`Database.transaction` / :meth:`Database.execute`); reads never write.
"""

from __future__ import annotations

from datetime import datetime

from bot.clock import Clock, from_millis, to_millis
from bot.engine.jobs import Job, job_from_row
from bot.engine.leases import ProcessIdentity, provably_gone
from bot.engine.states import JobStatus
from bot.storage.database import Database

_FORGET_PROCESSES_MS = 24 * 3600 * 1000  # lease rows of processes gone this long are deleted
# Open jobs, worded exactly as the WHERE clause of the `jobs_open` partial index (migration 0005): SQLite
# uses a partial index only for a query that repeats that term, so every query for open jobs says
# `WHERE {OPEN_JOBS}` and reads the open jobs alone, however long the history (a test proves each one).
OPEN_JOBS = "status IN ('queued', 'submitting', 'generating', 'downloading', 'delivering', 'cached')"


class Holders:
    """Leases and holders of jobs; mixed into :class:`bot.engine.store.JobStore` (its ``_db`` and clock)."""

    _db: Database
    _clock: Clock

    def now_ms(self) -> int:
        """Now, by the store's clock, in unix milliseconds."""
        return to_millis(self._clock())

    async def renew_lease(self, identity: ProcessIdentity, *, seconds: float) -> datetime:
        """Record that ``identity`` runs for another ``seconds``; forget processes gone for a day.

        Returns when the lease now expires (by the database's clock).
        """
        now = self.now_ms()
        expires = now + int(seconds * 1000)
        async with self._db.transaction() as tx:
            await tx.execute(
                "INSERT INTO processes (id, role, host, pid, started_at, lease_expires_at) VALUES (?, ?, ?, ?, ?, ?)"
                " ON CONFLICT (id) DO UPDATE SET lease_expires_at = excluded.lease_expires_at",
                (identity.id, identity.role, identity.machine, identity.pid, now, expires),
            )
            await tx.execute("DELETE FROM processes WHERE lease_expires_at < ?", (now - _FORGET_PROCESSES_MS,))
        return from_millis(expires)

    async def release_lease(self, identity: ProcessIdentity) -> None:
        """``identity`` stopped: its jobs may be taken over at once."""
        await self._db.execute("DELETE FROM processes WHERE id = ?", (identity.id,))

    async def has_lease(self, process_id: str) -> bool:
        """Whether ``process_id`` still has a lease row (expired or not): absent means it stopped, or never ran."""
        return await self._db.fetch_value("SELECT 1 FROM processes WHERE id = ?", (process_id,)) is not None

    async def live_processes(self) -> list[str]:
        """The ids of processes whose lease has not expired."""
        rows = await self._db.fetch_all(
            "SELECT id FROM processes WHERE lease_expires_at > ? ORDER BY id", (self.now_ms(),)
        )
        return [row["id"] for row in rows]

    async def orphaned(self, me: ProcessIdentity) -> list[Job]:
        """Open jobs that need a process and whose holder is gone (or that never had one), oldest first.

        A queued job that was acknowledged needs no holder (any process may claim it). A holder is
        gone when its lease expired or was released, or when :func:`provably_gone` says so.
        """
        return [job for job in await self.needing_a_driver(me, driving=set()) if job.claimed_by != me.id]

    async def needing_a_driver(self, me: ProcessIdentity, *, driving: set[int]) -> list[Job]:
        """Open jobs nobody alive is driving: ``me``'s own that are not in ``driving``, and those of gone holders.

        Oldest first. Acknowledged queued jobs are left to the claim (any process may take them).
        """
        live = set(await self.live_processes())
        rows = await self._db.fetch_all(
            f"SELECT * FROM jobs WHERE {OPEN_JOBS} AND NOT (status = 'queued' AND acked = 1) ORDER BY created_at, id"
        )
        jobs = [job_from_row(row) for row in rows]
        return [
            job
            for job in jobs
            if (job.claimed_by == me.id and job.id not in driving)
            or (
                job.claimed_by != me.id
                and (job.claimed_by is None or job.claimed_by not in live or provably_gone(job.claimed_by, me))
            )
        ]

    async def mark_told(self, job_id: int) -> None:
        """The member saw how ``job_id`` ended: its interaction token is no longer kept."""
        await self._db.execute("UPDATE jobs SET told = 1, interaction_token = NULL WHERE id = ?", (job_id,))

    async def claim_telling(
        self, job_id: int, me: ProcessIdentity, *, seconds: float, dead_holder: str | None = None
    ) -> bool:
        """Become the one process that tells the member how ``job_id`` ended, for ``seconds``; False if another is.

        The claim is the ended job's holder (``claimed_by``) and its ``next_attempt_at`` (an ended
        job's next step is telling): one conditional update, so of several processes exactly one
        tells. ``me`` renews its own claim; a lapsed claim (or none) is anyone's; ``dead_holder`` names a
        holder the caller knows is dead, whose claim is taken even if current.
        """
        now = self.now_ms()
        return (
            await self._db.execute(
                "UPDATE jobs SET claimed_by = ?, next_attempt_at = ? WHERE id = ? AND told = 0"
                f" AND NOT ({OPEN_JOBS}) AND (claimed_by = ? OR COALESCE(claimed_by, '') = ?"
                " OR next_attempt_at IS NULL OR next_attempt_at <= ?)",
                (me.id, now + int(seconds * 1000), job_id, me.id, dead_holder or "", now),
            )
            == 1
        )

    async def release_telling(self, job_id: int, me: ProcessIdentity) -> None:
        """``me`` could not tell the member (Discord refused): anyone may try again (the reconciler)."""
        await self._db.execute(
            "UPDATE jobs SET next_attempt_at = NULL WHERE id = ? AND claimed_by = ? AND told = 0", (job_id, me.id)
        )

    async def untold(self, *, created_after: int) -> list[Job]:
        """Ended jobs whose member was not told yet, while their token lives; tokens older are dropped."""
        await self._db.execute(
            "UPDATE jobs SET interaction_token = NULL"
            " WHERE told = 0 AND interaction_token IS NOT NULL AND created_at <= ?",
            (created_after,),
        )
        rows = await self._db.fetch_all(
            "SELECT * FROM jobs WHERE told = 0 AND interaction_token IS NOT NULL AND created_at > ?"
            " ORDER BY created_at",
            (created_after,),
        )
        return [job for job in map(job_from_row, rows) if not job.status.is_open]

    async def expiring_private(self, *, created_before: int) -> list[Job]:
        """Queued private jobs admitted before ``created_before`` (unix ms): too old to be shown in time."""
        rows = await self._db.fetch_all(
            "SELECT * FROM jobs WHERE status = 'queued' AND private = 1 AND created_at < ? ORDER BY created_at, id",
            (created_before,),
        )
        return [job_from_row(row) for row in rows]

    async def take(self, job: Job, me: ProcessIdentity) -> Job | None:
        """Make ``me`` the holder of ``job`` if it still has the holder it was seen with; the job, or None."""
        async with self._db.transaction() as tx:
            row = await tx.fetch_one(
                "UPDATE jobs SET claimed_by = ? WHERE id = ? AND COALESCE(claimed_by, '') = ? RETURNING *",
                (me.id, job.id, job.claimed_by or ""),
            )
        return job_from_row(row) if row is not None else None

    async def holds(self, job_id: int, me: ProcessIdentity, status: JobStatus | None = None) -> bool:
        """Whether ``me`` holds ``job_id`` (in ``status``, if given) under a lease that has not expired.

        The fence checked right before a side effect: a process that lost its lease does not act.
        """
        condition = " AND j.status = ?" if status is not None else ""
        row = await self._db.fetch_one(
            "SELECT 1 AS held FROM jobs j JOIN processes p ON p.id = j.claimed_by"
            f" WHERE j.id = ? AND j.claimed_by = ?{condition} AND p.lease_expires_at > ?",
            (job_id, me.id, *([status.value] if status is not None else []), self.now_ms()),
        )
        return row is not None
