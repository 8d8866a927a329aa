"""The queue as members see it: their place, a Cancel button, progress that never holds a BFL slot."""

import asyncio

import pytest

from bot.engine.states import JobStatus
from tests.e2e.support import first_answer
from tests.fakes.fake_bfl import Behaviour

ONE_SLOT = {"bfl_max_active_tasks": 1, "member_max_concurrent_jobs": 1}


def button_ids(message):
    return [c["custom_id"] for row in (message or {}).get("components", []) for c in row["components"]]


async def queued_behind_a_held_job(harness):
    """With one BFL slot: ``first`` runs until ``gate`` is set, ``second`` waits (acknowledged) behind it."""
    gate = asyncio.Event()
    harness.bfl.default = Behaviour(release=gate)
    first = await harness.imagine(wait=False, prompt="first")
    await harness.bfl.wait_for(lambda: harness.bfl.tasks, timeout=5)
    second = await harness.imagine(wait=False, prompt="second")
    await second.wait_acked()
    return gate, first, second


@pytest.mark.parametrize("bot_settings_overrides", [ONE_SLOT])
async def test_a_queued_job_shows_its_place_and_can_be_cancelled_by_its_requester(harness):
    fake = harness.fake
    gate, first, second = await queued_behind_a_held_job(harness)
    message = second.original_message
    assert message["content"].startswith("⏳ #1 in queue")
    assert button_ids(message) == [f"fluxcord:cancel:{second.id}"]

    stranger = fake.add_member(name="stranger")
    refused = await fake.click(message["id"], f"fluxcord:cancel:{second.id}", user=stranger)
    await refused.wait_acked()
    assert refused.ephemeral and "Only the member who asked" in refused.original_message["content"]

    requester = {"id": second.payload["member"]["user"]["id"]}
    click = await fake.click(message["id"], f"fluxcord:cancel:{second.id}", user=requester)
    await click.wait_acked()
    job = await harness.job_settled(second)  # cancelled, and the member told so
    assert "Cancelled" in fake.get_message(message["id"])["content"]
    assert button_ids(fake.get_message(message["id"])) == []  # the button is gone
    assert job.status is JobStatus.CANCELLED
    kinds = await harness.services.db.fetch_all("SELECT kind FROM ledger WHERE job_id = ?", (int(second.id),))
    assert [r["kind"] for r in kinds] == ["reserve", "release"]  # released at once

    gate.set()
    await harness.finished(first)
    assert len(harness.bfl.submits) == 1  # the cancelled job never reached BFL
    result_buttons = button_ids(first.original_message)
    assert f"fluxcord:reroll:{first.id}" in result_buttons and not any(":cancel:" in b for b in result_buttons)


@pytest.mark.parametrize("bot_settings_overrides", [ONE_SLOT])
async def test_the_cancel_button_disappears_once_the_job_is_submitted(harness):
    gate, first, second = await queued_behind_a_held_job(harness)
    assert button_ids(second.original_message) == [f"fluxcord:cancel:{second.id}"]
    gate.set()
    await harness.finished(first)
    await harness.finished(second)
    result_buttons = button_ids(second.original_message)
    assert f"fluxcord:reroll:{second.id}" in result_buttons and not any(":cancel:" in b for b in result_buttons)
    late = await harness.fake.click(second.original_message["id"], f"fluxcord:reroll:{second.id}")
    await harness.finished(late)


@pytest.mark.parametrize("bot_settings_overrides", [ONE_SLOT])
async def test_slow_discord_edits_never_hold_a_bfl_slot(harness):
    fake, bfl = harness.fake, harness.bfl
    fake.webhook_edit_delay = 1.5  # every progress edit and every result post takes 1.5 s
    bfl.default = Behaviour(run_seconds=0.05)
    harness.services.engine.latency.restore({"flux-pro-1.1": [0.05] * 10})  # a known, quick model
    interactions = [await harness.imagine(wait=False, prompt=f"job {n}") for n in range(4)]
    await bfl.wait_for(lambda: len(bfl.tasks) == 4, timeout=10)
    created = sorted(task.created_at for task in bfl.tasks.values())
    # One slot, four jobs: each submit follows the previous task's end, not the Discord edits.
    assert created[-1] - created[0] < 1.0
    for interaction in interactions:
        await harness.finished(interaction, timeout=30)


def says_paused(fake, interaction):
    """A predicate: the interaction's message, once it says the server is paused."""

    def check():
        message = fake.get_message(interaction.original_message["id"]) or {}
        return message if "Paused" in message.get("content", "") else None

    return check


async def moderator(harness, people, subcommand):
    interaction = await harness.fake.slash("budget", {}, subcommand=subcommand, user=people["mod"])
    return await first_answer(harness, interaction)


@pytest.mark.parametrize("bot_settings_overrides", [ONE_SLOT])
async def test_a_paused_servers_queue_waits_says_so_can_be_cancelled_and_runs_on_resume(harness, people):
    fake, engine, jobs = harness.fake, harness.services.engine, harness.services.jobs
    gate, first, second = await queued_behind_a_held_job(harness)
    third = await harness.imagine(wait=False, user=people["member"], prompt="third")
    await third.wait_acked()

    await moderator(harness, people, "pause")
    for waiting in (second, third):  # their queue messages say why they wait, and keep their Cancel button
        message = await fake.wait_for(says_paused(fake, waiting))
        assert "moderators" in message["content"] and "resume" in message["content"]
        assert button_ids(message) == [f"fluxcord:cancel:{waiting.id}"]

    gate.set()
    await harness.finished(first)
    await engine.wait_idle()
    # The slot is free: the dispatcher's claim, asked now, finds nothing it may start.
    assert await engine.dispatcher.claim_one() is False
    assert len(harness.bfl.submits) == 1  # nothing reached BFL while paused
    assert (await jobs.get(int(second.id))).status is JobStatus.QUEUED

    requester = {"id": third.payload["member"]["user"]["id"]}
    click = await fake.click(third.original_message["id"], f"fluxcord:cancel:{third.id}", user=requester)
    await click.wait_acked()
    assert (await harness.job_settled(third)).status is JobStatus.CANCELLED
    assert "Cancelled" in fake.get_message(third.original_message["id"])["content"]
    kinds = await harness.services.db.fetch_all("SELECT kind FROM ledger WHERE job_id = ?", (int(third.id),))
    assert [r["kind"] for r in kinds] == ["reserve", "release"]

    await moderator(harness, people, "resume")  # wakes the dispatcher: the waiting job runs
    await harness.finished(second)
    assert second.original_message["attachments"] and len(harness.bfl.submits) == 2


@pytest.mark.parametrize("bot_settings_overrides", [ONE_SLOT])
async def test_a_cancel_that_comes_too_late_answers_privately_and_keeps_the_jobs_message(harness):
    """The job is claimed between the click and the cancel: the click was acknowledged already.

    The refusal goes to the clicker alone; the job's message (the click's "original response") stays.
    Found by the soak: the one error path deleted it, so the images could never be posted there.
    """
    from tests.e2e.fake_discord import Fault

    fake = harness.fake
    gate, _first, second = await queued_behind_a_held_job(harness)
    acknowledging, acknowledged = asyncio.Event(), asyncio.Event()  # Discord holds the click's acknowledgement
    fake.faults.script("create_interaction_response", Fault.held(acknowledged, reached=acknowledging))
    message = second.original_message
    requester = {"id": second.payload["member"]["user"]["id"]}
    click = await fake.click(message["id"], f"fluxcord:cancel:{second.id}", user=requester)
    await asyncio.wait_for(acknowledging.wait(), timeout=10)  # the bot saw the job queued, and acknowledges
    gate.set()  # meanwhile the first job ends and the second is claimed
    await harness.wait_state(second.id, *(status for status in JobStatus if status is not JobStatus.QUEUED))
    acknowledged.set()
    await click.wait_for(lambda: click.followups)
    assert "Too late to cancel" in click.followups[0]["content"]
    assert click.followups[0]["flags"] & 64  # ephemeral
    assert str(message["id"]) in fake.messages  # not deleted
    await harness.wait_until(lambda: _delivered(harness, int(second.id)))  # and its image is posted there
    assert fake.get_message(message["id"])["attachments"]


async def _delivered(harness, job_id):
    return (await harness.services.jobs.get(job_id)).status is JobStatus.DELIVERED


@pytest.mark.parametrize("bot_settings_overrides", [ONE_SLOT])
async def test_a_priority_members_job_overtakes_a_flood_without_starving_another_server(harness, people):
    """`/budget priority`: with one BFL slot held, six ordinary jobs flood the server, another server asks,
    then a member with the priority role: the other server keeps its turn, the priority job goes next, then
    the flood, and the queue message says ⚡ priority."""
    from tests.e2e.support import MEMBER_PERMISSIONS, text_of

    fake = harness.fake
    vips = fake.add_role("vips")
    vip = fake.add_member(name="vip", roles=[vips], permissions=MEMBER_PERMISSIONS)
    chosen = await first_answer(
        harness, await fake.slash("budget", {"role": vips}, subcommand="priority", user=people["mod"])
    )
    assert "Priority lane" in text_of(chosen)
    gate, first, second = await queued_behind_a_held_job(harness)
    flood = []
    for n in range(6):
        member = fake.add_member(name=f"flood{n}", permissions=MEMBER_PERMISSIONS)
        flood.append(await harness.imagine(wait=False, user=member, prompt=f"flood {n}"))
    other = fake.add_guild("other server")
    elsewhere = await fake.slash(
        "imagine",
        {"prompt": "elsewhere"},
        user=fake.add_member(name="elsewhere", guild_id=other),
        channel=fake.add_channel("general", guild_id=other),
    )
    priority = await harness.imagine(wait=False, user=vip, prompt="vip")
    for waiting in (*flood, elsewhere, priority):
        await waiting.wait_acked()
    assert "⚡ priority" in priority.original_message["content"]
    assert "⚡" not in flood[0].original_message["content"]
    gate.set()
    for done in (first, second, *flood, elsewhere, priority):
        await harness.finished(done, timeout=30)
    prompts = [record.body["prompt"] for record in harness.bfl.submits]
    assert prompts[:3] == ["first", "elsewhere", "vip"]
    # then the flood's members, never served, and last the first job's member (served most recently)
    assert sorted(prompts[3:9]) == [f"flood {n}" for n in range(6)] and prompts[9:] == ["second"]
