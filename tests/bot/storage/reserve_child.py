"""One OS process of the multi-process reservation test: N concurrent reservations on a shared database.

Usage: python -m tests.bot.storage.reserve_child (sqlite PATH | postgresql URL) PROCESS COUNT BUDGET PRICE
Prints ``ready`` once connected, waits for ``go`` on stdin (so every process starts together),
then reserves COUNT jobs at once (settling each accepted one at its price) and prints a JSON summary.
"""

from __future__ import annotations

import asyncio
import json
import sys

from bot.billing.ledger import Ledger, Limit, Metric, ReserveTerms, Scope
from bot.config import Period
from bot.errors import LimitReached
from bot.storage.database import Database

GUILD = 77


async def main(backend: str, target: str, process: int, count: int, budget: int, price: int) -> None:
    db = await Database.at(target, pool_size=8)
    ledger = Ledger(db)
    limits = [Limit(Scope.SERVER, Metric.USD, Period.DAY, budget, "the test budget")]
    print("ready", flush=True)  # noqa: T201 - the parent reads this
    assert (await asyncio.to_thread(sys.stdin.readline)).strip() == "go"

    async def one(index: int) -> bool:
        job_id = process * 100_000 + index
        try:
            await ledger.reserve(
                job_id=job_id,
                guild_id=GUILD,
                user_id=1000 + index % 7,  # several members, one server budget
                model="flux-pro-1.1",
                estimated_micros=price,
                terms=ReserveTerms(limits, 10_000),
            )
        except LimitReached:
            return False
        await ledger.settle(job_id, price)  # settles run beside other processes' reservations
        return True

    results = await asyncio.gather(*(one(i) for i in range(count)))
    await db.close()
    print(json.dumps({"accepted": sum(results), "refused": count - sum(results)}), flush=True)  # noqa: T201


if __name__ == "__main__":
    backend, target, *numbers = sys.argv[1:]
    asyncio.run(main(backend, target, *(int(n) for n in numbers)))
