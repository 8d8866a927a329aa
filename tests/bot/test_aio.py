import asyncio

import pytest

from bot.aio import cancel_and_wait, wait_event, within


async def _woken_and_cancelled_in_one_tick(wait):
    """A task parked in ``wait(event)`` whose event is set and which is cancelled in the same tick."""
    event, parked = asyncio.Event(), asyncio.Event()

    async def waiter():
        parked.set()
        await wait(event)
        return "went on"

    task = asyncio.create_task(waiter())
    await parked.wait()  # resumes once the task has gone on into its wait
    event.set()
    task.cancel()
    return task


async def test_asyncio_wait_for_swallows_a_cancel_that_meets_its_wake_up():
    """The Python 3.11 behaviour the helpers exist for (should a newer Python fix it, this says so)."""
    task = await _woken_and_cancelled_in_one_tick(lambda event: asyncio.wait_for(event.wait(), 10))
    assert await task == "went on"


async def test_wait_event_keeps_a_cancel_that_meets_its_wake_up():
    task = await _woken_and_cancelled_in_one_tick(lambda event: wait_event(event, 10))
    with pytest.raises(asyncio.CancelledError):
        await task


async def test_wait_event_answers_whether_the_event_was_set():
    event = asyncio.Event()
    assert await wait_event(event, 0.01) is False
    event.set()
    assert await wait_event(event, None) is True


async def test_within_returns_or_times_out():
    assert await within(1, asyncio.sleep(0, result=7)) == 7
    with pytest.raises(TimeoutError):
        await within(0.01, asyncio.Event().wait())


async def test_cancel_and_wait_ends_tasks_and_logs_a_failure(caplog):
    async def fails_when_cancelled():
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            raise RuntimeError("broke while stopping") from None

    quick = asyncio.create_task(asyncio.Event().wait())
    failing = asyncio.create_task(fails_when_cancelled())
    await wait_event(asyncio.Event(), 0)  # both tasks start
    await cancel_and_wait(quick, failing, None)
    assert quick.cancelled() and isinstance(failing.exception(), RuntimeError)
    assert "broke while stopping" in caplog.text


async def test_cancel_and_wait_keeps_a_cancel_of_its_caller():
    started, give_up = asyncio.Event(), asyncio.Event()

    async def stubborn():
        started.set()
        while True:
            try:
                await asyncio.Event().wait()
            except asyncio.CancelledError:
                if give_up.is_set():
                    raise

    stuck = asyncio.create_task(stubborn())
    await started.wait()
    caller = asyncio.create_task(cancel_and_wait(stuck))
    assert not (await asyncio.wait({caller}, timeout=0.05))[0]  # the stubborn task does not end
    caller.cancel()
    with pytest.raises(asyncio.CancelledError):
        await caller
    give_up.set()
    stuck.cancel()
    with pytest.raises(asyncio.CancelledError):
        await stuck
