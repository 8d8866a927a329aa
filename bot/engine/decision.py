"""The one money decision: what a job's event does to its state and to the ledger.

Every step of every job — whichever process drives it, after whatever restart — asks :func:`decide`
and applies the answer in one transaction together with the state change
(:meth:`bot.engine.store.JobStore.apply`). No other code chooses between settling, releasing and
refunding.

The rules:

* BFL never had the task (queued, refused at submit, cancelled, acknowledgement failed or too late,
  its POST never left): **release**; a claimed job whose POST never left goes back to the queue,
  still reserved (``jobs.submit_started_at`` is the recorded fact "the POST may have left").
* BFL may have the task and we cannot know (the POST may have left and no answer was recorded): the
  server and bot pay the **estimate** (an upper bound: the money may have left the account), the
  member is refunded unless ``REFUND_POLICY=none``; the job is ``unknown``.
* BFL accepted the task: the server and bot pay what BFL **reported** (the estimate if it did not
  say). The member pays when the image is posted; on a failed task the refund policy decides
  (``errors``: provider errors and timeouts are refunded, moderated prompts are not); a result that
  could not be posted anywhere in time (or whose bytes are gone) is always refunded to the member.
* A cache hit costs 0 µ$ but counts as an image; it is settled at 0 once posted, released if never posted.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from bot.billing.refunds import RefundPolicy
from bot.engine.states import Event, JobStatus


class MoneyAction(enum.StrEnum):
    """What happens to the job's reservation."""

    NONE = "none"  # nothing now (still open, or already resolved)
    RELEASE = "release"  # give back everything it held
    SETTLE = "settle"  # record the final cost


class Cost(enum.StrEnum):
    """Which amount a settlement records for the server and the bot."""

    REPORTED = "reported"  # what BFL reported, else the estimate
    ESTIMATE = "estimate"  # the reservation's upper bound
    ZERO = "zero"  # a cache hit


@dataclass(frozen=True)
class Decision:
    """The next state and the ledger operation for one (state, event)."""

    next_status: JobStatus
    money: MoneyAction = MoneyAction.NONE
    cost: Cost = Cost.REPORTED
    refund_member: bool = False

    @property
    def member_charged(self) -> bool:
        """True if the member ends up paying for this job."""
        return self.money is MoneyAction.SETTLE and not self.refund_member


class IllegalEvent(ValueError):
    """The event cannot happen in this state (a bug, or a step that already ran)."""


S, E = JobStatus, Event


def _refund(event: Event, policy: RefundPolicy) -> bool:
    """Whether the member gets their money back for a task BFL accepted that produced no image."""
    if event in (Event.INTERNAL_ERROR, Event.DELIVERY_FAILED):
        return True  # our bug, or an image the member never got, is never the member's cost
    if policy is RefundPolicy.ALL:
        return True
    if policy is RefundPolicy.NONE:
        return False
    return event not in (Event.REQUEST_MODERATED, Event.CONTENT_MODERATED)


_RELEASE = MoneyAction.RELEASE
_SETTLE = MoneyAction.SETTLE
_ACCEPTED_FAILURES = (E.TASK_FAILED, E.REQUEST_MODERATED, E.CONTENT_MODERATED, E.TIMED_OUT, E.INTERNAL_ERROR)


def decide(status: JobStatus, event: Event, policy: RefundPolicy) -> Decision:
    """The next state and money operation for ``event`` in ``status``; raises :class:`IllegalEvent`."""
    decision = _TABLE.get((status, event))
    if decision is None:
        raise IllegalEvent(f"{event.value} cannot happen to a {status.value} job")
    if decision.money is _SETTLE and decision.refund_member:
        # The table marks "refund according to the policy"; resolve it here.
        if decision.cost is Cost.ESTIMATE:
            refund = policy is not RefundPolicy.NONE or event is Event.INTERNAL_ERROR
        else:
            refund = _refund(event, policy)
        return Decision(decision.next_status, decision.money, decision.cost, refund)
    return decision


def _build_table() -> dict[tuple[JobStatus, Event], Decision]:
    unknown = Decision(S.UNKNOWN, _SETTLE, Cost.ESTIMATE, refund_member=True)
    accepted_failure = Decision(S.FAILED, _SETTLE, Cost.REPORTED, refund_member=True)  # the policy decides
    table = {
        (S.QUEUED, E.CLAIMED): Decision(S.SUBMITTING),
        (S.QUEUED, E.CANCELLED): Decision(S.CANCELLED, _RELEASE),
        (S.QUEUED, E.ACK_FAILED): Decision(S.CANCELLED, _RELEASE),
        (S.QUEUED, E.EXPIRED): Decision(S.CANCELLED, _RELEASE),
        (S.QUEUED, E.INTERNAL_ERROR): Decision(S.FAILED, _RELEASE),
        (S.SUBMITTING, E.ACCEPTED): Decision(S.GENERATING),
        (S.SUBMITTING, E.SUBMIT_REFUSED): Decision(S.FAILED, _RELEASE),
        (S.SUBMITTING, E.SUBMIT_UNKNOWN): unknown,  # the POST may have left: BFL may have the task
        (S.SUBMITTING, E.INTERNAL_ERROR): unknown,
        (S.SUBMITTING, E.REQUEUED): Decision(S.QUEUED),  # known never to have been sent
        (S.SUBMITTING, E.NOT_SENT): Decision(S.FAILED, _RELEASE),
        (S.GENERATING, E.FINISHED): Decision(S.DOWNLOADING),
        (S.DOWNLOADING, E.DOWNLOADED): Decision(S.DELIVERING),
        (S.DOWNLOADING, E.TASK_FAILED): accepted_failure,
        (S.DOWNLOADING, E.INTERNAL_ERROR): accepted_failure,
        (S.DELIVERING, E.DELIVERED): Decision(S.DELIVERED, _SETTLE, Cost.REPORTED),
        (S.DELIVERING, E.DELIVERY_FAILED): accepted_failure,  # always refunded (see _refund)
        (S.DELIVERING, E.INTERNAL_ERROR): accepted_failure,
        (S.CACHED, E.DELIVERED): Decision(S.DELIVERED, _SETTLE, Cost.ZERO),
        (S.CACHED, E.DELIVERY_FAILED): Decision(S.FAILED, _RELEASE),
        (S.CACHED, E.ACK_FAILED): Decision(S.CANCELLED, _RELEASE),
        (S.CACHED, E.INTERNAL_ERROR): Decision(S.FAILED, _RELEASE),
    }
    for event in _ACCEPTED_FAILURES:
        table[(S.GENERATING, event)] = accepted_failure
    return table


_TABLE = _build_table()
