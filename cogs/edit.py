"""`/edit`, the "Edit with FLUX" message menu, and the Vary / Edit / Delete / Details buttons of results.

Edits are jobs like any other: the cog validates the options (a bad one is refused privately before any
download), fetches the input images from Discord only (:class:`bot.images.inputs.InputFetcher`),
defuses and re-encodes them off the event loop, and hands the request to the ``/imagine`` cog's
admission path, so the same limits, reservation, queue and presenter apply. The input images travel as
base64 in the job's BFL payload, so a restart can still submit them.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, cast

import discord
from discord import app_commands
from discord.ext import commands

from bot.app import FluxcordBot
from bot.billing.money import format_usd
from bot.engine.sources import JobSources, SourceKind
from bot.engine.store import Job
from bot.errors import InvalidOptions, NotAllowed
from bot.images.inputs import BadInputImage, InputFetcher, prepare
from bot.models import (
    FLUX3_ASPECT_RATIOS,
    MAX_SEED,
    MODELS,
    GenerationRequest,
    InputImage,
    ModelSpec,
    build_request,
    get_model,
    models_taking_images,
    rerolled,
)
from bot.models.derive import IMAGE_FIELDS
from bot.safety.levels import DEFAULT_TOLERANCE
from bot.safety.privacy import require_details
from bot.text import clean_prompt, strip_bidi
from cogs._choices import model_choices, resolution_choices
from cogs._context import is_moderator, ours, require_guild
from cogs._presenter import posted_file_text

if TYPE_CHECKING:
    from cogs.imagine import Imagine

log = logging.getLogger(__name__)

DEFAULT_EDIT_MODEL = "flux-2-pro"
ACK_BUDGET_SECONDS = 1.5  # download + re-encode usually take less; past this we defer (Discord's 3 s)
_PLACEHOLDER = InputImage(data_b64="", width=1024, height=1024)  # validation before any download
UNKNOWN_JOB = "That image is no longer known to the bot."
NO_IMAGE = "That message has no image I can edit (attach one, or use a message with an uploaded image)."


@dataclass(frozen=True)
class SourceImage:
    """One input image as Discord gave it: its URL and the size it declares."""

    url: str
    size: int | None = None


def _edit_model_choices() -> list[app_commands.Choice[str]]:
    return model_choices(models_taking_images())


def _edit_model_for(model: str) -> str:
    """The job's model if it edits, else the default edit model (Vary and Edit of a FLUX1.1 result)."""
    spec = MODELS.get(model)
    return model if spec is not None and spec.takes_images else DEFAULT_EDIT_MODEL


def message_image(message: discord.Message) -> SourceImage | None:
    """The image of a message: its first image attachment, else an embed image *as proxied by Discord*.

    An embed's own ``url`` can point anywhere, so only its ``proxy_url`` (Discord's media proxy) is used;
    the fetcher refuses any other host anyway.
    """
    for attachment in message.attachments:
        if attachment.width or (attachment.content_type or "").startswith("image/"):
            return SourceImage(attachment.url, attachment.size)
    for embed in message.embeds:
        for media in (embed.image, embed.thumbnail):
            proxy = getattr(media, "proxy_url", None)
            if proxy:
                return SourceImage(proxy)
    return None


class EditModal(discord.ui.Modal, title="Edit with FLUX"):
    """Asks for the edit prompt (and optionally a model), then runs the edit."""

    prompt: discord.ui.TextInput[EditModal] = discord.ui.TextInput(
        label="What should change?", style=discord.TextStyle.paragraph, max_length=2000
    )
    model: discord.ui.TextInput[EditModal] = discord.ui.TextInput(
        label="Model (optional)", required=False, max_length=40, placeholder=DEFAULT_EDIT_MODEL
    )

    def __init__(self, cog: Edit, source: SourceImage, *, default_model: str, source_job_id: int | None = None) -> None:
        super().__init__(timeout=900)
        self.cog = cog
        self.source = source
        self.source_job_id = source_job_id
        self.model.default = default_model

    async def on_submit(self, interaction: discord.Interaction) -> None:
        """Run the edit with what the member typed."""
        model = (self.model.value or "").strip() or None
        await self.cog.run_edit(
            interaction,
            prompt=self.prompt.value,
            model=model,
            sources=[self.source],
            kind="edit",
            source_job_id=self.source_job_id,
        )

    # discord.ui.Modal's on_error takes no `item` (discord.py's BaseView's does): mypy sees an override.
    async def on_error(self, interaction: discord.Interaction, error: Exception, /) -> None:  # type: ignore[override]
        """The same error path as commands."""
        typed = ours(interaction)
        await typed.client.tree.on_error(typed, error)


class Edit(commands.Cog):
    """Editing images with FLUX, and what the buttons under a result do."""

    def __init__(self, bot: FluxcordBot) -> None:
        self.bot = bot
        self.services = bot.services
        self.settings = bot.services.settings
        self.sources = JobSources(bot.services.db)
        self.fetcher = InputFetcher(self.settings.discord_api_url, cdn_url=self.settings.discord_cdn_url)
        self.menu = app_commands.ContextMenu(name="Edit with FLUX", callback=self.edit_message)
        self.menu.guild_only = True

    async def cog_load(self) -> None:
        """Register the message menu (a context menu cannot live inside a cog class)."""
        self.bot.tree.add_command(self.menu)

    async def cog_unload(self) -> None:
        """Unregister the menu and close the downloader."""
        self.bot.tree.remove_command(self.menu.name, type=self.menu.type)
        await self.fetcher.close()

    # -- /edit -------------------------------------------------------------------------------------

    @app_commands.command(name="edit")
    @app_commands.guild_only()
    @app_commands.describe(
        image="The image to edit (PNG, JPEG, WebP or GIF; up to 20 MiB)",
        prompt="What to change",
        model="FLUX model that edits (default FLUX.2 [pro]); prices shown",
        image2="A second reference image (models that take several)",
        image3="A third reference image",
        image4="A fourth reference image",
        aspect_ratio="Shape of the result (default: the image's own)",
        seed="Seed for a reproducible result (not FLUX 3)",
        resolution="FLUX 3 only: output resolution tier (default 1k)",
        grounding="FLUX 3 only: let the model search the web for references (if moderators allow it)",
        private="Only you see the request and the result (still within your limits)",
    )
    @app_commands.choices(
        model=_edit_model_choices(),
        aspect_ratio=[app_commands.Choice(name=r, value=r) for r in FLUX3_ASPECT_RATIOS],
        resolution=resolution_choices(),
    )
    async def edit(
        self,
        interaction: discord.Interaction,
        image: discord.Attachment,
        prompt: app_commands.Range[str, 1, 6000],
        model: str | None = None,
        image2: discord.Attachment | None = None,
        image3: discord.Attachment | None = None,
        image4: discord.Attachment | None = None,
        aspect_ratio: str | None = None,
        seed: app_commands.Range[int, 0, MAX_SEED] | None = None,
        resolution: str | None = None,
        grounding: bool | None = None,
        private: bool | None = None,
    ) -> None:
        """Edit an image with a FLUX model: describe what should change."""
        attachments = [a for a in (image, image2, image3, image4) if a is not None]
        await self.run_edit(
            interaction,
            prompt=prompt,
            model=model,
            sources=[SourceImage(a.url, a.size) for a in attachments],
            aspect_ratio=aspect_ratio,
            seed=seed,
            resolution=resolution,
            grounding=grounding,
            private=bool(private),
            kind="edit",
        )

    async def edit_message(self, interaction: discord.Interaction, message: discord.Message) -> None:
        """The "Edit with FLUX" message menu: ask for a prompt, then edit the message's image."""
        require_guild(interaction)
        source = message_image(message)
        if source is None:
            raise InvalidOptions(NO_IMAGE)
        if not self.fetcher.allowed(source.url):
            raise BadInputImage("I only read images attached to Discord messages.")
        await interaction.response.send_modal(EditModal(self, source, default_model=DEFAULT_EDIT_MODEL))

    # -- the shared path ---------------------------------------------------------------------------

    async def run_edit(
        self,
        interaction: discord.Interaction,
        *,
        prompt: str,
        model: str | None,
        sources: Sequence[SourceImage],
        kind: SourceKind,
        aspect_ratio: str | None = None,
        seed: int | None = None,
        resolution: str | None = None,
        grounding: bool | None = None,
        private: bool = False,
        source_job_id: int | None = None,
        preloaded: Sequence[InputImage] | None = None,
    ) -> None:
        """Validate, fetch and defuse the inputs, then admit the edit like any other job."""
        require_guild(interaction)
        options: dict[str, Any] = {
            "model": model or DEFAULT_EDIT_MODEL,
            "prompt": clean_prompt(prompt),
            "aspect_ratio": aspect_ratio,
            "seed": seed,
            "resolution": resolution,
            "grounding": grounding,
            "allow_grounding": True,  # this server's /safety grounding switch is checked at admission
            "max_prompt_length": self.settings.max_prompt_length,
        }
        count = len(preloaded) if preloaded is not None else len(sources)
        # Pure validation first (placeholders stand in for the images): a bad option costs no download.
        spec = build_request(**options, input_images=[_PLACEHOLDER] * count).model
        loading = asyncio.ensure_future(self._load(spec.key, sources, preloaded))
        try:
            done, _ = await asyncio.wait({loading}, timeout=ACK_BUDGET_SECONDS)
            if not done and not interaction.response.is_done():
                await interaction.response.defer(thinking=True, ephemeral=private)
        except BaseException:
            loading.cancel()  # nothing is admitted yet: the download simply stops
            raise
        images = await loading
        request = build_request(**options, input_images=images)
        source_url = sources[0].url if sources else None
        await self.submit(
            interaction, request, kind=kind, source_url=source_url, source_job_id=source_job_id, private=private
        )

    async def submit(
        self,
        interaction: discord.Interaction,
        request: GenerationRequest,
        *,
        kind: SourceKind,
        source_url: str | None,
        source_job_id: int | None,
        private: bool = False,
    ) -> None:
        """Record where the input came from, then admit through ``/imagine``'s path (limits, queue, card)."""
        imagine = cast("Imagine | None", self.bot.get_cog("Imagine"))
        if imagine is None:
            raise InvalidOptions("Image generation isn't available right now.")
        resume = lambda it: self.submit(  # noqa: E731 - Generate re-enters here with its own interaction
            it, request, kind=kind, source_url=source_url, source_job_id=source_job_id, private=private
        )
        if await imagine.confirmations.ask(interaction, request, resume):
            return  # priced at or above CONFIRM_ABOVE_USD: nothing recorded or reserved until Generate
        # The job id is the interaction id: recorded first, so the result card can show the source even
        # for a cache hit delivered the moment the job is acknowledged.
        await self.sources.record(interaction.id, kind, source_url=source_url, source_job_id=source_job_id)
        try:
            await imagine._generate(interaction, request, private=private)
        except BaseException:
            await self.sources.forget(interaction.id)
            raise

    async def _load(
        self, model: str, sources: Sequence[SourceImage], preloaded: Sequence[InputImage] | None
    ) -> list[InputImage]:
        if preloaded is not None:
            return list(preloaded)
        spec = get_model(model)
        images = []
        for number, source in enumerate(sources, start=1):
            try:
                data = await self.fetcher.fetch(source.url, declared_size=source.size)
                images.append(await prepare(data, spec))
            except BadInputImage as exc:
                if len(sources) == 1:
                    raise
                raise BadInputImage(f"Image {number}: {exc.user_message}") from exc
        return images

    # -- the buttons under a result ----------------------------------------------------------------

    async def job_for(self, interaction: discord.Interaction, job_id: int) -> Job:
        """The clicked job, if it belongs to this server (a custom id is never trusted)."""
        job = await self.services.jobs.get(job_id)
        if job is None or job.guild_id != interaction.guild_id:
            raise InvalidOptions(UNKNOWN_JOB)
        return job

    async def handles_reroll(self, job_id: int) -> bool:
        """Whether a Reroll of ``job_id`` is an edit's (its input images go with it)."""
        job = await self.services.jobs.get(job_id)
        return job is not None and _has_inputs(job.params)

    async def on_action(self, action: str, interaction: discord.Interaction, job_id: int) -> None:
        """Run a result button: reroll (of an edit), vary, edit, delete, details."""
        job = await self.job_for(interaction, job_id)
        if action != "delete":
            require_details(job)  # its prompt was erased (retention or /privacy forget): nothing to work on
        if action == "details":
            await self.details(interaction, job)
        elif action == "delete":
            await self.delete(interaction, job)
        elif action == "edit":
            source = self._result_image(interaction)
            modal = EditModal(self, source, default_model=_edit_model_for(job.model), source_job_id=job.id)
            await interaction.response.send_modal(modal)
        elif action == "vary":
            await self.run_edit(
                interaction,
                prompt=job.prompt,
                model=_edit_model_for(job.model),
                sources=[self._result_image(interaction)],
                kind="vary",
                source_job_id=job.id,
            )
        elif action == "reroll":
            await self.reroll(interaction, job)
        else:  # pragma: no cover - the template admits only the actions above
            raise InvalidOptions("This button isn't available right now.")

    def _result_image(self, interaction: discord.Interaction) -> SourceImage:
        message = interaction.message
        source = message_image(message) if message is not None else None
        if source is None:
            raise InvalidOptions("That result has no image left to work on.")
        return source

    async def reroll(self, interaction: discord.Interaction, job: Job) -> None:
        """An edit's Reroll: the same inputs and options, a new seed (FLUX 3: simply again)."""
        request = rerolled(await asyncio.to_thread(job.generation_request))  # a legacy job's inputs: decoded
        original = await self.sources.get(job.id)
        await self.submit(
            interaction,
            request,
            kind="reroll",
            source_url=original.source_url if original else None,
            source_job_id=job.id,
        )

    async def delete(self, interaction: discord.Interaction, job: Job) -> None:
        """The requester or a moderator removes the result message and its cached bytes."""
        if interaction.user.id != job.user_id and not await is_moderator(interaction, self.services.server_settings):
            raise NotAllowed("Only the member who asked for this image, or a moderator, can delete it.")
        await interaction.response.send_message("🗑️ Deleted.", ephemeral=True)
        await self.services.engine.cache.delete(job.cache_key)
        await self.sources.mark_deleted(job.id, interaction.user.id)
        if interaction.message is not None:
            try:
                await interaction.message.delete()
            except discord.NotFound:
                log.info("Job %s: its result message was already gone", job.id)
        log.info("Job %s: result deleted by %s", job.id, interaction.user.id)

    async def details(self, interaction: discord.Interaction, job: Job) -> None:
        """A private reply: the full prompt, model, options, seed, size, cost, job id, timings."""
        embed = await self.details_embed(job)
        await interaction.response.send_message(embed=embed, ephemeral=True)

    async def details_embed(self, job: Job) -> discord.Embed:
        """What Details shows."""
        spec = MODELS.get(job.model)
        prompt = discord.utils.escape_markdown(strip_bidi(job.prompt))
        embed = discord.Embed(title=f"Job {job.id}", description=prompt[:3500], colour=discord.Colour.dark_grey())
        embed.add_field(name="Model", value=f"{spec.label if spec else job.model} (`{job.model}`)")
        if job.style:  # the prompt above is the style's template around the member's
            embed.add_field(name="Style", value=discord.utils.escape_markdown(strip_bidi(job.style))[:1024])
        embed.add_field(name="Status", value=job.status.value)
        embed.add_field(name="Seed", value=str(job.seed) if spec is None or spec.has_seed else "— (no seed)")
        embed.add_field(name="Size", value=f"{job.width}×{job.height} ({job.aspect_ratio or '?'})")
        cost = job.cost_micros
        cost_text = format_usd(cost) if cost is not None else f"≤ {format_usd(job.estimated_micros)} (estimate)"
        embed.add_field(name="Cost", value=cost_text)
        options = {
            k: v
            for k, v in sorted(job.params.items())
            if k not in ("prompt", "seed", "width", "height", "safety_tolerance", *IMAGE_FIELDS, "images")
            and v is not None
        }
        inputs = len(_input_strings(job.params))
        embed.add_field(name="Safety tolerance", value=_tolerance_text(spec, job.params, inputs))
        if inputs:
            options["input images"] = inputs
        embed.add_field(
            name="Options", value=", ".join(f"`{k}`={v}" for k, v in options.items())[:1000] or "—", inline=False
        )
        timings = []
        if job.submitted_at is not None:
            timings.append(f"queued {(job.submitted_at - job.created_at).total_seconds():.1f} s")
        if job.submitted_at is not None and job.ready_at is not None:
            timings.append(f"generated in {(job.ready_at - job.submitted_at).total_seconds():.1f} s")
        timings.append(f"asked <t:{int(job.created_at.timestamp())}:f>")
        embed.add_field(name="Timings", value=" · ".join(timings), inline=False)
        if job.expanded_prompt:
            expanded = discord.utils.escape_markdown(strip_bidi(job.expanded_prompt))
            embed.add_field(name="Prompt as the model expanded it", value=expanded[:1024], inline=False)
        source = await self.sources.get(job.id)
        if source is not None and source.source_job_id is not None:
            embed.add_field(name="Works on", value=f"job {source.source_job_id} ({source.kind})", inline=False)
        posted_file = posted_file_text(job)
        if posted_file:
            embed.add_field(name="File", value=posted_file, inline=False)
        return embed


def _tolerance_text(spec: ModelSpec | None, params: dict[str, Any], inputs: int) -> str:
    """The ``safety_tolerance`` the model applied: what was sent (the effective value), or BFL's default."""
    sent = params.get("safety_tolerance")
    if sent is None:
        return f"{DEFAULT_TOLERANCE} (BFL's default)"
    cap = spec.image_safety_max if spec is not None else None
    if inputs and cap is not None and sent >= cap:
        return f"{sent} ({spec.label if spec else 'this model'} with input images: at most {cap})"
    return str(sent)


def _input_strings(params: dict[str, Any]) -> list[str]:
    images = params.get("images")
    found = [images] if isinstance(images, str) else list(images or [])
    found += [params[f] for f in IMAGE_FIELDS if isinstance(params.get(f), str)]
    return found


def _has_inputs(params: dict[str, Any]) -> bool:
    return bool(_input_strings(params))


async def setup(bot: FluxcordBot) -> None:
    """Load the cog (its message menu registers itself)."""
    await bot.add_cog(Edit(bot))
