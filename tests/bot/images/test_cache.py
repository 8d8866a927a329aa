"""The on-disk image cache with real files: round trips, LRU eviction, restarts, bad keys, concurrency.

Several processes on one folder, and hits held for delivery: test_cache_shared.py.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import time

import pytest

from bot.images.cache import STALE_SECONDS, CachedImage, ImageCache, InvalidCacheKey


def key(name: str) -> str:
    return hashlib.sha256(name.encode()).hexdigest()


def blob(size: int, fill: int = 1) -> bytes:
    return bytes([fill]) * size


def entry_files(directory) -> list[str]:
    """The cache's files, without its lock file."""
    return sorted(p.name for p in directory.iterdir() if p.name != ".lock")


META = {"width": 1024, "height": 1024, "format": "JPEG", "model": "flux-pro-1.1", "cost_micros": 40_000}


async def test_put_get_round_trip(tmp_path):
    """What goes in comes out, with its metadata."""
    cache = ImageCache(tmp_path / "cache", max_bytes=1_000_000)
    data = os.urandom(5000)
    await cache.put(key("a"), data, metadata=META)
    assert await cache.get(key("a")) == data
    assert await cache.get_entry(key("a")) == CachedImage(key=key("a"), data=data, metadata=META)
    assert await cache.get(key("missing")) is None
    assert await cache.get_entry(key("missing")) is None


async def test_put_replaces_existing_entry(tmp_path):
    """A second put under the same key replaces bytes and metadata and is counted once."""
    cache = ImageCache(tmp_path, max_bytes=1_000_000)
    await cache.put(key("a"), blob(100), metadata={"v": 1})
    await cache.put(key("a"), blob(200, 2), metadata={"v": 2})
    entry = await cache.get_entry(key("a"))
    assert entry.data == blob(200, 2) and entry.metadata == {"v": 2}
    assert cache.total_bytes == 200 + len(b'{"v": 2}')


async def test_files_are_written_atomically_without_leftovers(tmp_path):
    """After puts only entry files remain: no temp files."""
    cache = ImageCache(tmp_path, max_bytes=1_000_000)
    for n in range(3):
        await cache.put(key(str(n)), blob(50), metadata={})
    names = entry_files(tmp_path)
    assert len(names) == 6
    assert all(name.endswith((".img", ".json")) and not name.startswith(".") for name in names)


async def test_eviction_is_least_recently_used(tmp_path):
    """Going over max_bytes evicts the entry used longest ago; a get counts as a use."""
    cache = ImageCache(tmp_path, max_bytes=3500)
    for name in ("a", "b", "c"):
        await cache.put(key(name), blob(1000), metadata={})
    assert await cache.get(key("a")) is not None  # a is now the most recent; b is the oldest
    await cache.put(key("d"), blob(1000), metadata={})
    assert await cache.get(key("b")) is None
    for name in ("a", "c", "d"):
        assert await cache.get(key(name)) == blob(1000)
    assert cache.total_bytes <= 3500
    assert not (tmp_path / f"{key('b')}.img").exists()
    assert not (tmp_path / f"{key('b')}.json").exists()


async def test_large_put_evicts_several(tmp_path):
    """A big entry evicts as many old ones as needed, oldest first, but never itself."""
    cache = ImageCache(tmp_path, max_bytes=3000)
    for name in ("a", "b", "c"):
        await cache.put(key(name), blob(900), metadata={})
    await cache.put(key("big"), blob(2000), metadata={})
    assert await cache.get(key("big")) == blob(2000)
    assert await cache.get(key("a")) is None and await cache.get(key("b")) is None
    assert await cache.get(key("c")) == blob(900)


async def test_entry_larger_than_cache_not_stored(tmp_path):
    """An entry bigger than the whole cache is skipped and evicts nothing."""
    cache = ImageCache(tmp_path, max_bytes=1000)
    await cache.put(key("a"), blob(500), metadata={})
    await cache.put(key("huge"), blob(5000), metadata={})
    assert await cache.get(key("huge")) is None
    assert await cache.get(key("a")) == blob(500)


async def test_restart_finds_entries_and_keeps_lru_order(tmp_path):
    """A new instance over the same directory sees old entries, in the old recency order."""
    first = ImageCache(tmp_path, max_bytes=3500)
    for name in ("a", "b", "c"):
        await first.put(key(name), blob(1000), metadata={"name": name})
    await first.get(key("a"))  # b is now least recently used

    second = ImageCache(tmp_path, max_bytes=3500)
    assert (await second.get_entry(key("c"))).metadata == {"name": "c"}
    await second.put(key("d"), blob(1000), metadata={})
    assert await second.get(key("b")) is None
    assert await second.get(key("a")) == blob(1000)


async def test_restart_with_smaller_limit_evicts(tmp_path):
    """If max_bytes shrank between runs, the first use trims the cache."""
    first = ImageCache(tmp_path, max_bytes=10_000)
    for name in ("a", "b", "c", "d"):
        await first.put(key(name), blob(1000), metadata={})
    second = ImageCache(tmp_path, max_bytes=2100)
    assert await second.get(key("d")) == blob(1000)
    assert await second.get(key("a")) is None
    assert second.total_bytes <= 2100


async def test_restart_cleans_partial_entries_and_temp_files(tmp_path):
    """Old crash leftovers (temp files, image without sidecar) are removed; foreign files are left alone."""
    cache = ImageCache(tmp_path, max_bytes=10_000)
    await cache.put(key("ok"), blob(10), metadata={})
    (tmp_path / ".tmp-abc123").write_bytes(b"partial")
    (tmp_path / f"{key('orphan')}.img").write_bytes(b"no sidecar")
    (tmp_path / "README.txt").write_text("not ours")
    an_hour_ago = time.time() - STALE_SECONDS - 60
    for name in (".tmp-abc123", f"{key('orphan')}.img", "README.txt"):
        os.utime(tmp_path / name, (an_hour_ago, an_hour_ago))

    fresh = ImageCache(tmp_path, max_bytes=10_000)
    assert await fresh.get(key("orphan")) is None
    assert await fresh.get(key("ok")) == blob(10)
    assert not (tmp_path / ".tmp-abc123").exists()
    assert not (tmp_path / f"{key('orphan')}.img").exists()
    assert (tmp_path / "README.txt").exists()


async def test_entry_deleted_behind_our_back_is_a_miss(tmp_path):
    """A file removed externally reads as a miss, not an error."""
    cache = ImageCache(tmp_path, max_bytes=10_000)
    await cache.put(key("a"), blob(10), metadata={})
    (tmp_path / f"{key('a')}.img").unlink()
    assert await cache.get(key("a")) is None
    assert cache.total_bytes == 0


async def test_delete(tmp_path):
    """delete() removes an entry and its files."""
    cache = ImageCache(tmp_path, max_bytes=10_000)
    await cache.put(key("a"), blob(10), metadata={})
    assert await cache.delete(key("a")) is True
    assert await cache.delete(key("a")) is False
    assert entry_files(tmp_path) == []


async def test_disabled_cache(tmp_path):
    """max_bytes == 0 stores nothing and touches no files."""
    directory = tmp_path / "never"
    cache = ImageCache(directory, max_bytes=0)
    assert not cache.enabled
    await cache.put(key("a"), blob(10), metadata={})
    assert await cache.get(key("a")) is None
    assert await cache.get_entry(key("a")) is None
    assert not directory.exists()


def test_negative_size_rejected(tmp_path):
    """A negative size is a configuration bug."""
    with pytest.raises(ValueError, match="negative"):
        ImageCache(tmp_path, max_bytes=-1)


@pytest.mark.parametrize(
    "bad",
    ["../../etc/passwd", "ABCDEF0123456789ABCDEF", "abc", "0" * 200, key("x") + "/", "", "g" * 64, "../" + key("x")],
)
async def test_invalid_keys_rejected(tmp_path, bad):
    """Keys must be lowercase hex: no path traversal, no other characters."""
    cache = ImageCache(tmp_path, max_bytes=10_000)
    with pytest.raises(InvalidCacheKey):
        await cache.put(bad, b"x", metadata={})
    with pytest.raises(InvalidCacheKey):
        await cache.get(bad)
    with pytest.raises(InvalidCacheKey):
        await cache.delete(bad)
    assert list(tmp_path.iterdir()) == []


async def test_metadata_must_be_json(tmp_path):
    """Unserialisable metadata fails loudly before anything is written."""
    cache = ImageCache(tmp_path, max_bytes=10_000)
    with pytest.raises(TypeError):
        await cache.put(key("a"), b"x", metadata={"bad": object()})
    assert list(tmp_path.iterdir()) == []


async def test_concurrent_puts_and_gets(tmp_path):
    """Many concurrent puts keep the index, the files and the byte total consistent."""
    cache = ImageCache(tmp_path, max_bytes=20_000)
    keys = [key(str(n)) for n in range(40)]
    await asyncio.gather(*(cache.put(k, blob(1000, n), metadata={"n": n}) for n, k in enumerate(keys)))
    await asyncio.gather(*(cache.get(k) for k in keys))

    on_disk = sum(p.stat().st_size for p in tmp_path.iterdir())
    assert on_disk == cache.total_bytes <= 20_000
    hits = [entry for entry in await asyncio.gather(*(cache.get_entry(k) for k in keys)) if entry]
    assert len(hits) >= 15
    for entry in hits:
        assert entry.data == blob(1000, entry.metadata["n"])
    img_files = {p.stem for p in tmp_path.glob("*.img")}
    assert img_files == {entry.key for entry in hits}


async def test_concurrent_puts_same_key(tmp_path):
    """Concurrent writers of one key leave exactly one consistent entry."""
    cache = ImageCache(tmp_path, max_bytes=100_000)
    await asyncio.gather(*(cache.put(key("same"), blob(100, n), metadata={"n": n}) for n in range(10)))
    entry = await cache.get_entry(key("same"))
    assert entry.data == blob(100, entry.metadata["n"])
    assert len(entry_files(tmp_path)) == 2


async def test_contains_answers_without_reading_the_image(tmp_path):
    from bot.images.cache import ImageCache

    cache = ImageCache(tmp_path / "c", 10_000)
    key = "ab" * 16
    assert not await cache.contains(key)
    await cache.put(key, b"x" * 100, metadata={})
    assert await cache.contains(key)
    assert not await ImageCache(tmp_path / "c", 0).contains(key)  # a disabled cache holds nothing


async def test_each_new_entry_is_there_right_after_its_put_while_others_evict(tmp_path):
    """24 results at a time into a full cache: eviction goes by last use, so an entry read since its
    write is not passed over in favour of a newer one nobody has read yet."""
    cache = ImageCache(tmp_path, max_bytes=70 * 1002)

    async def job(n: int) -> bool:
        await cache.put(key(str(n)), blob(1000, n % 256), metadata={})
        return await cache.get(key(str(n))) == blob(1000, n % 256)

    for round_ in range(20):
        assert all(await asyncio.gather(*(job(round_ * 24 + s) for s in range(24))))
    assert cache.total_bytes <= 70 * 1002 and cache.entries <= 70
