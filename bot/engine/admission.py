"""Admission: the refusals before any money moves, then the job (or group) and its reservation in ONE transaction.

A refusal (restarting, paused, the server's safety rules, an open circuit breaker, a limit) raises a
member-facing :class:`bot.errors.FluxcordError` and writes nothing. An admitted job is ``queued`` (or
``cached``: a 0 µ$ cache hit that still counts as an image) and waits for the interaction's
acknowledgement; the reconciler releases it if none comes in time.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any, TypeVar

from bot.billing.ledger import BUSY_TEXT, Demand, ReserveTerms
from bot.billing.retry import reserve_or_explain
from bot.engine.breaker import BreakerState
from bot.engine.config import EngineConfig
from bot.engine.groups import NewGroup
from bot.engine.jobs import AdmissionRefused, Job, NewJob
from bot.engine.parts import EngineCallbacks, EngineHooks, EngineParts
from bot.errors import FluxcordError, GenerationPaused
from bot.models import GenerationRequest, ModelSpec
from bot.safety.privacy import server_cache_key

log = logging.getLogger(__name__)
T = TypeVar("T")


class ProviderTrouble(FluxcordError):
    """The model's circuit breaker is open: BFL kept failing for it, so nothing is queued into it."""

    def __init__(self, label: str, retry_in: float) -> None:
        wait = f"about {max(10, round(retry_in / 10) * 10):.0f} s" if retry_in > 0 else "a moment"
        super().__init__(
            f"{label} is having trouble right now (the image provider keeps failing). Nothing was charged;"
            f" please try again in {wait}, or choose another model."
        )


class Restarting(FluxcordError):
    """The bot is shutting down: new work is refused until it is back."""

    def __init__(self) -> None:
        super().__init__("The bot is restarting. Please try again in a minute.")


@dataclass(frozen=True)
class Requester:
    """Who asked, where, and the interaction that identifies the job."""

    job_id: int
    guild_id: int
    channel_id: int
    user_id: int
    role_ids: tuple[int, ...] = ()
    application_id: int | None = None
    interaction_token: str | None = None
    upload_limit: int = 10 * 1024 * 1024
    private: bool = False  # answer and result visible only to the member (ephemeral)
    age_restricted: bool = False  # the channel is age-restricted (the `relaxed` safety level applies only there)

    def origin(self) -> dict[str, Any]:
        """Who asked, where, and how to answer them: as a new job's (or group's) row records it."""
        return {
            "id": self.job_id,
            "guild_id": self.guild_id,
            "channel_id": self.channel_id,
            "user_id": self.user_id,
            "application_id": self.application_id,
            "interaction_token": self.interaction_token,
            "private": self.private,
        }


@dataclass(frozen=True)
class AdmissionParts:
    """What admission reads and writes (built by :func:`bot.engine.assembly.assemble`)."""

    services: EngineParts
    config: EngineConfig
    hooks: EngineHooks  # the observer, the spend alerts (``on_admitted``)
    engine: EngineCallbacks  # the breakers' shared state, checkpoints
    spawn: Callable[[Coroutine[Any, Any, object]], None] = field(kw_only=True)  # background work (spend alerts)


class Admission:
    """Admits single requests and groups, or refuses them with no side effect."""

    def __init__(self, parts: AdmissionParts) -> None:
        self.parts = parts
        self.accepting = False

    async def admit(self, request: GenerationRequest, who: Requester, *, acked: bool) -> Job:
        """Reserve and queue ``request`` (or take it from the cache), or raise a member-facing refusal."""
        try:
            request, priority = await self._gate(request, who)
            cache_key = server_cache_key(who.guild_id, request.cache_key())  # a hit only serves this server
            cached = await self.parts.services.provider.cache.contains(cache_key)
            # A cache hit needs no BFL, so an open breaker does not refuse it.
            trial = False if cached else await self._pass_breaker(request.model)
            new = new_job(request, who, cache_key, priority=priority)
            p = self.parts
            try:
                return await self._reserve(
                    who,
                    estimated_micros=0 if cached else new.estimated_micros,
                    write=lambda terms: p.services.store.admit(
                        new, terms, cached=cached, acked=acked, holder=p.services.identity.id
                    ),
                )
            except BaseException:
                if trial:
                    p.services.provider.breakers.released(
                        request.model.key
                    )  # the trial never reached BFL: it tells nothing
                raise
        except FluxcordError as exc:
            self._refused(exc)
            raise

    async def admit_group(
        self,
        requests: Sequence[GenerationRequest],
        who: Requester,
        *,
        draft: bool = False,
        final_model: str | None = None,
        final_options: dict[str, Any] | None = None,
    ) -> list[Job]:
        """Reserve and queue N images of one prompt all-or-nothing (``who.job_id`` is the group's id)."""
        try:
            screened, priority = await self._gate(requests[0], who)  # one prompt, one screening
            batch = [replace(r, safety_tolerance=screened.safety_tolerance) for r in requests]
            model = batch[0].model
            trial = await self._pass_breaker(model)
            group = NewGroup(
                **who.origin(), size=len(batch), draft=draft, final_model=final_model, final_options=final_options
            )
            jobs = [new_job(r, who, server_cache_key(who.guild_id, r.cache_key()), priority=priority) for r in batch]
            p = self.parts
            try:
                return await self._reserve(
                    who,
                    estimated_micros=sum(job.estimated_micros for job in jobs),
                    images=len(jobs),
                    write=lambda terms: p.services.groups.admit(group, jobs, terms, holder=p.services.identity.id),
                )
            except BaseException:
                if trial:
                    p.services.provider.breakers.released(model.key)
                raise
        except FluxcordError as exc:
            self._refused(exc)
            raise

    def _refused(self, exc: FluxcordError) -> None:
        if isinstance(exc, ProviderTrouble):
            reason = "provider"
        elif isinstance(exc, Restarting | GenerationPaused):
            reason = "restarting" if isinstance(exc, Restarting) else "paused"
        else:
            reason = "busy" if exc.user_message == BUSY_TEXT else "limit"
        self.parts.hooks.observer.refused(reason)

    async def _gate(self, request: GenerationRequest, who: Requester) -> tuple[GenerationRequest, bool]:
        """The refusals before any reservation (restarting, paused, the server's safety rules).

        Returns the screened request, and whether ``who`` has the server's priority role (from the
        interaction's role ids: the claim reads the flag on the job row, never Discord).
        """
        p = self.parts
        if not self.accepting:
            raise Restarting
        settings = await p.services.rules.server.guild_settings(who.guild_id)
        if settings.paused:
            raise GenerationPaused  # also stops free cache hits; the reservation re-checks it atomically
        priority = settings.priority_role_id is not None and settings.priority_role_id in who.role_ids
        safety = p.services.rules.safety
        if safety is None:
            return request, priority
        screened = await safety.screen(  # the server's rules; a refusal writes nothing (a mod-log note at most)
            request,
            guild_id=who.guild_id,
            channel_id=who.channel_id,
            user_id=who.user_id,
            age_restricted=who.age_restricted,
        )
        return screened, priority

    async def _pass_breaker(self, model: ModelSpec) -> bool:
        """Refuse at once (:class:`ProviderTrouble`) while BFL keeps failing for ``model``; True for a trial."""
        p = self.parts
        await p.engine.share_breakers()  # cached: usually no I/O
        if not p.services.provider.breakers.allow(model.key):
            p.hooks.observer.breaker_refused(model.key)
            raise ProviderTrouble(model.label, p.services.provider.breakers.retry_in(model.key))
        return p.services.provider.breakers.state(model.key) is not BreakerState.CLOSED

    async def _reserve(
        self,
        who: Requester,
        *,
        estimated_micros: int,
        write: Callable[[ReserveTerms], Awaitable[T]],
        images: int = 1,
    ) -> T:
        """Run ``write`` (one admission transaction under the member's terms), explaining a refusal.

        A refusal that no limit explains on a second look (a concurrent job ended in between) is tried
        again, up to three times in all.
        """
        p = self.parts
        terms = p.config.terms(await p.services.rules.limits.limits_for(who.guild_id, who.user_id, who.role_ids))
        demand = Demand(who.guild_id, who.user_id, estimated_micros, images)

        async def attempt(now: datetime) -> T | None:
            try:
                return await write(terms)
            except AdmissionRefused:
                return None

        async def explain(now: datetime) -> None:
            await p.services.ledger.explain_refusal(demand, terms, now)

        admitted = await reserve_or_explain(p.services.store.clock, attempt, explain, attempts=3, busy=BUSY_TEXT)
        p.engine.point("after_reserve", who.job_id)
        p.hooks.observer.job_changed(who.job_id, "admitted")
        if p.hooks.on_admitted is not None:
            p.spawn(p.hooks.on_admitted(who.guild_id))  # spend alerts: never on the request's path
        return admitted


def new_job(request: GenerationRequest, who: Requester, cache_key: str, *, priority: bool = False) -> NewJob:
    """What admission writes about ``request`` asked by ``who`` (``priority``: in the server's priority lane)."""
    return NewJob(
        **who.origin(),
        model=request.model.key,
        prompt=request.prompt,
        params=request.bfl_payload(),
        seed=request.seed,
        width=request.width,
        height=request.height,
        cache_key=cache_key,
        aspect_ratio=request.aspect_ratio,
        estimated_micros=request.estimated_cost_micros,
        upload_limit=who.upload_limit,
        style=request.style,
        request=request.record_json(),
        priority=priority,
        role_ids=" ".join(str(role) for role in who.role_ids if role != who.guild_id),  # for the report by role
    )
