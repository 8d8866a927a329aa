"""The money invariant across OS processes: 200 concurrent reservations from 4 processes, one budget.

On PostgreSQL the server's counter is split into shards and its cap enforced by escrow (each shard
holds an allowance of the budget, bot.billing.escrow): the seven members land in several shards,
and near the end of the budget its last allowances must move between them exactly. On SQLite the
four processes share one file and every transaction is BEGIN IMMEDIATE. Either way the budget holds to
the micro-dollar, exactly floor(budget / price) reservations succeed, and the counters still match
the ledger rows.
"""

import asyncio
import json
import sys

import pytest

from bot.billing.ledger import Ledger
from bot.storage.database import Database

PROCESSES, PER_PROCESS = 4, 50
PRICE = 40_000  # $0.04
BUDGET = 1_234_567  # not a multiple of the price: floor(budget / price) = 30 fit, the 31st would not


@pytest.fixture(params=["sqlite", "postgresql"])
async def shared_database(request, tmp_path):
    if request.param == "sqlite":
        path = tmp_path / "shared.sqlite3"
        await (await Database.open(path)).close()  # migrated once, before the children start
        return "sqlite", str(path)
    server = request.getfixturevalue("postgres_server")
    return "postgresql", await server.new_database()


async def test_four_processes_never_overspend_one_budget(shared_database):
    backend, target = shared_database
    children = [
        await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "tests.bot.storage.reserve_child",
            backend,
            target,
            str(n),
            str(PER_PROCESS),
            str(BUDGET),
            str(PRICE),
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        for n in range(PROCESSES)
    ]
    try:
        async with asyncio.timeout(60):
            for child in children:
                assert (await child.stdout.readline()).strip() == b"ready", await child.stderr.read()
            for child in children:  # every process is connected: start them together
                child.stdin.write(b"go\n")
                await child.stdin.drain()
            outputs = [await child.communicate() for child in children]
    finally:
        for child in children:
            if child.returncode is None:
                child.kill()
    for child, (_, err) in zip(children, outputs, strict=True):
        assert child.returncode == 0, err.decode()
    summaries = [json.loads(out.decode().strip().splitlines()[-1]) for out, _ in outputs]
    accepted = sum(s["accepted"] for s in summaries)
    assert accepted + sum(s["refused"] for s in summaries) == PROCESSES * PER_PROCESS
    assert accepted == BUDGET // PRICE

    db = await Database.at(target, pool_size=2)
    try:
        reserved = await db.fetch_value("SELECT CAST(SUM(server_micros) AS BIGINT) FROM ledger WHERE kind = 'reserve'")
        assert reserved == accepted * PRICE <= BUDGET
        assert await db.fetch_value("SELECT COUNT(*) FROM ledger WHERE kind = 'settle'") == accepted
        spent = await db.fetch_value(  # a counter is the sum of its rows (PostgreSQL: one per shard)
            "SELECT CAST(SUM(micros) AS BIGINT) FROM usage WHERE scope = 's:77' AND period LIKE 'd:%'"
        )
        assert spent == accepted * PRICE
        assert await Ledger(db).verify_counters() == []
    finally:
        await db.close()


async def test_the_bot_wide_cap_holds_when_processes_die_holding_allowances(shared_database):
    """Four processes spend one bot-wide budget; two are SIGKILLed mid-way, in the middle of their work.

    On PostgreSQL the budget is spread as allowances over the counter shards the forty members use
    (a grant covers up to nine images, so shards hold spare allowance all the time), and a killed
    process may die inside a reservation or a refill. Whatever it was doing rolls back; what it had
    been granted stays in the shards for the others. So the budget is never exceeded, and the
    survivors can still spend it to the last micro-dollar that fits: nothing is stranded.
    """
    backend, target = shared_database
    price, budget = 40_000, 1_200 * 40_000 + 12_345  # floor(budget / price) = 1,200
    arguments = [backend, target, str(budget), str(price)]
    pipes = {"stdin": asyncio.subprocess.PIPE, "stdout": asyncio.subprocess.PIPE, "stderr": asyncio.subprocess.PIPE}
    children = [
        await asyncio.create_subprocess_exec(
            sys.executable, "-m", "tests.bot.storage.escrow_child", str(n), *arguments, **pipes
        )
        for n in range(PROCESSES)
    ]
    victims, survivors = children[:2], children[2:]
    try:
        async with asyncio.timeout(90):
            for child in children:
                assert (await child.stdout.readline()).strip() == b"ready", await child.stderr.read()
            for child in children:
                child.stdin.write(b"go\n")
                await child.stdin.drain()
            for victim in victims:  # each has committed some reservations and is busy making more
                for _ in range(10):
                    assert (await victim.stdout.readline()).strip() == b"+", await victim.stderr.read()
            for victim in victims:
                victim.kill()  # SIGKILL: no cleanup, transactions cut off wherever they are
                await victim.wait()
            outputs = [await child.communicate() for child in survivors]
    finally:
        for child in children:
            if child.returncode is None:
                child.kill()
    assert [victim.returncode for victim in victims] == [-9, -9]
    for child, (_, err) in zip(survivors, outputs, strict=True):
        assert child.returncode == 0, err.decode()

    db = await Database.at(target, pool_size=2)
    try:
        reserved = await db.fetch_all("SELECT server_micros FROM ledger WHERE kind = 'reserve'")
        assert {row["server_micros"] for row in reserved} == {price}
        assert len(reserved) * price == budget // price * price  # never over, and nothing stranded
        assert await db.fetch_value("SELECT COUNT(*) FROM ledger WHERE kind = 'release'") == 0
        assert await Ledger(db).verify_counters() == []
        if backend == "postgresql":
            row = await db.fetch_one(
                "SELECT CAST(SUM(micros) AS BIGINT) AS spent, CAST(SUM(escrow_micros) AS BIGINT) AS held,"
                " MIN(escrow_micros) AS lowest, COUNT(*) AS shards FROM usage WHERE scope = 'bot' AND period LIKE 'm:%'"
            )
            assert row["shards"] > 10 and row["lowest"] >= 0
            assert row["spent"] + row["held"] <= budget
    finally:
        await db.close()
