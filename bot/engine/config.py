"""What the engine needs to know from the settings, and nothing else (built once, at start)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from bot.billing.caps import Limit, ReserveTerms
from bot.billing.refunds import RefundPolicy
from bot.config import Settings

ACK_DEADLINE_SECONDS = 10.0  # an admitted job not acknowledged by then is released (Discord allows 3 s)
DELIVERY_BACKOFF_SECONDS = (2.0, 5.0, 15.0, 30.0, 60.0, 120.0, 300.0)  # between failed posts of a result
RETRY_BACKOFF_SECONDS = (0.5, 1.0, 2.0, 5.0, 10.0, 30.0)  # between tries of a step that raised
MAX_CLAIMS_BEFORE_GIVING_UP = 3  # a job that keeps failing before its POST ever leaves is released
SUBMIT_WINDOW_SECONDS = 90.0  # a POST not answered (nor abandoned) this long after it left is given up


@dataclass(frozen=True)
class EngineConfig:
    """The engine's settings: limits, timeouts and the refund policy."""

    max_active_tasks: int = 24
    member_max_concurrent_jobs: int = 2
    member_max_pending_jobs: int = 10
    member_cooldown_seconds: int = 0
    job_timeout_seconds: float = 300.0
    lease_seconds: float = 30.0
    refund_policy: RefundPolicy = RefundPolicy.ERRORS
    undeliverable_after_seconds: float = 3600.0
    ack_deadline_seconds: float = ACK_DEADLINE_SECONDS
    progress_interval: float = 3.0
    submit_window_seconds: float = SUBMIT_WINDOW_SECONDS
    delivery_backoff_seconds: tuple[float, ...] = DELIVERY_BACKOFF_SECONDS
    retry_backoff_seconds: tuple[float, ...] = RETRY_BACKOFF_SECONDS

    def terms(self, limits: Sequence[Limit]) -> ReserveTerms:
        """The terms a member's reservation is held to: ``limits`` (theirs, their server's, the bot's) and the caps."""
        return ReserveTerms(limits, self.member_max_pending_jobs, self.member_cooldown_seconds)

    def delivery_backoff(self, tries: int) -> float:
        """The wait after the ``tries``-th failed post of a result (or a group's gallery)."""
        return _nth(self.delivery_backoff_seconds, tries)

    def retry_backoff(self, tries: int) -> float:
        """The wait after the ``tries``-th failure in a row of a job's step (a bug, the database away)."""
        return _nth(self.retry_backoff_seconds, tries)

    @classmethod
    def from_settings(cls, settings: Settings, **overrides: float) -> EngineConfig:
        """The engine's part of ``settings`` (``overrides``: tests and benchmarks)."""
        values: dict[str, Any] = {
            "max_active_tasks": settings.bfl_max_active_tasks,
            "member_max_concurrent_jobs": settings.member_max_concurrent_jobs,
            "member_max_pending_jobs": settings.member_max_pending_jobs,
            "member_cooldown_seconds": settings.member_cooldown_seconds,
            "job_timeout_seconds": float(settings.job_timeout_seconds),
            "lease_seconds": float(settings.job_lease_seconds),
            "refund_policy": settings.refund_policy,
            "undeliverable_after_seconds": float(settings.undeliverable_after_seconds),
        }
        return cls(**(values | overrides))

    @property
    def heartbeat_seconds(self) -> float:
        """How often the reconciler looks at every open job (and renews this process's lease)."""
        return self.lease_seconds / 3


def _nth(steps: tuple[float, ...], tries: int) -> float:
    return steps[min(max(tries, 1), len(steps)) - 1]
