"""The /imagine pipeline against the fake BFL over real HTTP, with a real SQLite file."""

import asyncio
import io

import aiohttp
import pytest
from PIL import Image

from bot.app import build_services
from bot.bfl.client import PollSchedule
from bot.config import Period, RefundPolicy, Settings
from bot.errors import GenerationFailed, GenerationPaused, LimitReached
from bot.generation import Requester, Stage
from bot.jobs import JobStatus
from bot.ledger import Metric
from bot.limits import LimitSetting, Target, TargetKind
from bot.models import build_request
from tests.fakes.fake_bfl import Behaviour

GUILD, CHANNEL, ALICE = 1000, 2000, 3000
FAST = PollSchedule(first_interval=0.005, quick_phase=0.05, factor=1.5, max_interval=0.02, jitter=0.0)


def make_settings(fake_bfl, tmp_path, **overrides):
    return Settings(
        _env_file=None,
        discord_token="discord-test-token",
        bfl_api_key=fake_bfl.api_key,
        bfl_api_url=fake_bfl.url,
        database_path=tmp_path / "db.sqlite3",
        cache_dir=tmp_path / "cache",
        **overrides,
    )


@pytest.fixture
async def make_services(db, fake_bfl, tmp_path, clock):
    sessions = []

    async def factory(**overrides):
        session = aiohttp.ClientSession()
        sessions.append(session)
        settings = make_settings(fake_bfl, tmp_path, **overrides)
        return build_services(
            settings, db=db, session=session, clock=clock, poll_schedule=FAST, backoff_base=0.001, backoff_cap=0.01
        )

    yield factory
    for session in sessions:
        await session.close()


@pytest.fixture
async def services(make_services):
    return await make_services()


def request(seed=42, **options):
    return build_request(
        model=options.pop("model", None), prompt="a red fox in snow", aspect_ratio="16:9", seed=seed, **options
    )


def who(job_id, user=ALICE):
    return Requester(job_id=job_id, guild_id=GUILD, channel_id=CHANNEL, user_id=user)


async def generate(services, job_id, req=None, user=ALICE, progress=None):
    ticket = await services.generator.admit(req or request(), who(job_id, user))
    return await services.generator.run(ticket, on_progress=progress)


async def ledger_kinds(db, job_id):
    rows = await db.fetch_all("SELECT kind FROM ledger WHERE job_id = ? ORDER BY id", (job_id,))
    return [r["kind"] for r in rows]


async def test_happy_path_settles_the_reported_cost_and_records_the_job(services, fake_bfl, db):
    fake_bfl.script(Behaviour(pending_polls=2))
    seen = []

    async def progress(update):
        seen.append(update.stage)

    image = await generate(services, 1, progress=progress)
    with Image.open(io.BytesIO(image.data)) as decoded:
        assert abs(decoded.width / decoded.height - 16 / 9) < 0.02
    assert image.cost_micros == 40_000 and not image.from_cache
    assert seen[:4] == [Stage.QUEUED, Stage.SUBMITTING, Stage.GENERATING, Stage.DOWNLOADING]
    assert await ledger_kinds(db, 1) == ["reserve", "settle"]
    job = await services.jobs.get(1)
    assert job.status is JobStatus.DELIVERING and job.cost_micros == 40_000 and job.bfl_task_id
    await services.generator.mark_delivered(1, CHANNEL, 555)
    statuses = [status for status, _ in await services.jobs.events(1)]
    assert statuses == ["queued", "submitting", "generating", "downloading", "delivering", "delivered"]
    assert fake_bfl.schema_errors == []
    assert await services.ledger.verify_counters() == []


async def test_identical_request_is_served_from_cache_for_free(services, fake_bfl, db):
    first = await generate(services, 1)
    second = await generate(services, 2)
    assert second.from_cache and second.cost_micros == 0 and second.data == first.data
    assert len(fake_bfl.submits) == 1
    assert await ledger_kinds(db, 2) == []
    assert (await services.jobs.get(2)).status is JobStatus.CACHED
    await generate(services, 3, req=request(seed=43))  # another seed is another image
    assert len(fake_bfl.submits) == 2


async def test_refusal_has_no_side_effect(make_services, fake_bfl, db):
    services = await make_services(default_member_daily_images=0)
    with pytest.raises(LimitReached, match="image quota"):
        await services.generator.admit(request(), who(1))
    assert fake_bfl.submits == []
    assert await db.fetch_value("SELECT COUNT(*) FROM ledger") == 0


async def test_paused_server_refuses_even_cached_images(services, fake_bfl):
    await generate(services, 1)
    await services.limits.update_guild_setting(GUILD, "paused", 1, actor_id=9, action="pause", shown="1")
    with pytest.raises(GenerationPaused):
        await services.generator.admit(request(), who(2))


@pytest.mark.parametrize("status", [402, 403, 422, 400])
async def test_submit_refused_by_bfl_releases_everything(services, fake_bfl, db, status):
    fake_bfl.script(Behaviour(submit_status=status))
    with pytest.raises(GenerationFailed) as info:
        await generate(services, 1)
    assert "not been charged" in info.value.user_message
    assert await ledger_kinds(db, 1) == ["reserve", "release"]
    assert (await services.jobs.get(1)).status is JobStatus.FAILED


async def test_out_of_credits_reads_as_temporarily_unavailable(services, fake_bfl, caplog):
    fake_bfl.script(Behaviour(submit_status=402))
    with pytest.raises(GenerationFailed, match="temporarily unavailable"):
        await generate(services, 1)
    assert any("credits" in r.getMessage() for r in caplog.records if r.levelname == "ERROR")


async def test_rate_limit_is_retried_then_succeeds(services, fake_bfl, db):
    fake_bfl.fail_submits(429, times=2)
    await generate(services, 1)
    assert fake_bfl.submit_statuses() == [429, 429, 200]
    assert await ledger_kinds(db, 1) == ["reserve", "settle"]


@pytest.mark.parametrize(
    ("final", "text", "member_charged"),
    [
        ("Request Moderated", "prompt was blocked", True),
        ("Content Moderated", "generated image was blocked", True),
        ("Error", "could not generate", False),
        ("Task not found", "could not generate", False),
        ("Something New", "could not generate", False),
    ],
)
async def test_accepted_task_failures_follow_the_refund_policy(services, fake_bfl, db, final, text, member_charged):
    fake_bfl.script(Behaviour(final_status=final))
    with pytest.raises(GenerationFailed, match=text):
        await generate(services, 1)
    assert await ledger_kinds(db, 1) == ["reserve", "settle"]
    rows = await db.fetch_one(
        "SELECT SUM(server_micros) AS server, SUM(member_micros) AS member FROM ledger WHERE job_id = 1"
    )
    assert rows["server"] == 40_000  # BFL accepted it: the money left the account
    assert rows["member"] == (40_000 if member_charged else 0)


async def test_refund_policy_all_refunds_moderated_prompts(make_services, fake_bfl, db):
    services = await make_services(refund_policy=RefundPolicy.ALL)
    fake_bfl.script(Behaviour(final_status="Request Moderated"))
    with pytest.raises(GenerationFailed, match="not been charged"):
        await generate(services, 1)
    assert await db.fetch_value("SELECT SUM(member_micros) FROM ledger WHERE job_id = 1") == 0


async def test_unknown_submit_outcome_is_never_resent(make_services, fake_bfl, db):
    import aiohttp as http

    services = await make_services()
    services.bfl._submit_timeout = http.ClientTimeout(total=0.3)  # the fake hangs; don't wait 30 s
    fake_bfl.script(Behaviour(hang=True))
    with pytest.raises(GenerationFailed, match="did not answer"):
        await generate(services, 1)
    assert len(fake_bfl.submits) == 1
    assert (await services.jobs.get(1)).status is JobStatus.UNKNOWN
    row = await db.fetch_one("SELECT SUM(server_micros) AS s, SUM(member_micros) AS m FROM ledger WHERE job_id = 1")
    assert (row["s"], row["m"]) == (40_000, 0)  # counted against the server, refunded to the member


async def test_poll_deadline_gives_up_and_refunds(make_services, fake_bfl, db):
    services = await make_services(job_timeout_seconds=10)
    services.generator._settings = services.settings.model_copy(update={"job_timeout_seconds": 0.2})
    fake_bfl.script(Behaviour(release=asyncio.Event()))  # Pending forever
    with pytest.raises(GenerationFailed, match="too long"):
        await generate(services, 1)
    assert await db.fetch_value("SELECT SUM(member_micros) FROM ledger WHERE job_id = 1") == 0


async def test_expired_delivery_url(services, fake_bfl, db):
    fake_bfl.script(Behaviour(delivery_ttl=0))
    with pytest.raises(GenerationFailed):
        await generate(services, 1)
    assert await ledger_kinds(db, 1) == ["reserve", "settle"]


async def test_fifty_simultaneous_requests_with_five_allowed(make_services, fake_bfl, db):
    services = await make_services()
    await services.limits.set_limit(
        GUILD, LimitSetting(Target(TargetKind.MEMBER, ALICE), Metric.IMAGES, Period.DAY, 5), actor_id=9
    )
    fake_bfl.default = Behaviour(pending_polls=1)

    async def attempt(job_id):
        try:
            await generate(services, job_id, req=request(seed=job_id))
        except LimitReached as refusal:
            return refusal.user_message
        return "ok"

    results = await asyncio.gather(*(attempt(job) for job in range(1, 51)))
    assert results.count("ok") == 5
    assert all("image quota" in r for r in results if r != "ok")
    assert len(fake_bfl.submits) == 5
    assert await db.fetch_value("SELECT COUNT(*) FROM ledger WHERE kind = 'settle'") == 5
    assert fake_bfl.max_active_seen <= 2  # the member's concurrency cap (MEMBER_MAX_CONCURRENT_JOBS=2)


async def test_concurrency_across_members_respects_the_bfl_cap(make_services, fake_bfl):
    services = await make_services(bfl_max_active_tasks=4, member_max_concurrent_jobs=4)
    gate = asyncio.Event()
    fake_bfl.default = Behaviour(release=gate)
    jobs = [asyncio.create_task(generate(services, i, req=request(seed=i), user=i % 5 + 1)) for i in range(1, 13)]
    await fake_bfl.wait_for(lambda: fake_bfl.active_tasks == 4, timeout=5)
    gate.set()
    await asyncio.gather(*jobs)
    assert fake_bfl.max_active_seen == 4


async def test_spend_alerts_fire_once_per_threshold(make_services, fake_bfl, db):
    services = await make_services()
    await services.limits.set_limit(
        GUILD, LimitSetting(Target(TargetKind.SERVER, GUILD), Metric.USD, Period.DAY, 100_000), actor_id=9
    )
    posted = []

    class Poster:
        async def post_to_channel(self, channel_id, text):
            posted.append((channel_id, text))

    services.modlog.poster = Poster()
    await services.limits.update_guild_setting(GUILD, "modlog_channel_id", 77, actor_id=9, action="x", shown=None)
    await generate(services, 1, req=request(seed=1))  # 40 % of $0.10
    assert posted == []
    await generate(services, 2, req=request(seed=2))  # 80 %
    assert [text.split("used ")[1][:3] for _, text in posted] == ["50%", "80%"]
    assert {channel for channel, _ in posted} == {77}


async def test_an_unexpected_bug_after_submit_does_not_hold_the_money(services, fake_bfl, db, monkeypatch):
    async def broken_put(*args, **kwargs):
        raise OSError("disk on fire")

    monkeypatch.setattr(services.generator._cache, "put", broken_put)
    with pytest.raises(GenerationFailed, match="not been charged"):
        await generate(services, 1)
    assert await services.ledger.open_job_ids() == []
    row = await db.fetch_one("SELECT SUM(server_micros) AS s, SUM(member_micros) AS m FROM ledger WHERE job_id = 1")
    assert (row["s"], row["m"]) == (40_000, 0)  # BFL was paid; the member was not charged
    assert (await services.jobs.get(1)).status is JobStatus.FAILED


async def test_an_unexpected_bug_before_submit_releases_everything(services, fake_bfl, db, monkeypatch):
    real_transition = services.jobs.transition

    async def broken_transition(job_id, status, **fields):
        if status is JobStatus.SUBMITTING:
            raise RuntimeError("bug")
        await real_transition(job_id, status, **fields)

    monkeypatch.setattr(services.jobs, "transition", broken_transition)
    with pytest.raises(GenerationFailed):
        await generate(services, 1)
    assert fake_bfl.submits == []
    assert await ledger_kinds(db, 1) == ["reserve", "release"]


async def test_a_result_that_is_not_an_image_is_never_cached_or_charged_to_the_member(
    services, fake_bfl, db, monkeypatch
):
    async def garbage(url, *, max_bytes):
        return b"<html>not an image</html>"

    monkeypatch.setattr(services.bfl, "download", garbage)
    with pytest.raises(GenerationFailed, match="not been charged"):
        await generate(services, 1)
    assert await services.generator._cache.get(request().cache_key()) is None
    assert await db.fetch_value("SELECT SUM(member_micros) FROM ledger WHERE job_id = 1") == 0
