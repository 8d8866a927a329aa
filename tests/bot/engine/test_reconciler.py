"""Issue 20's situations, each reproduced against the engine (real HTTP to the fake BFL, real databases).

Each of these failed on the engine before the reconciler: a live process never revisited its own stuck
jobs, a failed record after a side effect was turned into "something went wrong", a stop during a 429
wait charged an estimate, a skewed clock declared a live submit unknown.
"""

import asyncio
import contextlib
import dataclasses
import sqlite3
from datetime import UTC, datetime, timedelta

import aiohttp
import pytest

from bot.engine.outcomes import EXPIRED_TEXT, NOT_ACKNOWLEDGED_TEXT
from bot.engine.progress import Undeliverable
from bot.engine.states import Event, JobStatus
from tests.bot.engine.conftest import ALICE, FAST_ENGINE, RecordingPresenter, build_engine, make_settings, request, who
from tests.bot.engine.test_crash import billed_micros
from tests.conftest import ManualClock
from tests.fakes.fake_bfl import Behaviour


def refuse_apply(monkeypatch, store, events, *, times=1, error="database is locked"):
    """The database refuses the first ``times`` applies of ``events`` (a real sqlite3 error); what it refused."""
    real_apply = store.apply
    refused = []

    async def flaky_apply(job_id, event, *args, **kwargs):
        if event in events and len(refused) < times:
            refused.append((job_id, event))
            raise sqlite3.OperationalError(error)
        return await real_apply(job_id, event, *args, **kwargs)

    monkeypatch.setattr(store, "apply", flaky_apply)
    return refused


async def test_a_job_admitted_and_never_acknowledged_is_released_by_the_live_process(make_engine, fake_bfl, clock):
    """A failed defer, a transport error while acknowledging: the cog never says; the heartbeat does."""
    h = await make_engine(job_lease_seconds=2)  # a heartbeat every 0.67 s
    await h.engine.admit(request(), who(1), acked=False)
    clock.advance(seconds=11)  # past the acknowledgement budget
    text = await h.ended(1)
    assert text.startswith(NOT_ACKNOWLEDGED_TEXT) and "not been charged" in text
    assert (await h.store.get(1)).status is JobStatus.CANCELLED
    assert await h.ledger_kinds(1) == ["reserve", "release"] and fake_bfl.submits == []
    assert await h.ledger.open_job_ids() == []


async def test_an_unacknowledged_job_inside_the_budget_is_left_alone(make_engine, fake_bfl):
    h = await make_engine()
    await h.engine.admit(request(), who(1), acked=False)
    assert await h.engine.reconcile() == 0  # its cog is still answering the interaction
    assert (await h.store.get(1)).status is JobStatus.QUEUED
    await h.engine.acknowledged(1)
    assert (await h.ended(1)).cost_micros == 40_000


async def test_a_step_whose_record_and_error_handling_both_fail_is_driven_to_its_end(
    make_engine, fake_bfl, monkeypatch
):
    """The database refuses the 'finished' record twice (and would refuse an error record too)."""
    h = await make_engine()
    refused = refuse_apply(monkeypatch, h.store, {Event.FINISHED, Event.INTERNAL_ERROR}, times=2)
    result = await h.generate(1)
    assert [event for _job, event in refused] == [Event.FINISHED, Event.FINISHED] and result.cost_micros == 40_000
    assert len(fake_bfl.submits) == 1 and (await h.store.get(1)).status is JobStatus.DELIVERED
    assert await h.ledger.open_job_ids() == [] and await h.ledger.verify_counters() == []


async def test_a_failed_record_of_the_post_never_replaces_the_image_nor_denies_the_charge(
    make_engine, fake_bfl, monkeypatch
):
    h = await make_engine()
    failures = refuse_apply(monkeypatch, h.store, {Event.DELIVERED}, error="disk I/O error")
    await h.generate(1)
    await h.engine.wait_job(1)
    assert failures == [(1, Event.DELIVERED)]
    assert 1 not in h.presenter.notified  # no "you have not been charged" over the posted image
    assert (await h.store.get(1)).status is JobStatus.DELIVERED
    assert await h.ledger.member_charged(1) is True and await h.money(1) == (40_000, 40_000)


async def test_a_stop_during_a_429_wait_charges_nothing_and_the_job_runs_after_the_restart(
    make_engine, fake_bfl, db, tmp_path
):
    waiting = asyncio.Event()
    first = await make_engine(engine_options={"checkpoint": lambda name, _id: name == "not_sent" and waiting.set()})
    fake_bfl.script(Behaviour(submit_status=429, retry_after="30"))  # "not now": no task is created
    await first.engine.admit(request(), who(1), acked=True)
    await asyncio.wait_for(waiting.wait(), timeout=10)
    job = await first.store.get(1)
    assert job.status is JobStatus.SUBMITTING and job.submit_started_at is None  # recorded: not sent
    await first.engine.stop(grace=0.1)
    second = await make_engine()
    assert (await second.ended(1)).cost_micros == 40_000
    assert (await second.store.get(1)).status is JobStatus.DELIVERED
    assert await db.fetch_value("SELECT SUM(server_micros) FROM ledger") == billed_micros(fake_bfl)


async def test_a_private_job_is_not_claimed_once_its_token_cannot_outlive_it(make_engine, fake_bfl, clock):
    h = await make_engine(bfl_max_active_tasks=1)
    gate = asyncio.Event()
    fake_bfl.script(Behaviour(release=gate))  # the only slot is busy
    await h.engine.admit(request(seed=1), who(1), acked=True)
    await fake_bfl.wait_for(lambda: fake_bfl.submits, timeout=5)
    await h.engine.admit(request(seed=2), dataclasses.replace(who(2), private=True), acked=True)
    clock.advance(minutes=10)  # 15 minutes of token minus a 5-minute job: too late to start it
    assert await h.engine.reconcile() == 1  # the heartbeat releases it (and renews the lease)
    text = await h.ended(2)
    gate.set()
    assert (await h.ended(1)).cost_micros == 40_000
    assert text.startswith(EXPIRED_TEXT) and "not been charged" in text
    assert (await h.store.get(2)).status is JobStatus.CANCELLED and len(fake_bfl.tasks) == 1
    assert await h.ledger_kinds(2) == ["reserve", "release"]


async def test_a_write_is_never_undone_by_another_coroutines_rollback(db, make_engine):
    """On SQLite a read helper ran inside whatever transaction another coroutine had open (issue 20)."""
    h = await make_engine()
    await h.engine.admit_group([request(seed=1), request(seed=2)], who(77))

    class Refused(Exception):
        pass

    acknowledging = None
    with contextlib.suppress(Refused):
        async with db.transaction() as tx:
            await tx.execute("INSERT INTO meta (key, value) VALUES ('scratch', 'x')")
            acknowledging = asyncio.ensure_future(h.engine.acknowledged_group(77))
            await asyncio.wait({acknowledging}, timeout=0.5)  # the old engine finished it inside this transaction
            raise Refused  # e.g. a refused admission rolls back
    assert await acknowledging
    assert all(job.acked for job in await h.engine.groups.members(77))


async def test_a_read_helper_refuses_a_write(db):
    from bot.storage.database import WriteThroughRead

    for sql in ("UPDATE jobs SET acked = 1 RETURNING *", "INSERT INTO meta (key, value) VALUES ('a', 'b')"):
        with pytest.raises(WriteThroughRead):
            await db.fetch_all(sql)
    with pytest.raises(WriteThroughRead):
        await db.fetch_one("DELETE FROM meta")
    assert await db.fetch_value("SELECT COUNT(*) FROM meta") is not None


async def test_a_skewed_clock_never_takes_a_live_submit(db, make_engine, fake_bfl, tmp_path):
    """Another process 40 s ahead judges leases by the database's clock, not its own (PostgreSQL)."""
    if db.backend != "postgresql":
        pytest.skip("SQLite is one file on one host: every process reads the same host clock (docs)")
    first = await make_engine()
    gate = asyncio.Event()
    fake_bfl.script(Behaviour(release=gate))
    await first.engine.admit(request(), who(1), acked=True)
    await fake_bfl.wait_for(lambda: fake_bfl.polls, timeout=5)  # it polls once its POST's answer is recorded
    async with aiohttp.ClientSession() as session:
        ahead = ManualClock(datetime.now(UTC) + timedelta(seconds=40))
        other, _, _ = build_engine(db, session, make_settings(fake_bfl, tmp_path), ahead, RecordingPresenter())
        await other.start()
        try:
            assert await other.reconcile() == 0
            job = await other.store.get(1)
            assert job.claimed_by == first.engine.identity.id and job.status is JobStatus.GENERATING
        finally:
            await other.stop(grace=0.1)
    gate.set()
    assert (await first.ended(1)).cost_micros == 40_000


async def test_a_stalled_holders_marked_submit_waits_for_its_window_before_it_is_unknown(
    db, make_engine, fake_bfl, clock
):
    h = await make_engine(config={"submit_window_seconds": 90})
    await h.engine.stop(grace=0.1)  # this engine is the 'stalled holder': its lease is gone
    await _a_marked_submit_of_another_host(db, h, lease_left_ms=-1_000)  # its lease ran out a second ago
    taker = await make_engine()
    await taker.engine.reconcile()
    assert (await taker.store.get(5)).status is JobStatus.SUBMITTING  # its POST may still be on the wire
    clock.advance(seconds=91)
    await taker.engine.reconcile()
    job = await taker.store.get(5)
    assert job.status is JobStatus.UNKNOWN and job.claimed_by == taker.engine.identity.id
    assert await taker.money(5) == (40_000, 0)  # the server pays the estimate; the member is refunded


async def _a_marked_submit_of_another_host(db, h, *, lease_left_ms):
    """Job 5: claimed and marked sent by a process on another host, its answer never recorded."""
    now_ms = int(h.engine.clock().timestamp() * 1000)
    async with db.transaction() as tx:
        await tx.execute(
            "INSERT INTO jobs (id, guild_id, channel_id, user_id, model, prompt, params, seed, width, height,"
            " cache_key, status, estimated_micros, created_at, updated_at, submit_started_at, claimed_by, acked)"
            " VALUES (5, 1000, 2000, 3000, 'flux-pro-1.1', 'p', '{}', 1, 1024, 1024, 'k', 'submitting', 40000,"
            " ?, ?, ?, 'gone:1:a:b', 1)",
            (now_ms, now_ms, now_ms),
        )
        if lease_left_ms is not None:  # None: it stopped (its lease row is gone)
            await tx.execute(
                "INSERT INTO processes (id, role, host, pid, started_at, lease_expires_at)"
                " VALUES ('gone:1:a:b', 'worker', 'another-host', 1, ?, ?)",
                (now_ms - 60_000, now_ms + lease_left_ms),
            )
        await tx.execute(
            "INSERT INTO ledger (kind, job_id, guild_id, user_id, model, server_micros, member_micros,"
            " member_images, day, week, month, at) VALUES ('reserve', 5, 1000, 3000, 'flux-pro-1.1', 40000,"
            " 40000, 1, 'd', 'w', 'm', 0)"
        )


async def test_a_takeover_whose_unknown_record_failed_is_not_left_waiting_for_the_old_holder(
    db, make_engine, monkeypatch
):
    """The old holder stopped (no lease): unknown at once; that record failed (the database) and is tried again.

    Found by the soak: on the next heartbeat the job was this process's own, and it waited a whole
    submit window for a sender that it had already judged gone; its group's images waited with it.
    """
    h = await make_engine(config={"submit_window_seconds": 90})
    await _a_marked_submit_of_another_host(db, h, lease_left_ms=None)
    refused = refuse_apply(monkeypatch, h.store, {Event.SUBMIT_UNKNOWN})
    await h.engine.reconcile()
    assert refused == [(5, Event.SUBMIT_UNKNOWN)] and (await h.store.get(5)).status is JobStatus.SUBMITTING
    await h.engine.reconcile()  # no time passes: nobody can be sending it
    assert (await h.store.get(5)).status is JobStatus.UNKNOWN


def test_fast_engine_defaults_are_only_timings():
    assert set(FAST_ENGINE) <= {"progress_interval", "retry_backoff_seconds", "delivery_backoff_seconds"}


async def test_a_group_claim_that_committed_but_raised_is_posted_by_the_same_process(make_engine, monkeypatch):
    """The claim's write committed and then the connection broke: the claim is this process's, and it posts.

    Found by the soak on PostgreSQL: the group kept `poster` = this process, which took that for a post in
    progress (its own) and never posted it; the other processes saw a live poster: held forever.
    """
    h = await make_engine()
    real_claim = h.engine.groups.claim_posting
    broken = []

    async def claim_then_break(group_id, me, **kwargs):
        claimed = await real_claim(group_id, me, **kwargs)
        if claimed is not None and not broken:
            broken.append(group_id)
            raise ConnectionResetError("connection was closed after the commit")
        return claimed

    monkeypatch.setattr(h.engine.groups, "claim_posting", claim_then_break)
    await h.engine.admit_group([request(seed=1), request(seed=2)], who(77))
    await h.engine.acknowledged_group(77)
    await h.presenter.wait_for(lambda: 77 in h.presenter.groups)
    assert broken == [77] and len(h.presenter.groups[77]) == 1
    members = await h.engine.groups.members(77)
    await h.presenter.wait_for(lambda: True)
    for job in members:
        await h.engine.wait_job(job.id)
    assert [job.status for job in await h.engine.groups.members(77)] == [JobStatus.DELIVERED] * 2
    assert await h.ledger.open_job_ids() == []


async def test_the_record_that_the_member_was_told_survives_a_database_error(make_engine, monkeypatch):
    """The Cancel click was answered, then recording it failed: the reconciler must not say it again.

    Found by the soak: the member got the answer and, later, the same text again in the channel.
    """
    h = await make_engine()
    await h.engine.admit(request(), who(1), acked=False)  # not claimed until acknowledged: still queued
    assert (await h.engine.cancel(1, actor_id=ALICE, is_moderator=False)).cancelled
    real = h.store.mark_told
    failures = []

    async def flaky_mark_told(job_id):
        if not failures:
            failures.append(job_id)
            raise sqlite3.OperationalError("database is locked")
        return await real(job_id)

    monkeypatch.setattr(h.store, "mark_told", flaky_mark_told)
    await h.engine.told(1)  # the cog's call: never raises for a record it can retry
    await h.engine.wait_idle()
    assert failures == [1]
    assert await h.store.untold(created_after=0) == []


async def test_a_group_that_cannot_be_shown_anywhere_is_refunded_at_once(make_engine, fake_bfl):
    """A private gallery whose token died and whose member's DMs are closed, as a single result is.

    Found by the soak: the group was retried for an hour with its images' money held.
    """
    presenter = RecordingPresenter()

    async def nowhere(result):
        presenter.refused += 1
        await presenter._notify_all()
        raise Undeliverable("the private result's interaction expired and the member's DMs are closed")

    presenter.deliver_group = nowhere
    h = await make_engine(presenter)
    await h.engine.admit_group([request(seed=1), request(seed=2)], who(88))
    await h.engine.acknowledged_group(88)

    await h.presenter.wait_for(lambda: presenter.refused)
    await h.engine.wait_idle()  # the drive that tried the post gives the group up
    assert presenter.refused == 1  # not tried again: nothing can show it
    assert [job.status for job in await h.engine.groups.members(88)] == [JobStatus.FAILED] * 2
    assert await h.ledger.open_job_ids() == []
    for job in await h.engine.groups.members(88):
        assert await h.ledger.member_charged(job.id) is False  # refunded: the member never saw them


async def test_an_admission_that_fails_after_its_write_is_released_and_marked_told_at_once(make_engine):
    """The database failed after the admission committed (the member is told "something went wrong").

    The job is released and marked told at once, so no other process later tells the member a second,
    different story ("the bot restarted…") if this one dies before its reconciler would have.
    """

    def fail_after_the_write(name, job_id):
        if name == "after_reserve":
            raise ConnectionError("the database answered the commit, then the connection broke")

    h = await make_engine(engine_options={"checkpoint": fail_after_the_write})
    with pytest.raises(ConnectionError):
        await h.engine.admit(request(seed=3), who(77), acked=False)
    job = await h.store.get(77)
    assert job.status is JobStatus.CANCELLED and job.told
    assert await h.ledger_kinds(77) == ["reserve", "release"]
