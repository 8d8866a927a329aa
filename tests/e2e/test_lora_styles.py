"""House LoRAs (issue 26 item 4): a style backed by a FLUX.2 [klein] LoRA, through the fake Discord and fake BFL.

`/style add lora:` stores it; `/imagine style:` runs on the style's `-finetuned` route with `finetune_id` and
`finetune_strength`, at the documented upper bound shown before and reserved; a LoRA BFL does not know ends with
a message naming the style, refunded; a bad strength changes nothing; Reroll keeps the LoRA after a restart.
"""

from __future__ import annotations

import pytest

from bot.billing.money import format_usd
from tests.e2e.conftest import running_bot
from tests.e2e.gallery import posted
from tests.e2e.support import rows, text_of
from tests.e2e.test_prefs_and_styles import command, fields, nothing_generated
from tests.e2e.test_sharpen import ALWAYS_CONFIRM, generate, reserved

ROUTE = "flux-2-klein-9b-finetuned"


async def lora_style(harness, mod, **options):
    answer = await command(harness, "style", mod, subcommand="add", **options)
    assert answer.ephemeral, text_of(answer)
    return answer


@ALWAYS_CONFIRM  # the price is shown first, so the one shown can be compared with the one reserved
async def test_a_lora_style_runs_on_its_route_with_the_lora_at_the_price_shown(harness, people, modlog):
    bfl, member, mod = harness.bfl, people["member"], people["mod"]
    added = await lora_style(harness, mod, name="Mascot", lora="acme-org/mascot_v2", strength=0.8)
    assert "Added the style **Mascot** (🧬 LoRA style: FLUX.2 [klein] 9B + LoRA, strength 0.8)" in text_of(added)
    assert "LoRA `acme-org/mascot_v2`" in text_of(added) and "at most $0.03" in text_of(added)  # to the moderator
    assert await rows(harness, "SELECT template, lora_id, lora_strength, lora_route FROM server_styles") == [
        ("{prompt}", "acme-org/mascot_v2", 0.8, ROUTE)
    ]
    listed = await command(harness, "style", member, subcommand="list")
    assert "**Mascot** (🧬 LoRA style: FLUX.2 [klein] 9B + LoRA, strength 0.8)" in text_of(listed)
    assert "acme-org" not in text_of(listed)  # members see that it is a LoRA style, not the id

    await command(harness, "prefs", member, model="flux-2-pro")  # a default model gives way to the style's route
    asked = await harness.imagine(prompt="a fox", style="mascot", user=member, wait=False)
    click = await generate(harness, asked, user=member)
    sent = bfl.submits[-1]
    assert sent.model == ROUTE and sent.body["prompt"] == "a fox"
    assert (sent.body["finetune_id"], sent.body["finetune_strength"]) == ("acme-org/mascot_v2", 0.8)
    assert (sent.body["width"], sent.body["height"], sent.body["safety_tolerance"]) == (992, 992, 2)
    job = await harness.services.jobs.get(int(click.id))
    assert job.status.value == "delivered" and job.style == "Mascot"
    assert job.estimated_micros == await reserved(harness, click) == 30_000  # the bound: first MP at $0.03
    assert f"**{format_usd(job.estimated_micros)}**" in harness.reply_text(asked)  # the price shown = reserved
    assert job.cost_micros == bfl.charges[-1].micros == 18_000  # settled at BFL's `cost` (the fake's 1.8 credits)
    assert fields(click.original_message)["Style"] == "Mascot"
    assert fields(click.original_message)["Model"] == "FLUX.2 [klein] 9B + LoRA"
    details = await harness.fake.click(click.original_message["id"], f"fluxcord:details:{click.id}", user=member)
    await details.wait_acked()
    assert "Safety tolerance: 2" in harness.reply_text(details)
    assert bfl.schema_errors == []


async def test_an_explicit_other_model_is_refused_and_its_base_or_4b_works(harness, people):
    bfl, member, mod = harness.bfl, people["member"], people["mod"]
    await lora_style(
        harness, mod, name="ink", lora="fluxcord-house", template="{prompt}, ink", base="flux-2-klein-4b-finetuned"
    )
    refused = await harness.imagine(prompt="a crane", style="ink", model="flux-2-pro", user=member)
    assert refused.ephemeral and "The style “ink” is a LoRA style" in harness.reply_text(refused)
    assert "Leave `model` empty" in harness.reply_text(refused)
    await nothing_generated(harness)
    await harness.imagine(prompt="a crane", style="ink", model="flux-2-klein-4b", user=member)
    sent = bfl.submits[-1]
    assert sent.model == "flux-2-klein-4b-finetuned" and sent.body["prompt"] == "a crane, ink"
    assert (sent.body["finetune_id"], sent.body["finetune_strength"]) == ("fluxcord-house", 1.0)  # default strength


async def test_a_lora_bfl_does_not_know_fails_naming_the_style_and_is_refunded(harness, people):
    bfl, member, mod = harness.bfl, people["member"], people["mod"]
    await lora_style(harness, mod, name="Ghost", lora="deleted-lora")
    failed = await harness.imagine(prompt="a ghost", style="Ghost", user=member)
    job = await harness.services.jobs.get(int(failed.id))
    assert job.status.value == "failed" and job.error == "finetuneunknown" and bfl.charges == []
    assert bfl.submits[-1].status == 404 and bfl.submits[-1].body["finetune_id"] == "deleted-lora"
    text = harness.reply_text(failed)
    assert "BFL does not know the LoRA of the style “Ghost”" in text and "Refunded" in text
    kinds = await rows(harness, "SELECT kind, member_micros FROM ledger WHERE job_id = ? ORDER BY id", (job.id,))
    assert kinds[0] == ("reserve", 30_000) and sum(m for _, m in kinds) == 0  # released: the ledger nets to zero
    assert not await harness.services.ledger.member_charged(job.id)


@pytest.mark.parametrize(
    ("options", "text"),
    [
        ({"lora": "fluxcord-house", "strength": 3}, "`strength` must be between 0 and 2"),
        ({"lora": "Not An Id"}, "is not a BFL finetune id"),
        ({"strength": 1.5, "template": "{prompt}, x"}, "`strength` and `base` go with `lora`"),
        ({}, "A style needs a `template`"),
    ],
)
async def test_a_bad_lora_style_is_refused_with_no_side_effect(harness, people, options, text):
    answer = await command(harness, "style", people["mod"], subcommand="add", strict=False, name="bad", **options)
    assert answer.ephemeral and text in text_of(answer)
    assert await rows(harness, "SELECT * FROM server_styles") == []
    assert await rows(harness, "SELECT * FROM audit_log") == []


async def test_reroll_of_a_lora_result_keeps_the_lora_after_a_restart(discord_endpoints, fake_bfl, tmp_path):
    from tests.e2e.support import bot_settings

    fake = discord_endpoints
    settings = bot_settings(fake, fake_bfl, tmp_path)
    async with running_bot(fake, fake_bfl, settings) as first_bot:
        await first_bot.services.members.styles.add(
            fake.guild_id, "Mascot", None, actor_id=1, lora="fluxcord-house", strength=1.25
        )
        first = await first_bot.imagine(prompt="a lighthouse", style="Mascot")
    async with running_bot(fake, fake_bfl, settings) as harness:
        click = await harness.fake.click(first.original_message["id"], f"fluxcord:reroll:{first.id}")
        await harness.finished(click)
        before, after = fake_bfl.submits[-2:]
        assert after.model == before.model == ROUTE and after.body["seed"] != before.body["seed"]
        assert (after.body["finetune_id"], after.body["finetune_strength"]) == ("fluxcord-house", 1.25)
        job = await harness.services.jobs.get(int(click.id))
        assert job.status.value == "delivered" and job.style == "Mascot"
    assert fake_bfl.schema_errors == []


async def test_a_lora_style_in_a_group_sends_the_lora_with_every_image(harness, people):
    await lora_style(harness, people["mod"], name="ink", lora="fluxcord-house", strength=0.5)
    options = {"prompt": "a crane", "style": "ink", "count": 2}
    members = await posted(harness, await harness.fake.slash("imagine", options, user=people["member"]))
    assert [m.style for m in members] == ["ink", "ink"] and len(harness.bfl.submits) == 2
    assert {(s.model, s.body["finetune_id"], s.body["finetune_strength"]) for s in harness.bfl.submits} == {
        (ROUTE, "fluxcord-house", 0.5)
    }
