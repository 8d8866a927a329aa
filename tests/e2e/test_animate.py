"""Animate and ``/animate``: a still and a motion prompt made a FLUX 3 video, end to end (issue 26 item 5).

Through the fake Discord and the fake BFL (``POST /v1/flux-3-video``): refused while the server's video switch is
off (the button opens no modal; nothing sent or charged), quoted when on (every video is above the default
confirmation threshold; the price shown is the reservation), an MP4 that fits posted as ``fluxcord-<job>.mp4``,
one over the upload limit sent to the member alone as a link naming its expiry (``se=``) while the card says so,
the button after a restart, and a private result's video staying private.
"""

from __future__ import annotations

import asyncio
import io
import re
from datetime import datetime

import pytest
from PIL import Image

from bot.billing.money import format_usd
from bot.engine.states import JobStatus
from bot.models.video import link_expiry
from tests.e2e.conftest import running_bot
from tests.fakes.fake_bfl import Behaviour

VIDEO = "flux-3-video"
RICH = pytest.mark.parametrize("bot_settings_overrides", [{"default_member_daily_usd": "20"}])
OVER_LIMIT = 11 * 1024 * 1024  # padding that puts a 5 s MP4 over Discord's default 10 MiB upload limit


def png(size=(640, 480)) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", size, (40, 90, 160)).save(out, "PNG")
    return out.getvalue()


def custom_ids(message):
    return [c["custom_id"] for row in message.get("components") or () for c in row["components"]]


def fields(message):
    return {f["name"]: f["value"] for embed in message.get("embeds") or () for f in embed.get("fields", [])}


async def switch_video(harness, allowed=True):
    await harness.services.server.safety.set_video(harness.fake.guild_id, allowed, actor_id=1)


async def asked_to_animate(harness, **options):
    fake = harness.fake
    options.setdefault("image", fake.make_attachment("still.png", png()))
    options.setdefault("prompt", "the waves roll in slowly")
    return await fake.slash("animate", options)


async def generate(harness, asked, *, user=None):
    """Press Generate under the price ``asked`` shows (once it shows it); the job's interaction, finished."""
    fake = harness.fake
    await fake.wait_for(lambda: any(c.startswith("fluxcord:go:") for c in custom_ids(asked.original_message or {})))
    go = next(c for c in custom_ids(asked.original_message) if c.startswith("fluxcord:go:"))
    return await harness.finished(await fake.click(asked.original_message["id"], go, user=user), timeout=30)


async def reserved(harness, interaction):
    return await harness.services.db.fetch_value(
        "SELECT member_micros FROM ledger WHERE job_id = ? AND kind = 'reserve'", (int(interaction.id),)
    )


async def open_modal(harness, result):
    fake = harness.fake
    opened = await fake.click(result.original_message["id"], f"fluxcord:animate:{result.id}")
    await fake.wait_for(lambda: opened.modal is not None)
    [custom_id] = [key for key, (_m, it) in fake.modals.items() if it is opened]
    inputs = [
        comp["custom_id"]
        for row in opened.modal["components"]
        for comp in (row.get("components") or [row.get("component") or {}])
        if comp.get("custom_id")
    ]
    return custom_id, inputs


async def animate_result(harness, result, motion="the sails fill", seconds="5", quality="hd"):
    custom_id, [motion_id, seconds_id, quality_id] = await open_modal(harness, result)
    values = {motion_id: motion, seconds_id: seconds, quality_id: quality}
    return await harness.fake.submit_modal(custom_id, values)


async def test_animate_is_refused_while_video_is_off_button_and_command(harness):
    fake, bfl, db = harness.fake, harness.bfl, harness.services.db
    first = await harness.imagine(prompt="a sailing boat")
    assert f"fluxcord:animate:{first.id}" in custom_ids(first.original_message)  # offered under every image
    submits, rows = len(bfl.submits), await db.fetch_value("SELECT COUNT(*) FROM ledger")
    click = await fake.click(first.original_message["id"], f"fluxcord:animate:{first.id}")
    await click.wait_acked()
    assert click.modal is None and click.ephemeral and "/safety video allowed:True" in harness.reply_text(click)
    command = await asked_to_animate(harness)
    await harness.finished(command)
    assert command.ephemeral and "Video (Animate) is off" in harness.reply_text(command)
    assert len(bfl.submits) == submits and await db.fetch_value("SELECT COUNT(*) FROM ledger") == rows
    assert await harness.services.jobs.get(int(command.id)) is None


@RICH
async def test_animate_is_quoted_at_the_reserved_price_and_a_fitting_mp4_is_attached(harness):
    fake, bfl = harness.fake, harness.bfl
    await switch_video(harness)
    asked = await asked_to_animate(harness, seconds=6, quality="fhd")
    done = await generate(harness, asked)
    assert "FLUX 3 Video" in harness.reply_text(asked)
    job = await harness.services.jobs.get(int(done.id))
    # 6 s at fhd, $0.29/s: $1.74, above the default $0.50 confirmation threshold, so asked first.
    assert job.estimated_micros == await reserved(harness, done) == 1_740_000
    assert f"**{format_usd(1_740_000)}**" in harness.reply_text(asked)
    sent = bfl.submits[-1]
    assert sent.model == VIDEO and sent.body["duration"] == 6 and sent.body["resolution"] == "fhd"
    assert sent.body["mode"] == "i2v" and sent.body["aspect_ratio"] == "4:3"  # 640×480's ratio
    message = done.original_message
    [attachment] = message["attachments"]
    assert attachment["filename"] == f"fluxcord-{job.id}.mp4" and fake.attachment_bytes(message)[4:8] == b"ftyp"
    card = fields(message)
    assert card["Length"] == "6 s" and card["Quality"].startswith("fhd (1440×1080")
    assert card["Cost"] == format_usd(job.cost_micros) and "Attached" in card["Video"]
    assert custom_ids(message) == [f"fluxcord:delete:{job.id}", f"fluxcord:details:{job.id}"]  # no image buttons
    assert job.status.value == "delivered" and await harness.services.engine.cache.get(job.cache_key) is None
    source = await harness.services.members.sources.get(job.id)
    assert source.kind == "animate"
    details = await fake.click(message["id"], f"fluxcord:details:{job.id}")
    await details.wait_acked()
    text = harness.reply_text(details)  # BFL applies at most 2 with an image: the effective value is shown
    assert "Safety tolerance: 2 (FLUX 3 Video with input images: at most 2)" in text
    assert "`duration`=6" in text and "`resolution`=fhd" in text and "`input images`=1" in text


@RICH
async def test_an_mp4_over_the_upload_limit_goes_to_the_member_as_a_private_link(harness):
    bfl = harness.bfl
    await switch_video(harness)
    bfl.script(Behaviour(video_padding=OVER_LIMIT))
    done = await generate(harness, await asked_to_animate(harness))
    job = await harness.services.jobs.get(int(done.id))
    assert job.status.value == "delivered" and done.original_message["attachments"] == []
    card = fields(done.original_message)["Video"]
    assert "Too large to attach" in card and "10 MiB" in card and f"<@{job.user_id}> privately" in card
    expiry = link_expiry(job.sample_url)
    assert expiry is not None and f"<t:{int(expiry.timestamp())}:f>" in card
    assert 7000 < (expiry - datetime.now(expiry.tzinfo)).total_seconds() <= 7200  # BFL's about 2 h
    [link] = [m for m in done.followups if job.sample_url in (m.get("content") or "")]
    assert link["flags"] & 64  # ephemeral: the member alone
    assert re.search(rf"valid until <t:{int(expiry.timestamp())}:f>", link["content"])


@RICH
async def test_the_animate_button_opens_its_modal_and_a_private_result_stays_private(harness):
    bfl = harness.bfl
    await switch_video(harness)
    first = await harness.imagine(prompt="a secret lagoon", private=True)
    submitted = await animate_result(harness, first, motion="ripples spread", seconds="5", quality="hd")
    done = await generate(harness, submitted)
    job = await harness.services.jobs.get(int(done.id))
    assert job.private and job.status.value == "delivered" and bfl.submits[-1].model == VIDEO
    assert bfl.submits[-1].body["prompt"] == "ripples spread" and job.estimated_micros == 850_000  # 5 s hd
    assert done.ephemeral and done.original_message["attachments"][0]["filename"].endswith(".mp4")
    source = await harness.services.members.sources.get(job.id)
    assert source.kind == "animate" and source.source_job_id == int(first.id)


async def test_the_animate_button_works_after_a_restart(discord_endpoints, fake_bfl, tmp_path):
    from tests.e2e.support import bot_settings

    fake = discord_endpoints
    settings = bot_settings(fake, fake_bfl, tmp_path, default_member_daily_usd="20")
    async with running_bot(fake, fake_bfl, settings) as first_bot:
        first = await first_bot.imagine(prompt="a windmill", model="flux-pro-1.1")
        await switch_video(first_bot)
    async with running_bot(fake, fake_bfl, settings) as harness:
        done = await generate(harness, await animate_result(harness, first))
        job = await harness.services.jobs.get(int(done.id))
        assert job.model == VIDEO and job.status.value == "delivered"
    assert fake_bfl.schema_errors == []


@RICH
@pytest.mark.parametrize("dms_open", [True, False])
async def test_a_public_video_past_its_token_goes_to_the_channel_and_its_link_by_dm(harness, dms_open):
    """A queued video can outlast the 15-minute token: the card in the channel, the link to the member alone.

    With the member's DMs closed the link reaches nobody, and the card says so (never the link itself).
    """
    fake, bfl = harness.fake, harness.bfl
    if not dms_open:
        fake.closed_dms.add(int(fake.default_member["user"]["id"]))
    await switch_video(harness)
    gate = asyncio.Event()
    bfl.script(Behaviour(release=gate, video_padding=OVER_LIMIT))
    asked = await asked_to_animate(harness)
    await fake.wait_for(lambda: any(c.startswith("fluxcord:go:") for c in custom_ids(asked.original_message or {})))
    go = next(c for c in custom_ids(asked.original_message) if c.startswith("fluxcord:go:"))
    click = await fake.click(asked.original_message["id"], go)
    await click.wait_acked()
    fake.clock.advance(901)
    gate.set()
    job = await harness.wait_state(int(click.id), JobStatus.DELIVERED, timeout=30)
    dms = [m for m in fake.messages.values() if fake.channels[int(m["channel_id"])]["type"] == 1]
    links = [m for m in dms if job.sample_url in (m.get("content") or "")]
    [card] = [m for m in fake.messages.values() if m.get("embeds") and m["id"] != click.original_message_id]
    assert card["content"].startswith(f"<@{job.user_id}>") and int(card["channel_id"]) == fake.channel_id
    assert job.sample_url not in str(card)  # the link is never public
    if dms_open:
        [link] = links
        assert int(fake.channels[int(link["channel_id"])]["recipients"][0]["id"]) == job.user_id
        assert "privately" in fields(card)["Video"]
    else:
        assert links == [] and "DMs are closed, so the link could not be sent" in fields(card)["Video"]
        fake.take_violations(50007)
    fake.take_violations(50027)


@pytest.mark.parametrize(
    "bot_settings_overrides",
    [{"default_member_daily_usd": "20", "default_server_daily_usd": "50", "confirm_above_usd": "10"}],
)
async def test_a_sixth_video_waits_for_one_of_the_five_slots(harness):
    fake, bfl = harness.fake, harness.bfl
    await switch_video(harness)
    gate = asyncio.Event()
    bfl.script(Behaviour(release=gate), times=6)
    members = [fake.add_member(name=f"animator{n}") for n in range(6)]
    upload = fake.make_attachment("still.png", png())
    asked = []
    for member in members:
        asked.append(await fake.slash("animate", {"image": upload, "prompt": "leaves drift"}, user=member))
        await asked[-1].wait_acked()
    await fake.wait_for(lambda: len(bfl.submits) == 5)
    jobs = [await harness.services.jobs.get(int(it.id)) for it in asked]
    assert None not in jobs, [harness.reply_text(it) for it in asked]
    assert sorted(job.status.value for job in jobs).count("queued") == 1  # one waits for a slot, none refused
    gate.set()
    for it in asked:
        assert (await harness.job_settled(it, timeout=30)).status is JobStatus.DELIVERED
    assert bfl.max_active_seen_by_model[VIDEO] == 5 and all(s.status == 200 for s in bfl.submits)
