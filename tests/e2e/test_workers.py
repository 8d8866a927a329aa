"""Several real bot processes on one database: a gateway, workers, a worker killed mid-job.

Every process is a real ``python -m bot`` / ``python -m bot worker`` child, on a real SQLite file or
a real PostgreSQL server, against the fake Discord and the fake BFL over loopback.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal

import pytest

from bot.engine.leases import Holder
from bot.engine.states import JobStatus
from bot.storage.database import Database
from tests.e2e.processes import Running, clean_environment, fake_endpoints
from tests.fakes.fake_bfl import Behaviour

LEASE_SECONDS = "2"  # a killed process's jobs are taken over within seconds


@pytest.fixture(params=["sqlite", "postgresql"])
def database(request, tmp_path):
    """The setting that points every process at one shared database, and the test's own view of it."""
    if request.param == "sqlite":
        path = tmp_path / "shared.sqlite3"
        return {"DATABASE_PATH": str(path)}, str(path)
    url = request.getfixturevalue("pg_url")
    return {"DATABASE_URL": url, "DATABASE_PATH": str(tmp_path / "unused.sqlite3")}, url


class Cluster:
    """The bot processes of one test; every one still running is stopped at the end."""

    def __init__(self, tmp_path, fake_discord, fake_bfl, database) -> None:
        self.tmp_path = tmp_path
        self.settings = {
            **fake_endpoints(fake_discord, fake_bfl),
            **database[0],
            "JOB_LEASE_SECONDS": LEASE_SECONDS,
            "BFL_MAX_ACTIVE_TASKS": "1",  # one BFL slot across ALL processes
            "CONFIRM_ABOVE_USD": "100",
        }
        self.target = database[1]
        self.processes: list[Running] = []
        self.db: Database | None = None

    async def start(self, *args: str, name: str) -> Running:
        env = clean_environment(**self.settings, CACHE_DIR=str(self.tmp_path / f"cache-{name}"))
        process = await Running.start(*args, env=env, cwd=self.tmp_path)
        self.processes.append(process)
        return process

    async def view(self) -> Database:
        if self.db is None:
            self.db = await Database.at(self.target)
        return self.db

    async def wait(self, query: str, params=(), *, until, timeout: float = 30.0):
        """Re-read ``query`` until ``until(rows)`` holds (the other processes write the database)."""
        db = await self.view()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            rows = await db.fetch_all(query, params)
            if until(rows):
                return rows
            if loop.time() > deadline:
                logs = "\n---\n".join(p.text[-3000:] for p in self.processes)
                raise AssertionError(f"timed out waiting on {query!r}: {[dict(r) for r in rows]}\n{logs}")
            await asyncio.sleep(0.05)

    async def holder_of(self, job_id: int) -> str:
        rows = await self.wait("SELECT claimed_by FROM jobs WHERE id = ?", (job_id,), until=lambda r: r)
        return rows[0]["claimed_by"]

    async def live_workers(self, count: int) -> list[str]:
        rows = await self.wait(
            "SELECT id FROM processes WHERE role = 'worker' ORDER BY id", until=lambda r: len(r) == count
        )
        return [row["id"] for row in rows]

    async def close(self) -> None:
        for process in self.processes:
            with contextlib.suppress(Exception):
                await process.stop()
        if self.db is not None:
            await self.db.close()


@pytest.fixture
async def cluster(tmp_path, fake_discord, fake_bfl, database):
    running = Cluster(tmp_path, fake_discord, fake_bfl, database)
    try:
        yield running
    finally:
        await running.close()


async def test_a_worker_killed_mid_job_has_it_finished_once_by_another(cluster, fake_discord, fake_bfl):
    fake = fake_discord
    gate = asyncio.Event()
    fake_bfl.default = Behaviour(release=gate)  # BFL works on the image until the test says
    gateway = await cluster.start(name="gateway")
    await fake.wait_until_connected(timeout=30)
    await fake.wait_for(lambda: fake.command_syncs, timeout=30)
    first = await fake.slash("imagine", {"prompt": "a lighthouse in a storm"})
    await fake_bfl.wait_for(lambda: len(fake_bfl.tasks) == 1, timeout=30)  # the gateway submitted it
    later = [await fake.slash("imagine", {"prompt": f"a lighthouse, take {n}"}) for n in (2, 3)]
    job_ids = [int(first.id)] + [int(i.id) for i in later]
    await cluster.wait(
        "SELECT id FROM jobs WHERE status = 'queued' AND acked = 1", until=lambda r: len(r) == 2
    )  # the one BFL slot is taken: these two wait

    workers = [await cluster.start("worker", name=f"worker{n}") for n in (1, 2)]
    await cluster.live_workers(2)
    assert await gateway.stop() == 0  # a rolling restart of the gateway: its job is left to the workers
    ids = set(await cluster.live_workers(2))
    holder = await cluster.wait(
        "SELECT claimed_by FROM jobs WHERE id = ?", (job_ids[0],), until=lambda r: r and r[0]["claimed_by"] in ids
    )
    victim_id = holder[0]["claimed_by"]
    victim = next(w for w in workers if w.process.pid == Holder.parse(victim_id).pid)
    survivor = next(w for w in workers if w is not victim)
    assert len(fake_bfl.submits) == 1
    assert await cluster.wait("SELECT status FROM jobs WHERE status IN ('submitting', 'generating')", until=bool)

    assert await victim.kill() == -signal.SIGKILL  # mid-job: BFL still has the task, no clean-up ran
    survivor_id = next(i for i in ids if i != victim_id)
    await cluster.wait(
        "SELECT claimed_by FROM jobs WHERE id = ?", (job_ids[0],), until=lambda r: r[0]["claimed_by"] == survivor_id
    )
    gate.set()

    for interaction in (first, *later):
        await interaction.wait_for(lambda i=interaction: (i.original_message or {}).get("attachments"), timeout=30)
    rows = await cluster.wait(
        f"SELECT id, status, claimed_by FROM jobs WHERE id IN ({','.join('?' * 3)}) ORDER BY id",
        job_ids,
        until=lambda r: all(row["status"] != JobStatus.DELIVERING for row in r),  # posted; being recorded
    )
    assert [JobStatus(r["status"]) for r in rows] == [JobStatus.DELIVERED] * 3
    db = await cluster.view()
    assert {r["claimed_by"] for r in rows} == {survivor_id}  # it finished the first and ran the others
    assert len(fake_bfl.submits) == 3  # the taken-over job was polled again, never submitted twice
    assert fake_bfl.max_active_seen == 1  # the slot cap held across the three processes
    kinds = await db.fetch_all(
        "SELECT job_id, kind FROM ledger WHERE kind IN ('reserve', 'settle') ORDER BY job_id, id"
    )
    assert [(r["job_id"], r["kind"]) for r in kinds] == [(j, k) for j in sorted(job_ids) for k in ("reserve", "settle")]
    assert await survivor.stop() == 0
    assert "Traceback" not in survivor.text, survivor.text[-3000:]
    assert f"its process {victim_id} is gone; taking it over" in survivor.text


async def test_a_worker_alone_starts_posts_nothing_and_stops_cleanly(cluster, fake_discord):
    worker = await cluster.start("worker", name="worker")
    await cluster.live_workers(1)
    assert not fake_discord.connected  # a worker never opens the gateway
    assert fake_discord.command_syncs == []  # nor touches the command set
    assert await worker.stop() == 0
    await cluster.wait("SELECT id FROM processes", until=lambda r: r == [])  # it released its lease
    assert "running jobs (no gateway connection)" in worker.text


async def test_a_group_made_across_processes_is_posted_once(cluster, fake_discord, fake_bfl):
    fake = fake_discord
    await cluster.start(name="gateway")
    await fake.wait_until_connected(timeout=30)
    await fake.wait_for(lambda: fake.command_syncs, timeout=30)
    await cluster.start("worker", name="worker1")
    await cluster.start("worker", name="worker2")
    await cluster.live_workers(2)
    asked = await fake.slash("imagine", {"prompt": "four lighthouses", "count": 4})
    await asked.wait_for(lambda i: (i.original_message or {}).get("flags", 0) & (1 << 15), timeout=60)
    rows = await cluster.wait(
        "SELECT status, claimed_by FROM jobs WHERE group_id = ?",
        (int(asked.id),),
        until=lambda r: len(r) == 4 and all(row["status"] == JobStatus.DELIVERED for row in r),
    )
    assert len(rows) == 4
    posts = [c for c in fake.calls if c.token == asked.token and c.json and (c.json.get("flags") or 0) & (1 << 15)]
    assert len(posts) == 1 and len(asked.original_message["attachments"]) == 4
    db = await cluster.view()
    assert await db.fetch_value("SELECT COUNT(*) FROM ledger WHERE kind = 'settle'") == 4
    assert len(fake_bfl.submits) == 4 and fake_bfl.max_active_seen == 1
