"""The worst case of a role's budget, per month: members × amount × periods per month (integer micro-dollars)."""

import pytest

from bot.billing.forecast import LARGE_ROLE_MEMBERS, Forecast, per_month, server_month
from bot.config import Period

DOLLAR = 1_000_000


@pytest.mark.parametrize(
    ("micros", "period", "monthly"),
    [
        (1, Period.DAY, 30),  # a month is 30 days
        (7, Period.WEEK, 30),  # … and 30/7 weeks
        (1, Period.WEEK, 5),  # 30/7 of a micro-dollar, rounded up
        (2 * DOLLAR, Period.WEEK, 8_571_429),  # $8.571428… rounded up to the micro-dollar
        (100 * DOLLAR, Period.MONTH, 100 * DOLLAR),
        (0, Period.DAY, 0),
    ],
)
def test_per_month_is_exact_integer_math_rounded_up(micros, period, monthly):
    assert per_month(micros, period) == monthly


def test_the_server_month_is_the_tightest_of_its_budgets():
    assert server_month([(Period.DAY, 5 * DOLLAR), (Period.MONTH, 100 * DOLLAR)], 9 * DOLLAR) == (100 * DOLLAR, False)
    assert server_month([(Period.WEEK, 20 * DOLLAR)], 9 * DOLLAR) == (85_714_286, False)


def test_without_a_server_budget_the_bot_default_daily_budget_applies():
    assert server_month([], 5 * DOLLAR) == (150 * DOLLAR, True)


def _forecast(members, micros, period, *, server=150 * DOLLAR, bot=50 * DOLLAR):
    return Forecast(members, True, micros, period, server, False, bot)


def test_forty_members_at_a_dollar_a_day_exceed_both_budgets():
    forecast = _forecast(40, DOLLAR, Period.DAY)
    assert forecast.worst_case_micros == 1_200 * DOLLAR
    assert forecast.large and forecast.over_server and forecast.over_bot and forecast.needs_confirmation


def test_a_weekly_amount_rounds_up_after_multiplying():
    forecast = _forecast(30, DOLLAR // 2, Period.WEEK)
    assert forecast.worst_case_micros == 64_285_715  # 30 × $0.50 × 30/7 = $64.2857142…
    assert not forecast.over_server and forecast.over_bot and not forecast.needs_confirmation


def test_exactly_the_server_budget_does_not_exceed_it():
    forecast = _forecast(30, 5 * DOLLAR, Period.MONTH)
    assert forecast.worst_case_micros == 150 * DOLLAR and not forecast.over_server


def test_a_small_role_is_never_asked_about():
    small = _forecast(LARGE_ROLE_MEMBERS - 1, 100 * DOLLAR, Period.DAY)
    assert small.over_server and not small.large and not small.needs_confirmation
    assert _forecast(LARGE_ROLE_MEMBERS, 100 * DOLLAR, Period.DAY).needs_confirmation
