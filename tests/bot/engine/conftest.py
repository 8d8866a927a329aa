"""The job engine against the fake BFL over real HTTP, with a real SQLite file and no Discord.

A :class:`RecordingPresenter` stands in for the Discord side: it records what the member would see
and wakes tests waiting for a job's end, so no test sleeps to synchronise.
"""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp
import pytest

from bot.app import build_services
from bot.bfl.client import BflClient
from bot.config import Settings
from bot.engine.engine import JobEngine, PresenterSlot, Requester
from bot.engine.progress import GroupPosted, Posted, Progress, Result
from bot.models import build_request

GUILD, CHANNEL, ALICE = 1000, 2000, 3000
# No edit throttle; retries of a failed step or post after milliseconds instead of seconds.
FAST_ENGINE = {"progress_interval": 0.0, "retry_backoff_seconds": (0.01,), "delivery_backoff_seconds": (0.01, 0.05)}


def make_settings(fake_bfl, tmp_path, **overrides):
    return Settings(
        _env_file=None,
        discord_token="discord-test-token",
        bfl_api_key=fake_bfl.api_key,
        bfl_api_url=fake_bfl.url,
        database_path=tmp_path / "db.sqlite3",
        cache_dir=tmp_path / "cache",
        **overrides,
    )


def request(seed=42, **options):
    return build_request(
        model=options.pop("model", None), prompt="a red fox in snow", aspect_ratio="16:9", seed=seed, **options
    )


def who(job_id, user=ALICE, guild=GUILD):
    return Requester(
        job_id=job_id,
        guild_id=guild,
        channel_id=CHANNEL,
        user_id=user,
        application_id=1,
        interaction_token=f"t{job_id}",
    )


class RecordingPresenter:
    """What the member would see, per job; ``ended`` is set once a job was delivered or notified."""

    def __init__(self) -> None:
        self.progress: dict[int, list[str]] = {}
        self.delivered: dict[int, Result] = {}
        self.notified: dict[int, str] = {}
        self.groups: dict[int, list] = {}  # group id → every GroupResult posted for it (a repost edits the same)
        self.changed = asyncio.Condition()
        self.refused = 0  # posts refused so far
        self.fail_delivery = 0  # how many posts to refuse (True: all of them)

    def progress_text(self, progress: Progress) -> str:
        paused = ":paused" if progress.paused else ""
        return f"{progress.status.value}:{progress.position}:{progress.bfl_stage}{paused}"

    async def show_progress(self, job, progress, text) -> None:
        self.progress.setdefault(job.id, []).append(text)
        await self._notify_all()

    async def deliver(self, result: Result) -> Posted:
        if self.fail_delivery:
            if self.fail_delivery is not True:
                self.fail_delivery -= 1
            self.refused += 1
            await self._notify_all()
            raise RuntimeError("Discord said no")
        self.delivered[result.job.id] = result
        await self._notify_all()
        return Posted(CHANNEL, 10_000 + result.job.id)

    async def deliver_group(self, result) -> GroupPosted:
        self.groups.setdefault(result.group.id, []).append(result)
        await self._notify_all()
        return GroupPosted(CHANNEL, 20_000 + result.group.id, {r.job.id: None for r in result.results})

    async def notify(self, job, text) -> None:
        self.notified[job.id] = text
        await self._notify_all()

    async def _notify_all(self) -> None:
        async with self.changed:
            self.changed.notify_all()

    async def wait_for(self, predicate, timeout=10.0) -> None:
        async with asyncio.timeout(timeout), self.changed:
            while not predicate():
                await self.changed.wait()

    async def ended(self, job_id, timeout=10.0):
        await self.wait_for(lambda: job_id in self.delivered or job_id in self.notified, timeout)
        return self.delivered.get(job_id) or self.notified.get(job_id)


class EngineHarness:
    """An engine, its store and ledger, and the recording presenter."""

    def __init__(self, engine: JobEngine, presenter: RecordingPresenter, db, bfl: BflClient, services, settings):
        self.engine = engine
        self.store = engine.store
        self.presenter = presenter
        self.db = db
        self.bfl = bfl
        self.limits = services.server.limits
        self.server = services.server.settings  # the per-server switches (paused)
        self.settings = settings
        self.ledger = services.ledger
        self.safety = services.server.safety  # the /safety switches (video)
        self.cache = engine._provider.cache

    async def generate(self, job_id, req=None, user=ALICE, guild=GUILD):
        await self.engine.admit(req or request(), who(job_id, user, guild), acked=True)
        return await self.ended(job_id)

    async def ended(self, job_id):
        """What the member was finally shown, once the engine is done with the job."""
        shown = await self.presenter.ended(job_id)
        await self.engine.wait_job(job_id)
        return shown

    async def ledger_kinds(self, job_id):
        rows = await self.db.fetch_all("SELECT kind FROM ledger WHERE job_id = ? ORDER BY id", (job_id,))
        return [r["kind"] for r in rows]

    async def money(self, job_id):
        row = await self.db.fetch_one(
            "SELECT SUM(server_micros) AS s, SUM(member_micros) AS m FROM ledger WHERE job_id = ?", (job_id,)
        )
        return row["s"], row["m"]


def build_engine(db, session, settings, clock, presenter=None, **options: Any) -> tuple[JobEngine, BflClient, Any]:
    """The engine exactly as the bot wires it (``build_services``), with fast polls and no edit throttle."""
    services = build_services(
        settings,
        db=db,
        session=session,
        clock=clock,
        engine_options={"presenter": PresenterSlot(presenter), "config": FAST_ENGINE} | options,
        backoff_base=0.001,
        backoff_cap=0.01,
    )
    return services.engine, services.ops.bfl, services


@pytest.fixture
async def make_engine(db, fake_bfl, tmp_path, clock):
    made = []

    async def factory(presenter=None, *, config=None, engine_options=None, **overrides):
        """``overrides``: settings; ``config``: EngineConfig fields (past the settings' checks); ``engine_options``."""
        session = aiohttp.ClientSession()
        settings = make_settings(fake_bfl, tmp_path, **overrides)
        presenter = presenter or RecordingPresenter()
        options = dict(engine_options or {})
        if config:
            options["config"] = FAST_ENGINE | config
        engine, bfl, services = build_engine(db, session, settings, clock, presenter, **options)
        await engine.start()
        made.append((engine, session))
        return EngineHarness(engine, presenter, db, bfl, services, settings)

    yield factory
    for engine, session in made:
        await engine.stop(grace=0.1)
        await session.close()


@pytest.fixture
async def harness(make_engine):
    return await make_engine()
