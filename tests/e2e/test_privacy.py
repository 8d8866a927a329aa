"""Private results, the per-server cache, /privacy show and forget, and the retention sweep."""

from datetime import timedelta
from pathlib import Path

import pytest

from bot.engine.engine import Requester
from bot.engine.states import JobStatus
from bot.models import build_request
from cogs.privacy import FORGET_ID, KEEP_ID

EPHEMERAL = 64


def files_containing(text, *paths):
    """The files (given, or under given folders) whose bytes contain ``text`` (UTF-8)."""
    needle = text.encode()
    found = []
    for path in map(Path, paths):
        for file in [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file()):
            if needle in file.read_bytes():
                found.append(file.name)
    return found


def database_files(harness):
    db_path = Path(harness.settings.database_path)
    return [p for p in db_path.parent.iterdir() if p.name.startswith(db_path.name)]  # the db, -wal and -shm


async def privately_done(harness, interaction):
    """Wait for a private job to end and its ephemeral message to show the image."""
    await interaction.wait_acked()

    async def done():
        job = await harness.services.jobs.get(int(interaction.id))
        return job is not None and not job.status.is_open

    await harness.wait_until(done)
    await harness.fake.wait_for(lambda: (interaction.original_message or {}).get("attachments"))
    return interaction.original_message


async def privacy(harness, subcommand, user):
    interaction = await harness.fake.slash("privacy", {}, subcommand=subcommand, user=user)
    await interaction.wait_acked()
    return interaction


async def test_a_private_result_is_ephemeral_throughout_and_its_reroll_button_works(harness):
    fake = harness.fake
    member = fake.add_member(name="shy")
    public_before = {mid for mid, m in fake.messages.items() if not m["flags"] & EPHEMERAL}
    interaction = await fake.slash("imagine", {"prompt": "a very private teapot", "private": True}, user=member)
    message = await privately_done(harness, interaction)
    assert interaction.ephemeral and message["flags"] & EPHEMERAL
    assert "a very private teapot" in message["embeds"][0]["description"]
    public_after = {mid for mid, m in fake.messages.items() if not m["flags"] & EPHEMERAL}
    assert public_after == public_before  # nothing was posted for everyone to see
    assert (await harness.services.jobs.get(int(interaction.id))).private
    ledger = await harness.services.db.fetch_value(
        "SELECT SUM(member_micros) FROM ledger WHERE job_id = ?", (int(interaction.id),)
    )
    assert ledger == 40_000  # still within (and counted against) the member's limits

    click = await fake.click(message["id"], f"fluxcord:reroll:{interaction.id}", user=member)
    rerolled = await privately_done(harness, click)
    assert click.ephemeral and rerolled["flags"] & EPHEMERAL and rerolled["id"] != message["id"]
    assert len(harness.bfl.submits) == 2


async def test_a_cache_hit_only_serves_an_image_made_in_the_same_server(harness):
    prompt, seed = "a lighthouse at dawn", 7
    first = await harness.imagine(prompt=prompt, seed=seed)
    again = await harness.imagine(prompt=prompt, seed=seed)
    assert "free (from cache)" in harness.reply_text(again) and len(harness.bfl.submits) == 1
    assert (await harness.services.jobs.get(int(first.id))).cache_key == (
        await harness.services.jobs.get(int(again.id))
    ).cache_key

    engine = harness.services.engine
    request = build_request(model=None, prompt=prompt, aspect_ratio=None, seed=seed)
    here = await engine.admit(request, Requester(job_id=9001, guild_id=harness.fake.guild_id, channel_id=1, user_id=5))
    elsewhere = await engine.admit(request, Requester(job_id=9002, guild_id=4242, channel_id=1, user_id=5))
    assert here.status is JobStatus.CACHED and elsewhere.status is JobStatus.QUEUED
    assert elsewhere.estimated_micros == 40_000  # another server pays for its own image
    for job in (here, elsewhere):
        await engine.abandon(job.id)


async def test_privacy_show_lists_what_is_kept(harness):
    member = harness.fake.add_member(name="curious")
    await harness.imagine(user=member)
    shown = await privacy(harness, "show", member)
    text = shown.original_message["content"]
    assert shown.ephemeral
    assert "Requests: **1**" in text and "still kept: **1**" in text and "Cached images" in text
    assert "30 days" in text and "<t:" in text
    # The end-user id BFL gets is explained, and the member's own ids appear nowhere in it.
    assert "not your Discord id" in text and "after `/privacy forget` nothing it stores ties them to you" in text
    assert member["user"]["id"] not in text


@pytest.mark.sqlite_only  # scans the SQLite file's bytes (PostgreSQL's pages are reclaimed by its VACUUM)
async def test_privacy_forget_erases_the_prompt_from_the_database_files_and_the_cache(harness):
    fake = harness.fake
    member, other = fake.add_member(name="leaving"), fake.add_member(name="staying")
    marker, kept = "zanzibar quokka lighthouse 7731", "unrelated walrus festival 5150"
    mine = await harness.imagine(user=member, prompt=marker)
    await harness.imagine(user=other, prompt=kept)
    job = await harness.services.jobs.get(int(mine.id))
    cache_dir = Path(harness.settings.cache_dir)
    assert files_containing(marker, *database_files(harness))  # the scan can see the prompt
    assert (cache_dir / f"{job.cache_key}.img").exists()

    keep = await privacy(harness, "forget", member)
    message = keep.original_message
    assert keep.ephemeral and {c["custom_id"] for row in message["components"] for c in row["components"]} == {
        FORGET_ID,
        KEEP_ID,
    }
    click = await fake.click(message["id"], KEEP_ID, user=member)
    await click.wait_acked()
    assert (await harness.services.jobs.get(job.id)).prompt == marker  # "Keep it" changed nothing

    confirm = await privacy(harness, "forget", member)
    click = await fake.click(confirm.original_message["id"], FORGET_ID, user=member)
    await click.wait_acked()
    await fake.wait_for(lambda: "Forgotten" in (confirm.original_message or {}).get("content", ""))
    assert "**1** prompts" in confirm.original_message["content"]

    for word in (marker, marker.split()[1]):
        assert files_containing(word, *database_files(harness), cache_dir) == []
    assert files_containing(kept, *database_files(harness))  # another member's prompt stays
    assert not (cache_dir / f"{job.cache_key}.img").exists()
    assert str(mine.original_message_id) in fake.deleted_messages  # the posted image is gone too
    erased = await harness.services.jobs.get(job.id)
    assert erased.prompt == "" and erased.params == {} and erased.erased_at is not None
    assert erased.model == "flux-pro-1.1" and erased.result_message_id is None
    ledger = await harness.services.db.fetch_all(
        "SELECT kind, model, member_micros FROM ledger WHERE job_id = ? ORDER BY id", (job.id,)
    )
    assert [tuple(r) for r in ledger] == [("reserve", "flux-pro-1.1", 40_000), ("settle", "flux-pro-1.1", 0)]


@pytest.mark.parametrize("bot_settings_overrides", [{"prompt_retention_days": 1}])
async def test_the_retention_sweep_erases_old_prompts_and_their_buttons_say_the_details_expired(harness):
    db = harness.services.db
    old = await harness.imagine(prompt="an old and forgettable prompt")
    new = await harness.imagine(prompt="a fresh prompt")
    job = await harness.services.jobs.get(int(old.id))
    await db.execute(
        "UPDATE jobs SET created_at = created_at - ? WHERE id = ?",
        (int(timedelta(days=2).total_seconds() * 1000), job.id),
    )
    assert harness.services.members.privacy._task is not None  # the background sweep runs
    assert await harness.services.members.privacy.sweep() == 1
    assert (await harness.services.jobs.get(job.id)).prompt == ""
    assert (await harness.services.jobs.get(int(new.id))).prompt == "a fresh prompt"
    assert not (Path(harness.settings.cache_dir) / f"{job.cache_key}.img").exists()
    assert files_containing("an old and forgettable prompt", *database_files(harness)) == []

    click = await harness.fake.click(old.original_message["id"], f"fluxcord:reroll:{old.id}")
    await click.wait_acked()
    assert click.ephemeral and "details of this image expired" in click.original_message["content"]
    assert len(harness.bfl.submits) == 2
