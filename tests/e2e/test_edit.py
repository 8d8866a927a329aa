"""`/edit` and the "Edit with FLUX" message menu, end to end: Discord attachment in, FLUX edit out."""

from __future__ import annotations

import base64
import io
import struct
import zlib

from PIL import Image

from bot.engine.states import JobStatus
from tests.fakes.fake_bfl import FLUX3_STAGES, Behaviour


def jpeg_with_gps(size=(800, 600), colour=(30, 140, 60)) -> bytes:
    exif = Image.Exif()
    exif[0x010F] = "SecretCam"
    exif[0x8825] = {1: "N", 2: (48.0, 51.0, 29.0), 3: "E", 4: (2.0, 17.0, 40.0)}
    buffer = io.BytesIO()
    Image.new("RGB", size, colour).save(buffer, format="JPEG", exif=exif.tobytes())
    return buffer.getvalue()


def png(size=(640, 640), colour="red") -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, colour).save(buffer, format="PNG")
    return buffer.getvalue()


def fields(message):
    [embed] = message["embeds"]
    return {field["name"]: field["value"] for field in embed["fields"]}


async def edit(harness, *, user=None, **options):
    options.setdefault("prompt", "make it night")
    interaction = await harness.fake.slash("edit", options, user=user)
    await harness.finished(interaction)
    return interaction


async def test_edit_sends_a_stripped_base64_image_and_shows_the_source(harness):
    """An uploaded photo with GPS reaches BFL as base64 without EXIF; the card links to the source."""
    fake, bfl = harness.fake, harness.bfl
    upload = fake.make_attachment("holiday.jpg", jpeg_with_gps())
    interaction = await edit(harness, image=upload, prompt="make it night")
    [submit] = bfl.submits
    assert submit.model == "flux-2-pro"
    sent = base64.b64decode(submit.body["input_image"], validate=True)
    with Image.open(io.BytesIO(sent)) as image:
        assert image.size == (800, 600) and dict(image.getexif()) == {}
    assert b"SecretCam" not in sent
    assert (submit.body["width"], submit.body["height"]) == (1152, 864)  # 4:3, the nearest ratio to 800×600
    message = interaction.original_message
    embed = message["embeds"][0]
    assert embed["thumbnail"]["url"] == upload["url"]
    assert upload["url"] in fields(message)["Source"]
    job = await harness.services.jobs.get(int(interaction.id))
    assert job.status is JobStatus.DELIVERED
    assert job.params["input_image"] == submit.body["input_image"]  # durable: a restart can resubmit it
    # ~1 MP out + 0.48 MP in: the estimate bills the input as a whole extra megapixel (an upper bound);
    # BFL's reported cost (3 + 1.5 × 0.48 credits) settles.
    assert job.estimated_micros == 45_000 and job.cost_micros == 37_200


async def test_a_text_file_named_png_is_refused_privately_with_no_call_and_no_charge(harness):
    fake = harness.fake
    upload = fake.make_attachment("cat.png", b"just some text, not an image\n" * 20, "image/png")
    interaction = await edit(harness, image=upload)
    assert interaction.ephemeral or interaction.followups
    assert "isn't a PNG, JPEG, WebP or GIF" in harness.reply_text(interaction)
    assert harness.bfl.submits == []
    assert await harness.services.jobs.get(int(interaction.id)) is None
    assert await harness.services.db.fetch_value("SELECT COUNT(*) FROM ledger", default=0) == 0


async def test_a_png_bomb_is_refused_before_it_is_decoded(harness):
    header = struct.pack(">IIBBBBB", 30_000, 30_000, 8, 0, 0, 0, 0)
    ihdr = struct.pack(">I", 13) + b"IHDR" + header + struct.pack(">I", zlib.crc32(b"IHDR" + header))
    bomb = b"\x89PNG\r\n\x1a\n" + ihdr
    interaction = await edit(harness, image=harness.fake.make_attachment("bomb.png", bomb))
    assert "too large to process" in harness.reply_text(interaction)
    assert harness.bfl.submits == []


async def test_a_model_that_cannot_edit_is_refused_before_any_download(harness):
    fake = harness.fake
    upload = fake.make_attachment("a.png", png())
    interaction = await fake.slash("edit", {"image": upload, "prompt": "x", "model": "flux-3-image", "seed": 4})
    await harness.finished(interaction)
    assert "has no seed" in harness.reply_text(interaction)
    assert fake.attachment_downloads == [] or all(upload["id"] not in d for d in fake.attachment_downloads)
    assert harness.bfl.submits == []


async def test_flux3_edit_with_two_references_thinks_then_generates_and_settles_at_the_reported_cost(harness):
    """FLUX 3: `images` list, resolution tier, no seed; the fake validates the body against its schema."""
    fake, bfl = harness.fake, harness.bfl
    # 1 s per stage against the default 0.5 s poll grid: at least one poll lands in each stage, however
    # the grid sits against the task's start (at 0.5 s per stage a late grid could skip Generating)
    bfl.script(Behaviour(run_seconds=3.0, stages=FLUX3_STAGES, ready_cost=9.5))
    first, second = fake.make_attachment("a.png", png((300, 300))), fake.make_attachment("b.jpg", jpeg_with_gps())
    interaction = await fake.slash(
        "edit", {"image": first, "image2": second, "prompt": "put the cat in the garden", "model": "flux-3-image",
                 "resolution": "2k"},
    )  # fmt: skip
    await harness.finished(interaction)
    stages = [poll.task_status for poll in bfl.polls]
    assert "Reasoning" in stages and "Generating" in stages and stages[-1] == "Ready"  # kept polling through both
    [submit] = bfl.submits
    assert submit.model == "flux-3-image"
    assert len(submit.body["images"]) == 2 and "seed" not in submit.body and submit.body["resolution"] == "2k"
    assert submit.body["grounding"] is False
    job = await harness.services.jobs.get(int(interaction.id))
    assert job.estimated_micros == 100_000  # the 2k tier
    assert job.cost_micros == 95_000  # the Ready poll's cost
    assert fields(interaction.original_message)["Seed"].startswith("—")


async def test_the_edit_with_flux_menu_asks_for_a_prompt_then_edits_the_messages_image(harness):
    fake, bfl = harness.fake, harness.bfl
    posted = fake.post_user_message("look at my cat", files=[("cat.png", png((512, 384)))])
    opened = await fake.message_command("Edit with FLUX", posted["id"])
    await fake.wait_for(lambda: opened.modal is not None)
    [custom_id] = [key for key, (_m, it) in fake.modals.items() if it is opened]
    submitted = await fake.submit_modal(custom_id, _modal_values(opened.modal, "give it a hat", "flux-2-klein-9b"))
    await harness.finished(submitted)
    [submit] = bfl.submits
    assert submit.model == "flux-2-klein-9b"
    with Image.open(io.BytesIO(base64.b64decode(submit.body["input_image"]))) as image:
        assert image.size == (512, 384)
    assert submitted.original_message["embeds"][0]["thumbnail"]["url"] == posted["attachments"][0]["url"]


async def test_the_menu_on_a_message_without_an_image_or_with_a_foreign_embed_is_refused(harness):
    fake = harness.fake
    plain = fake.post_user_message("no picture here")
    refused = await fake.message_command("Edit with FLUX", plain["id"])
    await fake.wait_for(lambda: refused.acked)
    assert refused.ephemeral and "no image" in harness.reply_text(refused)
    foreign = fake.post_user_message(
        "",
        embeds=[
            {"type": "image", "image": {"url": "https://evil.example/x.png", "proxy_url": "https://evil.example/x.png"}}
        ],
    )
    refused = await fake.message_command("Edit with FLUX", foreign["id"])
    await fake.wait_for(lambda: refused.acked)
    assert refused.ephemeral and "only read images attached" in harness.reply_text(refused)
    assert harness.bfl.submits == []


def _modal_values(modal, prompt, model=None):
    inputs = []
    for row in modal["components"]:
        for comp in row.get("components") or [row.get("component") or {}]:
            if comp.get("custom_id"):
                inputs.append(comp["custom_id"])
    values = {inputs[0]: prompt}
    if model is not None:
        values[inputs[1]] = model
    return values
