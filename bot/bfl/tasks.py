"""A BFL task as the client sees it: its statuses, the submit answer, one poll's reading, the result.

BFL's statuses (``shared/reference/bfl-api.md`` §00): only ``Ready``, ``Error``, ``Request Moderated``,
``Content Moderated``, ``Task not found`` and the legacy ``Failed`` end a task; ``Pending``,
``Reasoning``, ``Generating`` and any status this code does not know mean "still running".
:func:`finish` turns a final answer into a :class:`TaskResult` or the matching typed error.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, Literal
from urllib.parse import unquote, urlsplit

from bot.bfl.errors import BflModerated, BflTaskFailed, BflTaskNotFound
from bot.bfl.wire import to_decimal
from bot.billing.money import credits_to_micros

log = logging.getLogger(__name__)

STATUS_PENDING = "Pending"
STATUS_REASONING = "Reasoning"  # FLUX 3 is thinking about the prompt
STATUS_GENERATING = "Generating"
STATUS_READY = "Ready"
STATUS_ERROR = "Error"
STATUS_FAILED = "Failed"  # legacy, in BFL's sample loops though not in the enum
STATUS_REQUEST_MODERATED = "Request Moderated"
STATUS_CONTENT_MODERATED = "Content Moderated"
STATUS_TASK_NOT_FOUND = "Task not found"
RUNNING_STATUSES = frozenset({STATUS_PENDING, STATUS_REASONING, STATUS_GENERATING})
#: The only statuses that end a task; anything else (known or not) means "still running".
TERMINAL_STATUSES = frozenset(
    {
        STATUS_READY,
        STATUS_ERROR,
        STATUS_FAILED,
        STATUS_REQUEST_MODERATED,
        STATUS_CONTENT_MODERATED,
        STATUS_TASK_NOT_FOUND,
    }
)


class _Cost:
    """``cost_micros`` of a task's ``cost_credits`` (a credit is $0.01)."""

    cost_credits: Decimal | None

    @property
    def cost_micros(self) -> int | None:
        """The cost in micro-dollars (rounded up), or ``None`` if BFL did not report it."""
        if self.cost_credits is None:
            return None
        return credits_to_micros(self.cost_credits)


@dataclass(frozen=True)
class SubmittedTask(_Cost):
    """A task BFL accepted (and billed): poll ``polling_url`` for its result."""

    id: str
    polling_url: str
    cost_credits: Decimal | None


@dataclass(frozen=True)
class TaskResult(_Cost):
    """A finished task: ``sample_url`` is the signed image URL; ``raw`` the ``Ready`` poll body.

    ``cost_credits`` is the settled cost the ``Ready`` answer reports at its top level (None when it
    does not); ``expanded_prompt`` is ``result.prompt`` (FLUX 3 returns the prompt as it expanded
    it). See :func:`result_url_expiry` for how long ``sample_url`` lives.
    """

    id: str
    sample_url: str
    raw: dict[str, Any]
    cost_credits: Decimal | None = None
    expanded_prompt: str | None = None


@dataclass(frozen=True)
class PollReading:
    """What one poll of a task said (:meth:`bot.bfl.client.BflClient.poll`).

    ``status`` is BFL's status, or None when the poll failed, was unreadable, or was an early
    ``Task not found`` (BFL had not registered the task yet): poll again. ``result`` is set exactly
    when the task is ``Ready``. ``failed`` marks transient trouble (HTTP 429, a 5xx without a final
    body, a redirect loop, the network): wait :meth:`~bot.bfl.client.BflClient.poll_backoff` (which
    honours ``retry_after``, the answer's ``Retry-After`` in seconds) before the next poll.
    """

    status: str | None
    progress: float | None
    result: TaskResult | None
    failed: bool
    retry_after: float | None


def finish(task: SubmittedTask, status: str, body: dict[str, Any]) -> TaskResult:
    """Turn a terminal poll answer into a result or raise the matching typed error."""
    if status == STATUS_READY:
        result = body.get("result")
        sample = result.get("sample") if isinstance(result, dict) else None
        if not isinstance(sample, str) or not sample:
            raise BflTaskFailed(f"task {task.id} is Ready but has no sample URL", status=status, task_id=task.id)
        cost = to_decimal(body.get("cost"))
        if body.get("cost") is not None and cost is None:
            log.warning("BFL task %s: ignoring a malformed cost on Ready", task.id)
        prompt = result.get("prompt") if isinstance(result, dict) else None
        return TaskResult(
            id=task.id,
            sample_url=sample,
            raw=body,
            cost_credits=cost,
            expanded_prompt=prompt if isinstance(prompt, str) else None,
        )
    if status in (STATUS_REQUEST_MODERATED, STATUS_CONTENT_MODERATED):
        stage: Literal["request", "content"] = "request" if status == STATUS_REQUEST_MODERATED else "content"
        details = body.get("details")
        reasons = details.get("Moderation Reasons") if isinstance(details, dict) else None
        reason_list = [str(r) for r in reasons] if isinstance(reasons, list) else []
        raise BflModerated(
            f"task {task.id}: {status}" + (f" ({', '.join(reason_list)})" if reason_list else ""),
            stage=stage,
            reasons=reason_list,
            task_id=task.id,
        )
    if status == STATUS_TASK_NOT_FOUND:
        raise BflTaskNotFound(f"task {task.id}: Task not found", task_id=task.id)
    # "Error" and BFL's undocumented "Failed" (unknown statuses never get here: they keep polling).
    raise BflTaskFailed(f"task {task.id} ended with status {status[:60]!r}", status=status, task_id=task.id)


def result_url_expiry(url: str) -> datetime | None:
    """When a signed result URL expires: its ``se=`` query parameter (ISO 8601), as an aware UTC time.

    BFL's delivery URLs are Azure-SAS-style (``…?se=2030-01-01T00%3A00%3A00Z&sp=r&sig=…``), and
    ``se=`` is their real expiry (about an hour after Ready for images). A time without a zone is
    taken as UTC (SAS times always are). ``None`` if the URL has no ``se=`` or it cannot be read.
    """
    try:
        query = urlsplit(url).query
    except (ValueError, TypeError):
        return None
    # Not parse_qs: it reads "+" as a space, and "+00:00" is a valid (if unescaped) offset.
    values = [unquote(part[3:]) for part in query.split("&") if part.startswith("se=")]
    if not values:
        return None
    try:
        when = datetime.fromisoformat(values[0].strip())
    except ValueError:
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return when.astimezone(UTC)
