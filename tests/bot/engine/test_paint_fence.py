"""The paint fence (bot/engine/paint_fence.py): a progress edit never lands after a job's last message.

Against the real database (both backends), as two processes would use it: a painter's stamp holds back
the poster of the last message until the edit is done; a job whose progress is over is never stamped
(nothing is sent); a group's line is fenced on its group's row; a dead painter's stamp lapses.
"""

import asyncio
import dataclasses

from bot.engine.paint_fence import PaintFence
from bot.engine.progress import Progress, ProgressPainter
from bot.engine.states import JobStatus
from tests.bot.engine.conftest import request, who
from tests.fakes.fake_bfl import Behaviour

BOB = 3001
FIRST = 1_579_000_000_000_000_000  # snowflakes, as interactions' ids are (a group's images count from 1)


async def _engine_with_a_full_slot(make_engine, fake_bfl):
    """An engine whose one BFL slot is taken: whatever is admitted next stays queued."""
    h = await make_engine(bfl_max_active_tasks=1)
    fake_bfl.default = Behaviour(release=asyncio.Event())
    await h.engine.admit(request(seed=1), who(FIRST), acked=True)
    await fake_bfl.wait_for(lambda: fake_bfl.active_tasks == 1, timeout=5)
    return h


async def _queued_job(make_engine, fake_bfl):
    h = await _engine_with_a_full_slot(make_engine, fake_bfl)
    await h.engine.admit(request(seed=2), who(FIRST + 1, user=BOB), acked=True)
    job = await h.store.get(FIRST + 1)
    assert job.status is JobStatus.QUEUED
    return h, job


def _fence(h, budget=10.0):
    """A fence as another process has it: its own object, the same database."""
    return PaintFence(h.store.db, h.store.now_ms, budget_seconds=budget)


async def _still_waiting(task, seconds=0.3):
    done, _ = await asyncio.wait({task}, timeout=seconds)
    return not done


async def test_a_stamped_edit_holds_back_the_last_message_until_it_is_done(make_engine, fake_bfl):
    h, job = await _queued_job(make_engine, fake_bfl)
    painter, poster = _fence(h), _fence(h)
    stamp = await painter.enter(job)
    assert stamp is not None
    cancelled = await h.engine.cancel(job.id, actor_id=BOB, is_moderator=False)  # its progress is over
    assert cancelled.cancelled
    waiting = asyncio.create_task(poster.wait(job.id))
    assert await _still_waiting(waiting)  # the edit may still land: the last message waits
    await painter.leave(job, stamp)
    await asyncio.wait_for(waiting, timeout=5)


async def test_a_job_whose_progress_is_over_is_never_stamped(make_engine, fake_bfl):
    h, job = await _queued_job(make_engine, fake_bfl)
    await h.engine.cancel(job.id, actor_id=BOB, is_moderator=False)
    assert await _fence(h).enter(job) is None
    await asyncio.wait_for(_fence(h).wait(job.id), timeout=5)  # nothing to wait for


async def test_a_groups_line_is_fenced_on_its_group_until_its_last_message_is_claimed(make_engine, fake_bfl):
    h = await _engine_with_a_full_slot(make_engine, fake_bfl)
    members = await h.engine.admit_group([request(seed=7), request(seed=8)], who(FIRST + 2, user=BOB))
    group = await h.engine.groups.get(members[0].group_id)
    assert await h.engine.acknowledged_group(group.id)
    line = dataclasses.replace(members[0], id=group.id)  # what the painter paints for a group
    fence = _fence(h)
    stamp = await fence.enter(line)
    assert stamp is not None
    await fence.leave(line, stamp)
    cancelled = await h.engine.cancel_group(group.id, actor_id=BOB, is_moderator=False)  # its line ends: "cancelled"
    assert cancelled.cancelled
    closed = await h.engine.groups.get(group.id)  # the click's answer is its last message: closed, no post
    assert closed.posted_at is not None and group.id not in h.presenter.groups
    assert await fence.enter(line) is None


async def test_a_dead_painters_stamp_lapses(make_engine, fake_bfl):
    h, job = await _queued_job(make_engine, fake_bfl)
    fence = _fence(h, budget=0.3)
    assert await fence.enter(job) is not None  # and its process dies: never cleared
    await h.engine.cancel(job.id, actor_id=BOB, is_moderator=False)
    await asyncio.wait_for(fence.wait(job.id), timeout=5)


class _Recording:
    def __init__(self):
        self.shown = []

    def progress_text(self, progress):
        return progress.status.value

    async def show_progress(self, job, progress, text):
        self.shown.append(job.id)


async def test_the_painter_sends_nothing_for_a_job_whose_last_message_is_being_posted(make_engine, fake_bfl):
    h, job = await _queued_job(make_engine, fake_bfl)
    await h.engine.cancel(job.id, actor_id=BOB, is_moderator=False)  # e.g. by another process
    presenter = _Recording()
    painter = ProgressPainter(presenter, min_interval=0, fence=_fence(h))
    painter.set(job, Progress(JobStatus.QUEUED, job.model, position=1))
    assert painter._paint_due() is None
    await asyncio.gather(*painter._in_flight.values())
    assert presenter.shown == []
