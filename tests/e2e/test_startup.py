"""Start-up: command sync is deliberate, never a global sync on every boot."""

from bot.app import assemble, sync_only
from tests.e2e.support import bot_settings


async def start_and_stop(fake, settings):
    async with assemble(settings, guild_ready_timeout=0.05) as bot, fake.run_bot(bot):
        assert bot.services.engine.accepting  # set up: commands synced (or not), open jobs resumed


async def test_restarts_do_not_resync_an_unchanged_command_set(discord_endpoints, fake_bfl, tmp_path):
    fake = discord_endpoints
    settings = bot_settings(fake, fake_bfl, tmp_path)
    await start_and_stop(fake, settings)
    await start_and_stop(fake, settings)
    assert len(fake.command_syncs) == 1
    assert fake.command_syncs[0].guild_id is None  # global, once


async def test_dev_guild_gets_its_own_instant_sync(discord_endpoints, fake_bfl, tmp_path):
    fake = discord_endpoints
    await start_and_stop(fake, bot_settings(fake, fake_bfl, tmp_path, dev_guild_id=fake.guild_id))
    [sync] = fake.command_syncs
    assert int(sync.guild_id) == fake.guild_id
    assert set(sync.names) == {"imagine", "quota", "budget", "status", "safety", "privacy", "edit", "history",
                              "prefs", "style", "gift", "animate", "Edit with FLUX"}  # fmt: skip


async def test_sync_command_forces_a_sync_and_exits(discord_endpoints, fake_bfl, tmp_path):
    fake = discord_endpoints
    settings = bot_settings(fake, fake_bfl, tmp_path)
    await start_and_stop(fake, settings)
    identified = len(fake.identify_payloads)
    await sync_only(settings)
    assert len(fake.command_syncs) == 2
    assert len(fake.identify_payloads) == identified  # `python -m bot sync` never opened the gateway
