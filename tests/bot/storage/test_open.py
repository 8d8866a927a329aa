"""DATABASE_URL selects PostgreSQL: start-up opens it, `check` reports it, and no password ever shows."""

import socket

import pytest

from bot.check import PASS, Report, run_checks
from bot.config import Settings
from bot.startup import StartupError, open_database, open_storage


def settings_for(tmp_path, **overrides):
    return Settings(
        _env_file=None,
        discord_token="discord-secret-token",
        bfl_api_key="bfl-secret-key",
        database_path=tmp_path / "db" / "fluxcord.sqlite3",
        **overrides,
    )


def with_password(url: str, password: str = "s3cret-pw") -> str:
    scheme, rest = url.split("://", 1)
    user, host = rest.split("@", 1)
    return f"{scheme}://{user}:{password}@{host}"


def closed_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


async def test_database_url_opens_postgresql_and_no_sqlite_file_is_made(tmp_path, pg_url):
    settings = settings_for(tmp_path, database_url=with_password(pg_url), database_pool_size=2)
    db = await open_storage(settings)
    try:
        assert db.backend == "postgresql"
        assert "s3cret-pw" not in db.location and ":***@" in db.location
        assert await db.schema_version() > 0
    finally:
        await db.close()
    assert not settings.database_path.exists()


def test_postgres_scheme_is_accepted_and_other_urls_are_refused(tmp_path):
    assert settings_for(tmp_path, database_url="postgres://h/db").database_url.get_secret_value() == "postgres://h/db"
    with pytest.raises(ValueError, match="must be a PostgreSQL URL"):
        settings_for(tmp_path, database_url="mysql://u:p@h/db")


async def test_a_missing_database_is_one_line_without_the_password(tmp_path, postgres_server):
    url = with_password(postgres_server.url_of("no_such_database"))
    with pytest.raises(StartupError) as info:
        await open_database(settings_for(tmp_path, database_url=url))
    message = str(info.value)
    assert message.startswith("DATABASE_URL: ") and "does not exist" in message and "\n" not in message
    assert "s3cret-pw" not in message and ":***@" in message


async def test_an_unreachable_server_is_one_line_without_the_password(tmp_path):
    url = f"postgresql://bot:s3cret-pw@127.0.0.1:{closed_port()}/fluxcord"
    with pytest.raises(StartupError) as info:
        await open_database(settings_for(tmp_path, database_url=url))
    message = str(info.value)
    assert message.startswith("DATABASE_URL: cannot connect to postgresql://bot:***@127.0.0.1:")
    assert "s3cret-pw" not in message and "is PostgreSQL running there?" in message


async def test_check_reports_the_postgresql_connection(tmp_path, pg_url):
    lines: list[str] = []
    port = closed_port()
    settings = settings_for(
        tmp_path,
        database_url=with_password(pg_url),
        discord_api_url=f"http://127.0.0.1:{port}",
        discord_gateway_url=f"ws://127.0.0.1:{port}/",
        bfl_api_url=f"http://127.0.0.1:{port}",
    )
    await run_checks(settings, Report(lines.append))
    database = [line for line in lines if line.startswith(f"{PASS} database: ")]
    assert len(database) == 1, lines
    assert "PostgreSQL 1" in database[0] and "connects and is migrated (schema version" in database[0]
    assert all("s3cret-pw" not in line for line in lines)
