"""The metrics and health server: ``/metrics`` (Prometheus text format) and ``/healthz``.

Off unless ``METRICS_PORT`` is set. ``/healthz`` answers 200 when the Discord gateway is connected
and the database answers a query, else 503; the body is a short JSON object saying which part failed.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Any

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST

from bot.aio import within
from bot.ops.metrics import Metrics, cancel_quietly
from bot.startup import StartupError

if TYPE_CHECKING:
    from bot.app import FluxcordBot

log = logging.getLogger(__name__)

DATABASE_PROBE_TIMEOUT = 2.0


def gateway_connected(bot: Any) -> bool:
    """True while the bot is ready and its gateway websocket is open (every shard's, for a cluster)."""
    if not bot.is_ready() or bot.is_closed():
        return False
    shards = getattr(bot, "shards", None)
    if isinstance(shards, dict) and shards:  # an AutoShardedBot (SHARD_COUNT)
        return all(not shard.is_closed() for shard in shards.values())
    ws = getattr(bot, "ws", None)
    return ws is not None and bool(ws.open)


class OpsServer:
    """Serves the bot's metrics and health on ``host:port``; also runs the event-loop lag ticker."""

    def __init__(self, bot: FluxcordBot, metrics: Metrics, *, host: str, port: int) -> None:
        self._bot = bot
        self._metrics = metrics
        self._host = host
        self._port = port
        self._runner: web.AppRunner | None = None
        self._lag: asyncio.Task[None] | None = None
        self.port: int | None = None  # the bound port (METRICS_PORT=0 picks a free one)

    async def start(self) -> None:
        """Bind and serve; a port in use (or a bad host) is a one-line :class:`StartupError`."""
        app = web.Application()
        app.router.add_get("/metrics", self._handle_metrics)
        app.router.add_get("/healthz", self._handle_health)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        try:
            await web.TCPSite(runner, self._host, self._port).start()
        except OSError as exc:
            await runner.cleanup()
            reason = exc.strerror or str(exc) or type(exc).__name__
            raise StartupError(
                f"METRICS_PORT / METRICS_HOST: cannot listen on {self._host}:{self._port} ({reason}); "
                "choose a free port, or leave METRICS_PORT empty to turn metrics off"
            ) from None
        except BaseException:
            await runner.cleanup()
            raise
        self._runner = runner
        self.port = int(runner.addresses[0][1])
        self._lag = asyncio.create_task(self._metrics.watch_loop_lag(), name="fluxcord-loop-lag")
        log.info("Serving /metrics and /healthz on %s:%d", self._host, self.port)

    async def stop(self) -> None:
        """Stop serving (idempotent)."""
        await cancel_quietly(self._lag)
        self._lag = None
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def health(self) -> tuple[bool, dict[str, str]]:
        """Whether the bot is healthy, and what each part says."""
        worker = getattr(self._bot, "role", "bot") == "worker"  # no gateway: healthy while its engine runs
        gateway = self._bot.services.engine.accepting if worker else gateway_connected(self._bot)
        try:
            await within(DATABASE_PROBE_TIMEOUT, self._bot.services.db.fetch_value("SELECT 1"))
            database = True
        except Exception as exc:
            log.warning("Health check: the database did not answer: %s", type(exc).__name__)
            database = False
        healthy = gateway and database
        body = {
            "status": "ok" if healthy else "unavailable",
            "gateway": ("not used (worker)" if worker else "connected") if gateway else "disconnected",
            "database": "ok" if database else "not answering",
        }
        return healthy, body

    async def _handle_health(self, _request: web.Request) -> web.Response:
        healthy, body = await self.health()
        return web.json_response(body, status=200 if healthy else 503)

    async def _handle_metrics(self, _request: web.Request) -> web.Response:
        services = self._bot.services
        try:
            await services.engine.share_breakers()  # the other processes' view of BFL (at most 2 s old)
            await self._metrics.refresh(
                services.jobs, services.ledger, services.settings, services.engine.breakers.open_models()
            )
        except Exception as exc:  # the counters are still worth serving
            log.warning("Could not read the queue gauges: %s", exc)
        response = web.Response(body=self._metrics.render())
        response.headers["Content-Type"] = CONTENT_TYPE_LATEST
        return response
