"""The real bot on PostgreSQL (DATABASE_URL): `/imagine` end to end through the fake Discord and BFL."""

import pytest

from bot.engine.states import JobStatus


@pytest.fixture
def bot_settings_overrides(pg_url):
    return {"database_url": pg_url, "database_pool_size": 4}


async def test_imagine_end_to_end_on_postgresql(harness):
    services = harness.services
    assert services.db.backend == "postgresql"
    interaction = await harness.imagine(prompt="a lighthouse at dusk", aspect_ratio="16:9")
    message = interaction.original_message
    assert message["attachments"], harness.reply_text(interaction)
    job = await services.jobs.get(int(interaction.id))
    assert job.status is JobStatus.DELIVERED and job.cost_micros == 40_000
    kinds = [r["kind"] for r in await services.db.fetch_all("SELECT kind FROM ledger ORDER BY id")]
    assert kinds == ["reserve", "settle"]
    assert await services.ledger.verify_counters() == []
    assert not harness.settings.database_path.exists()  # nothing went to the SQLite file
