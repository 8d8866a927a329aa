"""Posting a finished job group once: whoever finishes a group's last image, in whichever process.

A member of a group (:mod:`bot.engine.groups`) that is paid for and cached waits in ``delivering``.
Each time a member is ready or ends, :meth:`GroupDelivery.member_done` asks the database whether the
group is finished and whether this process may post it (one conditional update on the group row): of
several processes, exactly one posts; a poster that died is replaced once its lease is gone. The
winner gathers the images (its cache, else BFL's result URL), hands them to the presenter as ONE
message, records the post, and only then marks the members ``delivered``; a restart in between finds
the group posted and just marks them. Start-up and every heartbeat call :meth:`post_finished` for
groups nobody is posting (e.g. the process stopped between the last image and the post).
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable

from bot.bfl.client import BflClient
from bot.bfl.errors import BflError
from bot.config import RefundPolicy
from bot.engine.groups import Group, GroupResult, GroupStore
from bot.engine.leases import ProcessIdentity
from bot.engine.progress import GroupPosted, Presenter, Result
from bot.engine.states import Event, JobStatus
from bot.engine.store import Applied, Job, JobStore
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
        policy: RefundPolicy,
        observe: Callable[[Applied | None], None],
        forget_progress: Callable[[int], None],
        checkpoint: Callable[[str, int], None],
        download_limit: int,
    ) -> None:
        self._store = store
        self._groups = groups
        self._cache = cache
        self._bfl = bfl
        self._identity = identity
        self._policy = policy
        self._observe = observe
        self._forget_progress = forget_progress
        self._checkpoint = checkpoint
        self._download_limit = download_limit
        self._posting: set[int] = set()
        self.presenter: Presenter | None = None

    def posting(self, group_id: int) -> bool:
        """Whether this process is posting ``group_id`` right now (its progress line must stay still)."""
        return group_id in self._posting

    async def member_done(self, group_id: int) -> None:
        """A member is ready or ended: if no member is still running, post the group (if this process wins it)."""
        if self.presenter is None:
            return  # no Discord here: the members wait in `delivering` for a process that has it
        group = await self._groups.claim_posting(group_id, self._identity)
        if group is None:
            await self.mark_delivered(group_id)  # posted already (maybe before a restart)
            return
        self._posting.add(group_id)
        self._forget_progress(group_id)
        try:
            await self._post(group)
        except Exception:  # e.g. the database out of reach: let the next heartbeat try again
            log.exception("Group %s: posting failed; it will be tried again", group_id)
            with contextlib.suppress(Exception):
                await self._groups.release_posting(group, self._identity)
        finally:
            self._posting.discard(group_id)

    async def post_finished(self) -> None:
        """Recovery: post every finished group nobody (alive) is posting, e.g. after a restart."""
        if self.presenter is None:
            return
        for group_id in await self._groups.finished_unposted():
            if group_id not in self._posting:
                await self.member_done(group_id)

    async def mark_delivered(self, group_id: int, files: dict[int, str] | None = None) -> None:
        """Once the group is posted: its paid members become ``delivered``, with the message they are in.

        ``files``: each member's posted file (``jobs.result_file``), when this process just posted them.
        """
        group = await self._groups.get(group_id)
        if group is None or group.posted_at is None:
            return
        for job in await self._groups.members(group_id):
            if job.status is JobStatus.DELIVERING:
                delivered = await self._store.apply(
                    job.id,
                    Event.DELIVERED,
                    self._policy,
                    expected=JobStatus.DELIVERING,
                    result_channel_id=group.result_channel_id,
                    result_message_id=group.result_message_id,
                    result_file=(files or {}).get(job.id),
                )
                self._observe(delivered)

    async def _post(self, group: Group) -> None:
        results: list[Result] = []
        for job in await self._groups.members(group.id):
            if job.status is not JobStatus.DELIVERING:
                continue
            data = await self._image(job)
            if data is None:  # paid for, but the bytes are gone: it counts as failed (not refunded)
                self._observe(await self._store.apply(job.id, Event.DELIVERY_FAILED, self._policy, expected=job.status))
                continue
            results.append(Result(job, data, job.settled_cost_micros, job.generation_seconds, from_cache=False))
        members = await self._groups.members(group.id)
        failed = [job.id for job in members if job.status in (JobStatus.FAILED, JobStatus.UNKNOWN)]
        outcome = GroupResult(
            group=group,
            results=results,
            failed=len(failed),
            refunded=await self._groups.refunded(failed),
            cancelled=sum(1 for job in members if job.status is JobStatus.CANCELLED),
            prompt=members[0].prompt,
            model=members[0].model,
        )
        where: GroupPosted | None = None
        if results or outcome.failed:  # all cancelled: the Cancel click already said so
            assert self.presenter is not None
            try:
                where = await self.presenter.deliver_group(outcome)
            except Exception as exc:
                log.warning("Group %s: could not post the images: %s", group.id, exc)
                for result in results:  # paid for; the images stay cached
                    self._observe(await self._store.apply(result.job.id, Event.DELIVERY_FAILED, self._policy))
                await self._groups.mark_posted(group, self._identity, channel_id=None, message_id=None)
                return
        self._checkpoint("after_group_post", group.id)
        channel_id, message_id = (where.channel_id, where.message_id) if where is not None else (None, None)
        await self._groups.mark_posted(group, self._identity, channel_id=channel_id, message_id=message_id)
        await self.mark_delivered(group.id, where.result_files() if where is not None else None)
        log.info("Group %s posted: %d images, %d failed", group.id, len(results), outcome.failed)

    async def _image(self, job: Job) -> bytes | None:
        entry = await self._cache.get_entry(job.cache_key)
        if entry is not None:
            return entry.data
        if job.sample_url:  # made by another process (its own cache), or evicted: BFL's URL may still work
            with contextlib.suppress(BflError):
                return await self._bfl.download(job.sample_url, max_bytes=self._download_limit)
        return None
