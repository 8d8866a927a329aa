"""`/budget`: moderators set quotas and dollar budgets, pause generation, and audit spend.

Who is a moderator is decided here, in code, on every call: Discord's `default_member_permissions`
is only a default that server admins can change (and it is ignored on subcommands).
"""

from __future__ import annotations

import logging
from typing import Literal

import discord
from discord import app_commands

from bot.app import FluxcordBot
from bot.audit import Subject, SubjectKind
from bot.billing.asks import DEFAULT_ADMIN_ABOVE_MICROS
from bot.billing.ledger import Metric
from bot.billing.limits import LimitSetting
from bot.billing.money import format_usd
from bot.billing.reports import spend_report
from bot.billing.spend_days import Grouping
from bot.errors import InvalidOptions, NotAllowed
from bot.text import strip_bidi
from cogs import _budget_input as given
from cogs._budget_channel import ChannelDefaultsCommand, channel_lines
from cogs._budget_input import DRAFT_DEFAULT, FALLBACK_OFF
from cogs._budget_texts import gifts_text, priority_text
from cogs._components import register, unregister
from cogs._context import ModeratorGroup
from cogs._export import ExportGroup, ExportPeriod, send_export
from cogs._forecast import ForecastButton, Forecasts
from cogs._forecast import actor as _actor
from cogs._render import books_text, channel, role, subject, subject_with_id
from cogs._render import member as mention
from cogs._report_chart import report_chart
from cogs._report_text import breaker_lines, report_embed

log = logging.getLogger(__name__)

PeriodName = Literal["day", "week", "month"]
ChartGroup = Literal["model", "channel", "role"]
MAX_IMAGES = 100_000

# Discord does not let a bot change who may see a command: `default_member_permissions` (Manage
# Server, below) is only the default, and server admins override it per role.
INTEGRATIONS_NOTE = (
    "Discord shows `/budget` only to members with Manage Server until an administrator allows the role under "
    "Server Settings → Integrations → {bot} → `/budget` (a bot cannot change that itself)."
)


class Budget(
    ModeratorGroup,
    ChannelDefaultsCommand,
    name="budget",
    guild_only=True,
    default_permissions=discord.Permissions(manage_guild=True),
):
    """Set image quotas and dollar budgets (moderators)."""

    refusal = "Only moderators can manage budgets (Manage Server permission or the moderator role)."
    channel_defaults = ChannelDefaultsCommand.channel_defaults  # `/budget channel` (cogs/_budget_channel.py)

    def __init__(self, bot: FluxcordBot) -> None:
        super().__init__(bot)
        self.forecasts = Forecasts(self.services, self.mark)

    @app_commands.command(name="set")
    @app_commands.describe(
        who="Member or role", amount="Dollars, e.g. 2.50 (0 blocks spending)", period="Budget period"
    )
    async def set_budget(
        self,
        interaction: discord.Interaction,
        who: discord.Member | discord.Role,
        amount: str,
        period: PeriodName,
    ) -> None:
        """Set a member's or role's dollar budget for a period."""
        setting = LimitSetting(given.target(who), Metric.USD, given.period(period), given.amount(amount))
        found = await self.forecasts.of(interaction, who, setting) if isinstance(who, discord.Role) else None
        if found is None or not found.needs_confirmation:  # a small role, or within the server's budget
            await self._set(interaction, setting, f"\n{found.text}" if found else "")
        else:  # a large role over the server's budget: Save / Cancel first (cogs/_forecast.py)
            await self.forecasts.ask(interaction, setting, found.text)

    @app_commands.command(name="images")
    @app_commands.describe(who="Member or role", count="Images allowed (0 blocks generation)", period="Quota period")
    async def set_images(
        self,
        interaction: discord.Interaction,
        who: discord.Member | discord.Role,
        count: app_commands.Range[int, 0, MAX_IMAGES],
        period: PeriodName,
    ) -> None:
        """Set a member's or role's image quota for a period."""
        if not 0 <= count <= MAX_IMAGES:
            raise InvalidOptions(f"The image count must be between 0 and {MAX_IMAGES:,}.")
        await self._set(interaction, LimitSetting(given.target(who), Metric.IMAGES, given.period(period), count))

    @app_commands.command(name="server")
    @app_commands.describe(amount="Dollars, e.g. 25 (0 blocks spending)", period="Budget period")
    async def set_server(self, interaction: discord.Interaction, amount: str, period: PeriodName) -> None:
        """Set the whole server's dollar budget for a period."""
        target = Subject(SubjectKind.SERVER, interaction.guild_id or 0)
        await self._set(interaction, LimitSetting(target, Metric.USD, given.period(period), given.amount(amount)))

    async def _set(self, interaction: discord.Interaction, setting: LimitSetting, more: str = "") -> None:
        guild_id = interaction.guild_id or 0
        entry, old = await self.services.server.limits.set_limit(guild_id, setting, actor_id=_actor(interaction))
        was = f" (was {old.describe()})" if old else ""
        text = f"✅ {subject(setting.target, guild_id)}: {setting.describe()}{was}.{more}"
        await self.announce(interaction, entry, text)

    @app_commands.command(name="grant")
    @app_commands.describe(member="Who gets the extra", amount="Extra dollars for the current period, e.g. 1.00")
    async def grant(self, interaction: discord.Interaction, member: discord.Member, amount: str) -> None:
        """Give a member a one-off extra amount for the current period."""
        given.target(member)
        micros = given.amount(amount, allow_zero=False)
        guild_id = interaction.guild_id or 0
        entry = await self.services.server.limits.grant(
            self.services.ledger,
            guild_id=guild_id,
            user_id=member.id,
            micros=micros,
            actor_id=_actor(interaction),
        )
        await self.announce(
            interaction, entry, f"✅ Granted {member.mention} an extra {format_usd(micros)} this period."
        )

    @app_commands.command(name="gifts")
    @app_commands.describe(cap="Most one member may give per day with /gift, e.g. 1.00 (0: off; empty: show)")
    async def gifts(self, interaction: discord.Interaction, cap: str | None = None) -> None:
        """Let members give each other budget (`/gift`) up to a daily cap, or turn gifts off."""
        guild_id = interaction.guild_id or 0
        if cap is None:
            current = (await self.services.server.settings.guild_settings(guild_id)).gift_cap_micros
            await interaction.response.send_message(gifts_text(current), ephemeral=True)
            return
        micros = given.amount(cap)
        shown = format_usd(micros) if micros else "off"
        await self._switch(interaction, "gift_cap_micros", micros, "gifts.cap", shown, f"✅ {gifts_text(micros)}")

    @app_commands.command(name="priority")
    @app_commands.describe(
        role="Its members' jobs go before this server's other jobs (empty: show the setting)",
        off="True: no priority lane",
    )
    async def priority(
        self, interaction: discord.Interaction, role: discord.Role | None = None, off: bool = False
    ) -> None:
        """Give a role's members a priority lane in this server's queue, or turn it off."""
        guild_id = interaction.guild_id or 0
        if role is None and not off:
            current = (await self.services.server.settings.guild_settings(guild_id)).priority_role_id
            await interaction.response.send_message(priority_text(current, guild_id), ephemeral=True)
            return
        if off and role is not None:
            raise InvalidOptions("Choose a role, or `off:True`, not both.")
        if role is not None and role.is_default():
            raise InvalidOptions("@everyone is every member: a priority lane needs a narrower role.")
        chosen = None if role is None else role.id
        shown = Subject(SubjectKind.ROLE, chosen).key() if chosen else None
        text = f"✅ {priority_text(chosen, guild_id)}"
        await self._switch(interaction, "priority_role_id", chosen, "priority-role.set", shown, text)

    @app_commands.command(name="show")
    @app_commands.describe(who="Member, former member or role (default: everything set in this server)")
    async def show(self, interaction: discord.Interaction, who: discord.User | discord.Role | None = None) -> None:
        """Show the limits moderators have set."""
        guild_id = interaction.guild_id or 0
        limits = self.services.server.limits
        settings = await (limits.settings_for(given.target(who), guild_id) if who else limits.all_settings(guild_id))
        lines = [f"{subject_with_id(s.target, guild_id)}: {s.describe()}" for s in settings]
        guild = await self.services.server.settings.guild_settings(guild_id)
        cfg = self.services.settings
        defaults = (
            f"Defaults when nothing is set: {format_usd(cfg.default_member_daily_budget_micros)} and "
            f"{cfg.default_member_daily_images} images per member per day; "
            f"{format_usd(cfg.default_server_daily_budget_micros)} per server per day."
        )
        state = "⏸️ paused" if guild.paused else "▶️ running"
        embed = discord.Embed(title="Budgets", description="\n".join(lines)[:4000] or "Nothing set yet.")
        embed.add_field(name="Generation", value=state)
        embed.add_field(
            name="Moderator role", value=role(guild.moderator_role_id, guild_id) if guild.moderator_role_id else "—"
        )
        embed.add_field(name="Mod-log", value=channel(guild.modlog_channel_id) if guild.modlog_channel_id else "—")
        embed.add_field(name="Fallback model", value=f"`{guild.fallback_model}`" if guild.fallback_model else "—")
        embed.add_field(name="Draft model", value=f"`{guild.draft_model or self.services.settings.draft_model}`")
        if channels := await channel_lines(self.services.members.prefs.channels, guild_id):
            embed.add_field(name="Channel defaults", value=channels[:1024], inline=False)
        embed.set_footer(text=defaults)
        await interaction.response.send_message(embed=embed, ephemeral=True)

    @app_commands.command(name="reset")
    @app_commands.describe(
        member="Member whose personal overrides are removed",
        user_id="Or the user id of someone who has left the server (see /budget show)",
    )
    async def reset(
        self, interaction: discord.Interaction, member: discord.User | None = None, user_id: str | None = None
    ) -> None:
        """Remove a member's personal overrides (their roles' limits apply again)."""
        if member is not None:
            given.target(member)
        chosen = {member.id} if member is not None else set()
        if user_id is not None:
            chosen.add(given.user_id(user_id))
        if len(chosen) != 1:
            raise InvalidOptions("Choose one member, or give one user id (`user_id`) for someone who has left.")
        [target_id] = chosen
        entry = await self.services.server.limits.clear_member(
            interaction.guild_id or 0, target_id, actor_id=_actor(interaction)
        )
        await self.announce(
            interaction, entry, f"✅ {mention(target_id)} (id {target_id}) is back on their roles' limits."
        )

    @app_commands.command(name="pause")
    async def pause(self, interaction: discord.Interaction) -> None:
        """Stop all image generation in this server."""
        await self._set_paused(interaction, paused=True)

    @app_commands.command(name="resume")
    async def resume(self, interaction: discord.Interaction) -> None:
        """Restart image generation in this server."""
        await self._set_paused(interaction, paused=False)

    async def _set_paused(self, interaction: discord.Interaction, *, paused: bool) -> None:
        action = "generation.pause" if paused else "generation.resume"
        text = "⏸️ Image generation is paused." if paused else "▶️ Image generation is running again."
        await self._switch(interaction, "paused", int(paused), action, "1" if paused else "0", text)
        # The claim reads the pause: on resume the dispatcher looks for the jobs that waited (other
        # processes look every second); either way the queued jobs' messages say so.
        self.services.engine.wake(queue_changed=True)

    async def _switch(
        self,
        interaction: discord.Interaction,
        column: str,
        value: int | str | None,
        action: str,
        shown: str | None,
        text: str,
    ) -> None:
        """Change one per-server setting, audit it, announce it, and confirm to the moderator."""
        entry = await self.services.server.settings.update(
            interaction.guild_id or 0, column, value, actor_id=interaction.user.id, action=action, shown=shown
        )
        await self.announce(interaction, entry, text)

    @app_commands.command(name="report")
    @app_commands.describe(period="Which period (default: month)", by="The chart's daily bars by (default: model)")
    async def report(
        self, interaction: discord.Interaction, period: PeriodName = "month", by: ChartGroup = "model"
    ) -> None:
        """Spend by member and model with a chart, top spenders, and BFL's credit balance."""
        await interaction.response.defer(ephemeral=True, thinking=True)  # BFL's balance is a network call
        chosen = given.period(period)
        report = await spend_report(self.services.db, interaction.guild_id or 0, chosen, self.services.ops.clock())
        try:
            credits = await self.services.ops.bfl.get_credits()
            balance = f"{credits:,.2f} credits (${credits / 100:,.2f})"
        except Exception as exc:
            log.warning("Could not read the BFL credit balance: %s", exc)
            balance = "unavailable right now"
        await self.services.engine.share_breakers()  # failures other processes saw, too
        troubled = breaker_lines(self.services.engine.breakers.statuses(), self.services.ops.clock())
        embed = report_embed(report, chosen, balance, troubled, books_text(self.services.ops.bookkeeping.last))
        chart = await report_chart(interaction, self.services, report, Grouping(by))
        await interaction.followup.send(embed=embed, files=[chart] if chart else [], ephemeral=True)

    @app_commands.command(name="fallback")
    @app_commands.describe(model="Offered when a model keeps failing at BFL; Off: no offer (empty: show the setting)")
    @app_commands.choices(model=given.choices_after("Off: no fallback, just the refusal", FALLBACK_OFF))
    async def fallback(self, interaction: discord.Interaction, model: str | None = None) -> None:
        """Choose the model members are offered when theirs keeps failing at BFL."""
        guild_id = interaction.guild_id or 0
        if model is None:
            current = (await self.services.server.settings.guild_settings(guild_id)).fallback_model
            await interaction.response.send_message(given.fallback_text(current), ephemeral=True)
            return
        chosen = given.checked_model(model, FALLBACK_OFF)
        text = f"✅ {given.fallback_text(chosen)}"
        await self._switch(interaction, "fallback_model", chosen, "fallback.set", chosen, text)

    @app_commands.command(name="draft")
    @app_commands.describe(model="The model drafts are made on here; Default: the bot's DRAFT_MODEL (empty: show it)")
    @app_commands.choices(model=given.choices_after("Default: the bot's DRAFT_MODEL", DRAFT_DEFAULT))
    async def draft(self, interaction: discord.Interaction, model: str | None = None) -> None:
        """Choose the model `/imagine draft:true` makes its cheap candidates on in this server."""
        guild_id = interaction.guild_id or 0
        bot_default = self.services.settings.draft_model
        if model is None:
            current = (await self.services.server.settings.guild_settings(guild_id)).draft_model
            await interaction.response.send_message(given.draft_text(current, bot_default), ephemeral=True)
            return
        chosen = given.checked_model(model, DRAFT_DEFAULT)
        text = f"✅ {given.draft_text(chosen, bot_default)}"
        await self._switch(interaction, "draft_model", chosen, "draft.set", chosen, text)

    @app_commands.command(name="asks")
    @app_commands.describe(admin_above="Dollars: Ask for more requests above this need an administrator to approve")
    async def asks(self, interaction: discord.Interaction, admin_above: str | None = None) -> None:
        """Show or set the amount above which a member's request for more needs an administrator."""
        guild_id = interaction.guild_id or 0
        if admin_above is None:
            current = (await self.services.server.settings.guild_settings(guild_id)).ask_admin_above_micros
            await interaction.response.send_message(_asks_text(current), ephemeral=True)
            return
        micros = given.amount(admin_above)
        shown = format_usd(micros)
        await self._switch(
            interaction, "ask_admin_above_micros", micros, "asks.admin-above", shown, f"✅ {_asks_text(micros)}"
        )

    @app_commands.command(name="export")
    @app_commands.describe(period="The current day, week or month, or all (default)", group_by="Spend summed by")
    async def export(
        self, interaction: discord.Interaction, period: ExportPeriod | None = None, group_by: ExportGroup | None = None
    ) -> None:
        """Download this server's ledger as CSV, or its spend by member, role, channel, model or day."""
        await send_export(interaction, self.services, period, group_by)

    @app_commands.command(name="modrole")
    @app_commands.describe(role="Role whose members may use /budget (empty: remove it)")
    async def modrole(self, interaction: discord.Interaction, role: discord.Role | None = None) -> None:
        """Choose the moderator role (administrators only)."""
        if not interaction.permissions.administrator:
            raise NotAllowed("Only administrators can choose the moderator role.")
        if role is not None:
            note = INTEGRATIONS_NOTE.format(bot=strip_bidi(self.bot.user.name if self.bot.user else "this bot"))
            text = f"✅ Moderator role: {role.mention}. Its members may now use `/budget`. {note}"
        else:
            text = "✅ Moderator role removed."
        shown = Subject(SubjectKind.ROLE, role.id).key() if role else None
        await self._switch(
            interaction, "moderator_role_id", role.id if role else None, "moderator-role.set", shown, text
        )

    @app_commands.command(name="modlog")
    @app_commands.describe(channel="Where changes and spend alerts are posted (empty: stop posting)")
    async def modlog(self, interaction: discord.Interaction, channel: discord.TextChannel | None = None) -> None:
        """Choose the mod-log channel."""
        text = f"✅ Mod-log: {channel.mention}." if channel else "✅ Mod-log turned off."
        shown = Subject(SubjectKind.CHANNEL, channel.id).key() if channel else None
        await self._switch(interaction, "modlog_channel_id", channel.id if channel else None, "modlog.set", shown, text)


def _asks_text(micros: int | None) -> str:
    limit = format_usd(DEFAULT_ADMIN_ABOVE_MICROS if micros is None else micros)
    default = " (the default)" if micros is None else ""
    return (
        f"Members refused by their budget can **Ask for more**; moderators approve requests up to {limit}{default}"
        " in the mod-log, and an administrator anything above."
    )


async def setup(bot: FluxcordBot) -> None:
    """Register the command group and the forecast's Save / Cancel."""
    group = Budget(bot)
    bot.tree.add_command(group)
    register(bot, {ForecastButton: group.forecasts})


async def teardown(bot: FluxcordBot) -> None:
    """Unregister the buttons."""
    unregister(bot, ForecastButton)
