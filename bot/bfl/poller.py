"""Polling a BFL task: one poll at a time (:meth:`Poller.poll`), or until it ends (:meth:`Poller.wait_for_result`).

:class:`bot.bfl.client.BflClient` is a :class:`Poller` that also submits, downloads and reads the balance.

Both go through the same reading of an answer (``shared/reference/bfl-api.md`` §00 and issue 21):

* HTTP 200 with a ``status``: ``Pending``, ``Reasoning``, ``Generating`` and unknown statuses mean
  "still running"; the terminal ones end the task (:func:`bot.bfl.tasks.finish`). HTTP 202 is the
  legacy "still running".
* ``Task not found`` (as a status or an HTTP 404) within ``not_found_window`` seconds of the submit
  means BFL has not registered the task yet (it is eventually consistent): poll again. After the
  window it is final.
* A 5xx is read: a body whose ``status`` is final (``{"status": "Error"}``) ends the task with it.
  Anything else is transient, and once :data:`POLL_FAILURE_LIMIT` polls in a row have failed (this
  one a 5xx) the task that BFL accepted counts as failed (:class:`BflTaskFailed`).
* 429 (the task exists: slow down, never resubmit) and network trouble are transient, without a
  bound: the caller's deadline ends them.
* Redirects are followed (:meth:`bot.bfl.access.ApiAccess.get`), the key only ever sent to BFL's
  API hosts or the configured origin; a redirect that cannot be followed (a loop) counts like a 5xx.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import aiohttp
from yarl import URL

from bot.bfl.access import REDIRECT_STATUSES, ApiAccess
from bot.bfl.errors import BflTaskFailed, BflTaskNotFound, BflTimeout
from bot.bfl.polling import PollPlan
from bot.bfl.tasks import (
    RUNNING_STATUSES,
    STATUS_PENDING,
    STATUS_TASK_NOT_FOUND,
    TERMINAL_STATUSES,
    PollReading,
    SubmittedTask,
    TaskResult,
    finish,
)
from bot.bfl.timing import Backoff
from bot.bfl.wire import describe, json_object, parse_retry_after, progress_value, read_error_text, refusal

log = logging.getLogger(__name__)

TASK_NOT_FOUND_WINDOW = 10.0  # BFL's own ComfyUI nodes retry a 404 for up to 10 s after the submit
POLL_FAILURE_LIMIT = 5  # polls failed in a row (the last a 5xx) after which an accepted task has failed

OnStatus = Callable[[str, float | None], Awaitable[None]]


@dataclass(frozen=True)
class _Answer:
    """One poll's answer as read: a body with a string ``status``, or nothing (poll again)."""

    body: dict[str, Any] | None
    failed: bool = False  # transient trouble: back off before the next poll
    retry_after: float | None = None


class Poller:
    """Polls tasks over ``session``; ``sleep`` is injectable so tests can record waits without waiting.

    ``default_plan`` paces :meth:`wait_for_result` when it is given no plan.
    """

    def __init__(
        self,
        session: aiohttp.ClientSession,
        access: ApiAccess,
        *,
        default_plan: PollPlan,
        backoff: Backoff,
        sleep: Callable[[float], Awaitable[object]],
        poll_timeout: aiohttp.ClientTimeout,
        not_found_window: float = TASK_NOT_FOUND_WINDOW,
    ) -> None:
        if not_found_window < 0:
            raise ValueError("not_found_window must be >= 0")
        self._session = session
        self._access = access
        self._default_plan = default_plan
        self._backoff = backoff
        self._sleep = sleep
        self._poll_timeout = poll_timeout
        self._not_found_window = not_found_window

    async def poll(self, task: SubmittedTask, *, since_submit: float, failures: int = 0) -> PollReading:
        """Poll ``task`` once, now: one request (redirects followed), never a loop or a sleep.

        ``since_submit`` is how many seconds ago BFL accepted the task; ``failures`` how many polls
        of it failed in a row before this one. A ``Task not found`` within ``not_found_window``
        seconds of the submit reads as "poll again"; a 5xx without a final body is a failed reading
        until ``POLL_FAILURE_LIMIT`` failed polls in a row, when it raises :class:`BflTaskFailed`.
        After a failed reading wait :meth:`poll_backoff`. Raises :class:`BflModerated`,
        :class:`BflTaskFailed`, :class:`BflTaskNotFound` for a task that ended without an image,
        :class:`BflAuthError` and the other refusals, and :class:`BflUnsafeUrl` (before sending
        anything) for a polling URL the key may not go to.
        """
        url = self._access.polling_url(task.polling_url)
        return _reading(task, await self._read(url, task, since_submit=since_submit, failures=failures))

    def poll_backoff(self, failures: int, retry_after: float | None = None) -> float:
        """Seconds to wait after ``failures`` (≥ 1) failed polls in a row, honouring ``Retry-After``.

        Doubling from the backoff's base (half of it jittered, at most 10 s), and at least the
        answer's ``Retry-After`` (itself capped at 60 s).
        """
        return self._backoff.after_failed_polls(failures, retry_after)

    async def wait_for_result(
        self,
        task: SubmittedTask,
        *,
        timeout: float,  # noqa: ASYNC109 - one deadline over many polls and sleeps, raising BflTimeout
        on_status: OnStatus | None = None,
        plan: PollPlan | None = None,
        elapsed_offset: float = 0.0,
    ) -> TaskResult:
        """Poll ``task.polling_url`` until the task finishes; return its result.

        Each poll is read as :meth:`poll` reads it: transient trouble means "poll again", after a
        backoff (at least ``Retry-After``) when the poll failed. ``on_status(status, progress)`` is
        awaited whenever either changes.

        The wait before every poll, the first included, is ``plan.delay(elapsed, polls)`` (``plan``
        defaults to ``default_plan``), where ``elapsed`` is ``elapsed_offset`` (how long ago BFL
        accepted the task, for a job resumed after a restart) plus the time since this call began.
        No wait runs past the deadline: the last poll happens right at it.

        Raises :class:`BflTimeout` once ``timeout`` seconds have passed, and :class:`BflModerated`,
        :class:`BflTaskNotFound` or :class:`BflTaskFailed` for the terminal failures.
        """
        url = self._access.polling_url(task.polling_url)  # before anything is sent
        loop = asyncio.get_running_loop()
        started = loop.time()
        deadline = started + timeout
        plan = plan or self._default_plan
        last_seen: tuple[str, float | None] | None = None
        polls = failures = 0  # failures: polls that failed in a row
        retry_after: float | None = None
        while True:
            now = loop.time()
            delay = plan.delay(elapsed_offset + (now - started), polls)
            if failures:  # only a failed poll carries a Retry-After
                delay = max(delay, self.poll_backoff(failures, retry_after))
            if delay > 0:
                # Never sleep past the deadline: one last poll right at it may still find the image.
                await self._sleep(max(0.0, min(delay, deadline - now)))

            polls += 1
            since_submit, remaining = elapsed_offset + (loop.time() - started), deadline - loop.time()
            answer = await self._read(url, task, since_submit=since_submit, failures=failures, remaining=remaining)
            failures = failures + 1 if answer.failed else 0
            retry_after = answer.retry_after
            if answer.body is not None:
                seen = (answer.body["status"], progress_value(answer.body.get("progress")))
                if seen != last_seen:
                    _log_status(task, seen, last_seen, polls)
                    last_seen = seen
                    await _report(on_status, *seen, task.id)
            reading = _reading(task, answer)  # raises once the task ended without an image
            if reading.result is not None:
                return reading.result
            if loop.time() >= deadline:
                raise BflTimeout(
                    f"task not finished after {timeout:g}s ({polls} polls, last status "
                    f"{last_seen[0] if last_seen else 'unknown'})",
                    task_id=task.id,
                )

    async def _read(
        self, url: URL, task: SubmittedTask, *, since_submit: float, failures: int, remaining: float | None = None
    ) -> _Answer:
        """One GET of the polling URL, read; raises only for what ends the task or needs an operator."""
        total = self._poll_timeout.total or 15.0
        if remaining is not None:  # keep each poll within a deadline, with a floor so the last can complete
            total = min(total, max(remaining, 1.0))
        timeout = aiohttp.ClientTimeout(total=total, sock_connect=self._poll_timeout.sock_connect)
        try:
            async with self._access.get(self._session, url, client_timeout=timeout) as resp:
                return await self._answer(resp, task, since_submit=since_submit, failures=failures)
        except (TimeoutError, aiohttp.ClientError) as exc:
            log.warning("BFL task %s: poll failed (%s); polling again", task.id, describe(exc))
            return _Answer(None, failed=True)

    async def _answer(
        self, resp: aiohttp.ClientResponse, task: SubmittedTask, *, since_submit: float, failures: int
    ) -> _Answer:
        status = resp.status
        if status == 200:
            try:
                body = await resp.json(content_type=None)
            except ValueError:
                body = None
            if isinstance(body, dict) and isinstance(body.get("status"), str):
                return self._with_status(task, body, since_submit)
            log.warning("BFL task %s: unreadable poll answer; polling again", task.id)
            return _Answer(None)
        if status == 202:  # legacy "not ready yet"
            return _Answer({"status": STATUS_PENDING})
        retry_after = parse_retry_after(resp.headers.get("Retry-After"))
        if status == 429:  # the task exists: slow down, poll the same URL, never resubmit
            log.warning("BFL task %s: poll got HTTP 429 (Retry-After %s); polling again", task.id, retry_after)
            return _Answer(None, failed=True, retry_after=retry_after)
        if status == 404:
            if since_submit < self._not_found_window:
                return self._not_registered_yet(task, "HTTP 404", since_submit)
            raise BflTaskNotFound(f"task {task.id} not found (HTTP 404)", task_id=task.id)
        text = self._access.redact(await read_error_text(resp))
        if status >= 500 or status in REDIRECT_STATUSES:  # a 5xx, or a redirect left unfollowed (a loop)
            body = json_object(text) if status >= 500 else None
            if body is not None and body.get("status") in TERMINAL_STATUSES:
                # BFL answers a failed task 500/503 + {"status": "Error"}: final, not transient.
                log.warning("BFL task %s: poll got HTTP %s with status %s", task.id, status, body["status"])
                return self._with_status(task, body, since_submit)
            if failures + 1 >= POLL_FAILURE_LIMIT:
                log.error(
                    "BFL task %s: %d polls failed in a row (last HTTP %s); giving up", task.id, failures + 1, status
                )
                raise BflTaskFailed(
                    f"task {task.id}: {failures + 1} polls failed in a row, the last with HTTP {status}",
                    status=f"HTTP {status}",
                    task_id=task.id,
                )
            log.warning("BFL task %s: poll got HTTP %s (Retry-After %s); polling again", task.id, status, retry_after)
            return _Answer(None, failed=True, retry_after=retry_after)
        raise refusal(status, text, f"poll of task {task.id}", task.id)

    def _with_status(self, task: SubmittedTask, body: dict[str, Any], since_submit: float) -> _Answer:
        if body.get("status") == STATUS_TASK_NOT_FOUND and since_submit < self._not_found_window:
            return self._not_registered_yet(task, STATUS_TASK_NOT_FOUND, since_submit)
        return _Answer(body)

    def _not_registered_yet(self, task: SubmittedTask, what: str, since_submit: float) -> _Answer:
        log.info(
            "BFL task %s: %s %.1f s after the submit (within %g s): not registered yet; polling again",
            task.id,
            what,
            since_submit,
            self._not_found_window,
        )
        return _Answer(None)


def _reading(task: SubmittedTask, answer: _Answer) -> PollReading:
    """What an answer says about the task; raises the typed error of one that ended without an image."""
    if answer.body is None:
        return PollReading(
            status=None, progress=None, result=None, failed=answer.failed, retry_after=answer.retry_after
        )
    status = answer.body["status"]
    result = finish(task, status, answer.body) if status in TERMINAL_STATUSES else None
    return PollReading(
        status=status,
        progress=progress_value(answer.body.get("progress")),
        result=result,
        failed=False,
        retry_after=None,
    )


def _log_status(
    task: SubmittedTask, seen: tuple[str, float | None], last_seen: tuple[str, float | None] | None, polls: int
) -> None:
    status, progress = seen
    level = logging.INFO if last_seen is None or status != last_seen[0] else logging.DEBUG
    if status not in TERMINAL_STATUSES and status not in RUNNING_STATUSES:
        level = logging.WARNING  # new to this code: assume it is still running
    log.log(level, "BFL task %s: %s (progress %s, poll %d)", task.id, status, progress, polls)


async def _report(on_status: OnStatus | None, status: str, progress: float | None, task_id: str) -> None:
    if on_status is None:
        return
    try:
        await on_status(status, progress)
    except Exception:
        # A failed progress message (e.g. a Discord edit) must not abandon a paid task.
        log.exception("on_status callback failed for BFL task %s", task_id)
