"""Async client for Black Forest Labs' FLUX API: submit, poll, download, balance.

The protocol (see ``shared/reference/bfl-api.md``, §00 first): ``POST /v1/<model>`` returns a task
id and a ``polling_url``; ``GET polling_url`` until the status is terminal; the image is at
``result.sample``, a signed URL whose ``se=`` parameter is its real expiry (:func:`result_url_expiry`).

Rules this module enforces, and why:

* The key goes in an ``x-key`` header passed per request, never as a session default, and API calls
  use ``allow_redirects=False``: aiohttp forwards custom headers such as ``x-key`` across cross-host
  redirects (it strips only ``Authorization``/``Cookie``).
* A submit is paid and BFL has no idempotency key, so a submit is resent only when BFL cannot have
  created a task: HTTP 429, or a connection that failed before the request was sent (refused, DNS,
  connect timeout). A 5xx proves nothing (a gateway 502/504 can follow creation), so it, a timeout
  or a dropped connection after sending raises :class:`BflSubmitOutcomeUnknown`.
* Only ``Ready``, ``Error``, ``Request Moderated``, ``Content Moderated``, ``Task not found`` and the
  legacy ``Failed`` end a task; ``Pending``, ``Reasoning``, ``Generating`` and any status this code
  does not know mean "still running". A poll answered 5xx whose JSON body says ``"status": "Error"``
  is a final failure; other 429/5xx polls back off and poll the same URL again (never resubmit).
* The key is sent only to ``https://*.bfl.ai`` or the configured base URL (SSRF guard on
  ``polling_url``), and never to the signed download URL.
* BFL allows 24 active tasks per key (6 for ``flux-kontext-max``); :meth:`BflClient.task_slot`
  keeps the bot under that instead of provoking 429s.
"""

from __future__ import annotations

import asyncio
import contextlib
import email.utils
import ipaddress
import json
import logging
import random as _random
import re
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Any, Literal, NoReturn
from urllib.parse import quote, unquote, urlsplit

import aiohttp
from pydantic import SecretStr
from yarl import URL

from bot.bfl.errors import (
    BflAuthError,
    BflBadRequest,
    BflCreditsExhausted,
    BflDownloadError,
    BflError,
    BflModerated,
    BflRateLimited,
    BflServerError,
    BflSubmitOutcomeUnknown,
    BflTaskFailed,
    BflTaskNotFound,
    BflTimeout,
    BflUnsafeUrl,
    BflValidationError,
)
from bot.bfl.polling import PollPlan
from bot.billing.money import credits_to_micros

log = logging.getLogger(__name__)

KONTEXT_MAX_ENDPOINT = "flux-kontext-max"
KONTEXT_MAX_ACTIVE_TASKS = 6  # BFL's documented cap for flux-kontext-max

SUBMIT_TIMEOUT = aiohttp.ClientTimeout(total=30, sock_connect=10, sock_read=25)
POLL_TIMEOUT = aiohttp.ClientTimeout(total=15, sock_connect=10)
DOWNLOAD_TIMEOUT = aiohttp.ClientTimeout(total=60, sock_read=20)
DOWNLOAD_RETRIES = 3
MAX_RETRY_AFTER = 60.0  # a longer Retry-After means "not now": give up instead of blocking a job
MAX_POLL_BACKOFF = 10.0  # cap of the backoff between polls that failed in a row
_ERROR_TEXT_LIMIT = 300
_ERROR_BODY_LIMIT = 64 * 1024
_DOWNLOAD_CHUNK = 64 * 1024

STATUS_PENDING = "Pending"
STATUS_REASONING = "Reasoning"  # FLUX 3 is thinking about the prompt
STATUS_GENERATING = "Generating"
STATUS_READY = "Ready"
STATUS_ERROR = "Error"
STATUS_FAILED = "Failed"  # legacy, in BFL's sample loops though not in the enum
STATUS_REQUEST_MODERATED = "Request Moderated"
STATUS_CONTENT_MODERATED = "Content Moderated"
STATUS_TASK_NOT_FOUND = "Task not found"
RUNNING_STATUSES = frozenset({STATUS_PENDING, STATUS_REASONING, STATUS_GENERATING})
#: The only statuses that end a task; anything else (known or not) means "still running".
TERMINAL_STATUSES = frozenset(
    {
        STATUS_READY,
        STATUS_ERROR,
        STATUS_FAILED,
        STATUS_REQUEST_MODERATED,
        STATUS_CONTENT_MODERATED,
        STATUS_TASK_NOT_FOUND,
    }
)
# How a 403 body says "this organisation may not use this endpoint" (early access), not "bad key".
_NO_ACCESS_RE = re.compile(r"(?:\bno|\bnot(?: have)?|n't have) access\b", re.I)

_ENDPOINT_RE = re.compile(r"[a-z0-9][a-z0-9.\-]*")
_AUTH_HEADER_NAMES = ("x-key", "authorization")
_EXPIRED_DOWNLOAD_STATUSES = frozenset({403, 404, 410})  # what an expired/missing signed URL answers

OnStatus = Callable[[str, float | None], Awaitable[None]]


@dataclass(frozen=True)
class PollSchedule:
    """How often to poll: every ``first_interval`` s for ``quick_phase`` s, then backing off.

    After the quick phase each interval is ``factor`` times the previous one, up to ``max_interval``.
    Every interval is spread by ±``jitter`` (a fraction) so that many tasks started together do not
    poll in lockstep. Most FLUX tasks finish within 10 s, hence the quick start.
    """

    first_interval: float = 0.5
    quick_phase: float = 8.0
    factor: float = 1.5
    max_interval: float = 3.0
    jitter: float = 0.1

    def __post_init__(self) -> None:
        if self.first_interval <= 0 or self.max_interval <= 0:
            raise ValueError("poll intervals must be positive")
        if self.quick_phase < 0 or self.factor < 1:
            raise ValueError("quick_phase must be >= 0 and factor >= 1")
        if not 0 <= self.jitter < 1:
            raise ValueError("jitter is a fraction in [0, 1)")

    def next_interval(self, elapsed: float, previous: float | None) -> float:
        """The un-jittered wait before the next poll, ``elapsed`` seconds after polling began."""
        first = min(self.first_interval, self.max_interval)
        if previous is None or elapsed < self.quick_phase:
            return first
        return min(self.max_interval, max(previous, first) * self.factor)

    def jittered(self, interval: float, rnd: float) -> float:
        """``interval`` spread by ±jitter; ``rnd`` is a uniform sample from [0, 1)."""
        return max(0.0, interval * (1.0 + self.jitter * (2.0 * rnd - 1.0)))


@dataclass(frozen=True)
class SubmittedTask:
    """A task BFL accepted (and billed): poll ``polling_url`` for its result."""

    id: str
    polling_url: str
    cost_credits: Decimal | None

    @property
    def cost_micros(self) -> int | None:
        """The reported cost in micro-dollars (rounded up), or ``None`` if BFL did not report it."""
        if self.cost_credits is None:
            return None
        return credits_to_micros(self.cost_credits)


@dataclass(frozen=True)
class TaskResult:
    """A finished task: ``sample_url`` is the signed image URL; ``raw`` the ``Ready`` poll body.

    ``cost_credits`` is the settled cost the ``Ready`` answer reports at its top level (None when it
    does not); ``expanded_prompt`` is ``result.prompt`` (FLUX 3 returns the prompt as it expanded
    it). See :func:`result_url_expiry` for how long ``sample_url`` lives.
    """

    id: str
    sample_url: str
    raw: dict[str, Any]
    cost_credits: Decimal | None = None
    expanded_prompt: str | None = None

    @property
    def cost_micros(self) -> int | None:
        """The settled cost in micro-dollars (rounded up), or ``None`` if BFL did not report it."""
        if self.cost_credits is None:
            return None
        return credits_to_micros(self.cost_credits)


@dataclass(frozen=True)
class PollReading:
    """What one poll of a task saw (:meth:`BflClient.poll`)."""

    status: str | None  # BFL's status; None when this poll failed or was unreadable
    progress: float | None
    result: TaskResult | None  # set exactly when the task is Ready
    failed: bool  # transient trouble (429, 5xx without a final body, network): poll again after a back-off
    retry_after: float | None


@dataclass
class _PollOutcome:
    """One poll: a body with a string ``status``, or nothing (poll again) and whether it failed."""

    body: dict[str, Any] | None
    retry_after: float | None = None
    failed: bool = False  # a 429/5xx/network failure: back off before the next poll


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
    """

    def __init__(
        self,
        *,
        session: aiohttp.ClientSession,
        api_key: SecretStr,
        base_url: str,
        max_active_tasks: int = 24,
        poll_schedule: PollSchedule = PollSchedule(),  # frozen, so a shared default is safe
        submit_retries: int = 4,
        backoff_base: float = 0.5,
        backoff_cap: float = 20.0,
        sleep: Callable[[float], Awaitable[object]] = asyncio.sleep,
        random: Callable[[], float] = _random.random,
        submit_timeout: aiohttp.ClientTimeout = SUBMIT_TIMEOUT,
        poll_timeout: aiohttp.ClientTimeout = POLL_TIMEOUT,
        download_timeout: aiohttp.ClientTimeout = DOWNLOAD_TIMEOUT,
    ) -> None:
        for name in _AUTH_HEADER_NAMES:
            if name in session.headers:
                # Session defaults follow every request, including downloads and redirects.
                raise ValueError(f"the session must not have a default {name!r} header")
        base = URL(base_url.rstrip("/"))
        if base.scheme not in ("http", "https") or not base.host:
            raise ValueError("base_url must be an http(s) URL")
        if max_active_tasks < 1 or submit_retries < 0:
            raise ValueError("max_active_tasks must be >= 1 and submit_retries >= 0")
        self._session = session
        self._api_key = api_key
        self._base_url = str(base)
        self._base_origin = (base.scheme, _loopback_alias(base.host.lower()), base.port)
        self._poll_schedule = poll_schedule
        self._submit_retries = submit_retries
        self._backoff_base = backoff_base
        self._backoff_cap = backoff_cap
        self._sleep = sleep
        self._random = random
        self._submit_timeout = submit_timeout
        self._poll_timeout = poll_timeout
        self._download_timeout = download_timeout
        self._slots = asyncio.Semaphore(max_active_tasks)
        self._kontext_max_slots = asyncio.Semaphore(min(KONTEXT_MAX_ACTIVE_TASKS, max_active_tasks))
        self._active_tasks = 0

    # -- concurrency -------------------------------------------------------------------------------

    @property
    def active_tasks(self) -> int:
        """How many task slots are held right now."""
        return self._active_tasks

    def task_slot(self, endpoint: str) -> contextlib.AbstractAsyncContextManager[None]:
        """Hold one active-task slot (and a kontext-max slot for that model) while a task runs.

        Enter it before :meth:`submit` and leave it once :meth:`wait_for_result` returned or raised:
        BFL counts a task as active from submit until it is finished, and answers 429 above the cap.
        """
        return self._slot(endpoint)

    @contextlib.asynccontextmanager
    async def _slot(self, endpoint: str) -> AsyncIterator[None]:
        async with contextlib.AsyncExitStack() as stack:
            if endpoint == KONTEXT_MAX_ENDPOINT:
                # Take the narrow slot first: a kontext-max job queued behind its 6-cap must not sit
                # on one of the global slots that other models could use meanwhile.
                await stack.enter_async_context(self._kontext_max_slots)
            await stack.enter_async_context(self._slots)
            self._active_tasks += 1
            try:
                yield
            finally:
                self._active_tasks -= 1

    # -- API calls ---------------------------------------------------------------------------------

    async def submit(self, endpoint: str, payload: dict[str, Any], *, retries: int | None = None) -> SubmittedTask:
        """Create a generation task: ``POST {base_url}/v1/{endpoint}`` with ``payload`` as JSON.

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
        credits = _to_decimal(value)
        if credits is None:
            raise BflError("BFL sent a malformed credits response")
        return credits

    def check_polling_url(self, url: str) -> None:
        """Raise :class:`BflUnsafeUrl` unless the API key may be sent to ``url``.

        Allowed: ``https`` on ``bfl.ai`` or any subdomain (BFL polls on regional hosts such as
        ``api.eu2.bfl.ai``), or exactly the scheme, host and port of the configured base URL.
        """
        self._parse_polling_url(url)

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

        ``Pending``, ``Reasoning``, ``Generating`` and unknown statuses mean "still running". Transient
        trouble (HTTP 202, 429, 5xx without a final body, connection errors, garbled bodies) means
        "poll again", after a backoff (at least ``Retry-After``) when the poll failed.
        ``on_status(status, progress)`` is awaited whenever either changes.

        With ``plan``, the wait before every poll, the first included, is
        ``plan.delay(elapsed, polls)`` where ``elapsed`` is ``elapsed_offset`` (how long ago BFL
        accepted the task, for a job resumed after a restart) plus the time since this call began.
        Without it the client's :class:`PollSchedule` applies and the first poll is immediate.
        No wait runs past the deadline: the last poll happens right at it.

        Raises :class:`BflTimeout` once ``timeout`` seconds have passed, and :class:`BflModerated`,
        :class:`BflTaskNotFound` or :class:`BflTaskFailed` for the terminal failures.
        """
        url = self._parse_polling_url(task.polling_url)  # before anything is sent
        loop = asyncio.get_running_loop()
        started = loop.time()
        deadline = started + timeout
        last_seen: tuple[str, float | None] | None = None
        interval: float | None = None
        polls = 0
        failures = 0  # polls that failed in a row
        retry_after: float | None = None
        while True:
            now = loop.time()
            if plan is not None:
                delay = plan.delay(elapsed_offset + (now - started), polls)
            elif polls == 0:
                delay = 0.0
            else:
                interval = self._poll_schedule.next_interval(now - started, interval)
                delay = self._poll_schedule.jittered(interval, self._random())
            if failures:
                delay = max(delay, self._poll_backoff(failures))
            if retry_after is not None:
                delay = max(delay, min(retry_after, MAX_RETRY_AFTER))
            if delay > 0:
                # Never sleep past the deadline: one last poll right at it may still find the image.
                await self._sleep(max(0.0, min(delay, deadline - now)))

            polls += 1
            outcome = await self._poll_once(url, task, remaining=deadline - loop.time())
            failures = failures + 1 if outcome.failed else 0
            retry_after = outcome.retry_after
            if outcome.body is not None:
                status = outcome.body["status"]
                progress = _progress(outcome.body.get("progress"))
                if (status, progress) != last_seen:
                    level = logging.INFO if last_seen is None or status != last_seen[0] else logging.DEBUG
                    if status not in TERMINAL_STATUSES and status not in RUNNING_STATUSES:
                        level = logging.WARNING  # new to this code: assume it is still running
                    log.log(level, "BFL task %s: %s (progress %s, poll %d)", task.id, status, progress, polls)
                    last_seen = (status, progress)
                    await self._report(on_status, status, progress, task.id)
                if status in TERMINAL_STATUSES:
                    return self._finish(task, status, outcome.body)
            if loop.time() >= deadline:
                raise BflTimeout(
                    f"task not finished after {timeout:g}s ({polls} polls, last status "
                    f"{last_seen[0] if last_seen else 'unknown'})",
                    task_id=task.id,
                )

    async def poll(self, task: SubmittedTask, *, since_submit: float = 0.0, failures: int = 0) -> PollReading:
        """Poll ``task`` once (no waiting): its status, its result once Ready, or a transient failure.

        ``since_submit``: seconds since BFL accepted the task; ``failures``: failed polls in a row before
        this one. Raises the typed error of a final failure (:class:`BflModerated`,
        :class:`BflTaskFailed`, :class:`BflTaskNotFound`, auth …). The caller owns the timing: see
        :meth:`poll_backoff` after a failed poll.
        """
        del since_submit, failures  # used by the fuller polling rules (issue 21)
        url = self._parse_polling_url(task.polling_url)
        outcome = await self._poll_once(url, task, remaining=(self._poll_timeout.total or 15.0))
        if outcome.body is None:
            return PollReading(None, None, None, outcome.failed, outcome.retry_after)
        status = outcome.body["status"]
        progress = _progress(outcome.body.get("progress"))
        if status in TERMINAL_STATUSES:
            return PollReading(status, progress, self._finish(task, status, outcome.body), False, None)
        if status not in RUNNING_STATUSES:
            log.warning("BFL task %s: unknown status %r; assuming it is still running", task.id, status[:60])
        return PollReading(status, progress, None, False, None)

    def poll_backoff(self, failures: int, retry_after: float | None = None) -> float:
        """How long to wait after ``failures`` failed polls in a row (at least ``Retry-After``, capped)."""
        delay = self._poll_backoff(failures) if failures else 0.0
        if retry_after is not None:
            delay = max(delay, min(retry_after, MAX_RETRY_AFTER))
        return delay

    async def download(self, url: str, *, max_bytes: int = 40 * 1024 * 1024) -> bytes:
        """Fetch a signed result URL, sending no BFL header; at most ``max_bytes`` bytes.

        Redirects are followed (no secret travels with the request). 5xx, 429 and network errors are
        retried with backoff; an expired or missing URL (403/404/410), any other refusal and an
        oversized body raise :class:`BflDownloadError` at once.
        """
        try:
            # Send an already-encoded URL byte for byte: re-quoting could alter a signature.
            parsed = URL(url, encoded=_is_plain_ascii(url))
        except (ValueError, TypeError) as exc:
            raise BflDownloadError("the result URL is not a valid URL") from exc
        if parsed.scheme not in ("http", "https") or not parsed.host:
            raise BflDownloadError("the result URL is not an http(s) URL")
        shown = _safe_url(parsed)
        for attempt in range(DOWNLOAD_RETRIES + 1):
            try:
                # No headers on purpose: the URL is pre-signed, and the session has no auth defaults.
                async with self._session.get(parsed, timeout=self._download_timeout, raise_for_status=False) as resp:
                    if resp.status == 200:
                        return await _read_capped(resp, max_bytes, shown)
                    if resp.status in _EXPIRED_DOWNLOAD_STATUSES:
                        raise BflDownloadError(
                            f"result URL expired or missing (HTTP {resp.status}) at {shown}",
                            status=resp.status,
                        )
                    if resp.status != 429 and resp.status < 500:
                        raise BflDownloadError(f"HTTP {resp.status} from {shown}", status=resp.status)
                    problem = f"HTTP {resp.status}"
            except (TimeoutError, aiohttp.ClientError) as exc:
                problem = _describe(exc)
            if attempt == DOWNLOAD_RETRIES:
                raise BflDownloadError(f"could not download {shown}: {problem}")
            delay = self._backoff(attempt)
            log.warning("Download of %s failed (%s); retry %d in %.2fs", shown, problem, attempt + 1, delay)
            await self._sleep(delay)
        raise AssertionError("unreachable")  # pragma: no cover

    # -- internals ---------------------------------------------------------------------------------

    def _api_headers(self) -> dict[str, str]:
        return {"x-key": self._api_key.get_secret_value(), "accept": "application/json"}

    def _redact(self, text: str) -> str:
        key = self._api_key.get_secret_value()
        return text.replace(key, "***") if key else text

    def _backoff(self, attempt: int) -> float:
        """Full jitter: uniform in [0, min(cap, base * 2**attempt))."""
        return self._random() * min(self._backoff_cap, self._backoff_base * 2**attempt)

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
                    headers=self._api_headers(),
                    allow_redirects=False,  # a redirect would carry x-key to wherever it points
                    timeout=client_timeout,
                    raise_for_status=False,
                ) as resp:
                    if 200 <= resp.status < 300:
                        return await self._read_success(resp, what, endpoint)
                    failure = _Attempt(
                        resp.status,
                        self._redact(await _read_error_text(resp)),
                        _parse_retry_after(resp.headers.get("Retry-After")),
                    )
            except (aiohttp.ClientConnectorError, aiohttp.ConnectionTimeoutError) as exc:
                # Raised while connecting, before a byte of the request was written: safe to resend.
                failure = _Attempt(None, _describe(exc))
            except (TimeoutError, aiohttp.ClientError) as exc:
                if submit:
                    assert endpoint is not None
                    log.error("BFL %s: outcome unknown after %s; not resending", what, _describe(exc))
                    raise BflSubmitOutcomeUnknown(
                        f"{what}: no answer ({_describe(exc)}); the task may exist and be billed",
                        endpoint=endpoint,
                    ) from None  # aiohttp errors can carry request_info (headers incl. x-key)
                failure = _Attempt(None, _describe(exc))

            if failure.status is not None and failure.status != 429 and failure.status < 500:
                self._raise_for_status(failure, what)
            if submit and failure.status is not None and failure.status >= 500:
                # A gateway 502/504 (or any 5xx) can come after BFL created and billed the task.
                assert endpoint is not None
                text = "; ".join(_error_messages(failure.message)) or "no details"
                log.error("BFL %s: HTTP %s, outcome unknown; not resending", what, failure.status)
                raise BflSubmitOutcomeUnknown(
                    f"{what}: HTTP {failure.status} ({text}); the task may exist and be billed",
                    endpoint=endpoint,
                    status=failure.status,
                )
            too_long = failure.retry_after is not None and failure.retry_after > MAX_RETRY_AFTER
            if attempt >= allowed or too_long:
                self._raise_exhausted(failure, what, attempt + 1)
            delay = self._backoff(attempt)
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
        cost = _to_decimal(body.get("cost"))
        if body.get("cost") is not None and cost is None:
            log.warning("BFL task %s: ignoring a malformed cost", task_id)
        return SubmittedTask(id=task_id, polling_url=polling_url, cost_credits=cost)

    def _raise_for_status(self, failure: _Attempt, what: str, task_id: str | None = None) -> NoReturn:
        status = failure.status
        assert status is not None
        detail = _error_messages(failure.message)
        text = "; ".join(detail) or f"HTTP {status}"
        if status in (401, 403):
            if status == 403 and any(_NO_ACCESS_RE.search(message) for message in detail):
                raise BflAuthError(
                    f"{what}: the BFL organisation has no access to this endpoint (HTTP 403): {text}",
                    status=status,
                    reason="access",
                    task_id=task_id,
                )
            raise BflAuthError(
                f"{what}: BFL refused the API key (HTTP {status}): {text}", status=status, task_id=task_id
            )
        if status == 402:
            raise BflCreditsExhausted(f"{what}: BFL account is out of credits: {text}", task_id=task_id)
        if status == 422:
            raise BflValidationError(f"{what}: BFL rejected the request: {text}", messages=detail)
        if 300 <= status < 400:
            text = "unexpected redirect, not followed"
        raise BflBadRequest(f"{what}: HTTP {status}: {text}", status=status, task_id=task_id)

    def _raise_exhausted(self, failure: _Attempt, what: str, attempts: int) -> NoReturn:
        text = "; ".join(_error_messages(failure.message)) or "no details"
        if failure.status == 429:
            raise BflRateLimited(
                f"{what}: still rate-limited after {attempts} attempts: {text}",
                retry_after=failure.retry_after,
            )
        if failure.status is None:
            raise BflServerError(f"{what}: BFL unreachable after {attempts} attempts: {text}", status=None)
        raise BflServerError(f"{what}: HTTP {failure.status} after {attempts} attempts: {text}", status=failure.status)

    def _parse_polling_url(self, url: str) -> URL:
        """Validate a polling URL and return it parsed exactly as given (query string untouched)."""
        if not _is_plain_ascii(url) or "\\" in url:
            raise BflUnsafeUrl("polling URL contains characters a URL cannot have; not polling it")
        try:
            # encoded=True: send the path and query byte for byte as BFL returned them.
            parsed = URL(url, encoded=True)
            port = parsed.port
        except ValueError as exc:
            raise BflUnsafeUrl("polling URL is not a valid URL; not polling it") from exc
        host = (parsed.host or "").lower()
        if parsed.user is not None or parsed.password is not None:
            raise BflUnsafeUrl(f"polling URL with credentials for host {host!r}; not polling it")
        if parsed.scheme == "https" and (host == "bfl.ai" or host.endswith(".bfl.ai")) and port == 443:
            return parsed
        if (parsed.scheme, _loopback_alias(host), port) == self._base_origin:
            return parsed
        raise BflUnsafeUrl(f"polling URL host {parsed.scheme}://{host}:{port} is not a BFL API host")

    async def _poll_once(self, url: URL, task: SubmittedTask, *, remaining: float) -> _PollOutcome:
        """One poll; raises the typed error of a final failure that is not a status (auth, 404...)."""
        # Keep each poll within the overall deadline (with a floor so the last poll can complete).
        total = min(self._poll_timeout.total or 15.0, max(remaining, 1.0))
        timeout = aiohttp.ClientTimeout(total=total, sock_connect=self._poll_timeout.sock_connect)
        try:
            async with self._session.get(
                url,
                headers=self._api_headers(),
                allow_redirects=False,  # never carry x-key to a redirect target
                timeout=timeout,
                raise_for_status=False,
            ) as resp:
                if resp.status == 200:
                    try:
                        body = await resp.json(content_type=None)
                    except ValueError:
                        body = None
                    if isinstance(body, dict) and isinstance(body.get("status"), str):
                        return _PollOutcome(body)
                    log.warning("BFL task %s: unreadable poll answer; polling again", task.id)
                    return _PollOutcome(None)
                if resp.status == 202:  # legacy "not ready yet"
                    return _PollOutcome({"status": STATUS_PENDING})
                text = self._redact(await _read_error_text(resp))
                body = _json_object(text) if resp.status >= 500 else None
                if body is not None and body.get("status") == STATUS_ERROR:
                    # BFL answers a failed task with 503 + {"status": "Error"}: final, not transient.
                    log.warning("BFL task %s: poll got HTTP %s with status Error", task.id, resp.status)
                    return _PollOutcome(body)
                if resp.status == 429 or resp.status >= 500:
                    retry_after = _parse_retry_after(resp.headers.get("Retry-After"))
                    log.warning(
                        "BFL task %s: poll got HTTP %s (Retry-After %s); polling again",
                        task.id,
                        resp.status,
                        retry_after,
                    )
                    return _PollOutcome(None, retry_after=retry_after, failed=True)
                if resp.status == 404:
                    raise BflTaskNotFound(f"task {task.id} not found (HTTP 404)", task_id=task.id)
                self._raise_for_status(_Attempt(resp.status, text), f"poll of task {task.id}", task.id)
        except (TimeoutError, aiohttp.ClientError) as exc:
            log.warning("BFL task %s: poll failed (%s); polling again", task.id, _describe(exc))
            return _PollOutcome(None, failed=True)

    def _poll_backoff(self, failures: int) -> float:
        """The pause after ``failures`` failed polls in a row: doubling, half of it jittered."""
        ceiling = min(self._backoff_cap, MAX_POLL_BACKOFF, self._backoff_base * 2 ** (failures - 1))
        return ceiling * (0.5 + 0.5 * self._random())

    def _finish(self, task: SubmittedTask, status: str, body: dict[str, Any]) -> TaskResult:
        """Turn a terminal poll answer into a result or the matching typed error."""
        if status == STATUS_READY:
            result = body.get("result")
            sample = result.get("sample") if isinstance(result, dict) else None
            if not isinstance(sample, str) or not sample:
                raise BflTaskFailed(f"task {task.id} is Ready but has no sample URL", status=status, task_id=task.id)
            cost = _to_decimal(body.get("cost"))
            if body.get("cost") is not None and cost is None:
                log.warning("BFL task %s: ignoring a malformed cost on Ready", task.id)
            prompt = result.get("prompt") if isinstance(result, dict) else None
            return TaskResult(
                id=task.id,
                sample_url=sample,
                raw=body,
                cost_credits=cost,
                expanded_prompt=prompt if isinstance(prompt, str) else None,
            )
        if status in (STATUS_REQUEST_MODERATED, STATUS_CONTENT_MODERATED):
            stage: Literal["request", "content"] = "request" if status == STATUS_REQUEST_MODERATED else "content"
            details = body.get("details")
            reasons = details.get("Moderation Reasons") if isinstance(details, dict) else None
            reason_list = [str(r) for r in reasons] if isinstance(reasons, list) else []
            raise BflModerated(
                f"task {task.id}: {status}" + (f" ({', '.join(reason_list)})" if reason_list else ""),
                stage=stage,
                reasons=reason_list,
                task_id=task.id,
            )
        if status == STATUS_TASK_NOT_FOUND:
            raise BflTaskNotFound(f"task {task.id}: Task not found", task_id=task.id)
        # "Error" and BFL's undocumented "Failed" (unknown statuses never get here: they keep polling).
        raise BflTaskFailed(f"task {task.id} ended with status {status[:60]!r}", status=status, task_id=task.id)

    async def _report(self, on_status: OnStatus | None, status: str, progress: float | None, task_id: str) -> None:
        if on_status is None:
            return
        try:
            await on_status(status, progress)
        except Exception:
            # A failed progress message (e.g. a Discord edit) must not abandon a paid task.
            log.exception("on_status callback failed for BFL task %s", task_id)


def result_url_expiry(url: str) -> datetime | None:
    """When a signed result URL expires: its ``se=`` query parameter (ISO 8601), as an aware UTC time.

    BFL's delivery URLs are Azure-SAS-style (``…?se=2030-01-01T00%3A00%3A00Z&sp=r&sig=…``), and
    ``se=`` is their real expiry (about an hour after Ready for images). A time without a zone is
    taken as UTC (SAS times always are). ``None`` if the URL has no ``se=`` or it cannot be read.
    """
    try:
        query = urlsplit(url).query
    except (ValueError, TypeError):
        return None
    # Not parse_qs: it reads "+" as a space, and "+00:00" is a valid (if unescaped) offset.
    values = [unquote(part[3:]) for part in query.split("&") if part.startswith("se=")]
    if not values:
        return None
    try:
        when = datetime.fromisoformat(values[0].strip())
    except ValueError:
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return when.astimezone(UTC)


# -- helpers ---------------------------------------------------------------------------------------


def _json_object(text: str) -> dict[str, Any] | None:
    """``text`` parsed as a JSON object, or None if it is not one."""
    try:
        body = json.loads(text) if text else None
    except ValueError:
        return None
    return body if isinstance(body, dict) else None


async def _read_capped(resp: aiohttp.ClientResponse, max_bytes: int, shown: str) -> bytes:
    if resp.content_length is not None and resp.content_length > max_bytes:
        raise BflDownloadError(f"result image too large ({resp.content_length} > {max_bytes} bytes) at {shown}")
    buffer = bytearray()
    async for chunk in resp.content.iter_chunked(_DOWNLOAD_CHUNK):
        buffer += chunk
        if len(buffer) > max_bytes:  # the stream may lie about (or omit) its length
            raise BflDownloadError(f"result image too large (> {max_bytes} bytes) at {shown}")
    return bytes(buffer)


async def _read_error_text(resp: aiohttp.ClientResponse) -> str:
    """The body of an error answer, or "" if it cannot be read (the status alone decides then)."""
    raw = bytearray()
    try:
        while len(raw) < _ERROR_BODY_LIMIT:  # bounded: an error page is not worth megabytes
            chunk = await resp.content.read(_ERROR_BODY_LIMIT - len(raw))
            if not chunk:
                break
            raw += chunk
    except (TimeoutError, aiohttp.ClientError):
        return ""
    return raw.decode("utf-8", errors="replace")


def _error_messages(text: str) -> list[str]:
    """Messages from an error body: ``detail`` (string or list of ``{msg}``), ``message``, or raw text."""
    try:
        body = json.loads(text) if text else None
    except ValueError:
        body = None
    if isinstance(body, dict):
        detail = body.get("detail")
        if isinstance(detail, str) and detail:
            return [detail[:_ERROR_TEXT_LIMIT]]
        if isinstance(detail, list):
            messages = []
            for item in detail:
                if isinstance(item, dict) and isinstance(item.get("msg"), str):
                    loc = item.get("loc")
                    field = ".".join(str(p) for p in loc if p != "body") if isinstance(loc, list) else ""
                    messages.append(f"{field}: {item['msg']}" if field else item["msg"])
                elif isinstance(item, str):
                    messages.append(item)
            if messages:
                return [m[:_ERROR_TEXT_LIMIT] for m in messages]
        message = body.get("message")
        if isinstance(message, str) and message:
            return [message[:_ERROR_TEXT_LIMIT]]
    stripped = text.strip()
    if not stripped:
        return []
    return [stripped[:_ERROR_TEXT_LIMIT] + ("…" if len(stripped) > _ERROR_TEXT_LIMIT else "")]


def _parse_retry_after(value: str | None) -> float | None:
    """``Retry-After`` as seconds from now: delay-seconds or an HTTP-date (RFC 9110 §10.2.3)."""
    if not value:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        seconds = (when - datetime.now(UTC)).total_seconds()
    if seconds != seconds:  # NaN
        return None
    return max(0.0, seconds)


def _to_decimal(value: Any) -> Decimal | None:
    """A JSON number as a Decimal built from its text (no float arithmetic on money)."""
    if value is None or isinstance(value, bool):
        return None
    try:
        result = Decimal(str(value))
    except InvalidOperation:
        return None
    return result if result.is_finite() else None


def _loopback_alias(host: str) -> str:
    """One name for this machine: a local test server may spell itself localhost, 127.0.0.1 or ::1."""
    try:
        if ipaddress.ip_address(host.strip("[]")).is_loopback:
            return "loopback"
    except ValueError:
        pass
    return "loopback" if host in {"localhost", "localhost."} else host


def _is_plain_ascii(url: str) -> bool:
    """True if ``url`` has only printable ASCII without spaces (i.e. it is already URL-encoded)."""
    return url.isascii() and all(32 < ord(ch) < 127 for ch in url)


def _progress(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


def _describe(exc: BaseException) -> str:
    """A short description of a transport error; aiohttp's texts name host:port, never headers."""
    text = str(exc)
    return f"{type(exc).__name__}: {text[:200]}" if text else type(exc).__name__


def _safe_url(url: URL) -> str:
    """A URL for logs without its query string (signed URLs carry their signature there)."""
    return str(url.with_query(None).with_fragment(None))
