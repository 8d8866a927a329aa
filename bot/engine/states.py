"""A job's states and the events that move it: the vocabulary of the job engine.

::

    queued ─claim─▶ submitting ─accepted─▶ generating ─finished─▶ downloading ─downloaded─▶ delivering ─▶ delivered
    queued ─cancel / ack failed─▶ cancelled        submitting ─refused─▶ failed, ─unknown─▶ unknown
    generating ─failed / moderated / timed out─▶ failed          downloading ─failed─▶ failed
    (cache hit) cached ─delivered─▶ delivered

Money per state: ``queued``, ``submitting``, ``generating``, ``downloading`` and ``cached`` hold an
open reservation; ``delivering`` and every terminal state are resolved (settled or released). What
each event does to the money is decided in one place, :func:`bot.engine.decision.decide`.
"""

from __future__ import annotations

import enum


class JobStatus(enum.StrEnum):
    """Where a job is (the ``jobs.status`` column)."""

    QUEUED = "queued"  # admitted and reserved; waiting for a BFL slot
    SUBMITTING = "submitting"  # written BEFORE the POST: a crash here means "outcome unknown"
    GENERATING = "generating"  # BFL accepted the task: polling it
    DOWNLOADING = "downloading"  # BFL finished; fetching the result (the BFL slot is free again)
    DELIVERING = "delivering"  # paid for and cached: being posted to Discord
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
    ACK_FAILED = "ack_failed"  # the interaction could not be acknowledged after admission
    DELIVERY_FAILED = "delivery_failed"  # Discord refused the result
    INTERNAL_ERROR = "internal_error"  # a bug of ours
    RECOVERED = "recovered"  # found open at start-up, after a crash or a shutdown, or its holder died
    REQUEUED = "requeued"  # claimed, but its process lost its lease before submitting: back to the queue
