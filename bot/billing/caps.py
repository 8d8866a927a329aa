"""What a limit is: who it applies to, what it counts, per which period, and how much of it is used.

Kept apart from the ledger that enforces them (:mod:`bot.billing.ledger`, which re-exports these
names): the limit resolution (:mod:`bot.billing.limits`), the escrow (:mod:`bot.billing.escrow`)
and the refusal texts use them too.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import datetime

from bot.billing.money import format_usd
from bot.config import Period


class Scope(enum.StrEnum):
    """Who a limit applies to."""

    MEMBER = "member"
    SERVER = "server"
    BOT = "bot"


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
    source: str  # where it comes from, for people: "your @Artists role", "the server default"

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


_WHOM_TO_ASK = {
    (Scope.MEMBER, Metric.USD): "A moderator can give you more with `/budget grant`.",
    (Scope.MEMBER, Metric.IMAGES): "A moderator can raise it with `/budget images`.",
    (Scope.SERVER, Metric.USD): "A moderator can raise it with `/budget server`.",
    (Scope.SERVER, Metric.IMAGES): "Ask a moderator.",
    (Scope.BOT, Metric.USD): "Only the bot's owner can raise it (`BOT_BUDGET_USD`).",
    (Scope.BOT, Metric.IMAGES): "Only the bot's owner can raise it.",
}


def refusal_text(status: LimitStatus, needed: int, images: int = 1) -> str:
    """Why a reservation of ``needed`` (``images`` > 1: an all-or-nothing group) does not fit ``status``.

    What is over, what is left, when it resets, and whom to ask.
    """
    return f"{_over_text(status, needed, images)} {_WHOM_TO_ASK[(status.limit.scope, status.limit.metric)]}"


def _over_text(status: LimitStatus, needed: int, images: int) -> str:
    limit = status.limit
    resets = f"<t:{int(status.resets_at.timestamp())}:R>"
    period = limit.period.adjective
    owner = {Scope.MEMBER: "Your", Scope.SERVER: "This server's", Scope.BOT: "The bot's"}[limit.scope]
    if images > 1:  # an all-or-nothing group: say that none of it was reserved
        if limit.metric is Metric.IMAGES:
            used = f"{status.used} of {status.allowance} images used"
        else:
            used = f"they cost about {format_usd(needed)} and {format_usd(status.remaining)} is left of"
            used += f" {format_usd(status.allowance)} ({limit.source})"
        return (
            f"{owner} {period} {'image quota' if limit.metric is Metric.IMAGES else 'budget'} doesn't cover"
            f" these {images} images ({used}). Nothing was reserved; try a smaller count. It resets {resets}."
        )
    if limit.metric is Metric.IMAGES:
        return (
            f"{owner} {period} image quota is used up ({status.used} of {status.allowance} images). It resets {resets}."
        )
    left = format_usd(status.remaining)
    return (
        f"{owner} {period} budget doesn't cover this image: it costs about {format_usd(needed)} and "
        f"{left} is left of {format_usd(status.allowance)} ({limit.source}). It resets {resets}."
    )
