"""The one retry-and-explain loop of a reservation (the ledger's own, and an admission's)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import TypeVar

from bot.clock import Clock
from bot.errors import LimitReached

T = TypeVar("T")


async def reserve_or_explain(
    clock: Clock,
    attempt: Callable[[datetime], Awaitable[T | None]],
    explain: Callable[[datetime], Awaitable[None]],
    *,
    attempts: int,
    busy: str,
) -> T:
    """``attempt(now)``; refused (None), ``explain(now)`` raises the refusal that names the limit.

    When nothing refuses on a second look (a concurrent job settled in between, or, on PostgreSQL,
    the member's shard needed an allowance and now has it), it is tried again, up to ``attempts``
    times in all; then ``busy`` is the refusal.
    """
    for _attempt in range(attempts):
        now = clock()
        reserved = await attempt(now)
        if reserved is not None:
            return reserved
        await explain(now)
    raise LimitReached(busy)
