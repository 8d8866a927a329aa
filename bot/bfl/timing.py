"""How long the BFL client waits: the fallback poll schedule and the backoff after failures.

Pure logic; ``random`` is injectable so tests can pin the jitter.
"""

from __future__ import annotations

import random as _random
from collections.abc import Callable
from dataclasses import dataclass, field

MAX_RETRY_AFTER = 60.0  # a longer Retry-After means "not now": give up (or wait at most this) instead
MAX_POLL_BACKOFF = 10.0  # cap of the backoff between polls that failed in a row


@dataclass(frozen=True)
class PollSchedule:
    """How often to poll: every ``first_interval`` s for ``quick_phase`` s, then backing off.

    After the quick phase each interval is ``factor`` times the previous one, up to ``max_interval``.
    Every interval is spread by ±``jitter`` (a fraction) so that many tasks started together do not
    poll in lockstep. Most FLUX tasks finish within 10 s, hence the quick start.
    """

    first_interval: float = 0.5
    quick_phase: float = 8.0
    factor: float = 1.5
    max_interval: float = 3.0
    jitter: float = 0.1

    def __post_init__(self) -> None:
        if self.first_interval <= 0 or self.max_interval <= 0:
            raise ValueError("poll intervals must be positive")
        if self.quick_phase < 0 or self.factor < 1:
            raise ValueError("quick_phase must be >= 0 and factor >= 1")
        if not 0 <= self.jitter < 1:
            raise ValueError("jitter is a fraction in [0, 1)")

    def next_interval(self, elapsed: float, previous: float | None) -> float:
        """The un-jittered wait before the next poll, ``elapsed`` seconds after polling began."""
        first = min(self.first_interval, self.max_interval)
        if previous is None or elapsed < self.quick_phase:
            return first
        return min(self.max_interval, max(previous, first) * self.factor)

    def jittered(self, interval: float, rnd: float) -> float:
        """``interval`` spread by ±jitter; ``rnd`` is a uniform sample from [0, 1)."""
        return max(0.0, interval * (1.0 + self.jitter * (2.0 * rnd - 1.0)))


@dataclass(frozen=True)
class Backoff:
    """Exponential backoff from ``base`` seconds, capped at ``cap``, with injectable randomness."""

    base: float = 0.5
    cap: float = 20.0
    random: Callable[[], float] = field(default=_random.random)

    def full_jitter(self, attempt: int) -> float:
        """Before retry ``attempt`` (0-based) of a request: uniform in [0, min(cap, base · 2^attempt))."""
        return self.random() * min(self.cap, self.base * 2**attempt)

    def after_failed_polls(self, failures: int, retry_after: float | None = None) -> float:
        """The pause after ``failures`` (≥ 1) polls failed in a row: doubling, half of it jittered.

        At least ``Retry-After`` when the last answer sent one (itself capped at :data:`MAX_RETRY_AFTER`).
        """
        ceiling = min(self.cap, MAX_POLL_BACKOFF, self.base * 2 ** (max(1, failures) - 1))
        delay = ceiling * (0.5 + 0.5 * self.random())
        if retry_after is not None:
            delay = max(delay, min(retry_after, MAX_RETRY_AFTER))
        return delay
