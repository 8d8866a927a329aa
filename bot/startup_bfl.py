"""The BFL half of the start-up checks (:mod:`bot.startup`): ``GET /v1/credits`` with the key.

Used by `python -m bot` (:func:`check_bfl_at_startup`: a fatal problem is a :class:`StartupError`) and
by `python -m bot check` (:func:`probe_bfl`). No message contains the key.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation

import aiohttp

from bot.config import Settings
from bot.startup import PROBE_TIMEOUT, StartupError, describe_error, host_of, one_line

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class BflProbe:
    """What ``GET /v1/credits`` said: the balance, or the problem and whether it stops the bot."""

    credits: Decimal | None
    problem: str | None = None
    fatal: bool = False

    @property
    def ok(self) -> bool:
        """Whether the balance was read."""
        return self.problem is None


async def probe_bfl(session: aiohttp.ClientSession, settings: Settings) -> BflProbe:
    """Read the credit balance with the key; classify a failure (unreachable, bad key, missing access…)."""
    url = f"{settings.bfl_api_url}/v1/credits"
    headers = {"x-key": settings.bfl_api_key.get_secret_value(), "accept": "application/json"}
    host = host_of(settings.bfl_api_url)
    try:
        async with session.get(url, headers=headers, timeout=PROBE_TIMEOUT, allow_redirects=False) as resp:
            status = resp.status
            text = await resp.text(errors="replace")
    except (aiohttp.ClientConnectorError, aiohttp.ConnectionTimeoutError, aiohttp.InvalidURL) as exc:
        problem = f"cannot reach BFL at {host} ({describe_error(exc)}); check the network, or BFL_API_URL"
        return BflProbe(None, problem, fatal=True)
    except (aiohttp.ClientError, OSError, TimeoutError) as exc:
        return BflProbe(None, f"BFL at {host} did not answer properly ({describe_error(exc)}); try again later")
    detail = _bfl_detail(text)
    if status == 200:
        try:
            return BflProbe(Decimal(str(json.loads(text)["credits"])))
        except (ValueError, KeyError, TypeError, InvalidOperation):
            return BflProbe(None, f"BFL at {host} sent an unexpected answer to GET /v1/credits; is BFL_API_URL right?")
    if status in (401, 403):
        if _looks_like_missing_access(detail):
            problem = (
                f"BFL_API_KEY is valid but has no access to GET /v1/credits ({status} {detail}); "
                "ask BFL to enable the endpoint for your organisation"
            )
            return BflProbe(None, problem, fatal=False)
        problem = (
            f"BFL_API_KEY was rejected by BFL ({status} {detail}); it looks like a wrong or revoked key: "
            "copy it again from https://dashboard.bfl.ai"
        )
        return BflProbe(None, problem, fatal=True)
    if status == 404:
        return BflProbe(None, f"{host} has no GET /v1/credits (404); is BFL_API_URL right?", fatal=True)
    return BflProbe(None, f"BFL answered {status} {detail} to GET /v1/credits; try again later")


def _bfl_detail(text: str) -> str:
    try:
        body = json.loads(text)
    except ValueError:
        return one_line(text, 60) or "no detail"
    detail = (body.get("detail") or body.get("message")) if isinstance(body, dict) else None
    if isinstance(detail, list):
        detail = "; ".join(str(item.get("msg", item)) if isinstance(item, dict) else str(item) for item in detail)
    return one_line(detail or "no detail", 60)


def _looks_like_missing_access(detail: str) -> bool:
    lowered = detail.lower()
    return any(words in lowered for words in ("does not have access", "no access", "organization", "early access"))


async def check_bfl_at_startup(settings: Settings) -> None:
    """Probe BFL once before connecting to Discord: unreachable or a rejected key stops the start.

    A key without access to the balance endpoint, or a BFL hiccup (5xx), is only a warning: images
    may still work, and refusing to start over a transient error would be worse.
    """
    async with aiohttp.ClientSession() as session:
        probe = await probe_bfl(session, settings)
    if probe.fatal:
        raise StartupError(str(probe.problem))
    if probe.problem:
        log.warning("BFL check at start-up: %s", probe.problem)
    else:
        log.info("BFL credit balance: %s", probe.credits)
