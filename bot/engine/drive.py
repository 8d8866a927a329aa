"""One drive loop for every job: run its state's step, apply the outcome, until the job ends or waits.

:meth:`Driver.drive` is the only way a job moves in this process: after a claim, after admission of a
cache hit, after a takeover, after a restart, when a timer is due, when the reconciler finds a job
nobody drives. There is no separate recovery path: a job is driven from what its row says.

* A job waits without a coroutine: a step that wants to run again later (the poll plan, a 429, a
  delivery back-off) leaves a timer (``loop.call_later``) and, when it matters, ``next_attempt_at``
  on the row, so the wait survives a restart.
* Each drive is an *attempt* with its own identity in :attr:`Driver.live`: a finished attempt only ever
  removes itself, so a job driven again (re-claimed, taken back) is never dropped by an old callback.
* A step that raises is retried: a database or network failure (:func:`is_transient`) with back-off
  for as long as it lasts; a bug a few times, then the job ends with ``internal_error`` (money by the
  one decision). Recording an outcome that failed is retried with the outcome kept in memory, so a side
  effect that happened (a POST, a post in Discord) is never repeated because its record failed.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from bot.engine.effects import Effects
from bot.engine.jobs import Job
from bot.engine.states import Event, JobStatus
from bot.engine.steps import Outcome, Steps
from bot.log import bind_log_fields
from bot.storage.database import is_transient

log = logging.getLogger(__name__)

MAX_TIMER_SECONDS = 600.0  # no step waits longer; a row's timer further out (a skewed writer) is capped
BUG_RETRIES = 2  # an unexpected error in a step is tried again this many times before the job ends
TRANSIENT_RETRIES = 8  # a database or network error: more tries (about 2.5 minutes), then the job ends


@dataclass(eq=False)
class Attempt:
    """One drive of one job in this process: a running task, or a timer waiting to start one."""

    job_id: int
    task: asyncio.Task[None] | None = None
    timer: asyncio.TimerHandle | None = None


class Driver:
    """Drives jobs through the step table; knows which jobs this process is driving."""

    def __init__(self, steps: Steps, effects: Effects) -> None:
        self._steps = steps
        self._effects = effects
        self.live: dict[int, Attempt] = {}
        self._failures: dict[int, int] = {}  # job → consecutive failures of its step
        self.accepting = True  # False once stopping: no new drives start
        self._quiet = asyncio.Condition()  # notified whenever a job stops being driven here

    def driving(self) -> set[int]:
        """The jobs this process is driving or waiting to drive."""
        return set(self.live)

    def drive(self, job: Job, *, delay: float | None = None) -> bool:
        """Drive ``job`` (after ``delay`` s, or when its row's timer is due); False if it already is."""
        if job.id in self.live or not self.accepting:
            return False
        attempt = Attempt(job.id)
        self.live[job.id] = attempt
        if delay is None and job.next_attempt_at is not None:
            delay = (job.next_attempt_at - self._effects.now()).total_seconds()
        self._schedule(attempt, job, min(delay or 0.0, MAX_TIMER_SECONDS))
        return True

    def _schedule(self, attempt: Attempt, job: Job, delay: float) -> None:
        if delay <= 0:
            self._start(attempt, job)
        else:
            attempt.timer = asyncio.get_running_loop().call_later(delay, self._start, attempt, job)

    def _start(self, attempt: Attempt, job: Job) -> None:
        attempt.timer = None
        if self.live.get(attempt.job_id) is not attempt or not self.accepting:
            self._forget(attempt)
            return
        context = contextvars.copy_context()  # the job's log records carry its ids (LOG_FORMAT=json)
        context.run(bind_log_fields, job_id=job.id, guild_id=job.guild_id, user_id=job.user_id)
        task = asyncio.create_task(self._run(attempt, job), name=f"fluxcord-job-{job.id}", context=context)
        attempt.task = task
        task.add_done_callback(lambda _t: self._finished(attempt))

    def _finished(self, attempt: Attempt) -> None:
        attempt.task = None
        if attempt.timer is None:
            self._forget(attempt)

    def _forget(self, attempt: Attempt) -> None:
        if self.live.get(attempt.job_id) is attempt:
            del self.live[attempt.job_id]
            asyncio.get_running_loop().create_task(self._notify_quiet())

    async def _notify_quiet(self) -> None:
        async with self._quiet:
            self._quiet.notify_all()

    async def _run(self, attempt: Attempt, job: Job) -> None:
        """Steps until the job ends, waits, or is no longer this process's."""
        current: Job | None = job
        while current is not None:
            step = self._steps.for_job(current)
            if step is None:
                return  # queued (the claim's), or a group's image waiting for its group
            outcome = await self._step(step, current)
            try:
                after = await self._effects.record(current, outcome)
            finally:
                self._steps.sending.discard(current.id)  # a submit's answer is recorded (or never will be here)
            if after is None or not after.status.is_open:
                self._failures.pop(job.id, None)
                self._steps.forget(job.id, ended=after is not None)
                return
            if outcome.wait is not None and outcome.wait > 0:  # again later (or a new state that starts later)
                self._schedule(attempt, after, outcome.wait)
                return
            current = after

    async def _step(self, step: Callable[[Job], Awaitable[Outcome]], job: Job) -> Outcome:
        """Run one step; an exception becomes a retry (with back-off) or, for a repeated bug, the job's end."""
        try:
            outcome = await step(job)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            return await self._failed(job, exc)
        if outcome.wait is None or outcome.event is not None:
            self._failures.pop(job.id, None)
        return outcome

    async def _failed(self, job: Job, exc: Exception) -> Outcome:
        failures = self._failures[job.id] = self._failures.get(job.id, 0) + 1
        wait = self._effects.parts.config.retry_backoff(failures)
        if is_transient(exc) and failures <= TRANSIENT_RETRIES:
            log.warning("Job %s: %s failed (%s); trying again in %.1f s", job.id, job.status.value, exc, wait)
            return Outcome(wait=wait, persist=False, reread=True)
        if failures <= BUG_RETRIES:
            log.exception("Job %s: %s failed unexpectedly; trying again in %.1f s", job.id, job.status.value, wait)
            return Outcome(wait=wait, persist=False, reread=True)
        log.exception("Job %s failed unexpectedly", job.id)
        self._failures.pop(job.id, None)
        if job.status is JobStatus.SUBMITTING:
            fresh = await self._effects.reread(job)
            if fresh is not None and (not fresh.sent or self._steps.never_posted(job.id)):
                return Outcome(Event.NOT_SENT, error=exc)  # its POST never left: released, nothing charged
        return Outcome(Event.INTERNAL_ERROR, error=exc)

    # -- stopping ----------------------------------------------------------------------------------

    def sending(self) -> set[int]:
        """Jobs whose POST to BFL is in flight right now."""
        return set(self._steps.sending)

    def marked_here(self, job_id: int) -> bool:
        """Whether this process marked ``job_id``'s POST as about to leave (so it knows the attempt is over)."""
        return job_id in self._steps.marked_here

    def never_posted(self, job_id: int) -> bool:
        """Whether this process marked ``job_id``'s POST as leaving and knows it never sent it."""
        return self._steps.never_posted(job_id)

    async def stop(self, *, grace: float) -> None:
        """Stop starting drives; let POSTs in flight get their answer (up to ``grace`` s); cancel the rest.

        Every job keeps its state in its row: whichever process drives it next carries on from there.
        """
        self.accepting = False
        loop = asyncio.get_running_loop()
        deadline = loop.time() + grace
        while self._steps.sending and loop.time() < deadline:
            posts = [a.task for a in self.live.values() if a.job_id in self._steps.sending and a.task is not None]
            if not posts:
                break
            await asyncio.wait(posts, timeout=max(0.0, deadline - loop.time()))
        tasks: list[asyncio.Task[Any]] = []
        for attempt in list(self.live.values()):
            if attempt.timer is not None:
                attempt.timer.cancel()
                attempt.timer = None
            if attempt.task is not None:
                attempt.task.cancel()
                tasks.append(attempt.task)
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)  # each ends on its own; nothing to report
        self.live.clear()

    async def wait_job(self, job_id: int, timeout: float = 60.0) -> None:  # noqa: ASYNC109
        """Wait until this process is no longer driving ``job_id`` (tests, benchmarks)."""
        async with asyncio.timeout(timeout), self._quiet:
            await self._quiet.wait_for(lambda: job_id not in self.live)

    async def wait_idle(self, timeout: float = 120.0) -> None:  # noqa: ASYNC109
        """Wait until this process drives no job (tests, benchmarks, draining)."""
        async with asyncio.timeout(timeout), self._quiet:
            await self._quiet.wait_for(lambda: not self.live)
