"""One OS process of the shared-cache test: writes new entries into a small cache (so it evicts) and reads.

Usage: python -m tests.bot.images.cache_child FOLDER MAX_BYTES PROCESS COUNT
Prints ``ready`` once its cache has read the folder, waits for ``go`` on stdin (so the processes start
together), then writes COUNT entries of its own while reading the ones it wrote, and prints a JSON
summary: writes, reads that found their entry, reads that found nothing, reads whose bytes did not match.
"""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path

from bot.images.cache import ImageCache
from tests.bot.images.test_cache_shared import content, key_of


async def main(folder: str, max_bytes: int, process: int, count: int) -> None:
    cache = ImageCache(Path(folder), max_bytes)
    await cache.contains(key_of("warm-up"))  # the folder is read now
    print("ready", flush=True)  # noqa: T201 - the parent reads this
    assert (await asyncio.to_thread(sys.stdin.readline)).strip() == "go"
    summary = {"writes": 0, "hits": 0, "misses": 0, "corrupt": 0}
    for n in range(count):
        name = f"p{process}-{n}"
        await cache.put(key_of(name), content(name), metadata={"name": name})
        summary["writes"] += 1
        entry = await cache.get_entry(key_of(name))  # its own fresh entry: held, so always there
        if entry is None:
            summary["misses"] += 1
        elif entry.data != content(entry.metadata["name"]):
            summary["corrupt"] += 1
        else:
            summary["hits"] += 1
    print(json.dumps(summary), flush=True)  # noqa: T201 - the parent reads this


if __name__ == "__main__":
    folder, max_bytes, process, count = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
    asyncio.run(main(folder, max_bytes, process, count))
