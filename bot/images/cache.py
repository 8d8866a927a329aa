"""A bounded on-disk cache of generated images by :meth:`GenerationRequest.cache_key`, shared by processes.

Every process on one host with the same cache folder (``python -m bot`` and workers) uses it safely;
the files and their locking are :mod:`bot.images.cache_folder`.

- **The folder is the index.** :meth:`ImageCache.get_entry` and :meth:`ImageCache.contains` look at
  the files: an entry another process wrote is found, one another process evicted is a miss.
- **Atomic writes.** Each file goes to a temporary name and is moved into place; the sidecar first.
- **No blind eviction.** A process keeps its eviction candidates (a heap by last use), read from the
  folder at first use and again every :data:`RESCAN_SECONDS` (so it learns what the others wrote),
  bounded by ``max_entries`` as the folder is. Before removing one, under the folder's exclusive lock,
  it checks the file's time: an entry used since (by any process) goes back in the heap at that time.
- **A hit is held.** :meth:`ImageCache.contains` (admission) sets the image's mtime ``hold_seconds``
  into the future, and nothing with a future mtime is evicted: the image is still there when the job
  is delivered, by this process or, after a restart or a takeover, by another.
- **Memory**: at most ``max_entries`` small records (≈ 0.3 KB each, with their heap items).

Both limits are targets, not walls: held hits are never evicted (the cache can exceed ``max_bytes``
by the hits of the last ``hold_seconds``, and says so in the log once), and the other processes'
writes are counted at the next rescan.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import json
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bot.images.cache_folder import KEY_RE, STALE_SECONDS, CacheFolder, Entry

log = logging.getLogger(__name__)

__all__ = ["STALE_SECONDS", "CachedImage", "ImageCache", "InvalidCacheKey"]

#: Most entries a cache holds whatever their size (and so the longest candidate list a process
#: keeps): a 512 MB cache of 1 MB images holds ~500; this bounds one of tiny images.
DEFAULT_MAX_ENTRIES = 10_000
#: How long a hit found at admission is held (never evicted): it is delivered by this process or,
#: after a restart or a takeover (JOB_LEASE_SECONDS), by another.
DEFAULT_HOLD_SECONDS = 300.0
#: How often a process re-reads the folder to learn what other processes wrote and removed.
RESCAN_SECONDS = 60.0


class InvalidCacheKey(ValueError):
    """A key that is not lowercase hex (keys become file names, so nothing else is allowed)."""


@dataclass(frozen=True)
class CachedImage:
    """A cache hit: the image bytes and the metadata stored with them."""

    key: str
    data: bytes
    metadata: dict[str, Any]


def _check_key(key: str) -> str:
    if not isinstance(key, str) or not KEY_RE.fullmatch(key):
        raise InvalidCacheKey("cache keys are 16-128 lowercase hex characters")
    return key


class ImageCache:
    """Images by key, at most ``max_bytes`` and ``max_entries`` on disk; ``max_bytes == 0`` disables it."""

    def __init__(
        self,
        directory: Path,
        max_bytes: int,
        *,
        max_entries: int = DEFAULT_MAX_ENTRIES,
        hold_seconds: float = DEFAULT_HOLD_SECONDS,
    ) -> None:
        if max_bytes < 0:
            raise ValueError("max_bytes cannot be negative")
        if max_entries < 1:
            raise ValueError("max_entries must be at least 1")
        self.directory = Path(directory)
        self.max_bytes = max_bytes
        self.max_entries = max_entries
        self.hold_ns = int(hold_seconds * 1e9)
        self._folder = CacheFolder(self.directory)
        self._lock = asyncio.Lock()  # guards the candidates and the total
        # The entries this process knows (None until the folder has been read), and a heap of
        # (last use, key) over them, least recently used on top; its stale items are skipped.
        self._index: dict[str, Entry] | None = None
        self._heap: list[tuple[int, str]] = []
        self._total = 0
        self._scanned_at = 0.0
        self._last_ns = 0
        self._overflowing = False

    @property
    def enabled(self) -> bool:
        """Whether the cache stores anything at all."""
        return self.max_bytes > 0

    @property
    def total_bytes(self) -> int:
        """Bytes on disk as this process knows them: the last scan, its own writes and removals since."""
        return self._total

    @property
    def entries(self) -> int:
        """Entries this process knows of (its eviction candidates)."""
        return len(self._index or ())

    # -- public API -------------------------------------------------------------------------------

    async def get(self, key: str) -> bytes | None:
        """The image stored under ``key``, or ``None``; a hit makes it the most recently used."""
        entry = await self.get_entry(key)
        return None if entry is None else entry.data

    async def contains(self, key: str) -> bool:
        """Whether ``key`` is cached, without reading the image.

        A hit is held for ``hold_seconds`` (no process evicts it): admission asks this, and the image
        must still be there when the job is delivered.
        """
        _check_key(key)
        if not self.enabled:
            return False
        await self._ensure_index()
        return await asyncio.to_thread(self._folder.touch, key, self._next_ns() + self.hold_ns)

    async def get_entry(self, key: str) -> CachedImage | None:
        """The image and its metadata under ``key``, or ``None``; a hit counts as a use."""
        _check_key(key)
        if not self.enabled:
            return None
        await self._ensure_index()
        found = await asyncio.to_thread(self._folder.read, key, self._next_ns())
        if found is None:
            if key in (self._index or ()):
                async with self._lock:
                    self._forget(key)  # evicted by another process, or deleted behind our back
            return None
        data, metadata = found
        return CachedImage(key=key, data=data, metadata=metadata)

    async def put(self, key: str, data: bytes, *, metadata: dict[str, Any]) -> None:
        """Store ``data`` (and JSON-serialisable ``metadata``) under ``key``, evicting old entries to fit.

        An entry larger than the whole cache is not stored. Replacing an existing key is allowed.
        """
        _check_key(key)
        sidecar = json.dumps(metadata, sort_keys=True, ensure_ascii=False).encode("utf-8")
        if not self.enabled:
            return
        size = len(data) + len(sidecar)
        if size > self.max_bytes:
            log.info("not caching %s: %d bytes exceed the cache size %d", key, size, self.max_bytes)
            return
        await self._ensure_index()
        now = self._next_ns()
        try:
            await asyncio.to_thread(self._folder.write, key, data, sidecar, now)
        except OSError:
            # A full or read-only disk must not fail the generation that was being cached.
            log.warning("could not cache %s", key, exc_info=True)
            with contextlib.suppress(OSError):
                await asyncio.to_thread(self._folder.remove, key)  # no half-replaced entry
            async with self._lock:
                self._forget(key)
            return
        async with self._lock:
            self._forget(key)
            self._remember(key, Entry(size=size, used_ns=now))
            await self._evict_locked(keep=key)

    async def delete(self, key: str) -> bool:
        """Remove ``key`` (e.g. on a member's deletion request); ``True`` if it was cached."""
        _check_key(key)
        if not self.enabled:
            return False
        await self._ensure_index()
        present = await asyncio.to_thread(self._folder.remove, key)
        async with self._lock:
            self._forget(key)
        return present

    # -- the candidates ---------------------------------------------------------------------------

    async def _ensure_index(self) -> None:
        if self._index is None:
            async with self._lock:
                if self._index is None:
                    await self._rescan_locked()
                    await self._evict_locked(keep=None)  # the limits may have shrunk since the last run

    async def _rescan_locked(self) -> None:
        entries = await asyncio.to_thread(self._folder.scan)
        self._index, self._heap, self._total = {}, [], 0
        for key, entry in entries.items():
            self._remember(key, entry)
        self._scanned_at = time.monotonic()
        log.debug("image cache: %d entries, %d bytes in %s", len(entries), self._total, self.directory)

    def _remember(self, key: str, entry: Entry) -> None:
        assert self._index is not None
        self._index[key] = entry
        self._total += entry.size
        heapq.heappush(self._heap, (entry.used_ns, key))
        if len(self._heap) > 2 * len(self._index) + 64:  # too many stale items: rebuild
            self._heap = [(e.used_ns, k) for k, e in self._index.items()]
            heapq.heapify(self._heap)

    def _forget(self, key: str) -> None:
        if self._index is not None and (entry := self._index.pop(key, None)) is not None:
            self._total -= entry.size

    def _over(self) -> bool:
        return self._total > self.max_bytes or len(self._index or ()) > self.max_entries

    async def _evict_locked(self, keep: str | None) -> None:
        if time.monotonic() - self._scanned_at > RESCAN_SECONDS:
            await self._rescan_locked()  # what the other processes wrote and removed meanwhile
        if not self._over():
            self._overflowing = False
            return
        # In a worker thread while this coroutine holds the lock: nothing else changes the candidates.
        removed = await asyncio.to_thread(self._evict, keep, time.time_ns())
        if removed:
            log.debug("evicted %d cache entries", removed)
        if self._over() and not self._overflowing:
            log.info(
                "image cache above its limits (%d bytes, %d entries): the rest are hits held for delivery",
                self._total,
                self.entries,
            )
        self._overflowing = self._over()

    def _evict(self, keep: str | None, now_ns: int) -> int:
        """Remove least recently used entries until under the limits; how many (blocking file work).

        Under the folder's exclusive lock, so no use or write falls between a check and its removal.
        An entry used since this process last saw it (by any process) goes back in the heap at its new
        time; a held one (its time in the future) and ``keep`` stay; a vanished one is forgotten.
        """
        assert self._index is not None
        removed = 0
        passed_over: list[tuple[int, str]] = []
        with self._folder.locked(exclusive=True):
            while self._heap and self._over():
                used_ns, key = heapq.heappop(self._heap)
                entry = self._index.get(key)
                if entry is None or entry.used_ns != used_ns:
                    continue  # a stale item: forgotten, or used since and pushed again
                mtime = self._folder.mtime(key)
                if mtime is None:
                    self._forget(key)  # gone already (another process, or a deletion)
                elif key == keep or mtime > now_ns:
                    entry.used_ns = mtime
                    passed_over.append((mtime, key))  # the new entry, or a held hit
                elif mtime > used_ns:
                    entry.used_ns = mtime
                    heapq.heappush(self._heap, (mtime, key))  # used since: back in its place
                else:
                    self._folder.unlink(key)
                    self._forget(key)
                    removed += 1
        for item in passed_over:
            heapq.heappush(self._heap, item)
        return removed

    def _next_ns(self) -> int:
        # Strictly increasing, so two uses within one clock tick still have an order.
        self._last_ns = max(time.time_ns(), self._last_ns + 1)
        return self._last_ns
