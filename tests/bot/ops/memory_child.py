"""One bot-like process for the memory test: a burst of image-sized buffers through threads and the cache.

Usage: python -m tests.bot.ops.memory_child (plain | keeper) FOLDER
Each job of the burst does what a job does to memory: the result arrives in pieces into a growing
buffer (a download), becomes ``bytes``, is written to the image cache and read back, in a worker
thread, 24 at a time, and leaves 2 KB behind that outlive it. ``keeper`` runs the bot's
:class:`MemoryKeeper` (checking every 0.2 s); ``plain`` does not. Prints the RSS before and after the
burst, each read once the process is idle (after a keeper pass), as JSON.
"""

from __future__ import annotations

import asyncio
import gc
import hashlib
import json
import os
import random
import sys
from pathlib import Path

from bot.images.cache import ImageCache
from bot.ops.memory import MemoryKeeper, rss_bytes

SLOTS, ROUNDS = 24, 40


async def main(mode: str, folder: Path) -> None:
    cache = ImageCache(folder, 64 * 1024 * 1024)
    keeper = MemoryKeeper(interval=0.2) if mode == "keeper" else None
    if keeper is not None:
        keeper.start()
    kept: list[bytes] = []
    rnd = random.Random(1)

    def download(size: int) -> bytes:
        buffer = bytearray()
        while len(buffer) < size:
            buffer += os.urandom(min(65536, size - len(buffer)))
        data = bytes(buffer)
        kept.append(os.urandom(2048))  # a little state that outlives the job (allocated after the buffers)
        return data

    async def job(n: int) -> None:
        data = await asyncio.to_thread(download, rnd.randrange(300_000, 1_500_000))
        key = hashlib.sha256(f"{n}".encode()).hexdigest()
        await cache.put(key, data, metadata={"n": n})
        entry = await cache.get_entry(key)
        assert entry is not None, f"{n}: missing"
        assert entry.data == data, f"{n}: {len(entry.data)} != {len(data)} {entry.metadata}"

    async def burst(rounds: int, start: int) -> None:
        for r in range(rounds):
            await asyncio.gather(*(job(start + r * SLOTS + s) for s in range(SLOTS)))

    async def idle_rss() -> int:
        gc.collect()
        if keeper is not None:
            await keeper.next_pass()
        return rss_bytes()

    await burst(2, 0)  # warm up: threads, the cache folder, every code path
    before = await idle_rss()
    await burst(ROUNDS, 10_000)
    after = await idle_rss()
    print(json.dumps({"before": before, "after": after, "trims": keeper.trims if keeper else 0}), flush=True)  # noqa: T201


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], Path(sys.argv[2])))
