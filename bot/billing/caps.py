"""What a limit is: who it applies to, what it counts, per which period, and how much of it is used.

Kept apart from the ledger that enforces them (:mod:`bot.billing.ledger`, which re-exports these
names): the limit resolution (:mod:`bot.billing.limits`), the escrow (:mod:`bot.billing.escrow`)
and the refusals (:mod:`bot.billing.refusals`) use them too.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from bot.billing.money import format_usd
from bot.billing.periods import Period


class Scope(enum.StrEnum):
    """Who a limit applies to."""

    MEMBER = "member"
    SERVER = "server"
    BOT = "bot"


class Source(enum.StrEnum):
    """Where a limit comes from."""

    PERSONAL = "personal"  # set on the member
    ROLE = "role"  # one of the member's roles (``Limit.role_id``)
    SERVER_DEFAULT = "server default"  # set on @everyone
    MODERATORS = "moderators"  # the server's budget, set with /budget server
    BOT_DEFAULT = "bot default"  # nothing set: the bot's defaults
    OWNER = "owner"  # the bot-wide budget


class Metric(enum.StrEnum):
    """What a limit counts."""

    USD = "usd"
    IMAGES = "images"


def describe_limit(metric: Metric, period: Period, value: int) -> str:
    """``$0.50 per day`` / ``10 images per week``."""
    amount = format_usd(value) if metric is Metric.USD else f"{value} images"
    return f"{amount} per {period.value}"


def scope_key(scope: Scope, guild_id: int, user_id: int = 0) -> str:
    """The key of a spend counter: ``m:<guild>:<user>``, ``s:<guild>`` or ``bot``."""
    if scope is Scope.MEMBER:
        return f"m:{guild_id}:{user_id}"
    if scope is Scope.SERVER:
        return f"s:{guild_id}"
    return "bot"


@dataclass(frozen=True)
class Limit:
    """One cap that applies to a request: e.g. the member's $0.50 per day."""

    scope: Scope
    metric: Metric
    period: Period
    value: int  # micro-dollars or images
    source: str  # where it comes from: a :class:`Source` (renderers word it), or a label of its own
    role_id: int | None = None  # the role it comes from (``Source.ROLE``)

    def describe(self) -> str:
        """``$0.50 per day`` / ``10 images per week``."""
        return describe_limit(self.metric, self.period, self.value)


@dataclass(frozen=True)
class LimitStatus:
    """How much of a limit is used in the current period."""

    limit: Limit
    used: int
    granted: int
    resets_at: datetime

    @property
    def allowance(self) -> int:
        """The limit plus one-off grants for this period."""
        return self.limit.value + self.granted

    @property
    def remaining(self) -> int:
        """What is left this period (never negative)."""
        return max(0, self.allowance - self.used)


@dataclass(frozen=True)
class ReserveRequest:
    """One reservation asked of the ledger: a job's estimate and one image, under ``limits``, at ``now``."""

    job_id: int
    guild_id: int
    user_id: int
    model: str
    estimated_micros: int
    limits: Sequence[Limit]
    max_pending_jobs: int
    cooldown_seconds: int
    now: datetime

    def __post_init__(self) -> None:
        if self.estimated_micros < 0:
            raise ValueError("an estimate cannot be negative")
