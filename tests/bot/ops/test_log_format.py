"""LOG_FORMAT: text lines or JSON objects, with secrets and interaction tokens redacted in both."""

import asyncio
import contextvars
import json
import logging

import pytest

from bot.log import bind_log_fields, setup_logging

TOKEN = "MTA5ODc2NTQzMjE.discord-bot-token-value"
KEY = "bfl-secret-key-123456"
INTERACTION_TOKEN = "aW50ZXJhY3Rpb246MTIzNDU2Nzg5OnNlY3JldA"


@pytest.fixture
def restore_logging():
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


def emit_everything():
    log = logging.getLogger("bot.engine.engine")
    log.info("Logging in with %s and key %s", TOKEN, KEY)
    log.warning("PATCH https://discord.com/api/v10/webhooks/1234567890/%s/messages/@original", INTERACTION_TOKEN)
    try:
        raise RuntimeError(f"boom with {KEY} in /interactions/99887766/{INTERACTION_TOKEN}/callback")
    except RuntimeError:
        log.exception("Job failed")
    log.info("Job %s delivered", 42, extra={"job_id": 42, "guild_id": 7})


@pytest.mark.parametrize("log_format", ["text", "json"])
def test_secrets_and_interaction_tokens_are_redacted(capsys, restore_logging, log_format):
    setup_logging("INFO", [TOKEN, KEY], log_format)
    emit_everything()
    err = capsys.readouterr().err
    assert "boom with ***" in err and "/webhooks/1234567890/***" in err and "/interactions/99887766/***" in err
    for secret in (TOKEN, KEY, INTERACTION_TOKEN):
        assert secret not in err
    lines = err.strip().splitlines()
    if log_format == "json":
        records = [json.loads(line) for line in lines]  # every line is one JSON object
        assert len(records) == 4
        assert {"time", "level", "logger", "message"} <= set(records[0])
        assert records[0]["logger"] == "bot.engine.engine" and records[0]["level"] == "INFO"
        assert records[0]["time"].endswith("+00:00")
        assert "Traceback" in records[2]["exc"] and "***" in records[2]["exc"]
        assert records[3]["job_id"] == 42 and records[3]["guild_id"] == 7 and "user_id" not in records[3]
    else:
        assert lines[0].split()[2] == "INFO" and "bot.engine.engine: Logging in with *** and key ***" in lines[0]
        with pytest.raises(ValueError):
            json.loads(lines[0])


async def test_a_jobs_task_logs_carry_its_ids_and_other_tasks_do_not(capsys, restore_logging):
    setup_logging("INFO", [], "json")
    log = logging.getLogger("bot.engine.engine")

    async def job_work():
        log.info("inside the job")

    context = contextvars.copy_context()
    context.run(bind_log_fields, job_id=5, guild_id=6, user_id=7)
    await asyncio.create_task(job_work(), context=context)
    log.info("outside")
    inside, outside = (json.loads(line) for line in capsys.readouterr().err.strip().splitlines())
    assert (inside["job_id"], inside["guild_id"], inside["user_id"]) == (5, 6, 7)
    assert "job_id" not in outside


async def test_a_slash_commands_records_carry_its_server_and_member(capsys, restore_logging):
    from types import SimpleNamespace

    import discord

    from bot.tree import FluxcordTree

    setup_logging("INFO", [], "json")
    tree = FluxcordTree(discord.Client(intents=discord.Intents.none()))
    interaction = SimpleNamespace(guild_id=111, user=SimpleNamespace(id=222))

    async def command():  # discord.py runs each interaction in its own task
        assert await tree.interaction_check(interaction)
        logging.getLogger("cogs.imagine").info("handling")

    await asyncio.create_task(command())
    logging.getLogger("cogs.imagine").info("elsewhere")
    records = [json.loads(line) for line in capsys.readouterr().err.strip().splitlines()]
    handling, elsewhere = [r for r in records if r["logger"] == "cogs.imagine"]
    assert (handling["guild_id"], handling["user_id"]) == (111, 222)
    assert "guild_id" not in elsewhere
