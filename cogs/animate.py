"""`/animate` and the Animate button: a still and a motion prompt made a FLUX 3 video (issue 26 item 5).

Both check the server's video switch (``/safety video``) first: off, the member is refused privately before any
modal, download, price or charge (admission refuses it again, whatever the entry point). Then the still is fetched
from Discord only and defused like an ``/edit`` input (:class:`bot.images.inputs.InputFetcher`, ``prepare``),
:func:`bot.models.animate.animate` builds the request, and the one request flow (:class:`cogs._flow.RequestFlow`)
prices it per second, asks for confirmation (every video is above the default threshold), reserves and admits it.
The result is posted by :mod:`cogs._video_delivery`: an ``.mp4`` when it fits, else a private link.
"""

from __future__ import annotations

import asyncio
import logging

import discord
from discord import app_commands
from discord.ext import commands

from bot.app import FluxcordBot
from bot.engine.store import Job
from bot.images.inputs import MAX_INPUT_BYTES, BadInputImage, InputFetcher, prepare
from bot.models import InputImage, get_model
from bot.models.animate import animate
from bot.models.video import VIDEO_DURATION_RANGE, VIDEO_MODEL, VIDEO_QUALITIES
from bot.safety.errors import VideoNotAllowed
from bot.safety.service import VIDEO_OFF
from bot.text import clean_prompt
from cogs._admission import within_budget
from cogs._buttons import cancel_buttons
from cogs._components import Modal
from cogs._context import require_guild
from cogs._flow import RequestFlow, Source

log = logging.getLogger(__name__)

_PLACEHOLDER = InputImage(data_b64="", width=1024, height=1024)  # validation before any download
SPEC = get_model(VIDEO_MODEL)
LOW, HIGH = VIDEO_DURATION_RANGE
QUALITY_HELP = SPEC.price.describe()  # "$0.17/s (hd), $0.29/s (fhd)"


class AnimateModal(Modal, title="Animate this image"):
    """The Animate button's questions: how it should move, for how long, at which quality."""

    motion: discord.ui.TextInput[AnimateModal] = discord.ui.TextInput(
        label="How should it move?", style=discord.TextStyle.paragraph, max_length=1000
    )
    seconds: discord.ui.TextInput[AnimateModal] = discord.ui.TextInput(
        label=f"Length in seconds ({LOW}-{HIGH})", required=False, max_length=2, placeholder=str(LOW)
    )
    quality: discord.ui.TextInput[AnimateModal] = discord.ui.TextInput(
        label="Quality: hd (720p) or fhd (1080p)", required=False, max_length=3, placeholder="hd"
    )

    def __init__(self, cog: Animate, job: Job, source_url: str) -> None:
        super().__init__(timeout=900)
        self.cog = cog
        self.job = job
        self.source_url = source_url

    async def on_submit(self, interaction: discord.Interaction) -> None:
        """Animate the result with what the member typed (a length that is not a number is refused)."""
        text = (self.seconds.value or "").strip()
        if text and not text.isdigit():
            raise BadInputImage(f"The length must be a whole number of seconds from {LOW} to {HIGH}.")
        quality = (self.quality.value or "").strip().lower() or None
        await self.cog.run(
            interaction,
            self.source_url,
            None,
            motion=self.motion.value,
            seconds=int(text) if text else None,
            quality=quality,
            private=self.job.private,
            source_job_id=self.job.id,
        )


class Animate(commands.Cog):
    """FLUX 3 video from a still."""

    def __init__(self, bot: FluxcordBot) -> None:
        self.bot = bot
        self.services = bot.services
        self.settings = bot.services.settings
        self.flow = RequestFlow(bot.services, cancel_view=cancel_buttons)
        self.fetcher = InputFetcher(self.settings.discord_api_url, cdn_url=self.settings.discord_cdn_url)

    async def cog_unload(self) -> None:
        """Close the downloader."""
        await self.fetcher.close()

    @app_commands.command(name="animate")
    @app_commands.guild_only()
    @app_commands.describe(
        image=f"The still to animate (PNG, JPEG, WebP or GIF; up to {MAX_INPUT_BYTES // 1024 // 1024} MiB)",
        prompt="How it should move",
        seconds=f"Length in seconds ({LOW}-{HIGH}, default {LOW}); priced per second",
        quality=f"Quality (default hd): {QUALITY_HELP}"[:100],
    )
    @app_commands.choices(quality=[app_commands.Choice(name=q, value=q) for q in VIDEO_QUALITIES])
    async def animate(
        self,
        interaction: discord.Interaction,
        image: discord.Attachment,
        prompt: app_commands.Range[str, 1, 1000],
        seconds: app_commands.Range[int, LOW, HIGH] | None = None,
        quality: str | None = None,
    ) -> None:
        """Animate an image into a FLUX 3 video (if this server allows video)."""
        await self.run(interaction, image.url, image.size, motion=prompt, seconds=seconds, quality=quality)

    async def offer(self, interaction: discord.Interaction, job: Job, source_url: str) -> None:
        """The Animate button: refused while video is off (no modal, nothing else), else its modal."""
        await self.require_video(interaction)
        await interaction.response.send_modal(AnimateModal(self, job, source_url))

    async def require_video(self, interaction: discord.Interaction) -> None:
        """Refuse privately, before anything else, while this server has video switched off."""
        guild_id = require_guild(interaction)
        if not await self.services.server.safety.video_allowed(guild_id):
            raise VideoNotAllowed(VIDEO_OFF)

    async def run(
        self,
        interaction: discord.Interaction,
        url: str,
        size: int | None,
        *,
        motion: str,
        seconds: int | None,
        quality: str | None,
        private: bool = False,
        source_job_id: int | None = None,
    ) -> None:
        """Check the switch and the options, fetch and defuse the still, then hand the video to the request flow."""
        await self.require_video(interaction)
        motion, limit = clean_prompt(motion), self.settings.max_prompt_length
        animate(_PLACEHOLDER, motion=motion, seconds=seconds, quality=quality, max_prompt_length=limit)  # no download
        if not self.fetcher.allowed(url):
            raise BadInputImage("I only read images attached to Discord messages.")

        async def load() -> InputImage:
            return await prepare(await self.fetcher.fetch(url, declared_size=size), SPEC)

        loading = asyncio.ensure_future(load())
        try:
            await within_budget(interaction, loading, private=private)
        except BaseException:
            loading.cancel()  # nothing is admitted yet: the download simply stops
            raise
        request = animate(await loading, motion=motion, seconds=seconds, quality=quality, max_prompt_length=limit)
        await self.flow.submit(interaction, request, private=private, source=Source("animate", url, source_job_id))


async def setup(bot: FluxcordBot) -> None:
    """Load the cog."""
    await bot.add_cog(Animate(bot))
