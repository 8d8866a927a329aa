"""What the bot keeps about a member, and erasing it: ``/privacy forget`` and the retention sweep.

A job row keeps the prompt, the parameters sent to BFL (which contain the prompt and an edit's input
images) and the links to its result (and to an edit's source image) so 🎲 Reroll and the result card
work; its image sits in the image cache for free identical requests in the same server. Erasing a
job blanks all of that and removes its cached image; the job row (model, size, seed, cost, times)
and the ledger (amounts, models, times, never a prompt) stay, so budgets and reports still add up.
The database runs with ``secure_delete`` and the write-ahead log is checkpointed after erasing, so
erased text does not linger in the files.

BFL is sent an opaque end-user id with each request (:mod:`bot.bfl.end_user`): a keyed hash of the
server's and the member's ids, with a per-install key. The bot stores no mapping from those ids back
to members, so once a member's jobs are erased nothing it keeps ties BFL's records to them.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

from bot.aio import cancel_and_wait
from bot.clock import Clock, from_millis, to_millis, utc_now
from bot.engine.states import OPEN
from bot.errors import InvalidOptions
from bot.images.cache import ImageCache
from bot.storage.database import Database

log = logging.getLogger(__name__)

SWEEP_INTERVAL_SECONDS = 3600.0
END_USER_ID_TEXT = (
    "BFL receives with each request an id for you that is not your Discord id: a keyed hash of this server's id"
    " and yours, with a key only this bot holds, so BFL can act on abuse without knowing who you are. The bot"
    " keeps no list of these ids, so after `/privacy forget` nothing it stores ties them to you."
)
SWEEP_BATCH = 500  # requests erased per transaction
EXPIRED_TEXT = "The details of this image expired (the bot no longer keeps its prompt), so this button can't use them."
_OPEN = "('" + "', '".join(sorted(s.value for s in OPEN)) + "')"


def server_cache_key(guild_id: int, request_key: str) -> str:
    """The cache key of a request in one server: a hit only ever serves an image made in that server."""
    return hashlib.sha256(f"guild:{guild_id}:{request_key}".encode()).hexdigest()


def require_details(job: object) -> None:
    """Refuse a button on a result whose prompt was erased (retention or /privacy forget)."""
    if getattr(job, "erased_at", None) is not None:
        raise InvalidOptions(EXPIRED_TEXT)


@dataclass(frozen=True)
class Kept:
    """What the bot stores about one member in one server."""

    requests: int
    prompts: int  # requests whose prompt is still kept
    oldest_prompt: datetime | None
    cached_images: int
    ledger_rows: int
    strikes: int
    retention_days: int
    defaults: bool = False  # the member saved /prefs defaults here


@dataclass(frozen=True)
class Forgotten:
    """What a forget erased."""

    prompts: int
    cached_images: int
    in_progress: int  # unfinished requests left alone (they still need their prompt)
    messages: list[tuple[int, int]]  # (channel id, message id) of the results that were posted


class PrivacyService:
    """Erases prompts, parameters, result links and cached images; sweeps old ones in the background."""

    def __init__(self, db: Database, cache: ImageCache, *, retention_days: int, clock: Clock = utc_now) -> None:
        self._db = db
        self._cache = cache
        self.retention_days = retention_days
        self._clock = clock
        self._task: asyncio.Task[None] | None = None

    async def kept(self, guild_id: int, user_id: int) -> Kept:
        """Counts of what is stored about the member in this server."""
        row = await self._db.fetch_one(
            "SELECT COUNT(*) AS n, COALESCE(SUM(CASE WHEN erased_at IS NULL THEN 1 ELSE 0 END), 0) AS kept,"
            " MIN(CASE WHEN erased_at IS NULL THEN created_at END) AS oldest,"
            " COALESCE(SUM(CASE WHEN erased_at IS NULL AND status = 'delivered' THEN 1 ELSE 0 END), 0) AS images"
            " FROM jobs WHERE guild_id = ? AND user_id = ?",
            (guild_id, user_id),
        )
        ledger = await self._db.fetch_value(
            "SELECT COUNT(*) FROM ledger WHERE guild_id = ? AND user_id = ?", (guild_id, user_id), 0
        )
        strikes = await self._db.fetch_value(
            "SELECT COUNT(*) FROM safety_strikes WHERE guild_id = ? AND user_id = ?", (guild_id, user_id), 0
        )
        assert row is not None
        return Kept(
            requests=int(row["n"]),
            prompts=int(row["kept"]),
            oldest_prompt=None if row["oldest"] is None else from_millis(row["oldest"]),
            cached_images=int(row["images"]) if self._cache.enabled else 0,
            ledger_rows=int(ledger),
            strikes=int(strikes),
            retention_days=self.retention_days,
            defaults=await self._db.fetch_value(
                "SELECT 1 FROM member_prefs WHERE guild_id = ? AND user_id = ?", (guild_id, user_id)
            )
            is not None,
        )

    async def forget(self, guild_id: int, user_id: int) -> Forgotten:
        """Erase the member's finished requests and /prefs defaults in this server, then checkpoint the WAL."""
        rows = await self._db.fetch_all(
            "SELECT id, cache_key, status, result_channel_id, result_message_id FROM jobs"
            " WHERE guild_id = ? AND user_id = ? AND erased_at IS NULL",
            (guild_id, user_id),
        )
        done = [r for r in rows if r["status"] not in {s.value for s in OPEN}]
        messages = [
            (r["result_channel_id"], r["result_message_id"])
            for r in done
            if r["result_channel_id"] is not None and r["result_message_id"] is not None
        ]
        cached = await self._erase([r["id"] for r in done], [r["cache_key"] for r in done])
        # Pending offers of every kind (bot/offers.py: confirmations, fallbacks) hold a prompt too: gone too.
        await self._db.execute("DELETE FROM offers WHERE guild_id = ? AND user_id = ?", (guild_id, user_id))
        await self._db.execute("DELETE FROM member_prefs WHERE guild_id = ? AND user_id = ?", (guild_id, user_id))
        await self._db.checkpoint()
        log.info("Guild %s: forgot %d requests of member %s", guild_id, len(done), user_id)
        return Forgotten(len(done), cached, len(rows) - len(done), messages)

    async def sweep(self) -> int:
        """Erase every finished request older than the retention period; return how many.

        In batches of :data:`SWEEP_BATCH`, oldest first, each its own short transaction: a first sweep
        over a year of history never holds the write lock (or the rows) for all of it at once.
        """
        if self.retention_days <= 0:
            return 0
        cutoff = to_millis(self._clock() - timedelta(days=self.retention_days))
        erased = 0
        while True:
            rows = await self._db.fetch_all(
                "SELECT id, cache_key FROM jobs WHERE erased_at IS NULL AND created_at < ?"
                f" AND status NOT IN {_OPEN} ORDER BY created_at LIMIT ?",
                (cutoff, SWEEP_BATCH),
            )
            if rows:
                await self._erase([r["id"] for r in rows], [r["cache_key"] for r in rows])
                erased += len(rows)
            if len(rows) < SWEEP_BATCH:
                break
        if erased:
            await self._db.checkpoint()
            log.info("Retention: erased the prompts of %d requests older than %d days", erased, self.retention_days)
        return erased

    async def _erase(self, job_ids: list[int], cache_keys: list[str]) -> int:
        cached = 0
        for key in dict.fromkeys(cache_keys):
            with contextlib.suppress(ValueError):  # a key that is not a valid cache key was never cached
                cached += await self._cache.delete(key)
        now = to_millis(self._clock())
        async with self._db.transaction() as tx:
            for job_id in job_ids:
                changed = await tx.execute(
                    "UPDATE jobs SET prompt = '', params = '{}', request = NULL, expanded_prompt = NULL,"
                    " sample_url = NULL, polling_url = NULL, result_channel_id = NULL, result_message_id = NULL,"
                    " erased_at = ?"
                    f" WHERE id = ? AND status NOT IN {_OPEN}",
                    (now, job_id),
                )
                if changed:  # an edit (migration 0007) remembers its input image's link: erased too
                    await tx.execute("UPDATE job_sources SET source_url = NULL WHERE job_id = ?", (job_id,))
        return cached

    # -- background sweep --------------------------------------------------------------------------

    def start(self, interval: float = SWEEP_INTERVAL_SECONDS) -> None:
        """Sweep now and then every ``interval`` seconds, until :meth:`stop`."""
        if self._task is None and self.retention_days > 0:
            self._task = asyncio.create_task(self._run(interval), name="fluxcord-retention")

    async def stop(self) -> None:
        """Stop the background sweep."""
        if self._task is None:
            return
        await cancel_and_wait(self._task)
        self._task = None

    async def _run(self, interval: float) -> None:
        while True:
            try:
                await self.sweep()
            except Exception:
                log.exception("Retention sweep failed; trying again later")
            await asyncio.sleep(interval)
