"""Job groups: `/imagine count:<1-4>` and `draft:true` make N images for one prompt, posted together once.

A group is one row in ``job_groups`` (its id is the interaction id of the request) and N ordinary jobs
(``jobs.group_id``, ``jobs.group_index``), each reserved, claimed by the fair scheduler, run and
settled on its own through :func:`bot.engine.decision.decide`, like any job. What is special:

* **Admission is all-or-nothing.** :meth:`GroupStore.admit` writes the N reservations and the N job
  rows in ONE transaction (each reservation is the usual conditional insert, so the second one sees
  the first one's counters); if any limit does not hold for all N, nothing at all is written.
* **Delivery waits for the group.** A member that is paid for and cached stays in ``delivering``;
  once no member is still running, ONE process wins the conditional update on the group row
  (:meth:`GroupStore.claim_posting`) and posts every image in one message; the others do nothing.
  A poster that died is replaced when its lease is gone, as for jobs (:mod:`bot.engine.leases`).
* Member job ids come from ``job_numbers``: small integers, never a Discord snowflake, so they can't
  collide with another request's job id.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from bot.billing.ledger import Ledger, ReserveTerms
from bot.clock import Clock, from_millis, to_millis, utc_now
from bot.engine.holders import OPEN_JOBS
from bot.engine.jobs import Job, NewJob, job_from_row, reserve_and_insert
from bot.engine.leases import ProcessIdentity, provably_gone
from bot.engine.progress import Result
from bot.engine.states import JobStatus
from bot.storage.database import Database

log = logging.getLogger(__name__)

MAX_COUNT = 4
# A member still has work before the group can be posted (``delivering`` is done: paid and cached).
_RUNNING = "('queued', 'submitting', 'generating', 'downloading', 'cached')"
_UNPOSTED_SCAN = 50


@dataclass(frozen=True)
class NewGroup:
    """Everything admission writes about a group (its members are :class:`NewJob` s)."""

    id: int  # the interaction id
    guild_id: int
    channel_id: int
    user_id: int
    size: int
    draft: bool = False
    final_model: str | None = None  # draft: the model a Final renders on
    final_options: dict[str, Any] | None = None  # draft: the options given for the final (aspect ratio, steps…)
    application_id: int | None = None
    interaction_token: str | None = None
    private: bool = False


@dataclass(frozen=True)
class Group:
    """A ``job_groups`` row."""

    id: int
    guild_id: int
    channel_id: int
    user_id: int
    size: int
    draft: bool
    final_model: str | None
    final_options: dict[str, Any]
    application_id: int | None
    interaction_token: str | None
    private: bool
    poster: str | None
    posted_at: datetime | None
    result_channel_id: int | None
    result_message_id: int | None
    created_at: datetime
    next_attempt_at: datetime | None = None  # a refused post is tried again from then
    post_attempts: int = 0  # posts Discord refused so far
    original_message_id: int | None = None  # its acknowledgement's message (@original), readable by the bot's token


@dataclass(frozen=True)
class GroupResult:
    """What a finished group shows: its images (in order) and how many did not make it."""

    group: Group
    results: list[Result]
    failed: int  # failed or unknown outcome
    refunded: int  # of the failed, how many the member got back
    cancelled: int
    prompt: str
    model: str

    @property
    def charged_failures(self) -> int:
        """Failed images the member still pays for (e.g. a moderated prompt under REFUND_POLICY=errors)."""
        return self.failed - self.refunded


class GroupStore:
    """Reads and writes groups; admission reserves through the :class:`Ledger` in one transaction."""

    def __init__(self, db: Database, ledger: Ledger, clock: Clock = utc_now) -> None:
        self._db = db
        self._ledger = ledger
        self._clock = clock

    async def admit(
        self,
        group: NewGroup,
        jobs: Sequence[NewJob],
        terms: ReserveTerms,
        *,
        holder: str | None = None,
    ) -> list[Job]:
        """Reserve every member and write the group and its jobs in ONE transaction, or raise.

        Raises :class:`AdmissionRefused` with nothing written when any reservation does not hold.
        The ids of ``jobs`` are ignored: each member gets a fresh job number. Admitting the same group
        again returns its members. Members wait for :meth:`acknowledge` before they can run.
        """
        if await self.get(group.id) is not None:
            return await self.members(group.id)
        now = self._clock()
        async with self._db.transaction() as tx:
            for index, job in enumerate(jobs):
                [number] = await tx.fetch_all("INSERT INTO job_numbers DEFAULT VALUES RETURNING id")
                member = replace(job, id=int(number["id"]), interaction_token=None)
                await reserve_and_insert(  # a refusal rolls back every reservation written so far
                    tx,
                    self._ledger,
                    member,
                    terms if index == 0 else terms.without_cooldown(),  # one request, one cooldown
                    now=now,
                    cached=False,
                    acked=False,
                    holder=holder,
                    group=(group.id, index),
                )
            await tx.execute(
                "INSERT INTO job_groups (id, guild_id, channel_id, user_id, size, draft, final_model, final_options,"
                " application_id, interaction_token, private, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    group.id,
                    group.guild_id,
                    group.channel_id,
                    group.user_id,
                    len(jobs),
                    1 if group.draft else 0,
                    group.final_model,
                    json.dumps(group.final_options or {}, sort_keys=True),
                    group.application_id,
                    group.interaction_token,
                    1 if group.private else 0,
                    to_millis(now),
                ),
            )
        return await self.members(group.id)

    async def acknowledge(self, group_id: int, *, message_id: int | None = None) -> list[Job]:
        """Mark the group's queued members acknowledged (its answer: ``message_id``), once; those that changed."""
        async with self._db.transaction() as tx:
            if message_id is not None:
                await tx.execute("UPDATE job_groups SET original_message_id = ? WHERE id = ?", (message_id, group_id))
            rows = await tx.fetch_all(
                "UPDATE jobs SET acked = 1 WHERE group_id = ? AND acked = 0 AND status = 'queued' RETURNING *",
                (group_id,),
            )
        return sorted((job_from_row(row) for row in rows), key=lambda job: job.group_index or 0)

    async def get(self, group_id: int) -> Group | None:
        """One group, or None."""
        row = await self._db.fetch_one("SELECT * FROM job_groups WHERE id = ?", (group_id,))
        return None if row is None else _group(row)

    async def members(self, group_id: int) -> list[Job]:
        """The group's jobs in order."""
        rows = await self._db.fetch_all("SELECT * FROM jobs WHERE group_id = ? ORDER BY group_index", (group_id,))
        return [job_from_row(row) for row in rows]

    async def claim_posting(self, group_id: int, me: ProcessIdentity, *, reclaim: bool = False) -> Group | None:
        """Become the one process that posts the group, if it is finished and nobody (alive) posts it.

        One conditional update on the group row (its poster as it was seen), so of several processes
        finishing members at once exactly one gets the group; None for the others, for a group still
        running, already posted, or being posted by this very process. ``reclaim``: the caller knows
        ``me`` is not posting it now, so a claim of ``me``'s left behind (its write committed, then the
        connection broke) is taken again instead of waited for.
        """
        seen = await self.get(group_id)
        if seen is None or seen.posted_at is not None or (seen.poster == me.id and not reclaim):
            return None
        if seen.poster is not None and seen.poster != me.id:
            live = await self._db.fetch_value(
                "SELECT 1 FROM processes WHERE id = ? AND lease_expires_at > ?",
                (seen.poster, to_millis(self._clock())),
            )
            if live and not provably_gone(seen.poster, me):
                return None
        async with self._db.transaction() as tx:
            row = await tx.fetch_one(
                "UPDATE job_groups SET poster = ? WHERE id = ? AND posted_at IS NULL AND COALESCE(poster, '') = ?"
                " AND (next_attempt_at IS NULL OR next_attempt_at <= ?)"  # a refused post waits its back-off
                f" AND NOT EXISTS (SELECT 1 FROM jobs WHERE group_id = ? AND status IN {_RUNNING}) RETURNING *",
                (me.id, group_id, seen.poster or "", to_millis(self._clock()), group_id),
            )
        return _group(row) if row is not None else None

    async def mark_posted(
        self, group: Group, me: ProcessIdentity, *, channel_id: int | None, message_id: int | None
    ) -> bool:
        """Record that ``me`` posted the group (its token is no longer needed); False if it was not ours."""
        return (
            await self._db.execute(
                "UPDATE job_groups SET posted_at = ?, result_channel_id = ?, result_message_id = ?,"
                " interaction_token = NULL WHERE id = ? AND poster = ? AND posted_at IS NULL",
                (to_millis(self._clock()), channel_id, message_id, group.id, me.id),
            )
            == 1
        )

    async def release_posting(self, group: Group, me: ProcessIdentity) -> None:
        """Give up posting a group ``me`` claimed but did not post (an error midway), so it is tried again."""
        await self._db.execute(
            "UPDATE job_groups SET poster = NULL WHERE id = ? AND poster = ? AND posted_at IS NULL", (group.id, me.id)
        )

    async def retry_posting(self, group: Group, me: ProcessIdentity, *, retry_at: datetime, attempts: int) -> None:
        """Discord refused the post: give up the claim, and let anyone post it again from ``retry_at``."""
        await self._db.execute(
            "UPDATE job_groups SET poster = NULL, next_attempt_at = ?, post_attempts = ?"
            " WHERE id = ? AND poster = ? AND posted_at IS NULL",
            (to_millis(retry_at), attempts, group.id, me.id),
        )

    async def finished_unposted(self) -> list[int]:
        """Groups with no member still running, not posted yet, and due (oldest first): the reconciler's list."""
        # The running members are found among the open jobs alone (their index), however long the history;
        # COALESCE: a job outside any group must not turn NOT IN into "unknown" (group ids are never 0).
        rows = await self._db.fetch_all(
            "SELECT g.id FROM job_groups g WHERE g.posted_at IS NULL"
            " AND (g.next_attempt_at IS NULL OR g.next_attempt_at <= ?) AND g.id NOT IN"
            f" (SELECT COALESCE(group_id, 0) FROM jobs WHERE {OPEN_JOBS} AND status IN {_RUNNING})"
            f" ORDER BY g.created_at LIMIT {_UNPOSTED_SCAN}",
            (to_millis(self._clock()),),
        )
        return [int(row["id"]) for row in rows]

    async def refunded(self, job_ids: Sequence[int]) -> int:
        """How many of ``job_ids`` gave the member their money back (released, or settled with a refund)."""
        if not job_ids:
            return 0
        marks = ",".join("?" * len(job_ids))
        return int(
            await self._db.fetch_value(
                # `kind IN (…)` is the outcome index's own term: the jobs' outcome rows are found through it.
                f"SELECT COUNT(*) FROM ledger WHERE job_id IN ({marks}) AND kind IN ('settle', 'release')"
                " AND (kind = 'release' OR member_images < 0)",
                list(job_ids),
                default=0,
            )
        )


def _group(row: Any) -> Group:
    posted = row["posted_at"]
    return Group(
        id=row["id"],
        guild_id=row["guild_id"],
        channel_id=row["channel_id"],
        user_id=row["user_id"],
        size=row["size"],
        draft=bool(row["draft"]),
        final_model=row["final_model"],
        final_options=json.loads(row["final_options"] or "{}"),
        application_id=row["application_id"],
        interaction_token=row["interaction_token"],
        private=bool(row["private"]),
        poster=row["poster"],
        posted_at=None if posted is None else from_millis(posted),
        result_channel_id=row["result_channel_id"],
        result_message_id=row["result_message_id"],
        created_at=from_millis(row["created_at"]),
        next_attempt_at=None if row["next_attempt_at"] is None else from_millis(row["next_attempt_at"]),
        post_attempts=row["post_attempts"],
        original_message_id=row["original_message_id"],
    )


def counts(members: Sequence[Job]) -> tuple[int, int]:
    """(ready, still queued) among a group's members, for its progress line."""
    ready = sum(1 for job in members if job.status in (JobStatus.DELIVERING, JobStatus.DELIVERED))
    queued = sum(1 for job in members if job.status is JobStatus.QUEUED)
    return ready, queued
