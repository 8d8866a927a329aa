"""Job groups on both backends: all-or-nothing admission, one poster, a dead poster replaced."""

import asyncio

import pytest

from bot.billing.ledger import Ledger, Limit, Metric, ReserveTerms, Scope
from bot.config import Period, RefundPolicy
from bot.engine.groups import GroupStore, NewGroup
from bot.engine.jobs import AdmissionRefused, NewJob
from bot.engine.leases import ProcessIdentity
from bot.engine.states import Event, JobStatus
from bot.engine.store import JobStore

PRICE = 40_000


def member(n, user=7):
    return NewJob(
        id=0, guild_id=1, channel_id=5, user_id=user, model="flux-pro-1.1", prompt="p", params={"prompt": "p"},
        seed=n, width=1024, height=1024, cache_key="ab" * 16, aspect_ratio="1:1", estimated_micros=PRICE,
        interaction_token="secret",
    )  # fmt: skip


def group(group_id, size, user=7):
    return NewGroup(
        id=group_id, guild_id=1, channel_id=5, user_id=user, size=size, application_id=9, interaction_token="t"
    )


def budget(micros):
    return [Limit(Scope.MEMBER, Metric.USD, Period.DAY, micros, "test")]


@pytest.fixture
def ledger(db, clock):
    return Ledger(db, clock)


@pytest.fixture
def groups(db, ledger, clock):
    return GroupStore(db, ledger, clock)


@pytest.fixture
def jobs(db, ledger, clock):
    return JobStore(db, ledger, clock)


async def admit(groups, group_id, size, *, limit=10 * PRICE, cooldown=0, pending=100):
    return await groups.admit(
        group(group_id, size), [member(n) for n in range(size)], ReserveTerms(budget(limit), pending, cooldown),
    )  # fmt: skip


async def test_admission_reserves_every_image_or_none(groups, db):
    with pytest.raises(AdmissionRefused):
        await admit(groups, 500, 4, limit=3 * PRICE)  # covers 3 of 4
    for table in ("ledger", "jobs", "job_groups"):
        assert await db.fetch_value(f"SELECT COUNT(*) FROM {table}") == 0, table
    members = await admit(groups, 501, 3, limit=3 * PRICE)
    assert [m.group_index for m in members] == [0, 1, 2] and {m.group_id for m in members} == {501}
    assert len({m.id for m in members}) == 3 and all(m.id != 501 for m in members)
    assert all(m.status is JobStatus.QUEUED and not m.acked and m.interaction_token is None for m in members)
    assert await db.fetch_value("SELECT COUNT(*) FROM ledger WHERE kind = 'reserve'") == 3
    again = await admit(groups, 501, 3, limit=3 * PRICE)  # the same request twice: one group
    assert [m.id for m in again] == [m.id for m in members]
    assert await db.fetch_value("SELECT COUNT(*) FROM ledger WHERE kind = 'reserve'") == 3
    stored = await groups.get(501)
    assert stored.size == 3 and stored.interaction_token == "t" and stored.posted_at is None


async def test_pending_cap_counts_every_image_and_the_cooldown_applies_once(groups, db):
    with pytest.raises(AdmissionRefused):
        await admit(groups, 600, 4, pending=3)
    assert await admit(groups, 601, 4, cooldown=60)  # one request: its own images don't cool each other down
    with pytest.raises(AdmissionRefused):
        await admit(groups, 602, 2, cooldown=60)
    assert await db.fetch_value("SELECT COUNT(*) FROM ledger WHERE kind = 'reserve'") == 4


async def test_acknowledge_once(groups):
    members = await admit(groups, 700, 2)
    assert [m.id for m in await groups.acknowledge(700)] == [m.id for m in members]
    assert await groups.acknowledge(700) == []


async def finish_all(groups, jobs, group_id):
    for job in await groups.members(group_id):
        await jobs.apply(job.id, Event.CANCELLED, RefundPolicy.ERRORS)


async def test_exactly_one_of_two_processes_claims_a_finished_group(groups, jobs, db, clock):
    await admit(groups, 800, 3)
    one, two = ProcessIdentity(), ProcessIdentity()
    for me in (one, two):
        me.started()
        await jobs.renew_lease(me, seconds=30)
    assert await groups.claim_posting(800, one) is None  # still running
    assert await groups.finished_unposted() == []
    await finish_all(groups, jobs, 800)
    assert await groups.finished_unposted() == [800]
    claims = await asyncio.gather(groups.claim_posting(800, one), groups.claim_posting(800, two))
    [winner] = [me for me, claim in zip((one, two), claims, strict=True) if claim is not None]
    loser = two if winner is one else one
    assert await groups.claim_posting(800, loser) is None and await groups.claim_posting(800, winner) is None
    assert (await groups.get(800)).poster == winner.id  # its line shows no more progress (the paint fence)
    assert not await groups.mark_posted(claims[0] or claims[1], loser, channel_id=5, message_id=6)
    assert await groups.mark_posted(claims[0] or claims[1], winner, channel_id=5, message_id=6)
    posted = await groups.get(800)
    assert posted.posted_at is not None and posted.result_message_id == 6 and posted.interaction_token is None
    assert await groups.finished_unposted() == [] and await groups.claim_posting(800, loser) is None
    assert await groups.refunded([m.id for m in await groups.members(800)]) == 3  # cancelled: released
    for me in (one, two):
        me.stopped()


async def test_a_poster_that_died_is_replaced_and_a_live_one_is_not(groups, jobs):
    await admit(groups, 900, 2)
    await finish_all(groups, jobs, 900)
    first, second = ProcessIdentity(), ProcessIdentity()
    first.started()
    second.started()
    await jobs.renew_lease(first, seconds=30)
    assert await groups.claim_posting(900, first) is not None
    assert await groups.claim_posting(900, second) is None  # the poster is alive
    first.stopped()
    await jobs.release_lease(first)  # stopped (or its lease expired) before posting
    claimed = await groups.claim_posting(900, second)
    assert claimed is not None and claimed.poster == second.id
    second.stopped()


async def test_a_claim_given_up_after_an_error_can_be_taken_again(groups, jobs):
    await admit(groups, 950, 2)
    await finish_all(groups, jobs, 950)
    me = ProcessIdentity()
    me.started()
    await jobs.renew_lease(me, seconds=30)
    claimed = await groups.claim_posting(950, me)
    assert claimed is not None and await groups.claim_posting(950, me) is None  # never twice at once
    await groups.release_posting(claimed, me)
    assert (await groups.get(950)).poster is None and await groups.claim_posting(950, me) is not None
    me.stopped()


async def test_a_stale_claim_of_this_process_is_taken_again_only_when_the_caller_says_so(groups, jobs):
    await admit(groups, 960, 2)
    await finish_all(groups, jobs, 960)
    me, other = ProcessIdentity(), ProcessIdentity()
    me.started()
    other.started()
    await jobs.renew_lease(me, seconds=30)
    assert await groups.claim_posting(960, me) is not None  # then the connection broke: nobody posts it
    assert await groups.claim_posting(960, me) is None  # by default, taken for a post in progress
    assert await groups.claim_posting(960, other, reclaim=True) is None  # not other's claim: me is alive
    again = await groups.claim_posting(960, me, reclaim=True)
    assert again is not None and again.poster == me.id
    me.stopped()
    other.stopped()


async def test_a_group_whose_post_was_refused_is_not_claimed_again_before_its_retry_is_due(groups, jobs, clock):
    """Found by the soak: every member's drive and every heartbeat posted again at once, whatever the back-off."""
    from datetime import timedelta

    await admit(groups, 970, 2)
    await finish_all(groups, jobs, 970)
    me = ProcessIdentity()
    me.started()
    await jobs.renew_lease(me, seconds=300)
    claimed = await groups.claim_posting(970, me)
    await groups.retry_posting(claimed, me, retry_at=clock() + timedelta(seconds=5), attempts=1)
    assert await groups.claim_posting(970, me, reclaim=True) is None  # not due yet
    clock.advance(seconds=5)
    assert await groups.claim_posting(970, me, reclaim=True) is not None
    me.stopped()
