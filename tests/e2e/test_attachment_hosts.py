"""Where `/edit` and "Edit with FLUX" read input images from (issue 21 item 5), through the real bot.

Discord serves uploads from its CDN, another origin than its API; the fake does too (its own port,
or another loopback host with ``cdn_host``). The bot reads Discord's CDN hosts, the host of
``DISCORD_API_URL`` on any port when that points elsewhere, or the origin of ``DISCORD_CDN_URL``;
nothing else, and it refuses before any download, BFL call or charge.
"""

from __future__ import annotations

import io
from urllib.parse import urlsplit

import pytest
from PIL import Image

from bot.engine.states import JobStatus
from tests.e2e.support import rows

REFUSED = "only read images attached"


def png(size=(320, 240)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, "teal").save(buffer, format="PNG")
    return buffer.getvalue()


async def edit(harness, upload):
    interaction = await harness.fake.slash("edit", {"image": upload, "prompt": "make it night"})
    await harness.finished(interaction)
    return interaction


async def assert_refused_with_no_side_effect(harness, interaction, upload):
    assert interaction.ephemeral or interaction.followups
    assert REFUSED in harness.reply_text(interaction)
    assert upload["id"] not in harness.fake.attachment_downloads  # refused before any request to that host
    assert harness.bfl.submits == []
    assert await harness.services.jobs.get(int(interaction.id)) is None
    assert await rows(harness, "SELECT kind FROM ledger") == []


async def test_an_attachment_on_the_api_hosts_other_port_is_read(harness):
    """A local Discord whose CDN is its own port (another origin, as Discord's is): the edit runs."""
    fake = harness.fake
    upload = fake.make_attachment("cat.png", png())
    url, api = urlsplit(upload["url"]), urlsplit(fake.api_url)
    assert url.hostname == api.hostname and url.port != api.port
    interaction = await edit(harness, upload)
    assert upload["id"] in fake.attachment_downloads
    [submit] = harness.bfl.submits
    assert submit.body["input_image"]
    assert (await harness.services.jobs.get(int(interaction.id))).status is JobStatus.DELIVERED


async def test_the_menu_reads_a_messages_image_on_the_api_hosts_other_port(harness):
    fake = harness.fake
    posted = fake.post_user_message("my cat", files=[("cat.png", png())])
    opened = await fake.message_command("Edit with FLUX", posted["id"])
    await fake.wait_for(lambda: opened.modal is not None)  # not refused: the modal asks for a prompt
    [custom_id] = [key for key, (_m, it) in fake.modals.items() if it is opened]
    rows_ = opened.modal["components"]
    field = next(c["custom_id"] for row in rows_ for c in row.get("components") or [row.get("component") or {}])
    submitted = await fake.submit_modal(custom_id, {field: "give it a hat"})
    await harness.finished(submitted)
    assert len(harness.bfl.submits) == 1


@pytest.mark.parametrize("fake_discord_options", [{"cdn_host": "127.0.0.2"}])
async def test_an_attachment_on_another_host_is_refused_with_no_download_call_or_charge(harness):
    fake = harness.fake
    upload = fake.make_attachment("cat.png", png())
    assert urlsplit(upload["url"]).hostname == "127.0.0.2"
    interaction = await edit(harness, upload)
    await assert_refused_with_no_side_effect(harness, interaction, upload)
    posted = fake.post_user_message("my cat", files=[("cat.png", png())])
    menu = await fake.message_command("Edit with FLUX", posted["id"])
    await fake.wait_for(lambda: menu.acked)
    assert menu.modal is None and menu.ephemeral and REFUSED in harness.reply_text(menu)
    assert fake.attachment_downloads == []


@pytest.mark.parametrize("fake_discord_options", [{"cdn_host": "127.0.0.2"}])
class TestAnExplicitCdnUrl:
    """``DISCORD_CDN_URL``: a CDN on another host is read from that origin, and only from it."""

    @pytest.fixture
    def bot_settings_overrides(self, fake_discord):
        return {"discord_cdn_url": fake_discord.cdn_url}

    async def test_its_attachments_are_read(self, harness):
        upload = harness.fake.make_attachment("cat.png", png())
        interaction = await edit(harness, upload)
        assert upload["id"] in harness.fake.attachment_downloads
        assert (await harness.services.jobs.get(int(interaction.id))).status is JobStatus.DELIVERED

    async def test_another_port_of_that_host_is_refused(self, harness):
        upload = harness.fake.make_attachment("cat.png", png())
        parts = urlsplit(upload["url"])
        moved = dict(upload, url=parts._replace(netloc=f"{parts.hostname}:{parts.port + 1}").geturl())
        interaction = await edit(harness, moved)
        await assert_refused_with_no_side_effect(harness, interaction, upload)
