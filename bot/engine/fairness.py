"""Queue positions under the fairness rule the claim uses (see ``_CLAIM_SQL`` in :mod:`bot.engine.store`).

The claim picks, among queued jobs: the server with the fewest running tasks, then the server served
longest ago (round robin), then the member with the fewest running tasks, then the oldest request.
:func:`queue_order` replays that rule over a snapshot of the queue, counting each job it places as
running, which is the order jobs will leave the queue in if nothing else changes.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

from bot.engine.store import QueueSnapshot


@dataclass
class _Member:
    running: int
    jobs: deque[tuple[int, int]] = field(default_factory=deque)  # (created ms, job id), oldest first


@dataclass
class _Guild:
    running: int
    turn: int
    members: dict[int, _Member] = field(default_factory=dict)


def queue_order(snapshot: QueueSnapshot) -> list[int]:
    """Queued job ids in the order the fair scheduler will start them."""
    guilds: dict[int, _Guild] = {}
    for job_id, guild_id, user_id, _model, created in snapshot.queued:
        guild = guilds.get(guild_id)
        if guild is None:
            guild = guilds[guild_id] = _Guild(
                snapshot.running_by_guild.get(guild_id, 0), snapshot.turns.get(guild_id, 0)
            )
        member = guild.members.get(user_id)
        if member is None:
            member = guild.members[user_id] = _Member(snapshot.running_by_member.get((guild_id, user_id), 0))
        member.jobs.append((created, job_id))
    for guild in guilds.values():
        for member in guild.members.values():
            member.jobs = deque(sorted(member.jobs))

    order: list[int] = []
    turn = max(snapshot.turns.values(), default=0)
    while guilds:
        # Exactly the claim's ORDER BY: server running, server turn, member running, created, id.
        best: tuple[tuple[int, int, int, int, int], int, int] | None = None
        for guild_id, guild in guilds.items():
            for user_id, member in guild.members.items():
                created, job_id = member.jobs[0]
                key = (guild.running, guild.turn, member.running, created, job_id)
                if best is None or key < best[0]:
                    best = (key, guild_id, user_id)
        assert best is not None
        _, guild_id, user_id = best
        guild = guilds[guild_id]
        member = guild.members[user_id]
        order.append(member.jobs.popleft()[1])
        member.running += 1
        guild.running += 1
        turn += 1
        guild.turn = turn
        if not member.jobs:
            del guild.members[user_id]
        if not guild.members:
            del guilds[guild_id]
    return order


def positions(snapshot: QueueSnapshot) -> dict[int, int]:
    """Each queued job's 1-based place in the queue, across the bot."""
    return {job_id: place for place, job_id in enumerate(queue_order(snapshot), start=1)}
