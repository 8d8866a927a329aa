"""`/imagine count:<1-4>` and `draft:true`: N images reserved all-or-nothing, one gallery message, Use #n, Final."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from bot.engine.states import JobStatus
from bot.models import build_request
from tests.e2e.fake_discord import Fault
from tests.e2e.gallery import V2, custom_ids, gallery_items, gallery_posts, labels, posted, text_display
from tests.e2e.support import rows, text_of, uid
from tests.e2e.test_budget import budget
from tests.fakes.fake_bfl import Behaviour


async def test_count_4_posts_one_validated_gallery_and_settles_each_image(harness):
    fake, bfl = harness.fake, harness.bfl
    asked = await harness.imagine(prompt="a red fox in the snow", count=4, wait=False)
    await asked.wait_acked()
    assert not asked.ephemeral and "4 images" in asked.original_message["content"]
    members = await posted(harness, asked)
    assert [m.status for m in members] == [JobStatus.DELIVERED] * 4
    message = asked.original_message
    assert message["flags"] & V2 and not message["content"] and not message["embeds"]
    items = gallery_items(message)
    assert len(items) == 4 and len(message["attachments"]) == 4
    assert all(
        item["description"] == "AI-generated with FLUX1.1 [pro] (Black Forest Labs): a red fox in the snow"
        for item in items
    )
    assert labels(message) == ["Use #1", "Use #2", "Use #3", "Use #4"]
    assert custom_ids(message) == [f"fluxcord:use:{m.id}:{n}" for n, m in enumerate(members, start=1)]
    assert "a red fox in the snow" not in "".join(custom_ids(message))
    assert len(gallery_posts(fake, asked)) == 1 and fake.schema_errors == []
    seeds = [s.body["seed"] for s in bfl.submits]
    assert len(bfl.submits) == 4 and len(set(seeds)) == 4 and sorted(seeds) == sorted(m.seed for m in members)
    ledger = await rows(harness, "SELECT kind, job_id, member_micros, member_images FROM ledger ORDER BY id")
    reserves = [r for r in ledger if r[0] == "reserve"]
    settles = [r for r in ledger if r[0] == "settle"]
    assert sorted(r[1] for r in reserves) == sorted(r[1] for r in settles) == sorted(m.id for m in members)
    assert all(r[3] == 0 for r in settles)  # each image settled and charged on its own
    spent = await harness.services.db.fetch_value("SELECT SUM(member_micros) FROM ledger", default=0)
    assert spent == 4 * 40_000
    assert "$0.16" in text_display(message) and "Requested by" in text_display(message)


async def test_forged_use_and_final_clicks_are_refused_with_no_call(harness):
    fake = harness.fake
    single = await harness.imagine(prompt="just one")
    group = await harness.imagine(prompt="two of them", count=2, wait=False)
    members = await posted(harness, group)
    submits = len(harness.bfl.submits)
    for custom_id, refusal in [
        (f"fluxcord:use:{single.id}:1", "no longer known"),  # not an image of a group
        (f"fluxcord:final:{members[0].id}:1", "not a draft"),
        ("fluxcord:use:987654321:2", "no longer known"),
    ]:
        forged = await fake.forge_click(group.original_message["id"], custom_id)
        await forged.wait_acked()
        assert forged.ephemeral and refusal in forged.original_message["content"], custom_id
    assert len(harness.bfl.submits) == submits


@pytest.mark.parametrize("bot_settings_overrides", [{"default_member_daily_usd": "0.15"}])
async def test_a_budget_for_3_of_4_images_reserves_nothing_and_says_so_privately(harness):
    refused = await harness.imagine(prompt="four foxes", count=4)
    assert refused.ephemeral
    text = harness.reply_text(refused)
    assert "these 4 images" in text and "$0.16" in text and "Nothing was reserved" in text, text
    assert await rows(harness, "SELECT * FROM ledger") == []
    assert await rows(harness, "SELECT * FROM jobs") == [] and harness.bfl.submits == []
    assert await harness.services.engine.groups.get(int(refused.id)) is None
    three = await harness.imagine(prompt="three foxes", count=3, wait=False)  # 3 × $0.04 fits
    assert [m.status for m in await posted(harness, three)] == [JobStatus.DELIVERED] * 3


async def test_one_image_failing_at_bfl_is_refunded_alone_and_the_other_three_are_delivered(harness):
    fake, bfl = harness.fake, harness.bfl
    bfl.script(Behaviour(), Behaviour(final_status="Error", final_http_status=503))
    asked = await harness.imagine(prompt="a lighthouse", count=4, wait=False)
    members = await posted(harness, asked)
    statuses = sorted(m.status.value for m in members)
    assert statuses == ["delivered", "delivered", "delivered", "failed"]
    [failed] = [m for m in members if m.status is JobStatus.FAILED]
    message = asked.original_message
    assert len(gallery_items(message)) == 3 and len(message["attachments"]) == 3
    assert "1 of 4 images failed: refunded." in text_display(message)
    assert labels(message) == ["Use #1", "Use #2", "Use #3"]
    assert f"fluxcord:use:{failed.id}:" not in " ".join(custom_ids(message))
    outcome = await rows(
        harness, "SELECT member_micros, member_images FROM ledger WHERE job_id = ? AND kind = 'settle'", (failed.id,)
    )
    assert outcome == [(-40_000, -1)]  # the member got the money and the image back
    spent = await harness.services.db.fetch_value("SELECT SUM(member_micros) FROM ledger", default=0)
    assert spent == 3 * 40_000 and len(gallery_posts(fake, asked)) == 1


async def test_use_2_gives_the_clicker_a_private_menu_for_image_2(harness, people):
    fake = harness.fake
    asked = await harness.imagine(prompt="a koi pond", count=3, wait=False)
    members = await posted(harness, asked)
    second = members[1]
    use = await fake.click(asked.original_message["id"], f"fluxcord:use:{second.id}:2", user=people["member"])
    await use.wait_acked()
    assert use.ephemeral and use.original_message["attachments"]
    [embed] = use.original_message["embeds"]
    assert embed["footer"]["text"].endswith(f"Job {second.id}") and "a koi pond" in embed["description"]
    assert custom_ids(use.original_message) == [
        f"fluxcord:{action}:{second.id}" for action in ("reroll", "vary", "edit", "details")
    ]
    await harness.services.engine.cache.delete(second.cache_key)  # made by another process, or evicted
    again = await fake.click(asked.original_message["id"], f"fluxcord:use:{second.id}:2")
    await again.wait_acked()
    assert again.ephemeral and again.original_message["attachments"]  # read back from the gallery message
    assert fake.attachment_bytes(again.original_message) == fake.attachment_bytes(use.original_message)
    details = await fake.click(use.original_message["id"], f"fluxcord:details:{second.id}", user=people["member"])
    await details.wait_acked()
    assert details.ephemeral and details.original_message["embeds"][0]["title"] == f"Job {second.id}"
    vary = await fake.click(use.original_message["id"], f"fluxcord:vary:{second.id}", user=people["member"])
    await harness.finished(vary)
    assert harness.bfl.submits[-1].body["prompt"] == "a koi pond" and "input_image" in harness.bfl.submits[-1].body
    assert await harness.services.db.fetch_value(
        "SELECT user_id FROM ledger WHERE job_id = ? AND kind = 'settle'", (int(vary.id),)
    ) == uid(people["member"])


async def test_cancel_on_the_group_message_cancels_its_queued_images_only(harness):
    fake, bfl = harness.fake, harness.bfl
    held = asyncio.Event()
    bfl.script(Behaviour(release=held), times=2)  # two run (the member's cap is 2); two wait in the queue
    asked = await harness.imagine(prompt="a slow mountain", count=4, wait=False)
    await fake.wait_for(lambda: len(bfl.submits) == 2, timeout=10)
    # One progress line for the group, its Cancel kept while some images still wait.
    await fake.wait_for(lambda: "Making 4 images" in asked.original_message["content"], timeout=10)
    assert "0 of 4 ready" in asked.original_message["content"]
    assert custom_ids(asked.original_message) == [f"fluxcord:cancel:{asked.id}"]
    cancel = await fake.click(asked.original_message["id"], f"fluxcord:cancel:{asked.id}")
    await cancel.wait_acked()
    # The line says so; the click's own answer edits nothing, so it can never land over the gallery.
    await fake.wait_for(lambda: "2 cancelled" in asked.original_message["content"], timeout=10)
    assert custom_ids(asked.original_message) == []  # nothing left to cancel
    held.set()
    members = await posted(harness, asked)
    assert sorted(m.status.value for m in members) == ["cancelled", "cancelled", "delivered", "delivered"]
    assert len(gallery_items(asked.original_message)) == 2 and len(bfl.submits) == 2
    releases = await rows(harness, "SELECT job_id FROM ledger WHERE kind = 'release'")
    assert sorted(r[0] for r in releases) == sorted(m.id for m in members if m.status is JobStatus.CANCELLED)


QUOTED = pytest.mark.parametrize(
    "bot_settings_overrides", [{"confirm_above_usd": "0.03", "default_member_daily_usd": "5"}]
)


async def generated(harness, asked, user=None):
    """Press Generate on a price confirmation (as ``user``); the Generate click."""
    await asked.wait_acked()
    assert asked.ephemeral
    go = next(c for c in custom_ids(asked.original_message) if c.startswith("fluxcord:go:"))
    return await harness.fake.click(asked.original_message["id"], go, user=user)


@QUOTED
async def test_draft_makes_4_klein_candidates_then_final_renders_one_on_the_chosen_model_with_its_seed(harness, people):
    fake, bfl = harness.fake, harness.bfl
    asked = await harness.imagine(prompt="a castle on a cliff", draft=True, model="flux-2-pro", wait=False)
    await asked.wait_acked()
    draft = build_request(model="flux-2-klein-4b", prompt="x", aspect_ratio=None, seed=1)
    total = 4 * draft.estimated_cost_micros
    assert f"These 4 FLUX.2 [klein] 4B images cost up to **${total / 1e6:.3f}".rstrip("0") in harness.reply_text(asked)
    assert bfl.submits == []  # quoted as 4× the price before anything is reserved
    go = await generated(harness, asked)
    members = await posted(harness, go)
    assert [s.model for s in bfl.submits] == ["flux-2-klein-4b"] * 4
    message = go.original_message
    assert labels(message) == ["Use #1", "Use #2", "Use #3", "Use #4", "Final #1", "Final #2", "Final #3", "Final #4"]
    clicker = people["member"]
    final = await fake.click(message["id"], f"fluxcord:final:{members[2].id}:3", user=clicker)
    await final.wait_acked()
    assert final.ephemeral and "FLUX.2 [pro] request costs up to **$0.03**" in final.original_message["content"]
    assert len(bfl.submits) == 4  # quoted first: nothing sent
    render = await generated(harness, final, user=clicker)
    await harness.finished(render)
    assert not render.ephemeral, harness.reply_text(render)
    last = bfl.submits[-1]
    assert last.model == "flux-2-pro" and last.body["seed"] == members[2].seed
    assert last.body["prompt"] == "a castle on a cliff" and "input_image" not in last.body
    assert await harness.services.db.fetch_value(
        "SELECT user_id FROM ledger WHERE job_id = ? AND kind = 'settle'", (int(render.id),)
    ) == uid(clicker)
    assert render.original_message["attachments"]


async def test_a_final_on_flux3_sends_the_draft_as_its_reference_image(harness):
    fake, bfl = harness.fake, harness.bfl
    asked = await harness.imagine(prompt="a tram in fog", draft=True, count=2, model="flux-3-image", wait=False)
    members = await posted(harness, asked)
    use = await fake.click(asked.original_message["id"], f"fluxcord:use:{members[0].id}:1")
    await use.wait_acked()
    assert f"fluxcord:final:{members[0].id}:1" in custom_ids(use.original_message)  # Final in the private menu too
    final = await fake.click(use.original_message["id"], f"fluxcord:final:{members[0].id}:1")
    await harness.finished(final)
    last = bfl.submits[-1]
    assert last.model == "flux-3-image" and "seed" not in last.body and len(last.body["images"]) == 1


async def _stalled(*_args: Any, **_kwargs: Any) -> None:
    """Stands in for a step the process never got to (it stopped first)."""


@pytest.mark.parametrize(
    "step",
    [
        "member_done",  # the last image finished; the process stopped before anyone claimed the posting
        "_post",  # the process claimed the posting, then stopped before posting
    ],
)
async def test_a_restart_before_the_group_is_posted_still_posts_it_once(
    discord_endpoints, fake_bfl, tmp_path, monkeypatch, step
):
    from bot.engine.group_delivery import GroupDelivery
    from tests.e2e.conftest import running_bot
    from tests.e2e.support import bot_settings

    fake = discord_endpoints
    settings = bot_settings(fake, fake_bfl, tmp_path)
    with monkeypatch.context() as patch:
        patch.setattr(GroupDelivery, step, _stalled)
        async with running_bot(fake, fake_bfl, settings) as harness:
            asked = await harness.imagine(prompt="a harbour at night", count=4, wait=False)
            groups = harness.services.engine.groups

            async def all_paid() -> bool:
                members = await groups.members(int(asked.id))
                return len(members) == 4 and all(m.status is JobStatus.DELIVERING for m in members)

            await harness.wait_until(all_paid)
            assert gallery_posts(fake, asked) == []
    async with running_bot(fake, fake_bfl, settings) as harness:
        members = await posted(harness, asked)
        assert [m.status for m in members] == [JobStatus.DELIVERED] * 4
        assert {m.result_message_id for m in members} == {int(asked.original_message["id"])}
        assert len(await rows(harness, "SELECT * FROM ledger WHERE kind = 'settle'")) == 4  # each settled once
        use = await fake.click(asked.original_message["id"], f"fluxcord:use:{members[3].id}:4")  # after the restart
        await use.wait_acked()
        assert use.ephemeral and use.original_message["embeds"][0]["footer"]["text"].endswith(f"Job {members[3].id}")
    assert len(gallery_posts(fake, asked)) == 1 and len(gallery_items(asked.original_message)) == 4
    assert len(fake_bfl.submits) == 4  # nothing was generated twice


async def test_a_private_group_whose_images_all_fail_says_so_and_refunds_each(harness):
    harness.bfl.default = Behaviour(final_status="Error", final_http_status=503)
    asked = await harness.imagine(prompt="a storm", count=2, private=True, wait=False)
    members = await posted(harness, asked)
    assert [m.status for m in members] == [JobStatus.FAILED] * 2
    assert asked.ephemeral and asked.original_message["content"] == (
        "❌ No image could be made. 2 of 2 images failed: refunded."
    )
    assert gallery_posts(harness.fake, asked) == []
    assert await harness.services.db.fetch_value("SELECT SUM(member_micros) FROM ledger", default=0) == 0


@pytest.mark.parametrize("bot_settings_overrides", [{"member_max_pending_jobs": 3}])
async def test_a_group_over_the_pending_cap_is_refused_whole(harness):
    refused = await harness.imagine(prompt="too many", count=4)
    assert refused.ephemeral and "asked for 4 more" in harness.reply_text(refused)
    assert await rows(harness, "SELECT * FROM ledger") == [] and harness.bfl.submits == []


async def test_moderators_choose_the_servers_draft_model_and_drafts_run_on_it(harness, people):
    member, mod = people["member"], people["mod"]
    shown = await budget(harness, "draft", member)
    assert "moderator" in text_of(shown).lower()  # members may not change it
    shown = await budget(harness, "draft", mod)
    assert shown.ephemeral and "`flux-2-klein-4b`" in text_of(shown) and "DRAFT_MODEL" in text_of(shown)
    chosen = await budget(harness, "draft", mod, model="flux-2-klein-9b")
    assert "✅" in text_of(chosen) and "`flux-2-klein-9b`" in text_of(chosen)
    audit = await rows(harness, "SELECT actor_id, action, old_value, new_value FROM audit_log ORDER BY id")
    assert audit[-1] == (uid(mod), "draft.set", None, "flux-2-klein-9b")

    drafted = await harness.imagine(prompt="a windmill", draft=True, count=2, user=member, wait=False)
    members = await posted(harness, drafted)
    assert {m.model for m in members} == {"flux-2-klein-9b"}
    assert [s.model for s in harness.bfl.submits] == ["flux-2-klein-9b"] * 2

    await budget(harness, "draft", mod, model="default")
    again = await harness.imagine(prompt="a mill pond", draft=True, count=1, user=member, wait=False)
    assert {m.model for m in await posted(harness, again)} == {"flux-2-klein-4b"}


async def test_use_works_the_moment_the_gallery_shows_before_its_images_are_marked_delivered(harness, monkeypatch):
    """The gallery is posted, then its images are recorded as delivered: a click in between still works."""
    from bot.engine.group_delivery import GroupDelivery

    fake = harness.fake
    recorded = asyncio.Event()
    real = GroupDelivery.mark_delivered

    async def held(self, group_id):
        await recorded.wait()
        return await real(self, group_id)

    monkeypatch.setattr(GroupDelivery, "mark_delivered", held)
    asked = await harness.imagine(prompt="two herons", count=2, wait=False)
    await fake.wait_for(lambda: gallery_posts(fake, asked), timeout=20)
    members = await harness.services.engine.groups.members(int(asked.id))
    assert [m.status for m in members] == [JobStatus.DELIVERING] * 2  # shown, not yet recorded
    use = await fake.click(asked.original_message["id"], f"fluxcord:use:{members[1].id}:2")
    await use.wait_acked()
    await fake.wait_for(lambda: use.original_message and not use.original_message.get("flags", 0) & 128)
    assert use.ephemeral and use.original_message["attachments"], text_of(use)
    assert labels(use.original_message) == ["Reroll", "Vary", "Edit", "Details"]
    recorded.set()
    assert [m.status for m in await posted(harness, asked)] == [JobStatus.DELIVERED] * 2


async def test_a_group_that_outlives_the_interaction_token_is_posted_in_the_channel(harness):
    fake = harness.fake
    gate = asyncio.Event()
    harness.bfl.script(Behaviour(release=gate), times=2)
    asked = await harness.imagine(prompt="two owls at night", count=2, wait=False)
    await asked.wait_acked()
    fake.clock.advance(901)  # the 15-minute token expires while BFL is still working
    gate.set()
    members = await posted(harness, asked)
    assert [m.status for m in members] == [JobStatus.DELIVERED] * 2
    [message] = [m for m in fake.messages.values() if m.get("attachments") and m["id"] != asked.original_message_id]
    requester = asked.payload["member"]["user"]["id"]
    assert message["flags"] & V2 and len(gallery_items(message)) == 2  # the same gallery, in the channel
    assert text_display(message).startswith(f"<@{requester}> your images are ready.")
    assert [m["id"] for m in message["mentions"]] == [requester]  # the requester is pinged, nobody else
    assert fake.schema_errors == []
    fake.take_violations(50027)  # the refused edit that made the bot fall back


async def _a_queued_group(harness):
    """A group of 2 waiting in the queue behind the member's 2 running images (held until the event is set)."""
    fake, bfl = harness.fake, harness.bfl
    held = asyncio.Event()
    bfl.default = Behaviour(release=held)
    busy = await harness.imagine(prompt="a slow river", count=2, wait=False)  # the member's 2 slots
    await fake.wait_for(lambda: len(bfl.submits) == 2, timeout=10)
    asked = await harness.imagine(prompt="a slow mountain", count=2, wait=False)  # both wait in the queue
    await asked.wait_acked()
    return held, busy, asked


async def test_a_group_cancelled_by_its_click_is_told_once_even_when_its_own_token_died(harness):
    """The Cancel click's answer is the group's last message: nothing more is posted in the channel.

    The group's own interaction token died (Discord killed it early): before, the engine also posted
    "Cancelled" in the channel, so the member was told twice.
    """
    fake = harness.fake
    held, busy, asked = await _a_queued_group(harness)
    fake.faults.script(  # the group's own token dies; the click's answer uses the click's token
        "update_original_webhook_message", Fault.dead_token(), times=10, match=lambda call: call.token == asked.token
    )
    cancel = await fake.click(asked.original_message["id"], f"fluxcord:cancel:{asked.id}")
    await cancel.wait_acked()
    await harness.group_settled(int(asked.id))
    held.set()
    await harness.group_settled(int(busy.id))
    channel_posts = [m for m in fake.messages.values() if m["content"].startswith(f"<@{asked.user_id}>")]
    assert channel_posts == []
    assert "Cancelled" in asked.original_message["content"]
    fake.take_violations(50027)


async def test_a_group_cancel_whose_answer_is_refused_twice_still_says_cancelled(harness):
    """The click's answer and the first edit of the group's own message are both refused (429s).

    Found by the soak: the group's message kept showing its queue place; the member never heard of the
    cancel. The group's message is edited again after a back-off, as a single job's last message is.
    """
    fake = harness.fake
    held, busy, asked = await _a_queued_group(harness)
    fake.faults.script("update_original_webhook_message", Fault.rate_limited(), times=2)
    cancel = await fake.click(asked.original_message["id"], f"fluxcord:cancel:{asked.id}")
    await cancel.wait_acked()
    await harness.group_settled(int(asked.id))
    await fake.wait_for(lambda: "Cancelled" in (asked.original_message["content"] or ""), timeout=20)
    held.set()
    await harness.group_settled(int(busy.id))
