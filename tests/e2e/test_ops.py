"""Operations through the real bot: /metrics and /healthz over HTTP, /status, and a backup while jobs are written."""

import asyncio
import sqlite3
import sys

import aiohttp
import pytest
from prometheus_client.parser import text_string_to_metric_families

from bot.engine.states import JobStatus
from bot.storage.database import load_migrations
from tests.e2e.fake_discord import Perm
from tests.e2e.processes import clean_environment
from tests.fakes.fake_bfl import Behaviour

METRICS = {"metrics_port": 0}  # any free port; the bot says which (bot.ops.port)
MEMBER = Perm.VIEW_CHANNEL | Perm.SEND_MESSAGES


async def get(harness, path):
    url = f"http://127.0.0.1:{harness.bot.ops.port}{path}"
    async with aiohttp.ClientSession() as session, session.get(url) as response:
        return response.status, response.headers.get("Content-Type", ""), await response.text()


async def scrape(harness):
    status, content_type, text = await get(harness, "/metrics")
    assert status == 200 and content_type.startswith("text/plain")
    samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def value(samples, name, **labels):
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


@pytest.mark.parametrize("bot_settings_overrides", [{**METRICS, "default_member_daily_images": 1}])
async def test_metrics_move_after_a_job_and_a_refusal(harness):
    before = await scrape(harness)
    model = harness.settings.default_model
    assert value(before, "fluxcord_jobs_total", model=model, outcome="delivered") == 0
    assert value(before, "fluxcord_queue_depth") == 0 and value(before, "fluxcord_bfl_tasks_in_flight") == 0
    assert value(before, "fluxcord_bot_budget_micros") == harness.settings.bot_budget_micros

    done = await harness.imagine(prompt="a lighthouse at dusk")
    refused = await harness.imagine(prompt="a second one, over the daily quota")
    assert not done.ephemeral and refused.ephemeral

    after = await scrape(harness)
    job = await harness.services.jobs.get(int(done.id))
    assert value(after, "fluxcord_jobs_total", model=model, outcome="delivered") == 1
    assert value(after, "fluxcord_bfl_latency_seconds_count", model=model) == 1
    assert value(after, "fluxcord_bfl_latency_seconds_sum", model=model) > 0
    assert value(after, "fluxcord_spend_micros_total", model=model) == job.settled_cost_micros > 0
    assert value(after, "fluxcord_bot_budget_spent_micros") == job.settled_cost_micros
    assert value(after, "fluxcord_refusals_total", reason="limit") == 1
    assert ("fluxcord_event_loop_lag_seconds", ()) in after
    assert value(after, "fluxcord_uptime_seconds") > 0


@pytest.mark.parametrize("bot_settings_overrides", [METRICS])
async def test_queue_depth_and_tasks_in_flight_are_read_at_scrape_time(harness):
    gate = asyncio.Event()
    harness.bfl.default = Behaviour(release=gate)  # BFL holds the task until the test lets go
    member = harness.fake.add_member(name="member", permissions=MEMBER)
    first = await harness.imagine(user=member, wait=False, prompt="one")
    second = await harness.imagine(user=member, wait=False, prompt="two")
    third = await harness.imagine(user=member, wait=False, prompt="three")  # the member's cap is 2 at once

    async def two_generating():
        return len(harness.bfl.tasks) == 2 and await harness.services.jobs.count(JobStatus.QUEUED) == 1

    await harness.wait_until(two_generating)
    samples = await scrape(harness)
    assert value(samples, "fluxcord_bfl_tasks_in_flight") == 2
    assert value(samples, "fluxcord_queue_depth") == 1
    gate.set()
    for interaction in (first, second, third):
        await harness.finished(interaction)
    samples = await scrape(harness)
    assert value(samples, "fluxcord_queue_depth") == 0 and value(samples, "fluxcord_bfl_tasks_in_flight") == 0
    assert value(samples, "fluxcord_jobs_total", model=harness.settings.default_model, outcome="delivered") == 3


@pytest.mark.parametrize("bot_settings_overrides", [METRICS])
async def test_healthz_is_503_while_the_gateway_is_down_and_200_again_after(harness):
    status, content_type, body = await get(harness, "/healthz")
    assert (status, content_type) == (200, "application/json; charset=utf-8")
    assert body == '{"status": "ok", "gateway": "connected", "database": "ok"}'

    disconnected = harness.bot.wait_for("disconnect", timeout=10)  # the listener is registered by this call
    await harness.fake.drop_gateway()
    await disconnected
    status, _, body = await get(harness, "/healthz")
    assert status == 503
    assert '"gateway": "disconnected"' in body and '"database": "ok"' in body

    resumed = harness.bot.wait_for("resumed", timeout=20)
    harness.fake.restore_gateway()
    await resumed
    assert (await get(harness, "/healthz"))[0] == 200


@pytest.mark.parametrize("bot_settings_overrides", [METRICS])
@pytest.mark.parametrize("fake_discord_options", [{"ack_deadline_s": 0.0}])
async def test_discord_api_errors_are_counted(harness):
    harness.fake.assert_clean_at_teardown = False  # every answer is too late, on purpose
    interaction = await harness.fake.slash("imagine", {"prompt": "too late"})

    async def abandoned():
        job = await harness.services.jobs.get(int(interaction.id))
        return job is not None and not job.status.is_open

    await harness.wait_until(abandoned)  # the answer failed (404 Unknown interaction), so the job was cancelled
    samples = await scrape(harness)
    assert value(samples, "fluxcord_discord_api_errors_total", status="404") >= 1
    assert value(samples, "fluxcord_jobs_total", model=harness.settings.default_model, outcome="cancelled") == 1


async def test_status_shows_balance_queue_last_error_and_uptime_to_moderators_only(harness):
    fake = harness.fake
    harness.bfl.default = Behaviour(final_status="Error", final_http_status=503)
    await harness.imagine(prompt="this one fails at BFL")
    assert harness.services.engine.last_error is not None
    registry = harness.services.ops.metrics.registry  # counted even with the metrics server off
    labels = {"model": harness.settings.default_model, "outcome": "failed"}
    assert registry.get_sample_value("fluxcord_jobs_total", labels) == 1
    mod = fake.add_member(name="mod", permissions=MEMBER | Perm.MANAGE_GUILD)
    member = fake.add_member(name="member", permissions=MEMBER)

    asked = await fake.slash("status", {}, user=mod)
    await fake.wait_for(lambda: asked.followups or (asked.original_message or {}).get("content"))
    text = harness.reply_text(asked)
    assert asked.ephemeral
    assert "BFL balance:" in text and "credits ($" in text
    assert "in flight: 0" in text and "queued: 0" in text
    assert harness.services.engine.last_error[:16] in text  # the time it happened, then what
    assert " up " in text

    refused = await fake.slash("status", {}, user=member)
    await fake.wait_for(lambda: refused.original_message is not None)
    assert refused.ephemeral and "Only moderators" in harness.reply_text(refused)


@pytest.mark.subprocess
@pytest.mark.parametrize(
    "bot_settings_overrides",
    [
        {
            "default_member_daily_images": 100_000,
            "DEFAULT_MEMBER_DAILY_USD": "1000",
            "DEFAULT_SERVER_DAILY_USD": "1000",
            "member_max_pending_jobs": 100,
            "member_max_concurrent_jobs": 24,
        }
    ],
)
@pytest.mark.sqlite_only  # `backup` copies the SQLite file; PostgreSQL has its own tools
async def test_python_m_bot_backup_while_jobs_are_written_copies_them_consistently(harness, tmp_path):
    source = harness.settings.database_path
    writing = True
    interactions = []

    async def keep_imagining(member):  # each member asks again as soon as the last image arrived
        while writing:
            interactions.append(await harness.imagine(user=member, wait=False, prompt=f"image {len(interactions)}"))
            await harness.finished(interactions[-1])

    members = [harness.fake.add_member(name=f"member{i}", permissions=MEMBER) for i in range(6)]
    writers = [asyncio.create_task(keep_imagining(member)) for member in members]
    await harness.wait_until(lambda: _jobs_at_least(harness, 12))  # jobs exist and more are being written
    at_start = await harness.services.jobs.count(*JobStatus)
    events_at_start = await _events(harness)
    copy = tmp_path / "backup.sqlite3"
    env = clean_environment(DISCORD_TOKEN="unused-token", BFL_API_KEY="unused-key", DATABASE_PATH=str(source))
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bot", "backup", str(copy), cwd=tmp_path, env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    stdout, stderr = await asyncio.wait_for(process.communicate(), timeout=60)
    at_end = await harness.services.jobs.count(*JobStatus)
    events_at_end = await _events(harness)
    writing = False
    await asyncio.gather(*writers)
    assert process.returncode == 0, stderr.decode()
    assert f"to {copy}" in stdout.decode()

    backup = sqlite3.connect(copy)
    try:
        assert backup.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        jobs = {row[0] for row in backup.execute("SELECT id FROM jobs")}
        # a job and its reservation are written in one transaction: the copy has both or neither
        reserved = {row[0] for row in backup.execute("SELECT job_id FROM ledger WHERE kind = 'reserve'")}
        schema = backup.execute("PRAGMA user_version").fetchone()[0]
        events = backup.execute("SELECT COUNT(*) FROM job_events").fetchone()[0]
    finally:
        backup.close()
    assert events_at_end > events_at_start and at_start >= 12  # jobs were being written while the backup ran
    assert at_start <= len(jobs) <= at_end and events_at_start <= events <= events_at_end
    assert jobs == reserved
    assert jobs <= {int(i.id) for i in interactions}
    assert schema == load_migrations()[-1].version  # the copy opens as this version's database
    assert f"{len(jobs)} jobs" in stdout.decode()


async def _events(harness):
    return await harness.services.db.fetch_value("SELECT COUNT(*) FROM job_events")


async def _jobs_at_least(harness, n):
    return await harness.services.jobs.count(*JobStatus) >= n


async def test_a_metrics_port_in_use_stops_the_start_with_one_line_naming_it(fake_discord, fake_bfl, tmp_path):
    import socket

    from bot.app import assemble
    from bot.startup import StartupError
    from tests.e2e.support import bot_settings

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        settings = bot_settings(fake_discord, fake_bfl, tmp_path, metrics_port=port)
        with pytest.raises(StartupError) as failure:
            async with assemble(settings):
                pass
    message = str(failure.value)
    assert message.startswith(f"METRICS_PORT / METRICS_HOST: cannot listen on 127.0.0.1:{port}")
    assert "\n" not in message
