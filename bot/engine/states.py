"""A job's states and the events that move it: the vocabulary of the job engine.

::

    queued ─claim─▶ submitting ─accepted─▶ generating ─finished─▶ downloading ─downloaded─▶ delivering ─▶ delivered
    queued ─cancel / ack failed / expired─▶ cancelled        submitting ─not sent─▶ queued
    submitting ─refused─▶ failed, ─unknown─▶ unknown        generating ─failed / moderated / timed out─▶ failed
    downloading ─failed─▶ failed        delivering ─undeliverable─▶ failed (refunded)
    (cache hit) cached ─delivered─▶ delivered

Money per state: every open state (``queued`` … ``delivering``, ``cached``) holds an open
reservation; every terminal state is resolved (settled or released). A paid result is settled when
it is posted (or refunded to the member if it never can be), so whether the member was charged is
read from one ledger row. What each event does to the money is decided in one place,
:func:`bot.engine.decision.decide`.
"""

from __future__ import annotations

import enum


class JobStatus(enum.StrEnum):
    """Where a job is (the ``jobs.status`` column)."""

    QUEUED = "queued"  # admitted and reserved; waiting for a BFL slot
    SUBMITTING = "submitting"  # written BEFORE the POST: a crash here means "outcome unknown"
    GENERATING = "generating"  # BFL accepted the task: polling it
    DOWNLOADING = "downloading"  # BFL finished; fetching the result (the BFL slot is free again)
    DELIVERING = "delivering"  # made and cached: being posted to Discord (settled once posted)
    CACHED = "cached"  # an identical image was in the cache: being posted (its 0 µ$ reservation is open)
    DELIVERED = "delivered"
    CANCELLED = "cancelled"
    FAILED = "failed"
    UNKNOWN = "unknown"  # BFL may or may not have run it; charged conservatively, flagged in reports

    @property
    def is_open(self) -> bool:
        """True while the engine still has work to do for the job."""
        return self in OPEN

    @property
    def holds_slot(self) -> bool:
        """True while the job counts against BFL's active-task cap (submit to terminal status)."""
        return self in SLOT_HOLDERS


OPEN = frozenset(
    {
        JobStatus.QUEUED,
        JobStatus.SUBMITTING,
        JobStatus.GENERATING,
        JobStatus.DOWNLOADING,
        JobStatus.DELIVERING,
        JobStatus.CACHED,
    }
)
SLOT_HOLDERS = frozenset({JobStatus.SUBMITTING, JobStatus.GENERATING})
TERMINAL = frozenset(JobStatus) - OPEN


class Event(enum.StrEnum):
    """Something that happened to a job."""

    CLAIMED = "claimed"  # the scheduler gave it a BFL slot
    ACCEPTED = "accepted"  # BFL answered the submit with a task id
    FINISHED = "finished"  # a poll saw Ready
    DOWNLOADED = "downloaded"  # the result is downloaded, checked and cached
    DELIVERED = "delivered"  # the image is posted to Discord
    SUBMIT_REFUSED = "submit_refused"  # BFL answered the submit with an error: no task exists
    SUBMIT_UNKNOWN = "submit_unknown"  # the submit may have created a task (5xx, timeout, dropped connection)
    TASK_FAILED = "task_failed"  # BFL accepted the task, then it failed (Error, not found, bad or lost result)
    REQUEST_MODERATED = "request_moderated"
    CONTENT_MODERATED = "content_moderated"
    TIMED_OUT = "timed_out"  # the task did not finish before the job's deadline
    CANCELLED = "cancelled"  # the member or a moderator cancelled a queued job
    ACK_FAILED = "ack_failed"  # the interaction was not acknowledged after admission (in time)
    EXPIRED = "expired"  # a private job whose interaction would expire before it could be shown
    DELIVERY_FAILED = "delivery_failed"  # the result could not be posted anywhere in time, or its bytes are gone
    INTERNAL_ERROR = "internal_error"  # a bug of ours
    REQUEUED = "requeued"  # claimed, but its POST never left (stop, 429, error before sending): back to the queue
    NOT_SENT = "not_sent"  # claimed, its POST never left, and it keeps failing before it: given up
