"""The `/imagine` pipeline: cache → reserve → submit → poll → download → settle.

The member-facing contract: a refused request has no side effect (no BFL call, no charge); an
accepted one is reserved before BFL is called and settled with the cost BFL reports; a task BFL never
accepted is released; failures after acceptance follow the refund policy (``REFUND_POLICY``). The
job row is written before each step that can be interrupted, so a restart can finish the money side
(see :meth:`ImageGenerator.recover`).
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import logging
import weakref
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from bot.bfl.client import BflClient, SubmittedTask
from bot.bfl.errors import (
    BflAuthError,
    BflCreditsExhausted,
    BflDownloadError,
    BflError,
    BflModerated,
    BflRateLimited,
    BflServerError,
    BflSubmitOutcomeUnknown,
    BflTimeout,
    BflValidationError,
)
from bot.cache import ImageCache
from bot.config import RefundPolicy, Settings
from bot.errors import GenerationFailed, GenerationPaused
from bot.images import InvalidImage
from bot.images import inspect as inspect_image
from bot.jobs import Job, JobStatus, JobStore
from bot.ledger import Ledger, Reservation
from bot.limits import LimitsService
from bot.models import OPTION_NAMES, GenerationRequest, build_request
from bot.spend_alerts import SpendAlerts

log = logging.getLogger(__name__)

DOWNLOAD_LIMIT_BYTES = 40 * 1024 * 1024


class Stage(enum.StrEnum):
    """What the member sees while waiting."""

    QUEUED = "queued"
    SUBMITTING = "submitting"
    GENERATING = "generating"
    DOWNLOADING = "downloading"


@dataclass(frozen=True)
class Requester:
    """Who asked, where, and the interaction id that identifies the job."""

    job_id: int
    guild_id: int
    channel_id: int
    user_id: int
    role_ids: tuple[int, ...] = ()


@dataclass(frozen=True)
class Progress:
    """A progress report for the member's message."""

    stage: Stage
    elapsed_seconds: float


ProgressCallback = Callable[[Progress], Awaitable[None]]


@dataclass(frozen=True)
class Ticket:
    """An admitted request: money reserved, or an identical image found in the cache."""

    request: GenerationRequest
    requester: Requester
    reservation: Reservation | None
    cached_image: bytes | None
    cached_cost_micros: int = 0


@dataclass(frozen=True)
class GeneratedImage:
    """A finished image, ready to post."""

    job_id: int
    request: GenerationRequest
    data: bytes
    cost_micros: int
    elapsed_seconds: float
    from_cache: bool


class ImageGenerator:
    """Runs image jobs against BFL with the money under control."""

    def __init__(
        self,
        *,
        bfl: BflClient,
        jobs: JobStore,
        ledger: Ledger,
        limits: LimitsService,
        cache: ImageCache,
        alerts: SpendAlerts,
        settings: Settings,
        progress_interval: float = 3.0,
    ) -> None:
        self._bfl = bfl
        self._jobs = jobs
        self._ledger = ledger
        self._limits = limits
        self._cache = cache
        self._alerts = alerts
        self._settings = settings
        self._progress_interval = progress_interval
        # Per-member running slots: extra reserved jobs wait here, in order, instead of failing.
        self._member_slots: weakref.WeakValueDictionary[tuple[int, int], asyncio.Semaphore] = (
            weakref.WeakValueDictionary()
        )

    async def admit(self, request: GenerationRequest, requester: Requester) -> Ticket:
        """Serve from the cache, or reserve the estimated cost against every limit (or raise)."""
        # The reservation re-checks the pause atomically; this read also stops free cache hits.
        if (await self._limits.guild_settings(requester.guild_id)).paused:
            raise GenerationPaused
        entry = await self._cache.get_entry(request.cache_key())
        if entry is not None:
            cost = int(entry.metadata.get("cost_micros", 0))
            return Ticket(request, requester, None, entry.data, cost)
        limits = await self._limits.limits_for(requester.guild_id, requester.user_id, requester.role_ids)
        reservation = await self._ledger.reserve(
            job_id=requester.job_id,
            guild_id=requester.guild_id,
            user_id=requester.user_id,
            model=request.model.key,
            estimated_micros=request.estimated_cost_micros,
            limits=limits,
            max_pending_jobs=self._settings.member_max_pending_jobs,
            cooldown_seconds=self._settings.member_cooldown_seconds,
        )
        return Ticket(request, requester, reservation, None)

    async def run(self, ticket: Ticket, on_progress: ProgressCallback | None = None) -> GeneratedImage:
        """Produce the image for an admitted ticket, reporting progress; raise GenerationFailed."""
        loop = asyncio.get_running_loop()
        started = loop.time()
        request, who = ticket.request, ticket.requester
        await self._jobs.create(
            job_id=who.job_id,
            guild_id=who.guild_id,
            channel_id=who.channel_id,
            user_id=who.user_id,
            model=request.model.key,
            prompt=request.prompt,
            params=request.bfl_payload(),
            seed=request.seed,
            width=request.width,
            height=request.height,
            cache_key=request.cache_key(),
            aspect_ratio=request.aspect_ratio,
            estimated_micros=0 if ticket.reservation is None else ticket.reservation.estimated_micros,
            status=JobStatus.CACHED if ticket.cached_image is not None else JobStatus.QUEUED,
        )
        if ticket.cached_image is not None:
            log.info("Job %s served from cache (%s)", who.job_id, request.model.key)
            return GeneratedImage(who.job_id, request, ticket.cached_image, 0, 0.0, from_cache=True)

        await self._alerts.check(who.guild_id)
        reporter = _ProgressReporter(on_progress, started, self._progress_interval)
        try:
            return await self._generate(ticket, reporter, started)
        except (GenerationFailed, asyncio.CancelledError):
            raise
        except Exception as exc:
            # A bug of ours must not hold the member's money until the next restart.
            log.exception("Job %s failed unexpectedly", who.job_id)
            await self._resolve_unexpected(who.job_id, request)
            raise GenerationFailed(
                "Something went wrong on our side while making your image. You have not been charged."
            ) from exc
        finally:
            await reporter.stop()

    async def _resolve_unexpected(self, job_id: int, request: GenerationRequest) -> None:
        if await self._ledger.outcome(job_id) is None:
            job = await self._jobs.get(job_id)
            if job is not None and job.bfl_task_id is not None:
                cost = job.cost_micros if job.cost_micros is not None else request.estimated_cost_micros
                await self._ledger.settle(job_id, cost, refund_member=True, note="internal error")
            else:
                await self._ledger.release(job_id, note="internal error before submit")
        await self._jobs.transition(job_id, JobStatus.FAILED, error="internal error")

    async def _generate(self, ticket: Ticket, reporter: _ProgressReporter, started: float) -> GeneratedImage:
        request, who = ticket.request, ticket.requester
        job_id = who.job_id
        await reporter.set(Stage.QUEUED)
        slot = self._member_slots.get((who.guild_id, who.user_id))
        if slot is None:
            slot = asyncio.Semaphore(self._settings.member_max_concurrent_jobs)
            self._member_slots[(who.guild_id, who.user_id)] = slot
        try:
            async with slot, self._bfl.task_slot(request.model.key):
                await self._jobs.transition(job_id, JobStatus.SUBMITTING)
                await reporter.set(Stage.SUBMITTING)
                task = await self._submit(job_id, request)
                await reporter.set(Stage.GENERATING)
                result = await self._bfl.wait_for_result(task, timeout=self._settings.job_timeout_seconds)
            await self._jobs.transition(job_id, JobStatus.DOWNLOADING)
            await reporter.set(Stage.DOWNLOADING)
            data = await self._download_image(result.sample_url, task.id)
        except BflError as exc:
            raise await self._fail(job_id, request, exc) from exc
        # (A CancelledError — shutdown mid-job — passes through: the job stays unfinished and the
        # next start resolves its money.)
        cost = task.cost_micros if task.cost_micros is not None else request.estimated_cost_micros
        await self._cache.put(
            request.cache_key(),
            data,
            metadata={"model": request.model.key, "cost_micros": cost, "job_id": job_id},
        )
        await self._ledger.settle(job_id, cost)
        await self._jobs.transition(job_id, JobStatus.DELIVERING, cost_micros=cost)
        elapsed = asyncio.get_running_loop().time() - started
        log.info("Job %s generated by %s in %.1f s for %d µ$", job_id, request.model.key, elapsed, cost)
        return GeneratedImage(job_id, request, data, cost, elapsed, from_cache=False)

    async def _download_image(self, url: str, task_id: str) -> bytes:
        """Fetch the result and make sure it is an image we can post (never cache garbage)."""
        data = await self._bfl.download(url, max_bytes=DOWNLOAD_LIMIT_BYTES)
        try:
            await inspect_image(data)
        except InvalidImage as exc:
            raise BflDownloadError(f"the result is not a usable image: {exc}", task_id=task_id) from exc
        return data

    async def _submit(self, job_id: int, request: GenerationRequest) -> SubmittedTask:
        try:
            task = await self._bfl.submit(request.model.key, request.bfl_payload())
        except BflSubmitOutcomeUnknown:
            raise
        except BflError:
            # BFL answered with an error: no task exists, so nothing was spent.
            await self._ledger.release(job_id, note="BFL refused the submit")
            raise
        await self._jobs.transition(
            job_id,
            JobStatus.GENERATING,
            bfl_task_id=task.id,
            polling_url=task.polling_url,
            cost_micros=task.cost_micros,
        )
        return task

    async def _fail(self, job_id: int, request: GenerationRequest, exc: BflError) -> GenerationFailed:
        """Resolve the money for a failed job and build the member's message."""
        outcome = await self._ledger.outcome(job_id)
        refunded = True
        if outcome is None:
            # BFL accepted the task (it has an id, or the submit's outcome is unknown): the money
            # may have left the account, so the server pays; the member's share follows the policy.
            job = await self._jobs.get(job_id)
            cost = job.cost_micros if job and job.cost_micros is not None else request.estimated_cost_micros
            refunded = self._refunds(exc)
            await self._ledger.settle(job_id, cost, refund_member=refunded, note=type(exc).__name__)
        status = JobStatus.UNKNOWN if isinstance(exc, BflSubmitOutcomeUnknown) else JobStatus.FAILED
        await self._jobs.transition(job_id, status, error=_error_code(exc))
        if isinstance(exc, BflCreditsExhausted | BflAuthError):
            log.error("BFL account problem for job %s: %s (check the API key and credits)", job_id, exc)
        else:
            log.warning("Job %s failed: %s", job_id, exc)
        return GenerationFailed(_failure_text(exc, refunded))

    def _refunds(self, exc: BflError) -> bool:
        policy = self._settings.refund_policy
        if policy is RefundPolicy.ALL:
            return True
        if policy is RefundPolicy.NONE:
            return False
        return not isinstance(exc, BflModerated)

    async def reroll_request(self, job_id: int, *, max_prompt_length: int) -> GenerationRequest | None:
        """The request of an earlier job with a fresh seed (None if the job is unknown)."""
        job = await self._jobs.get(job_id)
        if job is None:
            return None
        options = {name: job.params.get(name) for name in OPTION_NAMES}
        return build_request(
            model=job.model,
            prompt=job.prompt,
            aspect_ratio=job.aspect_ratio or job.params.get("aspect_ratio"),
            seed=None,
            max_prompt_length=max_prompt_length,
            **options,
        )

    async def mark_delivered(self, job_id: int, channel_id: int, message_id: int) -> None:
        """Record where the image was posted."""
        await self._jobs.transition(
            job_id, JobStatus.DELIVERED, result_channel_id=channel_id, result_message_id=message_id
        )

    async def mark_undeliverable(self, job_id: int, reason: str) -> None:
        """The image exists (and is cached) but could not be posted."""
        await self._jobs.transition(job_id, JobStatus.FAILED, error=f"delivery: {reason}"[:200])

    async def recover(self, deliver: Callable[[Job, bytes], Awaitable[None]] | None = None) -> int:
        """Resolve every job a previous run left unfinished; return how many were resolved.

        Settled if BFL finished the task (and the image is posted to the channel when possible),
        released if BFL never got it, charged conservatively if the submit's outcome is unknown.
        """
        resolved = 0
        jobs = {job.id: job for job in await self._jobs.unfinished()}
        for job_id in await self._ledger.open_job_ids():
            job = jobs.pop(job_id, None)
            if job is None or job.status is JobStatus.QUEUED:
                await self._ledger.release(job_id, note="restart: never submitted")
                if job is not None:
                    await self._jobs.transition(job_id, JobStatus.FAILED, error="interrupted before submit")
            elif job.bfl_task_id is None or job.polling_url is None:
                refund = self._settings.refund_policy is not RefundPolicy.NONE
                await self._ledger.settle(
                    job_id, job.estimated_micros, refund_member=refund, note="restart: submit outcome unknown"
                )
                await self._jobs.transition(job_id, JobStatus.UNKNOWN, error="submit outcome unknown")
            else:
                await self._resume(job, deliver)
            resolved += 1
        for job in jobs.values():  # settled before the crash, but never posted
            if job.status is JobStatus.DELIVERING and deliver is not None:
                entry = await self._cache.get_entry(job.cache_key)
                if entry is not None:
                    await self._deliver_recovered(job, entry.data, deliver)
                    resolved += 1
                    continue
            await self._jobs.transition(job.id, JobStatus.FAILED, error="interrupted")
            resolved += 1
        if resolved:
            log.info("Recovered %d unfinished jobs from the previous run", resolved)
        return resolved

    async def _resume(self, job: Job, deliver: Callable[[Job, bytes], Awaitable[None]] | None) -> None:
        task = SubmittedTask(job.bfl_task_id or "", job.polling_url or "", None)
        cost = job.cost_micros if job.cost_micros is not None else job.estimated_micros
        try:
            async with self._bfl.task_slot(job.model):
                result = await self._bfl.wait_for_result(task, timeout=min(60, self._settings.job_timeout_seconds))
            data = await self._download_image(result.sample_url, task.id)
        except BflError as exc:
            refunded = self._refunds(exc)
            await self._ledger.settle(job.id, cost, refund_member=refunded, note=f"restart: {type(exc).__name__}")
            await self._jobs.transition(job.id, JobStatus.FAILED, error=_error_code(exc))
            return
        await self._cache.put(job.cache_key, data, metadata={"model": job.model, "cost_micros": cost})
        await self._ledger.settle(job.id, cost, note="restart: finished by BFL")
        await self._jobs.transition(job.id, JobStatus.DELIVERING, cost_micros=cost)
        if deliver is not None:
            await self._deliver_recovered(job, data, deliver)

    async def _deliver_recovered(self, job: Job, data: bytes, deliver: Callable[[Job, bytes], Awaitable[None]]) -> None:
        try:
            await deliver(job, data)
        except Exception as exc:
            log.warning("Could not post recovered job %s: %s", job.id, exc)
            await self.mark_undeliverable(job.id, type(exc).__name__)


class _ProgressReporter:
    """Calls the progress callback on each stage change and every ``interval`` seconds in between."""

    def __init__(self, callback: ProgressCallback | None, started: float, interval: float) -> None:
        self._callback = callback
        self._started = started
        self._interval = interval
        self._stage = Stage.QUEUED
        self._ticker: asyncio.Task[None] | None = None

    async def set(self, stage: Stage) -> None:
        self._stage = stage
        await self._report()
        if self._ticker is None and self._callback is not None:
            self._ticker = asyncio.create_task(self._tick())

    async def _tick(self) -> None:
        while True:
            await asyncio.sleep(self._interval)
            await self._report()

    async def _report(self) -> None:
        if self._callback is None:
            return
        elapsed = asyncio.get_running_loop().time() - self._started
        try:
            await self._callback(Progress(self._stage, elapsed))
        except Exception:
            # A failed progress edit (rate limit, expired token) must never fail the job itself.
            log.debug("Progress update failed", exc_info=True)

    async def stop(self) -> None:
        if self._ticker is not None:
            self._ticker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._ticker


def _error_code(exc: BflError) -> str:
    if isinstance(exc, BflModerated):
        return f"{exc.stage}_moderated"
    return type(exc).__name__.removeprefix("Bfl").lower()


def _failure_text(exc: BflError, refunded: bool) -> str:
    charge = " You have not been charged." if refunded else " This still counts against your quota."
    if isinstance(exc, BflModerated):
        if exc.stage == "request":
            return "Your prompt was blocked by the image provider's content filter. Try rephrasing it." + charge
        return "The generated image was blocked by the image provider's content filter." + charge
    if isinstance(exc, BflCreditsExhausted | BflAuthError):
        return "Image generation is temporarily unavailable. Please try again later." + charge
    if isinstance(exc, BflValidationError):
        details = "; ".join(exc.messages)[:300]
        return f"The image provider rejected these options: {details}." + charge
    if isinstance(exc, BflRateLimited | BflServerError):
        return "The image provider is busy right now. Please try again in a minute." + charge
    if isinstance(exc, BflTimeout):
        return "The image took too long to generate and was abandoned." + charge
    if isinstance(exc, BflSubmitOutcomeUnknown):
        return "The image provider did not answer in time. Please try again." + charge
    return "The image provider could not generate this image. Please try again." + charge
