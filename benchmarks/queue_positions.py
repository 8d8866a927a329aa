"""Queue positions: time to replay the fair claim over a queue of n jobs (bot/engine/fairness.py).

Run: python -m benchmarks.queue_positions [--sizes 500,2000,20000] [--repeat 5]

Each size is timed on three shapes of queue (one server with n/2 members; 50 servers with 1,000
members; 1,000 servers with 50,000 members), with half the servers served before and a few tasks
running; the figure is the best of ``--repeat`` runs of :func:`bot.engine.fairness.positions`.
"""

from __future__ import annotations

import argparse
import random
import time

from bot.engine.claim import QueueSnapshot
from bot.engine.fairness import positions

SHAPES = ((1, None), (50, 1_000), (1_000, 50_000))  # (servers, members); None: n / 2 members


def snapshot(size: int, servers: int, members: int, seed: int = 1) -> QueueSnapshot:
    """A queue of ``size`` jobs, oldest first, over ``servers`` servers and ``members`` members."""
    rng = random.Random(seed)
    queued = [(n, rng.randrange(servers), rng.randrange(members), "flux-pro-1.1", 1_000 + n) for n in range(size)]
    turns = {g: rng.randrange(1, 10_000) for g in range(servers) if rng.random() < 0.5}
    member_turns = {(q[1], q[2]): rng.randrange(1, 10_000) for q in queued if rng.random() < 0.5}
    return QueueSnapshot(
        queued=queued,
        running_by_guild={g: rng.randrange(3) for g in range(min(servers, 24))},
        turns=turns,
        member_turns=member_turns,
        last_turn=10_000,
    )


def best_ms(queue: QueueSnapshot, repeat: int) -> float:
    """The fastest of ``repeat`` runs of :func:`positions`, in milliseconds."""
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        positions(queue)
        best = min(best, time.perf_counter() - start)
    return best * 1000


def main(argv: list[str] | None = None) -> None:
    """Print one line per size and shape."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="500,2000,20000")
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args(argv)
    for size in (int(s) for s in args.sizes.split(",")):
        for servers, members in SHAPES:
            people = members or max(1, size // 2)
            ms = best_ms(snapshot(size, servers, people), args.repeat)
            print(f"{size:>6} queued · {servers:>5} servers · {people:>6} members: {ms:8.1f} ms")


if __name__ == "__main__":
    main()
