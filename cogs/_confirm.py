"""Price before spending: an expensive request is first confirmed privately; nothing is reserved until then.

A request whose estimate is at or above ``CONFIRM_ABOVE_USD`` gets an ephemeral message with the price
and what is left of the member's budget, and **Generate** / **Cancel** buttons — but only when it can be
paid: first the reservation's own check (:class:`PriceCheck`, the ledger's refusal explanation over the
member's limits) runs, and a spend the member's, the server's or the bot's budget or image quota cannot
cover gets that refusal instead (what is left, when it resets, whom to ask), with no Generate button.
The pending request is an offer of kind ``confirm`` (:mod:`bot.offers`, in the database, so it survives
a restart) under a short random id (the buttons' custom ids hold only that id); nothing is reserved or
sent to BFL until Generate, which then runs the request through the normal admission (the same limits:
the budget may have changed in between). A confirmation older than :data:`CONFIRM_TTL_SECONDS`, or
already answered, says it has expired.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import discord

from bot.billing.ledger import Demand, Ledger, Metric, Scope
from bot.billing.limits import LimitsService
from bot.billing.money import format_usd
from bot.clock import Clock
from bot.engine.config import EngineConfig
from bot.models import GenerationRequest
from bot.offers import OfferStore
from cogs._components import PersistentButton, a_key, action_template
from cogs._context import require_guild, role_ids

if TYPE_CHECKING:
    from bot.services import Services

log = logging.getLogger(__name__)

CONFIRM_TTL_SECONDS = 600.0  # well inside the 15 minutes the Generate click's own token lives
EXPIRED_TEXT = "This confirmation has expired. Run the command again to get a fresh price."
CANCELLED_TEXT = "Cancelled: nothing was reserved or sent."
NOT_YOURS_TEXT = "Only the member who asked can confirm this."
KIND = "confirm"


@dataclass(frozen=True)
class PriceCheck:
    """The check a reservation makes, asked before a price is offered (nothing is written)."""

    ledger: Ledger
    limits: LimitsService
    config: EngineConfig  # the member caps admission holds a reservation to (:meth:`EngineConfig.terms`)
    clock: Clock

    @classmethod
    def of(cls, services: Services) -> PriceCheck:
        """The check of the running bot's services (its ledger, limits and member settings)."""
        return cls(
            services.ledger, services.server.limits, EngineConfig.from_settings(services.settings), services.ops.clock
        )

    async def require(self, interaction: discord.Interaction, estimated_micros: int, *, images: int = 1) -> None:
        """Raise the refusal admitting ``images`` images costing ``estimated_micros`` in all would meet now.

        The ledger's own explanation (:meth:`Ledger.explain_refusal`) over the member's limits: paused,
        a budget or image quota (member, server, bot) that cannot cover it, too many in progress, the
        cooldown. Returns when the reservation would be written.
        """
        guild_id = require_guild(interaction)
        limits = await self.limits.limits_for(guild_id, interaction.user.id, role_ids(interaction))
        demand = Demand(guild_id, interaction.user.id, estimated_micros, images)
        await self.ledger.explain_refusal(demand, self.config.terms(limits), self.clock())


class Confirmations:
    """Pending price confirmations: offers of kind ``confirm`` in the database (they survive a restart)."""

    def __init__(self, offers: OfferStore, *, threshold_micros: int, check: PriceCheck) -> None:
        self.offers = offers
        self.threshold_micros = threshold_micros
        self.check = check

    def needed(self, request: GenerationRequest, count: int = 1) -> bool:
        """Whether ``count`` × ``request`` must be confirmed first (the total is at or above the threshold)."""
        return request.estimated_cost_micros * count >= self.threshold_micros

    async def ask(
        self,
        interaction: discord.Interaction,
        request: GenerationRequest,
        payload: Callable[[], dict[str, Any]],
        *,
        count: int = 1,
    ) -> bool:
        """Ask privately if needed; True when asked (the caller stops there), False to go ahead now.

        ``count``: that many images of ``request`` (`/imagine count`), quoted and compared as the total.
        ``payload()``: what Generate runs (kept in the offer; built only when asking). A price the
        member cannot pay is never offered: the reservation's refusal is raised instead.
        """
        if not self.needed(request, count):
            return False
        await self.check.require(interaction, request.estimated_cost_micros * count, images=count)
        key = await self.offers.put(
            KIND,
            guild_id=require_guild(interaction),
            user_id=interaction.user.id,
            payload=payload(),
            ttl_seconds=CONFIRM_TTL_SECONDS,
        )
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

    async def answer(self, interaction: discord.Interaction, action: str, key: str) -> dict[str, Any] | None:
        """A click on Generate (the payload to run) or Cancel (None: the message says nothing was sent)."""
        payload = await self.offers.take(
            KIND,
            key,
            guild_id=require_guild(interaction),
            user_id=interaction.user.id,
            max_age_seconds=CONFIRM_TTL_SECONDS,
            expired=EXPIRED_TEXT,
            not_yours=NOT_YOURS_TEXT,
        )
        if action == "no":
            await interaction.response.edit_message(content=CANCELLED_TEXT, view=None)
            return None
        return payload


class ConfirmButton(PersistentButton, template=action_template(("go", "no"))):
    """Generate / Cancel under a price confirmation; its custom id holds only the offer's id."""

    ARGUMENTS = (a_key(8),)

    def __init__(self, action: str, key: str) -> None:
        label, style = (
            ("Generate", discord.ButtonStyle.success) if action == "go" else ("Cancel", discord.ButtonStyle.secondary)
        )
        super().__init__(discord.ui.Button(label=label, style=style, custom_id=f"fluxcord:{action}:{key}"))
        self.action = action
        self.key = key

    async def run(self, interaction: discord.Interaction) -> None:
        """Hand the click to the request flow (``target.confirm``)."""
        await self.target.confirm(interaction, self.action, self.key)
