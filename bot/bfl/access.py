"""Where BFL's API key may go, and GETs that follow redirects without ever carrying it elsewhere.

The key goes in an ``x-key`` header, attached per request and never as a session default: aiohttp
forwards custom headers such as ``x-key`` across cross-host redirects (it strips only
``Authorization`` and ``Cookie``), so every redirect is followed here by hand, one hop at a time,
and each hop gets the key only if its own origin may have it:

* ``https`` on ``bfl.ai`` or a subdomain (BFL polls on regional hosts such as ``api.eu2.bfl.ai``),
  on port 443, except BFL's delivery hosts (``delivery-eu1.bfl.ai``: signed URLs need no key); or
* exactly the scheme, host and port of the configured API base URL (loopback spellings alike).
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

import aiohttp
from pydantic import SecretStr
from yarl import URL

from bot.bfl.errors import BflUnsafeUrl
from bot.bfl.wire import is_plain_ascii, loopback_alias

MAX_REDIRECTS = 5  # hops followed per request (polls and downloads); more is a loop, not a move
REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})


class ApiAccess:
    """The API key and the origins it may be sent to."""

    def __init__(self, api_key: SecretStr, base_url: URL) -> None:
        if base_url.scheme not in ("http", "https") or not base_url.host:
            raise ValueError("base_url must be an http(s) URL")
        self._api_key = api_key
        self._base_origin = (base_url.scheme, loopback_alias(base_url.host.lower()), base_url.port)

    def may_carry_key(self, url: URL) -> bool:
        """Whether ``url``'s origin may receive ``x-key`` (see the module docstring)."""
        if url.user is not None or url.password is not None:
            return False
        host = (url.host or "").lower()
        bfl = host == "bfl.ai" or host.endswith(".bfl.ai")
        if url.scheme == "https" and bfl and url.port == 443 and not host.startswith("delivery"):
            return True
        return (url.scheme, loopback_alias(host), url.port) == self._base_origin

    def headers_for(self, url: URL) -> dict[str, str]:
        """The headers of an API request to ``url``: ``x-key`` only where it may go."""
        headers = {"accept": "application/json"}
        if self.may_carry_key(url):
            headers["x-key"] = self._api_key.get_secret_value()
        return headers

    def redact(self, text: str) -> str:
        """``text`` with the key masked (servers may echo request headers back)."""
        key = self._api_key.get_secret_value()
        return text.replace(key, "***") if key else text

    def polling_url(self, url: str) -> URL:
        """Validate a ``polling_url`` and return it parsed exactly as given (query string untouched).

        Raises :class:`BflUnsafeUrl`, before anything is sent, unless the key may go there.
        """
        if not is_plain_ascii(url) or "\\" in url:
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
        if not self.may_carry_key(parsed):
            raise BflUnsafeUrl(f"polling URL host {parsed.scheme}://{host}:{port} is not a BFL API host")
        return parsed

    @contextlib.asynccontextmanager
    async def get(
        self, session: aiohttp.ClientSession, url: URL, *, client_timeout: aiohttp.ClientTimeout
    ) -> AsyncIterator[aiohttp.ClientResponse]:
        """GET ``url``, following up to :data:`MAX_REDIRECTS` redirects, with the key only where it may go.

        Yields the first answer that is not a redirect to follow; that is a 3xx itself when the hops
        ran out, the ``Location`` was missing or unusable (not http(s), with credentials).
        """
        for hop in range(MAX_REDIRECTS + 1):
            async with session.get(
                url,
                headers=self.headers_for(url),
                allow_redirects=False,  # aiohttp would carry x-key to wherever a redirect points
                timeout=client_timeout,
                raise_for_status=False,
            ) as resp:
                target = _redirect_target(url, resp) if hop < MAX_REDIRECTS else None
                if target is None:
                    yield resp
                    return
            url = target
        raise AssertionError("unreachable")  # pragma: no cover


def _redirect_target(url: URL, resp: aiohttp.ClientResponse) -> URL | None:
    """Where a redirect answer points, if it is one this client follows."""
    location = resp.headers.get("Location")
    if resp.status not in REDIRECT_STATUSES or not location:
        return None
    try:
        target = url.join(URL(location, encoded=is_plain_ascii(location)))
    except ValueError:
        return None
    if target.scheme not in ("http", "https") or not target.host or target.user or target.password:
        return None
    return target
