"""Everything that can stop the bot before it is ready, each turned into one line that says what to do.

Used by `python -m bot` (a failure is a :class:`StartupError`, printed as one line, exit status 1) and by
`python -m bot check` (the same probes, reported as ✓/✗ lines); the BFL probe is :mod:`bot.startup_bfl`.
No message contains a secret: the token and the key are never formatted into one, and server answers
are shortened and scrubbed.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import socket
import sqlite3
import ssl
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import aiohttp
import discord

from bot.config import Settings
from bot.storage.database import Database, redact_url

log = logging.getLogger(__name__)

PROBE_TIMEOUT = aiohttp.ClientTimeout(total=15, sock_connect=10)

#: What the invite asks for: View Channels, Send Messages, Send Messages in Threads (results past the
#: interaction token, recovered images and the mod-log may go to threads), Embed Links, Attach Files,
#: Read Message History (a request's message whose edit was left unanswered is read back by its id once
#: the interaction's token is dead, so a result is not posted twice).
INVITE_PERMISSION_NAMES = (
    *("view_channel", "send_messages", "send_messages_in_threads"),
    *("embed_links", "attach_files", "read_message_history"),
)
INVITE_PERMISSIONS = discord.Permissions(**dict.fromkeys(INVITE_PERMISSION_NAMES, True))


class StartupError(Exception):
    """The bot cannot start; the message is one line naming the cause and what to do."""


def invite_url(application_id: int | str) -> str:
    """The OAuth2 URL that adds the bot to a server with the permissions it needs."""
    return (
        f"https://discord.com/oauth2/authorize?client_id={application_id}"
        f"&scope=bot+applications.commands&permissions={INVITE_PERMISSIONS.value}"
    )


def one_line(text: object, limit: int = 160) -> str:
    """``text`` on one line, at most ``limit`` characters."""
    flat = " ".join(str(text).split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


def describe_error(exc: BaseException) -> str:
    """A short, secret-free description of a network or OS error."""
    if isinstance(exc, aiohttp.ClientConnectorError):
        return _os_reason(exc.os_error)
    if isinstance(exc, TimeoutError | asyncio.TimeoutError | aiohttp.ServerTimeoutError):
        return "no answer in time"
    if isinstance(exc, OSError):
        return _os_reason(exc)
    return one_line(f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__)


def _os_reason(error: OSError) -> str:
    # asyncio's "Connect call failed ('127.0.0.1', 9)" says less than the errno's own text.
    if isinstance(error, ssl.SSLError):
        return one_line(f"TLS: {error.reason or error}")
    if not isinstance(error, socket.gaierror) and isinstance(error.errno, int) and error.errno > 0:
        return os.strerror(error.errno)
    return one_line(error.strerror or error)


# --- storage ---------------------------------------------------------------------------------------


def ensure_writable_folder(folder: Path, setting: str) -> None:
    """Create ``folder`` if needed and prove a file can be written in it, or raise :class:`StartupError`."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except FileExistsError:
        raise StartupError(
            f"{setting}: {folder} exists but is not a folder; move it away or choose another {setting}"
        ) from None
    except OSError as exc:
        raise StartupError(
            f"{setting}: cannot create the folder {folder} ({describe_error(exc)}); create it writable for the "
            f"bot's user (uid {os.getuid()}) or choose another {setting}"
        ) from None
    try:
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".fluxcord-write-check-"):
            pass
    except OSError as exc:
        raise StartupError(
            f"{setting}: the folder {folder} is not writable ({describe_error(exc)}); make it writable for the "
            f"bot's user (uid {os.getuid()}) or choose another {setting}"
        ) from None


def check_cache_folder(settings: Settings) -> Path:
    """The image cache folder, created and proven writable (``CACHE_DIR``)."""
    assert settings.cache_dir is not None  # filled in by Settings from DATABASE_PATH
    ensure_writable_folder(settings.cache_dir, "CACHE_DIR")
    return settings.cache_dir


async def open_storage(settings: Settings) -> Database:
    """Check the database's folder, then the cache folder, then open and migrate the database.

    The order matters for the message: the cache folder defaults to one inside the database's, so a
    read-only data folder must be reported as ``DATABASE_PATH``, not ``CACHE_DIR``.
    """
    if settings.database_url is None:
        _check_database_path(settings)
    check_cache_folder(settings)
    return await open_database(settings)


def _check_database_path(settings: Settings) -> None:
    path = settings.database_path
    if path.is_dir():
        raise StartupError(
            f"DATABASE_PATH: {path} is a folder, not a file; set DATABASE_PATH to a file in it, "
            f"e.g. {path / 'fluxcord.sqlite3'}"
        )
    ensure_writable_folder(path.parent, "DATABASE_PATH")


async def open_database(settings: Settings) -> Database:
    """Open and migrate the database: PostgreSQL at ``DATABASE_URL`` if set, else SQLite at ``DATABASE_PATH``.

    Every failure is a :class:`StartupError` (a PostgreSQL URL appears without its password).
    """
    if settings.database_url is not None:
        return await _open_postgres(settings)
    path = settings.database_path
    _check_database_path(settings)
    try:
        return await Database.open(path, synchronous=settings.database_synchronous)
    except sqlite3.DatabaseError as exc:
        raise StartupError(_database_problem(path, exc)) from exc
    except OSError as exc:
        raise StartupError(
            f"DATABASE_PATH: cannot open {path} ({describe_error(exc)}); check the file's permissions"
        ) from exc
    except RuntimeError as exc:  # a broken migration set (a packaging problem, not the user's)
        raise StartupError(f"DATABASE_PATH: cannot migrate {path} ({one_line(exc)}); reinstall the bot") from exc


async def _open_postgres(settings: Settings) -> Database:
    import asyncpg

    assert settings.database_url is not None
    url = settings.database_url.get_secret_value()
    shown = redact_url(url)
    try:
        return await Database.connect(url, pool_size=settings.database_pool_size)
    except asyncpg.InvalidPasswordError:
        raise StartupError(f"DATABASE_URL: {shown} refused the password; check the user and password") from None
    except asyncpg.InvalidCatalogNameError:
        raise StartupError(f"DATABASE_URL: {shown}: the database does not exist; create it (createdb)") from None
    except asyncpg.PostgresError as exc:
        reason = one_line(exc).replace(url, shown)
        raise StartupError(f"DATABASE_URL: cannot open or migrate {shown} ({reason})") from None
    except (OSError, TimeoutError, asyncpg.InterfaceError) as exc:
        reason = describe_error(exc) if isinstance(exc, OSError) else (one_line(exc) or type(exc).__name__)
        raise StartupError(
            f"DATABASE_URL: cannot connect to {shown} ({reason.replace(url, shown)}); is PostgreSQL running there?"
        ) from None
    except RuntimeError as exc:  # a broken migration set (a packaging problem, not the user's)
        raise StartupError(f"DATABASE_URL: cannot migrate {shown} ({one_line(exc)}); reinstall the bot") from None


def _database_problem(path: Path, exc: sqlite3.DatabaseError) -> str:
    from bot.storage.sqlite import MigrationCheckFailed

    reason = one_line(exc, limit=300)
    if isinstance(exc, MigrationCheckFailed):
        return (
            f"DATABASE_PATH: cannot upgrade {path} ({reason}); the file is as it was: keep it, and run the "
            f"previous version of the bot or report the problem"
        )
    reason = one_line(exc)
    lowered = reason.lower()
    if "not a database" in lowered or "malformed" in lowered or "corrupt" in lowered:
        return (
            f"DATABASE_PATH: {path} is not a readable SQLite database ({reason}); restore it from a backup, "
            f"or move it away to start with an empty one"
        )
    if "readonly" in lowered or "read-only" in lowered:
        return (
            f"DATABASE_PATH: {path} is read-only ({reason}); make the file and its folder writable for the "
            f"bot's user (uid {os.getuid()})"
        )
    if "locked" in lowered or "busy" in lowered:
        return f"DATABASE_PATH: {path} is locked by another process ({reason}); stop the other bot using it"
    return f"DATABASE_PATH: cannot open or migrate {path} ({reason}); check the file and its permissions"


# --- Discord ---------------------------------------------------------------------------------------


@contextlib.contextmanager
def discord_startup_errors(settings: Settings) -> Iterator[None]:
    """Turn discord.py's log-in and connection failures into :class:`StartupError`."""
    try:
        yield
    except discord.LoginFailure:
        raise StartupError(
            "DISCORD_TOKEN was rejected by Discord (401 Unauthorized); copy the bot's token again from the "
            "developer portal (Bot → Reset Token) into DISCORD_TOKEN"
        ) from None
    except discord.PrivilegedIntentsRequired:
        raise StartupError(
            "Discord refused the gateway intents the bot asked for (4014); this bot needs no privileged intents, "
            "so report this as a bug"
        ) from None
    except discord.ConnectionClosed as exc:
        raise StartupError(
            f"Discord closed the gateway connection before the bot was ready ({exc.code} {one_line(exc.reason)}); "
            "check DISCORD_TOKEN and DISCORD_GATEWAY_URL"
        ) from None
    except discord.HTTPException as exc:
        raise StartupError(
            f"Discord answered HTTP {exc.status} while the bot was starting ({one_line(exc.text, 80)}); "
            "try again later (https://discordstatus.com) or check DISCORD_API_URL"
        ) from None
    except (aiohttp.ClientError, OSError, TimeoutError) as exc:
        raise StartupError(
            f"Cannot reach Discord at {host_of(settings.discord_api_url)} ({describe_error(exc)}); check the "
            "network, or DISCORD_API_URL"
        ) from None


def dev_guild_refused(guild_id: int, exc: discord.HTTPException) -> StartupError:
    """The start-up error for a command sync refused in ``DEV_GUILD_ID``."""
    return StartupError(
        f"DEV_GUILD_ID {guild_id}: Discord refused to sync commands there ({exc.status} {one_line(exc.text, 60)}); "
        "the bot is not in that server: invite it (see README) or leave DEV_GUILD_ID empty"
    )


def host_of(url: str) -> str:
    """``scheme://host[:port]`` of ``url``: enough to name a server in a message, never a path or query."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.hostname}" + (f":{parts.port}" if parts.port else "")


async def probe_gateway(settings: Settings) -> None:
    """Open (and at once close) a TCP/TLS connection to the gateway host, or raise :class:`StartupError`.

    discord.py retries an unreachable gateway forever, logging a traceback each time; checking once
    before connecting turns a wrong ``DISCORD_GATEWAY_URL`` into one line.
    """
    parts = urlsplit(settings.discord_gateway_url)
    secure = parts.scheme == "wss"
    port = parts.port or (443 if secure else 80)
    try:
        async with asyncio.timeout(10):
            _reader, writer = await asyncio.open_connection(
                parts.hostname, port, ssl=ssl.create_default_context() if secure else None
            )
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()
    except (OSError, TimeoutError, ssl.SSLError) as exc:
        raise StartupError(
            f"Cannot reach the Discord gateway at {host_of(settings.discord_gateway_url)} ({describe_error(exc)}); "
            "check the network, or DISCORD_GATEWAY_URL"
        ) from None


@dataclass(frozen=True)
class DiscordIdentity:
    """Who the token belongs to (``GET /users/@me``) and its application id."""

    name: str
    user_id: int
    application_id: int


async def fetch_discord_identity(session: aiohttp.ClientSession, settings: Settings) -> DiscordIdentity:
    """``GET /users/@me`` and ``GET /oauth2/applications/@me`` with the token, or :class:`StartupError`."""
    me = await _discord_get(session, settings, "/users/@me")
    app = await _discord_get(session, settings, "/oauth2/applications/@me")
    name = str(me.get("username") or "?")
    if me.get("discriminator") not in (None, "0", "0000"):
        name += f"#{me['discriminator']}"
    return DiscordIdentity(name, int(me["id"]), int(app.get("id") or me["id"]))


async def check_dev_guild(session: aiohttp.ClientSession, settings: Settings, application_id: int) -> None:
    """Prove the bot may manage commands in ``DEV_GUILD_ID`` (it is in that server), or :class:`StartupError`."""
    guild_id = settings.dev_guild_id
    try:
        await _discord_get(session, settings, f"/applications/{application_id}/guilds/{guild_id}/commands")
    except _DiscordRefused as exc:
        if exc.status in (403, 404):
            raise StartupError(
                f"DEV_GUILD_ID {guild_id}: the bot is not in that server ({exc.status} {exc.message}); "
                "invite it (see README) or leave DEV_GUILD_ID empty"
            ) from None
        raise StartupError(f"DEV_GUILD_ID {guild_id}: Discord answered {exc.status} {exc.message}") from None


class _DiscordRefused(StartupError):
    def __init__(self, status: int, message: str, text: str) -> None:
        super().__init__(text)
        self.status = status
        self.message = message


async def _discord_get(session: aiohttp.ClientSession, settings: Settings, route: str) -> dict[str, Any]:
    headers = {"Authorization": f"Bot {settings.discord_token.get_secret_value()}"}
    url = settings.discord_api_url.rstrip("/") + route
    try:
        async with session.get(url, headers=headers, timeout=PROBE_TIMEOUT, allow_redirects=False) as resp:
            status, reason, text = resp.status, resp.reason, await resp.text(errors="replace")
    except (aiohttp.ClientError, OSError, TimeoutError) as exc:
        raise StartupError(
            f"Cannot reach Discord at {host_of(settings.discord_api_url)} ({describe_error(exc)}); check the "
            "network, or DISCORD_API_URL"
        ) from None
    try:
        body = json.loads(text)
    except ValueError:
        body = None
    if status == 200 and isinstance(body, dict | list):
        return body if isinstance(body, dict) else {"items": body}
    message = one_line(body.get("message") if isinstance(body, dict) else reason, 60)
    if status == 200:
        raise StartupError(f"Discord sent an unexpected answer to GET {route}; is DISCORD_API_URL right?")
    if status == 401:
        raise _DiscordRefused(
            401,
            message,
            "DISCORD_TOKEN was rejected by Discord (401 Unauthorized); copy the bot's token again from the "
            "developer portal (Bot → Reset Token) into DISCORD_TOKEN",
        )
    raise _DiscordRefused(status, message, f"Discord answered {status} {message} to GET {route}")
