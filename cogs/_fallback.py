"""The Discord side of the fallback offer: the refusal with its one-click button, and a click on it.

When admission refuses a request because its model's circuit breaker is open, :func:`refusal` asks
:class:`bot.engine.fallback.FallbackOffers` for an offer on the server's fallback model and returns the
error to raise: the plain "… is having trouble right now" refusal, or that text plus a **Use <model> ·
<price>** button — only when that price can be paid: else the refusal says what the fallback would cost
and why it can't be paid (the reservation's own check, :class:`cogs._confirm.PriceCheck`), with no button.
Both go through the one app-command error path (``bot/tree.py``), privately. The
button's custom id holds only the offer's random id; a click takes the offer (once, its member only)
and runs the request through the normal path: ``/imagine``'s (or, for an edit, ``/edit``'s) price
confirmation, admission, limits and queue.
"""

from __future__ import annotations

import logging
import re
from typing import TYPE_CHECKING, Any, cast

import discord

from bot.billing.money import format_usd
from bot.engine.breaker import BreakerState
from bot.engine.engine import ProviderTrouble
from bot.engine.fallback import OFFER_TTL_SECONDS, FallbackOffers
from bot.engine.sources import JobSources
from bot.errors import FluxcordError, InvalidOptions, LimitReached
from bot.models import GenerationRequest
from cogs._confirm import PriceCheck
from cogs._context import ours, require_guild
from cogs._render import error_text

if TYPE_CHECKING:
    from bot.app import FluxcordBot
    from cogs.edit import Edit
    from cogs.imagine import Imagine

log = logging.getLogger(__name__)

UNAVAILABLE_TEXT = "This button isn't available right now."


class FallbackOffered(FluxcordError):
    """The breaker's refusal with the fallback button: the error path sends ``view`` with the text."""

    def __init__(self, user_message: str, view: discord.ui.View) -> None:
        super().__init__(user_message)
        self.view = view


def offers(bot: FluxcordBot) -> FallbackOffers:
    """The offers of the running bot (stateless over its database; breakers read from its engine)."""
    services = bot.services
    engine = services.engine
    return FallbackOffers(
        services.db,
        services.server_settings,
        healthy=lambda model: engine.breakers.state(model) is BreakerState.CLOSED,
        clock=services.clock,
    )


async def refusal(
    interaction: discord.Interaction,
    request: GenerationRequest,
    trouble: ProviderTrouble,
    *,
    private: bool,
    images: int = 1,
) -> FluxcordError:
    """The error to raise for ``trouble``: with a fallback button when the server allows one that can serve it."""
    guild_id = require_guild(interaction)
    bot = ours(interaction).client
    check = PriceCheck.of(bot.services)

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
        source = await JobSources(bot.services.db).get(interaction.id)
        offer = await offers(bot).offer(
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
    view.add_item(FallbackButton(offer.id, label=f"Use {label} · {price}"))
    return FallbackOffered(text, view)


async def use(interaction: discord.Interaction[FluxcordBot], offer_id: str) -> None:
    """A click on the button: take the offer (its member only, once) and run it through the normal path."""
    guild_id = require_guild(interaction)
    bot = interaction.client
    offer = await offers(bot).take(offer_id, guild_id=guild_id, user_id=interaction.user.id)
    if offer.source_kind is not None:  # an edit, variation or an edit's reroll: recorded with its source
        edit = cast("Edit | None", bot.get_cog("Edit"))
        if edit is None:
            raise InvalidOptions(UNAVAILABLE_TEXT)
        await edit.submit(
            interaction,
            offer.request,
            kind=offer.source_kind,
            source_url=offer.source_url,
            source_job_id=offer.source_job_id,
            private=offer.private,
        )
        return
    imagine = cast("Imagine | None", bot.get_cog("Imagine"))
    if imagine is None:
        raise InvalidOptions(UNAVAILABLE_TEXT)
    if offer.images > 1:  # a group: all of its images on the fallback model, shown together
        await imagine.gallery.imagine(
            interaction, offer.request, count=offer.images, draft=False, private=offer.private, seed_given=False
        )
        return
    await imagine._generate(interaction, offer.request, private=offer.private)


class FallbackButton(discord.ui.DynamicItem[discord.ui.Button], template=r"fluxcord:fallback:(?P<offer>[0-9a-f]{16})"):
    """**Use <model> · <price>** under a breaker's refusal; its custom id holds only the offer's id."""

    def __init__(self, offer_id: str, *, label: str = "Use the fallback model") -> None:
        super().__init__(
            discord.ui.Button(
                label=label[:80], style=discord.ButtonStyle.primary, custom_id=f"fluxcord:fallback:{offer_id}"
            )
        )
        self.offer_id = offer_id

    @classmethod
    async def from_custom_id(
        cls, interaction: discord.Interaction, item: discord.ui.Item[Any], match: re.Match[str]
    ) -> FallbackButton:
        """Rebuild from a click (also after a restart, or on another process)."""
        label = item.label if isinstance(item, discord.ui.Button) else None
        return cls(match["offer"], label=label or "Use the fallback model")

    async def callback(self, interaction: discord.Interaction) -> None:
        """Use the offer; errors take the same path as slash-command errors."""
        interaction = ours(interaction)
        try:
            await use(interaction, self.offer_id)
        except Exception as exc:
            await interaction.client.tree.on_error(interaction, exc)
