"""What the engine is built from, in groups: its services, its hooks, and what its parts call back on it.

The composition root (:func:`bot.services.build_services`) builds :class:`EngineParts` and
:class:`EngineHooks`; :func:`bot.engine.assembly.assemble` hands each part the groups it needs
(``services``, ``config``, ``hooks``, the engine's :class:`EngineCallbacks`), never copies of their
fields. The one thing that arrives after construction, the Discord side, arrives through one
:class:`PresenterSlot`, given to the engine when it is built.
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
from bot.engine.breaker import CircuitBreakers
from bot.engine.dbclock import DbClock
from bot.engine.groups import GroupStore
from bot.engine.jobs import Job
from bot.engine.leases import ProcessIdentity
from bot.engine.observer import JobObserver, NullObserver
from bot.engine.progress import Presenter
from bot.engine.store import JobStore
from bot.images.cache import ImageCache
from bot.safety.service import SafetyService
from bot.server_settings import ServerSettings

Notice = Callable[[int, str], Coroutine[Any, Any, object]]  # (guild id, text) → a mod-log post


@dataclass(frozen=True)
class Provider:
    """BFL and what stands in front of it: the image cache, the circuit breakers, the `user` sent with a task."""

    bfl: BflClient
    cache: ImageCache
    breakers: CircuitBreakers = field(default_factory=CircuitBreakers)
    end_users: EndUserIds = field(default_factory=EndUserIds)  # keyed by a per-install secret loaded at start


@dataclass(frozen=True)
class Rules:
    """Who may ask for what: the members' limits, the per-server switches (paused), the safety rules."""

    limits: LimitsService
    server: ServerSettings
    safety: SafetyService | None = None


@dataclass(frozen=True)
class EngineParts:
    """The services the engine works with (built in the composition root, :func:`bot.services.build_services`)."""

    store: JobStore
    groups: GroupStore
    ledger: Ledger
    clock: DbClock
    provider: Provider
    rules: Rules
    identity: ProcessIdentity = field(default_factory=ProcessIdentity)


class PresenterSlot:
    """The engine's Discord side: the one collaborator that exists only after the engine.

    The presenter needs the Discord client and the cogs' views, which are built after the services;
    the slot is given to the engine at construction and filled once the cog that builds the presenter
    loads (:func:`cogs.imagine.setup`). Until then the engine runs without a Discord side: nothing is
    painted or posted (a job waiting to be delivered waits).
    """

    def __init__(self, presenter: Presenter | None = None) -> None:
        self._presenter = presenter

    @property
    def current(self) -> Presenter | None:
        """The presenter, once there is one."""
        return self._presenter

    def fill(self, presenter: Presenter) -> None:
        """Give the engine its Discord side (a reloaded cog gives its new one)."""
        self._presenter = presenter


@dataclass(frozen=True)
class EngineHooks:
    """Who hears from the engine: the Discord side, metrics, the mod-log, spend alerts, crash tests."""

    presenter: PresenterSlot = field(default_factory=PresenterSlot)
    observer: JobObserver = field(default_factory=NullObserver)
    notice: Notice | None = None
    on_admitted: Callable[[int], Coroutine[Any, Any, object]] | None = None
    checkpoint: Callable[[str, int], None] | None = None


class EngineCallbacks(Protocol):
    """What the parts call back on the engine (its latency model, wake-ups, checkpoints, breakers)."""

    @property
    def latency(self) -> LatencyModel:
        """Each model's recent latencies."""

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

    def breakers_changed(self) -> None:
        """A breaker counted a success or a failure: share it in the background."""

    def claimed(self, job: Job) -> None:
        """The dispatcher claimed a job."""
