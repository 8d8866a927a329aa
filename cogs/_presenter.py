"""The Discord side of a job: progress texts, the result card, and posting through the interaction.

The engine holds no Discord objects: a job row carries its interaction's application id and token,
and this presenter edits the interaction's original message through them (the same webhook route
``Interaction.edit_original_response`` uses), so it works the same for a job that outlived the
process that admitted it. Past the token's 15 minutes, results go to the channel, mentioning the member.
"""

from __future__ import annotations

import io
import logging
import math
from collections.abc import Awaitable, Callable
from typing import Any

import discord

from bot.billing.money import format_usd
from bot.clock import Clock, utc_now
from bot.engine.groups import Group, GroupResult
from bot.engine.outcomes import CANCELLED_TEXT
from bot.engine.progress import TOKEN_LIFETIME, GroupPosted, Posted, Progress, Result, Undeliverable, reencoded_reason
from bot.engine.states import JobStatus
from bot.engine.store import Job
from bot.images.codec import EncodedImage, InvalidImage, fit_for_upload
from bot.models import MODELS
from bot.text import strip_bidi

log = logging.getLogger(__name__)

# Discord's answers when the interaction's message cannot be edited: its token is past its life or gone
# (50027, 10015), or the message itself is gone (10008: deleted, or never shown): the channel instead.
GONE_CODES = {50027, 10015, 10008}
# Discord's name for an interaction's first message; discord.py's Webhook.edit_message is typed for ids
# only (int), and its own "@original" routes are private (its adapter), hence the ignores where it is used.
ORIGINAL = "@original"

ViewFactory = Callable[[int], discord.ui.View]
GalleryFactory = Callable[..., discord.ui.LayoutView]  # (GroupResult, file names, mention=) → the gallery
SourceLookup = Callable[[int], Awaitable[str | None]]  # job id → the source image URL of an edit


PAUSED_TEXT = "⏸️ Paused by this server's moderators"


def model_label(key: str) -> str:
    """The model's display name (its key if it is no longer in the table)."""
    spec = MODELS.get(key)
    return spec.label if spec else key


def shown_position(place: int) -> str:
    """A queue place as shown: exact near the front, rounded further back (fewer message edits)."""
    if place <= 10:
        return f"#{place}"
    step = 10 if place <= 100 else 50
    return f"~#{int(round(place / step) * step)}"


def shown_wait(seconds: float) -> str:
    """An estimated wait, rounded so the text does not change with every tick."""
    if seconds < 60:
        return f"about {max(5, int(math.ceil(seconds / 5) * 5))} s"
    return f"about {math.ceil(seconds / 60)} min"


def progress_text(progress: Progress) -> str:
    """The message shown while a job (or a group of images) is queued or running."""
    label = model_label(progress.model)
    if progress.count > 1:
        return _group_progress_text(progress, label)
    if progress.status is JobStatus.QUEUED and progress.paused:
        return f"{PAUSED_TEXT} · your request keeps its place and runs when they resume (nothing is charged until then)"
    if progress.status is JobStatus.QUEUED:
        text = "⏳ Queued"
        if progress.position is not None:
            text = f"⏳ {shown_position(progress.position)} in queue"
        if progress.eta_seconds is not None:
            text += f" · {shown_wait(progress.eta_seconds)}"
        return text
    if progress.status is JobStatus.SUBMITTING:
        return f"📨 Sending to {label}…"
    if progress.status is JobStatus.DOWNLOADING:
        return "📥 Fetching the image…"
    if progress.status in (JobStatus.CACHED, JobStatus.DELIVERING):
        return "📦 Posting your image…"
    if progress.bfl_stage == "Reasoning":
        text = f"🧠 {label} is thinking about your prompt…"
    else:
        text = f"🎨 Generating with {label}…"
    if progress.elapsed_seconds >= 2:
        text += f" ({int(progress.elapsed_seconds)} s)"
    return text


def _group_progress_text(progress: Progress, label: str) -> str:
    images = f"{progress.count} images"
    if progress.status is JobStatus.QUEUED and progress.ready == 0 and progress.paused:
        return f"{PAUSED_TEXT} · {images} with {label} keep their place and run when they resume"
    if progress.status is JobStatus.QUEUED and progress.ready == 0:
        text = f"⏳ {shown_position(progress.position)} in queue" if progress.position is not None else "⏳ Queued"
        text += f" · {images} with {label}"
        if progress.eta_seconds is not None:
            text += f" · {shown_wait(progress.eta_seconds)}"
        return text
    text = f"🎨 Making {images} with {label}… {progress.ready} of {progress.count} ready"
    return text + (f" · {progress.cancelled} cancelled" if progress.cancelled else "")


def render_embed(
    result: Result, filename: str, width: int, height: int, requester_name: str, source_url: str | None = None
) -> discord.Embed:
    """The result card: prompt, model (and style), size, seed, cost and time taken; for an edit, its source image."""
    job = result.job
    prompt = discord.utils.escape_mentions(discord.utils.escape_markdown(strip_bidi(job.prompt)))
    embed = discord.Embed(description=prompt[:4000], colour=discord.Colour.blurple())
    embed.set_author(name=f"Requested by {strip_bidi(requester_name)}"[:256])
    embed.add_field(name="Model", value=model_label(job.model))
    if job.style:  # a server style was applied to the prompt (bot.styles)
        embed.add_field(name="Style", value=discord.utils.escape_markdown(strip_bidi(job.style))[:1024])
    embed.add_field(name="Size", value=f"{width}×{height} ({job.aspect_ratio or '?'})")
    spec = MODELS.get(job.model)
    embed.add_field(name="Seed", value=str(job.seed) if spec is None or spec.has_seed else "— (no seed)")
    embed.add_field(name="Cost", value="free (from cache)" if result.from_cache else format_usd(result.cost_micros))
    embed.add_field(name="Time", value="instant" if result.from_cache else f"{result.elapsed_seconds:.1f} s")
    embed.set_image(url=f"attachment://{filename}")
    if source_url and source_url.startswith(("https://", "http://")) and len(source_url) <= 1000:
        embed.set_thumbnail(url=source_url)
        embed.add_field(name="Source", value=f"[source image]({source_url})", inline=False)
    embed.set_footer(text=f"{ai_generated(job.model)} · Job {job.id}")  # EU AI Act Art. 50: disclosed as such
    return embed


def ai_generated(model: str) -> str:
    """The disclosure every result carries: ``AI-generated with FLUX.2 [pro] (Black Forest Labs)``."""
    return f"AI-generated with {model_label(model)} (Black Forest Labs)"


def file_size(size: int) -> str:
    """``19.5 KiB`` / ``10 MiB``."""
    if size >= 1024 * 1024:
        return f"{size / 1024 / 1024:.1f}".removesuffix(".0") + " MiB"
    return f"{size / 1024:.1f}".removesuffix(".0") + " KiB"


def posted_file_text(job: Job) -> str | None:
    """Details' word on the posted file: BFL's original (C2PA provenance kept) or a re-encoded copy, and why."""
    if job.result_file is None:
        return "Not recorded for this result." if job.status is JobStatus.DELIVERED else None
    why = reencoded_reason(job.result_file)
    if why is None:
        return f"BFL's original file, with its C2PA provenance (content credentials). {ai_generated(job.model)}."
    return f"A re-encoded copy, so BFL's C2PA provenance is lost: {why}. {ai_generated(job.model)}."


def reencoded_because(original: bytes, encoded: EncodedImage, limit: int) -> str | None:
    """Why the posted file is not BFL's original (its provenance lost); None when it is the original."""
    if not encoded.reencoded:
        return None
    return f"the original ({file_size(len(original))}) is over Discord's upload limit here ({file_size(limit)})"


class DiscordPresenter:
    """Implements :class:`bot.engine.progress.Presenter` with discord.py."""

    def __init__(
        self,
        client: discord.Client,
        *,
        result_view: ViewFactory,
        cancel_view: ViewFactory,
        clock: Clock = utc_now,
        source_lookup: SourceLookup | None = None,
        gallery_view: GalleryFactory | None = None,
        group_showing_progress: Callable[[int], Awaitable[bool]] | None = None,
    ) -> None:
        self._client = client
        self._result_view = result_view
        self._cancel_view = cancel_view
        self._clock = clock
        self._source_lookup = source_lookup
        self._gallery_view = gallery_view
        self._group_showing_progress = group_showing_progress

    def progress_text(self, progress: Progress) -> str:
        """See :func:`progress_text`."""
        return progress_text(progress)

    def _webhook(self, owner: Job | Group) -> discord.Webhook | None:
        """A job's (or a group's) interaction webhook while its token lasts: deliveries may use all 15 minutes."""
        token = owner.interaction_token
        if owner.application_id is None or token is None or self._clock() >= owner.created_at + TOKEN_LIFETIME:
            return None
        return discord.Webhook.partial(owner.application_id, token, client=self._client)

    async def _edit_or_post(
        self,
        webhook: discord.Webhook | None,
        *,
        channel_id: int,
        user_id: int,
        private: bool,
        edit: Callable[[], dict[str, Any]],
        post: Callable[[], dict[str, Any]],
        what: str,
        nonce: str | None = None,
    ) -> tuple[int, int] | None:
        """Edit the interaction's original message; once it or its token is gone, post in the channel instead.

        The channel post mentions the member (and only them) and carries ``nonce`` with
        ``enforce_nonce``, so a retried post (after a timeout, a restart, a takeover) returns the first
        message instead of a second one. A private answer is never posted in the channel: with a
        ``nonce`` (a result) it goes to the member by DM, else None. ``edit`` and ``post`` build their
        arguments per attempt (a ``File`` is used up by one send); (channel id, message id) shown.
        """
        if webhook is not None:
            try:
                message = await webhook.edit_message(ORIGINAL, **edit())  # type: ignore[call-overload]  # see ORIGINAL
                return message.channel.id, message.id
            except discord.HTTPException as exc:
                if exc.code not in GONE_CODES:
                    raise
        if private:
            return None if nonce is None else await self._direct_message(user_id, post, what, nonce)
        log.info("%s: the interaction is gone; posting in the channel", what)
        extra: dict[str, Any] = {"nonce": nonce} if nonce is not None else {}  # none: discord.py makes one
        posted = await self._client.get_partial_messageable(channel_id).send(
            **post(), **extra, allowed_mentions=discord.AllowedMentions(users=[discord.Object(user_id)])
        )
        return channel_id, posted.id

    async def _direct_message(
        self, user_id: int, post: Callable[[], dict[str, Any]], what: str, nonce: str
    ) -> tuple[int, int]:
        """A private result whose interaction is gone: to the member by DM (:class:`Undeliverable` if closed)."""
        log.info("%s: private and the interaction is gone; sending it by DM", what)
        try:
            channel = await self._client.create_dm(discord.Object(user_id))
            message = await channel.send(**post(), nonce=nonce, allowed_mentions=discord.AllowedMentions.none())
        except discord.Forbidden as exc:  # DMs closed (50007), or the member shares no server with the bot
            raise Undeliverable("the private result's interaction expired and the member's DMs are closed") from exc
        return message.channel.id, message.id

    async def show_progress(self, job: Job, progress: Progress, text: str) -> None:
        """Edit the job's message; the Cancel button stays only while the job is queued."""
        webhook = self._webhook(job)
        if webhook is None:
            return
        showing = self._group_showing_progress
        # A group's line (its id is the group's): another process may have started posting the gallery.
        if job.group_id == job.id and showing is not None and not await showing(job.id):
            return
        view = self._cancel_view(job.id) if progress.cancellable else None
        await webhook.edit_message(ORIGINAL, content=text, view=view)  # type: ignore[call-overload]  # see ORIGINAL

    async def deliver(self, result: Result) -> Posted:
        """Post the image in the interaction's message, or in the channel (by DM if private) once the token is gone.

        Posting the same result again edits the same message, or returns the first channel post (nonce).
        BFL's original bytes (with their C2PA provenance) when they fit the upload limit; only otherwise
        a re-encoded copy, and :class:`Posted` says why.
        """
        job = result.job
        try:
            encoded = await fit_for_upload(result.data, job.upload_limit, basename=f"fluxcord-{job.id}")
        except InvalidImage as exc:
            raise RuntimeError(f"the image could not be prepared for Discord: {exc}") from exc
        name = await self._member_name(job)
        source_url = await self._source_lookup(job.id) if self._source_lookup is not None else None
        embed = render_embed(result, encoded.filename, encoded.width, encoded.height, name, source_url)

        def attachment() -> discord.File:  # a File is consumed by a send: one per attempt
            return discord.File(io.BytesIO(encoded.data), filename=encoded.filename)

        where = await self._edit_or_post(
            self._webhook(job),
            channel_id=job.channel_id,
            user_id=job.user_id,
            private=job.private,
            edit=lambda: {
                "content": None,
                "embed": embed,
                "attachments": [attachment()],
                "view": self._result_view(job.id),
            },
            post=lambda: {
                "content": f"<@{job.user_id}> your image is ready.",
                "embed": embed,
                "file": attachment(),
                "view": self._result_view(job.id),
            },
            what=f"Job {job.id}",
            nonce=f"fx{job.id}",  # ≤ 25 characters: a snowflake is ≤ 20 digits
        )
        assert where is not None  # a private result went by DM or raised
        return Posted(*where, reencoded=reencoded_because(result.data, encoded, job.upload_limit))

    async def notify(self, job: Job, text: str) -> None:
        """Replace the job's message with ``text`` (or tell the member in the channel past the token)."""
        where = await self._edit_or_post(
            self._webhook(job),
            channel_id=job.channel_id,
            user_id=job.user_id,
            private=job.private,
            edit=lambda: _text_only(text),
            post=lambda: {"content": f"<@{job.user_id}> {text}\n-# Job {job.id}"},  # which request it answers
            what=f"Job {job.id}",
        )
        if where is None:
            log.info("Job %s: private, and its interaction expired; the member can't be told", job.id)

    async def deliver_group(self, result: GroupResult) -> GroupPosted:
        """Post a finished group as ONE Components V2 message (a media gallery), or say that none made it.

        Each image as :meth:`deliver` posts one: BFL's original unless it does not fit the upload limit.
        """
        group = result.group
        if not result.results:
            from cogs._gallery import all_failed_text

            text = all_failed_text(result) if result.failed else CANCELLED_TEXT  # none made: failed, or cancelled
            told = await self._group_text(group, text)
            return GroupPosted(told.channel_id, told.message_id)
        gallery_view = self._gallery_view
        assert gallery_view is not None
        encoded = []
        for res in result.results:
            try:
                encoded.append(await fit_for_upload(res.data, res.job.upload_limit, basename=f"fluxcord-{res.job.id}"))
            except InvalidImage as exc:
                raise RuntimeError(f"image {res.job.id} could not be prepared for Discord: {exc}") from exc
        names = [e.filename for e in encoded]
        requester = await self._member_name(result.results[0].job)

        def files() -> list[discord.File]:  # a File is consumed by a send: new ones per attempt
            return [discord.File(io.BytesIO(e.data), filename=e.filename) for e in encoded]

        where = await self._edit_or_post(
            self._webhook(group),
            channel_id=group.channel_id,
            user_id=group.user_id,
            private=group.private,
            edit=lambda: {
                "content": None,
                "embed": None,
                "attachments": files(),
                "view": gallery_view(result, names, requester=requester),
                "allowed_mentions": discord.AllowedMentions.none(),
            },
            post=lambda: {
                "files": files(),
                "view": gallery_view(result, names, requester=requester, mention=group.user_id),
            },
            what=f"Group {group.id}",
            nonce=f"fxg{group.id}",
        )
        assert where is not None  # a private group went by DM or raised
        reencoded = {
            res.job.id: reencoded_because(res.data, enc, res.job.upload_limit)
            for res, enc in zip(result.results, encoded, strict=True)
        }
        return GroupPosted(*where, reencoded=reencoded)

    async def tell_group(self, group: Group, text: str) -> None:
        """Replace a group's message with ``text`` (e.g. a Cancel whose click could not be answered)."""
        await self._group_text(group, text)

    async def _group_text(self, group: Group, text: str) -> Posted:
        where = await self._edit_or_post(
            self._webhook(group),
            channel_id=group.channel_id,
            user_id=group.user_id,
            private=group.private,
            edit=lambda: _text_only(text),
            post=lambda: {"content": f"<@{group.user_id}> {text}\n-# Job {group.id}"},
            what=f"Group {group.id}",
            nonce=f"fxg{group.id}",
        )
        assert where is not None
        return Posted(*where)

    async def member_name(self, job: Job) -> str:
        """The requester's display name (for a result card)."""
        return await self._member_name(job)

    async def _member_name(self, job: Job) -> str:
        guild = self._client.get_guild(job.guild_id)
        member = guild.get_member(job.user_id) if guild else None
        if member is not None:
            return member.display_name
        user = self._client.get_user(job.user_id)
        return user.display_name if user else f"member {job.user_id}"


def _text_only(text: str) -> dict[str, Any]:
    """An original message edited down to ``text``: no embed, files or buttons, and no pings."""
    return {
        "content": text,
        "embed": None,
        "attachments": [],
        "view": None,
        "allowed_mentions": discord.AllowedMentions.none(),
    }
