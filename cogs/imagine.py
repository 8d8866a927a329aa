"""`/imagine`: generate an image with a FLUX model and post it in the channel."""

from __future__ import annotations

import asyncio
import dataclasses
import io
import logging
import re
from collections.abc import Callable

import discord
from discord import app_commands
from discord.ext import commands

from bot.app import FluxcordBot
from bot.errors import GenerationFailed, InvalidOptions
from bot.generation import GeneratedImage, Progress, Requester, Stage, Ticket
from bot.images import InvalidImage, fit_for_upload
from bot.models import ASPECT_RATIOS, MAX_SEED, MODELS, GenerationRequest, build_request
from bot.money import format_usd
from bot.text import clean_prompt, strip_bidi
from cogs._context import require_guild, role_ids

log = logging.getLogger(__name__)

# Admission (cache lookup + one reservation statement) normally takes milliseconds; if the database
# is slow we acknowledge first, because Discord gives us 3 s in total.
ACK_BUDGET_SECONDS = 1.5

# Discord's answers for an interaction token past its 15 minutes (or otherwise gone).
EXPIRED_CODES = {50027, 10015}


_STAGE_TEXT = {
    Stage.QUEUED: "⏳ Queued…",
    Stage.SUBMITTING: "📨 Sending to {model}…",
    Stage.GENERATING: "🎨 Generating with {model}…",
    Stage.DOWNLOADING: "📥 Fetching the image…",
}


class Imagine(commands.Cog):
    """Image generation."""

    def __init__(self, bot: FluxcordBot) -> None:
        self.bot = bot
        self.generator = bot.services.generator
        self.settings = bot.services.settings
        # The prompt's synced max_length is MAX_PROMPT_LENGTH, so Discord's client stops the member there.
        # discord.py reads the bound from the annotation at import time; this cog's copy gets the setting.
        params = self.imagine._params
        params["prompt"] = dataclasses.replace(params["prompt"], max_value=self.settings.max_prompt_length)

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
    )
    @app_commands.choices(
        model=[
            app_commands.Choice(name=f"{spec.label} · {spec.describe_price()}"[:100], value=key)
            for key, spec in MODELS.items()
        ],
        aspect_ratio=[app_commands.Choice(name=ratio, value=ratio) for ratio in ASPECT_RATIOS],
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
    ) -> None:
        """Generate an image from a text prompt with a FLUX model."""
        require_guild(interaction)
        # Pure validation first: a bad option is refused privately, before any I/O or charge.
        request = build_request(
            model=self.settings.default_model if model is None else model,
            prompt=clean_prompt(prompt),
            aspect_ratio=aspect_ratio,
            seed=seed,
            steps=steps,
            guidance=guidance,
            raw=raw,
            prompt_upsampling=prompt_upsampling,
            max_prompt_length=self.settings.max_prompt_length,
        )
        await self._generate(interaction, request)

    async def reroll(self, interaction: discord.Interaction, job_id: int) -> None:
        """🎲: the same request as an earlier image with a new seed, paid by whoever clicked."""
        request = await self.generator.reroll_request(job_id, max_prompt_length=self.settings.max_prompt_length)
        if request is None:
            raise InvalidOptions("That image is no longer known to the bot, so it can't be rerolled.")
        await self._generate(interaction, request)

    async def _generate(self, interaction: discord.Interaction, request: GenerationRequest) -> None:
        """Admit (or refuse privately), acknowledge, generate with progress, and post the result."""
        member = interaction.user
        roles = role_ids(interaction)
        requester = Requester(interaction.id, interaction.guild_id or 0, interaction.channel_id or 0, member.id, roles)
        ticket = await self._admit(interaction, request, requester)
        if not interaction.response.is_done():
            await interaction.response.defer(thinking=True)

        async def show(progress: Progress) -> None:
            if interaction.is_expired():
                return  # editing would only collect 401s, which count against the bot's invalid-request limit
            text = _STAGE_TEXT[progress.stage].format(model=request.model.label)
            if progress.elapsed_seconds >= 2:
                text += f" ({progress.elapsed_seconds:.0f} s)"
            await interaction.edit_original_response(content=text)

        image = await self.generator.run(ticket, on_progress=show)
        await self._deliver(interaction, image)

    async def _admit(
        self, interaction: discord.Interaction, request: GenerationRequest, requester: Requester
    ) -> Ticket:
        admission = asyncio.ensure_future(self.generator.admit(request, requester))
        done, _ = await asyncio.wait({admission}, timeout=ACK_BUDGET_SECONDS)
        if not done:
            await interaction.response.defer(thinking=True)
        return await admission

    async def _deliver(self, interaction: discord.Interaction, image: GeneratedImage) -> None:
        try:
            encoded = await fit_for_upload(image.data, interaction.filesize_limit, basename=f"fluxcord-{image.job_id}")
        except InvalidImage as exc:
            await self.generator.mark_undeliverable(image.job_id, str(exc))
            raise GenerationFailed("The image could not be prepared for Discord. Please try again.") from exc
        embed = render_embed(image, encoded.filename, encoded.width, encoded.height, interaction.user)

        def attachment() -> discord.File:  # a File is consumed by a send: one per attempt
            return discord.File(io.BytesIO(encoded.data), filename=encoded.filename)

        try:
            message = await self._post(interaction, image.job_id, embed, attachment)
        except discord.HTTPException as exc:
            await self.generator.mark_undeliverable(image.job_id, f"{exc.status} {exc.code}")
            raise
        await self.generator.mark_delivered(image.job_id, message.channel.id, message.id)

    async def _post(
        self,
        interaction: discord.Interaction,
        job_id: int,
        embed: discord.Embed,
        attachment: Callable[[], discord.File],
    ) -> discord.Message:
        """Turn the "thinking…" response into the result, or post it in the channel past the token's life."""
        if not interaction.is_expired():
            try:
                return await interaction.edit_original_response(
                    content=None, embed=embed, attachments=[attachment()], view=result_buttons(job_id)
                )
            except discord.HTTPException as exc:
                if exc.code not in EXPIRED_CODES:
                    raise
        log.info("Interaction %s expired; posting job %s to the channel instead", interaction.id, job_id)
        channel = self.bot.get_partial_messageable(interaction.channel_id or 0)
        return await channel.send(
            f"{interaction.user.mention} your image is ready.",
            embed=embed,
            file=attachment(),
            view=result_buttons(job_id),
            allowed_mentions=discord.AllowedMentions(users=[interaction.user]),
        )


class RerollButton(discord.ui.DynamicItem[discord.ui.Button], template=r"fluxcord:reroll:(?P<job>[0-9]+)"):
    """🎲 under every result: the same request with a new seed.

    Only the job id is in the custom id (every client can read it), so the button keeps working after
    restarts and never carries the prompt.
    """

    def __init__(self, job_id: int) -> None:
        super().__init__(
            discord.ui.Button(
                label="Reroll", emoji="🎲", style=discord.ButtonStyle.secondary, custom_id=f"fluxcord:reroll:{job_id}"
            )
        )
        self.job_id = job_id

    @classmethod
    async def from_custom_id(
        cls, interaction: discord.Interaction, item: discord.ui.Button, match: re.Match[str]
    ) -> RerollButton:
        """Rebuild the button from a click (also after a restart)."""
        return cls(int(match["job"]))

    async def callback(self, interaction: discord.Interaction) -> None:
        """Run the reroll; errors take the same path as slash-command errors."""
        cog = interaction.client.get_cog(Imagine.__cog_name__)
        try:
            if cog is None or interaction.guild_id is None:
                raise InvalidOptions("Rerolling isn't available right now.")
            await cog.reroll(interaction, self.job_id)
        except Exception as exc:
            await interaction.client.tree.on_error(interaction, exc)


def result_buttons(job_id: int) -> discord.ui.View:
    """The buttons attached to a posted image."""
    view = discord.ui.View(timeout=None)
    view.add_item(RerollButton(job_id))
    return view


def render_embed(
    image: GeneratedImage, filename: str, width: int, height: int, user: discord.abc.User
) -> discord.Embed:
    """The result card: prompt, model, size, seed, cost and time taken."""
    request = image.request
    prompt = discord.utils.escape_mentions(discord.utils.escape_markdown(strip_bidi(request.prompt)))
    embed = discord.Embed(description=prompt[:4000], colour=discord.Colour.blurple())
    embed.set_author(name=f"Requested by {strip_bidi(user.display_name)}"[:256])
    embed.add_field(name="Model", value=request.model.label)
    embed.add_field(name="Size", value=f"{width}×{height} ({request.aspect_ratio})")
    embed.add_field(name="Seed", value=str(request.seed))
    embed.add_field(name="Cost", value="free (from cache)" if image.from_cache else format_usd(image.cost_micros))
    embed.add_field(name="Time", value="instant" if image.from_cache else f"{image.elapsed_seconds:.1f} s")
    embed.set_image(url=f"attachment://{filename}")
    embed.set_footer(text=f"Job {image.job_id}")
    return embed


async def setup(bot: FluxcordBot) -> None:
    """Load the cog and its persistent buttons."""
    bot.add_dynamic_items(RerollButton)
    await bot.add_cog(Imagine(bot))


async def teardown(bot: FluxcordBot) -> None:
    """Unregister the persistent buttons."""
    bot.remove_dynamic_items(RerollButton)
