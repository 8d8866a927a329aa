"""What a limit is: who it applies to, what it counts, per which period, and how much of it is used.

Kept apart from the ledger that enforces them (:mod:`bot.billing.ledger`, which re-exports these
names): the limit resolution (:mod:`bot.billing.limits`), the escrow (:mod:`bot.billing.escrow`)
and the refusals (:mod:`bot.billing.refusals`) use them too.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass, replace
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
class ReserveTerms:
    """What a member's reservations are held to: the limits that apply, and the bot's per-member caps.

    ``limits`` are the member's, their server's and the bot's (:meth:`bot.billing.limits.LimitsService.limits_for`);
    ``max_pending_jobs`` caps the member's images in progress, ``cooldown_seconds`` the time between two
    requests (0: none).
    """

    limits: Sequence[Limit]
    max_pending_jobs: int
    cooldown_seconds: int = 0

    def without_cooldown(self) -> ReserveTerms:
        """The same terms without the cooldown (the later images of one request: one request, one cooldown)."""
        return replace(self, cooldown_seconds=0)


@dataclass(frozen=True)
class Demand:
    """What one admission asks of a member's limits: ``images`` images costing ``estimated_micros`` in all."""

    guild_id: int
    user_id: int
    estimated_micros: int
    images: int = 1

    def needed(self, metric: Metric) -> int:
        """What this demand takes of a limit counting ``metric``: its images, or its estimate in µ$."""
        return self.images if metric is Metric.IMAGES else self.estimated_micros


@dataclass(frozen=True)
class ReserveRequest:
    """One reservation asked of the ledger: a job's estimate and one image, under ``terms``, at ``now``."""

    job_id: int
    guild_id: int
    user_id: int
    model: str
    estimated_micros: int
    terms: ReserveTerms
    now: datetime

    def __post_init__(self) -> None:
        if self.estimated_micros < 0:
            raise ValueError("an estimate cannot be negative")

    @property
    def demand(self) -> Demand:
        """What this reservation asks of the member's limits (its estimate and one image)."""
        return Demand(self.guild_id, self.user_id, self.estimated_micros)
