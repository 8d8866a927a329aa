"""`/budget export`: a server's ledger as CSV files, deferred at once, with progress while it runs.

The rows stream out of the database into parts that each fit one upload (the interaction's
``attachment_size_limit``, at most :data:`MAX_PART_BYTES` so a message stays under Discord's 25 MiB
request cap), written to unnamed temporary files beside the image cache (never all in memory). The
answer is deferred before the first query, so Discord's 3 seconds never run out; the deferred message
shows how many rows are done (every :data:`PROGRESS_SECONDS` while the export runs) and says what was
sent at the end. A ledger that fits one file comes on that message, as ``fluxcord-ledger-<server>.csv``
like always; a longer one comes in private follow-ups, ``…-part1.csv``, ``…-part2.csv``, each posted
as soon as the next one starts.
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import discord

from bot.aio import cancel_and_wait
from bot.app import Services
from bot.billing.export import ExportPart, LedgerExport

log = logging.getLogger(__name__)

PROGRESS_SECONDS = 3.0
MAX_PART_BYTES = 24 * 1024 * 1024
EMPTY_TEXT = "This server's ledger is empty: no money has moved here yet."


async def send_ledger_export(interaction: discord.Interaction, services: Services, guild_id: int) -> None:
    """Answer ``/budget export``: defer, stream the ledger into CSV parts, post them, report what was sent."""
    await interaction.response.defer(ephemeral=True, thinking=True)
    assert services.settings.cache_dir is not None  # filled in by Settings
    export = LedgerExport(
        services.db,
        guild_id,
        max_bytes=min(interaction.filesize_limit, MAX_PART_BYTES),
        directory=Path(services.settings.cache_dir),
    )
    total = await export.total()
    if total == 0:
        await interaction.edit_original_response(content=EMPTY_TEXT)
        return
    await interaction.edit_original_response(content=_progress_text(0, total))  # parts follow it, in order
    progress = asyncio.create_task(_show_progress(interaction, export, total), name="fluxcord-export-progress")
    held: ExportPart | None = None  # posted once we know whether another part follows
    sent = 0
    try:
        async for part in export.parts():
            if held is not None:
                await _post_part(interaction, guild_id, held)
                sent += 1
            held = part
    except BaseException:
        if held is not None:
            held.file.close()
        raise
    finally:
        await cancel_and_wait(progress)
    summary = f"The ledger, one row per money movement: {export.rows_done:,} rows in"
    if held is None:
        await interaction.edit_original_response(content=EMPTY_TEXT)
    elif sent == 0:  # it all fits one file: on this message, as a plain fluxcord-ledger-<server>.csv
        with held.file:
            file = discord.File(held.file, filename=f"fluxcord-ledger-{guild_id}.csv")
            await interaction.edit_original_response(content=f"{summary} one file:", attachments=[file])
    else:
        await _post_part(interaction, guild_id, held)
        await interaction.edit_original_response(content=f"{summary} {sent + 1} files, each with the header row.")


async def _post_part(interaction: discord.Interaction, guild_id: int, part: ExportPart) -> None:
    """Post one part of several privately (and close its file)."""
    with part.file:
        file = discord.File(part.file, filename=f"fluxcord-ledger-{guild_id}-part{part.number}.csv")
        await interaction.followup.send(f"Part {part.number}: {part.rows:,} rows.", file=file, ephemeral=True)


def _progress_text(done: int, total: int) -> str:
    return f"Exporting the ledger… {done:,} of {total:,} rows"


async def _show_progress(interaction: discord.Interaction, export: LedgerExport, total: int) -> None:
    """Every :data:`PROGRESS_SECONDS`: how far the export is (a failed edit is only logged)."""
    while True:
        await asyncio.sleep(PROGRESS_SECONDS)
        done = min(export.rows_done, total)
        try:
            await interaction.edit_original_response(content=_progress_text(done, total))
        except discord.HTTPException as exc:
            log.warning("Could not show the export's progress: %s", exc)
