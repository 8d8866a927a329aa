"""The container set-up, without a container runtime: the image's own commands, run directly.

No Docker engine runs here, so the Dockerfile is read, not built: its ENTRYPOINT is started as a real
process with the image's ENV (the data folder moved to a temporary one) against the two fakes, and its
HEALTHCHECK command is run beside it, as Docker would, while it runs and after it stopped.
"""

import asyncio
import json
import re
import signal
import socket
import sys

import pytest

from tests.e2e.processes import REPO, clean_environment, fake_endpoints

pytestmark = pytest.mark.subprocess

DOCKERFILE = (REPO / "Dockerfile").read_text(encoding="utf-8")
COMPOSE = (REPO / "compose.yaml").read_text(encoding="utf-8")


def final_stage():
    return DOCKERFILE[DOCKERFILE.rindex("\nFROM ") :]


def instruction(name):
    """The JSON argument list of the final stage's ``name`` instruction (exec form)."""
    match = re.search(rf"^{name} (?:.* )?(?:CMD )?(\[.*\])$", final_stage(), flags=re.MULTILINE)
    assert match, f"no exec-form {name}"
    return json.loads(match.group(1))


def image_env():
    block = re.search(r"^ENV (.*?)(?=^\S)", final_stage(), flags=re.MULTILINE | re.DOTALL).group(1)
    return dict(pair.split("=", 1) for pair in block.replace("\\\n", " ").split())


def test_dockerfile_slim_base_non_root_data_volume_and_health_check():
    stage = final_stage()
    assert re.match(r"\nFROM python:3\.11-slim\n", stage)
    user = re.search(r"^USER (\S+)$", stage, flags=re.MULTILINE).group(1)
    assert user not in {"root", "0"}
    assert "useradd --system --uid 10001 --user-group" in stage and f" {user} " in stage.replace("\\\n", " ")
    assert image_env()["DATABASE_PATH"] == "/data/fluxcord.sqlite3"
    assert 'VOLUME ["/data"]' in stage
    assert instruction("ENTRYPOINT") == ["python", "-m", "bot"]
    assert instruction("HEALTHCHECK") == ["python", "-m", "bot.ops.probe"]  # not the bot: bot/ops/probe.py
    assert "--no-cache-dir" in DOCKERFILE


def test_the_image_is_compiled_at_build_time_for_the_standard_library_and_the_bot():
    """The base image ships no .pyc and PYTHONDONTWRITEBYTECODE=1 saves none: compiled once, as root."""
    stage = final_stage()
    compile_line = "RUN python -m compileall -q -j 0 --invalidation-mode unchecked-hash /usr/local/lib/python3.11"
    assert compile_line in stage.splitlines()
    assert stage.index("COPY --from=build /install /usr/local") < stage.index(compile_line) < stage.index("USER ")
    assert image_env()["PYTHONDONTWRITEBYTECODE"] == "1"


def test_dockerignore_keeps_secrets_and_state_out_of_the_build_context():
    lines = (REPO / ".dockerignore").read_text().splitlines()
    assert lines[1] == "*"  # everything is excluded, then the four things the build copies are let in
    assert {line for line in lines if line.startswith("!")} == {"!pyproject.toml", "!README.md", "!bot/", "!cogs/"}


def test_compose_has_a_named_volume_env_file_restart_policy_and_a_long_enough_grace_period():
    assert re.search(r"^    env_file: \.env$", COMPOSE, flags=re.MULTILINE)
    assert re.search(r"^      - fluxcord-data:/data$", COMPOSE, flags=re.MULTILINE)
    assert re.search(r"^volumes:\n  fluxcord-data:$", COMPOSE, flags=re.MULTILINE)
    assert re.search(r"^    restart: unless-stopped$", COMPOSE, flags=re.MULTILINE)
    grace = int(re.search(r"^    stop_grace_period: (\d+)s$", COMPOSE, flags=re.MULTILINE).group(1))
    assert grace >= 15  # the shutdown gives submits 5 s, then closes; a SIGTERM test bounds it at 10 s
    # `environment:` wins over the .env file (whose METRICS_PORT= would otherwise turn the health check off)
    assert "      DATABASE_PATH: /data/fluxcord.sqlite3\n" in COMPOSE and '      METRICS_PORT: "9108"\n' in COMPOSE


def free_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


async def run_command(argv, env, cwd):
    process = await asyncio.create_subprocess_exec(
        *argv, env=env, cwd=cwd, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    stdout, stderr = await asyncio.wait_for(process.communicate(), timeout=60)
    return process.returncode, stdout.decode(), stderr.decode()


def direct(argv):
    """The image's ``python`` is this interpreter."""
    assert argv[0] == "python"
    return [sys.executable, *argv[1:]]


async def test_the_entry_point_runs_the_bot_and_the_health_check_follows_it(tmp_path, fake_discord, fake_bfl):
    data = tmp_path / "data"
    data.mkdir()
    port = free_port()  # the image's 9108 may be taken on this machine
    env = clean_environment(
        **{**image_env(), "DATABASE_PATH": str(data / "fluxcord.sqlite3"), "METRICS_PORT": str(port)},
        **fake_endpoints(fake_discord, fake_bfl),
    )
    entry = await asyncio.create_subprocess_exec(
        *direct(instruction("ENTRYPOINT")), env=env, cwd=data, stderr=asyncio.subprocess.PIPE
    )
    logs = bytearray()
    try:
        async with asyncio.timeout(30):
            while b"Ready as" not in logs:  # the bot's on_ready log line: the gateway is up
                line = await entry.stderr.readline()
                assert line, logs.decode()
                logs.extend(line)
        code, stdout, stderr = await run_command(direct(instruction("HEALTHCHECK")), env, data)
        assert code == 0, stderr
        assert json.loads(stdout) == {"status": "ok", "gateway": "connected", "database": "ok"}
        code, stdout, stderr = await run_command(direct(["python", "-m", "bot", "healthcheck"]), env, data)
        assert code == 0, stderr  # the command for people still answers
        assert json.loads(stdout) == {"status": "ok", "gateway": "connected", "database": "ok"}
    finally:
        entry.send_signal(signal.SIGTERM)
        _, rest = await asyncio.wait_for(entry.communicate(), timeout=30)
    logs.extend(rest)
    assert entry.returncode == 0, logs.decode()[-2000:]
    assert f"Serving /metrics and /healthz on 0.0.0.0:{port}" in logs.decode()
    assert (data / "fluxcord.sqlite3").is_file()  # the state went to the data folder
    code, _, stderr = await run_command(direct(instruction("HEALTHCHECK")), env, data)
    assert code == 1 and "no answer from" in stderr
