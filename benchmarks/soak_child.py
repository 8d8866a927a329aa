"""One bot process of the soak: exactly ``python -m bot [worker]``, with its database made flaky.

Usage: ``python -m benchmarks.soak_child [worker]`` with the bot's usual settings in the environment,
plus (all optional):

* ``SOAK_DB_FAULT_RATE``: the fraction of database calls that fail before reaching the database;
* ``SOAK_DB_AFTER_RATE``: PostgreSQL only, the fraction of writes and commits that fail after
  taking effect;
* ``SOAK_FAULT_SWITCH``: a file; faults are injected only while it exists;
* ``SOAK_SEED``: the seed of this process's draws (the soak passes seed, role and incarnation).

The bot is assembled by the real :func:`bot.app.assemble`; the only change is that the database
``open_storage`` returns is wrapped in :class:`benchmarks.soak_db.FlakyDatabase` — no fault hooks in
the bot's own code.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from pathlib import Path


def main(argv: list[str]) -> int:
    """Patch the storage opener of :mod:`bot.app`, then run the bot's own entry point."""
    import bot.app
    from benchmarks.soak_db import FaultSwitch, FlakyDatabase
    from bot.__main__ import main as bot_main

    rate = float(os.environ.get("SOAK_DB_FAULT_RATE", "0"))
    after_rate = float(os.environ.get("SOAK_DB_AFTER_RATE", "0"))
    switch_path = os.environ.get("SOAK_FAULT_SWITCH")
    switch = FaultSwitch(Path(switch_path) if switch_path else None)
    seed = os.environ.get("SOAK_SEED", "0")
    real_open = bot.app.open_storage

    async def open_flaky(settings):  # type: ignore[no-untyped-def]
        real = await real_open(settings)  # migrated before any fault can strike
        return FlakyDatabase(real, rate=rate, after_rate=after_rate, seed=seed, switch=switch)

    bot.app.open_storage = open_flaky  # type: ignore[assignment]
    signal.signal(signal.SIGUSR2, _dump_tasks)
    return bot_main(argv)


def _dump_tasks(_signum: int, _frame: object) -> None:
    """SIGUSR2: write every asyncio task's stack to stderr (the soak asks when jobs stop moving)."""
    loop = asyncio._get_running_loop()
    tasks = asyncio.all_tasks(loop) if loop is not None else set()
    print(f"SOAK-TASKS: {len(tasks)} asyncio tasks", file=sys.stderr, flush=True)
    for task in tasks:
        print(f"--- {task.get_name()}: {task!r}"[:300], file=sys.stderr)
        task.print_stack(limit=12, file=sys.stderr)
    sys.stderr.flush()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
