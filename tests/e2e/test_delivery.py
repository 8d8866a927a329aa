"""Delivery is durable (issue 20): a made image is posted once, whatever Discord does, or refunded.

Through the fake Discord (its faults are Discord's own answers: 5xx, a 429 discord.py will not retry,
a dead interaction token, a connection dropped after a post took effect) and the fake BFL.
"""

import asyncio

from bot.engine.states import JobStatus
from tests.e2e.fake_discord import Fault
from tests.fakes.fake_bfl import Behaviour


async def _job(harness, interaction):
    return await harness.services.jobs.get(int(interaction.id))


async def _held_until_the_token_dies(harness, *, behaviour=None, **options):
    """A request whose task ends only after its 15-minute interaction token expired (``behaviour``: how)."""
    gate = asyncio.Event()
    harness.bfl.script(Behaviour(release=gate, **(behaviour or {})))
    interaction = await harness.imagine(wait=False, **options)
    await interaction.wait_acked()
    harness.fake.clock.advance(901)
    gate.set()
    return interaction


def _images(fake, *, exclude=()):
    return [m for m in fake.messages.values() if m.get("attachments") and m["id"] not in exclude]


async def test_a_post_discord_keeps_refusing_is_retried_and_shown_once(harness):
    fake = harness.fake
    # discord.py gives up on a 429 without the proxy headers, and on 5xx after its own retries.
    fake.faults.script("update_original_webhook_message", Fault.rate_limited(), times=2)
    interaction = await harness.imagine()
    assert interaction.original_message["attachments"]  # the image, not an error text
    job = await _job(harness, interaction)
    assert job.status is JobStatus.DELIVERED and job.delivery_attempts >= 1
    assert await harness.services.ledger.member_charged(job.id) is True
    assert len(harness.bfl.submits) == 1 and len(_images(fake)) == 1


async def test_a_channel_post_retried_after_a_lost_answer_appears_once(harness):
    fake = harness.fake
    interaction = await _held_until_the_token_dies(harness)
    # The post takes effect, its answer is lost: the bot cannot tell, and posts again (same nonce).
    fake.faults.script("create_message", Fault.disconnect(after=True))
    await harness.wait_until(lambda: _status(harness, interaction, JobStatus.DELIVERED))
    posted = _images(fake, exclude={interaction.original_message_id})
    assert len(posted) == 1 and posted[0]["content"].startswith(f"<@{interaction.user_id}>")
    assert any(call.nonce_reused for call in fake.calls if call.operation == "create_message")
    fake.take_violations(50027)


async def test_a_private_result_past_its_token_is_sent_by_direct_message(harness):
    fake = harness.fake
    interaction = await _held_until_the_token_dies(harness, private=True)
    await harness.wait_until(lambda: _status(harness, interaction, JobStatus.DELIVERED))
    [message] = _images(fake, exclude={interaction.original_message_id})
    channel = fake.channels[int(message["channel_id"])]
    assert channel["type"] == 1 and int(channel["recipients"][0]["id"]) == interaction.user_id  # a DM, not public
    assert await harness.services.ledger.member_charged(int(interaction.id)) is True
    fake.take_violations(50027)


async def test_a_private_result_that_can_be_shown_nowhere_is_refunded(harness):
    fake = harness.fake
    fake.closed_dms.add(int(fake.default_member["user"]["id"]))
    interaction = await _held_until_the_token_dies(harness, private=True)
    await harness.wait_until(lambda: _status(harness, interaction, JobStatus.FAILED))
    job = await _job(harness, interaction)
    assert job.error == "undeliverable" and not _images(fake)
    assert await harness.services.ledger.member_charged(job.id) is False  # BFL was paid; the member was not
    # Telling the member is tried too (the same dead token): nothing can reach them, and nothing is public.
    await fake.wait_for(lambda: sum(v.code == 50027 for v in fake.violations) >= 2)
    assert not [m for m in fake.messages.values() if m["id"] != interaction.original_message_id]
    fake.take_violations(50027)
    fake.take_violations(50007)


async def _status(harness, interaction, status):
    job = await _job(harness, interaction)
    return job is not None and job.status is status


async def test_a_result_whose_message_was_deleted_is_posted_in_the_channel(harness):
    """A moderator deleted the queue message: Discord answers 10008; the image goes to the channel."""
    fake = harness.fake
    gate = asyncio.Event()
    harness.bfl.script(Behaviour(release=gate))
    interaction = await harness.imagine(wait=False)
    await interaction.wait_acked()
    mid = interaction.original_message_id
    fake.deleted_messages[mid] = fake.messages.pop(mid)  # deleted in Discord while the image is made
    gate.set()
    await harness.wait_until(lambda: _status(harness, interaction, JobStatus.DELIVERED))
    [posted] = _images(fake)
    assert posted["content"].startswith(f"<@{interaction.user_id}>")
    assert await harness.services.ledger.member_charged(int(interaction.id)) is True
    assert fake.take_violations(10008)  # the edit of the deleted message, answered as Discord does


async def test_a_private_job_that_fails_past_its_token_is_told_by_direct_message(harness):
    """A private request that ends without an image after its token died: the member is told by DM."""
    fake = harness.fake
    interaction = await _held_until_the_token_dies(harness, behaviour={"final_status": "Error"}, private=True)
    await harness.wait_until(lambda: _status(harness, interaction, JobStatus.FAILED))
    await fake.wait_for(lambda: _dms_to(fake, interaction.user_id))
    [message] = _dms_to(fake, interaction.user_id)
    assert f"Job {interaction.id}" in message["content"] and "charged" in message["content"]
    assert not message.get("attachments")
    fake.take_violations(50027)


def _dms_to(fake, user_id):
    return [
        m
        for m in fake.messages.values()
        if fake.channels.get(int(m["channel_id"]), {}).get("type") == 1
        and int(fake.channels[int(m["channel_id"])]["recipients"][0]["id"]) == user_id
    ]


async def test_a_result_whose_edit_landed_unanswered_is_not_posted_again_once_the_token_dies(harness):
    """The image's edit reached Discord, its answer was lost, then the token died: it is shown once.

    Without reading the message back, the retry finds the token dead and posts the image again in the
    channel: the member sees it twice.
    """
    fake = harness.fake

    def with_the_image(call):
        return bool(call.files)

    fake.faults.script("update_original_webhook_message", Fault.disconnect(after=True), match=with_the_image)
    fake.faults.script("update_original_webhook_message", Fault.dead_token(), times=5, match=with_the_image)
    interaction = await harness.imagine(wait=False)
    await harness.wait_until(lambda: _status(harness, interaction, JobStatus.DELIVERED))
    assert interaction.original_message["attachments"]
    assert _images(fake, exclude={interaction.original_message_id}) == []  # not posted a second time


async def test_a_result_whose_edit_landed_unanswered_as_the_token_died_is_not_posted_again(harness):
    """The image's edit reached Discord, its answer was lost, and the token died before it could be read back.

    Found by the soak: the read-back (``GET @original``) met the dead token, so the image was posted
    again in the channel. The message is read through the bot's token by its id instead.
    """
    fake = harness.fake
    fake.faults.script("update_original_webhook_message", Fault.disconnect(after=True), match=lambda c: bool(c.files))
    fake.faults.script("get_original_webhook_message", Fault.dead_token())
    interaction = await harness.imagine(wait=False)
    await harness.wait_until(lambda: _status(harness, interaction, JobStatus.DELIVERED))
    assert interaction.original_message["attachments"]
    assert _images(fake, exclude={interaction.original_message_id}) == []  # not posted a second time
    job = await _job(harness, interaction)
    assert job.result_message_id == int(interaction.original_message_id)  # read back: the same message
