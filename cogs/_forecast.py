"""The forecast of `/budget set who:<role>`: the worst case shown before saving, and its Save / Cancel.

The arithmetic is :mod:`bot.billing.forecast`. The role's members come from Discord
(:meth:`discord.Guild.role_member_counts`, which needs the Manage Roles permission); without it, or
when Discord refuses, the server's member count stands in (an upper bound) and the answer says so.
A large role whose worst case exceeds the server's budget is not saved: the moderator gets the forecast
privately with **Save** / **Cancel** (``fluxcord:save:<key>`` / ``fluxcord:discard:<key>``), a pending
offer of kind ``forecast`` (:class:`bot.offers.OfferStore`: in the database, so it survives a restart)
that only that moderator can answer, for :data:`FORECAST_TTL_SECONDS`. Save applies exactly what was
asked, through the same :meth:`LimitsService.set_limit` call (and self-benefit check) as `/budget set`.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING

import discord

from bot.audit import Actor, Subject, SubjectKind
from bot.billing.forecast import DAYS_PER_MONTH, Forecast, per_month, server_month
from bot.billing.ledger import Metric
from bot.billing.limits import LimitSetting
from bot.billing.money import format_usd
from bot.billing.periods import Period
from bot.errors import NotAllowed
from cogs._components import PersistentButton, a_key, action_template
from cogs._context import is_moderator, require_guild, role_ids
from cogs._render import audit_line, subject

if TYPE_CHECKING:
    from bot.services import Services

log = logging.getLogger(__name__)

KIND = "forecast"
FORECAST_TTL_SECONDS = 900.0  # 15 minutes
EXPIRED_TEXT = "This forecast has expired or was already answered; nothing was saved. Run `/budget set` again."
CANCELLED_TEXT = "Cancelled: nothing was saved."
NOT_YOURS_TEXT = "Only the moderator who asked can save or cancel this."
NOT_MODERATOR_TEXT = "Only moderators can save budgets (Manage Server permission or the moderator role)."
NO_PERMISSION_NOTE = "the bot lacks the Manage Roles permission Discord asks for to count a role's members"
REFUSED_NOTE = "Discord refused to count the role's members"
_TIMES = {Period.DAY: f"{DAYS_PER_MONTH} days", Period.WEEK: f"{DAYS_PER_MONTH}/7 weeks", Period.MONTH: "1 month"}


def actor(interaction: discord.Interaction) -> Actor:
    """The moderator making a change, for the self-benefit check (administrator, roles from the payload)."""
    return Actor(interaction.user.id, interaction.permissions.administrator, role_ids(interaction))


async def count_members(interaction: discord.Interaction, role: discord.Role) -> tuple[int, str | None]:
    """The role's members, and why only the server's member count (an upper bound) is known, if so."""
    guild = interaction.guild
    total = (guild.member_count if guild is not None else None) or 0
    if role.is_default():
        return total, None  # @everyone is every member
    if guild is None or not interaction.app_permissions.manage_roles:
        return total, NO_PERMISSION_NOTE
    try:
        counts = await guild.role_member_counts()
    except discord.HTTPException as exc:  # Forbidden (403) included
        log.info("Discord refused the member counts of guild %s: %s", guild.id, exc)
        return total, REFUSED_NOTE
    return next((n for r, n in counts.items() if r.id == role.id), 0), None


def forecast_text(forecast: Forecast, role_mention: str, note: str | None) -> str:
    """The worst case, against the server's and the bot-wide budget, for the moderator."""
    counted = f"{forecast.members:,} members" + (" at most" if note else "")
    lines = [
        f"📊 Worst case for {role_mention}: {counted} × {format_usd(forecast.amount_micros)} per"
        f" {forecast.period.value} × {_TIMES[forecast.period]} = **{format_usd(forecast.worst_case_micros)}"
        " a month**."
    ]
    if note:
        lines.append(f"(The server's member count stands in for the role's: {note}.)")
    whose = " (the bot's default: none set with `/budget server`)" if forecast.server_is_default else ""
    server = f"This server's budget: {format_usd(forecast.server_month_micros)} a month{whose}"
    lines.append(f"{server}: {'exceeded' if forecast.over_server else 'within it'}.")
    bot = f"The bot-wide budget: {format_usd(forecast.bot_month_micros)} a month (all servers)"
    lines.append(f"{bot}: {'exceeded' if forecast.over_bot else 'within it'}.")
    return "\n".join(lines)


@dataclass(frozen=True)
class Shown:
    """A large role's forecast and its text."""

    forecast: Forecast
    text: str

    @property
    def needs_confirmation(self) -> bool:
        """Save / Cancel before saving (:attr:`Forecast.needs_confirmation`)."""
        return self.forecast.needs_confirmation


class Forecasts:
    """Forecasts of role budgets and their pending Save / Cancel (handles the buttons' clicks)."""

    def __init__(self, services: Services, mark: str) -> None:
        self.services = services
        self.mark = mark  # the mod-log line's emoji, as `/budget`'s own

    async def of(self, interaction: discord.Interaction, role: discord.Role, setting: LimitSetting) -> Shown | None:
        """The forecast of a large role, shown; None for a small role (saved at once, as before)."""
        members, note = await count_members(interaction, role)
        guild_id = require_guild(interaction)
        own = [(s.period, s.value) for s in await self._server_budgets(guild_id)]
        cfg = self.services.settings
        server, default = server_month(own, cfg.default_server_daily_budget_micros)
        bot_month = per_month(cfg.bot_budget_micros, cfg.bot_budget_period)
        forecast = Forecast(members, note is None, setting.value, setting.period, server, default, bot_month)
        return Shown(forecast, forecast_text(forecast, role.mention, note)) if forecast.large else None

    async def _server_budgets(self, guild_id: int) -> list[LimitSetting]:
        target = Subject(SubjectKind.SERVER, guild_id)
        return [s for s in await self.services.server.limits.settings_for(target, guild_id) if s.metric is Metric.USD]

    async def ask(self, interaction: discord.Interaction, setting: LimitSetting, text: str) -> None:
        """Keep the setting as a pending offer and show ``text`` with Save / Cancel (nothing is saved)."""
        payload = {"role": setting.target.id, "micros": setting.value, "period": setting.period.value}
        key = await self.services.members.offers.put(
            KIND,
            guild_id=require_guild(interaction),
            user_id=interaction.user.id,
            payload=payload,
            ttl_seconds=FORECAST_TTL_SECONDS,
        )
        view = discord.ui.View(timeout=None)
        view.add_item(ForecastButton("save", key))
        view.add_item(ForecastButton("discard", key))
        minutes = int(FORECAST_TTL_SECONDS // 60)
        text += f"\nNothing is saved until you press **Save** (within {minutes} minutes)."
        await interaction.response.send_message(text, view=view, ephemeral=True)

    async def click(self, interaction: discord.Interaction, action: str, key: str) -> None:
        """Save (exactly what was asked) or Cancel; only the moderator who asked, before it expires."""
        if not await is_moderator(interaction, self.services.server.settings):
            raise NotAllowed(NOT_MODERATOR_TEXT)
        guild_id = require_guild(interaction)
        payload = await self.services.members.offers.take(
            KIND,
            key,
            guild_id=guild_id,
            user_id=interaction.user.id,
            max_age_seconds=FORECAST_TTL_SECONDS,
            expired=EXPIRED_TEXT,
            not_yours=NOT_YOURS_TEXT,
        )
        if action != "save":
            await interaction.response.edit_message(content=CANCELLED_TEXT, view=None)
            return
        role = Subject(SubjectKind.ROLE, int(payload["role"]))
        setting = LimitSetting(role, Metric.USD, Period(payload["period"]), int(payload["micros"]))
        limits = self.services.server.limits
        entry, old = await limits.set_limit(guild_id, setting, actor_id=actor(interaction))
        was = f" (was {old.describe()})" if old else ""
        text = f"✅ Saved: {subject(role, guild_id)}: {setting.describe()}{was}."
        await interaction.response.edit_message(content=text, view=None)
        await self.services.server.modlog.announce(guild_id, f"{self.mark} {audit_line(entry)}")


class ForecastButton(PersistentButton, template=action_template(("save", "discard"))):
    """Save / Cancel under a role budget's forecast; its custom id holds only the offer's id."""

    ARGUMENTS = (a_key(8),)

    def __init__(self, action: str, key: str) -> None:
        label, style = (
            ("Save", discord.ButtonStyle.danger) if action == "save" else ("Cancel", discord.ButtonStyle.secondary)
        )
        super().__init__(discord.ui.Button(label=label, style=style, custom_id=f"fluxcord:{action}:{key}"))
        self.action = action
        self.key = key

    async def run(self, interaction: discord.Interaction) -> None:
        """Answer the forecast (``target.click``)."""
        await self.target.click(interaction, self.action, self.key)
