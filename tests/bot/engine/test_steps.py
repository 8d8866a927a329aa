"""The step table, step by step: each step × each outcome of its side effect (beside test_decision.py).

Each step runs against the fake BFL over real HTTP and a real database, on a job put in the step's
state by the engine's own store; the test checks the one :class:`Outcome` it reports (the driver and
the money decision are tested elsewhere), and what it recorded before its side effect.
"""

import pytest

from bot.engine.progress import Undeliverable
from bot.engine.states import Event, JobStatus
from tests.bot.engine.conftest import RecordingPresenter, request, who
from tests.fakes.fake_bfl import Behaviour


@pytest.fixture
async def parked(make_engine):
    """An engine whose dispatcher claims nothing: steps are called by hand on jobs it admitted."""
    h = await make_engine()
    h.engine.dispatcher.claim_one = _never  # the test drives each step itself
    return h


async def _never():
    return False


async def submitting(h, job_id=1, **options):
    await h.engine.admit(request(seed=job_id, **options), who(job_id), acked=True)
    job = await h.store.claim(max_active=24, member_cap=24, holder=h.engine.identity.id)
    assert job is not None and job.id == job_id
    return job


async def generating(h, fake_bfl, job_id=1):
    job = await submitting(h, job_id)
    outcome = await h.engine.steps.submit(job)
    assert outcome.event is Event.ACCEPTED
    applied = await h.store.apply(job.id, Event.ACCEPTED, h.settings.refund_policy, **outcome.fields)
    return applied.job


async def downloading(h, fake_bfl, job_id=1):
    job = await generating(h, fake_bfl, job_id)
    while True:
        outcome = await h.engine.steps.poll(job)
        if outcome.event is not None:
            break
    assert outcome.event is Event.FINISHED
    return (await h.store.apply(job.id, Event.FINISHED, h.settings.refund_policy, **outcome.fields)).job


async def delivering(h, fake_bfl, job_id=1):
    job = await downloading(h, fake_bfl, job_id)
    assert (await h.engine.steps.download(job)).event is Event.DOWNLOADED
    return (await h.store.apply(job.id, Event.DOWNLOADED, h.settings.refund_policy)).job


# -- submit ------------------------------------------------------------------------------------------


async def test_submit_accepted_records_the_mark_first_and_reports_the_task(parked, fake_bfl):
    job = await submitting(parked)
    outcome = await parked.engine.steps.submit(job)
    assert outcome.event is Event.ACCEPTED and outcome.fields["bfl_task_id"] in fake_bfl.tasks
    assert (await parked.store.get(1)).submit_started_at is not None  # committed before the POST


@pytest.mark.parametrize(
    ("behaviour", "event"),
    [
        (Behaviour(submit_status=422), Event.SUBMIT_REFUSED),  # BFL refused it: no task
        (Behaviour(submit_status=402), Event.SUBMIT_REFUSED),
        (Behaviour(submit_status_after_create=502), Event.SUBMIT_UNKNOWN),  # may exist: never resent
        (Behaviour(hang=True), Event.SUBMIT_UNKNOWN),
    ],
)
async def test_submit_failures(parked, fake_bfl, behaviour, event, monkeypatch):
    import bot.bfl.client as client

    monkeypatch.setattr(client, "SUBMIT_TIMEOUT", client.aiohttp.ClientTimeout(total=1))
    parked.bfl._submit_timeout = client.aiohttp.ClientTimeout(total=1)
    fake_bfl.script(behaviour)
    outcome = await parked.engine.steps.submit(await submitting(parked))
    assert outcome.event is event


async def test_submit_rate_limited_clears_the_mark_and_waits(parked, fake_bfl):
    fake_bfl.script(Behaviour(submit_status=429, retry_after="7"))
    outcome = await parked.engine.steps.submit(await submitting(parked))
    assert outcome.event is None and outcome.wait >= 7
    job = await parked.store.get(1)
    assert job.status is JobStatus.SUBMITTING and job.submit_started_at is None  # nothing was created
    assert job.next_attempt_at is not None


async def test_submit_without_the_lease_stops_before_any_post(parked, fake_bfl):
    job = await submitting(parked)
    await parked.store.release_lease(parked.engine.identity)  # as if the lease ran out
    outcome = await parked.engine.steps.submit(job)
    assert outcome.stop and fake_bfl.submits == []


async def test_a_resubmit_of_a_sent_job_is_unknown_never_a_second_post(parked, fake_bfl):
    job = await submitting(parked)
    marked = await parked.store.start_sending(job.id, parked.engine.identity)
    parked.engine.steps._posted.add(job.id)  # this process sent it; its answer was lost
    outcome = await parked.engine.steps.submit(marked)
    assert outcome.event is Event.SUBMIT_UNKNOWN and fake_bfl.submits == []


# -- poll ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("behaviour", "event"),
    [
        (Behaviour(), Event.FINISHED),
        (Behaviour(final_status="Error"), Event.TASK_FAILED),
        (Behaviour(final_status="Error", final_http_status=503), Event.TASK_FAILED),
        (Behaviour(final_status="Request Moderated"), Event.REQUEST_MODERATED),
        (Behaviour(final_status="Content Moderated"), Event.CONTENT_MODERATED),
    ],
)
async def test_poll_outcomes(parked, fake_bfl, behaviour, event):
    fake_bfl.script(behaviour)
    job = await generating(parked, fake_bfl)
    outcome = await parked.engine.steps.poll(job)
    while outcome.event is None:  # still running: a wait from the poll plan
        assert outcome.wait is not None and outcome.wait >= 0
        outcome = await parked.engine.steps.poll(job)
    assert outcome.event is event


async def test_poll_running_reports_a_wait_and_the_stage(parked, fake_bfl):
    import asyncio

    fake_bfl.script(Behaviour(release=asyncio.Event()))  # Pending until released
    job = await generating(parked, fake_bfl)
    outcome = await parked.engine.steps.poll(job)
    assert outcome.event is None and outcome.wait is not None and outcome.fields == {"bfl_stage": "Pending"}


async def test_poll_past_the_deadline_times_out(make_engine, fake_bfl, monkeypatch):
    import asyncio

    import bot.engine.steps as steps

    monkeypatch.setattr(steps, "RESUME_MIN_TIMEOUT", 0.0)
    h = await make_engine(config={"job_timeout_seconds": 0.0})
    h.engine.dispatcher.claim_one = _never
    fake_bfl.script(Behaviour(release=asyncio.Event()))
    outcome = await h.engine.steps.poll(await generating(h, fake_bfl))
    assert outcome.event is Event.TIMED_OUT


# -- download --------------------------------------------------------------------------------------------


async def test_download_caches_the_result(parked, fake_bfl):
    job = await downloading(parked, fake_bfl)
    assert (await parked.engine.steps.download(job)).event is Event.DOWNLOADED
    assert await parked.engine.cache.contains(job.cache_key)


async def test_download_of_an_expired_result_is_a_failed_task(parked, fake_bfl):
    fake_bfl.script(Behaviour(delivery_ttl=0))  # the signed URL is already expired
    job = await downloading(parked, fake_bfl)
    assert (await parked.engine.steps.download(job)).event is Event.TASK_FAILED


# -- deliver ---------------------------------------------------------------------------------------------


async def test_deliver_posts_and_reports_where(parked, fake_bfl):
    job = await delivering(parked, fake_bfl)
    outcome = await parked.engine.steps.deliver(job)
    assert outcome.event is Event.DELIVERED and outcome.fields["result_message_id"] == 10_001
    assert outcome.fields["result_file"] == "original"


async def test_deliver_refused_by_discord_waits_and_counts_the_try(parked, fake_bfl):
    parked.presenter.fail_delivery = 1
    job = await delivering(parked, fake_bfl)
    outcome = await parked.engine.steps.deliver(job)
    assert outcome.event is None and outcome.wait > 0 and outcome.fields == {"delivery_attempts": 1}


async def test_deliver_nowhere_to_show_it_is_a_delivery_failure(parked, fake_bfl):
    class Nowhere(RecordingPresenter):
        async def deliver(self, result):
            raise Undeliverable("DMs closed")

    parked.engine.presenter.fill(Nowhere())
    job = await delivering(parked, fake_bfl)
    outcome = await parked.engine.steps.deliver(job)
    assert outcome.event is Event.DELIVERY_FAILED and outcome.code == "undeliverable"


async def test_deliver_without_its_bytes_is_lost(parked, fake_bfl):
    job = await delivering(parked, fake_bfl)
    await parked.engine.cache.delete(job.cache_key)
    parked.engine.steps.forget(job.id)
    fake_bfl.script(Behaviour(delivery_ttl=0))
    outcome = await parked.engine.steps.deliver(
        job.__class__(**{**job.__dict__, "sample_url": None})  # nor BFL's URL any more
    )
    assert outcome.event is Event.DELIVERY_FAILED and outcome.code == "lost"


async def test_deliver_after_the_deadline_is_refunded_as_undeliverable(make_engine, fake_bfl, clock):
    h = await make_engine(config={"undeliverable_after_seconds": 60.0})
    h.engine.dispatcher.claim_one = _never
    job = await delivering(h, fake_bfl)
    clock.advance(seconds=61)
    outcome = await h.engine.steps.deliver(job)
    assert outcome.event is Event.DELIVERY_FAILED and outcome.code == "undeliverable"


async def test_the_table_names_one_step_per_open_state(parked):
    steps = parked.engine.steps
    job = await submitting(parked)
    table = {
        JobStatus.QUEUED: None,
        JobStatus.SUBMITTING: steps.submit,
        JobStatus.GENERATING: steps.poll,
        JobStatus.DOWNLOADING: steps.download,
        JobStatus.DELIVERING: steps.deliver,
        JobStatus.CACHED: steps.deliver,
    }
    for status, step in table.items():
        assert steps.for_job(job.__class__(**{**job.__dict__, "status": status})) == step
    grouped = job.__class__(**{**job.__dict__, "status": JobStatus.DELIVERING, "group_id": 7})
    assert steps.for_job(grouped) == steps.post_group  # a group's image: its group posts it
