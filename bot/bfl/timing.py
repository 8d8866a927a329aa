"""How long the BFL client waits after failures: the backoff of retried calls and of failed polls.

When to poll a running task is :mod:`bot.bfl.polling`'s (:class:`~bot.bfl.polling.PollPlan`).

Pure logic; ``random`` is injectable so tests can pin the jitter.
"""

from __future__ import annotations

import random as _random
from collections.abc import Callable
from dataclasses import dataclass, field

MAX_RETRY_AFTER = 60.0  # a longer Retry-After means "not now": give up (or wait at most this) instead
MAX_POLL_BACKOFF = 10.0  # cap of the backoff between polls that failed in a row


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
