"""The progress painter: edits only on change, at most one per interval per job, never past the token."""

import asyncio

from bot.billing.ledger import Ledger, ReserveTerms
from bot.engine.progress import GroupPosted, Posted, Progress, ProgressPainter, reencoded_reason
from bot.engine.states import JobStatus
from bot.engine.store import JobStore, NewJob


class SlowPresenter:
    def __init__(self):
        self.edits = []
        self.release = asyncio.Event()
        self.edited = asyncio.Condition()

    def progress_text(self, progress):
        return f"{progress.status.value} {progress.position}"

    async def show_progress(self, job, progress, text):
        self.edits.append(text)
        async with self.edited:
            self.edited.notify_all()
        await self.release.wait()


class Clock:
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now


async def make_job(db, clock):
    store = JobStore(db, Ledger(db, clock), clock)
    new = NewJob(
        id=1, guild_id=1, channel_id=2, user_id=3, model="flux-pro-1.1", prompt="p", params={"prompt": "p"},
        seed=1, width=1024, height=1024, cache_key="ab" * 16, aspect_ratio="1:1", estimated_micros=40_000,
        application_id=9, interaction_token="tok",
    )  # fmt: skip
    return await store.admit(new, ReserveTerms([], 10), cached=False, acked=True)


async def test_one_edit_at_a_time_only_on_change_and_throttled(db, clock):
    job = await make_job(db, clock)
    presenter = SlowPresenter()
    mono = Clock()
    painter = ProgressPainter(presenter, min_interval=3.0, clock=clock, monotonic=mono)
    runner = asyncio.create_task(painter.run())
    try:
        painter.set(job, Progress(JobStatus.QUEUED, job.model, position=3))
        async with asyncio.timeout(2), presenter.edited:
            await presenter.edited.wait_for(lambda: presenter.edits)
        painter.set(job, Progress(JobStatus.QUEUED, job.model, position=2))  # while the first edit hangs
        painter.set(job, Progress(JobStatus.QUEUED, job.model, position=1))
        await asyncio.sleep(0)
        assert presenter.edits == ["queued 3"]  # never two edits of one message at once
        presenter.release.set()
        mono.now = 1.0
        painter._wake.set()
        await asyncio.sleep(0.05)
        assert presenter.edits == ["queued 3"]  # within 3 s of the last edit: wait
        mono.now = 3.5
        painter._wake.set()
        async with asyncio.timeout(2), presenter.edited:
            await presenter.edited.wait_for(lambda: len(presenter.edits) == 2)
        assert presenter.edits == ["queued 3", "queued 1"]  # only the newest text, skipping "2"
        mono.now = 10.0
        painter.set(job, Progress(JobStatus.QUEUED, job.model, position=1))  # same text: no edit
        await asyncio.sleep(0.05)
        assert len(presenter.edits) == 2
    finally:
        runner.cancel()


async def test_no_edits_once_the_token_is_about_to_expire(db, clock):
    job = await make_job(db, clock)
    presenter = SlowPresenter()
    presenter.release.set()
    painter = ProgressPainter(presenter, min_interval=0.0, clock=clock)
    runner = asyncio.create_task(painter.run())
    try:
        clock.advance(minutes=14, seconds=1)
        painter.set(job, Progress(JobStatus.QUEUED, job.model, position=1))
        await asyncio.sleep(0.05)
        assert presenter.edits == []
    finally:
        runner.cancel()


def test_the_posted_file_is_recorded_as_original_or_reencoded_with_its_reason():
    assert Posted(1, 2).result_file == "original" and reencoded_reason("original") is None
    why = "the original (12 MiB) is over Discord's upload limit here (10 MiB)"
    recorded = Posted(1, 2, reencoded=why).result_file
    assert recorded.startswith("reencoded") and reencoded_reason(recorded) == why
    assert reencoded_reason(None) is None  # nothing recorded (posted before the column existed)
    assert GroupPosted(1, 2, {7: None, 8: why}).result_files() == {7: "original", 8: recorded}
