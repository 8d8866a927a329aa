"""Several processes on one cache folder (issue 20 item 10): what one writes the others find, nobody
evicts blind, and a hit is never lost between admission (``contains``) and delivery (``get_entry``).

Two :class:`ImageCache` instances on one folder stand for two processes (each has its own index),
and the last test runs real OS processes writing and evicting while this one reads.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import sys
import time

import pytest

from bot.images.cache import STALE_SECONDS, ImageCache
from tests.e2e.processes import REPO

SIZE = 1000


def key_of(name: str) -> str:
    return hashlib.sha256(name.encode()).hexdigest()


def content(name: str) -> bytes:
    """Bytes that say which entry they belong to (a mixed-up entry is detected)."""
    return hashlib.sha256(name.encode()).digest() * (SIZE // 32)


def age(folder, name: str, seconds: float) -> None:
    """Make entry ``name`` look last used ``seconds`` ago (as if time had passed)."""
    then = time.time() - seconds
    os.utime(folder / f"{key_of(name)}.img", (then, then))


async def test_a_get_finds_what_another_process_wrote_after_this_one_read_the_folder(tmp_path):
    first, second = ImageCache(tmp_path, 100_000), ImageCache(tmp_path, 100_000)
    assert not await first.contains(key_of("warm-up"))  # first has read the (empty) folder
    await second.put(key_of("b"), content("b"), metadata={"by": "second"})
    assert await first.contains(key_of("b"))
    entry = await first.get_entry(key_of("b"))
    assert entry is not None and entry.data == content("b") and entry.metadata == {"by": "second"}


async def test_an_entry_another_process_used_is_not_evicted_blind(tmp_path):
    """The evicting process's list says `a` is oldest; another process used it since: `b` goes instead."""
    evictor, other = ImageCache(tmp_path, 3500, hold_seconds=0), ImageCache(tmp_path, 3500, hold_seconds=0)
    for name in ("a", "b", "c"):
        await evictor.put(key_of(name), content(name), metadata={})
    assert await other.get(key_of("a")) == content("a")  # a use the evictor did not see
    await evictor.put(key_of("d"), content("d"), metadata={})
    assert await other.get(key_of("a")) == content("a")
    assert await other.get(key_of("b")) is None
    assert await evictor.get(key_of("b")) is None and evictor.total_bytes <= 3500


async def test_a_hit_is_held_until_delivered_even_when_another_process_needs_room(tmp_path):
    """Admission saw a hit in one process; another fills the cache; delivery still finds the image."""
    admitting, filling = ImageCache(tmp_path, 3500), ImageCache(tmp_path, 3500)
    await filling.put(key_of("old"), content("old"), metadata={})
    age(tmp_path, "old", 3600)
    assert await admitting.contains(key_of("old"))  # the hit: a use, now held
    for n in range(5):
        await filling.put(key_of(f"new{n}"), content(f"new{n}"), metadata={})
    entry = await admitting.get_entry(key_of("old"))
    assert entry is not None and entry.data == content("old")


async def test_a_held_hit_outlives_older_and_newer_entries_until_its_hold_ends(tmp_path):
    """Eviction passes over a held hit (oldest or not); once the hold ended, it is an old entry again."""
    cache = ImageCache(tmp_path, 2500, hold_seconds=60)
    for name in ("a", "b"):
        await cache.put(key_of(name), content(name), metadata={})
    assert await cache.contains(key_of("a"))  # held for 60 s
    for name in ("c", "d"):
        await cache.put(key_of(name), content(name), metadata={})
    assert await cache.get(key_of("a")) == content("a")  # held
    assert await cache.get(key_of("b")) is None and await cache.get(key_of("c")) is None
    assert cache.total_bytes <= 2500
    age(tmp_path, "a", 120)  # as if the hold had ended a minute ago
    later = ImageCache(tmp_path, 2500, hold_seconds=60)
    await later.put(key_of("e"), content("e"), metadata={})
    assert await later.get(key_of("a")) is None
    assert await later.get(key_of("d")) == content("d") and await later.get(key_of("e")) == content("e")


async def test_a_burst_of_writes_stays_within_the_size(tmp_path):
    """New entries are not held: a burst of results evicts the oldest as it goes."""
    cache = ImageCache(tmp_path, 5 * (SIZE + 2))
    for n in range(50):
        await cache.put(key_of(str(n)), content(str(n)), metadata={})
        assert cache.total_bytes <= 5 * (SIZE + 2)
    assert sum(p.stat().st_size for p in tmp_path.iterdir()) <= 5 * (SIZE + 2)


async def test_entries_are_bounded_by_count_too(tmp_path):
    cache = ImageCache(tmp_path, 10**9, max_entries=10, hold_seconds=0)
    for n in range(30):
        await cache.put(key_of(str(n)), b"x" * 10, metadata={})
    assert cache.entries == 10
    assert len(list(tmp_path.glob("*.img"))) == 10
    assert await cache.get(key_of("29")) == b"x" * 10 and await cache.get(key_of("0")) is None


async def test_another_process_write_in_progress_is_left_alone(tmp_path):
    """A young temporary file or sidecar without its image may be another process mid-write."""
    (tmp_path / ".tmp-writing").write_bytes(b"half")
    (tmp_path / f"{key_of('half')}.json").write_bytes(b"{}")  # its image comes next
    (tmp_path / ".tmp-crashed").write_bytes(b"old")
    old = time.time() - STALE_SECONDS - 60
    os.utime(tmp_path / ".tmp-crashed", (old, old))
    assert not await ImageCache(tmp_path, 10_000).contains(key_of("x"))  # reads the folder
    assert (tmp_path / ".tmp-writing").exists() and (tmp_path / f"{key_of('half')}.json").exists()
    assert not (tmp_path / ".tmp-crashed").exists()


@pytest.mark.subprocess
async def test_processes_writing_and_evicting_together_never_lose_a_hit(tmp_path):
    """Two real processes write into a full cache (evicting old entries) while this one admits hits
    (``contains``) and delivers them (``get_entry``): every hit is delivered, with its own bytes."""
    old_names = [f"old{n}" for n in range(300)]
    limit = 250 * (SIZE + 20)
    seed = ImageCache(tmp_path, 10**9)
    for name in old_names:
        await seed.put(key_of(name), content(name), metadata={"name": name})
        age(tmp_path, name, 3600 + old_names.index(name))  # old (old299 the oldest): free to evict
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    command = [sys.executable, "-m", "tests.bot.images.cache_child", str(tmp_path), str(limit)]
    pipes = {"stdin": asyncio.subprocess.PIPE, "stdout": asyncio.subprocess.PIPE}
    children = [
        await asyncio.create_subprocess_exec(*command, str(p), "150", env=env, cwd=REPO, **pipes) for p in range(2)
    ]
    for child in children:
        assert (await asyncio.wait_for(child.stdout.readline(), 30)).strip() == b"ready"
    reader = ImageCache(tmp_path, limit)
    assert await reader.contains(key_of("warm-up")) is False
    for child in children:
        child.stdin.write(b"go\n")
        await child.stdin.drain()
    finished = asyncio.gather(*(child.communicate() for child in children))
    hits = misses = 0
    while not finished.done():  # pass after pass over the old entries, for as long as the children write
        for name in old_names:
            if not await reader.contains(key_of(name)):
                misses += 1  # evicted before admission: a miss, which is fine
                continue
            hits += 1
            entry = await reader.get_entry(key_of(name))
            assert entry is not None, f"{name}: a hit at admission, lost at delivery"
            assert entry.data == content(name) and entry.metadata == {"name": name}
    outputs = await asyncio.wait_for(finished, 60)
    assert [child.returncode for child in children] == [0, 0]
    summaries = [json.loads(out.decode().strip().splitlines()[-1]) for out, _ in outputs]
    assert summaries == [{"writes": 150, "hits": 150, "misses": 0, "corrupt": 0}] * 2
    assert hits > 0 and misses > 0  # hits raced evictions
    left = {p.stem for p in tmp_path.glob("*.img")}
    assert len(left & {key_of(n) for n in old_names}) < len(old_names)  # the children did evict
    assert {p.stem for p in tmp_path.glob("*.json")} == left  # every image has its sidecar, and no more
    assert not list(tmp_path.glob(".tmp-*"))
