"""The worst case of a role's budget before it is saved (`/budget set who:<role>`): pure arithmetic.

Worst case = the role's members × the amount × periods per month, in integer micro-dollars: a month
is 30 days, so a day budget counts 30 times, a week budget 30/7 times (rounded up to the micro-dollar,
after multiplying) and a month budget once. It is compared with the server's own budget per month
(the tightest of the periods moderators set with `/budget server`, each converted the same way; the
bot's default server budget, ``DEFAULT_SERVER_DAILY_USD`` per day, when none is set) and with the
bot-wide budget (``BOT_BUDGET_USD`` per month). A role of at least :data:`LARGE_ROLE_MEMBERS` members
is large: the answer shows the forecast, and asks Save / Cancel when the worst case exceeds the server's
budget. The rendering and the buttons: ``cogs/_forecast.py``.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from fractions import Fraction

from bot.billing.periods import Period

LARGE_ROLE_MEMBERS = 25
DAYS_PER_MONTH = 30
PERIODS_PER_MONTH: dict[Period, Fraction] = {
    Period.DAY: Fraction(DAYS_PER_MONTH),
    Period.WEEK: Fraction(DAYS_PER_MONTH, 7),
    Period.MONTH: Fraction(1),
}


def per_month(micros: int, period: Period) -> int:
    """``micros`` per ``period`` as micro-dollars per month (30 days), rounded up."""
    ratio = PERIODS_PER_MONTH[period]
    return -(-micros * ratio.numerator // ratio.denominator)


def server_month(budgets: Iterable[tuple[Period, int]], default_daily_micros: int) -> tuple[int, bool]:
    """The most the server may spend in a month, and whether that is the bot's default (none set).

    ``budgets``: the server's own (period, micro-dollars), each of which caps: the tightest per month wins.
    """
    months = [per_month(micros, period) for period, micros in budgets]
    if months:
        return min(months), False
    return per_month(default_daily_micros, Period.DAY), True


@dataclass(frozen=True)
class Forecast:
    """What a role's budget could cost in a month if every member spent all of it."""

    members: int
    exact: bool  # False: the server's member count stands in for the role's (an upper bound)
    amount_micros: int
    period: Period
    server_month_micros: int
    server_is_default: bool  # no `/budget server` set: the bot's default server budget applies
    bot_month_micros: int

    @property
    def worst_case_micros(self) -> int:
        """Members × amount × periods per month, rounded up."""
        return per_month(self.members * self.amount_micros, self.period)

    @property
    def large(self) -> bool:
        """Whether the role is large enough to show the forecast."""
        return self.members >= LARGE_ROLE_MEMBERS

    @property
    def over_server(self) -> bool:
        """Whether the worst case exceeds the server's budget for a month."""
        return self.worst_case_micros > self.server_month_micros

    @property
    def over_bot(self) -> bool:
        """Whether the worst case exceeds the bot-wide budget for a month."""
        return self.worst_case_micros > self.bot_month_micros

    @property
    def needs_confirmation(self) -> bool:
        """A large role whose worst case exceeds the server's budget: Save / Cancel before anything is saved."""
        return self.large and self.over_server
