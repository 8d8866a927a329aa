"""Two asyncio idioms done right on Python 3.11: waiting with a timeout, and cancelling a task.

Python 3.11's :func:`asyncio.wait_for` returns the result of an awaitable that finished in the same
tick as a cancel of the caller, and so swallows that cancel; ``task.cancel()`` followed by
``with suppress(CancelledError): await task`` swallows a cancel of the caller too. Either can leave a
loop running that its owner believes stopped (a CI run once hung 90 minutes in ``JobEngine.stop``).
:func:`asyncio.timeout` and :func:`asyncio.wait` keep the caller's cancel, so these helpers use them.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable
from typing import Any, TypeVar

log = logging.getLogger(__name__)

T = TypeVar("T")


async def within(seconds: float | None, awaitable: Awaitable[T]) -> T:
    """``await awaitable``, or :class:`TimeoutError` after ``seconds`` (None: no limit)."""
    async with asyncio.timeout(seconds):
        return await awaitable


async def wait_event(event: asyncio.Event, seconds: float | None) -> bool:
    """Wait until ``event`` is set or ``seconds`` pass (None: no limit); whether it is set."""
    try:
        async with asyncio.timeout(seconds):
            await event.wait()
    except TimeoutError:
        return False
    return True


async def cancel_and_wait(*tasks: asyncio.Task[Any] | None) -> None:
    """Cancel ``tasks`` (None is skipped) and wait until each has ended.

    A task's own ending (cancelled, or failed: logged) is not raised here; a cancel of the caller is.
    """
    pending = {task for task in tasks if task is not None}
    for task in pending:
        task.cancel()
    if not pending:
        return
    await asyncio.wait(pending)
    for task in pending:
        if not task.cancelled() and task.exception() is not None:
            log.warning("%s ended with an error while stopping", task.get_name(), exc_info=task.exception())
