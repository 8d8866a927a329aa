"""Memory that returns: the bot's resident memory before a burst of jobs, at its peak, and idle after it.

Run: python -m benchmarks.memory [--jobs 5000] [--image-kib 1000] [--cache-mb 512] [--plain]

The bot runs in a process of its own (the measured one): the real engine, SQLite file, image cache
(``CACHE_MAX_MB``), a presenter that answers at once, and the :class:`~bot.ops.memory.MemoryKeeper`
the bot starts (``--plain``: without it, as before); the fake BFL runs in this process, so its
rendering is not counted, and answers every task after 0.2 s with a JPEG of about ``--image-kib``
(real FLUX results are 0.3–2 MB; the fake's own solid-colour pictures are a few KiB). The child:

1. warms up (``--warmup`` jobs: every code path, pool and cache file has been used once), idles
   ``--idle`` seconds and until its memory keeper has looked once (``--keeper-interval``, the bot's
   30 s), and reads its RSS: *before*;
2. takes ``--jobs`` jobs at once and runs them all, sampling RSS every 50 ms: *peak*;
3. idles the same way and reads its RSS: *after*.

Target (issue 22): *after* within 20 % of *before*.
"""

from __future__ import annotations

import argparse
import asyncio
import ctypes
import gc
import io
import json
import random
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

TARGET_RATIO = 1.20


def rss_mib() -> float:
    """This process's resident set size now, in MiB (``VmRSS``)."""
    with open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS in /proc/self/status")


def noise_jpeg(width: int, height: int, target_kib: int, seed: int) -> bytes:
    """A decodable JPEG of ``width`` × ``height`` of about ``target_kib`` KiB (noise compresses badly)."""
    from PIL import Image

    rnd = random.Random(seed)
    side = 64
    tile = Image.frombytes("RGB", (side, side), rnd.randbytes(side * side * 3))
    image = Image.new("RGB", (width, height))
    for x in range(0, width, side):
        for y in range(0, height, side):
            image.paste(tile.rotate(90 * rnd.randrange(4)), (x, y))
    quality = 90
    while True:
        buffer = io.BytesIO()
        image.save(buffer, format="JPEG", quality=quality)
        if buffer.tell() <= target_kib * 1024 or quality <= 10:
            return buffer.getvalue()
        quality -= 10


async def child(args: argparse.Namespace) -> dict[str, float]:
    """The measured bot process."""
    import aiohttp

    from benchmarks.backlog import InstantPresenter
    from bot.app import build_services
    from bot.config import Settings
    from bot.engine.engine import Requester
    from bot.models import build_request
    from bot.storage.database import Database

    folder = Path(args.folder)
    settings = Settings(
        _env_file=None,
        discord_token="benchmark-token",
        bfl_api_key=args.key,
        bfl_api_url=args.url,
        database_path=folder / "bench.sqlite3",
        cache_dir=folder / "cache",
        cache_max_mb=args.cache_mb,
        bot_budget_usd="100000",
        default_member_daily_usd="10000",
        default_member_daily_images=100_000,
        default_server_daily_usd="100000",
        member_max_pending_jobs=100,
        member_max_concurrent_jobs=24,
    )
    db = await Database.open(settings.database_path)
    async with aiohttp.ClientSession() as session:
        services = build_services(settings, db=db, session=session)
        presenter = InstantPresenter()
        services.engine.presenter.fill(presenter)
        await services.engine.start()
        next_id = 1

        async def burst(count: int) -> None:
            nonlocal next_id
            presenter.expected = presenter.delivered + count
            presenter.done.clear()
            for _ in range(count):
                n = next_id
                next_id += 1
                request = build_request(model="flux-pro-1.1", prompt=f"job {n}", aspect_ratio="1:1", seed=n)
                who = Requester(job_id=n, guild_id=n % 10 + 1, channel_id=1, user_id=n % 100 + 1)
                await services.engine.admit(request, who, acked=True)
            await asyncio.wait_for(presenter.done.wait(), timeout=count + 120)

        keeper = None
        if not args.plain:  # (imported here: --plain also measures versions without it)
            from bot.ops.memory import MemoryKeeper

            keeper = MemoryKeeper(interval=args.keeper_interval).start()  # as bot.app.assemble starts it

        async def idle_rss() -> float:
            await asyncio.sleep(args.idle)  # idle as the bot is idle: its own timers run meanwhile
            if keeper is not None:
                await keeper.next_pass()  # and its memory keeper has looked once more
            else:
                await asyncio.sleep(args.keeper_interval)  # as long, without a keeper
            return rss_mib()

        await burst(args.warmup)
        before = await idle_rss()
        peak = before
        sampling = True

        async def sample() -> None:
            nonlocal peak
            while sampling:
                peak = max(peak, rss_mib())
                await asyncio.sleep(0.05)

        sampler = asyncio.create_task(sample())
        await burst(args.jobs)
        sampling = False
        await sampler
        after = await idle_rss()
        gc.collect()
        await asyncio.to_thread(ctypes.CDLL(None).malloc_trim, 0)  # glibc
        figures = {
            "before": before,
            "peak": peak,
            "after": after,
            "trimmed": rss_mib(),  # a diagnosis: what a trim now would still give back
            "cache_files": len(list((folder / "cache").glob("*.img"))),
            "keeper_trims": keeper.trims if keeper else 0,
        }
        if keeper is not None:
            await keeper.stop()
        await services.engine.stop()
    await db.close()
    return figures


async def parent(args: argparse.Namespace) -> dict[str, float]:
    """The fake BFL here; the bot in a child process; its figures."""
    from tests.fakes.fake_bfl import Behaviour, FakeBfl
    from tests.fakes.fake_bfl import results as fake_results

    images = [noise_jpeg(1024, 1024, args.image_kib, seed) for seed in range(4)]
    fake_results.render_image = lambda width, height, output_format, seed: images[seed % len(images)]
    with tempfile.TemporaryDirectory() as folder:
        async with FakeBfl(credits=10**9) as fake:
            fake.default = Behaviour(run_seconds=0.2, run_jitter=0.05)
            process = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "benchmarks.memory", "--child", "--url", fake.url, "--key", fake.api_key,
                "--folder", folder, "--jobs", str(args.jobs), "--warmup", str(args.warmup),
                "--cache-mb", str(args.cache_mb), "--idle", str(args.idle),
                "--keeper-interval", str(args.keeper_interval), *(["--plain"] if args.plain else []),
                stdout=asyncio.subprocess.PIPE,
            )  # fmt: skip
            out, _ = await process.communicate()
            if process.returncode != 0:
                raise RuntimeError(f"the bot process exited {process.returncode}")
    figures = json.loads(out.decode().strip().splitlines()[-1])
    figures["image_kib"] = len(images[0]) / 1024
    return figures


def table(args: argparse.Namespace, figures: dict[str, float]) -> list[str]:
    """The result as a Markdown table."""
    ratio = figures["after"] / figures["before"]
    return [
        f"memory: {args.jobs:,} jobs at once after {args.warmup} to warm up, results of "
        f"{figures['image_kib']:.0f} KiB, CACHE_MAX_MB={args.cache_mb}, "
        + ("without a memory keeper (--plain)" if args.plain else f"memory keeper every {args.keeper_interval:g} s"),
        "| RSS before the burst | peak | idle after | after ÷ before | target |",
        "|---:|---:|---:|---:|---:|",
        f"| {figures['before']:.0f} MiB | {figures['peak']:.0f} MiB | {figures['after']:.0f} MiB | {ratio:.2f} "
        f"| ≤ {TARGET_RATIO:.2f} |",
    ]


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=5000)
    parser.add_argument("--warmup", type=int, default=200)
    parser.add_argument("--image-kib", type=int, default=1000)
    parser.add_argument("--cache-mb", type=int, default=512)
    parser.add_argument("--idle", type=float, default=5.0)
    parser.add_argument("--keeper-interval", type=float, default=30.0, help="MemoryKeeper's interval (the bot's)")
    parser.add_argument("--plain", action="store_true", help="without the MemoryKeeper (as before issue 22)")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--url", help=argparse.SUPPRESS)
    parser.add_argument("--key", help=argparse.SUPPRESS)
    parser.add_argument("--folder", help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(argv)
    if args.child:
        print(json.dumps(asyncio.run(child(args))))
        return
    figures = asyncio.run(parent(args))
    print("\n".join(table(args, figures)))
    print(f"details: {json.dumps(figures)}")


if __name__ == "__main__":
    main()
