"""What a job's message says: progress lines, queue places and waits, and the result card (embed).

Pure text and embeds from the engine's data; :mod:`cogs._presenter` posts them.
"""

from __future__ import annotations

import math

import discord

from bot.billing.money import format_usd
from bot.engine.progress import Progress, Result, reencoded_reason
from bot.engine.states import JobStatus
from bot.engine.store import Job
from bot.images.codec import EncodedImage
from bot.models import MODELS
from bot.models.video import is_video_model
from bot.text import strip_bidi

PAUSED_TEXT = "⏸️ Paused by this server's moderators"


def model_label(key: str) -> str:
    """The model's display name (its key if it is no longer in the table)."""
    spec = MODELS.get(key)
    return spec.label if spec else key


PRIORITY_TEXT = "⚡ priority"  # a queued job in its server's priority lane (`/budget priority`)


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
        if progress.priority:
            text += f" · {PRIORITY_TEXT}"
        if progress.eta_seconds is not None:
            text += f" · {shown_wait(progress.eta_seconds)}"
        return text
    if progress.status is JobStatus.SUBMITTING:
        return f"📨 Sending to {label}…"
    made = "video" if is_video_model(progress.model) else "image"  # FLUX 3 video: Pending → Reasoning → Generating
    if progress.status is JobStatus.DOWNLOADING:
        return f"📥 Fetching the {made}…"
    if progress.status in (JobStatus.CACHED, JobStatus.DELIVERING):
        return f"📦 Posting your {made}…"
    if progress.bfl_stage == "Reasoning":
        text = f"🧠 {label} is thinking about your {'motion ' if made == 'video' else ''}prompt…"
    elif made == "video":
        text = f"🎬 {label} is making your video…"
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
        if progress.priority:
            text += f" · {PRIORITY_TEXT}"
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
    if is_video_model(job.model):  # never re-encoded: attached as BFL made it, or its link sent privately
        kept = "BFL's MP4, never re-encoded (attached, or a private link over the upload limit)"
        return f"{kept}. {ai_generated(job.model)}."
    why = reencoded_reason(job.result_file)
    if why is None:
        return f"BFL's original file, with its C2PA provenance (content credentials). {ai_generated(job.model)}."
    return f"A re-encoded copy, so BFL's C2PA provenance is lost: {why}. {ai_generated(job.model)}."


def reencoded_because(original: bytes, encoded: EncodedImage, limit: int) -> str | None:
    """Why the posted file is not BFL's original (its provenance lost); None when it is the original."""
    if not encoded.reencoded:
        return None
    return f"the original ({file_size(len(original))}) is over Discord's upload limit here ({file_size(limit)})"
