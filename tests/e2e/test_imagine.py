"""`/imagine` through the real discord.py client, the fake Discord and the fake BFL."""

import asyncio
import io

import pytest
from PIL import Image

from bot.billing.ledger import ReserveTerms
from bot.billing.money import credits_to_micros
from bot.engine.states import JobStatus
from tests.fakes.fake_bfl import Behaviour


def decoded_attachment(fake, message):
    data = fake.attachment_bytes(message, 0)
    image = Image.open(io.BytesIO(data))
    image.load()
    return image


def fields(message):
    [embed] = message["embeds"]
    return {field["name"]: field["value"] for field in embed["fields"]}


async def test_commands_are_synced_once_and_named_as_promised(harness):
    fake = harness.fake
    assert len(fake.command_syncs) == 1
    assert set(fake.command_syncs[0].names) == {
        "imagine", "quota", "budget", "safety", "privacy", "status", "edit", "history", "prefs", "style", "gift", "animate",
        "Edit with FLUX",
    }  # fmt: skip
    imagine = next(c for c in fake.global_commands.values() if c["name"] == "imagine")
    options = {o["name"]: o for o in imagine["options"]}
    assert list(options) == [
        "prompt", "model", "aspect_ratio", "seed", "steps", "guidance", "raw", "prompt_upsampling",
        "resolution", "grounding", "private", "style", "count", "draft",
    ]  # fmt: skip
    assert (options["count"]["min_value"], options["count"]["max_value"]) == (1, 4)
    assert [c["value"] for c in options["aspect_ratio"]["choices"]] == [
        "1:1", "16:9", "9:16", "4:3", "3:4", "3:2", "2:3", "21:9", "9:21"
    ]  # fmt: skip
    assert {"flux-pro-1.1", "flux-pro-1.1-ultra", "flux-dev", "flux-2-pro", "flux-2-klein-4b", "flux-kontext-pro"} <= {
        c["value"] for c in options["model"]["choices"]
    }


async def test_imagine_posts_a_real_image_of_the_requested_aspect_ratio(harness):
    fake, bfl = harness.fake, harness.bfl
    bfl.script(Behaviour(pending_polls=2))
    interaction = await harness.imagine(prompt="a lighthouse at dusk", aspect_ratio="16:9")
    assert interaction.response_type == 4 and not interaction.ephemeral  # answered publicly, with the queue place
    assert interaction.ack_latency < 3
    message = interaction.original_message
    image = decoded_attachment(fake, message)
    assert abs(image.width / image.height - 16 / 9) < 0.02
    info = fields(message)
    assert info["Model"] == "FLUX1.1 [pro]" and info["Cost"] == "$0.04"
    assert info["Size"].startswith(f"{image.width}×{image.height}")
    seed = int(info["Seed"])
    assert bfl.submits[0].body["seed"] == seed  # the seed we picked is the one shown
    assert message["embeds"][0]["image"]["url"] == f"attachment://{message['attachments'][0]['filename']}"
    await harness.wait_until(lambda: _status_is(harness, interaction, JobStatus.DELIVERED))
    job = await harness.services.jobs.get(int(interaction.id))
    assert job.result_message_id == int(message["id"]) and job.cost_micros == 40_000


async def _status_is(harness, interaction, status):
    job = await harness.services.jobs.get(int(interaction.id))
    return job is not None and job.status is status


async def test_progress_is_shown_while_generating(harness):
    gate = asyncio.Event()
    harness.bfl.script(Behaviour(release=gate))
    interaction = await harness.imagine(wait=False)
    await harness.fake.wait_for(
        lambda: "Generating with FLUX1.1 [pro]" in ((interaction.original_message or {}).get("content") or "")
    )
    gate.set()
    await harness.finished(interaction)
    assert interaction.original_message["attachments"]


async def test_prompt_mentions_are_never_pings(harness):
    prompt = "@everyone look <@&123456> and @here"
    interaction = await harness.imagine(prompt=prompt)
    message = interaction.original_message
    assert not message.get("mention_everyone") and not message.get("mention_roles")
    assert "@\u200beveryone" in message["embeds"][0]["description"]
    assert harness.bfl.submits[0].body["prompt"] == prompt  # BFL gets the prompt as written


@pytest.mark.parametrize(
    ("options", "text"),
    [
        ({"steps": 20}, "doesn't support `steps`"),
        ({"model": "flux-dev", "guidance": 9.0}, "`guidance` must be between"),
        ({"prompt": "   "}, "prompt is empty"),
        ({"model": "flux-2-pro", "raw": True}, "doesn't support `raw`"),
    ],
)
async def test_bad_options_are_refused_privately_without_any_call(harness, options, text):
    interaction = await harness.imagine(**options)
    assert interaction.response_type == 4 and interaction.ephemeral
    assert text in interaction.original_message["content"]
    assert harness.bfl.submits == []
    assert await harness.services.db.fetch_value("SELECT COUNT(*) FROM ledger") == 0


@pytest.mark.parametrize(
    ("behaviour", "text", "charged"),
    [
        (Behaviour(submit_status=402), "temporarily unavailable", False),
        (Behaviour(submit_status=403), "temporarily unavailable", False),
        (Behaviour(final_status="Request Moderated"), "Your prompt was blocked", True),
        (Behaviour(final_status="Content Moderated"), "generated image was blocked", True),
        (Behaviour(final_status="Error"), "could not generate", False),
        (Behaviour(final_status="Task not found"), "could not generate", False),
        (Behaviour(delivery_ttl=0), "could not generate", False),
    ],
)
async def test_bfl_failures_as_the_member_sees_them(harness, behaviour, text, charged):
    harness.bfl.script(behaviour)
    interaction = await harness.imagine()
    content = interaction.original_message["content"]
    assert text in content
    assert ("not been charged" in content) is (not charged)
    assert not interaction.original_message.get("attachments")
    assert "test-bfl-key" not in content and "402" not in content


async def test_identical_request_with_a_seed_comes_from_the_cache(harness):
    first = await harness.imagine(prompt="a cat", seed=1234)
    second = await harness.imagine(prompt="a cat", seed=1234)
    assert len(harness.bfl.submits) == 1
    assert fields(second.original_message)["Cost"] == "free (from cache)"
    assert harness.fake.attachment_bytes(second.original_message, 0) == harness.fake.attachment_bytes(
        first.original_message, 0
    )


@pytest.mark.parametrize("fake_discord_options", [{"attachment_size_limit": 20_000}])
async def test_an_image_over_the_upload_limit_is_reencoded_to_fit(harness):
    from tests.fakes.fake_bfl import render_image

    interaction = await harness.imagine(model="flux-2-pro", aspect_ratio="1:1", seed=5)
    original = render_image(992, 992, "jpeg", 5)
    assert len(original) > 20_000  # what BFL delivered would be refused by Discord (413)
    data = harness.fake.attachment_bytes(interaction.original_message, 0)
    assert len(data) <= 20_000
    image = Image.open(io.BytesIO(data))
    image.load()
    assert image.width == image.height


async def test_fifty_concurrent_requests_from_ten_members_are_all_acknowledged_in_time(harness):
    fake = harness.fake
    credits_before = harness.bfl.credits
    members = [fake.add_member(name=f"member{i}") for i in range(10)]
    interactions = await asyncio.gather(
        *(harness.imagine(user=members[i % 10], prompt=f"picture {i}", wait=False) for i in range(50))
    )
    await asyncio.gather(*(harness.finished(it, timeout=60) for it in interactions))
    assert all(it.ack_latency is not None and it.ack_latency < 3 for it in interactions)
    assert all(it.original_message["attachments"] for it in interactions)
    assert len(harness.bfl.submits) == 50
    assert harness.bfl.max_active_seen <= 24
    assert await harness.services.ledger.verify_counters() == []
    # The ledger reconciles with what BFL charged, to the micro-dollar.
    spent = await harness.services.db.fetch_value("SELECT SUM(server_micros) FROM ledger")
    assert spent == credits_to_micros(credits_before - harness.bfl.credits) == 50 * 40_000


async def test_a_job_that_outlives_the_interaction_token_is_posted_in_the_channel(harness):
    fake = harness.fake
    gate = asyncio.Event()
    harness.bfl.script(Behaviour(release=gate))
    interaction = await harness.imagine(wait=False)
    await interaction.wait_acked()
    fake.clock.advance(901)  # the 15-minute token expires while BFL is still working
    gate.set()
    assert (await harness.job_settled(interaction)).status is JobStatus.DELIVERED
    posted = [m for m in fake.messages.values() if m.get("attachments") and m["id"] != interaction.original_message_id]
    assert posted[0]["content"].startswith(f"<@{interaction.payload['member']['user']['id']}>")
    assert posted[0]["mentions"]  # the requester is pinged, nobody else
    fake.take_violations(50027)  # the refused edit that made the bot fall back


async def test_a_job_left_unfinished_by_a_previous_run_is_delivered_to_the_channel(harness):
    from bot.engine.engine import Requester
    from bot.engine.states import Event
    from bot.models import build_request

    fake, services = harness.fake, harness.services
    member = fake.add_member(name="sleeper")
    user_id = int(member["user"]["id"])
    request = build_request(model=None, prompt="an owl", aspect_ratio="1:1", seed=9)
    job_id = 4242
    # The state a crash leaves: reserved, submitted to BFL, task id recorded, never settled; no token.
    policy = services.settings.refund_policy
    await services.jobs.admit(
        _new_job(request, job_id, fake, user_id), ReserveTerms([], 10), cached=False, acked=True,
    )  # fmt: skip
    assert await services.jobs.advance(job_id, JobStatus.QUEUED, JobStatus.SUBMITTING) is not None
    task = await services.ops.bfl.submit(request.model.key, request.bfl_payload())
    await services.jobs.apply(job_id, Event.ACCEPTED, policy, bfl_task_id=task.id, polling_url=task.polling_url)

    assert await services.engine.reconcile() == 1
    await harness.wait_until(lambda: _status_is(harness, discord_id(job_id), JobStatus.DELIVERED))
    [message] = [m for m in fake.messages.values() if m.get("attachments")]
    assert message["content"].startswith(f"<@{user_id}>")
    assert [int(u["id"]) for u in message["mentions"]] == [user_id]
    assert await services.ledger.outcome(job_id) == "settle"
    assert len(harness.bfl.submits) == 1
    assert Requester  # the same dataclass the cog fills from an interaction


def discord_id(job_id):
    class _Id:
        id = str(job_id)

    return _Id()


def _new_job(request, job_id, fake, user_id):
    from bot.engine.store import NewJob

    return NewJob(
        id=job_id, guild_id=fake.guild_id, channel_id=fake.channel_id, user_id=user_id, model=request.model.key,
        prompt=request.prompt, params=request.bfl_payload(), seed=request.seed, width=request.width,
        height=request.height, cache_key=request.cache_key(), aspect_ratio="1:1",
        estimated_micros=request.estimated_cost_micros,
    )  # fmt: skip


async def test_reroll_button_repeats_the_request_with_a_new_seed_for_the_clicker(harness):
    fake = harness.fake
    first = await harness.imagine(prompt="a koi pond", aspect_ratio="3:2", model="flux-dev", steps=20)
    message = first.original_message
    button = message["components"][0]["components"][0]  # Reroll first (tests/e2e/test_buttons.py)
    assert button["custom_id"] == f"fluxcord:reroll:{first.id}" and "koi" not in button["custom_id"]

    clicker = fake.add_member(name="clicker")
    click = await fake.click(message["id"], button["custom_id"], user=clicker)
    await harness.finished(click)
    result = click.original_message
    assert result["attachments"] and result["id"] != message["id"]
    first_body, second_body = (s.body for s in harness.bfl.submits)
    same = {k: v for k, v in second_body.items() if k not in ("seed", "user")}
    assert same == {k: v for k, v in first_body.items() if k not in ("seed", "user")}
    assert second_body["seed"] != first_body["seed"]
    assert second_body["user"] != first_body["user"]  # BFL's end-user id is the clicker's, who pays for it
    paid_by = await harness.services.db.fetch_value("SELECT user_id FROM ledger WHERE job_id = ? AND kind = 'settle'",
                                                    (int(click.id),))  # fmt: skip
    assert paid_by == int(clicker["user"]["id"])


async def test_reroll_of_an_unknown_job_is_refused_privately(harness):
    first = await harness.imagine()
    await harness.services.db.execute("DELETE FROM jobs WHERE id = ?", (int(first.id),))
    click = await harness.fake.click(first.original_message["id"], f"fluxcord:reroll:{first.id}")
    await click.wait_acked()
    assert click.ephemeral and "no longer known" in click.original_message["content"]
    assert len(harness.bfl.submits) == 1
