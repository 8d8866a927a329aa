"""`/imagine count:<1-4>` and `draft:true`: N images of one prompt, shown together as one media gallery.

The cog side of :mod:`bot.engine.groups`. :class:`GalleryFlow` builds the N requests (N seeds; plain
submits for models without one) and hands them to the request flow (:mod:`cogs._flow`), which quotes
the total through the confirmation rule, admits the group all-or-nothing and answers with one
progress line. The engine posts the finished group once, as a
Components V2 message (:func:`gallery_view`): a media gallery whose alt texts are the prompt, and
under it **Use #n** (a private copy of image n with the single-image buttons) and, for drafts,
**Final #n** (re-render candidate n on the chosen model: same prompt, same seed, or the draft as a
reference image for a model without a seed). The buttons are persistent :class:`GalleryButton` s whose
custom ids hold only an action and a job id.
"""

from __future__ import annotations

import asyncio
import dataclasses
import io
import logging
from collections.abc import Callable, Sequence
from typing import Any, ClassVar

import discord

from bot.billing.money import format_usd
from bot.engine.effects import TELL_BACKOFF_SECONDS
from bot.engine.groups import Group, GroupResult
from bot.engine.outcomes import CANCELLED_TEXT
from bot.engine.progress import Result
from bot.engine.states import JobStatus
from bot.engine.store import Job
from bot.errors import InvalidOptions
from bot.images.codec import InvalidImage, fit_for_upload
from bot.images.inputs import BadInputImage, prepare
from bot.models import GenerationRequest, build_request, final_request, get_model
from bot.safety.privacy import require_details
from bot.text import strip_bidi
from cogs._admission import UNREACHABLE, acknowledge_click
from cogs._components import PersistentButton, a_number, action_template, an_id
from cogs._context import is_moderator, require_guild
from cogs._derive import distinct_seeds, group_requests, stored_request
from cogs._flow import GroupPlan, RequestFlow
from cogs._presenter import DiscordPresenter, ai_generated, model_label, render_embed

log = logging.getLogger(__name__)
__all__ = ["GalleryButton", "GalleryFlow", "distinct_seeds", "gallery_view", "group_requests"]

UseViewFactory = Callable[[int, "int | None"], discord.ui.View]  # (job id, Final's number for a draft)

ALT_TEXT_MAX = 1024  # Discord's limit on a media gallery item's description
GONE = "That image is no longer known to the bot."
CANCEL_TEXT = {
    "not_allowed": "Only the member who asked for these images, or a moderator, can cancel them.",
    "too_late": "Too late to cancel: the images are already being made (the provider cannot stop them).",
    "unknown": "That request is no longer known to the bot.",
}


def final_options(request: GenerationRequest) -> dict[str, Any]:
    """The member's request, which a Final renders with draft n's seed: its record, kept in the group row."""
    return request.to_record()


def failure_line(result: GroupResult) -> str:
    """``1 of 4 images failed: refunded.`` (empty when every image made it)."""
    if not result.failed:
        return ""
    total = result.group.size
    noun = "image" if total == 1 else "images"
    if result.refunded == result.failed:
        return f"{result.failed} of {total} {noun} failed: refunded."
    if not result.refunded:
        return f"{result.failed} of {total} {noun} failed (not refunded: the provider's filter blocked them)."
    return f"{result.failed} of {total} {noun} failed ({result.refunded} refunded)."


def _clean(text: str) -> str:
    return discord.utils.escape_mentions(discord.utils.escape_markdown(strip_bidi(text)))


class GalleryButton(PersistentButton, template=action_template(("use", "final"))):
    """**Use #n** / **Final #n** under a gallery: the custom id holds only the action, a job id and n."""

    LOOKS: ClassVar[dict[str, tuple[str, discord.ButtonStyle]]] = {
        "use": ("Use", discord.ButtonStyle.secondary),
        "final": ("Final", discord.ButtonStyle.primary),
    }
    ARGUMENTS = (an_id, a_number(1, 4))

    def __init__(self, action: str, job_id: int, number: int) -> None:
        label, style = self.LOOKS[action]
        super().__init__(
            discord.ui.Button(label=f"{label} #{number}", style=style, custom_id=f"fluxcord:{action}:{job_id}:{number}")
        )
        self.action = action
        self.job_id = job_id
        self.number = number

    async def run(self, interaction: discord.Interaction) -> None:
        """Hand the click to the gallery flow it was registered with (``target``)."""
        if self.action == "use":
            await self.target.use(interaction, self.job_id, self.number)
        else:
            await self.target.final(interaction, self.job_id)


def gallery_view(
    result: GroupResult, filenames: Sequence[str], *, requester: str = "", mention: int | None = None
) -> discord.ui.LayoutView:
    """The group's Components V2 message: a summary, the media gallery, Use #n (and Final #n for drafts)."""
    group = result.group
    prompt = strip_bidi(result.prompt)
    lines = [f"**{_clean(result.prompt[:1500])}**"]
    if requester:
        lines.append(f"Requested by {_clean(requester)[:100]}")
    cost = sum(r.cost_micros for r in result.results)
    what = "drafts" if group.draft else "images"
    lines.append(f"{ai_generated(result.model)} · {len(result.results)} {what} · {format_usd(cost)}")
    if group.draft and group.final_model:
        lines.append(f"Press **Final #n** to render a draft on {model_label(group.final_model)}.")
    failed = failure_line(result)
    if failed:
        lines.append(failed)
    if mention is not None:
        lines.insert(0, f"<@{mention}> your images are ready.")
    view = discord.ui.LayoutView(timeout=None)
    view.add_item(discord.ui.TextDisplay("\n".join(lines)))
    gallery: discord.ui.MediaGallery[discord.ui.LayoutView] = discord.ui.MediaGallery()
    alt = f"{ai_generated(result.model)}: {prompt}"  # every item is disclosed as AI-generated (EU AI Act Art. 50)
    for filename in filenames:
        gallery.add_item(media=f"attachment://{filename}", description=alt[:ALT_TEXT_MAX])
    view.add_item(gallery)
    uses: discord.ui.ActionRow[discord.ui.LayoutView] = discord.ui.ActionRow()
    for number, res in enumerate(result.results, start=1):
        uses.add_item(GalleryButton("use", res.job.id, number))
    view.add_item(uses)
    if group.draft and group.final_model:
        finals: discord.ui.ActionRow[discord.ui.LayoutView] = discord.ui.ActionRow()
        for number, res in enumerate(result.results, start=1):
            finals.add_item(GalleryButton("final", res.job.id, number))
        view.add_item(finals)
    return view


def all_failed_text(result: GroupResult) -> str:
    """What the group's message says when no image made it."""
    line = failure_line(result)
    return f"❌ No image could be made. {line}" if line else "❌ No image could be made."


class GalleryFlow:
    """`/imagine count` / `draft` requests, and the Use #n, Final #n and group Cancel buttons."""

    def __init__(self, flow: RequestFlow, presenter: DiscordPresenter, *, use_view: UseViewFactory) -> None:
        self.flow = flow
        self.presenter = presenter
        self.engine = flow.engine
        self.settings = flow.settings
        self._use_view = use_view

    async def imagine(
        self,
        interaction: discord.Interaction,
        request: GenerationRequest,
        *,
        count: int,
        draft: bool,
        private: bool,
        seed_given: bool,
    ) -> None:
        """Quote, admit and acknowledge ``count`` images of the validated ``request`` (drafts: on DRAFT_MODEL)."""
        if not draft:
            requests = group_requests(request, count, seed_given=seed_given)
            await self.flow.submit_group(interaction, requests, private=private, group=GroupPlan())
            return
        # The drafts take none of the final model's own options; the final keeps them for Final #n.
        guild = await self.flow.services.server.settings.guild_settings(require_guild(interaction))
        spec = get_model(guild.draft_model or self.settings.draft_model)  # `/budget draft`, else DRAFT_MODEL
        sketch = build_request(
            model=spec.key,
            prompt=request.prompt,  # already inside the server style's template, if one was chosen
            aspect_ratio=request.aspect_ratio if request.aspect_ratio in spec.aspect_ratios else None,
            seed=request.seed if request.model.has_seed else None,
            max_prompt_length=self.settings.max_prompt_length,
        )
        sketch = dataclasses.replace(sketch, style=request.style)
        requests = group_requests(sketch, count, seed_given=seed_given and request.model.has_seed)
        group = GroupPlan(draft=True, final_model=request.model.key, final_options=final_options(request))
        await self.flow.submit_group(interaction, requests, private=private, group=group)

    async def cancel(self, interaction: discord.Interaction, group: Group) -> None:
        """Cancel on the group's queued message: every still-queued image of it is cancelled and released."""
        moderator = await is_moderator(interaction, self.flow.services.server.settings)
        if interaction.user.id != group.user_id and not moderator:
            raise InvalidOptions(CANCEL_TEXT["not_allowed"])  # answered privately, at once
        await acknowledge_click(interaction)  # the answer waits until a progress edit in flight has landed
        outcome = await self.engine.cancel_group(group.id, actor_id=interaction.user.id, is_moderator=moderator)
        if not outcome.cancelled:
            raise InvalidOptions(CANCEL_TEXT[outcome.reason])
        if outcome.left:  # the rest is posted on this message: its line says "· N cancelled" until then
            return  # an edit here could land after the gallery and erase it
        try:
            await interaction.edit_original_response(content=CANCELLED_TEXT, view=None)
        except UNREACHABLE as exc:  # the click's answer was lost: the group's own message must still say it
            log.warning("Group %s: could not answer the Cancel click (%s); editing its message", group.id, exc)
            await self._tell_cancelled(group)

    async def _tell_cancelled(self, group: Group) -> None:
        """The group's own message says it was cancelled, tried again after back-offs (its last word)."""
        for wait in (*TELL_BACKOFF_SECONDS, None):
            try:
                await self.presenter.tell_group(group, CANCELLED_TEXT)
                return
            except UNREACHABLE as exc:
                log.warning("Group %s: could not say it was cancelled (%s)", group.id, exc)
                if wait is None:
                    raise
            await asyncio.sleep(wait)  # a back-off before asking Discord again, not a synchronisation

    async def _member(self, interaction: discord.Interaction, job_id: int) -> tuple[Job, Group]:
        job = await self.engine.store.get(job_id)
        if job is None or job.guild_id != interaction.guild_id or job.group_id is None:
            raise InvalidOptions(GONE)
        group = await self.engine.groups.get(job.group_id)
        if group is None:
            raise InvalidOptions(GONE)
        require_details(job)  # its prompt was erased (retention or /privacy forget)
        return job, group

    async def _image_of(self, interaction: discord.Interaction, job: Job) -> bytes | None:
        """Image ``job``'s bytes: from this process's cache, else from the clicked message's attachment.

        Another process (a worker) may have made the image, with its own cache; the message it is
        shown in holds it as ``fluxcord-<job id>.<ext>`` on Discord's CDN.
        """
        data = await self.engine.cache.get(job.cache_key)
        if data is not None or interaction.message is None:
            return data
        prefix = f"fluxcord-{job.id}."
        for attachment in interaction.message.attachments:
            if attachment.filename.startswith(prefix):
                try:
                    return await attachment.read()
                except discord.HTTPException as exc:
                    log.info("Job %s: its image could not be read back from Discord: %s", job.id, exc)
        return None

    async def use(self, interaction: discord.Interaction, job_id: int, number: int) -> None:
        """Use #n: a private copy of image n with its own Reroll, Vary, Edit and Details (and Final for drafts)."""
        job, group = await self._member(interaction, job_id)
        # Delivering: paid and in the gallery the member sees, being recorded as delivered right now.
        shown = job.status in (JobStatus.DELIVERING, JobStatus.DELIVERED)
        data = await self._image_of(interaction, job) if shown else None
        if data is None:
            raise InvalidOptions("That image is no longer available. Reroll the prompt to get a new one.")
        try:
            encoded = await fit_for_upload(data, interaction.filesize_limit, basename=f"fluxcord-{job.id}")
        except InvalidImage as exc:
            raise InvalidOptions("That image can no longer be shown.") from exc
        requester = await self.presenter.member_name(job)
        result = Result(job, data, job.settled_cost_micros, job.generation_seconds, from_cache=False)
        embed = render_embed(result, encoded.filename, encoded.width, encoded.height, requester)
        view = self._use_view(job.id, number if group.draft and group.final_model is not None else None)
        await interaction.response.send_message(
            embed=embed,
            file=discord.File(io.BytesIO(encoded.data), filename=encoded.filename),
            view=view,
            ephemeral=True,
        )

    async def final(self, interaction: discord.Interaction, job_id: int) -> None:
        """Final #n: draft n on the chosen model, same prompt; same seed, or the draft as the reference image."""
        job, group = await self._member(interaction, job_id)
        if not group.draft or group.final_model is None:
            raise InvalidOptions("That image is not a draft.")
        spec = get_model(group.final_model)
        images = []
        if not spec.has_seed:  # FLUX 3: no seed to carry over, so the draft itself guides the final
            data = await self._image_of(interaction, job)
            if data is None:
                raise InvalidOptions("That draft is no longer available, so it can't be finalised.")
            try:
                images = [await prepare(data, spec)]
            except BadInputImage as exc:
                raise InvalidOptions("That draft can't be used as a reference any more.") from exc
        request = final_request(group.final_options, await stored_request(job), spec.key, images)
        await self.flow.submit(interaction, request, private=group.private)
