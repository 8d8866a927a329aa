"""Disclosed as AI-generated, and honest about provenance (issue 21 item 7), through the real bot.

Every result card and every media-gallery item says it was made with FLUX (the model's name) and is
AI-generated (EU AI Act Art. 50). BFL's files carry signed C2PA provenance; the bot posts the original
bytes when they fit the upload limit and re-encodes only when they do not, and Details says which one
was posted (the original with its provenance, or a re-encoded copy: provenance lost, and why).
"""

from __future__ import annotations

import pytest

from tests.e2e.gallery import gallery_items, posted
from tests.fakes.fake_bfl import render_image

SMALL_UPLOADS = pytest.mark.parametrize("fake_discord_options", [{"attachment_size_limit": 20_000}])


def footer(message):
    return message["embeds"][0]["footer"]["text"]


async def details(harness, message, job_id):
    """Press Details on ``message`` for ``job_id``; its private embed as {field name: value}."""
    click = await harness.fake.click(message["id"], f"fluxcord:details:{job_id}")
    await click.wait_acked()
    assert click.ephemeral
    [embed] = click.original_message["embeds"]
    return {field["name"]: field["value"] for field in embed["fields"]}


async def test_a_result_card_says_it_is_ai_generated_with_the_models_name(harness):
    done = await harness.imagine(prompt="a lighthouse", model="flux-2-pro")
    text = footer(done.original_message)
    assert "AI-generated" in text and "FLUX.2 [pro]" in text
    assert text.endswith(f"Job {done.id}")


async def test_every_gallery_item_says_it_is_ai_generated_with_the_models_name(harness):
    asked = await harness.imagine(prompt="a red fox in the snow", count=3, model="flux-2-klein-4b", wait=False)
    await posted(harness, asked)
    items = gallery_items(asked.original_message)
    assert len(items) == 3
    for item in items:
        assert item["description"].startswith("AI-generated with FLUX.2 [klein] 4B")
        assert item["description"].endswith("a red fox in the snow")  # still the prompt as alt text


async def test_details_says_the_posted_file_is_bfls_original_with_its_provenance(harness):
    done = await harness.imagine(prompt="a lighthouse", model="flux-2-pro", aspect_ratio="1:1", seed=5)
    assert harness.fake.attachment_bytes(done.original_message, 0) == render_image(992, 992, "jpeg", 5)
    job = await harness.services.jobs.get(int(done.id))
    assert job.result_file == "original"
    shown = (await details(harness, done.original_message, done.id))["File"]
    assert "BFL's original" in shown and "C2PA" in shown and "re-encoded" not in shown


@SMALL_UPLOADS
async def test_a_reencoded_result_says_so_in_details(harness):
    done = await harness.imagine(prompt="a lighthouse", model="flux-2-pro", aspect_ratio="1:1", seed=5)
    assert len(render_image(992, 992, "jpeg", 5)) > 20_000  # BFL's file does not fit: re-encoded
    job = await harness.services.jobs.get(int(done.id))
    assert job.result_file.startswith("reencoded")
    shown = (await details(harness, done.original_message, done.id))["File"]
    assert "re-encoded copy" in shown and "C2PA provenance is lost" in shown
    assert "upload limit" in shown and "19.5 KiB" in shown  # and why: the limit it had to fit


@SMALL_UPLOADS
async def test_each_image_of_a_gallery_records_whether_it_was_reencoded(harness):
    fake = harness.fake
    asked = await harness.imagine(prompt="a red fox", count=2, model="flux-2-pro", aspect_ratio="1:1", wait=False)
    members = await posted(harness, asked)
    assert all(m.result_file.startswith("reencoded") for m in members)
    use = await fake.click(asked.original_message["id"], f"fluxcord:use:{members[1].id}:2")
    await use.wait_acked()
    assert "AI-generated" in footer(use.original_message)
    shown = (await details(harness, use.original_message, members[1].id))["File"]
    assert "re-encoded copy" in shown and "upload limit" in shown


async def test_a_small_gallery_keeps_every_original(harness):
    asked = await harness.imagine(prompt="a red fox", count=2, model="flux-2-klein-4b", wait=False)
    members = await posted(harness, asked)
    assert [m.result_file for m in members] == ["original", "original"]
