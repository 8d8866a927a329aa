"""Admitted, then Discord unreachable: the job is abandoned at once (issue 20, cog side).

Between admission (money reserved) and acknowledgement (the member saw the answer) any failure must
cancel the job and release its money: a dropped connection (a transport error, not an
``HTTPException``), a failed deferral while a slow admission runs, a failed edit of the deferred
answer, for `/imagine`, `count:N`, `/edit`, a Generate click and a fallback click. The fake Discord
drops the connections (``fail_interaction_requests``); nothing must reach BFL.
"""

from __future__ import annotations

import asyncio
import io

import pytest
from PIL import Image

from bot.engine.engine import JobEngine
from bot.engine.states import JobStatus
from tests.e2e.gallery import custom_ids
from tests.e2e.support import hold_admissions, rows, uid
from tests.e2e.test_budget import budget
from tests.e2e.test_fallback import break_model, buttons, clock, engine_options  # noqa: F401 - fixtures

KLEIN = "flux-2-klein-4b"


def png() -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (320, 240), "orange").save(buffer, format="PNG")
    return buffer.getvalue()


def hold_group_admissions(monkeypatch) -> asyncio.Event:
    """Make every group admission wait until the returned event is set (a slow database)."""
    released = asyncio.Event()
    real = JobEngine.admit_group

    async def slow(self, *args, **kwargs):
        await released.wait()
        return await real(self, *args, **kwargs)

    monkeypatch.setattr(JobEngine, "admit_group", slow)
    return released


async def abandoned(harness, job_ids, *, submits_before=0):
    """Wait until every job is cancelled; then its money is released and nothing reached BFL."""

    async def cancelled():
        jobs = [await harness.services.jobs.get(job_id) for job_id in job_ids]
        return all(job is not None and job.status is JobStatus.CANCELLED for job in jobs)

    await harness.wait_until(cancelled, timeout=10)
    for job_id in job_ids:
        assert await harness.services.ledger.outcome(job_id) == "release"
    assert await harness.services.ledger.open_job_ids() == []
    assert len(harness.bfl.submits) == submits_before


async def group_members(harness, group_id, count):
    async def admitted():
        return len(await harness.services.engine.groups.members(group_id)) == count

    await harness.wait_until(admitted, timeout=10)
    return [job.id for job in await harness.services.engine.groups.members(group_id)]


async def test_an_imagine_whose_answer_never_reaches_discord_is_cancelled_and_released(harness, people):
    member = people["member"]
    fault = harness.fake.fail_interaction_requests("callback", user=member)
    asked = await harness.fake.slash("imagine", {"prompt": "a fox"}, user=member)
    asked.allow_no_response = True  # Discord is unreachable for it: nobody can answer
    await abandoned(harness, [asked.id])
    assert fault.hits >= 1


async def test_a_failed_deferral_while_the_admission_runs_cancels_the_job_it_admits(harness, people, monkeypatch):
    """The slow admission is deferred; the deferral fails; the admission still finishes: it is abandoned."""
    member = people["member"]
    released = hold_admissions(monkeypatch)
    fault = harness.fake.fail_interaction_requests("callback", user=member)
    asked = await harness.fake.slash("imagine", {"prompt": "a fox"}, user=member)
    asked.allow_no_response = True
    await harness.fake.wait_for(lambda: fault.hits >= 1, timeout=10)  # the deferral, after the ack budget
    released.set()
    await abandoned(harness, [asked.id])


async def test_a_failed_edit_of_the_deferred_answer_cancels_the_job(harness, people, monkeypatch):
    member = people["member"]
    released = hold_admissions(monkeypatch)
    fault = harness.fake.fail_interaction_requests("webhook_edit", user=member)
    asked = await harness.fake.slash("imagine", {"prompt": "a fox"}, user=member)
    await asked.wait_acked(timeout=10)  # deferred: "thinking…"
    released.set()
    await abandoned(harness, [asked.id])
    assert fault.hits >= 1


async def test_a_group_whose_answer_never_reaches_discord_is_cancelled_and_released(harness, people):
    member = people["member"]
    harness.fake.fail_interaction_requests("callback", user=member)
    asked = await harness.fake.slash("imagine", {"prompt": "a fox", "count": 2}, user=member)
    asked.allow_no_response = True
    await abandoned(harness, await group_members(harness, asked.id, 2))


async def test_a_failed_deferral_while_a_group_is_admitted_cancels_the_group(harness, people, monkeypatch):
    member = people["member"]
    released = hold_group_admissions(monkeypatch)
    fault = harness.fake.fail_interaction_requests("callback", user=member)
    asked = await harness.fake.slash("imagine", {"prompt": "a fox", "count": 3}, user=member)
    asked.allow_no_response = True
    await harness.fake.wait_for(lambda: fault.hits >= 1, timeout=10)
    released.set()
    await abandoned(harness, await group_members(harness, asked.id, 3))


async def test_an_edit_whose_answer_never_reaches_discord_is_cancelled_and_released(harness, people):
    member = people["member"]
    upload = harness.fake.make_attachment("cat.png", png())
    harness.fake.fail_interaction_requests("callback", user=member)
    asked = await harness.fake.slash("edit", {"image": upload, "prompt": "make it night"}, user=member)
    asked.allow_no_response = True
    await abandoned(harness, [asked.id])


@pytest.mark.parametrize("bot_settings_overrides", [{"confirm_above_usd": "0"}])  # every request is confirmed
async def test_a_generate_click_whose_answer_never_reaches_discord_is_cancelled_and_released(harness, people):
    fake, member = harness.fake, people["member"]
    asked = await fake.slash("imagine", {"prompt": "a fox"}, user=member)
    await asked.wait_acked()
    go = next(c for c in custom_ids(asked.original_message) if c.startswith("fluxcord:go:"))
    fake.fail_interaction_requests("callback", user=member)
    click = await fake.click(asked.original_message["id"], go, user=member)
    click.allow_no_response = True
    await abandoned(harness, [click.id])


async def test_a_fallback_click_whose_answer_never_reaches_discord_is_cancelled_and_released(
    harness,
    people,
    clock,  # noqa: F811 - the fixture imported above
):
    fake, member = harness.fake, people["member"]
    await break_model(harness)
    await budget(harness, "fallback", people["mod"], model=KLEIN)
    refused = await harness.imagine(prompt="a lighthouse", user=member)
    [button] = buttons(refused.original_message)
    submits = len(harness.bfl.submits)
    fake.fail_interaction_requests("callback", user=member)
    click = await fake.click(refused.original_message["id"], button["custom_id"], user=member)
    click.allow_no_response = True
    await abandoned(harness, [click.id], submits_before=submits)
    assert await rows(harness, "SELECT model, user_id FROM jobs WHERE id = ?", (click.id,)) == [(KLEIN, uid(member))]


async def test_an_answer_whose_connection_dropped_after_discord_took_it_lets_the_job_run(harness, people):
    """The member sees the queue place, so the job runs (found by the soak: it was silently released).

    The bot cannot tell from the dropped connection; it reads the message back and finds its answer.
    """
    from tests.e2e.fake_discord import Fault

    member = people["member"]
    harness.fake.faults.script("create_interaction_response", Fault.disconnect(after=True))
    asked = await harness.fake.slash("imagine", {"prompt": "a fox"}, user=member)
    await asked.wait_acked()
    assert asked.original_message["content"].startswith("⏳")

    async def delivered():
        job = await harness.services.jobs.get(asked.id)
        return job is not None and job.status is JobStatus.DELIVERED

    await harness.wait_until(delivered, timeout=15)
    assert len(harness.bfl.submits) == 1 and await harness.services.ledger.outcome(asked.id) == "settle"


async def test_an_answer_that_never_reached_discord_is_still_released(harness, people):
    """Dropped before it took effect: the read-back finds nothing, and the job is abandoned as before."""
    from tests.e2e.fake_discord import Fault

    member = people["member"]
    harness.fake.faults.script("create_interaction_response", Fault.disconnect(after=False))
    asked = await harness.fake.slash("imagine", {"prompt": "a fox"}, user=member)
    asked.allow_no_response = True
    await abandoned(harness, [asked.id])


async def test_an_answer_that_cannot_be_read_back_is_replaced_with_what_happened(harness, people):
    """Dropped after Discord took it, and Discord refuses to show it back: the member may see a queue
    place, so the job is released and that answer says so (found by the soak: a 429 on the read-back)."""
    from bot.engine.outcomes import NOT_STARTED_TEXT
    from tests.e2e.fake_discord import Fault

    member = people["member"]
    fake = harness.fake
    fake.faults.script("create_interaction_response", Fault.disconnect(after=True))
    fake.faults.script("get_original_webhook_message", Fault.rate_limited(), times=4)
    asked = await fake.slash("imagine", {"prompt": "a fox"}, user=member)
    await abandoned(harness, [asked.id])
    await harness.job_settled(asked, timeout=10)  # and the member was told
    assert asked.original_message["content"].startswith(NOT_STARTED_TEXT[:40])


async def test_a_deferral_whose_connection_dropped_after_discord_took_it_is_answered(harness, people, monkeypatch):
    """The slow admission is deferred; Discord took the deferral but its answer was lost: "thinking…" is shown.

    Found by the soak: the job was released quietly (as if Discord showed the failure), so the member was
    left looking at "thinking…" forever. The deferral is read back: it is there, so the answer says what
    happened.
    """
    from tests.e2e.fake_discord import Fault

    member = people["member"]
    released = hold_admissions(monkeypatch)
    harness.fake.faults.script("create_interaction_response", Fault.disconnect(after=True))
    asked = await harness.fake.slash("imagine", {"prompt": "a fox"}, user=member)
    await asked.wait_acked(timeout=10)  # the deferral took effect: "thinking…"
    released.set()
    await abandoned(harness, [asked.id])
    await harness.fake.wait_for(lambda: "not been charged" in (asked.original_message["content"] or ""), timeout=10)


async def test_a_group_whose_landed_answer_could_not_be_recorded_says_it_was_cancelled(harness, people, monkeypatch):
    """The answer's connection dropped after Discord took it (read back: shown); then recording it failed.

    Found by the soak: the group was released silently, as if Discord showed the failure, and the member
    kept looking at its queue place. The answer shown is replaced with what happened.
    """
    from tests.e2e.fake_discord import Fault

    real = JobEngine.acknowledged_group

    async def broken(self, *args, **kwargs):
        raise ConnectionError("connection was closed in the middle of operation")

    monkeypatch.setattr(JobEngine, "acknowledged_group", broken)
    harness.fake.faults.script("create_interaction_response", Fault.disconnect(after=True))
    asked = await harness.fake.slash("imagine", {"prompt": "a fox", "count": 2}, user=people["member"])
    await asked.wait_acked(timeout=10)
    await abandoned(harness, await group_members(harness, int(asked.id), 2))
    await harness.fake.wait_for(lambda: "Cancelled" in (asked.original_message["content"] or ""), timeout=10)
    monkeypatch.setattr(JobEngine, "acknowledged_group", real)
