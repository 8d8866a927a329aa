"""The one money decision: what a job's event does to its state and to the ledger.

Every path of the engine — the live pipeline, cancellation, a failed acknowledgement, an internal
error, crash recovery — asks :func:`decide` and applies the answer in one transaction together with
the state change (:meth:`bot.engine.store.JobStore.apply`). No other code chooses between settling,
releasing and refunding.

The rules:

* BFL never had the task (queued, refused at submit, cancelled, acknowledgement failed): **release**;
  a claimed job whose process lost its lease before the POST goes back to the queue, still reserved.
* BFL may have the task and we cannot know (the submit's outcome is unknown, or the process died
  mid-submit): the server and bot pay the **estimate** (an upper bound: the money may have left the
  account), the member is refunded unless ``REFUND_POLICY=none``; the job is ``unknown``.
* BFL accepted the task: the server and bot pay what BFL **reported** (the estimate if it did not
  say). The member pays too on success; on failure the refund policy decides (``errors``: provider
  errors and timeouts are refunded, moderated prompts are not).
* A cache hit costs 0 µ$ but counts as an image; it is settled at 0 once posted, released if never posted.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from bot.config import RefundPolicy
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
    if event is Event.INTERNAL_ERROR:
        return True  # our bug is never the member's cost
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
    table = {
        (S.QUEUED, E.CLAIMED): Decision(S.SUBMITTING),
        (S.QUEUED, E.CANCELLED): Decision(S.CANCELLED, _RELEASE),
        (S.QUEUED, E.ACK_FAILED): Decision(S.CANCELLED, _RELEASE),
        (S.QUEUED, E.INTERNAL_ERROR): Decision(S.FAILED, _RELEASE),
        (S.QUEUED, E.RECOVERED): Decision(S.QUEUED),
        (S.SUBMITTING, E.ACCEPTED): Decision(S.GENERATING),
        (S.SUBMITTING, E.SUBMIT_REFUSED): Decision(S.FAILED, _RELEASE),
        (S.SUBMITTING, E.SUBMIT_UNKNOWN): unknown,
        (S.SUBMITTING, E.INTERNAL_ERROR): unknown,
        (S.SUBMITTING, E.RECOVERED): unknown,  # died mid-submit: BFL may have the task
        (S.SUBMITTING, E.REQUEUED): Decision(S.QUEUED),  # known never to have been POSTed
        (S.GENERATING, E.FINISHED): Decision(S.DOWNLOADING),
        (S.GENERATING, E.RECOVERED): Decision(S.GENERATING),  # poll it again
        (S.DOWNLOADING, E.DOWNLOADED): Decision(S.DELIVERING, _SETTLE, Cost.REPORTED),
        (S.DOWNLOADING, E.TASK_FAILED): Decision(S.FAILED, _SETTLE, Cost.REPORTED, refund_member=True),
        (S.DOWNLOADING, E.INTERNAL_ERROR): Decision(S.FAILED, _SETTLE, Cost.REPORTED, refund_member=True),
        (S.DOWNLOADING, E.RECOVERED): Decision(S.DOWNLOADING),  # download it again
        (S.DELIVERING, E.DELIVERED): Decision(S.DELIVERED),
        (S.DELIVERING, E.DELIVERY_FAILED): Decision(S.FAILED),  # paid for; the image stays cached
        (S.DELIVERING, E.INTERNAL_ERROR): Decision(S.FAILED),
        (S.DELIVERING, E.RECOVERED): Decision(S.DELIVERING),  # post it again
        (S.CACHED, E.DELIVERED): Decision(S.DELIVERED, _SETTLE, Cost.ZERO),
        (S.CACHED, E.DELIVERY_FAILED): Decision(S.FAILED, _RELEASE),
        (S.CACHED, E.ACK_FAILED): Decision(S.CANCELLED, _RELEASE),
        (S.CACHED, E.INTERNAL_ERROR): Decision(S.FAILED, _RELEASE),
        (S.CACHED, E.RECOVERED): Decision(S.CACHED),
    }
    for event in _ACCEPTED_FAILURES:
        table[(S.GENERATING, event)] = Decision(S.FAILED, _SETTLE, Cost.REPORTED, refund_member=True)
    return table


_TABLE = _build_table()
