"""The Discord side of the fallback offer: the refusal with its one-click button, and a click on it.

When admission refuses a request because its model's circuit breaker is open, :func:`refusal` asks
:class:`bot.engine.fallback.FallbackOffers` for an offer on the server's fallback model and returns the
error to raise: the plain "… is having trouble right now" refusal, or that text plus a **Use <model> ·
<price>** button — only when that price can be paid: else the refusal says what the fallback would cost
and why it can't be paid (the reservation's own check, :class:`cogs._confirm.PriceCheck`), with no button.
Both go through the one app-command error path (``bot/tree.py``), privately. The
button's custom id holds only the offer's random id; a click takes the offer (once, its member only)
and :class:`cogs._flow.RequestFlow` runs the request through the normal path: the price confirmation,
admission, limits and queue.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

import discord

from bot.billing.money import format_usd
from bot.engine.breaker import BreakerState
from bot.engine.engine import ProviderTrouble
from bot.engine.fallback import OFFER_TTL_SECONDS, FallbackOffers
from bot.errors import FluxcordError, LimitReached
from bot.models import GenerationRequest
from cogs._components import PersistentButton, a_key, action_template
from cogs._confirm import PriceCheck
from cogs._context import require_guild
from cogs._render import error_text

if TYPE_CHECKING:
    from bot.services import Services

log = logging.getLogger(__name__)


class FallbackOffered(FluxcordError):
    """The breaker's refusal with the fallback button: the error path sends ``view`` with the text."""

    def __init__(self, user_message: str, view: discord.ui.View) -> None:
        super().__init__(user_message)
        self.view = view


def offers(services: Services) -> FallbackOffers:
    """The offers of the running bot (stateless over its database; breakers read from its engine)."""
    engine = services.engine
    return FallbackOffers(
        services.members.offers,
        services.server.settings,
        healthy=lambda model: engine.breakers.state(model) is BreakerState.CLOSED,
    )


async def refusal(
    interaction: discord.Interaction,
    request: GenerationRequest,
    trouble: ProviderTrouble,
    *,
    private: bool,
    services: Services,
    images: int = 1,
) -> FluxcordError:
    """The error to raise for ``trouble``: with a fallback button when the server allows one that can serve it."""
    guild_id = require_guild(interaction)
    check = PriceCheck.of(services)

    async def payable(fallback: GenerationRequest) -> None:
        """A price is offered only when it can be paid: else the refusal the reservation would give."""
        try:
            await check.require(interaction, fallback.estimated_cost_micros * images, images=images)
        except FluxcordError as over:
            raise LimitReached(
                f"{trouble.user_message}\n↪️ This server offers **{fallback.model.label}** instead, but it can't be"
                f" paid for: {error_text(over)}"
            ) from over

    try:
        source = await services.members.sources.get(interaction.id)
        offer = await offers(services).offer(
            request,
            guild_id=guild_id,
            user_id=interaction.user.id,
            private=private,
            source_kind=source.kind if source is not None else None,
            source_url=source.source_url if source is not None else None,
            source_job_id=source.source_job_id if source is not None else None,
            images=images,
            payable=payable,
        )
    except FluxcordError as unpayable:  # the fallback's price is over what the member (or server) has left
        return unpayable
    except Exception:  # the offer is a courtesy: never answer worse than the plain refusal
        log.exception("Could not make a fallback offer for interaction %s", interaction.id)
        return trouble
    if offer is None:
        return trouble
    label = offer.request.model.label
    price = format_usd(offer.price_micros)
    what = "this request" if images == 1 else f"this request for {images} images"
    text = (
        f"{trouble.user_message}\n↪️ This server offers **{label}** instead: {what} costs **{price}** there."
        f" Nothing is reserved until you press the button (it works for {OFFER_TTL_SECONDS // 60} minutes)."
    )
    view = discord.ui.View(timeout=None)
    view.add_item(FallbackButton("fallback", offer.id, label=f"Use {label} · {price}"))
    return FallbackOffered(text, view)


class FallbackButton(PersistentButton, template=action_template(("fallback",))):
    """**Use <model> · <price>** under a breaker's refusal; its custom id holds only the offer's id."""

    ARGUMENTS = (a_key(16),)

    def __init__(self, action: str, offer_id: str, *, label: str = "Use the fallback model") -> None:
        super().__init__(
            discord.ui.Button(
                label=label[:80], style=discord.ButtonStyle.primary, custom_id=f"fluxcord:{action}:{offer_id}"
            )
        )
        self.offer_id = offer_id

    @classmethod
    def restore(cls, action: str, values: list[Any], item: discord.ui.Item[Any]) -> FallbackButton:
        """Rebuild from a click (also after a restart, or on another process), keeping the label."""
        return cls(action, values[0], label=getattr(item, "label", None) or "Use the fallback model")

    async def run(self, interaction: discord.Interaction) -> None:
        """Use the offer: the request flow takes it and runs it (``target.use_fallback``)."""
        await self.target.use_fallback(interaction, self.offer_id)
