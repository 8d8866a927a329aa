"""Start-up probes and their one-line errors, against real files and the local fake servers."""

import re
import socket
import sqlite3

import aiohttp
import pytest
from aiohttp import web

from bot.config import Settings
from bot.startup import (
    INVITE_PERMISSIONS,
    StartupError,
    check_dev_guild,
    ensure_writable_folder,
    fetch_discord_identity,
    invite_url,
    open_database,
)
from bot.startup_bfl import probe_bfl
from tests.e2e.fake_discord import FakeDiscord


def settings_for(tmp_path, **overrides):
    values = {
        "discord_token": "discord-secret-token",
        "bfl_api_key": "bfl-secret-key",
        "database_path": tmp_path / "db" / "fluxcord.sqlite3",
        **overrides,
    }
    return Settings(_env_file=None, **values)


def closed_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def assert_one_line_naming(exc, name, *secrets):
    message = str(exc)
    assert message.startswith(name) or f" {name}" in message, message
    assert "\n" not in message
    for secret in secrets:
        assert secret not in message


# --- the database ----------------------------------------------------------------------------------
async def test_database_folders_are_created_and_the_schema_migrated(tmp_path):
    db = await open_database(settings_for(tmp_path, database_path=tmp_path / "a" / "b" / "bot.sqlite3"))
    try:
        assert await db.schema_version() >= 4
    finally:
        await db.close()


async def test_a_database_path_that_is_a_folder_is_named(tmp_path):
    folder = tmp_path / "data"
    folder.mkdir()
    with pytest.raises(StartupError) as info:
        await open_database(settings_for(tmp_path, database_path=folder))
    assert_one_line_naming(info.value, "DATABASE_PATH")
    assert "is a folder, not a file" in str(info.value) and str(folder / "fluxcord.sqlite3") in str(info.value)


async def test_a_corrupt_database_file_is_named_with_what_to_do(tmp_path):
    path = tmp_path / "fluxcord.sqlite3"
    path.write_bytes(b"this is not SQLite at all" * 200)
    with pytest.raises(StartupError) as info:
        await open_database(settings_for(tmp_path, database_path=path))
    assert_one_line_naming(info.value, "DATABASE_PATH")
    assert "not a readable SQLite database" in str(info.value) and "backup" in str(info.value)
    assert isinstance(info.value.__cause__, sqlite3.DatabaseError)


async def test_an_upgrade_that_would_orphan_rows_is_refused_with_what_to_do(tmp_path, monkeypatch):
    from bot.storage import sqlite
    from bot.storage.database import Migration, load_migrations

    path = tmp_path / "fluxcord.sqlite3"
    db = await sqlite.SqliteDatabase.open(path)
    await db.execute(
        "INSERT INTO jobs (id, guild_id, channel_id, user_id, model, prompt, params, seed, width, height, cache_key,"
        " status, estimated_micros, created_at, updated_at) VALUES (1, 1, 1, 1, 'm', 'p', '{}', 1, 1, 1, 'k',"
        " 'delivered', 0, 1, 1)"
    )
    schema = await db.fetch_value("SELECT sql FROM sqlite_master WHERE type = 'table' AND name = 'jobs'")
    await db.close()
    rebuild = (  # the usual rebuild, with a WHERE that drops a row by mistake
        re.sub(r'^CREATE TABLE "?jobs"?', "CREATE TABLE jobs_new", schema) + ";\n"
        "INSERT INTO jobs_new SELECT * FROM jobs WHERE id != 1;\n"
        "DROP TABLE jobs;\n"
        "ALTER TABLE jobs_new RENAME TO jobs;\n"
    )
    lossy = Migration(len(load_migrations()) + 1, "9999_lossy_rebuild.sql", rebuild)
    monkeypatch.setattr(sqlite, "load_migrations", lambda backend: [*load_migrations(backend), lossy])
    with pytest.raises(StartupError) as info:
        await open_database(settings_for(tmp_path, database_path=path))
    assert_one_line_naming(info.value, "DATABASE_PATH")
    message = str(info.value)
    assert "cannot upgrade" in message and "9999_lossy_rebuild.sql" in message and "1 in job_events (→ jobs)" in message
    assert "the file is as it was" in message
    monkeypatch.undo()
    db = await sqlite.SqliteDatabase.open(path)
    try:
        assert await db.fetch_value("SELECT COUNT(*) FROM job_events") == 1
    finally:
        await db.close()


async def test_a_database_inside_a_file_is_named(tmp_path):
    (tmp_path / "plain-file").write_text("x")
    with pytest.raises(StartupError) as info:
        await open_database(settings_for(tmp_path, database_path=tmp_path / "plain-file" / "bot.sqlite3"))
    assert_one_line_naming(info.value, "DATABASE_PATH")
    assert "is not a folder" in str(info.value)


def test_writable_folder_check_leaves_nothing_behind(tmp_path):
    ensure_writable_folder(tmp_path / "cache", "CACHE_DIR")
    assert list((tmp_path / "cache").iterdir()) == []


# --- Discord ---------------------------------------------------------------------------------------
@pytest.fixture
async def fake_discord():
    async with FakeDiscord() as fake:
        yield fake
        fake.assert_clean()


@pytest.fixture
async def http():
    async with aiohttp.ClientSession() as session:
        yield session


async def test_discord_identity_and_dev_guild_membership(tmp_path, fake_discord, http):
    settings = settings_for(tmp_path, discord_token=fake_discord.token, discord_api_url=fake_discord.api_url)
    identity = await fetch_discord_identity(http, settings)
    assert identity.name == "Fluxcord" and identity.application_id == fake_discord.application_id
    app_id = identity.application_id
    await check_dev_guild(http, settings.model_copy(update={"dev_guild_id": fake_discord.guild_id}), app_id)
    with pytest.raises(StartupError) as info:
        await check_dev_guild(http, settings.model_copy(update={"dev_guild_id": 12345}), app_id)
    assert_one_line_naming(info.value, "DEV_GUILD_ID")
    assert "the bot is not in that server" in str(info.value)
    fake_discord.take_violations(50001)


async def test_a_rejected_discord_token_is_named_and_not_printed(tmp_path, fake_discord, http):
    settings = settings_for(tmp_path, discord_token="wrong-token-value", discord_api_url=fake_discord.api_url)
    with pytest.raises(StartupError) as info:
        await fetch_discord_identity(http, settings)
    assert_one_line_naming(info.value, "DISCORD_TOKEN", "wrong-token-value")
    assert "rejected by Discord (401" in str(info.value)
    fake_discord.take_violations(0)


async def test_an_unreachable_discord_is_named(tmp_path, http):
    settings = settings_for(tmp_path, discord_api_url=f"http://127.0.0.1:{closed_port()}/api/v10")
    with pytest.raises(StartupError) as info:
        await fetch_discord_identity(http, settings)
    assert_one_line_naming(info.value, "DISCORD_API_URL")
    assert "Cannot reach Discord" in str(info.value) and "Connection refused" in str(info.value)


def test_invite_asks_for_send_messages_in_threads():
    assert INVITE_PERMISSIONS.send_messages_in_threads
    assert INVITE_PERMISSIONS.value == 274_878_024_704
    assert invite_url(42).endswith("client_id=42&scope=bot+applications.commands&permissions=274878024704")


# --- BFL -------------------------------------------------------------------------------------------
async def test_bfl_probe_reads_the_balance(tmp_path, fake_bfl, http):
    probe = await probe_bfl(http, settings_for(tmp_path, bfl_api_key=fake_bfl.api_key, bfl_api_url=fake_bfl.url))
    assert probe.ok and probe.credits == fake_bfl.credits


async def test_bfl_probe_calls_a_rejected_key_a_bad_key(tmp_path, fake_bfl, http):
    probe = await probe_bfl(http, settings_for(tmp_path, bfl_api_key="not-the-key", bfl_api_url=fake_bfl.url))
    assert probe.fatal and "BFL_API_KEY was rejected by BFL (403" in probe.problem
    assert "wrong or revoked key" in probe.problem and "not-the-key" not in probe.problem


async def test_bfl_probe_tells_missing_access_from_a_bad_key(tmp_path, http):
    async def credits(request):
        detail = "Your organization does not have access to this endpoint"
        return web.json_response({"detail": detail}, status=403)

    app = web.Application()
    app.router.add_get("/v1/credits", credits)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        port = site._server.sockets[0].getsockname()[1]
        probe = await probe_bfl(http, settings_for(tmp_path, bfl_api_url=f"http://127.0.0.1:{port}"))
    finally:
        await runner.cleanup()
    assert not probe.fatal and "valid but has no access" in probe.problem


async def test_an_unreachable_bfl_is_fatal_and_named(tmp_path, http):
    probe = await probe_bfl(http, settings_for(tmp_path, bfl_api_url=f"http://127.0.0.1:{closed_port()}"))
    assert probe.fatal and "cannot reach BFL" in probe.problem and "BFL_API_URL" in probe.problem


async def test_a_discord_fake_is_not_a_bfl(tmp_path, http):
    async with FakeDiscord() as fake:  # a server without /v1/credits: the URL points elsewhere
        probe = await probe_bfl(http, settings_for(tmp_path, bfl_api_url=fake.base_url))
        fake.assert_clean_at_teardown = False
    assert probe.fatal and "BFL_API_URL" in probe.problem
