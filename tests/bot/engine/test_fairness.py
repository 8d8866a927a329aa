"""Queue positions (bot/engine/fairness.py): the heap replay is the claim's rule, job for job."""

import random

import pytest

from bot.engine.claim import QueueSnapshot
from bot.engine.fairness import PAUSED, positions, queue_order, queued_progress
from bot.engine.states import JobStatus


def rule_by_hand(snapshot: QueueSnapshot) -> list[int]:
    """The claim's ORDER BY applied literally, one pick at a time over every waiting job (quadratic)."""
    waiting = [q for q in snapshot.queued if q[1] not in snapshot.paused]
    running = dict(snapshot.running_by_guild)
    turns = dict(snapshot.turns)
    member_turns = dict(snapshot.member_turns)
    turn = max([snapshot.last_turn, *turns.values(), *member_turns.values()])
    order = []
    while waiting:
        best = min(
            waiting,
            key=lambda q: (
                running.get(q[1], 0),
                turns.get(q[1], 0),
                0 if q[0] in snapshot.priority else 1,
                member_turns.get((q[1], q[2]), 0),
                q[4],
                q[0],
            ),
        )
        waiting.remove(best)
        order.append(best[0])
        turn += 1
        running[best[1]] = running.get(best[1], 0) + 1
        turns[best[1]] = turn
        member_turns[(best[1], best[2])] = turn
    return order


def random_snapshot(rng: random.Random, size: int) -> QueueSnapshot:
    guilds = list(range(1, rng.randint(1, 6) + 1))
    queued = []
    for job_id in rng.sample(range(1, 10 * size + 2), size):
        guild = rng.choice(guilds)
        queued.append((job_id, guild, guild * 100 + rng.randint(1, 8), "flux-pro-1.1", rng.randint(0, 30)))
    queued.sort(key=lambda q: (q[4], q[0]))
    turns = {g: rng.randint(1, 50) for g in guilds if rng.random() < 0.6}
    members = {(q[1], q[2]) for q in queued}
    member_turns = {m: rng.randint(1, 50) for m in members if rng.random() < 0.5}
    return QueueSnapshot(
        queued=queued,
        running_by_guild={g: rng.randint(0, 3) for g in guilds},
        turns=turns,
        member_turns=member_turns,
        paused=frozenset(g for g in guilds if rng.random() < 0.15),
        priority=frozenset(q[0] for q in queued if rng.random() < 0.2),
        last_turn=max([0, *turns.values(), *member_turns.values()]),
    )


@pytest.mark.parametrize("seed", range(60))
def test_the_heap_replay_is_the_rule_applied_by_hand(seed):
    rng = random.Random(seed)
    snapshot = random_snapshot(rng, rng.randint(0, 120))
    assert queue_order(snapshot) == rule_by_hand(snapshot)


def test_a_member_never_served_goes_before_members_already_served():
    snapshot = QueueSnapshot(
        queued=[(1, 1, 10, "m", 1), (2, 1, 10, "m", 2), (3, 1, 11, "m", 3), (4, 1, 12, "m", 9)],
        running_by_guild={1: 2},
        turns={1: 7},
        member_turns={(1, 10): 5, (1, 11): 7},
        last_turn=7,
    )
    # 12 never served; then 10 (last served at turn 5) before 11 (turn 7); then each in turn again.
    assert queue_order(snapshot) == [4, 1, 3, 2]


def test_a_priority_job_overtakes_its_servers_flood_but_not_other_servers():
    flood = [(n, 1, 10 + n % 3, "m", n) for n in range(1, 21)]  # server 1: 20 ordinary jobs from 3 members
    snapshot = QueueSnapshot(
        queued=[*flood, (30, 2, 20, "m", 25), (40, 1, 99, "m", 40)],  # server 2: one job; then the VIP's
        running_by_guild={},
        turns={1: 3, 2: 2},  # server 2 was served longest ago: it goes first
        member_turns={},
        priority=frozenset({40}),
        last_turn=3,
    )
    order = queue_order(snapshot)
    assert order[:3] == [30, 40, 1]  # server 2's turn, then server 1's priority job, then its flood
    assert order == rule_by_hand(snapshot)


def test_a_paused_servers_jobs_keep_no_place_and_delay_nobody():
    snapshot = QueueSnapshot(
        queued=[(1, 1, 10, "m", 1), (2, 2, 20, "m", 2), (3, 1, 11, "m", 3)],
        running_by_guild={},
        turns={},
        member_turns={},
        paused=frozenset({1}),
    )
    assert positions(snapshot) == {2: 1, 1: PAUSED, 3: PAUSED}


def test_a_queued_progress_says_paused_or_gives_its_place_and_wait():
    paused = queued_progress("flux-pro-1.1", PAUSED, median_seconds=10.0, org_cap=24)
    assert paused.paused and paused.position is None and paused.eta_seconds is None and paused.cancellable
    placed = queued_progress("flux-kontext-max", 7, median_seconds=10.0, org_cap=24)  # 6 slots: 2 turnovers
    assert placed.status is JobStatus.QUEUED and placed.position == 7 and placed.eta_seconds == (2 + 1) * 10.0
    assert queued_progress("flux-kontext-max", 7, median_seconds=10.0, org_cap=4).eta_seconds == (2 + 1) * 10.0
    assert queued_progress("flux-pro-1.1", 7, median_seconds=None, org_cap=24).eta_seconds is None
