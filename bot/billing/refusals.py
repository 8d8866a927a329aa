"""Why a reservation was refused, as data: what is over, by how much, until when.

The ledger raises :class:`LimitRefused` carrying one of these; ``cogs/_render.py`` words it for
Discord (amounts in micro-dollars, reset times as datetimes, ids).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from bot.billing.caps import LimitStatus
from bot.errors import LimitReached


@dataclass(frozen=True)
class OverLimit:
    """A reservation of ``needed`` (µ$ or images) does not fit ``status``; ``images`` > 1: an all-or-nothing group."""

    status: LimitStatus
    needed: int
    images: int = 1


@dataclass(frozen=True)
class TooManyPending:
    """The member has ``pending`` images in progress; ``images`` more would pass ``max_pending``."""

    pending: int
    max_pending: int
    images: int = 1


@dataclass(frozen=True)
class CoolingDown:
    """The member's cooldown since their last image ends at ``ready_at``."""

    ready_at: datetime


Refusal = OverLimit | TooManyPending | CoolingDown


class LimitRefused(LimitReached):
    """A quota, budget, concurrency cap or cooldown refused the request; ``notice`` says which."""

    def __init__(self, refusal: Refusal) -> None:
        super().__init__(f"refused: {refusal!r}", notice=refusal)
