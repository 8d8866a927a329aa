"""When BFL keeps failing for a model: the breaker refuses at once, the one-click fallback, and visibility.

Through the real bot, the fake Discord and the fake BFL. The breaker's clock is a manual one, so the
cool-down passes without waiting.
"""

from __future__ import annotations

import io
import json

import pytest
from PIL import Image

from bot.engine.breaker import BreakerState, CircuitBreakers
from tests.e2e.gallery import gallery_items, posted
from tests.e2e.support import first_answer, rows, text_of, uid
from tests.e2e.test_budget import budget
from tests.fakes.fake_bfl import Behaviour

KLEIN = "flux-2-klein-4b"


class ManualClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock():
    """The breakers' clock (moved by hand)."""
    return ManualClock()


@pytest.fixture
def engine_options(clock):
    """Two provider errors within a minute open a model's breaker; a trial after 30 s (of ``clock``)."""
    return {"breakers": CircuitBreakers(failures=2, window=60, cooldown=30, clock=clock)}


async def break_model(harness, model="flux-pro-1.1", **options):
    """Make BFL fail twice for ``model`` (a 502 after creating the task: outcome unknown, member refunded)."""
    harness.bfl.script(Behaviour(submit_status_after_create=502), times=2)
    for n in range(2):
        failed = await harness.imagine(prompt=f"doomed {n}", model=model, **options)
        assert "could not generate" in text_of(failed) or "not been charged" in text_of(failed)
    assert harness.services.engine.breakers.state(model) is BreakerState.OPEN


def buttons(message):
    return [c for row in message.get("components") or [] for c in row.get("components", [])]


async def ledger_rows(harness):
    return await harness.services.db.fetch_value("SELECT COUNT(*) FROM ledger", default=0)


async def test_an_open_breaker_refuses_at_once_then_offers_the_servers_fallback_which_runs_on_click(
    harness, people, clock
):
    fake, bfl, db = harness.fake, harness.bfl, harness.services.db
    member, mod = people["member"], people["mod"]
    await break_model(harness)
    submits, money = len(bfl.submits), await ledger_rows(harness)

    # No fallback allowed (the default): the clear private refusal, nothing else.
    plain = await harness.imagine(prompt="a lighthouse at dusk", user=member)
    assert plain.ephemeral and "FLUX1.1 [pro] is having trouble right now" in text_of(plain)
    assert buttons(plain.original_message) == []
    assert len(bfl.submits) == submits and await ledger_rows(harness) == money
    assert await harness.services.jobs.get(int(plain.id)) is None

    # A moderator allows a fallback: audited, announced in the mod-log.
    modlog = fake.add_channel("mod-log")
    await budget(harness, "modlog", mod, channel=int(modlog["id"]))
    allowed = await budget(harness, "fallback", mod, model=KLEIN)
    assert allowed.ephemeral and "FLUX.2 [klein] 4B" in text_of(allowed)
    audit = await rows(harness, "SELECT actor_id, action, old_value, new_value FROM audit_log ORDER BY id")
    assert audit[-1] == (uid(mod), "fallback.set", None, KLEIN)
    await fake.wait_for(
        lambda: [m for m in fake.messages.values() if m["channel_id"] == modlog["id"] and KLEIN in m["content"]]
    )

    # Refused again, privately, at once, and now with the one-click offer at the fallback's own price.
    refused = await harness.imagine(prompt="a lighthouse at dusk", user=member, seed=77)
    assert refused.ephemeral and "is having trouble right now" in text_of(refused)
    assert "**$0.014**" in text_of(refused)
    [button] = buttons(refused.original_message)
    assert button["label"] == "Use FLUX.2 [klein] 4B · $0.014"
    assert button["custom_id"].startswith("fluxcord:fallback:") and "lighthouse" not in button["custom_id"]
    assert len(bfl.submits) == submits and await ledger_rows(harness) == money  # nothing reserved or sent
    [(owner, payload)] = await rows(harness, "SELECT user_id, payload FROM offers WHERE kind = 'fallback'")
    assert (owner, json.loads(payload)["model"]) == (uid(member), KLEIN)

    # Someone else cannot use it.
    stranger = fake.add_member(name="stranger")
    other = await fake.click(refused.original_message["id"], button["custom_id"], user=stranger)
    await other.wait_acked()
    assert other.ephemeral and "Only the member whose request was refused" in text_of(other)
    assert len(bfl.submits) == submits and await ledger_rows(harness) == money

    # The requester's click runs the request on the fallback model through the normal path.
    click = await fake.click(refused.original_message["id"], button["custom_id"], user=member)
    await harness.finished(click)
    assert not click.ephemeral and click.original_message["attachments"]
    sent = bfl.submits[-1]
    assert sent.model == KLEIN and sent.body["prompt"] == "a lighthouse at dusk" and sent.body["seed"] == 77
    job = await harness.services.jobs.get(int(click.id))
    assert (job.model, job.user_id, job.estimated_micros, job.cost_micros) == (KLEIN, uid(member), 14_000, 14_000)
    reserve = await db.fetch_one(
        "SELECT model, server_micros FROM ledger WHERE job_id = ? AND kind = 'reserve'", (job.id,)
    )
    assert (reserve["model"], reserve["server_micros"]) == (KLEIN, 14_000)
    again = await fake.click(refused.original_message["id"], button["custom_id"], user=member)
    await again.wait_acked()
    assert again.ephemeral and "expired or was already used" in text_of(again)
    assert [s.model for s in bfl.submits].count(KLEIN) == 1

    # Visible to moderators: /budget report (when it retries), /status, and the metrics.
    report = await budget(harness, "report", mod)
    retry = int(harness.services.ops.clock().timestamp() + 30)
    assert "`flux-pro-1.1`: refusing new requests; next trial <t:" in text_of(report)
    [shown] = [line for line in text_of(report).splitlines() if "flux-pro-1.1`: refusing" in line]
    assert abs(int(shown.split("<t:")[1].split(":")[0]) - retry) <= 2
    status = await fake.slash("status", {}, user=mod)
    await first_answer(harness, status)
    await fake.wait_for(lambda: status.followups or not status.original_message.get("flags", 0) & 128)
    assert "refusing (BFL keeps failing): flux-pro-1.1" in text_of(status)
    metrics = harness.services.ops.metrics.render()
    assert b'fluxcord_breaker_refusals_total{model="flux-pro-1.1"} 2.0' in metrics
    assert b'fluxcord_refusals_total{reason="provider"} 2.0' in metrics

    # After the cool-down the breaker half-opens; the trial succeeds and closes it.
    clock.now += 30
    assert harness.services.engine.breakers.state("flux-pro-1.1") is BreakerState.HALF_OPEN
    half = await budget(harness, "report", mod)
    assert "`flux-pro-1.1`: half-open" in text_of(half)
    trial = await harness.imagine(prompt="a lighthouse at dawn", user=member)
    assert not trial.ephemeral and bfl.submits[-1].model == "flux-pro-1.1"
    assert harness.services.engine.breakers.state("flux-pro-1.1") is BreakerState.CLOSED
    closed = await budget(harness, "report", mod)
    assert "Models BFL keeps failing for" not in text_of(closed) and "refusing new requests" not in text_of(closed)


async def test_the_fallback_setting_is_shown_changed_and_turned_off(harness, people, clock):
    mod = people["mod"]
    shown = await budget(harness, "fallback", mod)
    assert shown.ephemeral and "No fallback" in text_of(shown)
    await budget(harness, "fallback", mod, model="flux-dev")
    assert "FLUX.1 [dev]" in text_of(await budget(harness, "fallback", mod))
    assert "`flux-dev`" in text_of(await budget(harness, "show", mod))
    off = await budget(harness, "fallback", mod, model="off")
    assert "No fallback" in text_of(off)
    audit = await rows(harness, "SELECT action, old_value, new_value FROM audit_log ORDER BY id")
    assert audit[-2:] == [("fallback.set", None, "flux-dev"), ("fallback.set", "flux-dev", None)]
    member = await budget(harness, "fallback", people["member"], model=KLEIN)
    assert "Only moderators" in text_of(member)
    assert (await harness.services.server.settings.guild_settings(harness.fake.guild_id)).fallback_model is None

    await break_model(harness)  # turned off: the plain refusal
    refused = await harness.imagine(prompt="a lighthouse")
    assert refused.ephemeral and buttons(refused.original_message) == []


async def test_no_offer_when_the_fallback_is_down_too_or_cannot_serve_the_request(harness, people, clock):
    mod, bfl = people["mod"], harness.bfl
    await budget(harness, "fallback", mod, model="flux-dev")
    await break_model(harness, model="flux-dev")
    await break_model(harness)
    both_down = await harness.imagine(prompt="a lighthouse")
    assert both_down.ephemeral and buttons(both_down.original_message) == []  # the fallback's breaker is open

    # flux-dev cannot take input images: an edit refused on FLUX.2 [pro] gets no offer.
    await break_model(harness, model="flux-2-pro")
    submits = len(bfl.submits)
    upload = harness.fake.make_attachment("a.png", _png())
    edit = await harness.fake.slash("edit", {"image": upload, "prompt": "make it blue"})
    await harness.finished(edit)
    assert "is having trouble right now" in text_of(edit) and not any(
        buttons(m) for m in [edit.original_message, *edit.followups] if m
    )
    assert len(bfl.submits) == submits and await rows(harness, "SELECT * FROM offers WHERE kind = 'fallback'") == []


async def test_an_edit_refused_by_the_breaker_is_offered_on_the_fallback_with_its_image(harness, people, clock):
    fake, bfl = harness.fake, harness.bfl
    await budget(harness, "fallback", people["mod"], model=KLEIN)
    await break_model(harness, model="flux-2-pro")
    upload = fake.make_attachment("a.png", _png())
    refused = await fake.slash("edit", {"image": upload, "prompt": "make it blue", "private": True})
    await harness.finished(refused)
    message = next(m for m in [refused.original_message, *refused.followups] if m and buttons(m))
    [button] = buttons(message)
    assert button["label"].startswith("Use FLUX.2 [klein] 4B · $")
    assert await rows(harness, "SELECT kind FROM job_sources") == []  # the refused edit left nothing behind
    click = await fake.click(message["id"], button["custom_id"])

    async def delivered():
        job = await harness.services.jobs.get(int(click.id))
        return job is not None and not job.status.is_open

    await harness.wait_until(delivered)
    sent = bfl.submits[-1]
    assert sent.model == KLEIN and sent.body["prompt"] == "make it blue" and "input_image" in sent.body
    with Image.open(io.BytesIO(__import__("base64").b64decode(sent.body["input_image"]))) as image:
        assert image.size == (400, 300)
    assert click.ephemeral  # the member asked for a private edit: the fallback stays private
    assert (await harness.services.jobs.get(int(click.id))).status.value == "delivered"
    assert await rows(harness, "SELECT job_id, kind, source_url FROM job_sources") == [
        (int(click.id), "edit", upload["url"])
    ]


def _png() -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (400, 300), "purple").save(buffer, format="PNG")
    return buffer.getvalue()


@pytest.mark.parametrize("bot_settings_overrides", [{"confirm_above_usd": "0.05", "default_member_daily_usd": "5"}])
async def test_a_fallback_priced_above_the_confirmation_threshold_is_confirmed_first(harness, people, clock):
    fake, bfl, db = harness.fake, harness.bfl, harness.services.db
    await budget(harness, "fallback", people["mod"], model="flux-2-max")  # $0.07, above the $0.05 threshold
    await break_model(harness)  # FLUX1.1 [pro] at $0.04 needs no confirmation
    refused = await harness.imagine(prompt="a quiet harbour")
    [button] = buttons(refused.original_message)
    assert button["label"] == "Use FLUX.2 [max] · $0.07"
    money = await ledger_rows(harness)
    asked = await fake.click(refused.original_message["id"], button["custom_id"])
    await asked.wait_acked()
    assert asked.ephemeral and "costs up to **$0.07**" in text_of(asked)
    assert await ledger_rows(harness) == money and bfl.submits[-1].model == "flux-pro-1.1"  # nothing yet
    go = next(b["custom_id"] for b in buttons(asked.original_message) if b["custom_id"].startswith("fluxcord:go:"))
    generate = await fake.click(asked.original_message["id"], go)
    await harness.finished(generate)
    assert bfl.submits[-1].model == "flux-2-max" and bfl.submits[-1].body["prompt"] == "a quiet harbour"
    job = await harness.services.jobs.get(int(generate.id))
    assert job.model == "flux-2-max" and job.estimated_micros == 70_000
    assert await db.fetch_value("SELECT COUNT(*) FROM ledger WHERE job_id = ? AND kind = 'reserve'", (job.id,)) == 1


async def test_the_breaker_and_the_offer_outlive_the_process_that_saw_the_failures(
    discord_endpoints, fake_bfl, tmp_path
):
    """A new process on the same database (here: the bot started again) refuses at once and honours the offer."""
    from tests.e2e.conftest import running_bot
    from tests.e2e.fake_discord import Perm
    from tests.e2e.support import MEMBER_PERMISSIONS, bot_settings

    fake = discord_endpoints
    settings = bot_settings(fake, fake_bfl, tmp_path)
    options = {"backoff_base": 0.001}
    mod = fake.add_member(name="mod", permissions=MEMBER_PERMISSIONS | Perm.MANAGE_GUILD)
    async with running_bot(fake, fake_bfl, settings, bfl_options=options) as first:
        await budget(first, "fallback", mod, model=KLEIN)
        fake_bfl.script(Behaviour(submit_status_after_create=502), times=5)  # the default: 5 errors within 60 s
        for n in range(5):
            doomed = await first.imagine(prompt=f"doomed {n}")
            assert "did not answer properly" in text_of(doomed)  # the breaker opens after the fifth only
        offered = await first.imagine(prompt="a windmill at noon")
        assert offered.ephemeral and "is having trouble right now" in text_of(offered)
    [button] = buttons(offered.original_message)
    submits = len(fake_bfl.submits)

    async with running_bot(fake, fake_bfl, settings, bfl_options=options) as second:
        assert second.services.engine.breakers.statuses() == []  # nothing in this process's memory yet
        refused = await second.imagine(prompt="a windmill at dusk")
        assert refused.ephemeral and "FLUX1.1 [pro] is having trouble right now" in text_of(refused)
        assert len(fake_bfl.submits) == submits
        click = await fake.click(offered.original_message["id"], button["custom_id"])  # the first process's offer
        await second.finished(click)
        assert fake_bfl.submits[-1].model == KLEIN and fake_bfl.submits[-1].body["prompt"] == "a windmill at noon"
        assert (await second.services.jobs.get(int(click.id))).cost_micros == 14_000


async def test_an_open_breaker_refuses_a_group_at_once_and_counts_it(harness, people, clock):
    """`/imagine count:2` and `draft:true` meet the same breaker as one image: refused, counted, nothing written."""
    bfl = harness.bfl
    await break_model(harness)
    await break_model(harness, model=KLEIN)
    submits, money = len(bfl.submits), await ledger_rows(harness)
    for options in ({"count": 2}, {"draft": True}):
        refused = await harness.imagine(prompt="a lighthouse at dusk", user=people["member"], **options)
        assert refused.ephemeral and "is having trouble right now" in text_of(refused)
    assert len(bfl.submits) == submits and await ledger_rows(harness) == money
    assert await rows(harness, "SELECT id FROM job_groups") == []
    metrics = harness.services.ops.metrics.render()
    assert b'fluxcord_breaker_refusals_total{model="flux-pro-1.1"} 1.0' in metrics
    assert f'fluxcord_breaker_refusals_total{{model="{KLEIN}"}} 1.0'.encode() in metrics


async def test_a_group_refused_by_the_breaker_is_offered_whole_on_the_fallback(harness, people, clock):
    """`/imagine count:3` on a failing model: one button for all three on the fallback, a gallery on click."""
    bfl, member, mod = harness.bfl, people["member"], people["mod"]
    await break_model(harness)
    await budget(harness, "fallback", mod, model=KLEIN)
    submits, money = len(bfl.submits), await ledger_rows(harness)
    refused = await harness.imagine(prompt="three lanterns", user=member, count=3)
    assert refused.ephemeral and "is having trouble right now" in text_of(refused)
    [button] = buttons(refused.original_message)
    assert button["label"] == "Use FLUX.2 [klein] 4B · $0.042"  # its own price, for all three
    assert len(bfl.submits) == submits and await ledger_rows(harness) == money

    click = await harness.fake.click(refused.original_message["id"], button["custom_id"], user=member)
    members = await posted(harness, click)
    assert [m.model for m in members] == [KLEIN] * 3 and len(gallery_items(click.original_message)) == 3
    assert [s.model for s in bfl.submits[submits:]] == [KLEIN] * 3
    assert len({s.body["seed"] for s in bfl.submits[submits:]}) == 3
    reserves = await rows(
        harness, "SELECT model, server_micros FROM ledger WHERE kind = 'reserve' AND model = ?", (KLEIN,)
    )
    assert reserves == [(KLEIN, 14_000)] * 3
