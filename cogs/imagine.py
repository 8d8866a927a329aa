"""`/imagine`: generate an image with a FLUX model and post it in the channel.

The cog applies the member's defaults and style and validates, then hands the request to the one
request flow (:class:`cogs._flow.RequestFlow`: confirmation, admission, the answer with the job's place
in the queue; a refusal is private and has no side effect), and from there: the engine runs
the job and posts the result through :class:`cogs._presenter.DiscordPresenter`, also after a restart.
"""

from __future__ import annotations

import dataclasses
import logging

import discord
from discord import app_commands
from discord.ext import commands

from bot.app import FluxcordBot
from bot.engine.outcomes import CANCELLED_TEXT
from bot.engine.states import JobStatus
from bot.errors import InvalidOptions
from bot.models import MAX_SEED, build_request
from bot.text import clean_prompt
from cogs._admission import UNREACHABLE, acknowledge_click
from cogs._budget_channel import defaults_channel
from cogs._buttons import JobButton, cancel_buttons, result_buttons, use_buttons, video_result_buttons
from cogs._choices import GROUNDING_HELP, RESOLUTION_HELP, aspect_ratio_choices, model_choices, only, resolution_choices
from cogs._components import catch_all, register, unregister
from cogs._confirm import ConfirmButton
from cogs._context import is_moderator, require_guild
from cogs._fallback import FallbackButton
from cogs._flow import RequestFlow
from cogs._gallery import GalleryButton, GalleryFlow, gallery_view
from cogs._presenter import DiscordPresenter
from cogs._styles import style_choices

log = logging.getLogger(__name__)
UNKNOWN_ACTION = catch_all()

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
            source_lookup=bot.services.members.sources.source_url,  # an edit's card shows its source image
            gallery_view=gallery_view,  # /imagine count:N and draft: N images in one message
            video_view=video_result_buttons,  # a FLUX 3 video: Delete and Details only
        )
        self.flow = RequestFlow(bot.services, cancel_view=cancel_buttons)
        # The prompt's synced max_length is MAX_PROMPT_LENGTH, so Discord's client stops the member there.
        # discord.py reads the bound from the annotation at import time; this cog's copy gets the setting.
        # Private: discord.py has no public way to change a parameter after definition (get_parameter is read-only).
        params = self.imagine._params
        params["prompt"] = dataclasses.replace(params["prompt"], max_value=self.settings.max_prompt_length)
        self.gallery = GalleryFlow(self.flow, self.presenter, use_view=use_buttons)

    @app_commands.command(name="imagine")
    @app_commands.guild_only()
    @app_commands.describe(
        prompt="What the image should show",
        model="FLUX model (default: the bot's DEFAULT_MODEL; /quota lists prices)",
        aspect_ratio="Shape of the image (default 1:1)",
        seed="Seed for a reproducible image (picked for you if empty)",
        steps=f"Sampling steps ({only('steps')})",
        guidance=f"Prompt adherence ({only('guidance')})",
        raw=f"Less processed, more natural look ({only('raw')})",
        prompt_upsampling="Let the model expand your prompt",
        resolution=RESOLUTION_HELP,
        grounding=GROUNDING_HELP,
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
        # Explicit options, else the member's /prefs, else the channel's (/budget channel), else the bot's.
        chosen = await self.bot.services.members.prefs.resolve(
            guild_id,
            interaction.user.id,
            channel_id=defaults_channel(interaction),
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
            lora=chosen.lora,  # a LoRA style's, on its route (chosen.model)
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
        await self.flow.submit(interaction, request, private=chosen.private)

    @imagine.autocomplete("style")
    async def _style_choices(self, interaction: discord.Interaction, current: str) -> list[app_commands.Choice[str]]:
        return await style_choices(self.bot.services.members.styles, interaction, current)

    async def reroll(self, interaction: discord.Interaction, job_id: int) -> None:
        """🎲: the same request as an earlier image with a new seed, paid by whoever clicked."""
        await self.flow.reroll(interaction, job_id)

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
        moderator = await is_moderator(interaction, self.bot.services.server.settings)
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


async def setup(bot: FluxcordBot) -> None:
    """Load the cog and its persistent buttons; give the engine its Discord side."""
    cog = Imagine(bot)
    register(bot, {JobButton: cog, GalleryButton: cog.gallery, ConfirmButton: cog.flow, FallbackButton: cog.flow})
    bot.add_dynamic_items(UNKNOWN_ACTION)
    bot.services.engine.presenter.fill(cog.presenter)  # the engine's Discord side (PresenterSlot)
    await bot.add_cog(cog)


async def teardown(bot: FluxcordBot) -> None:
    """Unregister the persistent buttons."""
    unregister(bot, JobButton, GalleryButton, ConfirmButton, FallbackButton)
    bot.remove_dynamic_items(UNKNOWN_ACTION)
