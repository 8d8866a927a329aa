"""The queue through the real engine against the fake BFL: pause, fairness between members, route caps."""

import asyncio
import dataclasses

from bot.engine.states import JobStatus
from bot.models import MODELS
from tests.bot.engine.conftest import GUILD, request, who
from tests.fakes.fake_bfl import Behaviour

BOB, CAROL, XAVIER, YVES = 3001, 3002, 3003, 3004
OTHER_GUILD = 1001


async def pause(h, guild, paused=True):
    """What `/budget pause` / `/budget resume` do: the switch, then the engine told (cogs/budget.py)."""
    await h.server.update(
        guild, "paused", int(paused), actor_id=1, action="generation.pause", shown="1" if paused else "0"
    )
    h.engine.wake(queue_changed=True)


async def test_a_paused_servers_queued_jobs_stay_queued_can_be_cancelled_and_run_on_resume(make_engine, fake_bfl):
    h = await make_engine(bfl_max_active_tasks=1, member_max_concurrent_jobs=1)
    gate = asyncio.Event()
    fake_bfl.default = Behaviour(release=gate)
    await h.engine.admit(request(seed=1), who(1), acked=True)
    await fake_bfl.wait_for(lambda: fake_bfl.active_tasks == 1, timeout=5)
    await h.engine.admit(request(seed=2), who(2, user=BOB), acked=True)
    await h.engine.admit(request(seed=3), who(3, user=CAROL), acked=True)
    await h.engine.admit(request(seed=10), who(10, user=XAVIER, guild=OTHER_GUILD), acked=True)
    await h.engine.admit(request(seed=11), who(11, user=YVES, guild=OTHER_GUILD), acked=True)
    await pause(h, GUILD)
    for job_id in (2, 3):
        await h.presenter.wait_for(lambda j=job_id: any("paused" in t for t in h.presenter.progress.get(j, [])))

    fake_bfl.default = Behaviour()
    gate.set()
    for job_id in (1, 10, 11):
        await h.ended(job_id)
    # Were the pause ignored, server 1 (served longer ago than server 2) would have had job 2 before job 11.
    assert [s.body["seed"] for s in fake_bfl.submits] == [1, 10, 11]
    assert (await h.store.get(2)).status is JobStatus.QUEUED

    cancelled = await h.engine.cancel(3, actor_id=CAROL, is_moderator=False)
    assert cancelled.cancelled and await h.ledger_kinds(3) == ["reserve", "release"]

    await pause(h, GUILD, paused=False)
    await h.ended(2)
    assert [s.body["seed"] for s in fake_bfl.submits] == [1, 10, 11, 2]
    assert (await h.store.get(2)).status is JobStatus.DELIVERED


async def test_a_member_asking_after_a_flood_from_others_is_submitted_within_one_slot_turnover(
    make_engine, fake_bfl, clock
):
    """The property, through the engine with BFL's 24 slots: 40 members fire 2 jobs each at once, and a
    41st member who asks a second later has at most 24 other submits between her request and hers.

    Why it holds: until her turn, only members never served go before her (she has never been served
    either, and asked later), each at most once (one claim makes its member "served"); with 24 slots
    taken by 24 members of the flood, 16 are left.
    """
    h = await make_engine(bfl_max_active_tasks=24)
    gate = asyncio.Event()
    fake_bfl.default = Behaviour(release=gate)
    flood, owner = [], {}
    for member in range(1, 41):
        for _ in range(2):
            job_id = len(flood) + 1
            clock.advance(milliseconds=1)
            await h.engine.admit(request(seed=job_id), who(job_id, user=5000 + member), acked=False)
            flood.append(job_id)
            owner[job_id] = 5000 + member
    # The 80 requests are answered at once (each cog acknowledges its own): the flood is queued together.
    await asyncio.gather(*(h.engine.acknowledged(job_id) for job_id in flood))
    await fake_bfl.wait_for(lambda: fake_bfl.active_tasks == 24, timeout=10)
    clock.advance(seconds=1)
    await h.engine.admit(request(seed=999), who(999, user=9999), acked=True)  # the 41st member, a second later
    seeds_before = [s.body["seed"] for s in fake_bfl.submits]
    assert len(seeds_before) == 24
    fake_bfl.default = Behaviour()
    gate.set()
    await h.ended(999)
    seeds = [s.body["seed"] for s in fake_bfl.submits]
    between = seeds[len(seeds_before) : seeds.index(999)]
    assert len(between) <= 24, len(between)
    # The rule behind it: only members never served before her request, each once.
    served_before = {owner[seed] for seed in seeds_before}
    assert len({owner[seed] for seed in between}) == len(between)
    assert not served_before & {owner[seed] for seed in between}
    for job_id in flood:
        await h.ended(job_id)
    assert len(fake_bfl.submits) == 81


async def test_a_route_cap_from_the_model_table_holds_while_other_models_run(make_engine, fake_bfl, monkeypatch):
    monkeypatch.setitem(MODELS, "flux-dev", dataclasses.replace(MODELS["flux-dev"], max_active_tasks=2))
    h = await make_engine(bfl_max_active_tasks=24, member_max_pending_jobs=20)
    gate = asyncio.Event()
    fake_bfl.default = Behaviour(release=gate)
    jobs = []
    for n in range(1, 11):  # ten jobs of the capped route, queued at once, from ten members
        await h.engine.admit(request(seed=n, model="flux-dev"), who(n, user=6000 + n), acked=True)
        jobs.append(n)
    for n in range(11, 16):  # and five of another model
        await h.engine.admit(request(seed=n), who(n, user=6000 + n), acked=True)
        jobs.append(n)
    await fake_bfl.wait_for(lambda: fake_bfl.active_for("flux-pro-1.1") == 5, timeout=10)
    assert fake_bfl.active_for("flux-dev") == 2
    assert await h.store.count(JobStatus.QUEUED) == 8
    fake_bfl.default = Behaviour()
    gate.set()
    for n in jobs:
        await h.ended(n)
    assert fake_bfl.max_active_seen_by_model["flux-dev"] == 2
    assert len(fake_bfl.submits) == 15


async def test_the_queue_wait_uses_the_models_route_cap(make_engine, monkeypatch):
    monkeypatch.setitem(MODELS, "flux-dev", dataclasses.replace(MODELS["flux-dev"], max_active_tasks=2))
    h = await make_engine(bfl_max_active_tasks=24)
    h.engine.latency.restore({"flux-dev": [10.0] * 10, "flux-pro-1.1": [10.0] * 10})
    capped = await h.engine.admit(request(seed=1, model="flux-dev"), who(1), acked=False)  # never runs
    other = await h.engine.admit(request(seed=2), who(2), acked=False)
    assert h.engine.queued_progress(capped, 5).eta_seconds == (3 + 1) * 10.0  # 5th behind 2 slots: 3 turnovers
    assert h.engine.queued_progress(other, 5).eta_seconds == (1 + 1) * 10.0  # 5th behind 24 slots
