"""Async client for Black Forest Labs' FLUX API: submit, poll, download, balance.

The protocol (see ``shared/reference/bfl-api.md``, §00 first): ``POST /v1/<model>`` returns a task
id and a ``polling_url``; ``GET polling_url`` until the status is terminal; the image is at
``result.sample``, a signed URL whose ``se=`` parameter is its real expiry (:func:`result_url_expiry`).

Rules this module enforces, and why:

* The key goes in an ``x-key`` header passed per request, never as a session default, and only to
  ``https://*.bfl.ai`` (not its delivery hosts) or the configured API origin: every redirect is
  followed by hand, the key attached per hop (:mod:`bot.bfl.access`). Submits and the balance are
  never redirected; polls and downloads are, a bounded number of hops.
* A submit is paid and BFL has no idempotency key, so a submit is resent only when BFL cannot have
  created a task: HTTP 429, or a connection that failed before the request was sent (refused, DNS,
  connect timeout). A 5xx proves nothing (a gateway 502/504 can follow creation), so it, a timeout
  or a dropped connection after sending raises :class:`BflSubmitOutcomeUnknown`.
* A submit carries ``user``, the opaque end-user id (:mod:`bot.bfl.end_user`), exactly when the
  model table says the route takes it (:attr:`bot.models.ModelSpec.takes_user`).
* Polling (:mod:`bot.bfl.poller`): ``Pending``, ``Reasoning``, ``Generating`` and unknown statuses
  mean "still running"; an early ``Task not found`` too; a 5xx poll is read for a final status;
  429/5xx polls back off and poll the same URL again (never resubmit), 5xx ones up to a bound.
* BFL allows 24 active tasks per key (fewer on some routes: the model table's ``max_active_tasks``);
  :meth:`BflClient.task_slot` keeps the bot under that instead of provoking 429s.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random as _random
import re
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Literal, NoReturn
from urllib.parse import quote

import aiohttp
from pydantic import SecretStr
from yarl import URL

from bot.bfl.access import MAX_REDIRECTS, ApiAccess
from bot.bfl.errors import (
    BflDownloadError,
    BflError,
    BflRateLimited,
    BflServerError,
    BflSubmitOutcomeUnknown,
)
from bot.bfl.poller import POLL_FAILURE_LIMIT, TASK_NOT_FOUND_WINDOW, OnStatus, Poller
from bot.bfl.polling import PollPlan
from bot.bfl.tasks import PollReading, SubmittedTask, TaskResult, result_url_expiry
from bot.bfl.timing import MAX_RETRY_AFTER, Backoff, PollSchedule
from bot.bfl.wire import (
    describe,
    error_messages,
    is_plain_ascii,
    parse_retry_after,
    read_capped,
    read_error_text,
    refusal,
    safe_url,
    to_decimal,
)
from bot.models import MODELS

__all__ = [  # what callers import from here; the rest lives in bot.bfl.tasks, .poller, .timing
    "POLL_FAILURE_LIMIT",
    "TASK_NOT_FOUND_WINDOW",
    "BflClient",
    "OnStatus",
    "PollReading",
    "PollSchedule",
    "SubmittedTask",
    "TaskResult",
    "result_url_expiry",
]

log = logging.getLogger(__name__)

SUBMIT_TIMEOUT = aiohttp.ClientTimeout(total=30, sock_connect=10, sock_read=25)
POLL_TIMEOUT = aiohttp.ClientTimeout(total=15, sock_connect=10)
DOWNLOAD_TIMEOUT = aiohttp.ClientTimeout(total=60, sock_read=20)
DOWNLOAD_RETRIES = 3
DEFAULT_POLL_SCHEDULE = PollSchedule()  # frozen, so one shared default is safe
_ENDPOINT_RE = re.compile(r"[a-z0-9][a-z0-9.\-]*")
_AUTH_HEADER_NAMES = ("x-key", "authorization")
_EXPIRED_DOWNLOAD_STATUSES = frozenset({403, 404, 410})  # what an expired/missing signed URL answers


@dataclass
class _Attempt:
    """What one failed API attempt looked like, for the retry decision and the final error."""

    status: int | None
    message: str
    retry_after: float | None = None


class BflClient:
    """Async BFL API client over a shared :class:`aiohttp.ClientSession`.

    The session must not carry auth headers by default: the key is added per request, only to BFL
    API hosts, and the same session downloads signed URLs where no BFL header may go.
    ``sleep`` and ``random`` are injectable so tests can record backoff delays without waiting.
    ``task_not_found_window``: seconds after a submit during which ``Task not found`` means "not
    registered yet" (``BFL_TASK_NOT_FOUND_WINDOW_SECONDS``).
    """

    def __init__(
        self,
        *,
        session: aiohttp.ClientSession,
        api_key: SecretStr,
        base_url: str,
        max_active_tasks: int = 24,
        poll_schedule: PollSchedule = DEFAULT_POLL_SCHEDULE,
        submit_retries: int = 4,
        backoff_base: float = 0.5,
        backoff_cap: float = 20.0,
        sleep: Callable[[float], Awaitable[object]] = asyncio.sleep,
        random: Callable[[], float] = _random.random,
        submit_timeout: aiohttp.ClientTimeout = SUBMIT_TIMEOUT,
        poll_timeout: aiohttp.ClientTimeout = POLL_TIMEOUT,
        download_timeout: aiohttp.ClientTimeout = DOWNLOAD_TIMEOUT,
        task_not_found_window: float = TASK_NOT_FOUND_WINDOW,
    ) -> None:
        for name in _AUTH_HEADER_NAMES:
            if name in session.headers:
                # Session defaults follow every request, including downloads and redirects.
                raise ValueError(f"the session must not have a default {name!r} header")
        base = URL(base_url.rstrip("/"))
        if max_active_tasks < 1 or submit_retries < 0:
            raise ValueError("max_active_tasks must be >= 1 and submit_retries >= 0")
        self._session = session
        self._access = ApiAccess(api_key, base)  # raises for a base URL that is not http(s)
        self._base_url = str(base)
        self._submit_retries = submit_retries
        self._backoff = Backoff(base=backoff_base, cap=backoff_cap, random=random)
        self._sleep = sleep
        self._submit_timeout = submit_timeout
        self._poll_timeout = poll_timeout
        self._download_timeout = download_timeout
        self._poller = Poller(
            session,
            self._access,
            schedule=poll_schedule,
            backoff=self._backoff,
            sleep=sleep,
            poll_timeout=poll_timeout,
            not_found_window=task_not_found_window,
        )
        self._slots = asyncio.Semaphore(max_active_tasks)
        self._route_slots = {  # the routes with a tighter cap (the model table's), each with its own slots
            key: asyncio.Semaphore(spec.max_active_tasks)
            for key, spec in MODELS.items()
            if spec.max_active_tasks < max_active_tasks
        }
        self._active_tasks = 0

    # -- concurrency -------------------------------------------------------------------------------

    @property
    def active_tasks(self) -> int:
        """How many task slots are held right now."""
        return self._active_tasks

    def task_slot(self, endpoint: str) -> contextlib.AbstractAsyncContextManager[None]:
        """Hold one active-task slot (and a route slot for a model with a tighter cap) while a task runs.

        Enter it before :meth:`submit` and leave it once :meth:`wait_for_result` returned or raised:
        BFL counts a task as active from submit until it is finished, and answers 429 above the cap.
        """
        return self._slot(endpoint)

    @contextlib.asynccontextmanager
    async def _slot(self, endpoint: str) -> AsyncIterator[None]:
        async with contextlib.AsyncExitStack() as stack:
            route = self._route_slots.get(endpoint)
            if route is not None:
                # Take the narrow slot first: a job queued behind its route's cap must not sit on one
                # of the global slots that other models could use meanwhile.
                await stack.enter_async_context(route)
            await stack.enter_async_context(self._slots)
            self._active_tasks += 1
            try:
                yield
            finally:
                self._active_tasks -= 1

    # -- API calls ---------------------------------------------------------------------------------

    async def submit(
        self, endpoint: str, payload: dict[str, Any], *, user: str | None = None, retries: int | None = None
    ) -> SubmittedTask:
        """Create a generation task: ``POST {base_url}/v1/{endpoint}`` with ``payload`` as JSON.

        ``user`` (the opaque end-user id BFL uses for abuse handling) is added to the body when the
        model table says the route takes it (:attr:`bot.models.ModelSpec.takes_user`), never to a
        route the table does not describe or one whose strict schema would refuse it (FLUX 3 Image);
        ``payload`` itself is left as it is.

        Resends only what cannot have created a task: HTTP 429 (after ``Retry-After`` or a jittered
        backoff) and connection failures before the request was sent, up to ``retries`` times (default:
        the client's ``submit_retries``; the engine passes 0 and keeps its own timer, so a wait never
        holds a coroutine and a shutdown never interrupts one). Once those are used up it raises
        :class:`BflRateLimited` or :class:`BflServerError`, both proving that no task was created. Raises
        :class:`BflSubmitOutcomeUnknown` (never resending) when the request may have reached BFL but
        no usable answer came back (any 5xx, a timeout, a dropped connection, a garbled 200), and
        the typed error of any other refusal.
        """
        if not _ENDPOINT_RE.fullmatch(endpoint):
            raise ValueError(f"not a BFL model endpoint: {endpoint!r}")
        spec = MODELS.get(endpoint)
        if user is not None and spec is not None and spec.takes_user:
            payload = {**payload, "user": user}
        body = await self._call_api(
            "POST",
            f"{self._base_url}/v1/{endpoint}",
            json_body=payload,
            client_timeout=self._submit_timeout,
            what=f"submit to {endpoint}",
            endpoint=endpoint,
            retries=retries,
        )
        task = self._parse_submitted(endpoint, body)
        log.info("BFL accepted %s task %s (cost %s credits)", endpoint, task.id, task.cost_credits)
        return task

    async def get_credits(self) -> Decimal:
        """The account's credit balance (``GET {base_url}/v1/credits``); 1 credit is $0.01."""
        body = await self._call_api(
            "GET",
            f"{self._base_url}/v1/credits",
            json_body=None,
            client_timeout=self._poll_timeout,
            what="credits",
        )
        value = body.get("credits") if isinstance(body, dict) else None
        credits = to_decimal(value)
        if credits is None:
            raise BflError("BFL sent a malformed credits response")
        return credits

    def check_polling_url(self, url: str) -> None:
        """Raise :class:`BflUnsafeUrl` unless the API key may be sent to ``url``.

        Allowed: ``https`` on ``bfl.ai`` or any subdomain but its delivery hosts (BFL polls on
        regional hosts such as ``api.eu2.bfl.ai``), or exactly the scheme, host and port of the
        configured base URL.
        """
        self._access.polling_url(url)

    async def poll(self, task: SubmittedTask, *, since_submit: float, failures: int = 0) -> PollReading:
        """Poll ``task`` once, now: one request (redirects followed), never a loop or a sleep.

        ``since_submit`` is how many seconds ago BFL accepted the task; ``failures`` how many polls
        of it failed in a row before this one. A ``Task not found`` within ``task_not_found_window``
        seconds of the submit reads as "poll again"; a 5xx without a final body is a failed reading
        until ``POLL_FAILURE_LIMIT`` failed polls in a row, when it raises :class:`BflTaskFailed`.
        After a failed reading wait :meth:`poll_backoff`. Raises :class:`BflModerated`,
        :class:`BflTaskFailed`, :class:`BflTaskNotFound` for a task that ended without an image,
        :class:`BflAuthError` and the other refusals, :class:`BflUnsafeUrl` for a foreign polling URL.
        """
        return await self._poller.poll(task, since_submit=since_submit, failures=failures)

    def poll_backoff(self, failures: int, retry_after: float | None = None) -> float:
        """Seconds to wait after ``failures`` (≥ 1) failed polls in a row, honouring ``Retry-After``.

        Doubling from ``backoff_base`` (half of it jittered, at most 10 s), and at least the answer's
        ``Retry-After`` (itself capped at 60 s).
        """
        return self._poller.poll_backoff(failures, retry_after)

    async def wait_for_result(
        self,
        task: SubmittedTask,
        *,
        timeout: float,  # noqa: ASYNC109 - one deadline over many polls and sleeps, raising BflTimeout
        on_status: OnStatus | None = None,
        plan: PollPlan | None = None,
        elapsed_offset: float = 0.0,
    ) -> TaskResult:
        """Poll ``task.polling_url`` until the task finishes; return its result.

        Each poll is read as :meth:`poll` reads it. Transient trouble (HTTP 429, 5xx without a final
        body, connection errors, garbled bodies, an early ``Task not found``) means "poll again",
        after a backoff (at least ``Retry-After``) when the poll failed. ``on_status(status,
        progress)`` is awaited whenever either changes.

        With ``plan``, the wait before every poll, the first included, is
        ``plan.delay(elapsed, polls)`` where ``elapsed`` is ``elapsed_offset`` (how long ago BFL
        accepted the task, for a job resumed after a restart) plus the time since this call began.
        Without it the client's :class:`PollSchedule` applies and the first poll is immediate.
        No wait runs past the deadline: the last poll happens right at it.

        Raises :class:`BflTimeout` once ``timeout`` seconds have passed, and :class:`BflModerated`,
        :class:`BflTaskNotFound` or :class:`BflTaskFailed` for the terminal failures.
        """
        return await self._poller.wait_for_result(
            task, timeout=timeout, on_status=on_status, plan=plan, elapsed_offset=elapsed_offset
        )

    async def download(self, url: str, *, max_bytes: int = 40 * 1024 * 1024) -> bytes:
        """Fetch a signed result URL, sending no BFL header; at most ``max_bytes`` bytes.

        Redirects are followed, at most :data:`~bot.bfl.access.MAX_REDIRECTS` hops (no secret travels
        with the request). 5xx, 429 and network errors are
        retried with backoff; an expired or missing URL (403/404/410), any other refusal and an
        oversized body raise :class:`BflDownloadError` at once.
        """
        try:
            # Send an already-encoded URL byte for byte: re-quoting could alter a signature.
            parsed = URL(url, encoded=is_plain_ascii(url))
        except (ValueError, TypeError) as exc:
            raise BflDownloadError("the result URL is not a valid URL") from exc
        if parsed.scheme not in ("http", "https") or not parsed.host:
            raise BflDownloadError("the result URL is not an http(s) URL")
        shown = safe_url(parsed)
        for attempt in range(DOWNLOAD_RETRIES + 1):
            try:
                # No headers on purpose: the URL is pre-signed, and the session has no auth defaults.
                async with self._session.get(
                    parsed, timeout=self._download_timeout, max_redirects=MAX_REDIRECTS, raise_for_status=False
                ) as resp:
                    if resp.status == 200:
                        return await read_capped(resp, max_bytes, shown)
                    if resp.status in _EXPIRED_DOWNLOAD_STATUSES:
                        raise BflDownloadError(
                            f"result URL expired or missing (HTTP {resp.status}) at {shown}",
                            status=resp.status,
                        )
                    if resp.status != 429 and resp.status < 500:
                        raise BflDownloadError(f"HTTP {resp.status} from {shown}", status=resp.status)
                    problem = f"HTTP {resp.status}"
            except (TimeoutError, aiohttp.ClientError) as exc:
                problem = describe(exc)
            if attempt == DOWNLOAD_RETRIES:
                raise BflDownloadError(f"could not download {shown}: {problem}")
            delay = self._backoff.full_jitter(attempt)
            log.warning("Download of %s failed (%s); retry %d in %.2fs", shown, problem, attempt + 1, delay)
            await self._sleep(delay)
        raise AssertionError("unreachable")  # pragma: no cover

    # -- internals ---------------------------------------------------------------------------------

    async def _call_api(
        self,
        method: Literal["GET", "POST"],
        url: str,
        *,
        json_body: dict[str, Any] | None,
        client_timeout: aiohttp.ClientTimeout,
        what: str,
        endpoint: str | None = None,
        retries: int | None = None,
    ) -> Any:
        """One API call with retries; returns the parsed JSON of a 2xx answer.

        ``endpoint`` marks a (paid, non-idempotent) submit: then only 429 and connection failures
        before sending are retried; a 5xx or any other transport failure is an unknown outcome.
        Other calls (GET, idempotent) also retry 5xx.
        """
        submit = endpoint is not None
        allowed = self._submit_retries if retries is None else retries
        attempt = 0
        while True:
            try:
                async with self._session.request(
                    method,
                    url,
                    json=json_body,
                    headers=self._access.headers_for(URL(url)),
                    allow_redirects=False,  # a submit is never redirected (a resent POST could bill twice)
                    timeout=client_timeout,
                    raise_for_status=False,
                ) as resp:
                    if 200 <= resp.status < 300:
                        return await self._read_success(resp, what, endpoint)
                    failure = _Attempt(
                        resp.status,
                        self._access.redact(await read_error_text(resp)),
                        parse_retry_after(resp.headers.get("Retry-After")),
                    )
            except (aiohttp.ClientConnectorError, aiohttp.ConnectionTimeoutError) as exc:
                # Raised while connecting, before a byte of the request was written: safe to resend.
                failure = _Attempt(None, describe(exc))
            except (TimeoutError, aiohttp.ClientError) as exc:
                if submit:
                    assert endpoint is not None
                    log.error("BFL %s: outcome unknown after %s; not resending", what, describe(exc))
                    raise BflSubmitOutcomeUnknown(
                        f"{what}: no answer ({describe(exc)}); the task may exist and be billed",
                        endpoint=endpoint,
                    ) from None  # aiohttp errors can carry request_info (headers incl. x-key)
                failure = _Attempt(None, describe(exc))

            if failure.status is not None and failure.status != 429 and failure.status < 500:
                raise refusal(failure.status, failure.message, what)
            if submit and failure.status is not None and failure.status >= 500:
                # A gateway 502/504 (or any 5xx) can come after BFL created and billed the task.
                assert endpoint is not None
                text = "; ".join(error_messages(failure.message)) or "no details"
                log.error("BFL %s: HTTP %s, outcome unknown; not resending", what, failure.status)
                raise BflSubmitOutcomeUnknown(
                    f"{what}: HTTP {failure.status} ({text}); the task may exist and be billed",
                    endpoint=endpoint,
                    status=failure.status,
                )
            too_long = failure.retry_after is not None and failure.retry_after > MAX_RETRY_AFTER
            if attempt >= allowed or too_long:
                self._raise_exhausted(failure, what, attempt + 1)
            delay = self._backoff.full_jitter(attempt)
            if failure.retry_after is not None:
                delay = max(failure.retry_after, delay)
            log.warning(
                "BFL %s failed (%s); retry %d/%d in %.2fs",
                what,
                f"HTTP {failure.status}" if failure.status is not None else failure.message,
                attempt + 1,
                allowed,
                delay,
            )
            await self._sleep(delay)
            attempt += 1

    async def _read_success(self, resp: aiohttp.ClientResponse, what: str, endpoint: str | None) -> Any:
        try:
            return await resp.json(content_type=None)
        except ValueError as exc:
            if endpoint is not None:
                # BFL said 200, so the task most likely exists and is billed; resending would double it.
                raise BflSubmitOutcomeUnknown(
                    f"{what}: HTTP {resp.status} with a body that is not JSON", endpoint=endpoint
                ) from exc
            raise BflError(f"{what}: HTTP {resp.status} with a body that is not JSON") from exc

    def _parse_submitted(self, endpoint: str, body: Any) -> SubmittedTask:
        task_id = body.get("id") if isinstance(body, dict) else None
        if not isinstance(task_id, str) or not task_id:
            raise BflSubmitOutcomeUnknown(f"submit to {endpoint}: HTTP 200 without a task id", endpoint=endpoint)
        polling_url = body.get("polling_url")
        if not isinstance(polling_url, str) or not polling_url:
            # A webhook-style answer (AsyncWebhookResponse) has no polling_url; the legacy
            # get_result route on our own base URL still serves the task.
            polling_url = f"{self._base_url}/v1/get_result?id={quote(task_id, safe='')}"
        cost = to_decimal(body.get("cost"))
        if body.get("cost") is not None and cost is None:
            log.warning("BFL task %s: ignoring a malformed cost", task_id)
        return SubmittedTask(id=task_id, polling_url=polling_url, cost_credits=cost)

    def _raise_exhausted(self, failure: _Attempt, what: str, attempts: int) -> NoReturn:
        text = "; ".join(error_messages(failure.message)) or "no details"
        if failure.status == 429:
            raise BflRateLimited(
                f"{what}: still rate-limited after {attempts} attempts: {text}",
                retry_after=failure.retry_after,
            )
        if failure.status is None:
            raise BflServerError(f"{what}: BFL unreachable after {attempts} attempts: {text}", status=None)
        raise BflServerError(f"{what}: HTTP {failure.status} after {attempts} attempts: {text}", status=failure.status)
