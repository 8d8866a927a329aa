"""Zoom out 1.5×, Zoom out 2× and the pan arrows: a result placed on BFL's outpainting canvas.

``POST /v1/flux-tools/outpainting-v1`` through the fake BFL (its closed schema, the 4 MP canvas and the
reference inside it checked) and the fake Discord: each button from a fresh result, a zoom of a zoom, a
21:9 result panned up within 4 MP, the price shown equal to the one reserved, the clicker pays, a
private result stays private, the stored prompt goes as guidance (so the server's blocked words apply),
and the buttons work after a restart.
"""

from __future__ import annotations

import base64
import io

import pytest
from PIL import Image

from bot.billing.money import format_usd
from tests.e2e.conftest import running_bot
from tests.e2e.test_safety import safety
from tests.e2e.test_sharpen import custom_ids, generate, reserved

OUTPAINT = "flux-tools/outpainting-v1"
MAX_CANVAS = 2048 * 2048
BUDGET = pytest.mark.parametrize(
    "bot_settings_overrides",
    [{"default_member_daily_usd": "20", "confirm_above_usd": "5"}],  # no confirmation step
)

# From a 1024×1024 FLUX1.1 [pro] result: (canvas, offsets, estimate in µ$: $0.10/started canvas MP + $0.015/input MP).
FRESH = {
    "zoom15": ((1536, 1536), (256, 256), 330_000),
    "zoom2": ((2048, 2048), (512, 512), 530_000),
    "pan_left": ((1536, 1024), (512, 0), 230_000),
    "pan_right": ((1536, 1024), (0, 0), 230_000),
    "pan_up": ((1024, 1536), (0, 512), 230_000),
    "pan_down": ((1024, 1536), (0, 0), 230_000),
}


def button_id(key, interaction):
    return f"fluxcord:{key}:{interaction.id}"


def size_of(data_b64_or_bytes):
    data = data_b64_or_bytes if isinstance(data_b64_or_bytes, bytes) else base64.b64decode(data_b64_or_bytes)
    with Image.open(io.BytesIO(data)) as image:
        return image.size


async def click(harness, key, result, *, user=None):
    clicked = await harness.fake.click(result.original_message["id"], button_id(key, result), user=user)
    await harness.finished(clicked)
    return clicked


def placed(body):
    """The canvas, the offsets and the reference's size of an outpainting body."""
    canvas = (body["width"], body["height"])
    return canvas, (body["reference_offset_x"], body["reference_offset_y"]), size_of(body["input_image"])


@BUDGET
@pytest.mark.parametrize("key", list(FRESH))
async def test_each_button_outpaints_a_fresh_result_on_its_canvas_and_the_clicker_pays(harness, key):
    fake, bfl, db = harness.fake, harness.bfl, harness.services.db
    first = await harness.imagine(prompt="a lighthouse at dusk", model="flux-pro-1.1")
    assert button_id(key, first) in custom_ids(first.original_message)
    clicker = fake.add_member(name="zoomer")
    done = await click(harness, key, first, user=clicker)

    sent = bfl.submits[-1]
    canvas, offsets, micros = FRESH[key]
    assert sent.model == OUTPAINT and placed(sent.body) == (canvas, offsets, (1024, 1024))
    assert sent.body["prompt"] == "a lighthouse at dusk" and "seed" not in sent.body  # the prompt as guidance
    assert size_of(fake.attachment_bytes(done.original_message)) == canvas  # the posted image: the canvas
    job = await harness.services.jobs.get(int(done.id))
    assert job.model == OUTPAINT and (job.width, job.height) == canvas and job.status.value == "delivered"
    assert job.estimated_micros == await reserved(harness, done) == micros
    assert job.cost_micros == bfl.charges[-1].micros <= micros  # settled at BFL's `cost`
    payer = await db.fetch_value("SELECT user_id FROM ledger WHERE job_id = ? AND kind = 'settle'", (job.id,))
    assert payer == int(clicker["user"]["id"])
    source = await harness.services.members.sources.get(job.id)
    assert source.kind == key and source.source_job_id == int(first.id)
    assert all(button_id(k, done) in custom_ids(done.original_message) for k in FRESH)  # its own buttons
    assert bfl.schema_errors == []


@BUDGET
async def test_zooming_out_twice_places_the_first_canvas_scaled_within_4_mp(harness):
    fake, bfl = harness.fake, harness.bfl
    first = await harness.imagine(prompt="a quiet harbour", model="flux-pro-1.1")
    once = await click(harness, "zoom15", first)
    assert placed(bfl.submits[-1].body) == ((1536, 1536), (256, 256), (1024, 1024))
    twice = await click(harness, "zoom15", once)
    # 1.5 × 1536 = 2304² is 5.3 MP: the whole picture is scaled to 2048², the 1536² result sent at 1365².
    assert placed(bfl.submits[-1].body) == ((2048, 2048), (341, 341), (1365, 1365))
    assert size_of(fake.attachment_bytes(twice.original_message)) == (2048, 2048)
    job = await harness.services.jobs.get(int(twice.id))
    assert job.estimated_micros == 530_000 and job.status.value == "delivered"  # 5 canvas MP + 2 input MP
    assert bfl.schema_errors == []


@BUDGET
async def test_a_21_9_flux3_2k_result_panned_up_stays_within_4_mp(harness):
    fake, bfl = harness.fake, harness.bfl
    first = await harness.imagine(prompt="a long coastline", model="flux-3-image", resolution="2k", aspect_ratio="21:9")
    posted = size_of(fake.attachment_bytes(first.original_message))
    assert posted == (3136, 1344)  # 4.2 MP: loaded at ≤ 4 MP, then placed
    done = await click(harness, "pan_up", first)
    canvas, (x, y), reference = placed(bfl.submits[-1].body)
    assert canvas[0] * canvas[1] <= MAX_CANVAS and canvas[0] % 16 == canvas[1] % 16 == 0
    assert canvas[1] >= 1.5 * reference[1] and y == canvas[1] - reference[1]  # half the image added above it
    assert x >= 0 and x + reference[0] <= canvas[0] and canvas[0] - reference[0] < 16  # full width kept
    assert reference[0] * 1344 == pytest.approx(reference[1] * 3136, rel=0.01)  # the ratio kept
    assert size_of(fake.attachment_bytes(done.original_message)) == canvas
    assert bfl.schema_errors == []


@pytest.mark.parametrize("bot_settings_overrides", [{"confirm_above_usd": "0", "default_member_daily_usd": "20"}])
async def test_the_price_shown_is_the_one_reserved(harness):
    fake, bfl = harness.fake, harness.bfl
    first = await generate(harness, await harness.imagine(prompt="a windmill", model="flux-pro-1.1", wait=False))
    asked = await fake.click(first.original_message["id"], button_id("zoom2", first))
    await fake.wait_for(lambda: any(c.startswith("fluxcord:go:") for c in custom_ids(asked.original_message or {})))
    assert asked.ephemeral and "FLUX Outpainting" in harness.reply_text(asked)
    assert bfl.submits[-1].model == "flux-pro-1.1"  # asked first: nothing reserved or sent yet
    done = await generate(harness, asked)
    job = await harness.services.jobs.get(int(done.id))
    assert job.estimated_micros == await reserved(harness, done) == 530_000
    assert f"**{format_usd(job.estimated_micros)}**" in harness.reply_text(asked)


@BUDGET
async def test_a_private_result_stays_private(harness):
    first = await harness.imagine(prompt="a secret garden", private=True)
    done = await click(harness, "pan_left", first)
    job = await harness.services.jobs.get(int(done.id))
    assert job.private and done.ephemeral and job.status.value == "delivered" and job.model == OUTPAINT


@BUDGET
async def test_a_blocked_word_in_the_stored_prompt_is_refused_with_no_call_and_no_charge(harness, people):
    db, bfl = harness.services.db, harness.bfl
    first = await harness.imagine(prompt="a red dragon over the bay", model="flux-pro-1.1", user=people["member"])
    await safety(harness, "add", people["mod"], group="words", words="dragon")
    submits, rows = len(bfl.submits), await db.fetch_value("SELECT COUNT(*) FROM ledger")
    refused = await click(harness, "zoom15", first, user=people["member"])
    assert refused.ephemeral and "dragon" in harness.reply_text(refused)
    assert len(bfl.submits) == submits and await db.fetch_value("SELECT COUNT(*) FROM ledger") == rows


@BUDGET
async def test_reroll_of_a_zoom_result_outpaints_the_same_canvas_again(harness):
    fake, bfl = harness.fake, harness.bfl
    zoomed = await click(harness, "zoom2", await harness.imagine(prompt="a red barn", model="flux-pro-1.1"))
    await harness.finished(await fake.click(zoomed.original_message["id"], f"fluxcord:reroll:{zoomed.id}"))
    zoom, reroll = bfl.submits[-2:]
    assert reroll.model == OUTPAINT and reroll.body == zoom.body  # no seed: the same body, a new image
    details = await fake.click(zoomed.original_message["id"], f"fluxcord:details:{zoomed.id}")
    await details.wait_acked()
    text = harness.reply_text(details)
    assert "FLUX Outpainting" in text and "Safety tolerance: 2" in text and "(zoom2)" in text


async def test_the_buttons_work_after_a_restart(discord_endpoints, fake_bfl, tmp_path):
    from tests.e2e.support import bot_settings

    fake = discord_endpoints
    settings = bot_settings(fake, fake_bfl, tmp_path, default_member_daily_usd="20", confirm_above_usd="5")
    async with running_bot(fake, fake_bfl, settings) as first_bot:
        first = await first_bot.imagine(prompt="a windmill", model="flux-pro-1.1")
    async with running_bot(fake, fake_bfl, settings) as harness:
        done = await click(harness, "pan_down", first)
        job = await harness.services.jobs.get(int(done.id))
        assert job.model == OUTPAINT and job.status.value == "delivered" and (job.width, job.height) == (1024, 1536)
    assert fake_bfl.schema_errors == []
