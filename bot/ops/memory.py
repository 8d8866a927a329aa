"""Memory that returns after a burst: large buffers go straight back to the system, the rest when idle.

Every image the bot handles is a large buffer (0.3–4 MB: the download, the cache file, the upload),
allocated and freed in worker threads. glibc's malloc serves a large allocation with its own
``mmap`` at first, but after the first such block is freed it raises that threshold to the block's
size (up to 32 MiB) and serves later ones from its heaps, one per thread, where freed pages stay in
the process. Measured with ``python -m benchmarks.memory`` (5,000 jobs of 0.9 MB results): idle
RSS stayed 14 MiB above its level before the burst; ``malloc_trim`` gave back 25 MiB of it.

:func:`tune_allocator` fixes the threshold at :data:`LARGE_BUFFER_BYTES` (so every image buffer is
mapped and unmapped on its own), and :class:`MemoryKeeper` calls ``malloc_trim`` from a worker thread
when the resident size has grown by :data:`TRIM_GROWTH_BYTES` since its last look. Both are no-ops
where the C library is not glibc.
"""

from __future__ import annotations

import asyncio
import ctypes
import logging
import os
import platform
from functools import cache

from bot.aio import cancel_and_wait

log = logging.getLogger(__name__)

M_MMAP_THRESHOLD = -3  # glibc's mallopt parameter number
LARGE_BUFFER_BYTES = 128 * 1024  # glibc's own starting threshold, kept fixed
TRIM_GROWTH_BYTES = 8 * 1024 * 1024
KEEPER_INTERVAL_SECONDS = 30.0


@cache
def _glibc() -> ctypes.CDLL | None:
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return None
    try:
        libc = ctypes.CDLL(None)
    except OSError:
        return None
    return libc if hasattr(libc, "mallopt") and hasattr(libc, "malloc_trim") else None


def tune_allocator() -> bool:
    """Serve every allocation of :data:`LARGE_BUFFER_BYTES` or more with its own mapping; True if set."""
    libc = _glibc()
    return bool(libc is not None and libc.mallopt(M_MMAP_THRESHOLD, LARGE_BUFFER_BYTES))


def trim() -> bool:
    """Give the heaps' free pages back to the system (blocking: call it from a worker thread)."""
    libc = _glibc()
    return bool(libc is not None and libc.malloc_trim(0))


def rss_bytes() -> int:
    """The resident set size of this process (0 where ``/proc`` is not there)."""
    try:
        with open("/proc/self/statm", encoding="ascii") as statm:
            return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return 0


class MemoryKeeper:
    """Every ``interval`` seconds: if the resident size grew by ``growth`` bytes since, trim the heaps."""

    def __init__(self, interval: float = KEEPER_INTERVAL_SECONDS, growth: int = TRIM_GROWTH_BYTES) -> None:
        self.interval = interval
        self.growth = growth
        self.passes = 0
        self.trims = 0
        self._floor = 0
        self._task: asyncio.Task[None] | None = None
        self._pass_done = asyncio.Event()

    def start(self) -> MemoryKeeper:
        """Tune the allocator and start looking (returns itself)."""
        tune_allocator()
        self._floor = rss_bytes()
        self._task = asyncio.get_running_loop().create_task(self._run(), name="fluxcord-memory")
        return self

    async def stop(self) -> None:
        """Stop looking (idempotent)."""
        if self._task is not None:
            await cancel_and_wait(self._task)
            self._task = None

    async def next_pass(self) -> None:
        """Wait until the keeper has looked once more (benchmarks and tests)."""
        self._pass_done.clear()
        await self._pass_done.wait()

    async def look(self) -> None:
        """One pass: trim if the process grew by ``growth`` since the last pass that trimmed or started."""
        before = rss_bytes()
        if before - self._floor >= self.growth and await asyncio.to_thread(trim):
            self.trims += 1
            after = rss_bytes()
            log.debug("Gave back %d KiB of freed memory (RSS %d KiB)", (before - after) // 1024, after // 1024)
            self._floor = after
        else:
            self._floor = min(self._floor, before) if self._floor else before
        self.passes += 1
        self._pass_done.set()

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            try:
                await self.look()
            except Exception:  # never let the keeper take the bot down
                log.warning("Memory keeper pass failed", exc_info=True)
