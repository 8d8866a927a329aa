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
import io
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Literal

import discord

from bot.aio import cancel_and_wait
from bot.app import Services
from bot.billing.analytics import ALL, GroupBy, by_role, period_filter, spend_by, spend_csv
from bot.billing.export import ExportPart, LedgerExport
from bot.billing.periods import Period
from bot.errors import InvalidOptions

log = logging.getLogger(__name__)

PROGRESS_SECONDS = 3.0
MAX_PART_BYTES = 24 * 1024 * 1024
MAX_ROLE_LOOKUPS = 1_000  # members not in the cache asked of Discord for `group_by:role` (then: no role)
EMPTY_TEXT = "This server's ledger is empty: no money has moved here yet."
ExportPeriod = Literal["day", "week", "month", "all"]
ExportGroup = Literal["member", "role", "channel", "model", "day"]


def chosen_period(value: str | None) -> Period | None:
    """The current day, week or month to export; None for ``all`` (or nothing given)."""
    if value is None or value == ALL:
        return None
    try:
        return Period(value)
    except ValueError:
        raise InvalidOptions("`period` must be day, week, month or all.") from None


async def send_export(
    interaction: discord.Interaction, services: Services, period: str | None, group_by: str | None
) -> None:
    """Answer ``/budget export``: the raw ledger (of ``period``, default all), or its spend summed ``group_by``."""
    guild_id = interaction.guild_id or 0
    chosen = chosen_period(period)
    if group_by is None:
        await send_ledger_export(interaction, services, guild_id, period=chosen)
        return
    try:
        grouping = GroupBy(group_by)
    except ValueError:
        raise InvalidOptions("`group_by` must be member, role, channel, model or day.") from None
    await interaction.response.defer(ephemeral=True, thinking=True)
    now = services.ops.clock()
    if grouping is GroupBy.ROLE:  # by member, then each member's roles now
        members = await spend_by(services.db, guild_id, GroupBy.MEMBER, period=chosen, now=now)
        roles = await _roles_now(interaction.guild, [int(user_id) for user_id, _ in members])
        groups = by_role(members, roles.get)
    else:
        groups = await spend_by(services.db, guild_id, grouping, period=chosen, now=now)
    span = "all time" if chosen is None else f"this {chosen.value}"
    name = f"fluxcord-spend-by-{grouping.value}-{guild_id}-{period or ALL}.csv"
    file = discord.File(io.BytesIO(spend_csv(grouping, groups)), filename=name)
    text = f"Spend by {grouping.value}, {span}: {len(groups):,} rows (spend_usd, images, jobs; grants left out)."
    if grouping is GroupBy.ROLE:
        text += " Each member counts under every role they have now; members the bot can't see are under no role."
    await interaction.edit_original_response(content=text, attachments=[file])


async def _roles_now(guild: discord.Guild | None, user_ids: list[int]) -> dict[int, Sequence[int] | None]:
    """Each member's role ids now (``@everyone`` included), from the cache or asked of Discord; None: unknown.

    At most :data:`MAX_ROLE_LOOKUPS` members are asked; someone who left (or past the cap) has None.
    """
    found: dict[int, Sequence[int] | None] = {}
    asked = 0
    for user_id in user_ids:
        member = guild.get_member(user_id) if guild is not None else None
        if member is None and guild is not None and user_id and asked < MAX_ROLE_LOOKUPS:
            asked += 1
            try:
                member = await guild.fetch_member(user_id)
            except discord.NotFound:
                member = None
        found[user_id] = None if member is None else [role.id for role in member.roles]
    return found


async def send_ledger_export(
    interaction: discord.Interaction, services: Services, guild_id: int, *, period: Period | None = None
) -> None:
    """Answer ``/budget export``: defer, stream the ledger into CSV parts, post them, report what was sent."""
    await interaction.response.defer(ephemeral=True, thinking=True)
    assert services.settings.cache_dir is not None  # filled in by Settings
    export = LedgerExport(
        services.db,
        guild_id,
        max_bytes=min(interaction.filesize_limit, MAX_PART_BYTES),
        directory=Path(services.settings.cache_dir),
        only=period_filter(period, services.ops.clock()),
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
