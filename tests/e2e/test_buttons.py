"""The buttons under every result: Reroll, Vary, Edit, Delete, Details; after restarts; forged clicks."""

from __future__ import annotations

import base64
import io

import pytest
from PIL import Image

from bot.billing.ledger import ReserveTerms
from bot.engine.store import NewJob
from bot.models import build_request
from tests.e2e.conftest import running_bot
from tests.fakes.fake_bfl import FLUX3_STAGES, Behaviour

ACTIONS = [
    ["reroll", "vary", "edit", "delete", "details"],
    ["detail", "sharpen", "zoom15", "zoom2", "animate"],  # Animate: a modal, after the video switch
    ["pan_left", "pan_right", "pan_up", "pan_down"],
]  # row by row


def buttons(message):
    return [c["custom_id"] for row in message["components"] for c in row["components"]]


async def paid_by(harness, interaction):
    return await harness.services.db.fetch_value(
        "SELECT user_id FROM ledger WHERE job_id = ? AND kind = 'settle'", (int(interaction.id),)
    )


def embed_fields(message):
    [embed] = message["embeds"]
    return {f["name"]: f["value"] for f in embed.get("fields", [])}, embed


async def test_every_result_has_its_buttons_holding_only_ids(harness):
    first = await harness.imagine(prompt="a secret koi pond")
    rows = [[c["custom_id"] for c in row["components"]] for row in first.original_message["components"]]
    assert rows == [[f"fluxcord:{a}:{first.id}" for a in actions] for actions in ACTIONS]
    assert all("koi" not in b for b in buttons(first.original_message))


async def test_vary_uses_the_result_as_input_with_the_same_prompt_and_the_clicker_pays(harness):
    fake, bfl = harness.fake, harness.bfl
    first = await harness.imagine(prompt="a lighthouse at dusk")
    clicker = fake.add_member(name="varier")
    click = await fake.click(first.original_message["id"], f"fluxcord:vary:{first.id}", user=clicker)
    await harness.finished(click)
    vary = bfl.submits[-1]
    assert vary.model == "flux-2-pro" and vary.body["prompt"] == "a lighthouse at dusk"
    result = fake.attachment_bytes(first.original_message)
    with (
        Image.open(io.BytesIO(base64.b64decode(vary.body["input_image"]))) as sent,
        Image.open(io.BytesIO(result)) as r,
    ):
        assert sent.size == r.size  # the posted result, re-encoded
    assert await paid_by(harness, click) == int(clicker["user"]["id"])
    assert click.original_message["embeds"][0]["thumbnail"]["url"] == first.original_message["attachments"][0]["url"]


async def test_edit_button_opens_a_modal_then_edits_the_result(harness):
    fake, bfl = harness.fake, harness.bfl
    first = await harness.imagine(prompt="a red bicycle")
    opened = await fake.click(first.original_message["id"], f"fluxcord:edit:{first.id}")
    await fake.wait_for(lambda: opened.modal is not None)
    [custom_id] = [key for key, (_m, it) in fake.modals.items() if it is opened]
    inputs = [
        comp["custom_id"]
        for row in opened.modal["components"]
        for comp in (row.get("components") or [row.get("component") or {}])
        if comp.get("custom_id")
    ]
    submitted = await fake.submit_modal(custom_id, {inputs[0]: "make it blue"})
    await harness.finished(submitted)
    edit = bfl.submits[-1]
    assert edit.model == "flux-2-pro" and edit.body["prompt"] == "make it blue" and "input_image" in edit.body


async def test_delete_refuses_others_and_removes_message_and_cached_bytes_for_the_requester(harness):
    fake = harness.fake
    first = await harness.imagine(prompt="a quiet harbour")
    mid = first.original_message["id"]
    job = await harness.services.jobs.get(int(first.id))
    cache = harness.services.engine.cache
    assert await cache.get(job.cache_key) is not None
    stranger = fake.add_member(name="stranger")
    refused = await fake.click(mid, f"fluxcord:delete:{first.id}", user=stranger)
    await refused.wait_acked()
    assert refused.ephemeral and "Only the member who asked" in refused.original_message["content"]
    assert mid in fake.messages
    deleted = await fake.click(mid, f"fluxcord:delete:{first.id}")
    await deleted.wait_acked()
    assert deleted.ephemeral
    await fake.wait_for(lambda: mid not in fake.messages)
    # The bytes and the record go before the message does.
    assert await cache.get(job.cache_key) is None
    assert await harness.services.db.fetch_value("SELECT COUNT(*) FROM job_deletions WHERE job_id = ?", (job.id,)) == 1


async def test_details_for_flux3_shows_the_expanded_prompt_and_every_option(harness):
    fake, bfl = harness.fake, harness.bfl
    bfl.script(Behaviour(run_seconds=0.3, stages=FLUX3_STAGES))
    first = await harness.imagine(prompt="a fox in a library", model="flux-3-image", resolution="1.5k")
    click = await fake.click(first.original_message["id"], f"fluxcord:details:{first.id}")
    await click.wait_acked()
    assert click.ephemeral
    fields, embed = embed_fields(click.original_message)
    assert embed["title"] == f"Job {first.id}" and "a fox in a library" in embed["description"]
    assert "flux-3-image" in fields["Model"] and fields["Seed"].startswith("—")
    assert "`resolution`=1.5k" in fields["Options"] and "`grounding`=False" in fields["Options"]
    assert fields["Safety tolerance"] == "2"  # the server's standard level, as sent
    assert "expanded by FLUX 3" in fields["Prompt as the model expanded it"]
    assert "generated in" in fields["Timings"] and fields["Cost"].startswith("$")


async def test_reroll_of_flux3_resubmits_without_a_seed(harness):
    fake, bfl = harness.fake, harness.bfl
    first = await harness.imagine(prompt="a tower", model="flux-3-image")
    click = await fake.click(first.original_message["id"], f"fluxcord:reroll:{first.id}")
    await harness.finished(click)
    assert [s.model for s in bfl.submits] == ["flux-3-image", "flux-3-image"]
    assert "seed" not in bfl.submits[1].body and click.original_message["attachments"]


async def test_a_forged_click_for_another_servers_job_is_refused_with_no_call(harness):
    fake = harness.fake
    request = build_request(model="flux-pro-1.1", prompt="someone else's prompt", aspect_ratio="1:1", seed=1)
    other = NewJob(
        id=4242, guild_id=fake.guild_id + 1, channel_id=1, user_id=2, model=request.model.key, prompt=request.prompt,
        params=request.bfl_payload(), seed=1, width=request.width, height=request.height,
        cache_key=request.cache_key(), aspect_ratio="1:1", estimated_micros=40_000,
    )  # fmt: skip
    await harness.services.jobs.admit(other, ReserveTerms([], 10), cached=False, acked=False)
    mine = await harness.imagine(prompt="mine")
    submits = len(harness.bfl.submits)
    for action in [a for row in ACTIONS for a in row]:
        forged = await fake.forge_click(mine.original_message["id"], f"fluxcord:{action}:4242")
        await forged.wait_acked()
        assert forged.ephemeral and "no longer known" in forged.original_message["content"], action
        assert "someone else" not in str(forged.original_message)
    assert len(harness.bfl.submits) == submits


async def test_every_button_works_after_a_restart(discord_endpoints, fake_bfl, tmp_path):
    from tests.e2e.support import bot_settings

    fake = discord_endpoints
    settings = bot_settings(fake, fake_bfl, tmp_path)
    async with running_bot(fake, fake_bfl, settings) as first_bot:
        first = await first_bot.imagine(prompt="a windmill")
    message_id = first.original_message["id"]
    async with running_bot(fake, fake_bfl, settings) as harness:
        details = await fake.click(message_id, f"fluxcord:details:{first.id}")
        await details.wait_acked()
        assert details.ephemeral and details.original_message["embeds"][0]["title"] == f"Job {first.id}"
        for action in ("reroll", "vary"):
            click = await fake.click(message_id, f"fluxcord:{action}:{first.id}")
            await harness.finished(click)
            assert click.original_message["attachments"], action
        edit = await fake.click(message_id, f"fluxcord:edit:{first.id}")
        await fake.wait_for(lambda: edit.modal is not None)
        delete = await fake.click(message_id, f"fluxcord:delete:{first.id}")
        await delete.wait_acked()
        await fake.wait_for(lambda: message_id not in fake.messages)
    assert [s.model for s in fake_bfl.submits] == ["flux-pro-1.1", "flux-pro-1.1", "flux-2-pro"]


# -- price before spending ------------------------------------------------------------------------


RICH = pytest.mark.parametrize("bot_settings_overrides", [{"default_member_daily_usd": "5"}])


@RICH
async def test_an_expensive_request_is_confirmed_first_and_nothing_is_reserved_until_generate(harness):
    fake, bfl, db = harness.fake, harness.bfl, harness.services.db
    asked = await fake.slash("imagine", {"prompt": "a cathedral", "model": "flux-3-image", "resolution": "4k"})
    await asked.wait_acked()
    assert asked.ephemeral
    text = asked.original_message["content"]
    assert "$0.607" in text and "$5.00 left of your daily budget" in text  # the price and what is left of the budget
    assert bfl.submits == [] and await db.fetch_value("SELECT COUNT(*) FROM ledger", default=0) == 0
    assert await harness.services.jobs.get(int(asked.id)) is None
    go, no = buttons(asked.original_message)
    assert go.startswith("fluxcord:go:") and no.startswith("fluxcord:no:")
    stranger = fake.add_member(name="stranger")
    refused = await fake.click(asked.original_message["id"], go, user=stranger)
    await refused.wait_acked()
    assert refused.ephemeral and "Only the member who asked" in refused.original_message["content"]
    bfl.script(Behaviour(ready_cost=60.7))
    generate = await fake.click(asked.original_message["id"], go)
    await harness.finished(generate)
    assert not generate.ephemeral, harness.reply_text(generate)
    [submit] = bfl.submits
    assert submit.body["resolution"] == "4k"
    job = await harness.services.jobs.get(int(generate.id))
    assert job.estimated_micros == 607_000 and job.cost_micros == 607_000
    again = await fake.click(asked.original_message["id"], go)  # a second Generate does nothing twice
    await again.wait_acked()
    assert again.ephemeral and "expired" in again.original_message["content"] and len(bfl.submits) == 1


@RICH  # $0.607 must be within the budget to be offered at all
async def test_cancel_or_an_expired_confirmation_sends_nothing(harness, monkeypatch):
    import cogs._confirm

    fake, bfl = harness.fake, harness.bfl
    asked = await fake.slash("imagine", {"prompt": "a cathedral", "model": "flux-3-image", "resolution": "4k"})
    await asked.wait_acked()
    _go, no = buttons(asked.original_message)
    cancelled = await fake.click(asked.original_message["id"], no)
    await cancelled.wait_acked()
    assert "nothing was reserved" in asked.original_message["content"]
    expiring = await fake.slash("imagine", {"prompt": "a cathedral", "model": "flux-3-image", "resolution": "4k"})
    await expiring.wait_acked()
    go, _no = buttons(expiring.original_message)
    monkeypatch.setattr(cogs._confirm, "CONFIRM_TTL_SECONDS", -1.0)
    late = await fake.click(expiring.original_message["id"], go)
    await late.wait_acked()
    assert late.ephemeral and "expired" in late.original_message["content"]
    assert bfl.submits == []


@RICH
async def test_an_expensive_edit_is_confirmed_first_too(harness):
    fake, bfl = harness.fake, harness.bfl
    upload = fake.make_attachment("a.png", _png())
    asked = await fake.slash("edit", {"image": upload, "prompt": "x", "model": "flux-3-image", "resolution": "4k"})
    await asked.wait_acked()
    assert asked.ephemeral and "$0.607" in harness.reply_text(asked) and bfl.submits == []
    message = asked.followups[-1] if asked.followups else asked.original_message
    go, _ = buttons(message)
    generate = await fake.click(message["id"], go)
    await harness.finished(generate)
    assert [s.model for s in bfl.submits] == ["flux-3-image"] and len(bfl.submits[0].body["images"]) == 1
    assert generate.original_message["embeds"][0]["thumbnail"]["url"] == upload["url"]


def _png() -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (400, 300), "purple").save(buffer, format="PNG")
    return buffer.getvalue()
