"""The money invariant across OS processes: 200 concurrent reservations from 4 processes, one budget.

On PostgreSQL (READ COMMITTED) a conditional insert alone would let two transactions both see the
old counter; the reservation locks its counter rows first (bot.billing.ledger). On SQLite the four
processes share one file and every transaction is BEGIN IMMEDIATE. Either way the budget holds to
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
        spent = await db.fetch_value("SELECT micros FROM usage WHERE scope = 's:77' AND period LIKE 'd:%'")
        assert spent == accepted * PRICE
        assert await Ledger(db).verify_counters() == []
    finally:
        await db.close()
