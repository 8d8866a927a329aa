"""`/edit`, the "Edit with FLUX" message menu, and the Vary / Edit / More detail / Delete / Details buttons.

Edits are jobs like any other: the cog validates the options (a bad one is refused privately before any
download), fetches the input images from Discord only (:class:`bot.images.inputs.InputFetcher`),
defuses and re-encodes them off the event loop, and hands the request to the one request flow
(:class:`cogs._flow.RequestFlow`), so the same confirmation, limits, reservation, queue and presenter
apply. The input images travel as base64 in the job's BFL payload, so a restart can still submit them.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

import discord
from discord import app_commands
from discord.ext import commands

from bot.app import FluxcordBot
from bot.engine.sources import SourceKind
from bot.engine.store import Job
from bot.errors import InvalidOptions, NotAllowed
from bot.images.inputs import MAX_INPUT_BYTES, BadInputImage, InputFetcher, prepare
from bot.images.reference import fit_request
from bot.models import (
    FLUX3_ASPECT_RATIOS,
    MAX_SEED,
    MODELS,
    GenerationRequest,
    InputImage,
    build_request,
    get_model,
    models_taking_images,
)
from bot.safety.privacy import require_details
from bot.text import clean_prompt
from cogs._admission import within_budget
from cogs._buttons import CARRY_ON, CarryOn, ResultButton, cancel_buttons
from cogs._choices import GROUNDING_HELP, RESOLUTION_HELP, labels, model_choices, resolution_choices
from cogs._components import Modal, register, unregister
from cogs._context import is_moderator, require_guild
from cogs._derive import stored_request
from cogs._details import details_embed
from cogs._flow import RequestFlow, Source

if TYPE_CHECKING:
    pass

log = logging.getLogger(__name__)
T = TypeVar("T")

DEFAULT_EDIT_MODEL = "flux-2-pro"
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
    """The job's model if members edit with it, else the default edit model (Vary, Edit of FLUX1.1, Sharpen, a LoRA)."""
    spec = MODELS.get(model)
    return model if spec is not None and spec.takes_images and spec.offered else DEFAULT_EDIT_MODEL


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


class EditModal(Modal, title="Edit with FLUX"):
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


class Edit(commands.Cog):
    """Editing images with FLUX, and what the buttons under a result do."""

    def __init__(self, bot: FluxcordBot) -> None:
        self.bot = bot
        self.services = bot.services
        self.settings = bot.services.settings
        self.sources = bot.services.members.sources
        self.flow = RequestFlow(bot.services, cancel_view=cancel_buttons)
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
        image=f"The image to edit (PNG, JPEG, WebP or GIF; up to {MAX_INPUT_BYTES // 1024 // 1024} MiB)",
        prompt="What to change",
        model=f"FLUX model that edits (default {get_model(DEFAULT_EDIT_MODEL).label}); prices shown",
        image2="A second reference image (models that take several)",
        image3="A third reference image",
        image4="A fourth reference image",
        aspect_ratio="Shape of the result (default: the image's own)",
        seed=f"Seed for a reproducible result (not {labels(m for m in models_taking_images() if not m.has_seed)})",
        resolution=RESOLUTION_HELP,
        grounding=GROUNDING_HELP,
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
        images = await self._loaded(interaction, spec.key, sources, preloaded, private=private)
        request = build_request(**options, input_images=images)
        source = Source(kind, sources[0].url if sources else None, source_job_id)
        await self.flow.submit(interaction, request, private=private, source=source)

    async def carry_on(self, interaction: discord.Interaction, job: Job, button: CarryOn) -> None:
        """A carry-on button (:data:`cogs._buttons.CARRY_ON`): the stored request and the result → a new request."""
        stored = await stored_request(job)
        model = button.derive(stored, _PLACEHOLDER).model.key  # validation first: a refusal costs no download
        result = self._result_image(interaction)

        async def derived() -> GenerationRequest:
            [image] = await self._load(model, [result], None)
            return await fit_request(button.derive(stored, image))  # an outpainting's reference at its placed size

        request = await self._within_budget(interaction, derived(), private=job.private)
        source = Source(button.kind, result.url, job.id)
        await self.flow.submit(interaction, request, private=job.private, source=source)

    async def _loaded(
        self,
        interaction: discord.Interaction,
        model: str,
        sources: Sequence[SourceImage],
        preloaded: Sequence[InputImage] | None,
        *,
        private: bool,
    ) -> list[InputImage]:
        """The input images, fetched and defused within the acknowledgement budget (past it, deferred)."""
        return await self._within_budget(interaction, self._load(model, sources, preloaded), private=private)

    async def _within_budget(self, interaction: discord.Interaction, work: Awaitable[T], *, private: bool) -> T:
        """``work`` (a download, a resize) within the acknowledgement budget: past it, the interaction is deferred."""
        loading = asyncio.ensure_future(work)
        try:
            await within_budget(interaction, loading, private=private)
        except BaseException:
            loading.cancel()  # nothing is admitted yet: the work simply stops
            raise
        return await loading

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

    async def on_action(self, action: str, interaction: discord.Interaction, job_id: int) -> None:
        """Run a result button: vary, edit, delete, details, or a carry-on (More detail, Sharpen, zoom and pan)."""
        job = await self.job_for(interaction, job_id)
        if action != "delete":
            require_details(job)  # its prompt was erased (retention or /privacy forget): nothing to work on
        if action == "details":
            await self.details(interaction, job)
        elif action == "delete":
            await self.delete(interaction, job)
        elif action == "edit":
            source = self._result_image(interaction)
            asked = await stored_request(job)  # the request record, never the payload
            modal = EditModal(self, source, default_model=_edit_model_for(asked.model.key), source_job_id=job.id)
            await interaction.response.send_modal(modal)
        elif action in CARRY_ON and CARRY_ON[action].asks:  # Animate: the video switch, then its modal
            offer = getattr(self.bot.get_cog("Animate"), "offer", None)  # cogs/animate.py: Animate.offer
            if offer is None:  # pragma: no cover - every extension is loaded with the bot
                raise InvalidOptions("This button isn't available right now.")
            await offer(interaction, job, self._result_image(interaction).url)
        elif action in CARRY_ON:
            await self.carry_on(interaction, job, CARRY_ON[action])
        elif action == "vary":
            asked = await stored_request(job)
            await self.run_edit(
                interaction,
                prompt=asked.prompt,
                model=_edit_model_for(asked.model.key),
                sources=[self._result_image(interaction)],
                kind="vary",
                source_job_id=job.id,
            )
        else:  # pragma: no cover - the template admits only the actions above
            raise InvalidOptions("This button isn't available right now.")

    def _result_image(self, interaction: discord.Interaction) -> SourceImage:
        message = interaction.message
        source = message_image(message) if message is not None else None
        if source is None:
            raise InvalidOptions("That result has no image left to work on.")
        return source

    async def delete(self, interaction: discord.Interaction, job: Job) -> None:
        """The requester or a moderator removes the result message and its cached bytes."""
        if interaction.user.id != job.user_id and not await is_moderator(interaction, self.services.server.settings):
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
        embed = await details_embed(job, self.sources)
        await interaction.response.send_message(embed=embed, ephemeral=True)


async def setup(bot: FluxcordBot) -> None:
    """Load the cog (its message menu registers itself) and the result buttons it answers."""
    cog = Edit(bot)
    register(bot, {ResultButton: cog})
    await bot.add_cog(cog)


async def teardown(bot: FluxcordBot) -> None:
    """Unregister the result buttons."""
    unregister(bot, ResultButton)
