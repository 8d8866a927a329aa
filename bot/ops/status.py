"""The moderators' status line: BFL balance, tasks in flight, queue depth, last BFL error, uptime."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from bot.aio import within
from bot.engine.states import JobStatus

log = logging.getLogger(__name__)

CREDITS_TIMEOUT_SECONDS = 5.0


@dataclass(frozen=True)
class BotStatus:
    """What the bot is doing right now."""

    credits: Decimal | None  # None: BFL did not answer
    in_flight: int
    queued: int
    last_error: str | None
    uptime_seconds: float
    troubled_models: tuple[str, ...] = ()  # models whose circuit breaker is open (BFL keeps failing)

    def line(self) -> str:
        """One line for Discord."""
        balance = "unavailable"
        if self.credits is not None:
            balance = f"{self.credits:,.2f} credits (${self.credits / 100:,.2f})"
        line = (
            f"BFL balance: {balance} · in flight: {self.in_flight} · queued: {self.queued} · "
            f"last BFL error: {self.last_error or 'none'} · up {format_uptime(self.uptime_seconds)}"
        )
        if self.troubled_models:
            line += f" · refusing (BFL keeps failing): {', '.join(self.troubled_models)}"
        return line


def format_uptime(seconds: float) -> str:
    """``3d 4h 5m``, ``2h 0m``, ``45s``."""
    total = int(seconds)
    days, rest = divmod(total, 86_400)
    hours, rest = divmod(rest, 3_600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f"{days}d {hours}h {minutes}m"
    if hours:
        return f"{hours}h {minutes}m"
    if minutes:
        return f"{minutes}m {secs}s"
    return f"{secs}s"


async def bot_status(services: Any) -> BotStatus:
    """Gather the status; BFL's balance is asked with a short timeout and may be unavailable."""
    try:
        credits: Decimal | None = await within(CREDITS_TIMEOUT_SECONDS, services.ops.bfl.get_credits())
    except Exception as exc:
        log.warning("Could not read the BFL credit balance: %s", type(exc).__name__)
        credits = None
    await services.engine.share_breakers()  # failures other processes saw, too
    return BotStatus(
        credits=credits,
        in_flight=await services.jobs.count(JobStatus.SUBMITTING, JobStatus.GENERATING),
        queued=await services.jobs.count(JobStatus.QUEUED),
        last_error=services.engine.last_error,
        uptime_seconds=services.ops.metrics.uptime_seconds,
        troubled_models=tuple(sorted(services.engine.breakers.open_models())),
    )
