"""A fallback offer pending when the bot is upgraded still works: 0024 moves ``fallback_offers`` into ``offers``.

The old database is built the way the other upgrade tests build one (migrations 1..23 exactly, on both
backends), and the offer is written as the old bot wrote it (its own row in ``fallback_offers``). Opened
the normal way, the database is upgraded; the member's click then takes the offer, once.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta

import pytest

from bot.audit import AuditLog
from bot.clock import to_millis
from bot.engine.fallback import FallbackOffers
from bot.errors import InvalidOptions
from bot.models import build_request
from bot.offers import OfferStore
from bot.server_settings import ServerSettings
from bot.storage.database import Database
from tests.bot.storage.test_upgrades import at_version

GUILD, ALICE, MOD = 1000, 3000, 9000
KLEIN = "flux-2-klein-4b"
BEFORE_ONE_TABLE = 23  # the last schema version with its own fallback_offers table
NOW = datetime(2026, 12, 7, 6, 0, tzinfo=UTC)


async def _old_offer(db: Database, offer_id: str, *, source: tuple | None) -> None:
    """A pending offer as 0014's table held it (bot/engine/fallback.py before 0024)."""
    request = build_request(model=KLEIN, prompt="a lighthouse", aspect_ratio="3:2", seed=12)
    kind, url, job = source or (None, None, None)
    await db.execute(
        "INSERT INTO fallback_offers (id, guild_id, user_id, model, request, private, source_kind, source_url,"
        " source_job_id, created_at, expires_at, images) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (offer_id, GUILD, ALICE, KLEIN, request.record_json(), 1, kind, url, job, to_millis(NOW),
         to_millis(NOW + timedelta(seconds=600)), 3 if source is None else 1),
    )  # fmt: skip


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
async def test_a_pending_fallback_offer_survives_the_upgrade_and_still_works(backend, tmp_path, request, caplog):
    db, target = await at_version(backend, BEFORE_ONE_TABLE, tmp_path, request)
    try:
        await db.execute(
            "INSERT INTO guild_settings (guild_id, fallback_model) VALUES (?, ?)", (GUILD, KLEIN)
        )  # the server's fallback, as /budget fallback set it
        await _old_offer(db, "0123456789abcdef", source=None)
        await _old_offer(db, "fedcba9876543210", source=("vary", "https://cdn.discordapp.com/a.png", 42))
    finally:
        await db.close()

    caplog.set_level(logging.INFO, logger="bot.storage")
    upgraded = await Database.at(target)
    try:
        assert "fallback_offers" not in await upgraded.tables()
        [moved] = [r for r in caplog.records if r.getMessage().startswith("Applied migration 0024")]
        assert moved.levelno == logging.INFO and "fallback_offers 2 → 0, offers 0 → 2" in moved.getMessage()
        assert await upgraded.fetch_value("SELECT COUNT(*) FROM offers WHERE kind = 'fallback'") == 2
        server = ServerSettings(upgraded, AuditLog(upgraded))
        offers = FallbackOffers(OfferStore(upgraded, clock=lambda: NOW), server, healthy=lambda model: True)
        group = await offers.take("0123456789abcdef", guild_id=GUILD, user_id=ALICE)
        assert (group.request.model.key, group.request.prompt, group.request.seed) == (KLEIN, "a lighthouse", 12)
        assert group.private and group.images == 3 and group.source_kind is None
        edit = await offers.take("fedcba9876543210", guild_id=GUILD, user_id=ALICE)
        assert (edit.source_kind, edit.source_url, edit.source_job_id, edit.images) == (
            "vary",
            "https://cdn.discordapp.com/a.png",
            42,
            1,
        )
        with pytest.raises(InvalidOptions):  # taken once
            await offers.take("0123456789abcdef", guild_id=GUILD, user_id=ALICE)
    finally:
        await upgraded.close()
