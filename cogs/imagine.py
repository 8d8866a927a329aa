"""`/imagine`: generate an image with a FLUX model and post it in the channel.

The cog parses and validates, admits the job through the engine (a refusal is private and has no side
effect), answers the interaction with the job's place in the queue, and hands over: the engine runs
the job and posts the result through :class:`cogs._presenter.DiscordPresenter`, also after a restart.
"""

from __future__ import annotations

import dataclasses
import logging
import re
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar, cast

import discord
from discord import app_commands
from discord.ext import commands

from bot.app import FluxcordBot
from bot.engine.engine import ProviderTrouble
from bot.engine.outcomes import CANCELLED_TEXT
from bot.engine.sources import JobSources
from bot.engine.states import JobStatus
from bot.engine.store import Job
from bot.errors import InvalidOptions
from bot.models import (
    MAX_SEED,
    GenerationRequest,
    build_request,
    rerolled,
)
from bot.safety.privacy import require_details
from bot.text import clean_prompt
from cogs._admission import UNREACHABLE, acknowledge_click, admit_and_acknowledge, send_answer
from cogs._choices import aspect_ratio_choices, model_choices, resolution_choices
from cogs._confirm import Confirmations, ConfirmButton, PriceCheck
from cogs._context import is_moderator, ours, requester, require_guild
from cogs._fallback import FallbackButton, refusal
from cogs._gallery import GalleryButton, GalleryFlow, gallery_view
from cogs._presenter import DiscordPresenter, progress_text
from cogs._styles import style_choices

if TYPE_CHECKING:
    from cogs.edit import Edit

log = logging.getLogger(__name__)
T = TypeVar("T")

# Admission (cache lookup + one transaction) normally takes milliseconds; if the database is slow we
# acknowledge first, because Discord gives us 3 s in total.
ACK_BUDGET_SECONDS = 1.5

_CANCEL_TEXT = {
    "not_allowed": "Only the member who asked for this image, or a moderator, can cancel it.",
    "too_late": "Too late to cancel: the image is already being made (the provider cannot stop it).",
    "unknown": "That request is no longer known to the bot.",
}


class Imagine(commands.Cog):
    """Image generation."""

    def __init__(self, bot: FluxcordBot) -> None:
        self.bot = bot
        self.engine = bot.services.engine
        self.settings = bot.services.settings
        self.presenter = DiscordPresenter(
            bot,
            result_view=result_buttons,
            cancel_view=cancel_buttons,
            source_lookup=JobSources(bot.services.db).source_url,  # an edit's card shows its source image
            gallery_view=gallery_view,  # /imagine count:N and draft: N images in one message
            group_showing_progress=self.engine.groups.is_showing_progress,
        )
        self.confirmations = Confirmations(  # price before spending (CONFIRM_ABOVE_USD), only if it can be paid
            threshold_micros=self.settings.confirm_above_micros, check=PriceCheck.of(bot.services)
        )
        # The prompt's synced max_length is MAX_PROMPT_LENGTH, so Discord's client stops the member there.
        # discord.py reads the bound from the annotation at import time; this cog's copy gets the setting.
        # Private: discord.py has no public way to change a parameter after definition (get_parameter is read-only).
        params = self.imagine._params
        params["prompt"] = dataclasses.replace(params["prompt"], max_value=self.settings.max_prompt_length)
        self.gallery = GalleryFlow(self, cancel_view=cancel_buttons, use_view=use_buttons)

    @app_commands.command(name="imagine")
    @app_commands.guild_only()
    @app_commands.describe(
        prompt="What the image should show",
        model="FLUX model (default: the bot's DEFAULT_MODEL; /quota lists prices)",
        aspect_ratio="Shape of the image (default 1:1)",
        seed="Seed for a reproducible image (picked for you if empty)",
        steps="Sampling steps (FLUX.1 [dev], FLUX.2 [flex] only)",
        guidance="Prompt adherence (FLUX.1 [dev], FLUX.2 [flex] only)",
        raw="Less processed, more natural look (FLUX1.1 [pro] Ultra only)",
        prompt_upsampling="Let the model expand your prompt",
        resolution="FLUX 3 Image only: output resolution tier (default 1k)",
        grounding="FLUX 3 Image only: let the model search the web for references (if moderators allow it)",
        private="Only you see the request and the image (still within your limits)",
        style="One of this server's styles (/style list) around your prompt; `none` for no style",
        count="How many images of this prompt, 1-4, shown together (each one costs the model's price)",
        draft="Cheap, fast candidates first (default 4); press Final on the one you like to render it on your model",
    )
    @app_commands.choices(
        model=model_choices(),
        aspect_ratio=aspect_ratio_choices(),
        resolution=resolution_choices(),
    )
    async def imagine(
        self,
        interaction: discord.Interaction,
        prompt: app_commands.Range[str, 1, 6000],
        model: str | None = None,
        aspect_ratio: str | None = None,
        seed: app_commands.Range[int, 0, MAX_SEED] | None = None,
        steps: app_commands.Range[int, 1, 50] | None = None,
        guidance: app_commands.Range[float, 1.0, 100.0] | None = None,
        raw: bool | None = None,
        prompt_upsampling: bool | None = None,
        resolution: str | None = None,
        grounding: bool | None = None,
        private: bool | None = None,
        style: app_commands.Range[str, 1, 100] | None = None,
        count: app_commands.Range[int, 1, 4] | None = None,
        draft: bool | None = None,
    ) -> None:
        """Generate an image from a text prompt with a FLUX model."""
        guild_id = require_guild(interaction)
        # Explicit options, else the member's /prefs defaults, else the bot's; the style's template applied.
        chosen = await self.bot.services.prefs.resolve(
            guild_id,
            interaction.user.id,
            model=model,
            aspect_ratio=aspect_ratio,
            private=private,
            style=style,
            count=count,
            draft=bool(draft),
        )
        # Validation before any charge: a bad option is refused privately.
        request = build_request(
            model=chosen.model,
            prompt=chosen.prompt(clean_prompt(prompt), max_prompt_length=self.settings.max_prompt_length),
            aspect_ratio=chosen.aspect_ratio,
            seed=seed,
            steps=steps,
            guidance=guidance,
            raw=raw,
            prompt_upsampling=prompt_upsampling,
            resolution=resolution,
            grounding=grounding,
            allow_grounding=True,  # whether this server allows it is checked at admission (/safety grounding)
            max_prompt_length=self.settings.max_prompt_length,
        )
        request = chosen.styled(request)
        if draft or chosen.count > 1:  # N images shown together (cogs/_gallery.py)
            await self.gallery.imagine(
                interaction,
                request,
                count=chosen.count,
                draft=bool(draft),
                private=chosen.private,
                seed_given=seed is not None,
            )
            return
        await self._generate(interaction, request, private=chosen.private)

    @imagine.autocomplete("style")
    async def _style_choices(self, interaction: discord.Interaction, current: str) -> list[app_commands.Choice[str]]:
        return await style_choices(self.bot.services.styles, interaction, current)

    async def reroll(self, interaction: discord.Interaction, job_id: int) -> None:
        """🎲: the same request as an earlier image with a new seed, paid by whoever clicked."""
        job = await self.engine.store.get(job_id)
        if job is None or job.guild_id != interaction.guild_id:
            raise InvalidOptions("That image is no longer known to the bot, so it can't be rerolled.")
        require_details(job)  # its prompt was erased (retention or /privacy forget)
        request = rerolled(job.generation_request())  # the stored request, a fresh seed
        await self._generate(interaction, request, private=job.private)

    async def cancel(self, interaction: discord.Interaction, job_id: int) -> None:
        """Cancel a queued job (its requester or a moderator); its money is released at once."""
        job = await self.engine.store.get(job_id)
        if job is None:  # the Cancel of a group's message holds the group's id
            group = await self.engine.groups.get(job_id)
            if group is not None and group.guild_id == interaction.guild_id:
                await self.gallery.cancel(interaction, group)
                return
        if job is None or job.guild_id != interaction.guild_id:
            raise InvalidOptions(_CANCEL_TEXT["unknown"])
        moderator = await is_moderator(interaction, self.bot.services.server_settings)
        if interaction.user.id != job.user_id and not moderator:
            raise InvalidOptions(_CANCEL_TEXT["not_allowed"])  # answered privately, at once
        if job.status is not JobStatus.QUEUED:
            raise InvalidOptions(_CANCEL_TEXT["too_late"])
        await acknowledge_click(interaction)  # the answer waits until a progress edit in flight has landed
        outcome = await self.engine.cancel(job_id, actor_id=interaction.user.id, is_moderator=moderator)
        if not outcome.cancelled:
            raise InvalidOptions(_CANCEL_TEXT[outcome.reason])
        try:
            await interaction.edit_original_response(content=CANCELLED_TEXT, view=None)
        except UNREACHABLE as exc:  # the click's answer was lost: the job's own message must still say it
            log.warning("Job %s: could not answer the Cancel click (%s); editing its message", job_id, exc)
            if outcome.job is not None:
                self.engine.tell(outcome.job, CANCELLED_TEXT)
        else:
            await self.engine.told(job_id)

    async def _generate(
        self, interaction: discord.Interaction, request: GenerationRequest, *, private: bool = False
    ) -> None:
        """Admit (or refuse privately), answer with the job's place in the queue, and hand it to the engine.

        ``private``: the answer and the result are ephemeral, visible only to the member. Any failure
        between the admission and the answer abandons the job (:mod:`cogs._admission`).
        """
        if await self.confirmations.ask(interaction, request, lambda it: self._generate(it, request, private=private)):
            return  # an expensive request: asked privately first, nothing reserved (cogs/_confirm.py)
        who = requester(interaction, private=private)
        try:
            await self.admit_and_acknowledge(
                interaction,
                self.engine.admit(request, who),
                private=private,
                acknowledge=lambda job: self._acknowledge(interaction, job),
                abandon=lambda job, answered: self.engine.abandon(job.id, answered=answered),
                what=f"Job {who.job_id}",
            )
        except ProviderTrouble as trouble:  # BFL keeps failing for this model: the server's fallback, if any
            raise await refusal(interaction, request, trouble, private=private) from None

    async def admit_and_acknowledge(
        self,
        interaction: discord.Interaction,
        admission: Awaitable[T],
        *,
        private: bool,
        acknowledge: Callable[[T], Awaitable[None]],
        abandon: Callable[[T, bool], Awaitable[None]],
        what: str,
    ) -> T | None:
        """:func:`cogs._admission.admit_and_acknowledge` within this cog's ack budget (any failure abandons)."""
        return await admit_and_acknowledge(
            interaction,
            admission,
            private=private,
            acknowledge=acknowledge,
            abandon=abandon,
            what=what,
            ack_budget=ACK_BUDGET_SECONDS,
        )

    async def _acknowledge(self, interaction: discord.Interaction, job: Job) -> None:
        """Answer with the job's place in the queue (and Cancel), then let it run."""
        progress = await self.engine.initial_progress(job)
        text = progress_text(progress)
        view = cancel_buttons(job.id) if progress.cancellable else None
        await send_answer(interaction, text, ephemeral=job.private, view=view)
        if self.engine.painter is not None:
            self.engine.painter.shown(job.id, text)
        await self.engine.acknowledged(job.id)


class _JobButton(
    discord.ui.DynamicItem[discord.ui.Button],
    template=r"fluxcord:(?P<action>reroll|cancel|vary|edit|delete|details):(?P<job>[0-9]+)",
):
    """A persistent button whose custom id holds only an action and a job id.

    Every client can read a custom id, so it never carries the prompt; and since the job is looked up
    again on every click, the button keeps working after restarts.
    """

    LOOKS: ClassVar[dict[str, tuple[str, str, discord.ButtonStyle]]] = {
        "reroll": ("Reroll", "🎲", discord.ButtonStyle.secondary),
        "cancel": ("Cancel", "✖️", discord.ButtonStyle.danger),
        "vary": ("Vary", "🌀", discord.ButtonStyle.secondary),
        "edit": ("Edit", "✏️", discord.ButtonStyle.secondary),
        "delete": ("Delete", "🗑️", discord.ButtonStyle.secondary),
        "details": ("Details", "ℹ️", discord.ButtonStyle.secondary),
    }
    RESULT_ACTIONS: ClassVar[frozenset[str]] = frozenset({"vary", "edit", "delete", "details"})

    def __init__(self, action: str, job_id: int) -> None:
        label, emoji, style = self.LOOKS[action]
        super().__init__(
            discord.ui.Button(label=label, emoji=emoji, style=style, custom_id=f"fluxcord:{action}:{job_id}")
        )
        self.action = action
        self.job_id = job_id

    @classmethod
    async def from_custom_id(
        cls, interaction: discord.Interaction, item: discord.ui.Item[Any], match: re.Match[str]
    ) -> _JobButton:
        """Rebuild the button from a click (also after a restart)."""
        return cls(match["action"], int(match["job"]))

    async def callback(self, interaction: discord.Interaction) -> None:
        """Run the action; errors take the same path as slash-command errors."""
        interaction = ours(interaction)
        cog = cast("Imagine | None", interaction.client.get_cog(Imagine.__cog_name__))
        try:
            if cog is None or interaction.guild_id is None:
                raise InvalidOptions("This button isn't available right now.")
            edit = cast("Edit | None", interaction.client.get_cog("Edit"))
            if self.action in self.RESULT_ACTIONS or (
                self.action == "reroll" and edit is not None and await edit.handles_reroll(self.job_id)
            ):
                if edit is None:
                    raise InvalidOptions("This button isn't available right now.")
                await edit.on_action(self.action, interaction, self.job_id)
            elif self.action == "reroll":
                await cog.reroll(interaction, self.job_id)
            else:
                await cog.cancel(interaction, self.job_id)
        except Exception as exc:
            await interaction.client.tree.on_error(interaction, exc)


def result_buttons(job_id: int) -> discord.ui.View:
    """The buttons attached to a posted image: Reroll, Vary, Edit, Delete, Details (one row)."""
    view = discord.ui.View(timeout=None)
    for action in ("reroll", "vary", "edit", "delete", "details"):
        view.add_item(_JobButton(action, job_id))
    return view


def use_buttons(job_id: int, final_number: int | None = None) -> discord.ui.View:
    """The private menu of one gallery image (Use #n): Reroll, Vary, Edit, Details, and Final #n for a draft."""
    view = discord.ui.View(timeout=None)
    for action in ("reroll", "vary", "edit", "details"):
        view.add_item(_JobButton(action, job_id))
    if final_number is not None:
        view.add_item(GalleryButton("final", job_id, final_number))
    return view


def cancel_buttons(job_id: int) -> discord.ui.View:
    """The button under a queued job's message."""
    view = discord.ui.View(timeout=None)
    view.add_item(_JobButton("cancel", job_id))
    return view


async def setup(bot: FluxcordBot) -> None:
    """Load the cog and its persistent buttons; give the engine its Discord side."""
    bot.add_dynamic_items(_JobButton, ConfirmButton, FallbackButton, GalleryButton)
    cog = Imagine(bot)
    bot.services.engine.attach(cog.presenter)
    await bot.add_cog(cog)


async def teardown(bot: FluxcordBot) -> None:
    """Unregister the persistent buttons."""
    bot.remove_dynamic_items(_JobButton, ConfirmButton, FallbackButton, GalleryButton)
