"""`python -m bot healthcheck`: exit 0 only on a 200 from /healthz."""

import asyncio
import socket

import pytest
from aiohttp import web

from bot.config import Settings
from bot.ops.healthcheck import health_url, healthcheck


def settings(**overrides):
    return Settings(_env_file=None, discord_token="t" * 12, bfl_api_key="k" * 12, **overrides)


@pytest.mark.parametrize(
    ("host", "url"),
    [
        ("127.0.0.1", "http://127.0.0.1:9108/healthz"),
        ("0.0.0.0", "http://127.0.0.1:9108/healthz"),  # listening everywhere: ask on loopback
        ("::", "http://[::1]:9108/healthz"),
        ("bot.internal", "http://bot.internal:9108/healthz"),
    ],
)
def test_health_url(host, url):
    assert health_url(settings(metrics_port=9108, metrics_host=host)) == url


def test_metrics_off_is_unhealthy_with_the_reason():
    status, line = healthcheck(settings())
    assert status == 1 and "METRICS_PORT is not set" in line


@pytest.mark.parametrize(("code", "expected"), [(200, 0), (503, 1)])
async def test_exit_status_follows_the_endpoint(code, expected):
    async def health(_request):
        return web.json_response({"status": "ok" if code == 200 else "unavailable"}, status=code)

    app = web.Application()
    app.router.add_get("/healthz", health)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    port = runner.addresses[0][1]
    try:
        status, line = await asyncio.to_thread(healthcheck, settings(metrics_port=port))
    finally:
        await runner.cleanup()
    assert status == expected
    assert ("ok" if code == 200 else "unhealthy (503)") in line


def test_nothing_listening_is_unhealthy():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    status, line = healthcheck(settings(metrics_port=port))
    assert status == 1 and f"no answer from http://127.0.0.1:{port}/healthz" in line
