"""Start-up: command sync is deliberate, never a global sync on every boot."""

from bot.app import assemble, sync_only
from bot.config import Settings


def settings_for(fake, fake_bfl, tmp_path, **overrides):
    return Settings(
        _env_file=None,
        discord_token=fake.token,
        bfl_api_key=fake_bfl.api_key,
        bfl_api_url=fake_bfl.url,
        discord_api_url=fake.api_url,
        discord_gateway_url=fake.gateway_url,
        database_path=tmp_path / "bot.sqlite3",
        cache_dir=tmp_path / "cache",
        **overrides,
    )


async def start_and_stop(fake, settings):
    async with assemble(settings, guild_ready_timeout=0.05) as bot, fake.run_bot(bot):
        await bot.recovery_task


async def test_restarts_do_not_resync_an_unchanged_command_set(discord_endpoints, fake_bfl, tmp_path):
    fake = discord_endpoints
    settings = settings_for(fake, fake_bfl, tmp_path)
    await start_and_stop(fake, settings)
    await start_and_stop(fake, settings)
    assert len(fake.command_syncs) == 1
    assert fake.command_syncs[0].guild_id is None  # global, once


async def test_dev_guild_gets_its_own_instant_sync(discord_endpoints, fake_bfl, tmp_path):
    fake = discord_endpoints
    await start_and_stop(fake, settings_for(fake, fake_bfl, tmp_path, dev_guild_id=fake.guild_id))
    [sync] = fake.command_syncs
    assert int(sync.guild_id) == fake.guild_id
    assert set(sync.names) == {"imagine", "quota", "budget"}


async def test_sync_command_forces_a_sync_and_exits(discord_endpoints, fake_bfl, tmp_path):
    fake = discord_endpoints
    settings = settings_for(fake, fake_bfl, tmp_path)
    await start_and_stop(fake, settings)
    identified = len(fake.identify_payloads)
    await sync_only(settings)
    assert len(fake.command_syncs) == 2
    assert len(fake.identify_payloads) == identified  # `python -m bot sync` never opened the gateway
