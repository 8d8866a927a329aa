"""A FLUX 3 video on Discord (Animate, ``/animate``): an ``.mp4`` attachment when it fits, else a private link.

A video is never decoded, re-encoded or resized (:mod:`bot.images.codec` would refuse an MP4 anyway): it is
posted as BFL made it when it fits the upload limit the interaction reported (``job.upload_limit``), and
otherwise BFL's signed URL is given to the member alone, with the time it stops working read from its ``se=``
(:func:`bot.models.video.link_expiry`, about 2 hours). The card says which, with the length, quality and cost.

Where the link goes: a private request's card is itself private (ephemeral, or a DM once its token is gone), so
the link rides in it. A public request's card goes where any result goes and says the link was sent privately;
the link itself is an ephemeral follow-up while the interaction's 15-minute token lives, and a DM after that
(a queued video can outlast the token), like every private result whose token died
(:meth:`cogs._presenter.DiscordPresenter._direct_message`). A member whose DMs are closed is told so on the card.
"""

from __future__ import annotations

import io
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING

import discord

from bot.billing.money import format_usd
from bot.engine.progress import Posted, Result, Undeliverable
from bot.engine.store import Job
from bot.models.video import VIDEO_DEFAULT_QUALITY, VIDEO_DEFAULT_SECONDS, link_expiry
from bot.text import strip_bidi
from cogs._job_texts import ai_generated, file_size, model_label

if TYPE_CHECKING:
    from cogs._presenter import DiscordPresenter

log = logging.getLogger(__name__)

DMS_CLOSED = "the member's DMs are closed, so the link could not be sent"


def video_filename(job: Job) -> str:
    """The attachment's name: ``fluxcord-<job id>.mp4``."""
    return f"fluxcord-{job.id}.mp4"


def link_text(job: Job) -> str:
    """The private message with a video's link and when it stops working."""
    url = job.sample_url or ""
    expiry = link_expiry(url)
    until = f", valid until <t:{int(expiry.timestamp())}:f> (<t:{int(expiry.timestamp())}:R>)" if expiry else ""
    return f"🎬 Your video (job {job.id}) is too large to upload here. Here is its link{until}:\n{url}"


def video_card(result: Result, requester: str, *, delivery: str) -> discord.Embed:
    """The result card of a video: prompt, model, length, quality and size, cost, time, and how it was delivered."""
    job = result.job
    prompt = discord.utils.escape_mentions(discord.utils.escape_markdown(strip_bidi(job.prompt)))
    embed = discord.Embed(description=prompt[:4000], colour=discord.Colour.blurple())
    embed.set_author(name=f"Requested by {strip_bidi(requester)}"[:256])
    embed.add_field(name="Model", value=model_label(job.model))
    embed.add_field(name="Length", value=f"{job.params.get('duration', VIDEO_DEFAULT_SECONDS)} s")
    quality = job.params.get("resolution", VIDEO_DEFAULT_QUALITY)
    embed.add_field(name="Quality", value=f"{quality} ({job.width}×{job.height}, {job.aspect_ratio or '?'})")
    embed.add_field(name="Cost", value=format_usd(result.cost_micros))
    embed.add_field(name="Time", value=f"{result.elapsed_seconds:.1f} s")
    embed.add_field(name="Video", value=delivery[:1024], inline=False)
    embed.set_footer(text=f"{ai_generated(job.model)} · Job {job.id}")
    return embed


def _shows_card(job: Job) -> Callable[[discord.Message], bool]:
    """The message carries this job's card (a card's edit landed)."""
    return lambda message: any((e.footer.text or "").endswith(f"Job {job.id}") for e in message.embeds)


async def deliver_video(presenter: DiscordPresenter, result: Result, view: discord.ui.View | None) -> Posted:
    """Post a finished video: attached when it fits ``job.upload_limit``, else as a private link (see the module)."""
    job = result.job
    if len(result.data) <= job.upload_limit:
        return await _attached(presenter, result, view)
    return await _linked(presenter, result, view)


async def _attached(presenter: DiscordPresenter, result: Result, view: discord.ui.View | None) -> Posted:
    job = result.job
    name = video_filename(job)
    delivery = f"Attached: `{name}` ({file_size(len(result.data))}), BFL's original file."
    embed = video_card(result, await presenter.member_name(job), delivery=delivery)

    def attachment() -> discord.File:  # a File is consumed by a send: one per attempt
        return discord.File(io.BytesIO(result.data), filename=name)

    where = await presenter.edit_or_post(
        job,
        edit=lambda: {"content": None, "embed": embed, "attachments": [attachment()], "view": view},
        post=lambda: {
            "content": f"<@{job.user_id}> your video is ready.",
            "embed": embed,
            "file": attachment(),
            "view": view,
        },
        shows=lambda message: name in {a.filename for a in message.attachments},
    )
    return Posted(*where)


async def _linked(presenter: DiscordPresenter, result: Result, view: discord.ui.View | None) -> Posted:
    job = result.job
    over = f"{file_size(len(result.data))}, over this server's upload limit of {file_size(job.upload_limit)}"
    if job.private:  # the card only the member sees carries the link itself
        delivery = f"Too large to attach ({over}). {link_text(job)}"
    else:
        delivery = f"Too large to attach ({over}): the link was sent to <@{job.user_id}> privately"
        try:
            await presenter.send_privately(job, link_text(job), nonce=f"fxv{job.id}")
            expiry = link_expiry(job.sample_url or "")
            delivery += f", valid until <t:{int(expiry.timestamp())}:f>." if expiry else "."
        except Undeliverable:
            log.info("Job %s: its video's link could not be sent privately (DMs closed)", job.id)
            delivery = f"Too large to attach ({over}), and {DMS_CLOSED}."
    embed = video_card(result, await presenter.member_name(job), delivery=delivery)
    content = f"<@{job.user_id}> your video is ready."
    where = await presenter.edit_or_post(
        job,
        edit=lambda: {"content": None, "embed": embed, "attachments": [], "view": view},
        post=lambda: {"content": content, "embed": embed, "view": view},
        shows=_shows_card(job),
    )
    return Posted(*where)
