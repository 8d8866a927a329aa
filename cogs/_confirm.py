"""Price before spending: an expensive request is first confirmed privately; nothing is reserved until then.

A request whose estimate is at or above ``CONFIRM_ABOVE_USD`` gets an ephemeral message with the price
and what is left of the member's budget, and **Generate** / **Cancel** buttons. The pending request
lives in memory under a short random id (the buttons' custom ids hold only that id); nothing is written,
reserved or sent to BFL until Generate, which then runs the request through the normal admission (the
same limits: the budget may have changed in between). A confirmation older than
:data:`CONFIRM_TTL_SECONDS`, already answered, or lost to a restart says it has expired.
"""

from __future__ import annotations

import logging
import re
import secrets
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import discord

from bot.billing.ledger import Ledger, Metric, Scope
from bot.billing.limits import LimitsService
from bot.billing.money import format_usd
from bot.errors import InvalidOptions
from bot.models import GenerationRequest
from cogs._context import require_guild, role_ids

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


def is_confirmation_click(interaction: discord.Interaction) -> bool:
    """Whether this interaction is a click on Generate (then the request is already confirmed)."""
    data = interaction.data or {}
    return str(data.get("custom_id", "")).startswith(GO_PREFIX)


class Confirmations:
    """Pending price confirmations, in memory (a restart simply expires them)."""

    def __init__(
        self,
        *,
        threshold_micros: int,
        ledger: Ledger,
        limits: LimitsService,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.threshold_micros = threshold_micros
        self._ledger = ledger
        self._limits = limits
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
        """
        if is_confirmation_click(interaction) or not self.needed(request, count):
            return False
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
        limits = await self._limits.limits_for(guild_id, interaction.user.id, role_ids(interaction))
        statuses = await self._ledger.statuses(guild_id, interaction.user.id, limits)
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
        cls, interaction: discord.Interaction, item: discord.ui.Button, match: re.Match[str]
    ) -> ConfirmButton:
        """Rebuild from a click."""
        return cls(match["action"], match["key"])

    async def callback(self, interaction: discord.Interaction) -> None:
        """Hand the click to the confirmations of the running bot."""
        try:
            cog = interaction.client.get_cog("Imagine")  # type: ignore[attr-defined]
            confirmations = getattr(cog, "confirmations", None)
            if confirmations is None:
                raise InvalidOptions(EXPIRED_TEXT)
            await confirmations.answer(interaction, self.action, self.key)
        except Exception as exc:
            await interaction.client.tree.on_error(interaction, exc)  # type: ignore[attr-defined]
