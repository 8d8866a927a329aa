"""Composition root: `python -m bot` runs the bot; also `worker`, `sync`, `check`, `backup PATH`, `healthcheck`.

`worker` runs only the job engine (no gateway; several processes share one database); `sync` pushes
the slash commands; `check` tests the set-up; `backup PATH` copies the database while the bot runs;
`healthcheck` asks a running bot's ``/healthz`` (the container's health check).

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

USAGE = "usage: python -m bot [worker | sync | check | backup PATH | healthcheck]"


def _fail(message: str) -> int:
    print(f"fluxcord: {message}", file=sys.stderr)  # noqa: T201
    return 1


def main(argv: list[str]) -> int:
    """Parse the command line, load settings (one clear line on error), and run."""
    simple = ([], ["worker"], ["sync"], ["check"], ["healthcheck"])
    if argv not in simple and not (len(argv) == 2 and argv[0] == "backup"):
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


def _report(settings: Settings, exc: BaseException, message: str, secrets: list[str]) -> int:
    if settings.log_level == "DEBUG":
        log.error("Start-up failed", exc_info=exc)  # the log handler redacts secrets
    for secret in secrets:
        message = message.replace(secret, "***")
    return _fail(message)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
