"""The wire-level helpers of the BFL client: reading answers, error bodies, headers and URLs.

Pure functions (and two small readers of an :class:`aiohttp.ClientResponse`), shared by the submit
path (:mod:`bot.bfl.client`) and the polling path (:mod:`bot.bfl.poller`).
"""

from __future__ import annotations

import email.utils
import ipaddress
import json
import re
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

import aiohttp
from yarl import URL

from bot.bfl.errors import (
    BflAuthError,
    BflBadRequest,
    BflCreditsExhausted,
    BflDownloadError,
    BflError,
    BflFinetuneUnknown,
    BflValidationError,
)

ERROR_TEXT_LIMIT = 300
ERROR_BODY_LIMIT = 64 * 1024
DOWNLOAD_CHUNK = 64 * 1024
# How a 403 body says "this organisation may not use this endpoint" (early access), not "bad key".
_NO_ACCESS_RE = re.compile(r"(?:\bno|\bnot(?: have)?|n't have) access\b", re.I)
# How an answer says "this finetune_id is not on the account" (BFL documents none: see BflFinetuneUnknown).
_FINETUNE_RE = re.compile(r"\b(?:finetune|fine-tune|lora)\b.*\b(?:not found|not ready|unknown|does not exist)", re.I)


def refusal(status: int, text: str, what: str, task_id: str | None = None) -> BflError:
    """The typed error of a refusal that retrying cannot fix (401/403, 402, 422, other 4xx, 3xx).

    ``text`` is the (already redacted) error body; ``what`` names the call for the message.
    """
    detail = error_messages(text)
    shown = "; ".join(detail) or f"HTTP {status}"
    if status in (401, 403):
        if status == 403 and any(_NO_ACCESS_RE.search(message) for message in detail):
            return BflAuthError(
                f"{what}: the BFL organisation has no access to this endpoint (HTTP 403): {shown}",
                status=status,
                reason="access",
                task_id=task_id,
            )
        return BflAuthError(f"{what}: BFL refused the API key (HTTP {status}): {shown}", status=status, task_id=task_id)
    if status == 402:
        return BflCreditsExhausted(f"{what}: BFL account is out of credits: {shown}", task_id=task_id)
    if 400 <= status < 500 and status != 429 and any(_FINETUNE_RE.search(message) for message in detail):
        return BflFinetuneUnknown(f"{what}: BFL does not know the LoRA: {shown}", status=status, task_id=task_id)
    if status == 422:
        return BflValidationError(f"{what}: BFL rejected the request: {shown}", messages=detail)
    if 300 <= status < 400:
        shown = "unexpected redirect, not followed"
    return BflBadRequest(f"{what}: HTTP {status}: {shown}", status=status, task_id=task_id)


def json_object(text: str) -> dict[str, Any] | None:
    """``text`` parsed as a JSON object, or None if it is not one."""
    try:
        body = json.loads(text) if text else None
    except ValueError:
        return None
    return body if isinstance(body, dict) else None


async def read_capped(resp: aiohttp.ClientResponse, max_bytes: int, shown: str) -> bytes:
    """The whole body, or :class:`BflDownloadError` as soon as it is known to exceed ``max_bytes``."""
    if resp.content_length is not None and resp.content_length > max_bytes:
        raise BflDownloadError(f"result image too large ({resp.content_length} > {max_bytes} bytes) at {shown}")
    buffer = bytearray()
    async for chunk in resp.content.iter_chunked(DOWNLOAD_CHUNK):
        buffer += chunk
        if len(buffer) > max_bytes:  # the stream may lie about (or omit) its length
            raise BflDownloadError(f"result image too large (> {max_bytes} bytes) at {shown}")
    return bytes(buffer)


async def read_error_text(resp: aiohttp.ClientResponse) -> str:
    """The body of an error answer, or "" if it cannot be read (the status alone decides then)."""
    raw = bytearray()
    try:
        while len(raw) < ERROR_BODY_LIMIT:  # bounded: an error page is not worth megabytes
            chunk = await resp.content.read(ERROR_BODY_LIMIT - len(raw))
            if not chunk:
                break
            raw += chunk
    except (TimeoutError, aiohttp.ClientError):
        return ""
    return raw.decode("utf-8", errors="replace")


def error_messages(text: str) -> list[str]:
    """Messages from an error body: ``detail`` (string or list of ``{msg}``), ``message``, or raw text."""
    try:
        body = json.loads(text) if text else None
    except ValueError:
        body = None
    if isinstance(body, dict):
        detail = body.get("detail")
        if isinstance(detail, str) and detail:
            return [detail[:ERROR_TEXT_LIMIT]]
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
                return [m[:ERROR_TEXT_LIMIT] for m in messages]
        message = body.get("message")
        if isinstance(message, str) and message:
            return [message[:ERROR_TEXT_LIMIT]]
    stripped = text.strip()
    if not stripped:
        return []
    return [stripped[:ERROR_TEXT_LIMIT] + ("…" if len(stripped) > ERROR_TEXT_LIMIT else "")]


def parse_retry_after(value: str | None) -> float | None:
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


def to_decimal(value: Any) -> Decimal | None:
    """A JSON number as a Decimal built from its text (no float arithmetic on money)."""
    if value is None or isinstance(value, bool):
        return None
    try:
        result = Decimal(str(value))
    except InvalidOperation:
        return None
    return result if result.is_finite() else None


def loopback_alias(host: str) -> str:
    """One name for this machine: a local test server may spell itself localhost, 127.0.0.1 or ::1."""
    try:
        if ipaddress.ip_address(host.strip("[]")).is_loopback:
            return "loopback"
    except ValueError:
        pass
    return "loopback" if host in {"localhost", "localhost."} else host


def is_plain_ascii(url: str) -> bool:
    """True if ``url`` has only printable ASCII without spaces (i.e. it is already URL-encoded)."""
    return url.isascii() and all(32 < ord(ch) < 127 for ch in url)


def progress_value(value: Any) -> float | None:
    """A poll's ``progress`` as a float, or None when it is absent or not a number."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


def describe(exc: BaseException) -> str:
    """A short description of a transport error; aiohttp's texts name host:port, never headers."""
    text = str(exc)
    return f"{type(exc).__name__}: {text[:200]}" if text else type(exc).__name__


def safe_url(url: URL) -> str:
    """A URL for logs without its query string (signed URLs carry their signature there)."""
    return str(url.with_query(None).with_fragment(None))
