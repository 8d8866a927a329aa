"""`python -m bot healthcheck`: ask the running bot's ``/healthz``; exit 0 if healthy, 1 if not.

This is the container's ``HEALTHCHECK``: it runs beside the bot, so a bot listening on every
address (``METRICS_HOST=0.0.0.0``) is asked on the loopback address.
"""

from __future__ import annotations

import urllib.error
import urllib.request

from bot.config import Settings

TIMEOUT_SECONDS = 5.0
_ANY_ADDRESS = {"0.0.0.0": "127.0.0.1", "::": "::1", "[::]": "::1"}  # noqa: S104 (mapped, never bound here)


def health_url(settings: Settings) -> str:
    """The ``/healthz`` URL of the bot these settings describe."""
    host = _ANY_ADDRESS.get(settings.metrics_host, settings.metrics_host)
    if ":" in host and not host.startswith("["):
        host = f"[{host}]"
    return f"http://{host}:{settings.metrics_port}/healthz"


def healthcheck(settings: Settings) -> tuple[int, str]:
    """Exit status and one line: 0 and the body when ``/healthz`` says 200, else 1 and why."""
    if not settings.metrics_port:
        return 1, "METRICS_PORT is not set: the health endpoint is off (set it, e.g. METRICS_PORT=9108)"
    url = health_url(settings)
    try:
        with urllib.request.urlopen(url, timeout=TIMEOUT_SECONDS) as response:  # noqa: S310 (http only)
            return 0, response.read(500).decode("utf-8", "replace").strip()
    except urllib.error.HTTPError as exc:
        return 1, f"unhealthy ({exc.code}): {exc.read(500).decode('utf-8', 'replace').strip()}"
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        return 1, f"no answer from {url}: {reason}"
