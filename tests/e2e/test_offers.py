"""Pending offers are durable: a price confirmation survives a restart like every other button."""

from __future__ import annotations

from bot.app import assemble
from bot.bfl.client import PollSchedule
from tests.e2e.conftest import BotHarness
from tests.e2e.support import bot_settings
from tests.fakes.fake_bfl import Behaviour

FOUR_K = {"prompt": "a cathedral", "model": "flux-3-image", "resolution": "4k"}


def _buttons(message):
    [row] = message["components"]
    return [c["custom_id"] for c in row["components"]]


async def test_a_price_confirmation_survives_a_restart_and_charges_once(discord_endpoints, fake_bfl, tmp_path):
    fake = discord_endpoints
    settings = bot_settings(fake, fake_bfl, tmp_path, default_member_daily_usd="5")
    polls = PollSchedule(first_interval=0.005, quick_phase=0.05, factor=1.5, max_interval=0.02, jitter=0.0)
    options = {"poll_schedule": polls, "backoff_base": 0.001, "backoff_cap": 0.01}
    async with assemble(settings, bfl_options=options, guild_ready_timeout=0.05) as bot, fake.run_bot(bot):
        asked = await fake.slash("imagine", FOUR_K)
        await asked.wait_acked()
        assert asked.ephemeral and "$0.607" in asked.original_message["content"]
    go, _no = _buttons(asked.original_message)
    assert fake_bfl.submits == []
    async with assemble(settings, bfl_options=options, guild_ready_timeout=0.05) as bot, fake.run_bot(bot):
        harness = BotHarness(bot, fake, fake_bfl, settings)
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
