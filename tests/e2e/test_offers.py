"""Pending offers are durable: a price confirmation survives a restart like every other button."""

from __future__ import annotations

from tests.e2e.conftest import running_bot
from tests.e2e.support import bot_settings
from tests.fakes.fake_bfl import Behaviour

FOUR_K = {"prompt": "a cathedral", "model": "flux-3-image", "resolution": "4k"}


def _buttons(message):
    return [c["custom_id"] for row in message["components"] for c in row["components"]]


async def test_a_price_confirmation_survives_a_restart_and_charges_once(discord_endpoints, fake_bfl, tmp_path):
    fake = discord_endpoints
    settings = bot_settings(fake, fake_bfl, tmp_path, default_member_daily_usd="5")
    async with running_bot(fake, fake_bfl, settings):
        asked = await fake.slash("imagine", FOUR_K)
        await asked.wait_acked()
        assert asked.ephemeral and "$0.607" in asked.original_message["content"]
    go, _no = _buttons(asked.original_message)
    assert fake_bfl.submits == []
    async with running_bot(fake, fake_bfl, settings) as harness:
        bot = harness.bot
        fake_bfl.script(Behaviour(ready_cost=60.7))
        generate = await fake.click(asked.original_message["id"], go)
        await harness.finished(generate)
        assert not generate.ephemeral and generate.original_message["attachments"], harness.reply_text(generate)
        again = await fake.click(asked.original_message["id"], go)  # the offer was taken: a second click runs nothing
        await again.wait_acked()
        assert again.ephemeral and "expired" in again.original_message["content"]
        assert [s.body["resolution"] for s in fake_bfl.submits] == ["4k"]
        db = bot.services.db
        settles = await db.fetch_value("SELECT COUNT(*) FROM ledger WHERE kind = 'settle'", default=0)
        assert settles == 1
        job = await bot.services.jobs.get(int(generate.id))
        assert job.cost_micros == 607_000
