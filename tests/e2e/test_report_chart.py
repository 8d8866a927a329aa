"""`/budget report` and `/quota` attach charts (PNG, with alt text), through the real bot and the fake Discord."""

import io

from PIL import Image

from bot.billing.charts import QUOTA_SIZE, SPEND_SIZE
from tests.e2e.support import MEMBER_PERMISSIONS, text_of
from tests.e2e.test_budget import budget


async def imagine_in(harness, member, channel):
    interaction = await harness.fake.slash("imagine", {"prompt": "a red fox"}, user=member, channel=int(channel["id"]))
    await harness.finished(interaction)
    assert interaction.original_message["attachments"], "the image was delivered"


def chart_of(harness, interaction):
    """The report's attachment: its PNG (checked) and its description (the alt text)."""
    [message] = [m for m in [interaction.original_message, *interaction.followups] if m and m.get("attachments")]
    [attachment] = message["attachments"]
    file = harness.fake.attachment_file(message, 0)
    image = Image.open(io.BytesIO(file.data))
    image.load()
    assert (image.format, file.filename) == ("PNG", "fluxcord-report.png")
    assert image.size == SPEND_SIZE
    assert attachment["description"]  # the alt text, as Discord stores it
    return image.convert("RGB").tobytes(), attachment["description"]


async def test_the_report_attaches_a_chart_that_follows_the_data_grouped_by_model_channel_and_role(harness, people):
    fake = harness.fake
    artists = fake.add_role("Artists")
    alice = fake.add_member(name="alice", roles=[artists], permissions=MEMBER_PERMISSIONS)
    bob = people["member"]
    art, general = fake.add_channel("art"), fake.add_channel("general")
    await imagine_in(harness, alice, art)
    await imagine_in(harness, bob, general)

    first, alt = chart_of(harness, await budget(harness, "report", people["mod"], period="day"))
    assert alt.startswith("Bar chart of this server's spend per day") and "by model:" in alt
    assert "total $0.08" in alt and "Alice $0.04" in alt and "Member $0.04" in alt
    assert "Server budget $5.00/day" in alt  # the default server budget, drawn as the line

    await imagine_in(harness, alice, art)
    second, alt = chart_of(harness, await budget(harness, "report", people["mod"], period="day"))
    assert second != first and "total $0.12" in alt  # one more image: another chart

    _, by_channel = chart_of(harness, await budget(harness, "report", people["mod"], period="day", by="channel"))
    assert "by channel: #art $0.08, #general $0.04" in by_channel
    _, by_role = chart_of(harness, await budget(harness, "report", people["mod"], period="week", by="role"))
    assert "by role: @Artists $0.08, @everyone $0.04" in by_role


async def test_quota_attaches_a_bar_of_each_limit_used(harness, people):
    member = people["member"]
    await harness.imagine(user=member)
    interaction = await harness.fake.slash("quota", user=member)
    await interaction.wait_for(lambda: (interaction.original_message or {}).get("attachments"))
    message = interaction.original_message
    assert message["embeds"][0]["title"] == "Your image quota"  # the answer keeps its embed
    file = harness.fake.attachment_file(message, 0)
    image = Image.open(io.BytesIO(file.data))
    assert image.format == "PNG" and image.size[0] == QUOTA_SIZE[0] and image.size[1] % QUOTA_SIZE[1] == 0
    alt = message["attachments"][0]["description"]
    assert "Your daily budget: $0.04 of $0.50 used (8%)" in alt
    assert "Your daily images: 1 of 10 images used (10%)" in alt


async def test_a_chart_that_cannot_be_drawn_leaves_the_report_without_it(harness, people, monkeypatch):
    import cogs._report_chart

    def broken(chart):
        raise RuntimeError("no fonts today")

    monkeypatch.setattr(cogs._report_chart, "render_spend_chart", broken)
    await harness.imagine(user=people["member"])
    report = await budget(harness, "report", people["mod"], period="day")
    assert "BFL balance" in text_of(report)
    assert not any(m.get("attachments") for m in [report.original_message, *report.followups] if m)
