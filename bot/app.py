"""The Discord client and `assemble()`: the one place that builds and wires every service.

`python -m bot` and the end-to-end tests both go through :func:`assemble`, so the tests run the
same object graph as production.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import pkgutil
import signal
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import aiohttp
import discord
import yarl
from discord.ext import commands

import cogs
from bot import services
from bot.clock import Clock, utc_now
from bot.config import Settings
from bot.modlog import ChannelPoster
from bot.ops.memory import MemoryKeeper
from bot.ops.server import OpsServer
from bot.services import Services, ServicesFor
from bot.startup import (
    dev_guild_refused,
    discord_startup_errors,
    open_storage,
    probe_gateway,
)
from bot.startup_bfl import check_bfl_at_startup
from bot.tree import FluxcordTree
from cogs._asks import refusal_view
from cogs._render import error_text, notice_text

log = logging.getLogger(__name__)


def extension_names() -> list[str]:
    """Every cog module under `cogs/` (modules starting with `_` are helpers, not extensions)."""
    return sorted(
        f"{cogs.__name__}.{module.name}"
        for module in pkgutil.iter_modules(cogs.__path__)
        if not module.name.startswith("_")
    )


class FluxcordBot(commands.Bot):
    """The Discord client: loads the cogs, syncs commands only when they changed, recovers jobs.

    ``services`` builds the services with this client as their mod-log poster (each needs the other).
    ``role="worker"`` (`python -m bot worker`) never opens the gateway: it logs in for Discord's REST
    API only and runs the job engine, which posts results through interaction webhooks and channels.
    """

    #: How the one error path words the core's refusals (cogs/_render.py: markup lives in cogs/).
    error_text = staticmethod(error_text)
    #: The buttons under a refusal that has some (Ask for more under a member's budget refusal).
    refusal_view = staticmethod(refusal_view)

    def __init__(
        self, services: ServicesFor, *, background_work: bool = True, role: str = "bot", **options: Any
    ) -> None:
        # Built for this client, which posts their mod-log announcements (it only keeps the reference now).
        built = services(self)
        options.setdefault("intents", discord.Intents.default())
        options.setdefault("chunk_guilds_at_startup", False)
        options.setdefault("http_trace", built.ops.metrics.discord_trace())  # fluxcord_discord_api_errors_total
        super().__init__(
            command_prefix=commands.when_mentioned,
            tree_cls=FluxcordTree,
            allowed_mentions=discord.AllowedMentions.none(),  # prompts are echoed: never ping from them
            help_command=None,
            **options,
        )
        self.background_work = background_work  # False for `python -m bot sync`: no auto-sync, no jobs
        self.role = role
        self.closed = asyncio.Event()  # set once close() has finished
        self.services = built
        settings, port = self.services.settings, self.services.settings.metrics_port
        self.ops = (  # the metrics and health server, when METRICS_PORT is set (`assemble` starts it)
            OpsServer(self, self.services.ops.metrics, host=settings.metrics_host, port=port)
            if port is not None and background_work
            else None
        )

    @property
    def tree(self) -> FluxcordTree:
        """The command tree (always ours: ``tree_cls``), whose ``on_error`` answers any exception."""
        tree = super().tree
        assert isinstance(tree, FluxcordTree)
        return tree

    async def setup_hook(self) -> None:
        """Load cogs, sync commands if they changed, and start the job engine (resuming open jobs)."""
        for name in extension_names():
            await self.load_extension(name)
        if not self.background_work:
            return
        if self.role == "worker":  # the gateway processes own the command set and the retention sweep
            await self.services.engine.start()
            return
        await self.sync_commands(force=False)
        # Resolving money and resuming jobs needs only the database, BFL and Discord's REST API.
        await self.services.engine.start()
        self.services.members.privacy.start()  # the retention sweep (PROMPT_RETENTION_DAYS)
        self.services.ops.bookkeeping.start()  # counters = ledger, now and daily (off the hot path)

    async def close(self) -> None:
        """Stop admitting, leave every job resumable, then disconnect."""
        try:
            await self.services.engine.stop()
            await self.services.members.privacy.stop()
            await self.services.ops.bookkeeping.stop()
            await super().close()
        finally:
            self.closed.set()

    async def sync_commands(self, *, force: bool) -> bool:
        """Push the command set to Discord if it changed since the last sync (or if ``force``)."""
        guild_id = self.services.settings.dev_guild_id
        guild = discord.Object(guild_id) if guild_id else None
        if guild is not None:
            self.tree.copy_global_to(guild=guild)
        payload = [command.to_dict(self.tree) for command in self.tree.get_commands(guild=guild)]
        digest = hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()
        key = f"commands-synced:{guild_id or 'global'}"
        db = self.services.db
        if not force and await db.fetch_value("SELECT value FROM meta WHERE key = ?", (key,)) == digest:
            log.info("Application commands unchanged; not syncing")
            return False
        try:
            synced = await self.tree.sync(guild=guild)
        except discord.Forbidden as exc:
            if guild_id is None:
                raise
            raise dev_guild_refused(guild_id, exc) from None
        await db.execute(
            "INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            (key, digest),
        )
        log.info(
            "Synced %d application commands to %s",
            len(synced),
            f"guild {guild_id}" if guild else "all guilds",
        )
        return True

    async def post_to_channel(self, channel_id: int, text: str) -> None:
        """Post plain text to a channel, pinging nobody (mod-log announcements)."""
        await self.get_partial_messageable(channel_id).send(text, allowed_mentions=discord.AllowedMentions.none())

    async def on_ready(self) -> None:
        """Log who we are."""
        log.info(
            "Ready as %s (id %s) in %d servers",
            self.user,
            self.user.id if self.user else "?",
            len(self.guilds),
        )


class ShardedFluxcordBot(FluxcordBot, commands.AutoShardedBot):
    """The bot as a shard cluster: SHARD_COUNT shards in all, SHARD_IDS those run by this process."""


def bot_class(settings: Settings, role: str) -> tuple[type[FluxcordBot], dict[str, Any]]:
    """The client class for this process and its shard options."""
    if settings.shard_count is None or role == "worker":
        return FluxcordBot, {}
    ids = list(settings.shard_ids) if settings.shard_ids is not None else None
    return ShardedFluxcordBot, {"shard_count": settings.shard_count, "shard_ids": ids}


def point_discord_at(settings: Settings) -> None:
    """Send discord.py's REST and gateway traffic to the configured endpoints (proxies, test servers)."""
    # Undocumented class attributes: discord.py has no public setting for the endpoints it talks to.
    discord.http.Route.BASE = settings.discord_api_url
    discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY = yarl.URL(settings.discord_gateway_url)
    defaults = Settings.model_fields
    if (settings.discord_api_url, settings.discord_gateway_url) != (
        defaults["discord_api_url"].default,
        defaults["discord_gateway_url"].default,
    ):
        log.warning("Using Discord endpoints %s and %s", settings.discord_api_url, settings.discord_gateway_url)


def build_services(settings: Settings, **options: Any) -> Services:
    """:func:`bot.services.build_services`, the mod-log's and safety notices worded by the cogs' renderer."""
    return services.build_services(settings, render=notice_text, **options)


@asynccontextmanager
async def assemble(
    settings: Settings,
    *,
    clock: Clock = utc_now,
    bfl_options: dict[str, Any] | None = None,
    role: str = "bot",
    **bot_options: Any,
) -> AsyncIterator[FluxcordBot]:
    """Build the database, HTTP session, services and bot; close them all afterwards.

    ``role``: ``"bot"`` (gateway and job engine) or ``"worker"`` (job engine only).
    """
    point_discord_at(settings)
    db = await open_storage(settings)  # a problem is a one-line StartupError naming DATABASE_PATH or CACHE_DIR
    # No default headers: the BFL key is attached per request, only to BFL API hosts.
    session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=None, sock_connect=15))
    try:

        def services_for(poster: ChannelPoster) -> Services:
            options = bfl_options or {}
            return build_services(settings, db=db, session=session, poster=poster, clock=clock, role=role, **options)

        cls, shard_options = bot_class(settings, role)
        bot = cls(services_for, role=role, **(shard_options | bot_options))
        services = bot.services
        ops = bot.ops
        if ops is not None:
            await ops.start()  # a port in use is a one-line StartupError naming METRICS_PORT
        # Memory freed after a burst of images goes back to the system (bot/ops/memory.py).
        keeper = MemoryKeeper().start() if bot.background_work else None
        try:
            yield bot
        finally:
            if keeper is not None:
                await keeper.stop()
            if ops is not None:
                await ops.stop()
            if not bot.is_closed():
                await bot.close()
            await services.engine.stop()  # idempotent; the database must outlive every job task
            await services.server.modlog.close()
    finally:
        await session.close()
        await db.close()


async def run_bot(settings: Settings) -> None:
    """Run until stopped; a failure before the bot is ready raises a one-line ``StartupError``."""
    async with assemble(settings) as bot:
        stop_on_signals(bot)
        await check_bfl_at_startup(settings)
        await probe_gateway(settings)
        with discord_startup_errors(settings):
            await bot.login(settings.discord_token.get_secret_value())
            await bot.connect()


async def run_worker(settings: Settings) -> None:
    """Run only the job engine (`python -m bot worker`) until stopped: no gateway, REST only."""
    async with assemble(settings, role="worker") as bot:
        stop_on_signals(bot)
        await check_bfl_at_startup(settings)
        with discord_startup_errors(settings):
            await bot.login(settings.discord_token.get_secret_value())  # setup_hook starts the engine
        log.info("Worker %s running jobs (no gateway connection)", bot.services.engine.identity.id)
        await bot.closed.wait()


def stop_on_signals(bot: FluxcordBot) -> None:
    """SIGTERM and SIGINT close the bot gracefully: no new jobs, every job kept resumable, exit 0."""
    loop = asyncio.get_running_loop()
    shutdowns: list[asyncio.Task[None]] = []  # keep a reference: the loop holds tasks only weakly

    def stop(name: str) -> None:
        log.info("%s received: finishing up", name)
        bot.services.engine.stop_admitting()  # refuse new requests at once, before the gateway closes
        shutdowns.append(loop.create_task(bot.close(), name="fluxcord-shutdown"))

    for sig in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError, RuntimeError):  # not on every platform or thread
            loop.add_signal_handler(sig, stop, sig.name)


async def sync_only(settings: Settings) -> None:
    """Log in, push the command set to Discord, and exit (`python -m bot sync`)."""
    async with assemble(settings, background_work=False) as bot:
        # login() runs setup_hook, which loads the cogs; then force a sync whatever the hash says.
        with discord_startup_errors(settings):
            await bot.login(settings.discord_token.get_secret_value())
            await bot.sync_commands(force=True)
