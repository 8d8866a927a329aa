"""The core's service graph: every service built once, over an open database and HTTP session.

:func:`build_services` is the one place services are constructed and wired (through constructors);
:mod:`bot.app` builds the Discord client around it. Nothing here knows Discord's text: the notices'
wording is passed in (``render``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

import aiohttp

from bot.audit import AuditLog
from bot.bfl.client import BflClient, BflPolicy
from bot.billing.alerts import SpendAlerts
from bot.billing.asks import AskStore
from bot.billing.bookkeeping import Bookkeeping
from bot.billing.gifts import Gifts
from bot.billing.ledger import Ledger
from bot.billing.limits import LimitsService
from bot.channel_defaults import ChannelDefaultsStore
from bot.clock import Clock, utc_now
from bot.config import Settings
from bot.engine.config import EngineConfig
from bot.engine.dbclock import DbClock
from bot.engine.engine import EngineHooks, EngineParts, JobEngine
from bot.engine.groups import GroupStore
from bot.engine.leases import ProcessIdentity
from bot.engine.parts import Provider, Rules
from bot.engine.shared_breaker import BreakerLog, SharedBreakers
from bot.engine.sources import JobSources
from bot.engine.store import JobStore
from bot.images.cache import ImageCache
from bot.modlog import ChannelPoster, ModLog
from bot.offers import OfferStore
from bot.ops.metrics import Metrics
from bot.prefs import PrefsService
from bot.safety.privacy import PrivacyService
from bot.safety.service import SafetyService
from bot.server_settings import ServerSettings
from bot.storage.database import Database
from bot.styles import StyleService


@dataclass(frozen=True)
class ServerServices:
    """A server's rules and its moderators' tools."""

    settings: ServerSettings  # the per-server switches (paused, fallback model, mod-log channel, …)
    limits: LimitsService  # members' and roles' budgets
    safety: SafetyService
    audit: AuditLog  # moderators' changes
    modlog: ModLog
    asks: AskStore  # members' requests for more, waiting for a moderator (Ask for more)
    gifts: Gifts  # members' gifts of their remaining budget (`/gift`)


@dataclass(frozen=True)
class MemberServices:
    """What members keep with the bot."""

    prefs: PrefsService  # members' defaults, and channels' (`prefs.channels`) under them
    styles: StyleService
    privacy: PrivacyService  # their stored prompts: retention, what is kept, forgetting
    sources: JobSources  # what an edit works on, and a member's history
    offers: OfferStore  # pending offers behind a button: confirmations, fallbacks (one table)


@dataclass(frozen=True)
class Operations:
    """What runs beside the requests."""

    clock: Clock  # the database's clock
    bfl: BflClient  # the provider (the engine's own; /status reads the credits through it)
    metrics: Metrics
    bookkeeping: Bookkeeping  # counters = ledger, now and daily


@dataclass(frozen=True)
class Services:
    """Everything the cogs use, built once by :func:`build_services` (through :func:`bot.app.assemble`)."""

    settings: Settings
    db: Database
    jobs: JobStore
    ledger: Ledger
    engine: JobEngine
    server: ServerServices
    members: MemberServices
    ops: Operations


ServicesFor = Callable[[ChannelPoster], Services]  # builds the services around the Discord client


def build_services(
    settings: Settings,
    *,
    db: Database,
    session: aiohttp.ClientSession,
    poster: ChannelPoster | None = None,
    clock: Clock = utc_now,
    engine_options: dict[str, Any] | None = None,
    role: str = "bot",
    render: Callable[[object], str] = str,
    **bfl_options: Any,
) -> Services:
    """Wire every core service. ``poster``: the client that posts the mod-log; ``render``: its wording.

    ``engine_options`` reach the :class:`JobEngine`, ``bfl_options`` the :class:`BflPolicy` (tests, benchmarks).
    """
    clock = DbClock(db, clock)  # the database's clock: every process agrees on leases, deadlines, periods
    bfl = _bfl_client(settings, session, bfl_options)
    ledger = Ledger(db, clock)
    jobs = JobStore(db, ledger, clock)
    audit = AuditLog(db, clock)
    limits = LimitsService(db, settings, audit, clock)
    server_settings = ServerSettings(db, audit)
    modlog = ModLog(server_settings, render=render, poster=poster)
    alerts = SpendAlerts(db, ledger, limits, modlog, clock)
    metrics = Metrics()
    assert settings.cache_dir is not None  # filled in by Settings from DATABASE_PATH
    cache = ImageCache(settings.cache_dir, settings.cache_max_mb * 1024 * 1024)
    safety = SafetyService(db, audit, settings, render=render, clock=clock, notice=modlog.announce)
    groups = GroupStore(db, ledger, clock)
    # end_users (the provider's default): the `user` sent to BFL, keyed by a per-install secret loaded at start
    parts = EngineParts(jobs, groups, ledger, clock, Provider(bfl, cache), Rules(limits, server_settings, safety))
    hooks = {"on_admitted": alerts.check, "notice": modlog.announce, "observer": metrics}
    engine = _job_engine(settings, parts, hooks=hooks, options=engine_options or {}, role=role)
    privacy = PrivacyService(db, cache, retention_days=settings.prompt_retention_days, clock=clock)
    styles = StyleService(db, audit, max_prompt_length=settings.max_prompt_length, clock=clock)
    channels = ChannelDefaultsStore(db, styles, audit, default_model=settings.default_model, clock=clock)
    prefs = PrefsService(db, styles, default_model=settings.default_model, channels=channels, clock=clock)
    return Services(
        settings,
        db,
        jobs,
        ledger,
        engine,
        ServerServices(
            server_settings,
            limits,
            safety,
            audit,
            modlog,
            AskStore(db, ledger, audit, clock),
            Gifts(db, ledger, audit, clock),
        ),
        MemberServices(prefs, styles, privacy, JobSources(db), OfferStore(db, clock=clock)),
        Operations(clock, bfl, metrics, Bookkeeping(db, clock=clock, observer=metrics)),
    )


def _job_engine(
    settings: Settings, parts: EngineParts, *, hooks: dict[str, Any], options: dict[str, Any], role: str
) -> JobEngine:
    """The engine over ``parts``; ``options`` (tests, benchmarks) override its hooks, config, breakers, identity."""
    options = dict(options)
    config = EngineConfig.from_settings(settings, **options.pop("config", {}))
    breakers = options.pop("breakers", None) or SharedBreakers(BreakerLog(parts.store.db))
    identity = options.pop("identity", None) or ProcessIdentity(role)
    parts = replace(parts, provider=replace(parts.provider, breakers=breakers), identity=identity)
    return JobEngine(parts, config, EngineHooks(**(hooks | options)))


def _bfl_client(settings: Settings, session: aiohttp.ClientSession, options: dict[str, Any]) -> BflClient:
    """The BFL client; ``options`` (tests, benchmarks) go to its :class:`BflPolicy`."""
    policy = BflPolicy(task_not_found_window=settings.bfl_task_not_found_window_seconds, **options)
    return BflClient(session=session, api_key=settings.bfl_api_key, base_url=settings.bfl_api_url, policy=policy)
