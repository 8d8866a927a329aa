"""The Discord side of a job: progress texts, the result card, and posting through the interaction.

The engine holds no Discord objects: a job row carries its interaction's application id and token,
and this presenter edits the interaction's original message through them (the same webhook route
``Interaction.edit_original_response`` uses), so it works the same for a job that outlived the
process that admitted it. Past the token's 15 minutes, results go to the channel, mentioning the member.
"""

from __future__ import annotations

import io
import logging
from collections.abc import Awaitable, Callable
from dataclasses import replace
from typing import Any

import discord

from bot.clock import Clock, utc_now
from bot.engine.groups import Group, GroupResult
from bot.engine.outcomes import CANCELLED_TEXT
from bot.engine.progress import TOKEN_LIFETIME, GroupPosted, Posted, Progress, Result, Undeliverable
from bot.engine.store import Job
from bot.images.codec import InvalidImage, fit_for_upload
from bot.models.video import is_video_model
from cogs._job_texts import PAUSED_TEXT as PAUSED_TEXT
from cogs._job_texts import ai_generated as ai_generated
from cogs._job_texts import model_label as model_label
from cogs._job_texts import posted_file_text as posted_file_text
from cogs._job_texts import progress_text, reencoded_because, render_embed
from cogs._readback import GONE_CODES, UNANSWERED, Original, has_files, read_back, says, text_only
from cogs._video_delivery import deliver_video

log = logging.getLogger(__name__)

# Discord's name for an interaction's first message; discord.py's Webhook.edit_message is typed for ids
# only (int), and its own "@original" routes are private (its adapter), hence the ignores where it is used.
ORIGINAL = "@original"

ViewFactory = Callable[[int], discord.ui.View]
GalleryFactory = Callable[..., discord.ui.LayoutView]  # (GroupResult, file names, mention=) → the gallery
SourceLookup = Callable[[int], Awaitable[str | None]]  # job id → the source image URL of an edit


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
        video_view: ViewFactory | None = None,
    ) -> None:
        self._client = client
        self._result_view = result_view
        self._cancel_view = cancel_view
        self._clock = clock
        self._source_lookup = source_lookup
        self._gallery_view = gallery_view
        self._video_view = video_view

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
        shows: Callable[[discord.Message], bool] | None = None,
        original: int | None = None,
    ) -> tuple[int, int] | None:
        """Edit the interaction's original message; once it or its token is gone, post in the channel instead.

        The channel post mentions the member (and only them) and carries ``nonce`` with
        ``enforce_nonce``, so a retried post (after a timeout, a restart, a takeover) returns the first
        message instead of a second one. A private answer is never posted in the channel: with a
        ``nonce`` (a result) it goes to the member by DM, else None. ``edit`` and ``post`` build their
        arguments per attempt (a ``File`` is used up by one send); (channel id, message id) shown.
        An edit left unanswered (a dropped connection, a 5xx) may have landed: the message is read back,
        and if it ``shows`` what was sent it is done (not posted again once the token dies). ``original``:
        the interaction message's id (a public one), read through the bot's token once the interaction's
        is dead, so an earlier edit that landed unanswered is found before anything is posted again.
        """
        where = Original(webhook, channel_id, None if private else original)
        if webhook is not None:
            try:
                message = await webhook.edit_message(ORIGINAL, **edit())  # type: ignore[call-overload]  # see ORIGINAL
                return message.channel.id, message.id
            except discord.HTTPException as exc:
                if exc.code not in GONE_CODES:
                    if isinstance(exc, discord.DiscordServerError) and (seen := await self._landed(where, shows)):
                        return seen
                    raise
            except UNANSWERED as exc:
                if seen := await self._landed(where, shows):
                    return seen
                raise exc
        if where.message_id is not None and (seen := await self._landed(replace(where, webhook=None), shows)):
            return seen  # an earlier edit, its answer lost, had landed: not posted again
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
        """Edit the job's message; the Cancel button stays only while the job is queued.

        Never after its last message, from any process: the engine's paint fence
        (:mod:`bot.engine.paint_fence`) lets this edit run only while its row still shows progress.
        """
        webhook = self._webhook(job)
        if webhook is None:
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
        if is_video_model(job.model):  # an MP4: attached as it is, or a private link (never fitted as an image)
            return await deliver_video(self, result, self._video_view(job.id) if self._video_view else None)
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
            shows=has_files([encoded.filename]),
            original=job.original_message_id,
        )
        assert where is not None  # a private result went by DM or raised
        return Posted(*where, reencoded=reencoded_because(result.data, encoded, job.upload_limit))

    async def edit_or_post(
        self,
        job: Job,
        *,
        edit: Callable[[], dict[str, Any]],
        post: Callable[[], dict[str, Any]],
        shows: Callable[[discord.Message], bool],
    ) -> tuple[int, int]:
        """A result of ``job`` shown as :meth:`deliver` shows one (the same fallbacks and nonce): where it is."""
        where = await self._edit_or_post(
            self._webhook(job),
            channel_id=job.channel_id,
            user_id=job.user_id,
            private=job.private,
            edit=edit,
            post=post,
            what=f"Job {job.id}",
            nonce=f"fx{job.id}",
            shows=shows,
            original=job.original_message_id,
        )
        assert where is not None  # a private result went by DM or raised
        return where

    async def send_privately(self, job: Job, text: str, *, nonce: str) -> None:
        """``text`` to the member alone: an ephemeral follow-up while the token lives, else by DM.

        Raises :class:`Undeliverable` when the token is gone and the member's DMs are closed.
        """
        webhook = self._webhook(job)
        if webhook is not None:
            # The interaction's own webhook (what Interaction.followup is): discord.py sends ephemeral only there.
            webhook.type = discord.WebhookType.application
            try:
                await webhook.send(text, ephemeral=True, allowed_mentions=discord.AllowedMentions.none())
                return
            except discord.HTTPException as exc:
                if exc.code not in GONE_CODES:
                    raise
        await self._direct_message(job.user_id, lambda: {"content": text}, f"Job {job.id}", nonce)

    async def notify(self, job: Job, text: str) -> None:
        """Replace the job's message with ``text`` (or tell the member in the channel past the token)."""
        where = await self._edit_or_post(
            self._webhook(job),
            channel_id=job.channel_id,
            user_id=job.user_id,
            private=job.private,
            edit=lambda: text_only(text),
            post=lambda: {"content": f"<@{job.user_id}> {text}\n-# Job {job.id}"},  # which request it answers
            what=f"Job {job.id}",
            shows=says(text),
            original=job.original_message_id,
        )
        if where is None:  # private, and its interaction is gone: by DM (nonce: a retry sends it once)
            await self._tell_privately(
                job.user_id, f"{text}\n-# Job {job.id}", what=f"Job {job.id}", nonce=f"fxn{job.id}"
            )

    async def _tell_privately(self, user_id: int, text: str, *, what: str, nonce: str) -> None:
        """A private text whose interaction is gone: by DM; if the member's DMs are closed, nobody can be told."""
        try:
            await self._direct_message(user_id, lambda: {"content": text}, what, nonce)
        except Undeliverable:
            log.info("%s: private, its interaction expired and the member's DMs are closed; not told", what)

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
        if any(is_video_model(res.job.model) for res in result.results):  # a video is one job, never a group's
            raise RuntimeError(f"group {group.id} holds a video, which a gallery cannot show")
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
            shows=has_files(names),
            original=group.original_message_id,
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
            edit=lambda: text_only(text),
            post=lambda: {"content": f"<@{group.user_id}> {text}\n-# Job {group.id}"},
            what=f"Group {group.id}",
            nonce=f"fxg{group.id}",
            shows=says(text),
            original=group.original_message_id,
        )
        assert where is not None
        return Posted(*where)

    async def _landed(self, where: Original, shows: Callable[[discord.Message], bool] | None) -> tuple[int, int] | None:
        """After an edit left unanswered: the original message's (channel id, id) if it shows the edit, else None.

        Read through the interaction's webhook while its token lives, else (or if that read fails) through
        the bot's token by the message's id, which never expires; a message that cannot be read is not shown.
        """
        if shows is None:
            return None
        message = None
        if where.webhook is not None:
            webhook = where.webhook
            message = await read_back("the message", lambda: webhook.fetch_message(ORIGINAL))  # type: ignore[arg-type]  # see ORIGINAL
        if message is None and where.message_id is not None:
            channel, message_id = self._client.get_partial_messageable(where.channel_id), where.message_id
            message = await read_back(f"message {message_id}", lambda: channel.fetch_message(message_id))
        return (message.channel.id, message.id) if message is not None and shows(message) else None

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
