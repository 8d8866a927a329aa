"""Queue positions: the claim's rule (:mod:`bot.engine.claim`) replayed over a snapshot of the queue.

The claim picks, among the queued jobs of servers that are not paused: the server with the fewest
running tasks, then the server served longest ago; within it, a job in the server's priority lane
before any other, then the member whose last claim is oldest (never served first), then the oldest
request. :func:`queue_order` replays that rule, counting each
job it places as running and as the newest turn of its server and member: the order jobs leave the
queue in if nothing else changes (caps, which only delay a job until a slot frees, aside).

The replay keeps one heap of members per server (by last turn, then oldest request) and one heap of
servers (by running tasks, last turn, then their best member): each job placed costs O(log n), so a
queue of n jobs is ordered in O(n log n).
"""

from __future__ import annotations

import heapq
import math
from collections import deque
from dataclasses import dataclass, field

from bot.engine.claim import QueueSnapshot, route_slots
from bot.engine.progress import Progress
from bot.engine.states import JobStatus

PAUSED = 0
"""The place of a queued job whose server is paused: it keeps its turn but does not move."""

# (0 if its next job is in the priority lane else 1, member's last turn, that job's created ms, its id, user)
_MemberKey = tuple[int, int, int, int, int]


@dataclass
class _Guild:
    running: int
    turn: int
    members: list[_MemberKey] = field(default_factory=list)  # a heap: each member with jobs, by its key


def queue_order(snapshot: QueueSnapshot) -> list[int]:
    """Queued job ids in the order the fair claim will start them (paused servers' jobs left out)."""
    # (guild, user) → (lane, created, job id): the priority lane first (0), then the oldest
    jobs: dict[tuple[int, int], deque[tuple[int, int, int]]] = {}
    lane = {job_id: 0 if job_id in snapshot.priority else 1 for job_id, *_ in snapshot.queued}
    for job_id, guild_id, user_id, _model, created in sorted(snapshot.queued, key=lambda q: (lane[q[0]], q[4], q[0])):
        if guild_id not in snapshot.paused:
            jobs.setdefault((guild_id, user_id), deque()).append((lane[job_id], created, job_id))
    guilds: dict[int, _Guild] = {}
    for (guild_id, user_id), waiting in jobs.items():
        guild = guilds.get(guild_id)
        if guild is None:
            guild = guilds[guild_id] = _Guild(
                snapshot.running_by_guild.get(guild_id, 0), snapshot.turns.get(guild_id, 0)
            )
        first, created, job_id = waiting[0]
        guild.members.append((first, snapshot.member_turns.get((guild_id, user_id), 0), created, job_id, user_id))
    servers: list[tuple[int, int, _MemberKey, int]] = []  # a heap: (running, turn, best member, guild)
    for guild_id, guild in guilds.items():
        heapq.heapify(guild.members)
        servers.append((guild.running, guild.turn, guild.members[0], guild_id))
    heapq.heapify(servers)

    turn = max(snapshot.last_turn, *snapshot.turns.values(), *snapshot.member_turns.values(), 0)
    order: list[int] = []
    while servers:
        _, _, _, guild_id = heapq.heappop(servers)
        guild = guilds[guild_id]
        *_, job_id, user_id = heapq.heappop(guild.members)
        order.append(job_id)
        turn += 1
        guild.running += 1
        guild.turn = turn
        waiting = jobs[(guild_id, user_id)]
        waiting.popleft()
        if waiting:
            first, created, next_id = waiting[0]
            heapq.heappush(guild.members, (first, turn, created, next_id, user_id))
        if guild.members:
            heapq.heappush(servers, (guild.running, guild.turn, guild.members[0], guild_id))
    return order


def positions(snapshot: QueueSnapshot) -> dict[int, int]:
    """Each queued job's 1-based place in the queue, across the bot; :data:`PAUSED` for a paused server's."""
    places = {job_id: place for place, job_id in enumerate(queue_order(snapshot), start=1)}
    for job_id, guild_id, *_ in snapshot.queued:
        if guild_id in snapshot.paused:
            places[job_id] = PAUSED
    return places


def queued_progress(
    model: str, place: int | None, *, median_seconds: float | None, org_cap: int, priority: bool = False
) -> Progress:
    """A queued job's visible state: its place (or that its server is paused) and a wait estimate.

    The wait counts slot turnovers ahead of the job on its route (``route_slots``: the model's own
    cap inside ``org_cap``), each about the model's median latency, plus its own run. ``priority``: the
    job is in its server's priority lane.
    """
    if place == PAUSED:
        return Progress(JobStatus.QUEUED, model, paused=True, priority=priority)
    eta = None
    if place is not None and median_seconds is not None:
        eta = (math.ceil(place / route_slots(model, org_cap)) + 1) * median_seconds
    return Progress(JobStatus.QUEUED, model, position=place, eta_seconds=eta, priority=priority)
