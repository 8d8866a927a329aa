"""`python -m bot healthcheck`: ask the running bot's ``/healthz``; exit 0 if healthy, 1 if not.

For people: it reads the bot's settings (``.env`` included). The container's ``HEALTHCHECK`` runs
:mod:`bot.ops.probe` instead, which asks the same URL with the standard library only and costs a
fraction of the CPU (``docs/operations.md``). A bot listening on every address
(``METRICS_HOST=0.0.0.0``) is asked on the loopback address.
"""

from __future__ import annotations

from bot.config import Settings
from bot.ops import probe

TIMEOUT_SECONDS = probe.TIMEOUT_SECONDS


def health_url(settings: Settings) -> str:
    """The ``/healthz`` URL of the bot these settings describe."""
    return probe.health_url(settings.metrics_host, settings.metrics_port or 0)


def healthcheck(settings: Settings) -> tuple[int, str]:
    """Exit status and one line: 0 and the body when ``/healthz`` says 200, else 1 and why."""
    if not settings.metrics_port:
        return 1, "METRICS_PORT is not set: the health endpoint is off (set it, e.g. METRICS_PORT=9108)"
    return probe.ask(settings.metrics_host, settings.metrics_port, TIMEOUT_SECONDS)
