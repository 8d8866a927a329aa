"""The jobs table as a queue: admission in one transaction, conditional steps, the fair claim."""

import asyncio
import random

import pytest

from bot.audit import AuditLog
from bot.billing.ledger import Ledger, ReserveTerms
from bot.billing.limits import LimitsService
from bot.config import RefundPolicy, Settings
from bot.engine.fairness import queue_order
from bot.engine.jobs import AdmissionRefused, NewJob
from bot.engine.states import Event, JobStatus
from bot.engine.store import JobStore


def new_job(job_id, guild=1, user=1, model="flux-pro-1.1", estimate=40_000):
    return NewJob(
        id=job_id, guild_id=guild, channel_id=5, user_id=user, model=model, prompt="p", params={"prompt": "p"},
        seed=job_id, width=1024, height=1024, cache_key="ab" * 16, aspect_ratio="1:1", estimated_micros=estimate,
    )  # fmt: skip


@pytest.fixture
async def store(db, clock):
    return JobStore(db, Ledger(db, clock), clock)


@pytest.fixture
def limits(db, clock):
    settings = Settings(_env_file=None, discord_token="x" * 10, bfl_api_key="y" * 10)
    return LimitsService(db, settings, AuditLog(db, clock), clock)


async def admit(store, limits, job, **kwargs):
    applicable = await limits.limits_for(job.guild_id, job.user_id, ())
    return await store.admit(
        job, ReserveTerms(applicable, kwargs.pop("max_pending", 1000)),
        cached=kwargs.pop("cached", False), acked=kwargs.pop("acked", True),
    )  # fmt: skip


async def test_admission_writes_job_and_reservation_together_or_neither(store, limits, db):
    await admit(store, limits, new_job(1))
    assert await db.fetch_value("SELECT COUNT(*) FROM jobs") == 1
    assert await db.fetch_value("SELECT COUNT(*) FROM ledger WHERE kind = 'reserve'") == 1
    with pytest.raises(AdmissionRefused):
        await admit(store, limits, new_job(2, estimate=10**9))  # over every budget
    assert await db.fetch_value("SELECT COUNT(*) FROM jobs") == 1
    assert await db.fetch_value("SELECT COUNT(*) FROM ledger") == 1
    again = await admit(store, limits, new_job(1))  # the same interaction twice: one job, one reserve
    assert again.id == 1 and await db.fetch_value("SELECT COUNT(*) FROM ledger") == 1


async def test_a_step_runs_once(store, limits):
    await admit(store, limits, new_job(1))
    results = await asyncio.gather(*(store.claim(max_active=24, member_cap=24) for _ in range(5)))
    assert sum(r is not None for r in results) == 1
    assert await store.advance(1, JobStatus.QUEUED, JobStatus.SUBMITTING) is None  # already moved on
    first = await store.apply(1, Event.SUBMIT_REFUSED, RefundPolicy.ERRORS, expected=JobStatus.SUBMITTING)
    second = await store.apply(1, Event.SUBMIT_REFUSED, RefundPolicy.ERRORS, expected=JobStatus.SUBMITTING)
    assert first is not None and first.job.status is JobStatus.FAILED and second is None


async def test_concurrent_claims_never_exceed_the_slot_cap(store, limits):
    for job_id in range(1, 41):
        await admit(store, limits, new_job(job_id, user=job_id))
    claims = await asyncio.gather(*(store.claim(max_active=24, member_cap=2) for _ in range(40)))
    assert sum(c is not None for c in claims) == 24
    assert await store.count(JobStatus.SUBMITTING) == 24


async def test_kontext_max_has_its_own_cap(store, limits):
    for job_id in range(1, 11):
        await admit(store, limits, new_job(job_id, user=job_id, model="flux-kontext-max"))
    await admit(store, limits, new_job(99, user=99))
    claimed = []
    while (job := await store.claim(max_active=24, member_cap=2)) is not None:
        claimed.append(job.model)
    assert claimed.count("flux-kontext-max") == 6 and claimed.count("flux-pro-1.1") == 1


async def test_unacknowledged_jobs_are_not_claimed(store, limits):
    await admit(store, limits, new_job(1), acked=False)
    assert await store.claim(max_active=24, member_cap=2) is None


async def test_the_simulated_queue_order_is_the_order_claims_take(store, limits, clock):
    rng = random.Random(7)
    for job_id in range(1, 61):
        clock.advance(milliseconds=rng.randint(1, 5))
        await admit(store, limits, new_job(job_id, guild=rng.choice([1, 2, 3]), user=rng.choice([1, 2, 3, 4])))
    for _ in range(5):  # some already running
        await store.claim(max_active=100, member_cap=100, route_caps={})
    predicted = queue_order(await store.queue_snapshot())
    taken = []
    while (job := await store.claim(max_active=100, member_cap=100, route_caps={})) is not None:
        taken.append(job.id)
    assert taken == predicted


async def test_servers_take_turns(store, limits, clock):
    for job_id in range(1, 11):  # a flood from server 1
        clock.advance(milliseconds=1)
        await admit(store, limits, new_job(job_id, guild=1, user=1))
    clock.advance(milliseconds=1)
    await admit(store, limits, new_job(100, guild=2, user=2))  # one late request from server 2
    order = []
    while (job := await store.claim(max_active=100, member_cap=100, route_caps={})) is not None:
        order.append(job.guild_id)
    assert order[:2] == [1, 2]  # server 2 goes second, not eleventh


async def test_latency_samples_are_kept_per_model_and_bounded(store):
    for n in range(60):
        await store.record_latency("flux-pro-1.1", float(n))
    await store.record_latency("flux-dev", 2.5)
    samples = await store.latency_samples()
    assert samples["flux-dev"] == [2.5]
    assert len(samples["flux-pro-1.1"]) == 50 and samples["flux-pro-1.1"][-1] == 59.0


async def test_counts_of_open_and_of_finished_statuses(store, limits):
    await admit(store, limits, new_job(1))
    await admit(store, limits, new_job(2), acked=False)
    await store.apply(2, Event.CANCELLED, RefundPolicy.ERRORS)
    assert await store.count(JobStatus.QUEUED) == 1  # among the open jobs (their index)
    assert await store.count(JobStatus.SUBMITTING, JobStatus.GENERATING) == 0
    assert await store.count(JobStatus.CANCELLED) == 1  # a finished status: counted in the whole table
    assert await store.count(*JobStatus) == 2
