"""Erasing a member's data: finished jobs only, their cached images, an edit's source link; the sweep."""

from datetime import timedelta

import pytest

from bot.clock import to_millis
from bot.images.cache import ImageCache
from bot.safety.privacy import PrivacyService, require_details, server_cache_key

GUILD, ALICE, BOB = 10, 40, 41


async def add_job(db, job_id, user, status, created, key):
    await db.execute(
        "INSERT INTO jobs (id, guild_id, channel_id, user_id, model, prompt, params, seed, width, height, cache_key,"
        " status, estimated_micros, created_at, updated_at, result_channel_id, result_message_id)"
        " VALUES (?, ?, 1, ?, 'flux-dev', ?, ?, 1, 1024, 1024, ?, ?, 0, ?, ?, 5, 6)",
        (job_id, GUILD, user, f"prompt {job_id}", f'{{"prompt": "prompt {job_id}"}}', key, status, created, created),
    )


@pytest.fixture
async def setup(db, clock, tmp_path):
    cache = ImageCache(tmp_path / "cache", 10_000_000)
    privacy = PrivacyService(db, cache, retention_days=30, clock=clock)
    now = to_millis(clock())
    keys = {n: server_cache_key(GUILD, f"{n:064x}") for n in (1, 2, 3)}
    await add_job(db, 1, ALICE, "delivered", now, keys[1])
    await add_job(db, 2, ALICE, "queued", now, keys[2])  # still running: it needs its prompt
    await add_job(db, 3, BOB, "delivered", now - to_millis_days(31), keys[3])
    for key in keys.values():
        await cache.put(key, b"image", metadata={})
    return privacy, cache, keys


def to_millis_days(days):
    return int(timedelta(days=days).total_seconds() * 1000)


async def test_forget_erases_finished_jobs_and_their_cache_but_not_open_ones_or_others(db, setup):
    privacy, cache, keys = setup
    done = await privacy.forget(GUILD, ALICE)
    assert (done.prompts, done.cached_images, done.in_progress, done.messages) == (1, 1, 1, [(5, 6)])
    rows = {r["id"]: tuple(r)[1:] for r in await db.fetch_all("SELECT id, prompt, params, result_message_id FROM jobs")}
    assert rows[1] == ("", "{}", None) and rows[2][0] == "prompt 2" and rows[3][0] == "prompt 3"
    assert await cache.get(keys[1]) is None and await cache.get(keys[2]) is not None
    assert (await privacy.kept(GUILD, ALICE)).prompts == 1


async def test_an_edits_source_link_is_erased_with_its_job(db, setup):
    privacy, _, _ = setup
    await db.execute("INSERT INTO job_sources (job_id, kind, source_url) VALUES (1, 'edit', 'https://cdn/x.png')")
    await privacy.forget(GUILD, ALICE)
    assert await db.fetch_value("SELECT source_url FROM job_sources WHERE job_id = 1") is None


async def test_the_sweep_erases_only_what_is_past_retention_and_zero_keeps_forever(db, setup, clock):
    privacy, cache, keys = setup
    privacy.retention_days = 0
    assert await privacy.sweep() == 0
    privacy.retention_days = 30
    assert await privacy.sweep() == 1
    job = await db.fetch_one("SELECT prompt, erased_at FROM jobs WHERE id = 3")
    assert job["prompt"] == "" and job["erased_at"] == to_millis(clock())
    assert await cache.get(keys[3]) is None and await cache.get(keys[1]) is not None
    assert await privacy.sweep() == 0  # nothing twice


async def test_the_sweep_erases_a_long_history_in_short_batches(db, setup, clock, monkeypatch):
    from bot.safety import privacy as module
    from tests.bot.storage.query_plans import RecordingDatabase

    privacy, _, _ = setup
    old = to_millis(clock()) - to_millis_days(40)
    for n in range(7):
        await add_job(db, 100 + n, BOB, "delivered", old + n, "not-a-cache-key")
    await add_job(db, 200, BOB, "generating", old, "not-a-cache-key")  # still running: kept
    monkeypatch.setattr(module, "SWEEP_BATCH", 3)
    recorder = RecordingDatabase(db)
    privacy._db = recorder
    assert await privacy.sweep() == 8  # job 3 and the seven old ones
    assert recorder.largest_fetch <= 3
    assert await db.fetch_value("SELECT COUNT(*) FROM jobs WHERE erased_at IS NULL AND id >= 100") == 1
    assert await privacy.sweep() == 0


def test_buttons_on_erased_results_say_the_details_expired():
    class Job:
        erased_at = object()

    with pytest.raises(Exception, match="details of this image expired"):
        require_details(Job())
    require_details(object())  # not erased: fine


def test_the_cache_key_differs_per_server():
    assert server_cache_key(1, "ab" * 32) != server_cache_key(2, "ab" * 32)


async def test_forget_erases_the_members_defaults_here_only(db, setup, clock):
    privacy, _cache, _keys = setup
    for guild, user in ((GUILD, ALICE), (GUILD, BOB), (GUILD + 1, ALICE)):
        await db.execute(
            "INSERT INTO member_prefs (guild_id, user_id, model, updated_at) VALUES (?, ?, 'flux-dev', 0)",
            (guild, user),
        )
    assert (await privacy.kept(GUILD, ALICE)).defaults
    await privacy.forget(GUILD, ALICE)
    assert not (await privacy.kept(GUILD, ALICE)).defaults
    assert (await privacy.kept(GUILD, BOB)).defaults and (await privacy.kept(GUILD + 1, ALICE)).defaults


async def test_the_stored_request_is_erased_with_the_prompt(db, setup):
    privacy, _, _ = setup
    await db.execute("UPDATE jobs SET request = ? WHERE id IN (1, 2)", ('{"v": 1, "prompt": "secret"}',))
    await privacy.forget(GUILD, ALICE)
    rows = {r["id"]: r["request"] for r in await db.fetch_all("SELECT id, request FROM jobs WHERE id IN (1, 2)")}
    assert rows == {1: None, 2: '{"v": 1, "prompt": "secret"}'}  # a running job still needs its request
