"""Composition root: `python -m bot` runs the bot; also its maintenance commands.

`worker` runs only the job engine (no gateway; several processes share one database); `sync` pushes
the slash commands; `check` tests the set-up; `backup PATH` copies the database while the bot runs;
`migrate-to-postgres` copies the SQLite database into an empty PostgreSQL one (URL, else
``DATABASE_URL``); `healthcheck` asks a running bot's ``/healthz`` (the container's health check).

Any failure before the bot is ready is one line on stderr naming the cause and what to do, and exit
status 1; the traceback is logged too only at ``LOG_LEVEL=DEBUG``.
"""

from __future__ import annotations

import asyncio
import logging
import sys

from bot.config import Settings, SettingsError, env_file_warnings, load_settings
from bot.log import setup_logging

log = logging.getLogger("bot")

USAGE = "usage: python -m bot [worker | sync | check | backup PATH | migrate-to-postgres [URL] | healthcheck]"


def _fail(message: str) -> int:
    print(f"fluxcord: {message}", file=sys.stderr)  # noqa: T201
    return 1


def main(argv: list[str]) -> int:
    """Parse the command line, load settings (one clear line on error), and run."""
    simple: tuple[list[str], ...] = ([], ["worker"], ["sync"], ["check"], ["healthcheck"])
    with_argument = (len(argv) == 2 and argv[0] == "backup") or (
        len(argv) in (1, 2) and argv[0] == "migrate-to-postgres"
    )
    if argv not in simple and not with_argument:
        print(USAGE, file=sys.stderr)  # noqa: T201
        return 2
    if argv == ["check"]:
        from bot.check import check

        return check()
    try:
        settings = load_settings()
    except SettingsError as exc:
        return _fail(str(exc))  # before importing discord.py: a typo in .env fails in a blink
    if argv == ["healthcheck"]:
        return _healthcheck(settings)
    if argv[:1] == ["backup"]:
        return _backup(settings, argv[1])
    if argv[:1] == ["migrate-to-postgres"]:
        return _migrate_to_postgres(settings, argv[1] if len(argv) == 2 else None)
    from bot.app import run_bot, run_worker, sync_only
    from bot.startup import StartupError, one_line

    secrets = [settings.discord_token.get_secret_value(), settings.bfl_api_key.get_secret_value()]
    setup_logging(settings.log_level, secrets, settings.log_format)
    for warning in env_file_warnings():
        log.warning("%s", warning)
    runner = {"sync": sync_only, "worker": run_worker}.get(argv[0] if argv else "", run_bot)
    try:
        asyncio.run(runner(settings))
    except KeyboardInterrupt:
        return 0
    except StartupError as exc:
        return _report(settings, exc, str(exc), secrets)
    except Exception as exc:
        reason = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
        hint = "" if settings.log_level == "DEBUG" else " (set LOG_LEVEL=DEBUG for the traceback)"
        return _report(settings, exc, f"stopped on an unexpected error: {one_line(reason)}{hint}", secrets)
    return 0


def _healthcheck(settings: Settings) -> int:
    from bot.ops.healthcheck import healthcheck

    status, line = healthcheck(settings)
    print(line, file=sys.stdout if status == 0 else sys.stderr)
    return status


def _backup(settings: Settings, destination: str) -> int:
    from pathlib import Path

    from bot.ops.backup import BackupError, backup_database

    try:
        result = backup_database(settings.database_path, Path(destination))
    except BackupError as exc:
        return _fail(f"backup failed: {exc}")
    print(  # noqa: T201
        f"Backed up {settings.database_path} to {result.path} "
        f"({result.size_bytes:,} bytes, {result.jobs} jobs, {result.ledger_rows} ledger rows)"
    )
    return 0


def _migrate_to_postgres(settings: Settings, url: str | None) -> int:
    from bot.ops.to_postgres import TransferError, migrate_to_postgres
    from bot.storage.database import is_postgres_url

    if url is None and settings.database_url is not None:
        url = settings.database_url.get_secret_value()
    if url is None or not is_postgres_url(url):
        return _fail(
            "migrate-to-postgres needs the PostgreSQL database to copy into: "
            "python -m bot migrate-to-postgres postgresql://user:password@host/dbname (or set DATABASE_URL)"
        )
    from urllib.parse import urlsplit

    secrets = [urlsplit(url).password or "", settings.discord_token.get_secret_value()]
    setup_logging(settings.log_level, [s for s in secrets if s], settings.log_format)
    try:
        result = asyncio.run(migrate_to_postgres(settings.database_path, url))
    except TransferError as exc:
        return _fail(f"migrate-to-postgres failed: {exc}")
    print(  # noqa: T201
        f"Copied {settings.database_path} to {result.target}: {result.rows:,} rows in {result.tables} tables "
        f"({result.jobs} jobs, {result.open_jobs} still open; {result.ledger_rows} ledger rows, equal sums). "
        "Set DATABASE_URL to it and start the bot; keep the SQLite file as a backup."
    )
    return 0


def _report(settings: Settings, exc: BaseException, message: str, secrets: list[str]) -> int:
    if settings.log_level == "DEBUG":
        log.error("Start-up failed", exc_info=exc)  # the log handler redacts secrets
    for secret in secrets:
        message = message.replace(secret, "***")
    return _fail(message)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
