"""What the job engine reports to an observer (metrics): outcomes, BFL latency, spend, refusals.

The engine calls these synchronously at the points where a fact is final (after its transaction);
an observer must be cheap and must not raise. :class:`NullObserver` is the default. Every method of
the protocol does nothing, so an observer that subclasses it implements only what it watches.
"""

from __future__ import annotations

from typing import Protocol


class JobObserver(Protocol):
    """Receives the engine's final facts; implemented by :class:`bot.ops.metrics.Metrics`."""

    def job_ended(self, model: str, outcome: str) -> None:
        """A job reached a terminal state (``delivered``, ``cached``, ``failed``, ``cancelled``, ``unknown``)."""

    def bfl_latency(self, model: str, seconds: float) -> None:
        """BFL took ``seconds`` from the accepted submit to a terminal status."""

    def spent(self, model: str, micros: int) -> None:
        """A settlement charged ``micros`` to the bot's BFL account."""

    def refused(self, reason: str) -> None:
        """An admission was refused (``restarting``, ``paused``, ``limit``, ``busy``, ``provider``); nothing written."""

    def breaker_refused(self, model: str) -> None:
        """``model``'s circuit breaker refused a request (also counted as a ``provider`` refusal)."""

    def job_changed(self, job_id: int, change: str) -> None:
        """A job's row changed: ``change`` is its new status, or ``admitted``, ``acknowledged``, ``told``.

        For a group's admission, acknowledgement and post (``posted``), ``job_id`` is the group's id.
        The test hook: the end-to-end harness waits on these instead of on what Discord shows; the
        metrics ignore it.
        """


class NullObserver(JobObserver):
    """Observes nothing: the protocol's methods, which do nothing, inherited as they are."""
