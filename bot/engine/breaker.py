"""A circuit breaker per model: stop queueing into a provider that keeps failing.

After ``failures`` provider errors (5xx on submit, an unknown submit outcome, timeouts, tasks that
ended ``Error``) within ``window`` seconds, the model's breaker *opens*: new requests for it are
refused at once, before anything is reserved. After ``cooldown`` seconds it *half-opens*: one
request goes through as a trial; its success closes the breaker, its failure opens it again for
another cool-down. Pure logic with an injected monotonic clock; the engine feeds it and asks it.
"""

from __future__ import annotations

import enum
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from bot.bfl.errors import BflError, BflServerError, BflSubmitOutcomeUnknown, BflTaskFailed, BflTimeout


class BreakerState(enum.StrEnum):
    """Where a model's breaker is."""

    CLOSED = "closed"  # requests flow
    OPEN = "open"  # requests are refused until the cool-down ends
    HALF_OPEN = "half_open"  # one trial request is in flight


def is_provider_error(exc: BflError) -> bool:
    """Errors that say BFL itself is in trouble: 5xx, an unknown submit outcome, a timeout, a failed task.

    A failed task is one that BFL accepted and then ended ``Error`` (or the legacy ``Failed``), as a
    status or in the body of a 500/503 poll, or whose polls kept failing with 5xx
    (:class:`BflTaskFailed`): an outage that shows up as failed tasks, not as refused submits. Not a
    refusal of the request (4xx), not moderation, not ``Task not found``, and not a 429 (our own
    slot use).
    """
    return isinstance(exc, BflServerError | BflSubmitOutcomeUnknown | BflTimeout | BflTaskFailed)


@dataclass(frozen=True)
class BreakerStatus:
    """A model whose breaker is not closed, for the moderators' views."""

    model: str
    state: BreakerState  # OPEN or HALF_OPEN
    retry_in: float  # seconds until a trial request is let through (0 when half-open)


@dataclass
class _Model:
    failures: deque[float] = field(default_factory=deque)
    state: BreakerState = BreakerState.CLOSED
    opened_at: float = 0.0
    trial_in_flight: bool = False


class CircuitBreakers:
    """One breaker per model."""

    def __init__(
        self,
        *,
        failures: int = 5,
        window: float = 60.0,
        cooldown: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if failures < 1 or window <= 0 or cooldown <= 0:
            raise ValueError("failures must be >= 1, window and cooldown > 0")
        self._threshold = failures
        self._window = window
        self._cooldown = cooldown
        self._clock = clock
        self._models: dict[str, _Model] = {}

    def state(self, model: str) -> BreakerState:
        """The model's state now (an open breaker past its cool-down reads as half-open)."""
        entry = self._models.get(model)
        if entry is None:
            return BreakerState.CLOSED
        if entry.state is BreakerState.OPEN and self._clock() - entry.opened_at >= self._cooldown:
            return BreakerState.HALF_OPEN
        return entry.state

    def allow(self, model: str) -> bool:
        """Whether a new request for ``model`` may go ahead (taking the half-open trial if it is free)."""
        entry = self._models.get(model)
        state = self.state(model)
        if state is BreakerState.CLOSED:
            return True
        if state is BreakerState.HALF_OPEN and entry is not None and not entry.trial_in_flight:
            entry.state = BreakerState.HALF_OPEN
            entry.trial_in_flight = True
            return True
        return False

    def retry_in(self, model: str) -> float:
        """Seconds until an open breaker lets a trial through (0 if it is not open)."""
        entry = self._models.get(model)
        if entry is None or entry.state is not BreakerState.OPEN:
            return 0.0
        return max(0.0, entry.opened_at + self._cooldown - self._clock())

    def failed(self, model: str) -> None:
        """A provider error for ``model``."""
        entry = self._models.setdefault(model, _Model())
        now = self._clock()
        if entry.state is BreakerState.OPEN:
            return  # a straggler from before the breaker opened: the cool-down stands
        if entry.state is BreakerState.HALF_OPEN:
            self._open(entry, now)  # the trial failed: another cool-down
            return
        entry.failures.append(now)
        while entry.failures and now - entry.failures[0] > self._window:
            entry.failures.popleft()
        if len(entry.failures) >= self._threshold:
            self._open(entry, now)

    def succeeded(self, model: str) -> None:
        """BFL answered a task of ``model`` properly: close its breaker."""
        entry = self._models.get(model)
        if entry is not None:
            entry.state = BreakerState.CLOSED
            entry.failures.clear()
            entry.trial_in_flight = False

    def released(self, model: str) -> None:
        """A half-open trial ended without telling anything about BFL (refused, cancelled): free it."""
        entry = self._models.get(model)
        if entry is not None:
            entry.trial_in_flight = False

    def open_models(self) -> dict[str, float]:
        """Models whose breaker is open or half-open, with the seconds until a trial is allowed."""
        return {status.model: status.retry_in for status in self.statuses()}

    async def sync(self) -> None:
        """Share what this process saw with the others (nothing to do for an in-memory breaker)."""

    def replay(self, events: Iterable[tuple[str, str, float]]) -> None:
        """Rebuild every model's state from ``(model, "failure" | "success", at)`` events in time order.

        What :meth:`failed` and :meth:`succeeded` would have made of them as they happened, with one
        addition: a failure of a model whose breaker was open past its cool-down is the trial's (some
        process let it through), so it opens the breaker again. A trial this process holds stays held.
        """
        trials = {model for model, entry in self._models.items() if entry.trial_in_flight}
        clock, moment = self._clock, [0.0]
        self._clock, self._models = (lambda: moment[0]), {}  # each event is applied at its own time
        try:
            for model, kind, at in events:
                moment[0] = at
                if kind == "success":
                    CircuitBreakers.succeeded(self, model)  # this logic, not a subclass's recording of it
                    continue
                entry = self._models.get(model)
                if entry is not None and self.state(model) is BreakerState.HALF_OPEN:
                    entry.state = BreakerState.HALF_OPEN  # the trial's failure: open again below
                CircuitBreakers.failed(self, model)
        finally:
            self._clock = clock
        for model in trials:
            if model in self._models and self.state(model) is BreakerState.HALF_OPEN:
                self._models[model].state = BreakerState.HALF_OPEN
                self._models[model].trial_in_flight = True

    def statuses(self) -> list[BreakerStatus]:
        """Every model whose breaker is open or half-open, by model name."""
        return [
            BreakerStatus(model, self.state(model), self.retry_in(model))
            for model in sorted(self._models)
            if self.state(model) is not BreakerState.CLOSED
        ]

    def _open(self, entry: _Model, now: float) -> None:
        entry.state = BreakerState.OPEN
        entry.opened_at = now
        entry.trial_in_flight = False
        entry.failures.clear()
