"""The charts `/budget report` and `/quota` attach: the data, named from the guild, drawn off the event loop.

The drawing is :mod:`bot.billing.charts` (pure, blocking: run in a thread); the data is
:mod:`bot.billing.spend_days` and the ledger's statuses. Here: the names a chart shows (members,
channels and roles, which Discord knows and the database does not) and the PNG as an attachment whose
description is the chart's alt text. A chart that fails is logged and left out: the text answer stands.
"""

from __future__ import annotations

import asyncio
import io
import logging
from collections.abc import Callable, Sequence
from datetime import datetime

import discord

from bot.app import Services
from bot.billing.caps import LimitStatus, Metric, Scope
from bot.billing.charts import (
    QuotaBar,
    SpendChart,
    quota_alt_text,
    render_quota_bars,
    render_spend_chart,
    spend_alt_text,
)
from bot.billing.money import format_usd
from bot.billing.periods import Period
from bot.billing.reports import SpendReport
from bot.billing.spend_days import Group, Grouping, budget_line, daily_spend, top_role

log = logging.getLogger(__name__)

REPORT_FILENAME = "fluxcord-report.png"
QUOTA_FILENAME = "fluxcord-quota.png"


async def report_chart(
    interaction: discord.Interaction, services: Services, report: SpendReport, by: Grouping
) -> discord.File | None:
    """``/budget report``'s chart of ``report``'s period stacked ``by`` model, channel or role (None if it failed)."""
    try:
        guild_id = interaction.guild_id or 0
        now = services.ops.clock()
        spend = await daily_spend(services.db, guild_id, report.period, now, by)
        limits = await services.server.limits.limits_for(guild_id, 0, [])
        top = await _member_names(interaction.guild, [user for user, _, _ in report.by_member])
        chart = SpendChart(
            title=f"Spend this {report.period.value} ({report.period_key[2:]})",
            group_word=by.value,
            days=tuple(_day_label(report.period, day) for day in spend.days),
            series=tuple(spend.series(_namer(interaction.guild, by))),
            budget=budget_line(limits, now),
            top=tuple((top[user], micros) for user, micros, _ in report.by_member),
        )
        png = await asyncio.to_thread(render_spend_chart, chart)
    except Exception:
        log.exception("Could not draw the report chart")
        return None
    return discord.File(io.BytesIO(png), filename=REPORT_FILENAME, description=spend_alt_text(chart))


async def quota_chart(statuses: Sequence[LimitStatus]) -> discord.File | None:
    """``/quota``'s bar of each limit's share used this period (None if it failed)."""
    bars = tuple(_quota_bar(status) for status in statuses)
    if not bars:
        return None
    try:
        png = await asyncio.to_thread(render_quota_bars, bars)
    except Exception:
        log.exception("Could not draw the quota chart")
        return None
    return discord.File(io.BytesIO(png), filename=QUOTA_FILENAME, description=quota_alt_text(bars))


def _quota_bar(status: LimitStatus) -> QuotaBar:
    limit = status.limit
    owner = {Scope.MEMBER: "Your", Scope.SERVER: "Server", Scope.BOT: "Bot-wide"}[limit.scope]
    if limit.metric is Metric.IMAGES:
        label, text = "images", f"{status.used} of {status.allowance} images"
    else:
        label, text = "budget", f"{format_usd(status.used)} of {format_usd(status.allowance)}"
    return QuotaBar(f"{owner} {limit.period.adjective} {label}", status.used, status.allowance, text)


def _day_label(period: Period, day: datetime) -> str:
    if period is Period.MONTH:
        return str(day.day)
    if period is Period.WEEK:
        return f"{day:%a} {day.day}"
    return f"{day:%Y-%m-%d}"


def _namer(guild: discord.Guild | None, by: Grouping) -> Callable[[Group], str]:
    """How the chart names a group: the model's key, the channel's name, the role's name."""
    if by is Grouping.MODEL:
        return lambda group: str(group) if group is not None else "adjustments"
    if by is Grouping.CHANNEL:
        return lambda group: _channel_name(guild, group)
    positions = {role.id: role.position for role in guild.roles} if guild is not None else {}
    return lambda group: _role_name(guild, group, positions)


def _channel_name(guild: discord.Guild | None, group: Group) -> str:
    if group is None:
        return "no channel"
    found = guild.get_channel_or_thread(int(group)) if guild is not None else None
    return f"#{found.name}" if found is not None else f"channel {group}"


def _role_name(guild: discord.Guild | None, group: Group, positions: dict[int, int]) -> str:
    if group is None:
        return "roles not recorded"
    role_id = top_role(str(group), positions)
    role = guild.get_role(role_id) if guild is not None and role_id is not None else None
    if role is not None:
        return f"@{role.name}"
    return "deleted roles" if str(group).strip() else "@everyone"


async def _member_names(guild: discord.Guild | None, users: Sequence[int]) -> dict[int, str]:
    """Each top spender's display name: from the cache, else asked of Discord (at most ten requests, at once)."""

    async def name(user_id: int) -> str:
        if user_id == 0:
            return "server adjustments"
        if guild is None:
            return f"member {user_id}"
        member = guild.get_member(user_id)
        try:
            member = member or await guild.fetch_member(user_id)
        except discord.NotFound:
            return f"left the server ({user_id})"
        except discord.HTTPException:
            return f"member {user_id}"
        return member.display_name

    names = await asyncio.gather(*(name(user) for user in users))
    return dict(zip(users, names, strict=True))
