"""What `/budget report` says beside its chart: the spend embed and the circuit breakers' lines."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime, timedelta

import discord

from bot.billing.money import format_usd
from bot.billing.periods import Period
from bot.billing.reports import SpendReport
from bot.engine.breaker import BreakerState, BreakerStatus
from cogs._render import member as mention
from cogs._render import when


def report_embed(
    report: SpendReport, period: Period, balance: str, troubled: list[str], books: str | None
) -> discord.Embed:
    """The report's embed: this server's and every server's spend, BFL's balance, top spenders, models, notes."""
    embed = discord.Embed(title=f"Spend this {period.value} ({report.period_key[2:]})")
    embed.add_field(name="This server", value=f"{format_usd(report.total_micros)} · {report.images} images")
    embed.add_field(name="All servers (ledger)", value=format_usd(report.bot_total_micros))
    embed.add_field(name="BFL balance", value=balance)
    members = [f"{mention(user)}: {format_usd(micros)} · {images} images" for user, micros, images in report.by_member]
    embed.add_field(name="Top spenders", value="\n".join(members)[:1024] or "—", inline=False)
    models = [f"`{model}`: {format_usd(micros)} · {images} images" for model, micros, images in report.by_model]
    embed.add_field(name="By model", value="\n".join(models)[:1024] or "—", inline=False)
    if troubled:
        embed.add_field(name="Models BFL keeps failing for", value="\n".join(troubled)[:1024], inline=False)
    if books:
        embed.add_field(name="Bookkeeping", value=books, inline=False)
    notes = _notes(report)
    if notes:
        embed.set_footer(text=" ".join(notes))
    return embed


def _notes(report: SpendReport) -> list[str]:
    notes = []
    if report.unknown_jobs:
        notes.append(
            f"{report.unknown_jobs} submits had an unknown outcome and are counted as spent; "
            "compare with BFL's usage page."
        )
    if report.over_estimate_jobs:
        notes.append(f"{report.over_estimate_jobs} images cost more than their estimate (see the log).")
    if report.undeliverable_jobs:
        notes.append(
            f"{report.undeliverable_jobs} undeliverable: made and paid to BFL, but Discord never let the bot"
            " post them, so their members were refunded."
        )
    return notes


def breaker_lines(statuses: Iterable[BreakerStatus], now: datetime) -> list[str]:
    """A line per model whose circuit breaker is open or half-open, with when it lets a trial through."""
    lines = []
    for status in statuses:
        if status.state is BreakerState.HALF_OPEN:
            lines.append(f"`{status.model}`: half-open, one trial request goes through now")
        else:
            retry = (now + timedelta(seconds=status.retry_in)).astimezone(UTC)
            trial = f"{when(retry, round_up=True)} ({when(retry, 'T', round_up=True)})"
            lines.append(f"`{status.model}`: refusing new requests; next trial {trial}")
    return lines
