"""The first hour of a server owner, as real processes: `.env.example` → `python -m bot check` → `python -m bot`.

Every failure before the bot is ready must be one line on stderr that names the cause, and exit
status 1; nothing may be written to the working directory.
"""

import asyncio
import io
import os
import socket

import pytest
from PIL import Image

from tests.e2e.processes import REPO, Running, clean_environment, fake_endpoints, read_only, run

pytestmark = pytest.mark.subprocess

SECRETS_IN_OUTPUT_ARE_A_BUG = ("test-discord-token", "test-bfl-key")


def closed_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def env_file_from_example(folder, **values):
    """`.env.example` as shipped, with ``values`` filled in (the README's `cp .env.example .env` + edits)."""
    lines = []
    for line in (REPO / ".env.example").read_text(encoding="utf-8").splitlines():
        name = line.partition("=")[0]
        lines.append(f"{name}={values.pop(name)}" if not line.startswith("#") and name in values else line)
    lines += [f"{name}={value}" for name, value in values.items()]
    (folder / ".env").write_text("\n".join(lines) + "\n", encoding="utf-8")


def no_secrets(*texts):
    for text in texts:
        for secret in SECRETS_IN_OUTPUT_ARE_A_BUG:
            assert secret not in text


async def imagine_and_get_image(fake):
    await fake.wait_until_connected(timeout=30)
    await fake.wait_for(lambda: fake.command_syncs, timeout=30)
    interaction = await fake.slash("imagine", {"prompt": "a lighthouse at dusk"})
    await interaction.wait_for(lambda: (interaction.original_message or {}).get("attachments"), timeout=30)
    return Image.open(io.BytesIO(fake.attachment_bytes(interaction.original_message, 0)))


async def test_env_example_then_check_then_run(tmp_path, fake_discord, fake_bfl):
    """The README's path: copy .env.example, fill in the two secrets (and the local servers), check, run."""
    env_file_from_example(tmp_path, **fake_endpoints(fake_discord, fake_bfl))
    env = clean_environment()

    check = await run("check", env=env, cwd=tmp_path)
    assert check.returncode == 0, check.stdout + check.stderr
    lines = check.stdout.splitlines()
    assert [line.split(":")[0] for line in lines] == [
        "✓ settings", "✓ database", "✓ cache folder", "✓ Discord", "✓ invite", "✓ Discord gateway", "✓ BFL",
    ]  # fmt: skip
    assert "the token belongs to Fluxcord" in check.stdout
    assert "balance 1,000.00 credits ($10.00)" in check.stdout
    assert "permissions=274878024704" in check.stdout
    no_secrets(check.stdout, check.stderr)

    bot = await Running.start(env=env, cwd=tmp_path)
    try:
        image = await imagine_and_get_image(fake_discord)
        assert image.size == (1024, 1024)
    finally:
        status = await bot.stop()
    assert status == 0, bot.text
    assert (tmp_path / "data" / "fluxcord.sqlite3").is_file()
    assert any((tmp_path / "data" / "cache").iterdir())  # the cache is beside the database
    no_secrets(bot.text)


async def test_read_only_working_directory_with_a_data_volume(tmp_path, fake_discord, fake_bfl):
    """A container: the working directory is read-only and DATABASE_PATH points at a volume."""
    workdir, volume = tmp_path / "app", tmp_path / "volume"
    workdir.mkdir()
    volume.mkdir()
    env_file_from_example(workdir, DATABASE_PATH=str(volume / "fluxcord.sqlite3"))
    env = clean_environment(**fake_endpoints(fake_discord, fake_bfl))
    with read_only(workdir) as prefix:
        check = await run("check", env=env, cwd=workdir, prefix=prefix)
        assert check.returncode == 0, check.stdout
        bot = await Running.start(env=env, cwd=workdir, prefix=prefix)
        try:
            await imagine_and_get_image(fake_discord)
        finally:
            assert await bot.stop() == 0, bot.text
    assert sorted(p.name for p in workdir.iterdir()) == [".env"]  # nothing was written to the working dir
    cached = list((volume / "cache").iterdir())
    assert any(p.suffix == ".img" for p in cached), cached


def corrupt_database(folder):
    path = folder / "broken.sqlite3"
    path.write_bytes(os.urandom(8192))
    return {"DATABASE_PATH": str(path)}


def folder_as_database(folder):
    (folder / "data").mkdir()
    return {"DATABASE_PATH": str(folder / "data")}


START_UP_ERRORS = {
    "invalid URL": (lambda f: {"BFL_API_URL": "htps://api.bfl.ai"}, "BFL_API_URL is invalid: must start with https://"),
    "unknown model": (lambda f: {"DEFAULT_MODEL": "flux-5"}, "DEFAULT_MODEL is invalid: `flux-5` is not a model"),
    "decimal comma": (lambda f: {"DEFAULT_MEMBER_DAILY_USD": "1,50"}, "use a dot for cents: 1.50"),
    "database is a folder": (folder_as_database, "DATABASE_PATH: "),
    "corrupt database": (corrupt_database, "is not a readable SQLite database"),
    "wrong token": (lambda f: {"DISCORD_TOKEN": "not-the-token"}, "DISCORD_TOKEN was rejected by Discord (401"),
    "wrong BFL key": (lambda f: {"BFL_API_KEY": "not-the-key"}, "BFL_API_KEY was rejected by BFL (403"),
    "unreachable Discord": (
        lambda f: {"DISCORD_API_URL": f"http://127.0.0.1:{closed_port()}/api/v10"},
        "Cannot reach Discord at http://127.0.0.1",
    ),
    "unreachable gateway": (
        lambda f: {"DISCORD_GATEWAY_URL": f"ws://127.0.0.1:{closed_port()}/gateway"},
        "Cannot reach the Discord gateway",
    ),
    "unreachable BFL": (lambda f: {"BFL_API_URL": f"http://127.0.0.1:{closed_port()}"}, "cannot reach BFL at"),
    "not in DEV_GUILD_ID": (lambda f: {"DEV_GUILD_ID": "123456789012345678"}, "DEV_GUILD_ID 123456789012345678: "),
}
NAMED = {
    "database is a folder": "DATABASE_PATH",
    "corrupt database": "DATABASE_PATH",
    "unreachable Discord": "DISCORD_API_URL",
    "unreachable gateway": "DISCORD_GATEWAY_URL",
    "unreachable BFL": "BFL_API_URL",
    "not in DEV_GUILD_ID": "leave DEV_GUILD_ID empty",
}


async def test_every_start_up_failure_is_one_line_and_exit_status_1(tmp_path, fake_discord, fake_bfl):
    """Each case is its own `python -m bot`; they run side by side (each takes a second to import)."""
    fake_discord.assert_clean_at_teardown = False  # a wrong token or guild is answered 401/403 on purpose

    async def attempt(case):
        folder = tmp_path / case.replace(" ", "-")
        folder.mkdir()
        make, _expected = START_UP_ERRORS[case]
        env = clean_environment(**{**fake_endpoints(fake_discord, fake_bfl), **make(folder)})
        return await run(env=env, cwd=folder)

    results = dict(zip(START_UP_ERRORS, await asyncio.gather(*map(attempt, START_UP_ERRORS)), strict=True))
    for case, result in results.items():
        expected = START_UP_ERRORS[case][1]
        assert result.returncode == 1, (case, result.stderr)
        line = result.error_line
        assert expected in line and NAMED.get(case, expected) in line, (case, line)
        assert result.stdout == "", case
        no_secrets(result.stdout, result.stderr)
    assert fake_discord.identify_payloads == []  # none of them got as far as the gateway


async def test_a_read_only_database_folder_is_a_start_up_error_naming_it(tmp_path, fake_discord, fake_bfl):
    data = tmp_path / "data"
    data.mkdir()
    env = clean_environment(**fake_endpoints(fake_discord, fake_bfl), DATABASE_PATH=str(data / "fluxcord.sqlite3"))
    with read_only(data) as prefix:
        result = await run(env=env, cwd=tmp_path, prefix=prefix)
    assert result.returncode == 1
    line = result.error_line
    assert line.startswith(f"fluxcord: DATABASE_PATH: the folder {data} is not writable"), line
    assert list(data.iterdir()) == []


async def test_an_unwritable_cache_dir_is_a_start_up_error_naming_it(tmp_path, fake_discord, fake_bfl):
    cache = tmp_path / "cache"
    cache.mkdir()
    env = clean_environment(
        **fake_endpoints(fake_discord, fake_bfl), DATABASE_PATH=str(tmp_path / "db.sqlite3"), CACHE_DIR=str(cache)
    )
    with read_only(cache) as prefix:
        result = await run(env=env, cwd=tmp_path, prefix=prefix)
    assert result.returncode == 1
    assert result.error_line.startswith(f"fluxcord: CACHE_DIR: the folder {cache} is not writable")


async def test_debug_log_level_adds_the_traceback(tmp_path, fake_discord, fake_bfl):
    env = clean_environment(**fake_endpoints(fake_discord, fake_bfl), **corrupt_database(tmp_path), LOG_LEVEL="DEBUG")
    result = await run(env=env, cwd=tmp_path)
    assert result.returncode == 1
    assert "Traceback" in result.stderr and "sqlite3.DatabaseError" in result.stderr
    assert result.stderr.strip().splitlines()[-1].startswith("fluxcord: DATABASE_PATH: ")


async def test_check_reports_every_problem_and_fails(tmp_path, fake_discord, fake_bfl):
    env_file_from_example(
        tmp_path,
        **{**fake_endpoints(fake_discord, fake_bfl), "DISCORD_TOKEN": "not-the-token", "BFL_API_KEY": "not-the-key"},
        BOT_BUDGET="10",
    )
    fake_discord.assert_clean_at_teardown = False  # the wrong token is answered 401 on purpose
    result = await run("check", env=clean_environment(), cwd=tmp_path)
    assert result.returncode == 1
    lines = result.stdout.splitlines()
    assert "! settings: .env: BOT_BUDGET is not a setting and is ignored; did you mean BOT_BUDGET_USD?" in lines
    assert any(line.startswith("✗ Discord: DISCORD_TOKEN was rejected by Discord (401") for line in lines)
    assert any(line.startswith("✗ BFL: BFL_API_KEY was rejected by BFL (403") and "wrong or revoked" in line
               for line in lines)  # fmt: skip
    assert any(line.startswith("✓ database") for line in lines)
    for secret in ("not-the-token", "not-the-key"):
        assert secret not in result.stdout + result.stderr


async def test_check_names_a_dev_guild_the_bot_is_not_in(tmp_path, fake_discord, fake_bfl):
    env = clean_environment(**fake_endpoints(fake_discord, fake_bfl), DEV_GUILD_ID="123456789012345678")
    fake_discord.assert_clean_at_teardown = False
    result = await run("check", env=env, cwd=tmp_path)
    assert result.returncode == 1
    assert "✗ DEV_GUILD_ID: DEV_GUILD_ID 123456789012345678: the bot is not in that server" in result.stdout
    env["DEV_GUILD_ID"] = str(fake_discord.guild_id)
    result = await run("check", env=env, cwd=tmp_path)
    assert result.returncode == 0 and f"✓ DEV_GUILD_ID: the bot is in server {fake_discord.guild_id}" in result.stdout


async def test_check_with_invalid_settings_says_so_in_one_line(tmp_path):
    result = await run("check", env=clean_environment(BFL_API_KEY="k" * 12), cwd=tmp_path)
    assert result.returncode == 1
    assert result.stdout.splitlines() == [
        "✗ settings: DISCORD_TOKEN is required: set it in the environment or in .env (see .env.example)"
    ]
    assert list(tmp_path.iterdir()) == []


async def test_start_up_warns_about_a_key_in_env_that_is_not_a_setting(tmp_path, fake_discord, fake_bfl):
    env_file_from_example(tmp_path, BOT_BUDGET="20", DATABASE_PATH=str(tmp_path / "x" / "folder"))
    (tmp_path / "x" / "folder").mkdir(parents=True)  # and then stop at once on the database
    result = await run(env=clean_environment(**fake_endpoints(fake_discord, fake_bfl)), cwd=tmp_path)
    assert "WARNING bot: .env: BOT_BUDGET is not a setting and is ignored; did you mean BOT_BUDGET_USD?" in (
        result.stderr
    )
    assert result.returncode == 1 and "DATABASE_PATH" in result.error_line
