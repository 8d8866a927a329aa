"""Grounding only where moderators allow it, and private edits: through the real bot and both fakes."""

from __future__ import annotations

from tests.e2e.test_edit import png
from tests.e2e.test_privacy import privately_done


async def test_grounding_is_refused_until_a_moderator_allows_it_then_sent(harness):
    fake, bfl = harness.fake, harness.bfl
    refused = await harness.imagine(prompt="today's skyline", model="flux-3-image", grounding=True)
    assert refused.ephemeral and "moderators have not allowed it" in harness.reply_text(refused)
    assert bfl.submits == []
    assert await harness.services.db.fetch_value("SELECT COUNT(*) FROM ledger") == 0

    await harness.services.server.safety.set_grounding(fake.guild_id, True, actor_id=1)
    allowed = await harness.imagine(prompt="today's skyline", model="flux-3-image", grounding=True)
    assert not allowed.ephemeral and allowed.original_message.get("attachments")
    [submit] = bfl.submits
    assert submit.model == "flux-3-image" and submit.body["grounding"] is True
    plain = await harness.imagine(prompt="a quiet lake", model="flux-3-image")
    assert plain.original_message.get("attachments")
    assert bfl.submits[-1].body["grounding"] is False  # FLUX 3 grounds by default: we always say no


async def test_a_private_edit_is_visible_only_to_the_member(harness):
    upload = harness.fake.make_attachment("cat.png", png())
    interaction = await harness.fake.slash("edit", {"image": upload, "prompt": "give it a hat", "private": True})
    message = await privately_done(harness, interaction)
    assert interaction.ephemeral and message["flags"] & 64  # the result itself is ephemeral
    assert len(harness.bfl.submits) == 1


async def test_vary_edit_and_details_on_an_erased_result_say_the_details_expired(harness):
    first = await harness.imagine(prompt="a lighthouse")
    message_id = first.original_message["id"]
    await harness.services.db.execute(
        "UPDATE jobs SET prompt = '', erased_at = 1 WHERE id = ?", (int(first.id),)
    )  # what the retention sweep leaves
    for action in ("vary", "details", "edit"):
        click = await harness.fake.click(message_id, f"fluxcord:{action}:{first.id}")
        await click.wait_acked()
        assert click.ephemeral and "expired" in harness.reply_text(click), action
    assert len(harness.bfl.submits) == 1
