"""Admission and acknowledgement as one guarded step: whatever fails in between abandons what was admitted.

Admission reserves the member's money; the job may run only once the member saw the answer (the
acknowledgement). Between the two, ANY failure — an ``HTTPException``, a transport error (the
connection to Discord dropped: ``aiohttp.ClientError``, ``OSError``, a timeout), a bug, a cancellation,
or a failed deferral while a slow admission is still running — cancels what was admitted and releases
its money at once, instead of leaving it reserved until a restart. Every entry point
comes through :func:`admit_and_acknowledge`, called once, by :class:`cogs._flow.RequestFlow`.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import aiohttp
import discord

from bot.engine.outcomes import NOT_STARTED_TEXT
from bot.errors import FluxcordError

log = logging.getLogger(__name__)
T = TypeVar("T")

UNREACHABLE = (discord.HTTPException, aiohttp.ClientError, OSError, TimeoutError)
"""Discord did not take the answer: logged and abandoned quietly (nobody can be told: Discord is the way)."""
DROPPED = (aiohttp.ClientError, OSError, TimeoutError)
"""No answer from Discord at all: the request may have taken effect before the connection broke."""


ACK_BUDGET_SECONDS = 1.5
"""Admission (or an edit's download) normally takes milliseconds; past this we defer: Discord gives 3 s."""


async def within_budget(
    interaction: discord.Interaction, task: asyncio.Future[T], *, private: bool, budget: float | None = None
) -> None:
    """Wait up to ``budget`` seconds (:data:`ACK_BUDGET_SECONDS`) for ``task``; still running, defer the answer."""
    done, _ = await asyncio.wait({task}, timeout=ACK_BUDGET_SECONDS if budget is None else budget)
    if not done and not interaction.response.is_done():  # an edit may have deferred already
        await interaction.response.defer(thinking=True, ephemeral=private)


class NotStarted(FluxcordError):
    """Something of ours failed between admission and the answer: the request was released, and says so."""

    def __init__(self) -> None:
        super().__init__(NOT_STARTED_TEXT)


async def admit_and_acknowledge(
    interaction: discord.Interaction,
    admission: Awaitable[T],
    *,
    private: bool,
    acknowledge: Callable[[T], Awaitable[None]],
    abandon: Callable[[T, bool], Awaitable[None]],
    what: str,
    ack_budget: float | None = None,
) -> T | None:
    """Await ``admission`` (deferring past ``ack_budget`` seconds), then ``acknowledge`` what it admitted.

    A refusal raised by ``admission`` propagates (it wrote nothing). Any failure after that, or of the
    deferral while ``admission`` runs, calls ``abandon(admitted, answered)`` on what was admitted
    (``answered``: the member already sees an answer, which the engine then replaces with what
    happened); Discord being unreachable (:data:`UNREACHABLE`), or an answer already shown, returns
    None; anything else is raised as :class:`NotStarted` for the one error path.
    ``what`` names the request in logs (never a token). The admitted value once acknowledged.
    """
    task = asyncio.ensure_future(admission)
    try:
        await within_budget(interaction, task, private=private, budget=ack_budget)
    except BaseException as exc:
        answered = interaction.response.is_done() or (isinstance(exc, DROPPED) and await _deferred_anyway(interaction))
        await _abandon_once_admitted(task, abandon, what, answered)
        if isinstance(exc, UNREACHABLE):
            log.warning("%s: could not defer (%s); abandoned", what, _describe(exc))
            return None
        if isinstance(exc, Exception):
            log.exception("%s: failed before its answer; abandoned", what)
            raise NotStarted from exc
        raise
    try:
        admitted = await task  # a refusal is raised here: nothing was written
    except FluxcordError:
        raise
    except Exception as exc:  # the database failed midway: whatever was written is never acknowledged,
        log.exception("%s: admission failed", what)  # so the reconciler releases it; nothing is charged
        raise NotStarted from exc
    try:
        await acknowledge(admitted)
    except BaseException as exc:
        answered = interaction.response.is_done() or isinstance(exc, MaybeShown)
        await _abandon(abandon, admitted, what, answered)
        if isinstance(exc, (*UNREACHABLE, MaybeShown)):
            log.warning("%s: could not acknowledge (%s); abandoned", what, _describe(exc))
            return None
        if isinstance(exc, Exception):  # a bug, or the database: the member is told it was released
            log.exception("%s: failed before its answer; abandoned", what)
            if answered:
                return None  # the answer shown is replaced with what happened (the engine's last message)
            raise NotStarted from exc
        raise
    return admitted


async def _deferred_anyway(interaction: discord.Interaction) -> bool:
    """After a deferral whose connection dropped: whether Discord took it (the member sees "thinking…").

    Read back (``GET @original``); if it cannot be read, the member may be looking at it: True, so what
    happened is said there.
    """
    try:
        await interaction.original_response()
    except discord.NotFound:
        return False
    except (*UNREACHABLE, discord.ClientException) as exc:
        log.info("Could not read a dropped deferral back (%s)", _describe(exc))
    return True


async def _abandon_once_admitted(
    task: asyncio.Future[T], abandon: Callable[[T, bool], Awaitable[None]], what: str, answered: bool
) -> None:
    """The deferral failed: let the admission finish, and abandon what it admitted (a refusal wrote nothing)."""
    try:
        admitted = await asyncio.shield(task)
    except Exception:
        return
    await _abandon(abandon, admitted, what, answered)


async def _abandon(abandon: Callable[[T, bool], Awaitable[None]], admitted: T, what: str, answered: bool) -> None:
    try:
        await asyncio.shield(abandon(admitted, answered))  # a cancellation of the caller must not stop the release
    except Exception:
        log.exception("%s: could not abandon after a failed acknowledgement", what)


def _describe(exc: BaseException) -> str:
    if isinstance(exc, discord.HTTPException):
        return f"HTTP {exc.status}, code {exc.code}"
    return type(exc).__name__


async def acknowledge_click(interaction: discord.Interaction) -> None:
    """Acknowledge a button click at once, changing nothing yet: its answer is a later edit of the message.

    A click that cannot be acknowledged still goes on; what it did is told on the job's own message.
    """
    try:
        await interaction.response.defer()
    except UNREACHABLE as exc:
        log.warning("Could not acknowledge a click (%s)", exc)


async def send_answer(
    interaction: discord.Interaction, text: str, *, ephemeral: bool, view: discord.ui.View | None = None
) -> int | None:
    """Answer with ``text`` (editing a deferred answer); a dropped connection is checked, not trusted.

    Raises unless the answer is shown (see :func:`check_answer_landed`). The answer's message id
    (the interaction's ``@original``), if Discord said it.
    """
    extra: dict[str, Any] = {"view": view} if view is not None else {}  # no `view=None`: not every call takes it
    try:
        if interaction.response.is_done():
            return (await interaction.edit_original_response(content=text, **extra)).id
        return (await interaction.response.send_message(text, ephemeral=ephemeral, **extra)).message_id
    except DROPPED as exc:
        message_id = await check_answer_landed(interaction, text, exc)  # raises unless the answer is there
        log.info("Interaction %s: the answer's connection dropped after Discord took it", interaction.id)
        return message_id


class MaybeShown(Exception):
    """The answer's connection dropped and reading it back failed too: the member may be looking at it."""


READ_BACK_WAITS = (0.5, 1.0, 2.0)  # seconds between tries to read an answer back (a 429, a dropped connection)


async def check_answer_landed(interaction: discord.Interaction, text: str, dropped: BaseException) -> int:
    """After a dropped connection: the answer's message id if ``text`` reached Discord all the same, else raise.

    The connection can break after Discord took the answer: the member then sees it (a queue place,
    a Cancel button), and abandoning the job would leave them looking at a request that was released.
    So the answer is read back (``GET @original``): there word for word, it landed (return); not there,
    ``dropped`` is raised (abandoned quietly: Discord shows the failure); unreadable after a few tries,
    :class:`MaybeShown` (abandoned, and what the member may see is replaced with what happened).
    """
    for wait in (*READ_BACK_WAITS, None):
        try:
            message = await interaction.original_response()
        except discord.NotFound:
            raise dropped from None
        except (*UNREACHABLE, discord.ClientException) as exc:
            log.info("Could not read the answer back (%s)", _describe(exc))
            if wait is None:
                raise MaybeShown from dropped
            await asyncio.sleep(wait)  # a back-off before asking again, not a synchronisation
            continue
        if message.content == text:
            return message.id
        raise dropped from None
    raise dropped  # not reached: the last try returns or raises
