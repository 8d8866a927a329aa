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
* BFL allows 24 active tasks per key (fewer on some routes: the model table's ``max_active_tasks``):
  the engine's claim keeps the bot under those caps (:mod:`bot.engine.claim`), so the client holds no slots of its own.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import random as _random
import re
from collections.abc import Awaitable, Callable
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
from bot.bfl.timing import MAX_RETRY_AFTER, Backoff
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

__all__ = [  # what callers import from here; the rest lives in bot.bfl.tasks, .poller, .polling
    "POLL_FAILURE_LIMIT",
    "TASK_NOT_FOUND_WINDOW",
    "BflClient",
    "BflPolicy",
    "OnStatus",
    "PollPlan",
    "PollReading",
    "SubmittedTask",
    "TaskResult",
    "result_url_expiry",
]

log = logging.getLogger(__name__)

SUBMIT_TIMEOUT = aiohttp.ClientTimeout(total=30, sock_connect=10, sock_read=25)
POLL_TIMEOUT = aiohttp.ClientTimeout(total=15, sock_connect=10)
DOWNLOAD_TIMEOUT = aiohttp.ClientTimeout(total=60, sock_read=20)
DOWNLOAD_RETRIES = 3
# wait_for_result without a plan: poll at once, every 0.5 s for 8 s, then backing off to 3 s.
DEFAULT_POLL_PLAN = PollPlan(first_poll=0.0, interval=0.5, tail_start=8.0)
_ENDPOINT_RE = re.compile(r"(?:flux-tools/)?[a-z0-9][a-z0-9.\-]*")  # a model, or a FLUX Tool (``flux-tools/<name>``)
_AUTH_HEADER_NAMES = ("x-key", "authorization")
_EXPIRED_DOWNLOAD_STATUSES = frozenset({403, 404, 410})  # what an expired/missing signed URL answers


@dataclass(frozen=True)
class BflPolicy:
    """How the client retries and waits (tests and benchmarks shorten it).

    ``task_not_found_window``: seconds after a submit during which ``Task not found`` means "not
    registered yet" (``BFL_TASK_NOT_FOUND_WINDOW_SECONDS``). ``poll_plan`` paces
    :meth:`BflClient.wait_for_result` when it is given no plan.
    """

    poll_plan: PollPlan = DEFAULT_POLL_PLAN
    submit_retries: int = 4
    backoff_base: float = 0.5
    backoff_cap: float = 20.0
    task_not_found_window: float = TASK_NOT_FOUND_WINDOW
    submit_timeout: aiohttp.ClientTimeout = SUBMIT_TIMEOUT
    poll_timeout: aiohttp.ClientTimeout = POLL_TIMEOUT
    download_timeout: aiohttp.ClientTimeout = DOWNLOAD_TIMEOUT


DEFAULT_POLICY = BflPolicy()  # frozen, so one shared default is safe


@dataclass(frozen=True)
class _Call:
    """One API call to make: ``endpoint`` marks a submit (paid, never resent once it may have landed)."""

    method: Literal["GET", "POST"]
    url: str
    json_body: dict[str, Any] | None
    timeout: aiohttp.ClientTimeout
    what: str
    endpoint: str | None = None


@dataclass
class _Attempt:
    """What one failed API attempt looked like, for the retry decision and the final error."""

    status: int | None
    message: str
    retry_after: float | None = None


class BflClient(Poller):
    """Async BFL API client over a shared :class:`aiohttp.ClientSession`.

    The session must not carry auth headers by default: the key is added per request, only to BFL
    API hosts, and the same session downloads signed URLs where no BFL header may go.
    ``sleep`` and ``random`` are injectable so tests can record backoff delays without waiting.
    Polling (:meth:`poll`, :meth:`poll_backoff`, :meth:`wait_for_result`) is :class:`Poller`'s.
    """

    def __init__(
        self,
        *,
        session: aiohttp.ClientSession,
        api_key: SecretStr,
        base_url: str,
        policy: BflPolicy = DEFAULT_POLICY,
        sleep: Callable[[float], Awaitable[object]] = asyncio.sleep,
        random: Callable[[], float] = _random.random,
    ) -> None:
        for name in _AUTH_HEADER_NAMES:
            if name in session.headers:
                # Session defaults follow every request, including downloads and redirects.
                raise ValueError(f"the session must not have a default {name!r} header")
        base = URL(base_url.rstrip("/"))
        if policy.submit_retries < 0:
            raise ValueError("submit_retries must be >= 0")
        access = ApiAccess(api_key, base)  # raises for a base URL that is not http(s)
        backoff = Backoff(base=policy.backoff_base, cap=policy.backoff_cap, random=random)
        super().__init__(
            session,
            access,
            default_plan=policy.poll_plan,
            backoff=backoff,
            sleep=sleep,
            poll_timeout=policy.poll_timeout,
            not_found_window=policy.task_not_found_window,
        )
        self._base_url = str(base)
        self._policy = policy

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
        the policy's ``submit_retries``; the engine passes 0 and keeps its own timer, so a wait never
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
        url = f"{self._base_url}/v1/{endpoint}"
        call = _Call("POST", url, payload, self._policy.submit_timeout, f"submit to {endpoint}", endpoint)
        body = await self._call_api(call, retries)
        task = self._parse_submitted(endpoint, body)
        log.info("BFL accepted %s task %s (cost %s credits)", endpoint, task.id, task.cost_credits)
        return task

    async def get_credits(self) -> Decimal:
        """The account's credit balance (``GET {base_url}/v1/credits``); 1 credit is $0.01."""
        body = await self._call_api(
            _Call("GET", f"{self._base_url}/v1/credits", None, self._policy.poll_timeout, "credits")
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
                    parsed, timeout=self._policy.download_timeout, max_redirects=MAX_REDIRECTS, raise_for_status=False
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

    async def _call_api(self, call: _Call, retries: int | None = None) -> Any:
        """One API call with retries; returns the parsed JSON of a 2xx answer.

        A call with an ``endpoint`` is a (paid, non-idempotent) submit: then only 429 and connection
        failures before sending are retried; a 5xx or any other transport failure is an unknown
        outcome. Other calls (GET, idempotent) also retry 5xx.
        """
        what, endpoint = call.what, call.endpoint
        allowed = self._policy.submit_retries if retries is None else retries
        for attempt in itertools.count():
            body, failure = await self._send(call)
            if failure is None:
                return body
            self._raise_unless_retryable(failure, what, endpoint)
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
        raise AssertionError("unreachable")  # pragma: no cover

    async def _send(self, call: _Call) -> tuple[Any, _Attempt | None]:
        """One request: ``(body, None)`` for a 2xx answer, ``(None, failure)`` for one to judge."""
        what, endpoint = call.what, call.endpoint
        try:
            async with self._session.request(
                call.method,
                call.url,
                json=call.json_body,
                headers=self._access.headers_for(URL(call.url)),
                allow_redirects=False,  # a submit is never redirected (a resent POST could bill twice)
                timeout=call.timeout,
                raise_for_status=False,
            ) as resp:
                if 200 <= resp.status < 300:
                    return await self._read_success(resp, what, endpoint), None
                text = self._access.redact(await read_error_text(resp))
                return None, _Attempt(resp.status, text, parse_retry_after(resp.headers.get("Retry-After")))
        except (aiohttp.ClientConnectorError, aiohttp.ConnectionTimeoutError) as exc:
            # Raised while connecting, before a byte of the request was written: safe to resend.
            return None, _Attempt(None, describe(exc))
        except (TimeoutError, aiohttp.ClientError) as exc:
            if endpoint is not None:
                log.error("BFL %s: outcome unknown after %s; not resending", what, describe(exc))
                raise BflSubmitOutcomeUnknown(
                    f"{what}: no answer ({describe(exc)}); the task may exist and be billed",
                    endpoint=endpoint,
                ) from None  # aiohttp errors can carry request_info (headers incl. x-key)
            return None, _Attempt(None, describe(exc))

    @staticmethod
    def _raise_unless_retryable(failure: _Attempt, what: str, endpoint: str | None) -> None:
        """Raise for a refusal, and for a submit's 5xx (its outcome is unknown); return for the rest."""
        if failure.status is not None and failure.status != 429 and failure.status < 500:
            raise refusal(failure.status, failure.message, what)
        if endpoint is not None and failure.status is not None and failure.status >= 500:
            # A gateway 502/504 (or any 5xx) can come after BFL created and billed the task.
            text = "; ".join(error_messages(failure.message)) or "no details"
            log.error("BFL %s: HTTP %s, outcome unknown; not resending", what, failure.status)
            raise BflSubmitOutcomeUnknown(
                f"{what}: HTTP {failure.status} ({text}); the task may exist and be billed",
                endpoint=endpoint,
                status=failure.status,
            )

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
