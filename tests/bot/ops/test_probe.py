"""The container's health probe (bot/ops/probe.py): exit status from /healthz, and nothing of the bot imported."""

from __future__ import annotations

import asyncio
import json
import socket
import sys

import pytest
from aiohttp import web

from bot.ops.probe import health_url, main
from tests.e2e.processes import REPO


async def serve(status: int, body: dict) -> tuple[web.AppRunner, int]:
    async def health(_request):
        return web.json_response(body, status=status)

    app = web.Application()
    app.router.add_get("/healthz", health)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    return runner, runner.addresses[0][1]


@pytest.mark.parametrize(("code", "expected"), [(200, 0), (503, 1)])
async def test_exit_status_follows_healthz(code, expected, capsys):
    body = {"status": "ok" if code == 200 else "unavailable", "database": "ok"}
    runner, port = await serve(code, body)
    try:
        status = await asyncio.to_thread(main, {"METRICS_PORT": str(port), "METRICS_HOST": "0.0.0.0"})
    finally:
        await runner.cleanup()
    out, err = capsys.readouterr()
    assert status == expected
    if code == 200:
        assert json.loads(out) == body and err == ""
    else:
        assert err.startswith("unhealthy (503): ") and json.loads(err.split(": ", 1)[1]) == body


@pytest.mark.parametrize("port", ["", "0", "not-a-port", "70000"])
def test_no_metrics_port_is_unhealthy_with_the_reason(port, capsys):
    assert main({"METRICS_PORT": port}) == 1
    assert "METRICS_PORT is" in capsys.readouterr().err


def test_nothing_listening_is_unhealthy(capsys):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    assert main({"METRICS_PORT": str(port)}) == 1
    assert f"no answer from http://127.0.0.1:{port}/healthz" in capsys.readouterr().err


async def test_a_server_that_is_not_http_is_unhealthy(capsys):
    async def answer(reader, writer):
        await reader.readline()
        writer.write(b"SSH-2.0-OpenSSH\r\n")
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(answer, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        assert await asyncio.to_thread(main, {"METRICS_PORT": str(port)}) == 1
    finally:
        server.close()
        await server.wait_closed()
    assert "no HTTP answer from" in capsys.readouterr().err


def test_addresses():
    assert health_url("0.0.0.0", 9108) == "http://127.0.0.1:9108/healthz"
    assert health_url("::", 9108) == "http://[::1]:9108/healthz"
    assert health_url("bot.internal", 1) == "http://bot.internal:1/healthz"


async def imported(argv: list[str], env: dict[str, str], cwd) -> tuple[set[str], bytes]:
    """The modules ``python -X importtime …`` loads, and its stdout."""
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-X", "importtime", *argv, env=env, cwd=cwd,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    stdout, stderr = await asyncio.wait_for(process.communicate(), timeout=30)
    assert process.returncode == 0, stderr.decode()
    lines = [line for line in stderr.decode().splitlines() if line.startswith("import time:")]
    return {line.rsplit("|", 1)[1].strip() for line in lines[1:]}, stdout


@pytest.mark.subprocess
async def test_the_probe_imports_only_the_standard_library(tmp_path):
    """Run as the image runs it, with -X importtime: beyond what Python itself loads at start (here, this
    environment's site hooks too), every module it loads is the standard library's."""
    runner, port = await serve(200, {"status": "ok"})
    env = {"PYTHONPATH": str(REPO), "METRICS_PORT": str(port), "PATH": "/usr/bin:/bin"}
    try:
        modules, stdout = await imported(["-m", "bot.ops.probe"], env, tmp_path)
        at_start, _ = await imported(["-c", "pass"], env, tmp_path)
    finally:
        await runner.cleanup()
    assert json.loads(stdout) == {"status": "ok"}
    own = modules - at_start
    outside = {m for m in own if m.split(".")[0] not in sys.stdlib_module_names and m not in {"bot", "bot.ops"}}
    assert outside == set(), f"the probe imported {sorted(outside)}"
    assert {"bot", "bot.ops", "socket"} <= own  # the list is the real one
