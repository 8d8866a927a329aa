"""Posting a finished job group once: whoever finishes a group's last image, in whichever process.

A member of a group (:mod:`bot.engine.groups`) that is made and cached waits in ``delivering``. Each
time a member is ready or ends, :meth:`GroupDelivery.member_done` asks the database whether the group
is finished and whether this process may post it (one conditional update on the group row): of
several processes, exactly one posts; a poster that died is replaced once its lease is gone. The
winner gathers the images (its cache, else BFL's result URL), hands them to the presenter as ONE
message, records the post, and only then marks the members ``delivered`` (each settled then); a
restart in between finds the group posted and just marks them. A post that Discord refuses is tried
again with back-off (``job_groups.next_attempt_at``); after ``UNDELIVERABLE_AFTER_SECONDS`` its
images are refunded to the member. The reconciler calls :meth:`post_finished` on every heartbeat for
groups nobody is posting.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import weakref
from datetime import timedelta

from bot.bfl.client import BflClient
from bot.bfl.errors import BflError
from bot.engine.config import EngineConfig
from bot.engine.effects import Effects
from bot.engine.groups import Group, GroupResult, GroupStore
from bot.engine.leases import ProcessIdentity
from bot.engine.progress import GroupPosted, Result, Undeliverable
from bot.engine.states import Event, JobStatus
from bot.engine.steps import DOWNLOAD_LIMIT_BYTES
from bot.engine.store import Job, JobStore
from bot.images.cache import ImageCache

log = logging.getLogger(__name__)


class GroupDelivery:
    """Posts finished groups, once each, through the presenter."""

    def __init__(
        self,
        *,
        store: JobStore,
        groups: GroupStore,
        cache: ImageCache,
        bfl: BflClient,
        identity: ProcessIdentity,
        config: EngineConfig,
        effects: Effects,
    ) -> None:
        self._store = store
        self._groups = groups
        self._cache = cache
        self._bfl = bfl
        self._identity = identity
        self._config = config
        self._effects = effects
        self._posting: set[int] = set()
        # group → the lock of its claims here; gone once nobody holds or awaits it (weak values)
        self._turns: weakref.WeakValueDictionary[int, asyncio.Lock] = weakref.WeakValueDictionary()

    def posting(self, group_id: int) -> bool:
        """Whether this process is posting ``group_id`` right now (its progress line must stay still)."""
        return group_id in self._posting

    async def member_done(self, group_id: int, *, silent: bool = False) -> None:
        """A member is ready or ended: if no member is still running, post the group (if this process wins it).

        ``silent``: the group's last message is not its own (its acknowledgement failed, or its Cancel
        click answered it): it is closed without a post.
        """
        if self._effects.parts.hooks.presenter.current is None:
            return  # no Discord here: the members wait in `delivering` for a process that has it
        # One claim at a time per group in this process, none while it posts it: so a claim of this
        # process's found on the row is a stale one (its write committed, then the connection broke),
        # taken again instead of waited for.
        async with self._turns.setdefault(group_id, asyncio.Lock()):
            if group_id in self._posting:
                return  # this process is posting it (and marks its members once posted)
            group = await self._groups.claim_posting(group_id, self._identity, reclaim=True)
            if group is not None:
                self._posting.add(group_id)
        if group is None:
            await self.mark_delivered(group_id)  # posted already (maybe before a restart)
            return
        try:
            await self._post_claimed(group, silent=silent)
        finally:
            self._posting.discard(group_id)

    async def _post_claimed(self, group: Group, *, silent: bool) -> None:
        group_id = group.id
        try:
            await self._effects.parts.painting.quiet(group_id)
            if silent:
                await self._groups.mark_posted(group, self._identity, channel_id=None, message_id=None)
                await self.mark_delivered(group_id)  # nothing was made for it: it is closed (and reported)
            else:
                await self._post(group)
        except Exception:  # e.g. the database out of reach: let the next heartbeat try again
            log.exception("Group %s: posting failed; it will be tried again", group_id)
            with contextlib.suppress(Exception):
                await self._groups.release_posting(group, self._identity)

    async def post_finished(self) -> None:
        """The reconciler: post every finished group nobody (alive) is posting and whose retry is due."""
        if self._effects.parts.hooks.presenter.current is None:
            return
        for group_id in await self._groups.finished_unposted():
            if group_id not in self._posting:
                await self.member_done(group_id)

    async def mark_delivered(self, group_id: int, files: dict[int, str] | None = None) -> None:
        """Once the group is posted: its members made for it become ``delivered`` (and settled).

        ``files``: each member's posted file (``jobs.result_file``), when this process just posted them.
        """
        group = await self._groups.get(group_id)
        if group is None or group.posted_at is None:
            return
        for job in await self._groups.members(group_id):
            if job.status is not JobStatus.DELIVERING:
                continue
            posted = group.result_message_id is not None
            applied = await self._store.apply(
                job.id,
                Event.DELIVERED if posted else Event.DELIVERY_FAILED,
                self._config.refund_policy,
                expected=JobStatus.DELIVERING,
                note="" if posted else "undeliverable",
                **(
                    {
                        "result_channel_id": group.result_channel_id,
                        "result_message_id": group.result_message_id,
                        "result_file": (files or {}).get(job.id),
                    }
                    if posted
                    else {"error": "undeliverable"}
                ),
            )
            if applied is not None:
                await self._effects.after(applied)
        self._effects.parts.hooks.observer.job_changed(group_id, "posted")

    async def _post(self, group: Group) -> None:
        outcome = await self._gather(group)
        presenter = self._effects.parts.hooks.presenter.current
        assert presenter is not None
        if self._too_late(group, outcome):
            log.warning("Group %s: could not be posted in time; its images are refunded", group.id)
            await self._give_up(group)
            return
        try:  # every group ends with one message: its gallery, or what happened to it (failed, cancelled)
            where: GroupPosted | None = await presenter.deliver_group(outcome)
        except Undeliverable as exc:  # nowhere to show it (a private gallery, its token and DMs closed)
            log.warning("Group %s: the images cannot be shown anywhere (%s); they are refunded", group.id, exc)
            await self._give_up(group)
            return
        except Exception as exc:
            await self._retry_later(group, exc)
            return
        self._effects.parts.engine.point("after_group_post", group.id)
        await self._effects.durably(  # it is in Discord now: record it, never post it again for a failed write
            lambda: self._groups.mark_posted(
                group,
                self._identity,
                channel_id=where.channel_id if where else None,
                message_id=where.message_id if where else None,
            ),
            f"Group {group.id}'s post",
        )
        files = where.result_files() if where is not None else None
        await self._effects.durably(lambda: self.mark_delivered(group.id, files), f"Group {group.id}'s images")
        log.info("Group %s posted: %d images, %d failed", group.id, len(outcome.results), outcome.failed)

    async def _give_up(self, group: Group) -> None:
        """Close the group without a post: its made images are refunded (the member never saw them)."""
        await self._groups.mark_posted(group, self._identity, channel_id=None, message_id=None)
        await self.mark_delivered(group.id)

    async def _gather(self, group: Group) -> GroupResult:
        results: list[Result] = []
        for job in await self._groups.members(group.id):
            if job.status is not JobStatus.DELIVERING:
                continue
            data = await self._image(job)
            if data is None:  # made, but the bytes are gone: refunded (the member never got it)
                applied = await self._store.apply(
                    job.id, Event.DELIVERY_FAILED, self._config.refund_policy, expected=job.status, error="lost"
                )
                if applied is not None:
                    self._effects.observe(applied)
                continue
            results.append(Result(job, data, job.settled_cost_micros, job.generation_seconds, from_cache=False))
        members = await self._groups.members(group.id)
        failed = [job.id for job in members if job.status in (JobStatus.FAILED, JobStatus.UNKNOWN)]
        return GroupResult(
            group=group,
            results=results,
            failed=len(failed),
            refunded=await self._groups.refunded(failed),
            cancelled=sum(1 for job in members if job.status is JobStatus.CANCELLED),
            prompt=members[0].prompt,
            model=members[0].model,
        )

    def _too_late(self, group: Group, outcome: GroupResult) -> bool:
        made = max((r.job.ready_at or r.job.created_at for r in outcome.results), default=group.created_at)
        return (self._store.clock() - made).total_seconds() > self._config.undeliverable_after_seconds

    async def _retry_later(self, group: Group, exc: Exception) -> None:
        tries = group.post_attempts + 1
        wait = self._config.delivery_backoff(tries)
        log.warning("Group %s: could not post the images (%s); try %d again in %.0f s", group.id, exc, tries, wait)
        retry_at = self._store.clock() + timedelta(seconds=wait)
        await self._groups.retry_posting(group, self._identity, retry_at=retry_at, attempts=tries)

    async def _image(self, job: Job) -> bytes | None:
        entry = await self._cache.get_entry(job.cache_key)
        if entry is not None:
            return entry.data
        if job.sample_url:  # made by another process (its own cache), or evicted: BFL's URL may still work
            with contextlib.suppress(BflError):
                return await self._bfl.download(job.sample_url, max_bytes=DOWNLOAD_LIMIT_BYTES)
        return None
