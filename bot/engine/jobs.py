"""A job row: what admission writes (:class:`NewJob`), what is read back (:class:`Job`), and the mapping."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from bot.billing.ledger import Ledger, Limit, ReserveRequest
from bot.clock import from_millis, to_millis
from bot.engine.states import JobStatus
from bot.storage.database import Transaction


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
    result_file: str | None = None  # the posted file: 'original' (BFL's, provenance kept) or 'reencoded: <why>'
    submit_started_at: datetime | None = None  # the POST may have left from then on (None: never sent)
    next_attempt_at: datetime | None = None  # when its next step is due (a poll, a retry, a back-off)
    attempts: int = 0  # how many times it was claimed
    delivery_attempts: int = 0  # failed posts of its result so far
    told: bool = False  # the member's last message about it (when it ended without its image) was shown

    @property
    def sent(self) -> bool:
        """Whether its POST to BFL may have left (then a lost answer means the outcome is unknown)."""
        return self.submit_started_at is not None or self.bfl_task_id is not None

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


async def insert_job(
    tx: Transaction,
    job: NewJob,
    *,
    now: datetime,
    cached: bool,
    acked: bool,
    holder: str | None,
    group: tuple[int, int] | None,
) -> None:
    """Write a new job row (queued, or cached for a cache hit) inside the caller's transaction."""
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


def _maybe_time(value: int | None) -> datetime | None:
    return None if value is None else from_millis(value)


def job_from_row(row: Any) -> Job:
    """A :class:`Job` from a ``jobs`` row (either backend)."""
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
        result_file=row["result_file"],
        submit_started_at=_maybe_time(row["submit_started_at"]),
        next_attempt_at=_maybe_time(row["next_attempt_at"]),
        attempts=row["attempts"],
        delivery_attempts=row["delivery_attempts"],
        told=bool(row["told"]),
    )


class AdmissionRefused(Exception):
    """The reservation's limits did not hold; nothing was written."""


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
        ReserveRequest(
            job_id=job.id,
            guild_id=job.guild_id,
            user_id=job.user_id,
            model=job.model,
            estimated_micros=0 if cached else job.estimated_micros,
            limits=limits,
            max_pending_jobs=max_pending_jobs,
            cooldown_seconds=cooldown_seconds,
            now=now,
        ),
    )
    if not reserved:
        raise AdmissionRefused
    await insert_job(tx, job, now=now, cached=cached, acked=acked, holder=holder, group=group)
