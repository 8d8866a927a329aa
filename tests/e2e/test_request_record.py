"""Reroll derives its request from the job's stored record, never from the BFL payload; old rows still work."""

from __future__ import annotations

import json

from tests.e2e.test_edit import edit, png


async def test_a_reroll_sends_the_stored_request_even_when_the_payload_differs(harness):
    fake, bfl = harness.fake, harness.bfl
    first = await harness.imagine(prompt="a paper boat", model="flux-dev", steps=20, aspect_ratio="3:2")
    sent = bfl.submits[-1].body
    tampered = {**sent, "steps": 45, "guidance": 4.5, "prompt": "not the request"}
    await harness.services.db.execute("UPDATE jobs SET params = ? WHERE id = ?", (json.dumps(tampered), first.id))
    click = await fake.click(first.original_message["id"], f"fluxcord:reroll:{first.id}")
    await harness.finished(click)
    again = bfl.submits[-1].body
    assert (again["steps"], again["prompt"], "guidance" in again) == (20, "a paper boat", False)
    assert (again["width"], again["height"]) == (sent["width"], sent["height"]) and again["seed"] != sent["seed"]


async def test_a_job_written_before_records_were_kept_still_rerolls(harness):
    fake, bfl = harness.fake, harness.bfl
    first = await harness.imagine(prompt="a paper boat", model="flux-dev", steps=20)
    await harness.services.db.execute("UPDATE jobs SET request = NULL WHERE id = ?", (first.id,))
    click = await fake.click(first.original_message["id"], f"fluxcord:reroll:{first.id}")
    await harness.finished(click)
    assert bfl.submits[-1].model == "flux-dev" and bfl.submits[-1].body["steps"] == 20
    assert bfl.submits[-1].body["prompt"] == "a paper boat" and click.original_message["attachments"]


async def test_an_edit_written_before_records_were_kept_rerolls_with_its_input_image(harness):
    fake, bfl = harness.fake, harness.bfl
    first = await edit(harness, image=fake.make_attachment("a.png", png((320, 256))), model="flux-2-pro")
    sent = bfl.submits[-1].body
    await harness.services.db.execute("UPDATE jobs SET request = NULL WHERE id = ?", (first.id,))
    click = await fake.click(first.original_message["id"], f"fluxcord:reroll:{first.id}")
    await harness.finished(click)
    again = bfl.submits[-1].body
    assert again["input_image"] == sent["input_image"] and again["prompt"] == sent["prompt"]
    assert again["seed"] != sent["seed"] and click.original_message["attachments"]


async def test_vary_takes_its_prompt_and_model_from_the_stored_record_not_the_columns(harness):
    fake, bfl = harness.fake, harness.bfl
    first = await harness.imagine(prompt="a lighthouse at dusk", model="flux-2-flex")
    await harness.services.db.execute(
        "UPDATE jobs SET prompt = 'not the request', model = 'flux-dev' WHERE id = ?", (first.id,)
    )
    click = await fake.click(first.original_message["id"], f"fluxcord:vary:{first.id}")
    await harness.finished(click)
    vary = bfl.submits[-1]  # flux-2-flex edits, so Vary stays on it; flux-dev would have become flux-2-pro
    assert vary.model == "flux-2-flex" and vary.body["prompt"] == "a lighthouse at dusk" and vary.body["input_image"]


async def test_vary_of_a_job_written_before_records_were_kept_still_works(harness):
    fake, bfl = harness.fake, harness.bfl
    first = await harness.imagine(prompt="a lighthouse at dusk", model="flux-2-flex")
    await harness.services.db.execute("UPDATE jobs SET request = NULL WHERE id = ?", (first.id,))
    click = await fake.click(first.original_message["id"], f"fluxcord:vary:{first.id}")
    await harness.finished(click)
    assert bfl.submits[-1].model == "flux-2-flex" and bfl.submits[-1].body["prompt"] == "a lighthouse at dusk"
