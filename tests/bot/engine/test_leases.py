"""Job holders and process leases: who may take over a job, on both databases."""

import asyncio
import subprocess
import sys

import pytest

from bot.audit import AuditLog
from bot.billing.ledger import Ledger, ReserveTerms
from bot.billing.limits import LimitsService
from bot.config import Settings
from bot.engine.leases import Holder, ProcessIdentity, provably_gone
from bot.engine.states import JobStatus
from bot.engine.store import JobStore
from tests.bot.engine.test_store import admit, new_job

ELSEWHERE = "other-host/0000/1"  # a machine this process cannot judge by PID


def foreign(**kwargs):
    return ProcessIdentity(machine=ELSEWHERE, pid=kwargs.pop("pid", 4242), nonce="feedbeef", **kwargs)


# -- identities ------------------------------------------------------------------------------------


def test_an_identity_round_trips_through_its_id():
    me = ProcessIdentity("worker")
    holder = Holder.parse(me.id)
    assert holder == Holder(me.machine, me.pid, me.nonce, me.token)
    assert Holder.parse("garbage") is None and Holder.parse("a:b:c:d") is None


def test_a_stopped_engine_of_this_process_is_gone_at_once_a_running_one_is_not():
    first, second = ProcessIdentity(), ProcessIdentity()
    first.started()
    second.started()
    try:
        assert not provably_gone(first.id, second)
        assert first.stopped() is True and first.stopped() is False  # idempotent
        assert provably_gone(first.id, second)
    finally:
        second.stopped()


def test_a_dead_process_on_this_machine_is_gone_a_live_one_or_another_machine_is_not():
    me = ProcessIdentity()
    child = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, check=True)
    dead = ProcessIdentity(machine=me.machine, pid=int(child.stdout), nonce="0badf00d")
    alive = ProcessIdentity(machine=me.machine, pid=1, nonce="0badf00d")  # pid 1 always runs
    assert provably_gone(dead.id, me)
    assert not provably_gone(alive.id, me)
    assert not provably_gone(foreign(pid=int(child.stdout)).id, me)  # not our PID space: only the lease tells
    assert not provably_gone("not-an-identity", me)


# -- the store -------------------------------------------------------------------------------------


@pytest.fixture
async def store(db, clock):
    return JobStore(db, Ledger(db, clock), clock)


@pytest.fixture
def limits(db, clock):
    return LimitsService(
        db, Settings(_env_file=None, discord_token="x" * 10, bfl_api_key="y" * 10), AuditLog(db), clock
    )


async def test_leases_expire_unless_renewed_and_a_release_ends_them_at_once(store, clock):
    a, b = foreign(), foreign(pid=4343)
    await store.renew_lease(a, seconds=30)
    await store.renew_lease(b, seconds=30)
    assert await store.live_processes() == sorted([a.id, b.id])
    clock.advance(seconds=20)
    await store.renew_lease(a, seconds=30)
    clock.advance(seconds=15)  # b's lease ran out 5 s ago; a renewed 15 s ago
    assert await store.live_processes() == [a.id]
    await store.release_lease(a)
    assert await store.live_processes() == []


async def test_only_jobs_whose_holder_is_gone_are_orphaned(store, limits, clock):
    me, live, dead = ProcessIdentity(), foreign(), foreign(pid=4343)
    await store.renew_lease(live, seconds=30)
    await store.renew_lease(dead, seconds=1)
    await admit(store, limits, new_job(1), acked=True)  # queued and acknowledged: anyone may claim it
    await admit(store, limits, new_job(2, user=2), acked=False)  # no holder (written before holders existed)
    for job_id, holder in ((3, live), (4, dead), (5, me)):
        await store.admit(
            new_job(job_id, user=job_id), ReserveTerms([], 100),
            cached=False, acked=False, holder=holder.id,
        )  # fmt: skip
    clock.advance(seconds=2)  # the dead one's lease has expired
    orphans = await store.orphaned(me)
    assert [job.id for job in orphans] == [2, 4]
    assert {job.id: job.claimed_by for job in orphans} == {2: None, 4: dead.id}


async def test_of_several_processes_taking_a_job_at_once_exactly_one_gets_it(store, limits):
    await admit(store, limits, new_job(1), acked=False)
    seen = await store.get(1)
    takers = [foreign(pid=5000 + n) for n in range(6)]
    results = await asyncio.gather(*(store.take(seen, taker) for taker in takers))
    winners = [taker for taker, job in zip(takers, results, strict=True) if job is not None]
    assert len(winners) == 1
    assert (await store.get(1)).claimed_by == winners[0].id
    assert await store.take(seen, foreign(pid=6000)) is None  # seen with a holder it no longer has


async def test_a_claim_records_its_holder_and_the_fence_holds_only_under_a_live_lease(store, limits, clock):
    me = foreign()
    await store.renew_lease(me, seconds=30)
    await admit(store, limits, new_job(1))
    job = await store.claim(max_active=24, member_cap=2, holder=me.id)
    assert job.status is JobStatus.SUBMITTING and job.claimed_by == me.id
    assert await store.holds(1, me)
    assert not await store.holds(1, foreign(pid=4343))
    clock.advance(seconds=31)
    assert not await store.holds(1, me)  # the lease lapsed: do not submit, another process may take it
    await store.renew_lease(me, seconds=30)
    assert await store.holds(1, me)


async def test_claims_from_several_processes_share_one_slot_cap(db, clock, limits):
    stores = [JobStore(db, Ledger(db, clock), clock) for _ in range(4)]
    for job_id in range(1, 31):
        await admit(stores[0], limits, new_job(job_id, user=job_id))
    holders = [foreign(pid=7000 + n) for n in range(4)]
    pairs = zip(stores * 8, holders * 8, strict=True)
    claims = await asyncio.gather(*(s.claim(max_active=24, member_cap=2, holder=h.id) for s, h in pairs))
    claimed = [job for job in claims if job is not None]
    assert len(claimed) == 24 and len({job.id for job in claimed}) == 24
    assert await stores[0].count(JobStatus.SUBMITTING) == 24
