"""Price before spending: an expensive request is first confirmed privately; nothing is reserved until then.

A request whose estimate is at or above ``CONFIRM_ABOVE_USD`` gets an ephemeral message with the price
and what is left of the member's budget, and **Generate** / **Cancel** buttons — but only when it can be
paid: first the reservation's own check (:class:`PriceCheck`, the ledger's refusal explanation over the
member's limits) runs, and a spend the member's, the server's or the bot's budget or image quota cannot
cover gets that refusal instead (what is left, when it resets, whom to ask), with no Generate button.
The pending request lives in memory under a short random id (the buttons' custom ids hold only that
id); nothing is written, reserved or sent to BFL until Generate, which then runs the request through the
normal admission (the same limits: the budget may have changed in between). A confirmation older than
:data:`CONFIRM_TTL_SECONDS`, already answered, or lost to a restart says it has expired.
"""

from __future__ import annotations

import logging
import re
import secrets
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

import discord

from bot.billing.ledger import Ledger, Metric, Scope
from bot.billing.limits import LimitsService
from bot.billing.money import format_usd
from bot.clock import Clock
from bot.errors import InvalidOptions
from bot.models import GenerationRequest
from cogs._context import ours, require_guild, role_ids

log = logging.getLogger(__name__)

CONFIRM_TTL_SECONDS = 600.0  # well inside the 15 minutes the Generate click's own token lives
MAX_PENDING = 1000
EXPIRED_TEXT = "This confirmation has expired. Run the command again to get a fresh price."
CANCELLED_TEXT = "Cancelled: nothing was reserved or sent."
GO_PREFIX = "fluxcord:go:"

Resume = Callable[[discord.Interaction], Awaitable[None]]


@dataclass
class Pending:
    """A request waiting for its member's Generate."""

    user_id: int
    guild_id: int
    resume: Resume
    created: float


@dataclass(frozen=True)
class PriceCheck:
    """The check a reservation makes, asked before a price is offered (nothing is written)."""

    ledger: Ledger
    limits: LimitsService
    max_pending_jobs: int
    cooldown_seconds: int
    clock: Clock

    @classmethod
    def of(cls, services: Any) -> PriceCheck:
        """The check of the running bot's services (its ledger, limits and member settings)."""
        settings = services.settings
        return cls(
            services.ledger,
            services.limits,
            settings.member_max_pending_jobs,
            settings.member_cooldown_seconds,
            services.clock,
        )

    async def require(self, interaction: discord.Interaction, estimated_micros: int, *, images: int = 1) -> None:
        """Raise the refusal admitting ``images`` images costing ``estimated_micros`` in all would meet now.

        The ledger's own explanation (:meth:`Ledger.explain_refusal`) over the member's limits: paused,
        a budget or image quota (member, server, bot) that cannot cover it, too many in progress, the
        cooldown. Returns when the reservation would be written.
        """
        guild_id = require_guild(interaction)
        limits = await self.limits.limits_for(guild_id, interaction.user.id, role_ids(interaction))
        await self.ledger.explain_refusal(
            guild_id=guild_id,
            user_id=interaction.user.id,
            estimated_micros=estimated_micros,
            limits=limits,
            max_pending_jobs=self.max_pending_jobs,
            cooldown_seconds=self.cooldown_seconds,
            now=self.clock(),
            images=images,
        )


def is_confirmation_click(interaction: discord.Interaction) -> bool:
    """Whether this interaction is a click on Generate (then the request is already confirmed)."""
    data: Mapping[str, object] = interaction.data or {}
    return str(data.get("custom_id", "")).startswith(GO_PREFIX)


class Confirmations:
    """Pending price confirmations, in memory (a restart simply expires them)."""

    def __init__(
        self, *, threshold_micros: int, check: PriceCheck, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.threshold_micros = threshold_micros
        self.check = check
        self._clock = clock
        self._pending: dict[str, Pending] = {}

    def needed(self, request: GenerationRequest, count: int = 1) -> bool:
        """Whether ``count`` × ``request`` must be confirmed first (the total is at or above the threshold)."""
        return request.estimated_cost_micros * count >= self.threshold_micros

    async def ask(
        self, interaction: discord.Interaction, request: GenerationRequest, resume: Resume, *, count: int = 1
    ) -> bool:
        """Ask privately if needed; True when asked (the caller stops there), False to go ahead now.

        ``count``: that many images of ``request`` (`/imagine count`), quoted and compared as the total.
        A price the member cannot pay is never offered: the reservation's refusal is raised instead.
        """
        if is_confirmation_click(interaction) or not self.needed(request, count):
            return False
        await self.check.require(interaction, request.estimated_cost_micros * count, images=count)
        guild_id = require_guild(interaction)
        self._expire()
        key = secrets.token_hex(4)
        self._pending[key] = Pending(interaction.user.id, guild_id, resume, self._clock())
        text = await self._text(interaction, request, count)
        view = discord.ui.View(timeout=None)
        view.add_item(ConfirmButton("go", key))
        view.add_item(ConfirmButton("no", key))
        if interaction.response.is_done():
            await interaction.followup.send(text, view=view, ephemeral=True)
        else:
            await interaction.response.send_message(text, view=view, ephemeral=True)
        return True

    async def _text(self, interaction: discord.Interaction, request: GenerationRequest, count: int = 1) -> str:
        guild_id = require_guild(interaction)
        limits = await self.check.limits.limits_for(guild_id, interaction.user.id, role_ids(interaction))
        statuses = await self.check.ledger.statuses(guild_id, interaction.user.id, limits)
        left = [
            f"{format_usd(s.remaining)} left of your {s.limit.period.adjective} budget"
            for s in statuses
            if s.limit.scope is Scope.MEMBER and s.limit.metric is Metric.USD
        ]
        budget = f" You have {', '.join(left)}." if left else ""
        if count > 1:
            each = request.estimated_cost_micros
            return (
                f"💰 These {count} {request.model.label} images cost up to **{format_usd(each * count)}** in all"
                f" ({count} × {format_usd(each)}).{budget} Nothing is reserved until you press Generate."
            )
        return (
            f"💰 This {request.model.label} request costs up to **{format_usd(request.estimated_cost_micros)}**."
            f"{budget} Nothing is reserved until you press Generate."
        )

    async def answer(self, interaction: discord.Interaction, action: str, key: str) -> None:
        """A click on Generate or Cancel."""
        self._expire()
        pending = self._pending.get(key)
        if pending is None or pending.guild_id != interaction.guild_id:
            raise InvalidOptions(EXPIRED_TEXT)
        if pending.user_id != interaction.user.id:
            raise InvalidOptions("Only the member who asked can confirm this.")
        del self._pending[key]
        if action == "no":
            await interaction.response.edit_message(content=CANCELLED_TEXT, view=None)
            return
        await pending.resume(interaction)

    def _expire(self) -> None:
        now = self._clock()
        for key in [k for k, p in self._pending.items() if now - p.created > CONFIRM_TTL_SECONDS]:
            del self._pending[key]
        while len(self._pending) >= MAX_PENDING:  # oldest first: dicts keep insertion order
            del self._pending[next(iter(self._pending))]


class ConfirmButton(
    discord.ui.DynamicItem[discord.ui.Button], template=r"fluxcord:(?P<action>go|no):(?P<key>[0-9a-f]{8})"
):
    """Generate / Cancel under a price confirmation (dynamic, so a click after a restart says it expired)."""

    def __init__(self, action: str, key: str) -> None:
        label, style = (
            ("Generate", discord.ButtonStyle.success) if action == "go" else ("Cancel", discord.ButtonStyle.secondary)
        )
        super().__init__(discord.ui.Button(label=label, style=style, custom_id=f"fluxcord:{action}:{key}"))
        self.action = action
        self.key = key

    @classmethod
    async def from_custom_id(
        cls, interaction: discord.Interaction, item: discord.ui.Item[Any], match: re.Match[str]
    ) -> ConfirmButton:
        """Rebuild from a click."""
        return cls(match["action"], match["key"])

    async def callback(self, interaction: discord.Interaction) -> None:
        """Hand the click to the confirmations of the running bot."""
        interaction = ours(interaction)
        try:
            cog = interaction.client.get_cog("Imagine")
            confirmations = getattr(cog, "confirmations", None)
            if confirmations is None:
                raise InvalidOptions(EXPIRED_TEXT)
            await confirmations.answer(interaction, self.action, self.key)
        except Exception as exc:
            await interaction.client.tree.on_error(interaction, exc)
