"""The soak's invariants, checked at quiescence from the database and the two fakes.

Money truth comes from the ledger: a job charged the member when its rows leave the member an image
(``member_images`` sums to 1: a settle without refund); the server's cost is the sum of its
``server_micros``. BFL's truth is the fake's own account (``FakeBfl.charges``); a task belongs to the
job whose (model, prompt, seed) it was submitted with (every soak prompt is unique).
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from benchmarks.soak_messages import (
    Claim,
    addressee,
    claim_of,
    images_replaced_by_text,
    is_final,
    job_ids_in,
    posted_outside,
)
from benchmarks.soak_world import Request
from bot.billing.ledger import Ledger
from bot.engine.states import OPEN, JobStatus
from bot.storage.database import Database
from tests.e2e.fake_discord import FakeDiscord
from tests.fakes.fake_bfl import FakeBfl

MAX_SHOWN = 12  # failures listed per invariant (the count is always complete)


@dataclass
class Invariant:
    """One property of the run: what broke it (empty: it held), and explanations that are not failures."""

    name: str
    failures: list[str] = field(default_factory=list)
    notes: Counter[str] = field(default_factory=Counter)

    @property
    def ok(self) -> bool:
        return not self.failures


@dataclass
class Facts:
    """What the database says, read once."""

    jobs: dict[int, dict[str, Any]]
    money: dict[int, dict[str, int]]  # job id → server, member, images (net) and whether it has an outcome
    pauses: dict[int, list[tuple[int, bool]]]  # guild → (unix ms, paused) in order
    claims: list[tuple[int, int]] = field(default_factory=list)  # (job id, unix ms) of every queued → submitting
    ended: dict[int, int] = field(default_factory=dict)  # job id → unix ms it became unknown

    def charged(self, job_id: int) -> bool:
        """Resolved, and the member kept paying for it (a settle without refund)."""
        money = self.money.get(job_id, {})
        return money.get("outcome", 0) > 0 and money.get("images", 0) > 0

    def is_open(self, job_id: int) -> bool:
        return JobStatus(self.jobs[job_id]["status"]) in OPEN

    def members_of(self, group_id: int) -> list[dict[str, Any]]:
        return [job for job in self.jobs.values() if job["group_id"] == group_id]


async def load_facts(db: Database) -> Facts:
    jobs = {
        row["id"]: dict(row)
        for row in await db.fetch_all(
            "SELECT id, group_id, guild_id, user_id, status, model, prompt, seed, estimated_micros, acked, error,"
            " private FROM jobs"
        )
    }
    money: dict[int, dict[str, int]] = defaultdict(lambda: {"server": 0, "member": 0, "images": 0, "outcome": 0})
    for row in await db.fetch_all(
        "SELECT job_id, kind, server_micros, member_micros, member_images FROM ledger WHERE job_id IS NOT NULL"
    ):
        entry = money[row["job_id"]]
        entry["server"] += row["server_micros"]
        entry["member"] += row["member_micros"]
        entry["images"] += row["member_images"]
        entry["outcome"] += row["kind"] in ("settle", "release")
    pauses: dict[int, list[tuple[int, bool]]] = defaultdict(list)
    for row in await db.fetch_all(
        "SELECT guild_id, action, at FROM audit_log WHERE action IN ('generation.pause', 'generation.resume')"
        " ORDER BY at, id"
    ):
        pauses[row["guild_id"]].append((row["at"], row["action"] == "generation.pause"))
    claims = [
        (row["job_id"], row["at"])
        for row in await db.fetch_all("SELECT job_id, at FROM job_events WHERE status = 'submitting' ORDER BY at")
    ]
    ended = {
        row["job_id"]: row["at"]
        for row in await db.fetch_all("SELECT job_id, at FROM job_events WHERE status = 'unknown'")
    }
    return Facts(jobs, dict(money), dict(pauses), claims, ended)


def _add(invariant: Invariant, failure: str, kind: str | None = None) -> None:
    """Record a failure (listed up to MAX_SHOWN); ``kind`` also counts it in the notes."""
    if len(invariant.failures) < MAX_SHOWN:
        invariant.failures.append(f"[{kind}] {failure}" if kind else failure)
    else:
        invariant.notes["(more failures not listed)"] += 1
    if kind:
        invariant.notes[f"FAILED {kind}"] += 1


MISSING = "no final message"
SILENT = "does not say whether they paid"
WRONG = "says the opposite of the ledger"
STILL_OPEN = "told while a job is still open"
TWICE = "more than one final message"
EXTRA = "a message for no request"


def every_job_terminal(facts: Facts) -> Invariant:
    invariant = Invariant("every job is terminal")
    for job in facts.jobs.values():
        if JobStatus(job["status"]) in OPEN:
            where = f"group {job['group_id']}" if job["group_id"] else "single"
            _add(invariant, f"job {job['id']} ({where}) still {job['status']} (acked={job['acked']})")
            invariant.notes[f"stuck {job['status']}, acked={job['acked']}"] += 1
    return invariant


async def ledger_invariants(db: Database) -> list[Invariant]:
    ledger = Ledger(db)
    reservations = Invariant("no reservation is open")
    for job_id in await ledger.open_job_ids():
        _add(reservations, f"job {job_id}: its reservation is neither settled nor released")
    counters = Invariant("counters equal the ledger (verify_counters)")
    for problem in await ledger.verify_counters():
        _add(counters, problem)
    return [reservations, counters]


DEATH_SLACK_MS = 1_000  # a crash is seen by the supervisor up to half a second after it happened


def _died_while_sending(facts: Facts, job_id: int, deaths: Sequence[int]) -> bool:
    """Whether a bot process died between the job's last claim and the moment it was called unknown."""
    claimed = [at for claimed_id, at in facts.claims if claimed_id == job_id]
    ended = facts.ended.get(job_id)
    if not claimed or ended is None:
        return False
    return any(max(claimed) <= death <= ended + DEATH_SLACK_MS for death in deaths)


def billing_invariants(facts: Facts, bfl: FakeBfl, deaths: Sequence[int] = ()) -> list[Invariant]:
    """The ledger equals BFL's bill per job; `unknown` only when the POST may have left; never two tasks.

    ``deaths``: when bot processes were killed or crashed (unix ms). A job called unknown although no
    POST reached BFL is explained when its process died between its claim and that call: it had
    recorded that the POST was leaving, and nobody can tell whether it left.
    """
    by_key = {(j["model"], j["prompt"], j["seed"]): job_id for job_id, j in facts.jobs.items()}
    submits: dict[int, list[Any]] = defaultdict(list)
    for record in bfl.submits:
        body = record.body if isinstance(record.body, dict) else {}
        job_id = by_key.get((record.model, body.get("prompt"), body.get("seed")))
        if job_id is not None:
            submits[job_id].append(record)
    owner = {r.task_id: job_id for job_id, records in submits.items() for r in records if r.task_id}
    billed: Counter[int] = Counter()
    tasks: Counter[int] = Counter()
    equal = Invariant("the ledger equals what BFL billed (µ$, unknown outcomes aside)")
    for charge in bfl.charges:
        if charge.task_id not in owner:
            _add(equal, f"BFL billed task {charge.task_id} ({charge.micros} µ$) that belongs to no job")
            continue
        billed[owner[charge.task_id]] += charge.micros
        tasks[owner[charge.task_id]] += 1
    once = Invariant("no job was submitted twice")
    sent = Invariant("unknown only when the POST may have created a task (not unsent, not answered 429)")
    for job_id, job in facts.jobs.items():
        if facts.is_open(job_id):
            equal.notes["still open, its money unresolved (see 'every job is terminal')"] += 1
            continue
        ledger_micros = facts.money.get(job_id, {}).get("server", 0)
        if tasks[job_id] > 1:
            _add(once, f"job {job_id}: {tasks[job_id]} BFL tasks, billed {billed[job_id]} µ$")
        if job["status"] != JobStatus.UNKNOWN:
            if ledger_micros != billed[job_id]:
                _add(equal, f"job {job_id} ({job['status']}): ledger {ledger_micros} µ$ ≠ BFL billed {billed[job_id]}")
            continue
        statuses = [r.status for r in submits[job_id]]
        if billed[job_id]:
            equal.notes["unknown: the task was created and billed; the estimate charged = the bill"] += (
                ledger_micros == billed[job_id]
            )
            if ledger_micros != billed[job_id]:
                equal.notes[f"unknown: billed {billed[job_id]} µ$, charged the estimate {ledger_micros} µ$"] += 1
        elif statuses and all(status == 429 for status in statuses):  # a 429 creates nothing, and says so
            if _died_while_sending(facts, job_id, deaths):  # before it could record the answer
                sent.notes["unknown: BFL answered 429; its process died before recording it"] += 1
            else:
                only_429 = f"but BFL only answered 429 {statuses}"
                _add(sent, f"job {job_id}: unknown and charged {ledger_micros} µ$, {only_429}")
        elif statuses:
            equal.notes[f"unknown: BFL answered {statuses} with no task; charged the estimate, billed 0"] += 1
        elif _died_while_sending(facts, job_id, deaths):
            sent.notes["unknown: no POST reached BFL; its process died after marking it as leaving"] += 1
        else:
            _add(sent, f"job {job_id}: unknown and charged {ledger_micros} µ$, but no POST ever reached BFL")
    return [equal, sent, once]


def paused_claims(facts: Facts, grace_ms: int = 250) -> Invariant:
    """No queued job is handed a BFL slot (claimed: queued → submitting) while its server is paused.

    The claim's time and the switch's are read in different processes (on PostgreSQL each through its
    own measured offset to the server's clock), so they are compared within ``grace_ms``: a claim
    recorded just after a pause (its transaction began before the pause committed), or just before a
    resume (it saw the resume committed; its own clock reads a few ms behind the other process's).
    """
    invariant = Invariant("nothing is claimed for BFL while its server is paused")
    for job_id, at in facts.claims:
        job = facts.jobs.get(job_id)
        if job is None:
            continue
        switches = facts.pauses.get(job["guild_id"], [])
        before = [(when, paused) for when, paused in switches if when <= at]
        resumed_just_after = any(not paused and at < when <= at + grace_ms for when, paused in switches)
        if before and before[-1][1] and before[-1][0] <= at - grace_ms and not resumed_just_after:
            _add(invariant, f"job {job_id}: claimed {at - before[-1][0]} ms after server {job['guild_id']} paused")
    return invariant


def final_messages(facts: Facts, fake: FakeDiscord, requests: list[Request]) -> Invariant:
    """Every request got exactly one final message, and it says truthfully whether the member paid."""
    invariant = Invariant("one final message per request, truthful about the charge")
    by_id = {r.id: r for r in requests}
    attributed: dict[int, list[dict[str, Any]]] = defaultdict(list)
    pool: dict[int, list[dict[str, Any]]] = defaultdict(list)  # member → messages naming no job
    for message in posted_outside(fake):
        owners = {_request_of(facts, job_id) for job_id in job_ids_in(message)} & set(by_id)
        if owners:
            attributed[owners.pop()].append(message)
        elif (user := addressee(fake, message)) is not None:
            pool[user].append(message)
    waiting: dict[int, list[Request]] = defaultdict(list)  # no final message of their own
    unanswered: dict[int, list[Request]] = defaultdict(list)  # never acknowledged: a channel note is optional
    for request in requests:
        it = request.interaction
        finals = [it.original_message] if is_final(it.original_message) else []
        finals += it.followups + attributed.get(request.id, [])
        if not finals and _untellable(facts, fake, request):
            invariant.notes["private, its token dead and the member's DMs closed: nobody can be told"] += 1
            continue
        if not finals:
            # Never acknowledged, or deferred and never answered, with no job: Discord itself shows the
            # failure ("This interaction failed" / "The application did not respond") and nothing was charged.
            thinking = it.acked and (it.original_message or {}).get("flags", 0) & 128 and not _jobs_of(facts, request)
            if (not it.acked or thinking) and not _charged(facts, request):
                unanswered[request.user_id].append(request)
            else:
                waiting[request.user_id].append(request)
            continue
        if len(finals) > 1:
            said = f"{len(finals)} final messages: {_texts(finals)}"
            _add(invariant, f"request {request.number} (id {request.id}): {said}", TWICE)
            continue
        _judge(invariant, facts, request, claim_of(finals[0]))
    for user in set(waiting) | set(pool) | set(unanswered):
        _judge_untied(invariant, facts, user, waiting[user], unanswered[user], pool.get(user, []))
    return invariant


def _judge_untied(
    invariant: Invariant,
    facts: Facts,
    user: int,
    missing: list[Request],
    unanswered: list[Request],
    extra: list[dict[str, Any]],
) -> None:
    """A member's messages that name no job, against their requests without a final message of their own.

    Matched by count (the texts name no request): every such request needs one, an unacknowledged one
    may have one (Discord already said "This interaction failed"), and the number told they paid must
    be the number that paid.
    """
    invariant.notes["never answered (Discord shows the failure itself), nothing charged"] += len(unanswered)
    if len(extra) < len(missing):
        for request in missing:  # which ones lack it cannot be told: list them all
            shown = f"#{request.number} (id {request.id}: {_statuses(facts, request)}) shows {_shown(request)!r}"
            _add(invariant, f"member {user}: {shown}; {len(extra)} untied messages for {len(missing)}", MISSING)
        return
    if len(extra) > len(missing) + len(unanswered):
        _add(invariant, f"member {user}: {len(extra) - len(missing)} more: {_texts(extra)}", EXTRA)
        return
    claims = [claim_of(m).charged for m in extra]
    paid = sum(_charged(facts, r) for r in missing)  # an unanswered request paid nothing
    if None in claims or claims.count(True) != paid:
        kind = SILENT if None in claims else WRONG
        _add(invariant, f"member {user}: {paid} of {len(missing)} requests paid, told {_texts(extra)}", kind)
    invariant.notes["final message in the channel naming only the member"] += len(extra)


def _untellable(facts: Facts, fake: FakeDiscord, request: Request) -> bool:
    """A private request whose interaction token died and whose member's DMs are closed: no way to tell them.

    Only when nothing was charged to the member (the result was refunded as undeliverable, or it failed).
    """
    if not request.private or request.user_id not in fake.closed_dms:
        return False
    jobs = _jobs_of(facts, request)
    return bool(jobs) and not _charged(facts, request) and all(not facts.is_open(job["id"]) for job in jobs)


def _request_of(facts: Facts, job_id: int) -> int:
    job = facts.jobs.get(job_id)
    return job["group_id"] if job is not None and job["group_id"] else job_id


def _jobs_of(facts: Facts, request: Request) -> list[dict[str, Any]]:
    if request.count > 1:
        return facts.members_of(request.id)
    return [facts.jobs[request.id]] if request.id in facts.jobs else []


def _charged(facts: Facts, request: Request) -> bool:
    return any(facts.charged(job["id"]) for job in _jobs_of(facts, request))


def _judge(invariant: Invariant, facts: Facts, request: Request, claim: Claim) -> None:
    jobs = _jobs_of(facts, request)
    label = f"request {request.number} ({'group' if request.count > 1 else 'single'})"
    if not jobs:
        if claim.charged:
            _add(invariant, f"{label}: no job, yet told it was charged: {claim.text[:100]!r}", WRONG)
        invariant.notes[f"no job: {claim.text[:60]!r}"] += 1
        return
    charged = [job for job in jobs if facts.charged(job["id"])]
    still_open = [job["status"] for job in jobs if facts.is_open(job["id"])]
    if still_open:
        _add(invariant, f"{label}: jobs still {still_open} (money unresolved); told {claim.text[:100]!r}", STILL_OPEN)
        return
    if request.count == 1:
        job = jobs[0]
        said = f"job {job['status']}, charged={bool(charged)}, told {claim.text[:100]!r}"
        if claim.charged is None:
            _add(invariant, f"{label}: {said}", SILENT)
        elif claim.charged != bool(charged):
            _add(invariant, f"{label}: {said}", WRONG)
        elif claim.cost_micros is not None and claim.cost_micros != (paid := facts.money[job["id"]]["member"]):
            _add(invariant, f"{label}: the card says {claim.cost_micros} µ$, the member paid {paid} µ$", WRONG)
        invariant.notes[f"single {job['status']}: {claim.kind}"] += 1
        return
    failed = [j for j in jobs if j["status"] in (JobStatus.FAILED, JobStatus.UNKNOWN)]
    refunded = [j for j in failed if not facts.charged(j["id"])]
    truth = (len(charged), len(charged) - len(failed) + len(refunded), len(failed), len(refunded))
    invariant.notes[f"group: {claim.kind}"] += 1
    if claim.kind == "gallery" or claim.failed is not None:  # the gallery, or "❌ No image could be made. k of n …"
        failed_told, refunded_told = claim.failed or 0, claim.refunded or 0
        told = (claim.images + failed_told - refunded_told, claim.images, failed_told, refunded_told)
        said = f"(charged, shown, failed, refunded) = {truth}, told {claim.text[:120]!r}"
        if told[0] != truth[0]:  # what the member pays for: the images shown and the failures not refunded
            _add(invariant, f"{label}: {said}", WRONG)
        elif told != truth:  # the member is told the truth, but the jobs' statuses say otherwise
            invariant.notes["group: images shown or failures told differ from the jobs' statuses"] += 1
    elif claim.charged is None or claim.charged != bool(charged):
        said = f"(charged, shown, failed, refunded) = {truth}, told {claim.text[:120]!r}"
        _add(invariant, f"{label}: {said}", SILENT if claim.charged is None else WRONG)


def _statuses(facts: Facts, request: Request) -> str:
    return ",".join(job["status"] for job in _jobs_of(facts, request)) or "no job"


def _shown(request: Request) -> str:
    from benchmarks.soak_messages import text_of

    message = request.interaction.original_message
    if message is None:
        return "nothing" if not request.interaction.acked else "(deleted)"
    return text_of(message)[:60] or ("(thinking…)" if message["flags"] & 128 else "(empty)")


def _texts(messages: list[dict[str, Any]]) -> str:
    from benchmarks.soak_messages import text_of

    return "; ".join(repr(text_of(m)[:70]) for m in messages)


def replaced_images(fake: FakeDiscord) -> Invariant:
    invariant = Invariant("a posted image is never replaced by an error text")
    for problem in images_replaced_by_text(fake):
        _add(invariant, problem)
    return invariant


async def check_all(
    db: Database, fake: FakeDiscord, bfl: FakeBfl, requests: list[Request], deaths: Sequence[int] = ()
) -> tuple[Facts, list[Invariant]]:
    """Every invariant of the soak, in the order they are reported (``deaths``: see :func:`billing_invariants`)."""
    facts = await load_facts(db)
    return facts, [
        every_job_terminal(facts),
        *await ledger_invariants(db),
        *billing_invariants(facts, bfl, deaths),
        final_messages(facts, fake, requests),
        replaced_images(fake),
        paused_claims(facts),
    ]
