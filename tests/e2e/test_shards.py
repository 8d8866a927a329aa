"""Gateway shard clusters (SHARD_COUNT, SHARD_IDS): real `python -m bot` processes on one database.

The fake gateway routes a guild's events as Discord does, to shard ``(guild_id >> 22) % SHARD_COUNT``,
so only the process running that shard gets the guild's interactions.
"""

from __future__ import annotations

import pytest

from tests.e2e.processes import Running, clean_environment, fake_endpoints

pytestmark = pytest.mark.subprocess


def _shards(fake) -> list[list[int]]:
    return sorted(p["shard"] for p in fake.identify_payloads if "shard" in p)


async def _start(tmp_path, fake, fake_bfl, name: str, **settings: str) -> Running:
    env = clean_environment(
        **fake_endpoints(fake, fake_bfl),
        DATABASE_PATH=str(tmp_path / "shared.sqlite3"),
        CACHE_DIR=str(tmp_path / f"cache-{name}"),
        CONFIRM_ABOVE_USD="100",
        SHARD_COUNT="2",
        **settings,
    )
    return await Running.start(env=env, cwd=tmp_path)


async def test_two_processes_split_the_shards_and_the_guilds_shard_answers(tmp_path, fake_discord, fake_bfl):
    fake = fake_discord
    home = (fake.guild_id >> 22) % 2  # the shard this guild belongs to
    processes = [
        await _start(tmp_path, fake, fake_bfl, "home", SHARD_IDS=str(home)),
        await _start(tmp_path, fake, fake_bfl, "other", SHARD_IDS=str(1 - home)),
    ]
    try:
        await fake.wait_for(lambda: _shards(fake) == [[0, 2], [1, 2]], timeout=30)
        await fake.wait_until_connected(timeout=30)  # the home shard's session
        await fake.wait_for(lambda: fake.command_syncs, timeout=30)
        interaction = await fake.slash("imagine", {"prompt": "a harbour at night"})
        await interaction.wait_for(lambda: (interaction.original_message or {}).get("attachments"), timeout=30)
    finally:
        codes = [await p.stop() for p in processes]
    assert codes == [0, 0]
    assert len(fake_bfl.submits) == 1  # one job, run by exactly one of the two engines
    for process in processes:
        assert "Traceback" not in process.text, process.text[-3000:]


async def test_one_process_without_shard_ids_runs_every_shard(tmp_path, fake_discord, fake_bfl):
    fake = fake_discord
    process = await _start(tmp_path, fake, fake_bfl, "all")
    try:
        await fake.wait_for(lambda: _shards(fake) == [[0, 2], [1, 2]], timeout=30)
        await fake.wait_until_connected(timeout=30)
        await fake.wait_for(lambda: fake.command_syncs, timeout=30)
        interaction = await fake.slash("imagine", {"prompt": "a harbour at dawn"})
        await interaction.wait_for(lambda: (interaction.original_message or {}).get("attachments"), timeout=30)
    finally:
        assert await process.stop() == 0
    assert "Traceback" not in process.text, process.text[-3000:]
