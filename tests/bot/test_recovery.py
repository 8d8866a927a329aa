"""A process killed between reserve and settle, then restarted, ends consistent."""

import asyncio
import signal
import sys
from pathlib import Path

import aiohttp
import pytest

from bot.app import build_services
from bot.bfl.client import PollSchedule
from bot.jobs import JobStatus
from tests.bot.test_generation import make_settings
from tests.fakes.fake_bfl import Behaviour

REPO = Path(__file__).parents[2]


async def run_child_until_killed(tmp_path, fake_bfl, stage):
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "tests.bot.crash_child", str(tmp_path / "db.sqlite3"), str(tmp_path / "cache"),
        fake_bfl.url, fake_bfl.api_key, stage,
        cwd=REPO, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    _, stderr = await asyncio.wait_for(process.communicate(), timeout=60)
    assert process.returncode == -signal.SIGKILL, stderr.decode()


@pytest.fixture
async def restarted(tmp_path, fake_bfl):
    """The services of a fresh process over the same database file."""
    from bot.storage.database import Database

    resources = []

    async def start():
        db = await Database.open(tmp_path / "db.sqlite3")
        session = aiohttp.ClientSession()
        resources.append((db, session))
        settings = make_settings(fake_bfl, tmp_path)
        return build_services(settings, db=db, session=session, poll_schedule=PollSchedule(first_interval=0.01))

    yield start
    for db, session in resources:
        await session.close()
        await db.close()


async def test_killed_while_generating_is_settled_and_delivered_after_restart(tmp_path, fake_bfl, restarted):
    gate = asyncio.Event()
    fake_bfl.default = Behaviour(release=gate)
    await run_child_until_killed(tmp_path, fake_bfl, "generating")
    assert len(fake_bfl.submits) == 1
    gate.set()  # BFL finishes the task while the bot is down

    services = await restarted()
    assert await services.ledger.open_job_ids() == [1]
    delivered = []

    async def deliver(job, data):
        delivered.append((job.id, len(data)))
        await services.generator.mark_delivered(job.id, job.channel_id, 99)

    assert await services.generator.recover(deliver=deliver) == 1
    assert delivered and delivered[0][0] == 1 and delivered[0][1] > 1000
    assert len(fake_bfl.submits) == 1  # recovery polls; it never submits again
    assert await services.ledger.outcome(1) == "settle"
    assert (await services.jobs.get(1)).status is JobStatus.DELIVERED
    assert await services.ledger.verify_counters() == []
    assert await services.generator.recover(deliver=deliver) == 0  # a second restart has nothing to do
    assert await services.db.fetch_value("SELECT COUNT(*) FROM ledger WHERE kind = 'settle'") == 1


async def test_killed_before_submit_is_released(tmp_path, fake_bfl, restarted):
    await run_child_until_killed(tmp_path, fake_bfl, "queued")
    services = await restarted()
    await services.generator.recover()
    assert fake_bfl.submits == []
    assert await services.ledger.outcome(1) == "release"
    assert await services.db.fetch_value("SELECT SUM(member_micros) FROM ledger") == 0
    assert await services.ledger.verify_counters() == []


async def test_killed_during_submit_is_charged_conservatively(tmp_path, fake_bfl, restarted):
    await run_child_until_killed(tmp_path, fake_bfl, "submitting")
    services = await restarted()
    await services.generator.recover()
    job = await services.jobs.get(1)
    assert job.status is JobStatus.UNKNOWN  # flagged for reconciliation, never resubmitted
    row = await services.db.fetch_one("SELECT SUM(server_micros) AS s, SUM(member_micros) AS m FROM ledger")
    assert (row["s"], row["m"]) == (40_000, 0)
    assert await services.ledger.open_job_ids() == []


async def test_failed_task_found_after_restart_follows_the_policy(tmp_path, fake_bfl, restarted):
    gate = asyncio.Event()
    fake_bfl.default = Behaviour(release=gate, final_status="Error")
    await run_child_until_killed(tmp_path, fake_bfl, "generating")
    gate.set()
    services = await restarted()
    await services.generator.recover(deliver=None)
    assert (await services.jobs.get(1)).status is JobStatus.FAILED
    assert await services.db.fetch_value("SELECT SUM(member_micros) FROM ledger") == 0
    assert await services.ledger.open_job_ids() == []
