"""What a step's outcome does once decided: the record, and everything that follows an applied event.

:meth:`Effects.record` writes an outcome (a wait's fields and timer, or an event through the one money
decision, retried while the database is out of reach, never repeating the step's side effect).
:meth:`Effects.after` is the one place for what follows an applied event, whoever applied it (a drive,
a cancel, the reconciler): metrics, the over-estimate alert on every settle above the estimate, waking
the dispatcher when a slot frees, the group's post, the moderation strike, and the member's last
message, whose "charged or not" is read from the ledger.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any

from bot.billing.money import format_usd
from bot.engine import outcomes
from bot.engine.config import EngineConfig
from bot.engine.jobs import Job
from bot.engine.painting import Painting
from bot.engine.parts import EngineCallbacks, EngineHooks, EngineParts
from bot.engine.progress import Presenter
from bot.engine.states import Event, JobStatus
from bot.engine.steps import Outcome
from bot.engine.store import Applied
from bot.storage.database import is_transient

log = logging.getLogger(__name__)

RECORD_BACKOFF_CAP = 10.0
TELL_BACKOFF_SECONDS = (1.0, 3.0, 10.0)  # a last message Discord refused is sent again (then the reconciler)
TELL_CLAIM_SECONDS = 60.0  # a claim to tell a member covers one try (discord.py's own retries included); renewed
_FAILURES = frozenset({JobStatus.FAILED, JobStatus.UNKNOWN, JobStatus.CANCELLED})


@dataclass(frozen=True)
class EffectParts:
    """What follows an event needs (built by :func:`bot.engine.assembly.assemble`)."""

    services: EngineParts
    config: EngineConfig
    hooks: EngineHooks  # the observer, the mod-log notice, the Discord side (its slot)
    painting: Painting  # queue places, a group's line, no progress edit after the end
    engine: EngineCallbacks  # wake-ups and checkpoints
    group_done: Callable[[int], Coroutine[Any, Any, None]] = field(kw_only=True)  # a group's image ended


_CHECKPOINTS = {
    Event.ACCEPTED: "after_task_stored",
    Event.DOWNLOADED: "after_cached",
    Event.DELIVERED: "after_delivered",
}


class Effects:
    """Records outcomes and carries out what follows each applied event."""

    def __init__(self, parts: EffectParts) -> None:
        self.parts = parts
        self._background: set[asyncio.Task[Any]] = set()
        self._telling: set[int] = set()  # jobs whose last message this process is sending now
        self._answering: dict[int, float] = {}  # jobs a click's answer tells (until a loop time): see answering()

    def now(self) -> datetime:
        """Now, by the database's clock."""
        return self.parts.services.store.clock()

    # -- recording ---------------------------------------------------------------------------------

    async def record(self, job: Job, outcome: Outcome) -> Job | None:
        """Write ``outcome``; the job as it now is, or None if it is no longer this process's to drive."""
        if outcome.stop:
            return None
        if outcome.event is None:
            return await self._record_wait(job, outcome)
        applied = await self._apply(job, outcome)
        if applied is None:
            return await self._after_lost_answer(job)
        await self.after(applied, outcome)
        return applied.job

    async def _record_wait(self, job: Job, outcome: Outcome) -> Job | None:
        if outcome.reread:  # the step failed midway and may have written: carry on from the row
            current = await self.reread(job)
            if current is None:
                return job  # unreadable right now: try again from what we had
            return current if current.claimed_by == self.parts.services.identity.id and current.status.is_open else None
        fields: dict[str, Any] = dict(outcome.fields)
        if outcome.wait is not None and outcome.persist:
            fields["next_attempt_at"] = self.now() + timedelta(seconds=outcome.wait)
        if fields:
            try:
                if not await self.parts.services.store.update(
                    job.id, job.status, holder=self.parts.services.identity.id, **fields
                ):
                    return None  # moved on (cancelled, taken over): not ours to drive any more
            except Exception as exc:
                if not is_transient(exc):
                    raise
                log.warning("Job %s: could not record its timer (%s); keeping it in memory", job.id, exc)
        return replace(job, **fields)

    async def _apply(self, job: Job, outcome: Outcome) -> Applied | None:
        """Apply the outcome's event, retrying while the database is out of reach (the outcome is kept)."""
        assert outcome.event is not None
        code = outcome.code or (outcomes.error_code(outcome.error) if outcome.error is not None else None)
        fields = dict(outcome.fields)
        if code is not None:
            fields["error"] = code
        delay = 0.2
        while True:
            try:
                return await self.parts.services.store.apply(
                    job.id,
                    outcome.event,
                    self.parts.config.refund_policy,
                    expected=job.status,
                    holder=self.parts.services.identity.id,
                    note=code or "",
                    **fields,
                )
            except Exception as exc:
                if not is_transient(exc):
                    raise
                log.warning("Job %s: could not record %s (%s); retrying", job.id, outcome.event.value, exc)
            await asyncio.sleep(delay)
            delay = min(RECORD_BACKOFF_CAP, delay * 2)

    async def _after_lost_answer(self, job: Job) -> Job | None:
        """The conditional write changed nothing: carry on only if our own earlier write had landed."""
        current = await self.reread(job)
        if current is None or current.claimed_by != self.parts.services.identity.id or not current.status.is_open:
            return None
        return current if current.status is not job.status else None

    async def mark_told(self, job_id: int) -> None:
        """Record that the member saw how the job ended (and report it)."""
        await self.parts.services.store.mark_told(job_id)
        self._answering.pop(job_id, None)
        self.parts.hooks.observer.job_changed(job_id, "told")

    async def durably(self, write: Callable[[], Awaitable[Any]], what: str) -> Any:
        """Run a database write that records a side effect already done, retrying while the database is away.

        The side effect (a post in Discord) is never repeated because its record failed.
        """
        delay = 0.2
        while True:
            try:
                return await write()
            except Exception as exc:
                if not is_transient(exc):
                    raise
                log.warning("%s: could not record it (%s); retrying", what, exc)
            await asyncio.sleep(delay)
            delay = min(RECORD_BACKOFF_CAP, delay * 2)

    async def reread(self, job: Job) -> Job | None:
        """The job's row as it is now (None if it cannot be read right now)."""
        try:
            return await self.parts.services.store.get(job.id)
        except Exception as exc:
            if not is_transient(exc):
                raise
            return None

    # -- after an event ----------------------------------------------------------------------------

    async def after(self, applied: Applied, outcome: Outcome | None = None, *, post_group: bool = True) -> None:
        """Everything that follows ``applied`` (metrics, alerts, slots, groups, the member's message).

        ``post_group=False``: a group's image ended by a click whose answer is the group's last word
        (its Cancel): the caller closes the group (:meth:`bot.engine.engine.JobEngine.cancel_group`).
        """
        p = self.parts
        job, before = applied.job, applied.before
        self.observe(applied)
        if applied.over_estimate:
            self._over_estimate(before, applied.settled_micros or 0)
        if before.status.holds_slot and not job.status.holds_slot:
            p.engine.wake()
        if JobStatus.QUEUED in (job.status, before.status):
            p.painting.queue_changed()
        name = _CHECKPOINTS.get(outcome.event) if outcome is not None and outcome.event is not None else None
        if name is not None:
            p.engine.point(name, job.id)
        if job.group_id is not None:
            # the group's one line (a made image's drive posts its group: steps.post_group)
            p.painting.member_moved(job)
        if job.status.is_open:
            return
        # a single job that ended without its image, by an outcome of this process: this process tells it
        tells = outcome is not None and job.group_id is None and job.status in _FAILURES
        tells = tells and before.result_message_id is None
        if tells and p.hooks.presenter.current is not None:
            await self.claim_telling(job.id)  # this process tells it: claimed before the wait for the painter
        await p.painting.quiet(job.id)
        if job.status is JobStatus.DELIVERED:
            return
        blocked = await self._moderated(applied)
        if job.group_id is not None:
            if post_group:
                self.spawn(p.group_done(job.group_id))
            return
        if tells:
            assert outcome is not None  # part of `tells`
            self.spawn(self.tell(applied, outcome, blocked))

    def observe(self, applied: Applied | None) -> None:
        """Tell the observer what an applied event settled and whether it ended the job."""
        if applied is None:
            return
        self.parts.hooks.observer.job_changed(applied.job.id, applied.job.status.value)
        if applied.settled_micros:
            self.parts.hooks.observer.spent(applied.job.model, applied.settled_micros)
        if not applied.job.status.is_open:
            cached = applied.before.status is JobStatus.CACHED and applied.job.status is JobStatus.DELIVERED
            self.parts.hooks.observer.job_ended(applied.job.model, "cached" if cached else applied.job.status.value)

    async def tell(self, applied: Applied, outcome: Outcome, blocked: str | None = None) -> None:
        """The member's last message about a job that ended without its image, truthful about the money."""
        job = applied.reachable_job
        charged = await self.parts.services.ledger.member_charged(job.id)
        text = outcomes.ending_text(outcome.error, code=job.error, charged=charged, text=outcome.text, style=job.style)
        await self.say(job, text + (f"\n{blocked}" if blocked else ""))

    async def retell(self, job: Job, *, dead_holder: str | None = None) -> None:
        """The last message of a job that ended untold (its process died, Discord refused): from its row.

        ``dead_holder``: its holder, known dead, whose claim to tell it is taken over.
        """
        charged = await self.parts.services.ledger.member_charged(job.id)
        code = job.error or ("cancelled" if job.status is JobStatus.CANCELLED else None)
        text = outcomes.ending_text(None, code=code, charged=charged, style=job.style)
        await self.say(job, text, dead_holder=dead_holder)

    async def answering(self, job_id: int, seconds: float) -> None:
        """A click's answer (its Cancel) will tell how ``job_id`` ended, within ``seconds``: claimed for it."""
        self._answering[job_id] = asyncio.get_running_loop().time() + seconds
        await self.claim_telling(job_id, seconds=seconds)

    def busy(self, job_id: int) -> bool:
        """Whether this process is telling ``job_id``'s member now (a last message, or a click's answer)."""
        until = self._answering.get(job_id)
        if until is not None and until <= asyncio.get_running_loop().time():
            del self._answering[job_id]  # the answer never came (its coroutine died): the reconciler tells it
            until = None
        return job_id in self._telling or until is not None

    async def claim_telling(
        self, job_id: int, *, seconds: float = TELL_CLAIM_SECONDS, dead_holder: str | None = None
    ) -> bool:
        """Become the one process that tells the member how ``job_id`` ended (renewed per try); False if not."""
        try:
            return await self.parts.services.store.claim_telling(
                job_id, self.parts.services.identity, seconds=seconds, dead_holder=dead_holder
            )
        except Exception as exc:  # the database out of reach: the reconciler tells it later
            log.warning("Job %s: could not claim its last message (%s)", job_id, exc)
            return False

    async def say(self, job: Job, text: str, *, dead_holder: str | None = None) -> None:
        """Show ``text`` as the job's last message (retried a few times); then its token is dropped.

        Only the process that holds the job's "told" claim (:meth:`claim_telling`) sends it, so two
        processes never tell one member twice. If Discord refuses it every time, the claim is given back
        and the reconciler (any process) tries again while the token lives.
        """
        presenter = self.parts.hooks.presenter.current
        if presenter is None or job.id in self._telling:
            return
        self._telling.add(job.id)
        self._answering.pop(job.id, None)  # a click's answer that failed: this message tells it instead
        try:
            if not await self.claim_telling(job.id, dead_holder=dead_holder):
                return  # told already, or another process is telling it
            await self.parts.painting.quiet(job.id)  # e.g. a retell: no progress edit may land after it
            if not await self._tell_with_retries(presenter, job, text):
                with contextlib.suppress(Exception):
                    await self.parts.services.store.release_telling(job.id, self.parts.services.identity)
        finally:
            self._telling.discard(job.id)

    async def _tell_with_retries(self, presenter: Presenter, job: Job, text: str) -> bool:
        """Send the notice, backing off between tries; False if Discord refused every try.

        True once it is shown (and recorded), or once the claim went to another process (it tells the member).
        """
        for wait in (*TELL_BACKOFF_SECONDS, None):
            if not await self.claim_telling(job.id):  # renewed before each try; lost: another process tells it
                return True
            try:
                await presenter.notify(job, text)
            except Exception as exc:
                log.warning("Job %s: could not tell the member how it ended (%s)", job.id, exc)
            else:
                await self.durably(lambda: self.mark_told(job.id), f"Job {job.id}'s last message")
                return True
            if wait is None:
                return False
            await asyncio.sleep(wait)
        return False

    async def _moderated(self, applied: Applied) -> str | None:
        """A moderated result: mod-log post and a strike (which may block the member); the block notice."""
        job = applied.before
        safety = self.parts.services.rules.safety
        if safety is None or applied.job.error not in ("request_moderated", "content_moderated"):
            return None
        try:
            return await safety.moderated(
                guild_id=job.guild_id,
                channel_id=job.channel_id,
                user_id=job.user_id,
                job_id=job.id,
                model=job.model,
                prompt=job.prompt,
                stage="request" if applied.job.error == "request_moderated" else "content",
            )
        except Exception:
            log.exception("Job %s: could not record the moderated result", job.id)
            return None

    def _over_estimate(self, job: Job, cost: int) -> None:
        log.warning(
            "Job %s cost %d µ$, above its estimate of %d µ$: the estimate for %s is not an upper bound",
            job.id,
            cost,
            job.estimated_micros,
            job.model,
        )
        if self.parts.hooks.notice is not None:
            text = (
                f"⚠️ A {job.model} image cost {format_usd(cost)}, more than its estimate of "
                f"{format_usd(job.estimated_micros)} (job {job.id})."
            )
            self.spawn(self.parts.hooks.notice(job.guild_id, text))

    # -- background work ---------------------------------------------------------------------------

    def spawn(self, work: Coroutine[Any, Any, object]) -> None:
        """Run ``work`` in the background (never on a job's path); a failure is logged."""
        task = asyncio.create_task(work)
        self._background.add(task)
        task.add_done_callback(self._background_done)

    def _background_done(self, task: asyncio.Task[Any]) -> None:
        self._background.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.warning("Background step failed: %s", task.exception())

    async def wait_background(self) -> None:
        """Wait until no background work is left (tests, benchmarks, draining)."""
        while self._background:
            await asyncio.gather(*list(self._background), return_exceptions=True)

    async def close(self) -> None:
        """Cancel background work (at stop)."""
        tasks = list(self._background)
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)
