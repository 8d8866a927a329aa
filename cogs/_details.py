"""What the Details button shows: a job's full prompt, model, options, seed, size, cost, timings, source."""

from __future__ import annotations

from typing import Any

import discord

from bot.billing.money import format_usd
from bot.engine.sources import JobSources
from bot.engine.store import Job
from bot.models import MODELS, ModelSpec
from bot.models.derive import IMAGE_FIELDS, payload_images
from bot.safety.levels import DEFAULT_TOLERANCE
from bot.text import strip_bidi
from cogs._presenter import posted_file_text


async def details_embed(job: Job, sources: JobSources) -> discord.Embed:
    """What Details shows: the full prompt, model, options, seed, size, cost, job id, timings."""
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
        if k not in ("prompt", "seed", "width", "height", "safety_tolerance", *IMAGE_FIELDS, "images") and v is not None
    }
    inputs = len(payload_images(job.params))  # what was sent: Details shows the payload
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
    source = await sources.get(job.id)
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
