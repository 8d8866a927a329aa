"""One request flow for every entry point: `/imagine`, `/edit`, the message menu and every button.

Each entry point builds its request (defaults, style, validation: the cog's part), then hands it here:
the price confirmation (:mod:`cogs._confirm`, a durable offer), the record of what an edit works on,
admission within the acknowledgement budget, acknowledge or abandon (:mod:`cogs._admission`), the
fallback offer when the model's provider keeps failing (:mod:`cogs._fallback`), and the progress
answer. A Generate or fallback click comes back here too. The flow holds no state of its own (offers
are in the database), so every cog builds its own from the running bot's services.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import discord

from bot.engine.engine import ProviderTrouble
from bot.engine.sources import SourceKind
from bot.engine.store import Job
from bot.errors import InvalidOptions
from bot.models import GenerationRequest
from bot.offers import decode_request, encode_request
from bot.safety.privacy import require_details
from cogs._admission import MaybeShown, admit_and_acknowledge, send_answer
from cogs._confirm import Confirmations, PriceCheck
from cogs._context import requester, require_guild
from cogs._derive import group_requests, reroll_request
from cogs._fallback import offers, refusal
from cogs._presenter import progress_text

if TYPE_CHECKING:
    from bot.services import Services

log = logging.getLogger(__name__)

ViewFactory = Callable[[int], discord.ui.View]
UNKNOWN_JOB = "That image is no longer known to the bot, so it can't be rerolled."


@dataclass(frozen=True)
class Source:
    """What an edit works on: its kind, the source image's URL, the job it came from."""

    kind: SourceKind
    url: str | None = None
    job_id: int | None = None


@dataclass(frozen=True)
class GroupPlan:
    """How a group of images is admitted: drafts, and the model and options a Final renders with."""

    draft: bool = False
    final_model: str | None = None
    final_options: dict[str, Any] | None = None


class RequestFlow:
    """Confirmation → admission within the budget → acknowledge or abandon → progress, for every request."""

    def __init__(self, services: Services, *, cancel_view: ViewFactory) -> None:
        self.services = services
        self.engine = services.engine
        self.settings = services.settings
        self.sources = services.members.sources
        check = PriceCheck.of(services)  # price before spending (CONFIRM_ABOVE_USD), only if it can be paid
        self.confirmations = Confirmations(
            services.members.offers, threshold_micros=self.settings.confirm_above_micros, check=check
        )
        self._cancel_view = cancel_view

    async def submit(
        self,
        interaction: discord.Interaction,
        request: GenerationRequest,
        *,
        private: bool = False,
        source: Source | None = None,
        confirmed: bool = False,
    ) -> None:
        """One image: confirm (if expensive), record its source, admit, answer with its place in the queue."""
        payload = lambda: _payload([request], private, source)  # noqa: E731 - built only when asking
        if not confirmed and await self.confirmations.ask(interaction, request, payload):
            return  # an expensive request: asked privately first, nothing reserved (cogs/_confirm.py)
        if source is not None:  # the job id is the interaction id: recorded first, so even a cache hit's
            await self.sources.record(  # card (delivered the moment it is acknowledged) shows the source
                interaction.id, source.kind, source_url=source.url, source_job_id=source.job_id
            )
        try:
            await self._admit(interaction, request, private=private)
        except BaseException:
            if source is not None:
                await self.sources.forget(interaction.id)
            raise

    async def _admit(self, interaction: discord.Interaction, request: GenerationRequest, *, private: bool) -> None:
        who = requester(interaction, private=private)
        try:
            await admit_and_acknowledge(
                interaction,
                self.engine.admit(request, who),
                private=private,
                acknowledge=lambda job: self._answer(interaction, job.id, [job], private=private, group=False),
                abandon=lambda job, answered: self.engine.abandon(job.id, answered=answered),
                what=f"Job {who.job_id}",
            )
        except ProviderTrouble as trouble:  # BFL keeps failing for this model: the server's fallback, if any
            raise await refusal(interaction, request, trouble, private=private, services=self.services) from None

    async def submit_group(
        self,
        interaction: discord.Interaction,
        requests: list[GenerationRequest],
        *,
        private: bool,
        group: GroupPlan,
        confirmed: bool = False,
    ) -> None:
        """N images: confirm the total (if expensive), admit all-or-nothing, answer with one progress line."""
        payload = lambda: _payload(requests, private, None, group)  # noqa: E731 - built only when asking
        if not confirmed and await self.confirmations.ask(interaction, requests[0], payload, count=len(requests)):
            return  # the N× total is at or above CONFIRM_ABOVE_USD: asked privately, nothing reserved
        who = requester(interaction, private=private)
        admission = self.engine.admit_group(
            requests, who, draft=group.draft, final_model=group.final_model, final_options=group.final_options
        )
        try:
            await admit_and_acknowledge(
                interaction,
                admission,
                private=private,
                acknowledge=lambda members: self._answer(interaction, who.job_id, members, private=private, group=True),
                abandon=lambda _members, answered: self.engine.abandon_group(who.job_id, answered=answered),
                what=f"Group {who.job_id}",
            )
        except ProviderTrouble as trouble:  # BFL keeps failing for this model: the server's fallback, if any
            if group.draft:
                raise  # drafts already run on the cheap model: no second choice is offered for them
            error = await refusal(
                interaction, requests[0], trouble, private=private, services=self.services, images=len(requests)
            )
            raise error from None

    async def _answer(
        self, interaction: discord.Interaction, job_id: int, members: list[Job], *, private: bool, group: bool
    ) -> None:
        """Answer with the progress line (and Cancel), then let the job, or the group's images, run."""
        engine = self.engine
        progress = await (engine.initial_group_progress(members) if group else engine.initial_progress(members[0]))
        text = progress_text(progress)
        view = self._cancel_view(job_id) if group or progress.cancellable else None
        message_id = await send_answer(interaction, text, ephemeral=private, view=view)
        if engine.painter is not None:
            engine.painter.shown(job_id, text)
        acknowledged = engine.acknowledged_group if group else engine.acknowledged
        try:
            await acknowledged(job_id, message_id=message_id)  # read back by its id once the token is dead
        except Exception as exc:  # the member sees the answer (even one read back): it must say what happened
            log.exception("Request %s: answered, but the acknowledgement could not be recorded", job_id)
            raise MaybeShown from exc

    async def reroll(self, interaction: discord.Interaction, job_id: int) -> None:
        """🎲: the same request as an earlier image with a new seed, paid by whoever clicked (an edit's: its inputs)."""
        job = await self.engine.store.get(job_id)
        if job is None or job.guild_id != interaction.guild_id:
            raise InvalidOptions(UNKNOWN_JOB)
        require_details(job)  # its prompt was erased (retention or /privacy forget)
        request = await reroll_request(job)
        source = None
        if request.input_images:  # recorded with its source, like the edit it repeats
            original = await self.sources.get(job.id)
            source = Source("reroll", original.source_url if original else None, job.id)
        await self.submit(interaction, request, private=job.private, source=source)

    async def confirm(self, interaction: discord.Interaction, action: str, key: str) -> None:
        """A click on Generate or Cancel under a price confirmation: Generate runs the offered request."""
        payload = await self.confirmations.answer(interaction, action, key)
        if payload is None:
            return
        requests = [dataclasses.replace(decode_request(r), style=payload["style"]) for r in payload["requests"]]
        private = bool(payload["private"])
        if payload["group"] is not None:
            group = GroupPlan(**payload["group"])
            await self.submit_group(interaction, requests, private=private, group=group, confirmed=True)
            return
        source = Source(*payload["source"]) if payload["source"] is not None else None
        await self.submit(interaction, requests[0], private=private, source=source, confirmed=True)

    async def use_fallback(self, interaction: discord.Interaction, offer_id: str) -> None:
        """A click on a fallback offer: take it (its member only, once) and run it through the normal path."""
        offer = await offers(self.services).take(
            offer_id, guild_id=require_guild(interaction), user_id=interaction.user.id
        )
        private = offer.private
        if offer.source_kind is not None:  # an edit, variation or an edit's reroll: recorded with its source
            source = Source(offer.source_kind, offer.source_url, offer.source_job_id)
            await self.submit(interaction, offer.request, private=private, source=source)
        elif offer.images > 1:  # a group: all of its images on the fallback model, shown together
            requests = group_requests(offer.request, offer.images, seed_given=False)
            await self.submit_group(interaction, requests, private=private, group=GroupPlan())
        else:
            await self.submit(interaction, offer.request, private=private)


def _payload(
    requests: list[GenerationRequest], private: bool, source: Source | None, group: GroupPlan | None = None
) -> dict[str, Any]:
    """What a price confirmation keeps to run the request(s) on Generate (JSON)."""
    return {
        "requests": [encode_request(r) for r in requests],
        "style": requests[0].style,
        "private": private,
        "source": [source.kind, source.url, source.job_id] if source is not None else None,
        "group": dataclasses.asdict(group) if group is not None else None,
    }
