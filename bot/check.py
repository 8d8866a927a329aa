"""`python -m bot check`: is this installation ready? One ✓/✗ line per check, exit status 0 only if all pass.

Checks, in order: the settings; the database (opens and migrates); the cache folder (writable);
Discord (``GET /users/@me`` with the token, and the bot's presence in ``DEV_GUILD_ID`` when set); the
gateway host; BFL (``GET /v1/credits`` with the key). Nothing printed ever contains a secret: every
line is scrubbed of the token and the key before it is written.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable

import aiohttp

from bot.config import Settings, SettingsError, env_file_warnings, load_settings
from bot.startup import (
    StartupError,
    check_cache_folder,
    check_dev_guild,
    fetch_discord_identity,
    invite_url,
    open_database,
    probe_gateway,
)
from bot.startup_bfl import probe_bfl

PASS, FAIL, WARN = "✓", "✗", "!"


class Report:
    """Collects the lines of a check run and whether every check passed."""

    def __init__(self, write: Callable[[str], None], secrets: Iterable[str] = ()) -> None:
        self._write = write
        self.secrets = [s for s in secrets if s]
        self.failed = False

    def line(self, mark: str, name: str, text: str) -> None:
        """Write one result line; a ✗ makes the whole run fail."""
        if mark == FAIL:
            self.failed = True
        message = f"{mark} {name}: {text}"
        for secret in self.secrets:
            message = message.replace(secret, "***")
        self._write(message)


async def run_checks(settings: Settings, report: Report) -> None:
    """Every check after the settings, each reported on its own line."""
    try:
        db = await open_database(settings)
    except StartupError as exc:
        report.line(FAIL, "database", str(exc))
    else:
        try:
            version = await db.schema_version()
            if db.backend == "postgresql":
                server = await db.fetch_value("SHOW server_version")
                text = f"PostgreSQL {server} at {db.location} connects and is migrated (schema version {version})"
            else:
                text = f"{settings.database_path} opens and is migrated (schema version {version})"
        finally:
            await db.close()
        report.line(PASS, "database", text)

    try:
        folder = check_cache_folder(settings)
    except StartupError as exc:
        report.line(FAIL, "cache folder", str(exc))
    else:
        report.line(PASS, "cache folder", f"{folder} is writable")

    async with aiohttp.ClientSession() as session:
        try:
            identity = await fetch_discord_identity(session, settings)
        except StartupError as exc:
            report.line(FAIL, "Discord", str(exc))
        else:
            report.line(PASS, "Discord", f"the token belongs to {identity.name} (id {identity.user_id})")
            report.line(PASS, "invite", invite_url(identity.application_id))
            if settings.dev_guild_id is not None:
                try:
                    await check_dev_guild(session, settings, identity.application_id)
                except StartupError as exc:
                    report.line(FAIL, "DEV_GUILD_ID", str(exc))
                else:
                    report.line(PASS, "DEV_GUILD_ID", f"the bot is in server {settings.dev_guild_id}")
        try:
            await probe_gateway(settings)
        except StartupError as exc:
            report.line(FAIL, "Discord gateway", str(exc))
        else:
            report.line(PASS, "Discord gateway", "reachable")

        bfl = await probe_bfl(session, settings)
        if bfl.credits is not None:
            report.line(PASS, "BFL", f"the key works; balance {bfl.credits:,.2f} credits (${bfl.credits / 100:,.2f})")
        else:
            report.line(FAIL, "BFL", str(bfl.problem))


def check(write: Callable[[str], None] = print) -> int:
    """Run every check, writing one line each; 0 if all passed, else 1."""
    try:
        settings = load_settings()
    except SettingsError as exc:
        Report(write).line(FAIL, "settings", str(exc))
        return 1
    report = Report(write, [settings.discord_token.get_secret_value(), settings.bfl_api_key.get_secret_value()])
    report.line(PASS, "settings", "valid")
    for warning in env_file_warnings():
        report.line(WARN, "settings", warning)
    asyncio.run(run_checks(settings, report))
    return 1 if report.failed else 0
