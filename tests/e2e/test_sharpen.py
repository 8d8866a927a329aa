"""Sharpen: a result sent to BFL's deblur tool (``POST /v1/flux-tools/deblur-v1``) at its own size.

A button made of a mapping from the stored request (``bot.models.sharpen``) and one component, like every
result button: priced (a documented upper bound: BFL lists no price) and confirmed like any request, the
clicker pays, the ledger settles at BFL's ``cost`` (above the estimate: flagged), a private result stays
private, a result over deblur's 4 MP is refused with no side effect, and it works after a restart.
"""

from __future__ import annotations

import base64
import io

import pytest
from PIL import Image

from bot.billing.money import format_usd
from tests.e2e.conftest import running_bot
from tests.fakes.fake_bfl import Behaviour

DEBLUR = "flux-tools/deblur-v1"
ALWAYS_CONFIRM = pytest.mark.parametrize("bot_settings_overrides", [{"confirm_above_usd": "0"}])


def sharpen_id(interaction):
    return f"fluxcord:sharpen:{interaction.id}"


def custom_ids(message):
    return [c["custom_id"] for row in message.get("components") or () for c in row["components"]]


async def sharpen(harness, result, *, user=None):
    click = await harness.fake.click(result.original_message["id"], sharpen_id(result), user=user)
    await harness.finished(click)
    return click


async def generate(harness, asked, *, user=None):
    """Press Generate under the price ``asked`` shows (once it shows it); the job's interaction, finished."""
    fake = harness.fake
    await fake.wait_for(lambda: any(c.startswith("fluxcord:go:") for c in custom_ids(asked.original_message or {})))
    go = next(c for c in custom_ids(asked.original_message) if c.startswith("fluxcord:go:"))
    return await harness.finished(await fake.click(asked.original_message["id"], go, user=user))


async def reserved(harness, interaction):
    """What the reservation of ``interaction``'s job holds (the member's share), in µ$."""
    return await harness.services.db.fetch_value(
        "SELECT member_micros FROM ledger WHERE job_id = ? AND kind = 'reserve'", (int(interaction.id),)
    )


@ALWAYS_CONFIRM  # every price is shown first, so the one shown can be compared with the one reserved
async def test_sharpen_sends_a_fresh_result_to_deblur_at_the_price_shown_and_the_clicker_pays(harness):
    fake, bfl, db = harness.fake, harness.bfl, harness.services.db
    first = await generate(
        harness, await harness.imagine(prompt="a lighthouse", model="flux-pro-1.1", seed=42, wait=False)
    )
    assert sharpen_id(first) in custom_ids(first.original_message)
    clicker = fake.add_member(name="sharpener")
    asked = await fake.click(first.original_message["id"], sharpen_id(first), user=clicker)
    await fake.wait_for(lambda: any(c.startswith("fluxcord:go:") for c in custom_ids(asked.original_message or {})))
    assert asked.ephemeral and "FLUX.2 Deblur" in harness.reply_text(asked)
    assert await db.fetch_value("SELECT COUNT(*) FROM ledger WHERE job_id = ?", (int(asked.id),)) == 0
    assert bfl.submits[-1].model == "flux-pro-1.1"  # asked first: nothing reserved or sent yet
    click = await generate(harness, asked, user=clicker)

    sent = bfl.submits[-1]
    assert sent.model == DEBLUR and set(sent.body) == {"image", "seed", "safety_tolerance", "output_format", "user"}
    assert sent.body["seed"] == 42 and sent.body["safety_tolerance"] == 2  # the source's seed; standard level
    with (
        Image.open(io.BytesIO(base64.b64decode(sent.body["image"]))) as got,
        Image.open(io.BytesIO(fake.attachment_bytes(first.original_message))) as posted,
    ):
        assert got.size == posted.size == (1024, 1024)  # the posted result, re-encoded
    job = await harness.services.jobs.get(int(click.id))
    assert job.model == DEBLUR and (job.width, job.height) == (1024, 1024) and job.status.value == "delivered"
    # 2 MP out + 2 MP in (1.05 MP each, rounded up) at FLUX.2 [pro]'s rates: $0.03 + 3 × $0.015.
    assert job.estimated_micros == await reserved(harness, click) == 75_000
    assert f"**{format_usd(job.estimated_micros)}**" in harness.reply_text(asked)  # the price shown = reserved
    payer = await db.fetch_value("SELECT user_id FROM ledger WHERE job_id = ? AND kind = 'settle'", (job.id,))
    assert payer == int(clicker["user"]["id"]) and job.cost_micros == bfl.charges[-1].micros  # BFL's `cost`
    source = await harness.services.members.sources.get(job.id)
    assert source.kind == "sharpen" and source.source_job_id == int(first.id)
    assert sharpen_id(click) in custom_ids(click.original_message)  # a new result, with its own buttons


async def test_sharpen_of_a_sharpen_result_and_its_details_show_deblurs_tolerance(harness):
    fake, bfl = harness.fake, harness.bfl
    first = await harness.imagine(prompt="a quiet harbour", model="flux-2-pro")
    once = await sharpen(harness, first)
    twice = await sharpen(harness, once)
    assert [s.model for s in bfl.submits] == ["flux-2-pro", DEBLUR, DEBLUR]
    job = await harness.services.jobs.get(int(twice.id))
    assert job.status.value == "delivered" and job.cost_micros <= job.estimated_micros
    details = await fake.click(twice.original_message["id"], f"fluxcord:details:{twice.id}")
    await details.wait_acked()
    text = harness.reply_text(details)
    assert "FLUX.2 Deblur" in text and "Safety tolerance: 2" in text and f"job {once.id} (sharpen)" in text
    assert "`image`" not in text and "`input images`=1" in text  # the image counted, never echoed


async def test_reroll_of_a_sharpen_result_sharpens_again_and_vary_renders_on_the_edit_model(harness):
    fake, bfl = harness.fake, harness.bfl
    sharpened = await sharpen(harness, await harness.imagine(prompt="a red barn", model="flux-2-pro"))
    message_id = sharpened.original_message["id"]
    for action in ("reroll", "vary"):
        await harness.finished(await fake.click(message_id, f"fluxcord:{action}:{sharpened.id}"))
    reroll, vary = bfl.submits[-2:]
    assert reroll.model == DEBLUR and reroll.body["image"] == bfl.submits[-3].body["image"]  # the same input
    assert reroll.body["seed"] != bfl.submits[-3].body["seed"]  # a new seed
    assert vary.model == "flux-2-pro" and vary.body["prompt"] == "a red barn"  # deblur is no model to vary on


async def test_sharpen_of_a_private_result_stays_private(harness):
    first = await harness.imagine(prompt="a secret garden", private=True)
    click = await sharpen(harness, first)
    job = await harness.services.jobs.get(int(click.id))
    assert job.private and job.status.value == "delivered" and harness.bfl.submits[-1].model == DEBLUR


@pytest.mark.parametrize("bot_settings_overrides", [{"default_member_daily_usd": "5", "confirm_above_usd": "1"}])
async def test_a_result_over_4_mp_is_refused_privately_with_no_call_and_no_charge(harness):
    db, bfl = harness.services.db, harness.bfl
    first = await harness.imagine(prompt="a cathedral", model="flux-3-image", resolution="4k")
    submits, rows = len(bfl.submits), await db.fetch_value("SELECT COUNT(*) FROM ledger")
    refused = await sharpen(harness, first)
    assert refused.ephemeral and "16.8 MP" in harness.reply_text(refused) and "4 MP" in harness.reply_text(refused)
    assert len(bfl.submits) == submits and await db.fetch_value("SELECT COUNT(*) FROM ledger") == rows
    assert await harness.services.jobs.get(int(refused.id)) is None


async def test_a_settlement_above_the_bound_is_flagged(harness):
    from bot.billing.reports import spend_report
    from bot.config import Period

    first = await harness.imagine(prompt="a fox", model="flux-2-klein-4b")
    harness.bfl.script(Behaviour(cost=9))  # 9 credits = $0.09, above the $0.045 bound of a 992×992 result
    click = await sharpen(harness, first)
    job = await harness.services.jobs.get(int(click.id))
    assert (job.estimated_micros, job.cost_micros) == (45_000, 90_000)  # settled at BFL's cost
    report = await spend_report(harness.services.db, job.guild_id, Period.MONTH, harness.services.engine.clock())
    assert report.over_estimate_jobs == 1


async def test_sharpen_works_after_a_restart(discord_endpoints, fake_bfl, tmp_path):
    from tests.e2e.support import bot_settings

    fake = discord_endpoints
    settings = bot_settings(fake, fake_bfl, tmp_path)
    async with running_bot(fake, fake_bfl, settings) as first_bot:
        first = await first_bot.imagine(prompt="a windmill", model="flux-pro-1.1")
    async with running_bot(fake, fake_bfl, settings) as harness:
        click = await sharpen(harness, first)
        job = await harness.services.jobs.get(int(click.id))
        assert job.model == DEBLUR and job.status.value == "delivered"
    assert fake_bfl.schema_errors == []
