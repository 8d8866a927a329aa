"""A job row: what admission writes (:class:`NewJob`), what is read back (:class:`Job`), and the mapping.

The dataclasses' fields are the ``jobs`` columns: :func:`insert_job` and :func:`job_from_row` read the
column list from them (converting by the field's type), so a new column is one new field.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, fields
from datetime import datetime
from typing import Any

from bot.billing.ledger import Ledger, ReserveRequest, ReserveTerms
from bot.clock import from_millis, to_millis
from bot.engine.states import JobStatus
from bot.models import GenerationRequest, legacy_record
from bot.storage.database import Transaction


@dataclass(frozen=True)
class NewJob:
    """Everything admission writes about a job: each field is the ``jobs`` column of the same name."""

    id: int
    guild_id: int
    channel_id: int
    user_id: int
    model: str
    prompt: str
    params: dict[str, Any]  # the BFL payload, exactly as it is sent
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
    request: str | None = None  # the request's record as JSON (GenerationRequest.to_record); None: admitted before 0021
    priority: bool = False  # the member had the server's priority role at admission: claimed first in its server
    role_ids: str | None = None  # the member's role ids at admission, space-separated (None: before 0031)

    def generation_request(self) -> GenerationRequest:
        """The request this job was admitted with: its stored record, what every later request derives from.

        A job admitted before records were kept (migration 0021) has its record derived once from its
        columns and payload (:func:`bot.models.legacy_record`).
        """
        record = json.loads(self.request) if self.request is not None else legacy_record(self)
        return GenerationRequest.from_record(record)


@dataclass(frozen=True, kw_only=True)
class Job(NewJob):
    """A job row: what admission wrote, and what the engine has recorded since."""

    status: JobStatus
    cost_micros: int | None
    bfl_task_id: str | None
    polling_url: str | None
    error: str | None
    result_channel_id: int | None
    result_message_id: int | None
    created_at: datetime
    updated_at: datetime
    acked: bool
    submitted_at: datetime | None
    ready_at: datetime | None
    sample_url: str | None
    bfl_stage: str | None
    expanded_prompt: str | None
    erased_at: datetime | None = None  # prompt, parameters and result links erased (bot.safety.privacy)
    claimed_by: str | None = None  # the process that holds the job (bot.engine.leases), if any
    group_id: int | None = None  # one image of an /imagine count:N or draft group (bot.engine.groups)
    group_index: int | None = None  # its place in the group, from 0
    result_file: str | None = None  # the posted file: 'original' (BFL's, provenance kept) or 'reencoded: <why>'
    submit_started_at: datetime | None = None  # the POST may have left from then on (None: never sent)
    next_attempt_at: datetime | None = None  # when its next step is due (a poll, a retry, a back-off; ended: telling)
    attempts: int = 0  # how many times it was claimed
    delivery_attempts: int = 0  # failed posts of its result so far
    told: bool = False  # the member's last message about it (when it ended without its image) was shown
    original_message_id: int | None = None  # its acknowledgement's message (@original), readable by the bot's token

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


def _maybe_time(value: int | None) -> datetime | None:
    return None if value is None else from_millis(value)


_TO_COLUMN: dict[str, Callable[[Any], Any]] = {
    "bool": int,
    "dict[str, Any]": lambda value: json.dumps(value, sort_keys=True),
}
_FROM_COLUMN: dict[str, Callable[[Any], Any]] = {
    "bool": bool,
    "dict[str, Any]": json.loads,
    "datetime": from_millis,
    "datetime | None": _maybe_time,
    "JobStatus": JobStatus,
}
"""How a column's value becomes a field's, by the field's type (the others are stored as they are)."""
_NEW_JOB_FIELDS = tuple(fields(NewJob))
_JOB_FIELDS = tuple(fields(Job))


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
    row = {f.name: _TO_COLUMN.get(str(f.type), _same)(getattr(job, f.name)) for f in _NEW_JOB_FIELDS}
    row |= {
        "status": (JobStatus.CACHED if cached else JobStatus.QUEUED).value,
        "estimated_micros": 0 if cached else job.estimated_micros,
        "created_at": now_ms,
        "updated_at": now_ms,
        "acked": 1 if acked else 0,
        "claimed_by": holder,
        "group_id": group_id,
        "group_index": group_index,
    }
    marks = ", ".join("?" for _ in row)
    await tx.execute(f"INSERT INTO jobs ({', '.join(row)}) VALUES ({marks})", tuple(row.values()))


def _same(value: Any) -> Any:
    return value


def job_from_row(row: Any) -> Job:
    """A :class:`Job` from a ``jobs`` row (either backend)."""
    return Job(**{f.name: _FROM_COLUMN.get(str(f.type), _same)(row[f.name]) for f in _JOB_FIELDS})


class AdmissionRefused(Exception):
    """The reservation's limits did not hold; nothing was written."""


async def reserve_and_insert(
    tx: Transaction,
    ledger: Ledger,
    job: NewJob,
    terms: ReserveTerms,
    *,
    now: datetime,
    cached: bool,
    acked: bool,
    holder: str | None,
    group: tuple[int, int] | None = None,
) -> None:
    """Reserve ``job``'s estimate (none for a cache hit) under ``terms`` and write its row, in the caller's transaction.

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
            terms=terms,
            now=now,
        ),
    )
    if not reserved:
        raise AdmissionRefused
    await insert_job(tx, job, now=now, cached=cached, acked=acked, holder=holder, group=group)
