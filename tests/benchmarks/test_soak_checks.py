"""The soak's own reading of messages and money (benchmarks/soak_messages.py, soak_checks.py), fast.

The soak judges what members were told from the bot's real texts, so these tests feed it exactly
those texts (``bot.engine.outcomes``, the presenter's progress lines, the real gallery view): if a
wording changes, the soak's reading is shown to need the same change here, not in a two-minute run.
"""

from __future__ import annotations

import json
from collections import Counter
from datetime import UTC, datetime
from decimal import Decimal
from types import SimpleNamespace

import discord
import pytest

from benchmarks.soak_checks import Facts, billing_invariants, every_job_terminal, paused_claims
from benchmarks.soak_messages import claim_of, images_replaced_by_text, is_final, job_ids_in
from bot.bfl.errors import BflModerated, BflServerError, BflSubmitOutcomeUnknown, BflTaskFailed
from bot.engine import outcomes
from bot.engine.groups import Group, GroupResult
from bot.engine.progress import Progress, Result
from bot.engine.states import JobStatus
from bot.engine.store import Job
from cogs._gallery import all_failed_text, gallery_view
from cogs._presenter import progress_text
from tests.e2e.fake_discord import MessageVersion
from tests.fakes.fake_bfl import Charge, SubmitRecord

NOW = datetime(2026, 12, 1, tzinfo=UTC)
CREDITS = Decimal("2.5")  # flux-dev: $0.025


def message(content: str = "", *, flags: int = 0, **extra) -> dict:
    return {"content": content, "flags": flags, "embeds": [], "attachments": [], "components": [], **extra}


@pytest.mark.parametrize(
    ("exc", "charged"),
    [
        (BflTaskFailed("x", status="Error"), True),
        (BflTaskFailed("x", status="Error"), False),
        (BflModerated("x", stage="content"), True),
        (BflServerError("x", status=503), False),
        (BflSubmitOutcomeUnknown("x", endpoint="flux-dev"), False),
        (None, False),
        (None, True),
    ],
)
def test_every_failure_text_says_whether_the_member_paid(exc, charged):
    claim = claim_of(message(outcomes.failure_text(exc, charged=charged)))
    assert (claim.kind, claim.charged) == ("text", charged)


def test_fixed_texts():
    assert claim_of(message(outcomes.CANCELLED_TEXT)).charged is False
    restarted = outcomes.ending_text(None, code="ack_failed", charged=False, text=outcomes.RESTARTED_TEXT)
    assert claim_of(message(restarted)).charged is False
    for code in ("ack_failed", "expired", "undeliverable", "lost"):
        for charged in (False, True):
            assert claim_of(message(outcomes.ending_text(None, code=code, charged=charged))).charged is charged
    assert claim_of(message(outcomes.LOST_TEXT)).charged is None  # says nothing about the money
    assert claim_of(message("Something went wrong on our side. Please try again later.")).charged is None


@pytest.mark.parametrize(
    "progress",
    [
        Progress(JobStatus.QUEUED, "flux-dev", position=3, eta_seconds=20),
        Progress(JobStatus.SUBMITTING, "flux-dev"),
        Progress(JobStatus.GENERATING, "flux-dev", bfl_stage="Reasoning", elapsed_seconds=4),
        Progress(JobStatus.DOWNLOADING, "flux-dev"),
        Progress(JobStatus.DELIVERING, "flux-dev"),
        Progress(JobStatus.QUEUED, "flux-dev", count=3, queued=3, position=2),
        Progress(JobStatus.GENERATING, "flux-dev", count=3, ready=1, queued=1),
    ],
)
def test_progress_is_never_final(progress):
    assert not is_final(message(progress_text(progress)))


def test_what_is_final():
    assert not is_final(None)
    assert not is_final(message("", flags=128))  # "thinking…"
    assert not is_final(
        message("✖️ Cancelled 2 queued images; the other 1 are already being made and will be posted here.")
    )
    assert is_final(message(outcomes.CANCELLED_TEXT))
    card = message(embeds=[{"description": "a fox", "fields": [{"name": "Cost", "value": "$0.04"}]}], attachments=[{}])
    assert is_final(card)
    assert (claim_of(card).kind, claim_of(card).charged, claim_of(card).cost_micros) == ("image", True, 40_000)


def job(job_id: int, cost: int) -> Job:
    return Job(
        id=job_id, guild_id=1, channel_id=2, user_id=3, model="flux-dev", prompt="a fox", params={}, seed=job_id,
        width=1024, height=1024, cache_key="k", status=JobStatus.DELIVERING, estimated_micros=cost, cost_micros=cost,
        bfl_task_id=None, polling_url=None, error=None, result_channel_id=None, result_message_id=None,
        created_at=NOW, updated_at=NOW, aspect_ratio="1:1", acked=True, application_id=None,
        interaction_token=None, upload_limit=1, submitted_at=None, ready_at=None, sample_url=None, bfl_stage=None,
        expanded_prompt=None, group_id=99,
    )  # fmt: skip


def group_message(results: int, failed: int, refunded: int) -> dict:
    group = Group(99, 1, 2, 3, results + failed, False, None, {}, None, None, False, None, None, None, None, NOW)
    done = [Result(job(n, 25_000), b"", 25_000, 1.0, from_cache=False) for n in range(1, results + 1)]
    outcome = GroupResult(group, done, failed, refunded, 0, "a fox", "flux-dev")
    if not done:
        return message(all_failed_text(outcome))
    view = gallery_view(outcome, [f"f{n}.jpg" for n in range(results)], requester="Ann")
    components = json.loads(json.dumps(view.to_components()))
    for component in components:  # Discord answers attachment:// media with the uploaded files
        for item in component.get("items") or []:
            item["media"]["url"] = "https://cdn.example/f.jpg"
    return message(
        flags=discord.MessageFlags(components_v2=True).value, components=components, attachments=[{}] * results
    )


@pytest.mark.parametrize(
    ("results", "failed", "refunded", "charged"),
    [(3, 0, 0, True), (2, 1, 1, True), (2, 2, 0, True), (1, 2, 1, True), (0, 2, 2, False), (0, 2, 0, True)],
)
def test_a_group_message_says_how_many_were_paid_for(results, failed, refunded, charged):
    claim = claim_of(group_message(results, failed, refunded))
    assert claim.images == results
    assert (claim.failed or 0, claim.refunded or 0) == (failed, refunded)
    assert claim.charged is charged
    assert is_final(group_message(results, failed, refunded))
    if results:
        assert claim.cost_micros == 25_000 * results
        assert job_ids_in(group_message(results, failed, refunded)) == set(range(1, results + 1))  # Use #n


def test_an_image_replaced_by_a_text_is_seen():
    fake = SimpleNamespace(
        message_history={
            "1": [MessageVersion(0, "⏳", 0, 0, 0, "⏳"), MessageVersion(1, "", 1, 1, 0, "card")],
            "2": [MessageVersion(0, "", 1, 1, 0, "card"), MessageVersion(1, "sorry", 0, 0, 0, "sorry")],
        },
        messages={"1": {}, "2": {}},
    )
    assert images_replaced_by_text(fake) == ["message 2: an image, then 'sorry'"]


def facts(jobs: dict[int, dict], money: dict[int, dict], pauses=None) -> Facts:
    rows = {
        job_id: {"id": job_id, "group_id": None, "guild_id": 7, "model": "flux-dev", "prompt": f"p{job_id}",
                 "seed": job_id, "acked": 1, **row}
        for job_id, row in jobs.items()
    }  # fmt: skip
    return Facts(rows, money, pauses or {})


def submit(job_id: int, status: int, task: str | None, time: float = 0.0) -> SubmitRecord:
    return SubmitRecord("flux-dev", {"prompt": f"p{job_id}", "seed": job_id}, {}, True, time, status, task)


def test_billing_reconciles_per_job_and_explains_unknowns():
    state = facts(
        {1: {"status": "delivered"}, 2: {"status": "unknown"}, 3: {"status": "unknown"}, 4: {"status": "unknown"},
         5: {"status": "failed"}, 6: {"status": "queued"}, 7: {"status": "unknown"}},
        {n: {"server": 25_000, "member": 0, "images": 0, "outcome": 1} for n in (1, 2, 3, 4, 5, 7)},
    )  # fmt: skip
    bfl = SimpleNamespace(
        submits=[submit(1, 200, "t1"), submit(2, 502, "t2"), submit(3, 503, None), submit(5, 200, "t5"),
                 submit(5, 200, "t5b"), submit(7, 429, None), submit(7, 429, None)],
        charges=[Charge(task, "flux-dev", CREDITS, 0) for task in ("t1", "t2", "t5", "t5b", "stray")],
    )  # fmt: skip
    equal, sent, once = billing_invariants(state, bfl)
    assert equal.failures == [
        "BFL billed task stray (25000 µ$) that belongs to no job",
        "job 5 (failed): ledger 25000 µ$ ≠ BFL billed 50000",
    ]
    assert equal.notes == Counter(
        {
            "unknown: the task was created and billed; the estimate charged = the bill": 1,
            "unknown: BFL answered [503] with no task; charged the estimate, billed 0": 1,
            "still open, its money unresolved (see 'every job is terminal')": 1,
        }
    )
    assert sent.failures == [
        "job 4: unknown and charged 25000 µ$, but no POST ever reached BFL",
        "job 7: unknown and charged 25000 µ$, but BFL only answered 429 [429, 429]",
    ]
    assert once.failures == ["job 5: 2 BFL tasks, billed 50000 µ$"]
    assert every_job_terminal(state).failures == ["job 6 (single) still queued (acked=1)"]


def test_a_claim_while_paused_is_caught():
    state = facts(
        {1: {"status": "delivered"}, 2: {"status": "delivered"}, 3: {"status": "delivered"}},
        {},
        {7: [(10_000, True), (20_000, False)]},
    )
    state.claims = [(1, 10_100), (2, 15_000), (3, 20_050)]
    found = paused_claims(state)
    assert found.failures == ["job 2: claimed 5000 ms after server 7 paused"]  # 1: within the grace; 3: resumed
    # Recorded just before the resume, by a clock a few ms behind the resuming process's (it saw the resume).
    state.claims = [(2, 19_990), (3, 19_700)]
    assert paused_claims(state).failures == ["job 3: claimed 9700 ms after server 7 paused"]


def test_final_messages_are_matched_to_requests_and_judged():
    from benchmarks.soak_checks import final_messages
    from benchmarks.soak_world import Request
    from tests.e2e.fake_discord import FakeDiscord, SentInteraction

    fake = FakeDiscord(validate_schema=False)
    member = fake.add_member(name="ann")
    uid = int(member["user"]["id"])

    def request(number: int, *, original: dict | None, acked: bool = True) -> Request:
        it = SentInteraction(fake, fake._base_interaction(2, user=member, channel=None), source_message_id=None)
        if original is not None:
            fake.messages[str(number)] = {"id": str(number), "interaction_metadata": {}, **original}
            it.original_message_id = str(number)
        it.acked_at = 1.0 if acked else None
        return Request(number, it, fake.guild_id, uid, f"p{number}", "flux-dev", 1, False)

    card = message(embeds=[{"fields": [{"name": "Cost", "value": "$0.025"}]}], attachments=[{}])
    requests = [
        request(1, original=card),  # delivered and paid: fine
        request(2, original=message(outcomes.failure_text(None, charged=False))),  # paid, told otherwise
        request(3, original=message(progress_text(Progress(JobStatus.QUEUED, "flux-dev")))),  # told in the channel
        request(4, original=None, acked=False),  # never answered, no job: Discord said so
        request(5, original=message(progress_text(Progress(JobStatus.QUEUED, "flux-dev")))),  # never told
    ]
    fake.messages["99"] = {**message(f"<@{uid}> " + outcomes.failure_text(None, charged=False)), "id": "99",
                           "channel_id": str(fake.channel_id), "author": {"id": str(fake.application_id)}}  # fmt: skip
    paid = {"server": 25_000, "member": 25_000, "images": 1, "outcome": 1}
    statuses = ["delivered", "failed", "failed", None, "failed"]
    refunded = {"server": 25_000, "member": 0, "images": 0, "outcome": 1}
    state = facts(
        {r.id: {"status": s} for r, s in zip(requests, statuses, strict=True) if s},
        {requests[0].id: paid, requests[1].id: paid, requests[2].id: refunded, requests[4].id: refunded},
    )
    found = final_messages(state, fake, requests)
    assert len(found.failures) == 3, found.failures
    assert found.failures[0].startswith(
        "[says the opposite of the ledger] request 2 (single): job failed, charged=True"
    )
    assert all(f.startswith("[no final message] member") for f in found.failures[1:])  # 3 or 5: one message for two
    assert found.notes["never answered (Discord shows the failure itself), nothing charged"] == 1
    assert found.notes["single delivered: image"] == 1


def test_an_unknown_job_whose_process_died_after_marking_its_post_is_explained():
    """Killed between "the POST is leaving" and sending it: nobody can tell the two apart (counted, not failed)."""
    state = facts(
        {4: {"status": "unknown"}, 8: {"status": "unknown"}},
        {n: {"server": 25_000, "member": 0, "images": 0, "outcome": 1} for n in (4, 8)},
    )
    state.claims = [(4, 1_000), (8, 1_000)]
    state.ended = {4: 3_000, 8: 3_000}
    bfl = SimpleNamespace(submits=[], charges=[])
    _, sent, _ = billing_invariants(state, bfl, deaths=[2_000, 9_000])
    assert sent.failures == []
    assert sent.notes["unknown: no POST reached BFL; its process died after marking it as leaving"] == 2
    answered_429 = SimpleNamespace(submits=[submit(8, 429, None)], charges=[])
    _, sent, _ = billing_invariants(state, answered_429, deaths=[2_000])
    assert sent.failures == [] and sent.notes["unknown: BFL answered 429; its process died before recording it"] == 1
    _, sent, _ = billing_invariants(state, bfl, deaths=[500, 9_000])  # died before the claim, or long after
    assert sent.failures == [
        "job 4: unknown and charged 25000 µ$, but no POST ever reached BFL",
        "job 8: unknown and charged 25000 µ$, but no POST ever reached BFL",
    ]


def test_a_private_request_nobody_can_reach_is_explained_only_if_the_member_paid_nothing():
    from benchmarks.soak_checks import final_messages
    from benchmarks.soak_world import Request
    from tests.e2e.fake_discord import FakeDiscord, SentInteraction

    fake = FakeDiscord(validate_schema=False)
    member = fake.add_member(name="bo")
    uid = int(member["user"]["id"])
    queued = message(progress_text(Progress(JobStatus.QUEUED, "flux-dev")))

    def private_request(number: int) -> Request:
        it = SentInteraction(fake, fake._base_interaction(2, user=member, channel=None), source_message_id=None)
        fake.messages[str(number)] = {"id": str(number), "interaction_metadata": {}, **queued}
        it.original_message_id, it.acked_at = str(number), 1.0
        return Request(number, it, fake.guild_id, uid, f"p{number}", "flux-dev", 1, True)

    requests = [private_request(1), private_request(2)]
    refunded = {"server": 25_000, "member": 0, "images": 0, "outcome": 1}
    paid = {"server": 25_000, "member": 25_000, "images": 1, "outcome": 1}
    state = facts({r.id: {"status": "failed"} for r in requests}, {requests[0].id: refunded, requests[1].id: paid})
    assert len(final_messages(state, fake, requests).failures) == 2  # DMs open: both should have been told
    fake.closed_dms.add(uid)  # its token dead and DMs closed: nobody can be told, and only if it paid nothing
    found = final_messages(state, fake, requests)
    assert found.notes["private, its token dead and the member's DMs closed: nobody can be told"] == 1
    assert len(found.failures) == 1 and "[no final message]" in found.failures[0]
