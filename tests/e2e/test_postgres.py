"""The real bot on PostgreSQL (DATABASE_URL): checks that only make sense there.

Every harness test runs on both databases (the ``backend`` fixture in conftest.py); this one checks
that the PostgreSQL run really uses PostgreSQL and leaves the SQLite path alone.
"""

import pytest

from bot.engine.states import JobStatus

pytestmark = pytest.mark.parametrize("backend", ["postgresql"], indirect=True)


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
