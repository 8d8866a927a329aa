"""The real `python -m bot` process, configured only through the environment."""

import asyncio
import io
import os
import signal
import sys
from pathlib import Path

import pytest
from PIL import Image

REPO = Path(__file__).parents[2]
pytestmark = pytest.mark.subprocess


def clean_environment(**extra):
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("DISCORD_", "BFL_", "DATABASE_", "DEV_GUILD", "LOG_LEVEL", "CACHE_"))
    }
    env["PYTHONPATH"] = str(REPO)
    env.update(extra)
    return env


async def test_missing_token_exits_with_one_line_naming_it(tmp_path):
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bot", cwd=tmp_path, env=clean_environment(BFL_API_KEY="x" * 12),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    stdout, stderr = await asyncio.wait_for(process.communicate(), timeout=60)
    assert process.returncode == 1
    lines = stderr.decode().strip().splitlines()
    assert len(lines) == 1 and "DISCORD_TOKEN" in lines[0], lines
    assert stdout == b""


async def test_python_m_bot_generates_an_image_and_never_logs_secrets(tmp_path, fake_discord, fake_bfl):
    fake = fake_discord
    # The most talkative level must still redact every secret.
    process = await start_bot(tmp_path, fake, fake_bfl, LOG_LEVEL="DEBUG")
    logs = bytearray()

    async def collect():
        while chunk := await process.stderr.read(65536):
            logs.extend(chunk)

    collector = asyncio.create_task(collect())
    try:
        await fake.wait_until_connected(timeout=30)
        await fake.wait_for(lambda: fake.command_syncs, timeout=30)
        interaction = await fake.slash("imagine", {"prompt": "a paper boat", "aspect_ratio": "9:16"})
        await interaction.wait_for(lambda: (interaction.original_message or {}).get("attachments"), timeout=30)
        data = fake.attachment_bytes(interaction.original_message, 0)
        image = Image.open(io.BytesIO(data))
        assert abs(image.width / image.height - 9 / 16) < 0.02
    finally:
        process.send_signal(signal.SIGINT)
        await asyncio.wait_for(process.wait(), timeout=30)
        await collector
    text = logs.decode(errors="replace")
    assert "Synced" in text  # the log is really there, and at DEBUG
    for secret in (fake.token, fake_bfl.api_key, interaction.token):
        assert secret not in text
    assert process.returncode in (0, -signal.SIGINT)


async def start_bot(tmp_path, fake, fake_bfl, **extra):
    """``python -m bot`` configured only through its environment, pointed at the fakes."""
    env = clean_environment(
        DISCORD_TOKEN=fake.token,
        BFL_API_KEY=fake_bfl.api_key,
        BFL_API_URL=fake_bfl.url,
        DISCORD_API_URL=fake.api_url,
        DISCORD_GATEWAY_URL=fake.gateway_url,
        DATABASE_PATH=str(tmp_path / "bot.sqlite3"),
        CACHE_DIR=str(tmp_path / "cache"),
        **extra,
    )
    return await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bot", cwd=tmp_path, env=env, stderr=asyncio.subprocess.PIPE
    )


async def test_sigterm_exits_0_within_10_s_keeping_jobs_and_the_next_start_resumes_them(
    tmp_path, fake_discord, fake_bfl
):
    from tests.fakes.fake_bfl import Behaviour

    fake = fake_discord
    gate = asyncio.Event()
    fake_bfl.default = Behaviour(release=gate)  # BFL keeps working on it across the restart
    process = await start_bot(tmp_path, fake, fake_bfl)
    await fake.wait_until_connected(timeout=30)
    interaction = await fake.slash("imagine", {"prompt": "a paper boat"})
    await fake_bfl.wait_for(lambda: fake_bfl.tasks, timeout=30)  # submitted: the job is generating

    loop = asyncio.get_running_loop()
    started = loop.time()
    process.send_signal(signal.SIGTERM)
    _, stderr = await asyncio.wait_for(process.communicate(), timeout=15)
    assert process.returncode == 0, stderr.decode()[-2000:]
    assert loop.time() - started < 10
    assert "Traceback" not in stderr.decode()

    gate.set()  # BFL finishes while the bot is down
    fake_bfl.default = Behaviour()
    again = await start_bot(tmp_path, fake, fake_bfl)
    try:
        await interaction.wait_for(lambda: (interaction.original_message or {}).get("attachments"), timeout=30)
    finally:
        again.send_signal(signal.SIGTERM)
        await asyncio.wait_for(again.communicate(), timeout=15)
    assert again.returncode == 0
    assert len(fake_bfl.submits) == 1  # resumed by polling, never submitted again
