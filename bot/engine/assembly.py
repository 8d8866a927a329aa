"""Building the engine's parts and wiring them to each other and to the engine's callbacks (once, at start).

:class:`bot.engine.engine.JobEngine` is the facade the cogs use; this module builds what it is made of:
the painting, the effects, the step table, the driver, the group delivery, the reconciler, the
dispatcher and admission, each given what it needs through its constructor.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any, Protocol

from bot.bfl.client import BflClient
from bot.bfl.end_user import EndUserIds
from bot.bfl.errors import BflError
from bot.bfl.polling import LatencyModel
from bot.billing.ledger import Ledger
from bot.billing.limits import LimitsService
from bot.engine.admission import Admission, AdmissionParts
from bot.engine.breaker import CircuitBreakers
from bot.engine.config import EngineConfig
from bot.engine.dbclock import DbClock
from bot.engine.dispatch import Dispatcher
from bot.engine.drive import Driver
from bot.engine.effects import EffectParts, Effects, Notice
from bot.engine.group_delivery import GroupDelivery
from bot.engine.groups import GroupStore
from bot.engine.jobs import Job
from bot.engine.leases import ProcessIdentity
from bot.engine.observer import JobObserver, NullObserver
from bot.engine.painting import Painting
from bot.engine.progress import Presenter
from bot.engine.reconcile import Reconciler
from bot.engine.steps import StepParts, Steps
from bot.engine.store import JobStore
from bot.images.cache import ImageCache
from bot.safety.service import SafetyService
from bot.server_settings import ServerSettings


@dataclass
class EngineParts:
    """The services the engine works with (built in the composition root, :func:`bot.app.build_services`)."""

    store: JobStore
    groups: GroupStore
    ledger: Ledger
    limits: LimitsService
    bfl: BflClient
    cache: ImageCache
    clock: DbClock
    breakers: CircuitBreakers = field(default_factory=CircuitBreakers)
    identity: ProcessIdentity = field(default_factory=ProcessIdentity)
    safety: SafetyService | None = None
    end_users: EndUserIds = field(default_factory=EndUserIds)  # the `user` sent to BFL (loaded at start)
    server: ServerSettings = field(kw_only=True)  # the per-server switches (paused)


@dataclass
class EngineHooks:
    """Who hears from the engine: the Discord side, metrics, the mod-log, spend alerts, crash tests."""

    presenter: Presenter | None = None
    observer: JobObserver = field(default_factory=NullObserver)
    notice: Notice | None = None
    on_admitted: Callable[[int], Coroutine[Any, Any, object]] | None = None
    checkpoint: Callable[[str, int], None] | None = None


class EngineCallbacks(Protocol):
    """What the parts call back on the engine (its latency model, wake-ups, checkpoints, breakers)."""

    latency: LatencyModel

    def wake(self, *, queue_changed: bool = False) -> None:
        """A slot may be free or a job may be waiting."""

    def point(self, name: str, job_id: int) -> None:
        """A crash-test checkpoint."""

    def record_latency(self, model: str, seconds: float) -> None:
        """Remember how long a model took."""

    def note_bfl_error(self, exc: BflError) -> None:
        """Keep the last BFL error."""

    def share_breakers(self) -> Coroutine[Any, Any, None]:
        """Share the breakers' state with other processes."""

    def claimed(self, job: Job) -> None:
        """The dispatcher claimed a job."""


@dataclass(frozen=True)
class Machinery:
    """The engine's parts, wired."""

    painting: Painting
    effects: Effects
    steps: Steps
    driver: Driver
    delivery: GroupDelivery
    reconciler: Reconciler
    dispatcher: Dispatcher
    admission: Admission


def assemble(parts: EngineParts, config: EngineConfig, hooks: EngineHooks, engine: EngineCallbacks) -> Machinery:
    """Build every part of the engine from its services, its settings and its hooks."""
    painting = Painting(
        parts.store, parts.groups, config, lambda: engine.latency, parts.clock, holder=parts.identity.id
    )
    effects = _effects(parts, config, hooks, engine, painting)
    steps = _steps(parts, config, engine, painting, effects)
    driver = Driver(steps, effects)
    delivery = GroupDelivery(
        store=parts.store,
        groups=parts.groups,
        cache=parts.cache,
        bfl=parts.bfl,
        identity=parts.identity,
        config=config,
        effects=effects,
    )
    effects.parts.group_done = steps.parts.group_done = delivery.member_done
    painting.group_posting = delivery.posting
    reconciler = Reconciler(
        store=parts.store,
        driver=driver,
        effects=effects,
        delivery=delivery,
        clock=parts.clock,
        config=config,
        identity=parts.identity,
    )
    dispatcher = Dispatcher(
        parts.store, driver, config, parts.identity, claimed=engine.claimed, shared=lambda: reconciler.shared
    )
    admission = _admission(parts, config, hooks, engine, effects)
    return Machinery(painting, effects, steps, driver, delivery, reconciler, dispatcher, admission)


def _effects(
    parts: EngineParts, config: EngineConfig, hooks: EngineHooks, engine: EngineCallbacks, painting: Painting
) -> Effects:
    return Effects(
        EffectParts(
            parts.store,
            parts.ledger,
            parts.identity,
            config,
            observer=hooks.observer,
            safety=parts.safety,
            notice=hooks.notice,
            slot_freed=engine.wake,
            queue_changed=painting.queue_changed,
            quiet_progress=painting.quiet,
            member_moved=painting.member_moved,
            checkpoint=engine.point,
        )
    )


def _steps(
    parts: EngineParts, config: EngineConfig, engine: EngineCallbacks, painting: Painting, effects: Effects
) -> Steps:
    return Steps(
        StepParts(
            parts.store,
            parts.bfl,
            parts.cache,
            parts.breakers,
            parts.identity,
            config,
            end_users=parts.end_users,
            show=painting.show,
            checkpoint=engine.point,
            record_latency=engine.record_latency,
            note_error=engine.note_bfl_error,
            share_breakers=lambda: effects.spawn(engine.share_breakers()),
            quiet_progress=painting.quiet,
        )
    )


def _admission(
    parts: EngineParts, config: EngineConfig, hooks: EngineHooks, engine: EngineCallbacks, effects: Effects
) -> Admission:
    return Admission(
        AdmissionParts(
            parts.store,
            parts.groups,
            parts.ledger,
            parts.limits,
            parts.cache,
            parts.breakers,
            parts.identity,
            config,
            safety=parts.safety,
            server=parts.server,
            observer=hooks.observer,
            on_admitted=hooks.on_admitted,
            share_breakers=engine.share_breakers,
            spawn=effects.spawn,
            checkpoint=engine.point,
        )
    )
