"""One OS process of the escrow crash test: reserve against the bot-wide budget until it is used up.

Usage: python -m tests.bot.storage.escrow_child PROCESS (sqlite PATH | postgresql URL) BUDGET PRICE
Prints ``ready`` once connected and waits for ``go`` on stdin; then WORKERS coroutines reserve jobs
(members spread over many counter shards), settling every other one at its estimate, and print
``+`` per reservation as it commits, until the budget refuses them (a "busy" answer is tried
again). Prints a JSON summary at the end, unless it is killed first — which is the point.
"""

from __future__ import annotations

import asyncio
import json
import sys

from bot.billing.ledger import BUSY_TEXT, Ledger, Limit, Metric, ReserveTerms, Scope
from bot.config import Period
from bot.errors import LimitReached
from bot.storage.database import Database

GUILD, MEMBERS, WORKERS = 88, 40, 8


async def main(process: int, backend: str, target: str, budget: int, price: int) -> None:
    db = await Database.at(target, pool_size=WORKERS)
    ledger = Ledger(db)
    limits = [Limit(Scope.BOT, Metric.USD, Period.MONTH, budget, "the test budget")]
    print("ready", flush=True)  # noqa: T201 - the parent reads this
    assert (await asyncio.to_thread(sys.stdin.readline)).strip() == "go"
    jobs = iter(range(process * 1_000_000, (process + 1) * 1_000_000))
    accepted = 0

    async def worker() -> None:
        nonlocal accepted
        for job_id in jobs:
            try:
                await ledger.reserve(
                    job_id=job_id,
                    guild_id=GUILD,
                    user_id=1000 + job_id % MEMBERS,
                    model="flux-pro-1.1",
                    estimated_micros=price,
                    terms=ReserveTerms(limits, 10**6),
                )
            except LimitReached as refusal:
                if refusal.user_message == BUSY_TEXT:
                    continue
                return  # the budget is used up
            accepted += 1
            print("+", flush=True)  # noqa: T201
            if job_id % 2:
                await ledger.settle(job_id, price)

    await asyncio.gather(*(worker() for _ in range(WORKERS)))
    await db.close()
    print(json.dumps({"accepted": accepted}), flush=True)  # noqa: T201


if __name__ == "__main__":
    process, backend, target, budget, price = sys.argv[1:]
    asyncio.run(main(int(process), backend, target, int(budget), int(price)))
