"""The job engine end to end against the fake BFL: money, states, fairness, cancel, shutdown."""

import asyncio
import dataclasses
import io

import pytest
from PIL import Image

from bot.audit import Subject, SubjectKind
from bot.billing.ledger import Metric
from bot.billing.limits import LimitSetting
from bot.billing.refusals import LimitRefused
from bot.config import Period, RefundPolicy
from bot.engine.engine import Restarting
from bot.engine.states import JobStatus
from bot.errors import GenerationPaused, LimitReached
from cogs._render import error_text
from tests.bot.engine.conftest import ALICE, GUILD, request, who
from tests.fakes.fake_bfl import Behaviour


async def test_happy_path_settles_the_reported_cost_and_walks_every_state(harness, fake_bfl):
    fake_bfl.script(Behaviour(pending_polls=2))
    result = await harness.generate(1)
    with Image.open(io.BytesIO(result.data)) as decoded:
        assert abs(decoded.width / decoded.height - 16 / 9) < 0.02
    assert result.cost_micros == 40_000 and not result.from_cache
    assert await harness.ledger_kinds(1) == ["reserve", "settle"]
    await harness.presenter.wait_for(lambda: True)
    job = await harness.store.get(1)
    assert job.status is JobStatus.DELIVERED and job.result_message_id == 10_001
    assert job.interaction_token is None  # a finished job keeps no Discord credential
    statuses = [status for status, _ in await harness.store.events(1)]
    assert statuses == ["queued", "submitting", "generating", "downloading", "delivering", "delivered"]
    assert fake_bfl.schema_errors == []
    assert await harness.ledger.verify_counters() == []


async def test_a_styled_request_records_its_style_on_the_job_and_never_sends_it(harness, fake_bfl):
    styled = dataclasses.replace(request(), style="Noir")
    result = await harness.generate(1, styled)
    assert result.job.style == "Noir" and (await harness.store.get(1)).style == "Noir"
    assert "style" not in fake_bfl.submits[0].body and fake_bfl.schema_errors == []
    await harness.generate(2)
    assert (await harness.store.get(2)).style is None


async def test_a_cache_hit_is_free_but_counts_as_an_image(harness, fake_bfl):
    first = await harness.generate(1)
    second = await harness.generate(2)
    assert second.from_cache and second.cost_micros == 0 and second.data == first.data
    assert len(fake_bfl.submits) == 1
    assert await harness.ledger_kinds(2) == ["reserve", "settle"]
    assert await harness.money(2) == (0, 0)
    images = await harness.db.fetch_value("SELECT SUM(member_images) FROM ledger WHERE job_id = 2")
    assert images == 1
    await harness.generate(3, req=request(seed=43))  # another seed is another image
    assert len(fake_bfl.submits) == 2


async def test_a_cache_hit_obeys_the_image_quota(make_engine, fake_bfl):
    h = await make_engine(default_member_daily_images=1)
    await h.generate(1)
    with pytest.raises(LimitRefused) as info:
        await h.engine.admit(request(), who(2), acked=True)
    assert info.value.notice.status.limit.metric is Metric.IMAGES


async def test_refusal_has_no_side_effect(make_engine, fake_bfl, db):
    h = await make_engine(default_member_daily_images=0)
    with pytest.raises(LimitRefused) as info:
        await h.engine.admit(request(), who(1), acked=True)
    assert info.value.notice.status.limit.metric is Metric.IMAGES
    assert fake_bfl.submits == []
    assert await db.fetch_value("SELECT COUNT(*) FROM ledger") == 0
    assert await db.fetch_value("SELECT COUNT(*) FROM jobs") == 0


async def test_paused_server_refuses_even_cached_images(harness):
    await harness.generate(1)
    await harness.server.update(GUILD, "paused", 1, actor_id=9, action="pause", shown="1")
    with pytest.raises(GenerationPaused):
        await harness.engine.admit(request(), who(2), acked=True)


@pytest.mark.parametrize("status", [402, 403, 422, 400, 429])
async def test_a_submit_bfl_refused_releases_everything(harness, fake_bfl, status):
    fake_bfl.script(Behaviour(submit_status=status), times=10)
    text = await harness.generate(1)
    assert "not been charged" in text
    assert await harness.ledger_kinds(1) == ["reserve", "release"]
    assert (await harness.store.get(1)).status is JobStatus.FAILED


@pytest.mark.parametrize("status", [500, 502, 503, 504])
async def test_a_5xx_after_bfl_created_the_task_is_never_resent(harness, fake_bfl, status):
    fake_bfl.script(Behaviour(submit_status_after_create=status))
    text = await harness.generate(1)
    assert "not been charged" in text
    assert len(fake_bfl.submits) == 1 and len(fake_bfl.tasks) == 1
    assert (await harness.store.get(1)).status is JobStatus.UNKNOWN
    assert await harness.money(1) == (40_000, 0)  # the server's ledger counts it; the member is refunded


async def test_rate_limit_is_retried_then_succeeds(harness, fake_bfl):
    fake_bfl.fail_submits(429, times=2)
    await harness.generate(1)
    assert fake_bfl.submit_statuses() == [429, 429, 200]
    assert await harness.ledger_kinds(1) == ["reserve", "settle"]


@pytest.mark.parametrize(
    ("final", "text", "member_charged"),
    [
        ("Request Moderated", "prompt was blocked", True),
        ("Content Moderated", "generated image was blocked", True),
        ("Error", "could not generate", False),
        ("Failed", "could not generate", False),
        ("Task not found", "could not generate", False),
    ],
)
async def test_accepted_task_failures_follow_the_refund_policy(make_engine, fake_bfl, final, text, member_charged):
    h = await make_engine(bfl_task_not_found_window_seconds=0)  # "Task not found" at once is final
    fake_bfl.script(Behaviour(final_status=final))
    assert text in await h.generate(1)
    assert await h.ledger_kinds(1) == ["reserve", "settle"]
    assert await h.money(1) == (40_000, 40_000 if member_charged else 0)


async def test_new_bfl_statuses_keep_the_job_running(harness, fake_bfl):
    fake_bfl.script(Behaviour(stages=("Reasoning", "Brand New Status", "Generating"), run_seconds=2.0))
    result = await harness.generate(1)
    assert result.cost_micros == 40_000
    seen = {poll.task_status for poll in fake_bfl.polls}
    assert "Ready" in seen and len(seen & {"Reasoning", "Brand New Status", "Generating"}) >= 2


async def test_refund_policy_all_refunds_moderated_prompts(make_engine, fake_bfl):
    h = await make_engine(refund_policy=RefundPolicy.ALL)
    fake_bfl.script(Behaviour(final_status="Request Moderated"))
    assert "not been charged" in await h.generate(1)
    assert (await h.money(1))[1] == 0


async def test_poll_deadline_gives_up_and_refunds(make_engine, fake_bfl, monkeypatch):
    import bot.engine.steps as steps_module

    monkeypatch.setattr(steps_module, "RESUME_MIN_TIMEOUT", 0.2)
    h = await make_engine(config={"job_timeout_seconds": 0.2})
    fake_bfl.script(Behaviour(release=asyncio.Event()))  # Pending forever
    assert "too long" in await h.generate(1)
    assert (await h.money(1))[1] == 0


async def test_an_expired_result_url_is_a_refunded_failure(harness, fake_bfl):
    fake_bfl.script(Behaviour(delivery_ttl=0))
    assert "not been charged" in await harness.generate(1)
    assert await harness.ledger_kinds(1) == ["reserve", "settle"]
    assert await harness.money(1) == (40_000, 0)


async def test_fifty_simultaneous_requests_with_five_allowed(make_engine, fake_bfl, db):
    h = await make_engine()
    await h.limits.set_limit(
        GUILD, LimitSetting(Subject(SubjectKind.MEMBER, ALICE), Metric.IMAGES, Period.DAY, 5), actor_id=9
    )
    fake_bfl.default = Behaviour(pending_polls=1)

    async def attempt(job_id):
        try:
            await h.engine.admit(request(seed=job_id), who(job_id), acked=True)
        except LimitReached as refusal:
            return error_text(refusal)
        return "ok"

    results = await asyncio.gather(*(attempt(job) for job in range(1, 51)))
    assert results.count("ok") == 5
    assert all("image quota" in r for r in results if r != "ok")
    admitted = [job for job, r in zip(range(1, 51), results, strict=True) if r == "ok"]
    for job_id in admitted:
        await h.ended(job_id)
    assert len(fake_bfl.submits) == 5
    assert await db.fetch_value("SELECT COUNT(*) FROM ledger WHERE kind = 'settle'") == 5
    assert fake_bfl.max_active_seen <= 2  # the member's concurrency cap (MEMBER_MAX_CONCURRENT_JOBS=2)


async def test_the_bfl_cap_holds_across_members(make_engine, fake_bfl):
    h = await make_engine(bfl_max_active_tasks=4, member_max_concurrent_jobs=4)
    gate = asyncio.Event()
    fake_bfl.default = Behaviour(release=gate)
    for i in range(1, 13):
        await h.engine.admit(request(seed=i), who(i, user=i % 5 + 1), acked=True)
    await fake_bfl.wait_for(lambda: fake_bfl.active_tasks == 4, timeout=5)
    assert await h.store.count(JobStatus.QUEUED) == 8
    gate.set()
    for i in range(1, 13):
        await h.ended(i)
    assert fake_bfl.max_active_seen == 4


async def test_a_late_member_waits_for_one_slot_not_for_the_flood(make_engine, fake_bfl):
    h = await make_engine(
        bfl_max_active_tasks=2,
        member_max_concurrent_jobs=2,
        member_max_pending_jobs=100,
        default_member_daily_images=100,
        default_member_daily_usd="100",
        default_server_daily_usd="100",
    )
    gate = asyncio.Event()
    fake_bfl.default = Behaviour(release=gate)
    for i in range(1, 41):  # a flood from Alice...
        await h.engine.admit(request(seed=i), who(i), acked=True)
    await fake_bfl.wait_for(lambda: fake_bfl.active_tasks == 2, timeout=5)
    await h.engine.admit(request(seed=999), who(999, user=7), acked=True)  # ...then Bob arrives
    snapshot = await h.store.queue_snapshot()
    from bot.engine.fairness import positions

    assert positions(snapshot)[999] == 1  # Bob is next, ahead of 38 queued jobs of Alice's
    fake_bfl.default = Behaviour()
    gate.set()
    await h.ended(999)
    bob_submit = next(n for n, s in enumerate(fake_bfl.submits) if s.body["seed"] == 999)
    assert bob_submit in (2, 3)  # within one slot turnover (2 slots) after the two that were running
    for i in range(1, 41):
        await h.ended(i)


async def test_cancel_releases_a_queued_job_at_once(make_engine, fake_bfl):
    h = await make_engine(bfl_max_active_tasks=1, member_max_concurrent_jobs=1)
    gate = asyncio.Event()
    fake_bfl.default = Behaviour(release=gate)
    await h.engine.admit(request(seed=1), who(1), acked=True)
    await h.engine.admit(request(seed=2), who(2), acked=True)
    await fake_bfl.wait_for(lambda: fake_bfl.active_tasks == 1, timeout=5)
    assert (await h.engine.cancel(2, actor_id=999, is_moderator=False)).reason == "not_allowed"
    assert (await h.engine.cancel(1, actor_id=ALICE, is_moderator=False)).reason == "too_late"
    outcome = await h.engine.cancel(2, actor_id=ALICE, is_moderator=False)
    assert outcome.cancelled
    assert await h.ledger_kinds(2) == ["reserve", "release"]
    assert (await h.store.get(2)).status is JobStatus.CANCELLED
    assert (await h.engine.cancel(2, actor_id=ALICE, is_moderator=False)).reason == "too_late"
    gate.set()
    await h.ended(1)
    assert len(fake_bfl.submits) == 1  # the cancelled job never reached BFL


async def test_a_failed_acknowledgement_cancels_and_releases(harness, fake_bfl):
    job = await harness.engine.admit(request(), who(1), acked=False)
    assert job.status is JobStatus.QUEUED and not job.acked
    await harness.engine.abandon(1)
    assert await harness.ledger_kinds(1) == ["reserve", "release"]
    assert (await harness.store.get(1)).status is JobStatus.CANCELLED
    harness.engine.wake()
    await asyncio.sleep(0)
    assert fake_bfl.submits == []


async def test_an_unacknowledged_job_never_runs(harness, fake_bfl):
    await harness.engine.admit(request(seed=1), who(1), acked=False)
    await harness.generate(2, req=request(seed=2))  # the engine ran something else meanwhile
    assert [s.body["seed"] for s in fake_bfl.submits] == [2]
    await harness.engine.acknowledged(1)
    await harness.engine.acknowledged(1)  # twice: still one run
    await harness.ended(1)
    assert [s.body["seed"] for s in fake_bfl.submits] == [2, 1]


async def test_a_refused_post_is_retried_from_the_cache_and_charged_once_posted(harness, fake_bfl):
    harness.presenter.fail_delivery = 3  # Discord refuses three times (an outage), then takes it
    result = await harness.generate(1)
    assert harness.presenter.refused == 3 and result.cost_micros == 40_000
    assert len(fake_bfl.submits) == 1 and len(fake_bfl.downloads) == 1  # made once, posted from the cache
    assert (await harness.store.get(1)).status is JobStatus.DELIVERED
    assert await harness.ledger_kinds(1) == ["reserve", "settle"] and await harness.money(1) == (40_000, 40_000)
    assert 1 not in harness.presenter.notified  # nothing ever replaced the image


async def test_a_result_that_can_never_be_posted_is_refunded_and_counted_undeliverable(make_engine, fake_bfl, clock):
    from bot.billing.reports import spend_report
    from bot.config import Period as P

    h = await make_engine(config={"undeliverable_after_seconds": 60.0})
    h.presenter.fail_delivery = True  # Discord refuses every post
    await h.engine.admit(request(), who(1), acked=True)
    await h.presenter.wait_for(lambda: h.presenter.refused >= 2)
    assert (await h.store.get(1)).status is JobStatus.DELIVERING  # still held, still retried
    clock.advance(seconds=61)  # the bounded time is over
    text = await h.ended(1)
    assert "would not let the bot post" in text and "not been charged" in text
    job = await h.store.get(1)
    assert job.status is JobStatus.FAILED and job.error == "undeliverable"
    assert await h.money(1) == (40_000, 0)  # BFL was paid; the member was refunded
    assert await h.ledger.member_charged(1) is False
    report = await spend_report(h.db, GUILD, P.MONTH, h.engine.clock())
    assert report.undeliverable_jobs == 1


async def test_an_unexpected_bug_after_submit_does_not_hold_the_money(harness, monkeypatch):
    async def broken_put(*args, **kwargs):
        raise OSError("disk on fire")

    monkeypatch.setattr(harness.engine.cache, "put", broken_put)
    assert "not been charged" in await harness.generate(1)
    assert await harness.ledger.open_job_ids() == []
    assert await harness.money(1) == (40_000, 0)  # BFL was paid; the member was not charged
    assert (await harness.store.get(1)).status is JobStatus.FAILED


async def test_an_unexpected_bug_during_submit_is_an_unknown_outcome(harness, fake_bfl, monkeypatch):
    async def broken_submit(*args, **kwargs):
        raise RuntimeError("bug")

    monkeypatch.setattr(harness.bfl, "submit", broken_submit)
    assert "not been charged" in await harness.generate(1)
    # We cannot know whether the request left: the server's ledger counts it, the member does not pay.
    assert (await harness.store.get(1)).status is JobStatus.UNKNOWN
    assert await harness.money(1) == (40_000, 0)


async def test_a_scheduler_bug_neither_holds_money_nor_stops_the_queue(harness, fake_bfl, monkeypatch):
    real_claim = harness.store.claim
    calls = []

    async def flaky_claim(**kwargs):
        calls.append(1)
        if len(calls) == 1:
            raise RuntimeError("bug")
        return await real_claim(**kwargs)

    monkeypatch.setattr(harness.store, "claim", flaky_claim)
    result = await harness.generate(1)
    assert result.cost_micros == 40_000  # the dispatcher survived and ran the job


async def test_a_result_that_is_not_an_image_is_never_cached_or_charged_to_the_member(harness, monkeypatch):
    async def garbage(url, *, max_bytes):
        return b"<html>not an image</html>"

    monkeypatch.setattr(harness.bfl, "download", garbage)
    assert "not been charged" in await harness.generate(1)
    assert await harness.engine.cache.get((await harness.store.get(1)).cache_key) is None
    assert (await harness.money(1))[1] == 0


async def test_a_cost_above_the_estimate_is_logged_and_noticed(make_engine, fake_bfl, caplog):
    noticed = []

    async def notice(guild_id, text):
        noticed.append((guild_id, text))

    h = await make_engine(engine_options={"notice": notice})
    fake_bfl.script(Behaviour(cost=9))  # 9 credits = $0.09 against a $0.04 estimate
    result = await h.generate(1)
    assert result.cost_micros == 90_000
    assert any("above its estimate" in r.getMessage() for r in caplog.records)
    from bot.billing.reports import spend_report
    from bot.config import Period as P

    report = await spend_report(h.db, GUILD, P.MONTH, h.engine.clock())
    assert report.over_estimate_jobs == 1 and report.unknown_jobs == 0
    await asyncio.sleep(0)
    assert noticed and noticed[0][0] == GUILD and "$0.09" in noticed[0][1]


async def test_a_stopping_engine_refuses_new_work(harness):
    await harness.engine.stop(grace=0.1)
    with pytest.raises(Restarting, match="restarting"):
        await harness.engine.admit(request(), who(1), acked=True)


async def test_a_job_never_acknowledged_before_a_crash_is_cancelled_and_explained(make_engine, fake_bfl):
    from bot.engine.outcomes import RESTARTED_TEXT

    first = await make_engine()
    await first.engine.admit(request(), who(1), acked=False)
    await first.engine.stop(grace=0.1)  # the process goes away before the acknowledgement is recorded
    second = await make_engine()  # the next start, on the same database
    assert await second.presenter.ended(1) == RESTARTED_TEXT + " You have not been charged."
    assert await second.ledger_kinds(1) == ["reserve", "release"]
    assert (await second.store.get(1)).status is JobStatus.CANCELLED
    assert fake_bfl.submits == []


async def test_a_stop_in_the_same_tick_as_a_wake_ends_every_loop(make_engine):
    """Python 3.11's ``wait_for`` swallows a cancel that meets its wake-up in the same tick.

    With another process alive the dispatcher polls (``wait_for`` on its wake-up); it then went on
    polling after the cancel, and ``stop`` waited for it forever (a CI run hung for 90 minutes).
    """
    first = await make_engine()
    await make_engine()  # another live process: the first one's dispatcher polls
    for _ in range(3):
        await first.engine.reconcile()  # sees the other process, then wakes the dispatcher
        await first.engine.reconcile()  # wakes it again; the stop below cancels in that same tick
        stopping = asyncio.create_task(first.engine.stop(grace=0.1))
        await asyncio.wait({stopping}, timeout=10)  # no cancel of its own: a stop that swallows one hides this
        assert stopping.done(), "stop() still waits for a loop that should have ended"
        await first.engine.start()
