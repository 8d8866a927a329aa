"""What BFL really does (issue 21), through the real engine against the fake BFL over loopback.

An early ``Task not found`` keeps polling; 500/503 polls are read; a task that ends ``Error`` feeds
its model's circuit breaker; every submit whose route takes it carries ``user`` (a keyed hash, never
the Discord id); FLUX 3 with input images is sent ``safety_tolerance`` ≤ 2.
"""

from __future__ import annotations

import base64
import dataclasses
import io
import re

import pytest
from PIL import Image

from bot.bfl.client import POLL_FAILURE_LIMIT
from bot.bfl.end_user import EndUserIds
from bot.engine.breaker import CircuitBreakers
from bot.engine.engine import ProviderTrouble
from bot.engine.states import JobStatus
from bot.models import MODELS, InputImage
from bot.safety.levels import SafetyLevel
from tests.bot.engine.conftest import ALICE, CHANNEL, GUILD, request, who
from tests.fakes.fake_bfl import Behaviour

BOB = 3001
OTHER_GUILD = 1001


@pytest.fixture
async def fast(make_engine):
    """An engine whose models are warm at 0.1 s, so it polls every 0.05 s instead of the cold plan's 0.5 s."""

    async def make(**overrides):
        h = await make_engine(**overrides)
        h.engine.latency.restore({model: [0.1] * 5 for model in MODELS})
        return h

    return make


def png(width: int = 320, height: int = 320) -> InputImage:
    buffer = io.BytesIO()
    Image.new("RGB", (width, height), (40, 90, 160)).save(buffer, format="PNG")
    return InputImage(data_b64=base64.b64encode(buffer.getvalue()).decode(), width=width, height=height)


# -- Task not found right after the submit ----------------------------------------------------------


async def test_task_not_found_twice_then_ready_delivers_with_one_submit(fast, fake_bfl):
    harness = await fast()
    fake_bfl.script(Behaviour(not_found_polls=2, pending_polls=1))
    result = await harness.generate(1)
    assert result.cost_micros == 40_000 and result.data
    assert len(fake_bfl.submits) == 1
    assert [p.task_status for p in fake_bfl.polls] == ["Task not found", "Task not found", "Pending", "Ready"]
    assert await harness.ledger_kinds(1) == ["reserve", "settle"]
    assert (await harness.store.get(1)).status is JobStatus.DELIVERED


async def test_an_early_404_is_transient_too(fast, fake_bfl):
    harness = await fast()
    fake_bfl.script(Behaviour(not_found_polls=2, not_found_http=404))
    result = await harness.generate(1)
    assert result.cost_micros == 40_000 and len(fake_bfl.submits) == 1


async def test_task_not_found_past_the_window_fails_as_before(fast, fake_bfl):
    h = await fast(bfl_task_not_found_window_seconds=0)
    fake_bfl.script(Behaviour(not_found_polls=100))
    assert "could not generate" in await h.generate(1)
    assert len(fake_bfl.polls) == 1 and len(fake_bfl.submits) == 1
    assert await h.ledger_kinds(1) == ["reserve", "settle"]
    assert await h.money(1) == (40_000, 0)  # an accepted task that failed: the member is refunded
    assert (await h.store.get(1)).status is JobStatus.FAILED


# -- 500 and 503 polls ------------------------------------------------------------------------------


@pytest.mark.parametrize("http_status", [500, 503])
async def test_a_5xx_poll_with_an_error_body_ends_the_job_at_once(fast, fake_bfl, http_status):
    harness = await fast()
    fake_bfl.script(Behaviour(pending_polls=1, final_status="Error", final_http_status=http_status))
    assert "could not generate" in await harness.generate(1)
    assert [p.status for p in fake_bfl.polls] == [200, http_status]
    assert await harness.money(1) == (40_000, 0)


@pytest.mark.parametrize("http_status", [500, 503])
async def test_5xx_polls_without_a_final_body_are_retried_then_the_task_fails(fast, fake_bfl, http_status):
    harness = await fast()
    fake_bfl.script(Behaviour(poll_errors=(http_status,) * POLL_FAILURE_LIMIT))
    assert "could not generate" in await harness.generate(1)
    assert len(fake_bfl.polls) == POLL_FAILURE_LIMIT and len(fake_bfl.submits) == 1
    assert await harness.ledger_kinds(1) == ["reserve", "settle"]
    assert await harness.money(1) == (40_000, 0)
    assert (await harness.store.get(1)).status is JobStatus.FAILED


async def test_a_few_5xx_polls_then_ready_deliver(fast, fake_bfl):
    harness = await fast()
    fake_bfl.script(Behaviour(poll_errors=(503, 500, 503), poll_error_body="<html>busy</html>"))
    assert (await harness.generate(1)).cost_micros == 40_000


async def test_a_poll_redirected_to_another_origin_delivers_and_that_origin_never_sees_the_key(fast, fake_bfl):
    harness = await fast()
    fake_bfl.script(Behaviour(poll_redirect="other", pending_polls=1))
    assert (await harness.generate(1)).cost_micros == 40_000
    other = fake_bfl.delivery_host.requests
    assert other and all("x-key" not in r.headers for r in other)


# -- the circuit breaker ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "failing",
    [
        Behaviour(final_status="Error"),
        Behaviour(final_status="Error", final_http_status=503),
        Behaviour(poll_errors=(500,) * POLL_FAILURE_LIMIT),
    ],
    ids=["status-error", "503-error-body", "5xx-bound"],
)
async def test_tasks_ending_error_open_the_models_breaker(fast, fake_bfl, db, failing):
    harness = await fast(engine_options={"breakers": CircuitBreakers(failures=3, window=60, cooldown=30)})
    fake_bfl.script(failing, times=3)
    for job_id in (1, 2, 3):
        assert "could not generate" in await harness.generate(job_id, req=request(seed=job_id))
    rows = await db.fetch_value("SELECT COUNT(*) FROM ledger")
    with pytest.raises(ProviderTrouble):
        await harness.engine.admit(request(seed=4), who(4), acked=True)
    assert await db.fetch_value("SELECT COUNT(*) FROM ledger") == rows and len(fake_bfl.submits) == 3


async def test_moderated_tasks_never_open_the_breaker(fast, fake_bfl):
    breakers = CircuitBreakers(failures=3, window=60, cooldown=30)
    h = await fast(moderation_strikes=10, engine_options={"breakers": breakers})  # 3 strikes: a block, not the model's
    fake_bfl.script(Behaviour(final_status="Content Moderated"), times=3)
    for job_id in (1, 2, 3):
        assert "blocked" in await h.generate(job_id, req=request(seed=job_id))
    assert (await h.generate(4, req=request(seed=4))).cost_micros == 40_000


# -- user: an opaque end-user id on every submit whose route takes it ----------------------------------


async def test_user_is_sent_where_the_route_takes_it_and_never_to_flux_3_image(fast, fake_bfl):
    h = await fast(member_max_pending_jobs=10, default_member_daily_images=10)
    await h.generate(1, req=request(seed=1))
    await h.generate(2, req=request(seed=2, model="flux-2-pro"))
    await h.generate(3, req=request(seed=3, model="flux-kontext-pro"))
    await h.generate(4, req=request(seed=None, model="flux-3-image"))
    users = {s.model: s.body.get("user") for s in fake_bfl.submits}
    assert users["flux-3-image"] is None  # its strict schema would answer 422
    sent = [users[m] for m in ("flux-pro-1.1", "flux-2-pro", "flux-kontext-pro")]
    assert len(set(sent)) == 1 and re.fullmatch(r"[0-9a-f]{64}", sent[0])
    assert str(ALICE) not in sent[0] and str(GUILD) not in sent[0]
    assert fake_bfl.schema_errors == []
    # Never stored: the job's parameters are what BFL was sent minus the end-user id.
    assert "user" not in (await h.store.get(1)).params


async def test_user_is_stable_per_member_and_server_and_differs_across_them(fast, fake_bfl):
    h = await fast(member_max_pending_jobs=10, default_member_daily_images=10)
    await h.generate(1, req=request(seed=1))
    await h.generate(2, req=request(seed=2))  # Alice again, same server
    await h.generate(3, req=request(seed=3), user=BOB)
    await h.generate(4, req=request(seed=4), guild=OTHER_GUILD)  # Alice in another server
    alice, again, bob, elsewhere = (s.body["user"] for s in fake_bfl.submits)
    assert alice == again
    assert len({alice, bob, elsewhere}) == 3


async def test_the_key_is_per_install_and_kept_across_restarts(db):
    first, second = EndUserIds(), EndUserIds()
    await first.load(db)
    await second.load(db)  # another process, or the same bot after a restart
    assert first.of(GUILD, ALICE) == second.of(GUILD, ALICE)
    secret = await db.fetch_value("SELECT value FROM meta WHERE key = ?", (EndUserIds.META_KEY,))
    assert secret and secret not in first.of(GUILD, ALICE)


async def test_two_processes_loading_at_once_agree_on_one_key(db):
    import asyncio

    ids = [EndUserIds() for _ in range(8)]
    await asyncio.gather(*(end_users.load(db) for end_users in ids))
    assert len({end_users.of(GUILD, ALICE) for end_users in ids}) == 1
    assert await db.fetch_value("SELECT COUNT(*) FROM meta WHERE key = ?", (EndUserIds.META_KEY,)) == 1


async def test_another_install_gives_another_id(db, tmp_path):
    from bot.storage.database import Database

    other = await Database.open(tmp_path / "another-install.sqlite3")
    try:
        mine, theirs = EndUserIds(), EndUserIds()
        await mine.load(db)
        await theirs.load(other)
        assert mine.of(GUILD, ALICE) != theirs.of(GUILD, ALICE)
    finally:
        await other.close()


def test_an_unloaded_mapping_refuses_rather_than_guess():
    with pytest.raises(RuntimeError):
        EndUserIds().of(GUILD, ALICE)


# -- effective safety -------------------------------------------------------------------------------


async def test_flux_3_with_an_image_is_sent_at_most_tolerance_2(fast, fake_bfl):
    harness = await fast()
    await harness.engine.admission.parts.services.rules.safety.set_level(
        GUILD, CHANNEL, SafetyLevel.RELAXED, actor_id=9
    )
    relaxed = dataclasses.replace(who(1), age_restricted=True)
    plain = request(seed=None, model="flux-3-image")
    await harness.engine.admit(plain, relaxed, acked=True)
    await harness.ended(1)
    edit = request(seed=None, model="flux-3-image", input_images=[png()])
    await harness.engine.admit(edit, dataclasses.replace(who(2), age_restricted=True), acked=True)
    await harness.ended(2)
    assert [s.body["safety_tolerance"] for s in fake_bfl.submits] == [3, 2]
    assert "images" in fake_bfl.submits[1].body and fake_bfl.schema_errors == []
    # The job records what was sent, so Details shows the effective tolerance.
    assert (await harness.store.get(2)).params["safety_tolerance"] == 2
