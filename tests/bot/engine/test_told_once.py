"""A job's last message is told by one process only: the one that holds the "told" claim.

Found by the soak (two processes, short leases under load): a process ended a job and was still
telling the member (a slow channel post, a Cancel click whose answer waits for progress edits to
land) when the other process's heartbeat saw the job ended and untold, its holder's lease lapsed,
and told the member too: "the bot restarted…" and "could not start this request in time", or
"🚫 Cancelled" twice.
"""

import asyncio

from bot.engine import effects
from bot.engine.outcomes import NOT_STARTED_TEXT
from bot.engine.states import JobStatus
from tests.bot.engine.conftest import ALICE, RecordingPresenter, request, who


class HeldPresenter(RecordingPresenter):
    """A presenter whose notices wait for ``release`` (a slow Discord), counting every notice sent."""

    def __init__(self) -> None:
        super().__init__()
        self.release = asyncio.Event()
        self.reached = asyncio.Event()
        self.sent: list[tuple[int, str]] = []

    async def notify(self, job, text) -> None:
        self.reached.set()
        await self.release.wait()
        self.sent.append((job.id, text))
        await super().notify(job, text)


async def _lapse_lease(h) -> None:
    """The process's lease ran out (a starved event loop): it is alive, and still telling."""
    now_ms = h.store.now_ms()
    await h.db.execute("UPDATE processes SET lease_expires_at = ? WHERE id = ?", (now_ms - 1_000, h.engine.identity.id))


async def test_a_member_being_told_by_one_process_is_not_told_again_by_another(make_engine, clock):
    held = HeldPresenter()
    first = await make_engine(held)
    other = await make_engine()
    await first.engine.admit(request(), who(1), acked=False)
    await first.engine.abandon(1, answered=True)  # "something went wrong…": told in the background
    await asyncio.wait_for(held.reached.wait(), timeout=5)
    await _lapse_lease(first)
    clock.advance(seconds=15)  # past a heartbeat since it ended
    await other.engine.reconcile()
    await other.engine.wait_idle()
    held.release.set()
    await first.presenter.wait_for(lambda: held.sent)
    await first.engine.wait_idle()
    assert other.presenter.notified == {}  # told once, by the process that ended it
    assert [text for _, text in held.sent] == [NOT_STARTED_TEXT]
    assert (await first.store.get(1)).told


async def test_a_cancel_whose_answer_is_on_its_way_is_not_told_again_by_another_process(make_engine, clock):
    first = await make_engine()
    other = await make_engine()
    await first.engine.admit(request(), who(2), acked=False)
    assert (await first.engine.cancel(2, actor_id=ALICE, is_moderator=False)).cancelled
    # The click's answer waits (up to a minute) for progress edits in flight to land.
    await _lapse_lease(first)
    clock.advance(seconds=15)  # past a heartbeat since it ended
    await other.engine.reconcile()
    await other.engine.wait_idle()
    assert other.presenter.notified == {} and first.presenter.notified == {}
    await first.engine.told(2)  # the answer was shown
    await first.engine.wait_idle()
    job = await first.store.get(2)
    assert job.status is JobStatus.CANCELLED and job.told


async def test_a_teller_that_gave_up_leaves_the_member_to_the_reconciler(make_engine, clock, monkeypatch):
    """Discord refused every try: the claim is given back, and the next heartbeat tells the member."""
    presenter = RecordingPresenter()
    refused = []

    async def refuse(job, text):
        refused.append(text)
        raise RuntimeError("Discord said no")

    presenter.notify = refuse
    monkeypatch.setattr(effects, "TELL_BACKOFF_SECONDS", ())  # one try, no back-off
    first = await make_engine(presenter)
    other = await make_engine()
    await first.engine.admit(request(), who(3), acked=False)
    await first.engine.abandon(3, answered=True)
    await first.engine.wait_idle()
    assert refused == [NOT_STARTED_TEXT]
    await _lapse_lease(first)
    clock.advance(seconds=15)  # past a heartbeat since it ended
    await other.engine.reconcile()
    assert "not been charged" in await other.presenter.ended(3)
    await other.engine.wait_idle()
    assert (await other.store.get(3)).told


async def test_a_claim_left_by_a_failed_teller_of_this_process_does_not_silence_it(make_engine, clock, monkeypatch):
    """The claim was taken, then the tell failed before any message (the database away): the heartbeat tells.

    Found by the soak: the member was never told, the claim of this very process kept its heartbeat away.
    """
    h = await make_engine()
    real = h.ledger.member_charged
    failures = []

    async def flaky_member_charged(job_id):
        if not failures:
            failures.append(job_id)
            raise ConnectionError("connection was closed in the middle of operation")
        return await real(job_id)

    monkeypatch.setattr(h.ledger, "member_charged", flaky_member_charged)
    await h.engine.admit(request(), who(4), acked=False)
    clock.advance(seconds=11)  # never acknowledged: released by the heartbeat, which tells the member
    await h.engine.reconcile()
    await h.engine.wait_idle()
    assert failures == [4] and h.presenter.notified == {}
    clock.advance(seconds=15)
    await h.engine.reconcile()
    assert "not been charged" in await h.presenter.ended(4)
