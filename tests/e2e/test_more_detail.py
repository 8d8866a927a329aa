"""More detail: a result re-rendered on FLUX 3 at the next tier (2k, then 4k) with itself as the reference.

A button made of a mapping from the stored request (``bot.models.more_detail``) and one component, like
every result button: the clicker pays, a private result stays private, the top tier is refused with no
side effect.
"""

from __future__ import annotations

import base64
import io

from PIL import Image

from tests.e2e.conftest import running_bot
from tests.e2e.test_buttons import RICH

DETAIL_TEXT = "More detail"


def detail_id(interaction):
    return f"fluxcord:detail:{interaction.id}"


def custom_ids(message):
    return [c["custom_id"] for row in message["components"] for c in row["components"]]


async def more_detail(harness, result, *, user=None):
    click = await harness.fake.click(result.original_message["id"], detail_id(result), user=user)
    await harness.finished(click)
    return click


async def test_more_detail_renders_a_flux1_result_at_2k_with_the_result_as_reference_and_the_clicker_pays(harness):
    fake, bfl = harness.fake, harness.bfl
    first = await harness.imagine(prompt="a lighthouse at dusk", model="flux-pro-1.1")
    assert detail_id(first) in custom_ids(first.original_message)
    clicker = fake.add_member(name="detailer")
    click = await more_detail(harness, first, user=clicker)
    sent = bfl.submits[-1]
    assert sent.model == "flux-3-image" and sent.body["resolution"] == "2k"
    assert sent.body["prompt"] == "a lighthouse at dusk"
    [reference] = sent.body["images"]
    with (
        Image.open(io.BytesIO(base64.b64decode(reference))) as got,
        Image.open(io.BytesIO(fake.attachment_bytes(first.original_message))) as posted,
    ):
        assert got.size == posted.size  # the posted result, re-encoded
    job = await harness.services.jobs.get(int(click.id))
    assert job.model == "flux-3-image" and job.estimated_micros == 100_000  # the 2k tier's price
    payer = await harness.services.db.fetch_value(
        "SELECT user_id FROM ledger WHERE job_id = ? AND kind = 'settle'", (int(click.id),)
    )
    assert payer == int(clicker["user"]["id"])
    source = await harness.services.members.sources.get(int(click.id))
    assert source.kind == "detail" and source.source_job_id == int(first.id)
    assert detail_id(click) in custom_ids(click.original_message)  # carry on again: 2k → 4k


@RICH  # $0.607 must be within the budget to be offered at all
async def test_more_detail_goes_from_2k_to_4k_priced_first_and_no_further(harness):
    fake, bfl, db = harness.fake, harness.bfl, harness.services.db
    first = await harness.imagine(prompt="a cathedral", model="flux-3-image", resolution="2k")
    submits = len(bfl.submits)
    asked = await fake.click(first.original_message["id"], detail_id(first))
    await asked.wait_acked()
    await fake.wait_for(lambda: asked.original_message is not None)
    price = await db.fetch_value("SELECT COUNT(*) FROM ledger WHERE job_id = ?", (int(asked.id),))
    assert asked.ephemeral and "$0.607" in harness.reply_text(asked) and price == 0  # the 4k price, asked first
    assert len(bfl.submits) == submits
    go = next(c for c in custom_ids(asked.original_message) if c.startswith("fluxcord:go:"))
    click = await fake.click(asked.original_message["id"], go)
    await harness.finished(click)
    assert bfl.submits[-1].body["resolution"] == "4k" and len(bfl.submits[-1].body["images"]) == 1
    job = await harness.services.jobs.get(int(click.id))
    assert job.status.value == "delivered" and job.estimated_micros == 607_000  # what was shown is what was reserved
    submits, ledger_rows = len(bfl.submits), await db.fetch_value("SELECT COUNT(*) FROM ledger")
    top = await more_detail(harness, click)
    assert "4k" in harness.reply_text(top) and top.ephemeral
    assert len(bfl.submits) == submits  # refused before anything: no BFL call, no reservation
    assert await db.fetch_value("SELECT COUNT(*) FROM ledger") == ledger_rows


async def test_more_detail_of_a_private_result_stays_private(harness):
    first = await harness.imagine(prompt="a secret garden", private=True)
    click = await more_detail(harness, first)
    job = await harness.services.jobs.get(int(click.id))
    assert job.private and job.status.value == "delivered"
    assert harness.bfl.submits[-1].model == "flux-3-image"


async def test_more_detail_works_after_a_restart(discord_endpoints, fake_bfl, tmp_path):
    from tests.e2e.support import bot_settings

    fake = discord_endpoints
    settings = bot_settings(fake, fake_bfl, tmp_path)
    async with running_bot(fake, fake_bfl, settings) as first_bot:
        first = await first_bot.imagine(prompt="a windmill", model="flux-pro-1.1")
    async with running_bot(fake, fake_bfl, settings) as harness:
        click = await more_detail(harness, first)
        job = await harness.services.jobs.get(int(click.id))
        assert job.model == "flux-3-image" and job.status.value == "delivered"


async def test_a_reroll_of_a_private_result_made_from_an_image_stays_private(harness):
    """Reroll of a job with input images (an edit's, a carry-on's) lost its privacy: it was posted publicly."""
    first = await harness.imagine(prompt="a secret garden", private=True)
    detailed = await harness.services.jobs.get(int((await more_detail(harness, first)).id))
    assert detailed.private and detailed.status.value == "delivered"
    click = await harness.fake.click(detailed.result_message_id, f"fluxcord:reroll:{detailed.id}")
    await harness.finished(click)
    rerolled = await harness.services.jobs.get(int(click.id))
    assert rerolled.private and rerolled.status.value == "delivered"
    assert harness.bfl.submits[-1].model == "flux-3-image"
