"""The one money decision, state by event: every pair is either a decision below or illegal."""

import itertools

import pytest

from bot.config import RefundPolicy
from bot.engine.decision import Cost, IllegalEvent, MoneyAction, decide
from bot.engine.states import Event, JobStatus

S, E, P = JobStatus, Event, RefundPolicy
N, R, ST = MoneyAction.NONE, MoneyAction.RELEASE, MoneyAction.SETTLE
REP, EST, ZERO = Cost.REPORTED, Cost.ESTIMATE, Cost.ZERO
# refund: True / False, or a dict by policy for "the refund policy decides".
ERRORS = {P.ERRORS: True, P.ALL: True, P.NONE: False}
MODERATED = {P.ERRORS: False, P.ALL: True, P.NONE: False}

EXPECTED = {
    (S.QUEUED, E.CLAIMED): (S.SUBMITTING, N, None, False),
    (S.QUEUED, E.CANCELLED): (S.CANCELLED, R, None, False),
    (S.QUEUED, E.ACK_FAILED): (S.CANCELLED, R, None, False),
    (S.QUEUED, E.EXPIRED): (S.CANCELLED, R, None, False),
    (S.QUEUED, E.INTERNAL_ERROR): (S.FAILED, R, None, False),
    (S.SUBMITTING, E.ACCEPTED): (S.GENERATING, N, None, False),
    (S.SUBMITTING, E.SUBMIT_REFUSED): (S.FAILED, R, None, False),
    (S.SUBMITTING, E.SUBMIT_UNKNOWN): (S.UNKNOWN, ST, EST, ERRORS),
    (S.SUBMITTING, E.INTERNAL_ERROR): (S.UNKNOWN, ST, EST, True),
    (S.SUBMITTING, E.REQUEUED): (S.QUEUED, N, None, False),
    (S.SUBMITTING, E.NOT_SENT): (S.FAILED, R, None, False),
    (S.GENERATING, E.FINISHED): (S.DOWNLOADING, N, None, False),
    (S.GENERATING, E.TASK_FAILED): (S.FAILED, ST, REP, ERRORS),
    (S.GENERATING, E.REQUEST_MODERATED): (S.FAILED, ST, REP, MODERATED),
    (S.GENERATING, E.CONTENT_MODERATED): (S.FAILED, ST, REP, MODERATED),
    (S.GENERATING, E.TIMED_OUT): (S.FAILED, ST, REP, ERRORS),
    (S.GENERATING, E.INTERNAL_ERROR): (S.FAILED, ST, REP, True),
    (S.DOWNLOADING, E.DOWNLOADED): (S.DELIVERING, N, None, False),
    (S.DOWNLOADING, E.TASK_FAILED): (S.FAILED, ST, REP, ERRORS),
    (S.DOWNLOADING, E.INTERNAL_ERROR): (S.FAILED, ST, REP, True),
    # A made image is paid for when it is posted; one that can never be posted is refunded to the member.
    (S.DELIVERING, E.DELIVERED): (S.DELIVERED, ST, REP, False),
    (S.DELIVERING, E.DELIVERY_FAILED): (S.FAILED, ST, REP, True),
    (S.DELIVERING, E.INTERNAL_ERROR): (S.FAILED, ST, REP, True),
    (S.CACHED, E.DELIVERED): (S.DELIVERED, ST, ZERO, False),
    (S.CACHED, E.DELIVERY_FAILED): (S.FAILED, R, None, False),
    (S.CACHED, E.ACK_FAILED): (S.CANCELLED, R, None, False),
    (S.CACHED, E.INTERNAL_ERROR): (S.FAILED, R, None, False),
}


@pytest.mark.parametrize(("status", "event", "policy"), list(itertools.product(JobStatus, Event, RefundPolicy)))
def test_every_state_and_event(status, event, policy):
    expected = EXPECTED.get((status, event))
    if expected is None:
        with pytest.raises(IllegalEvent):
            decide(status, event, policy)
        return
    next_status, money, cost, refund = expected
    decision = decide(status, event, policy)
    assert decision.next_status is next_status
    assert decision.money is money
    if money is ST:
        assert decision.cost is cost
        assert decision.refund_member is (refund[policy] if isinstance(refund, dict) else refund)
    else:
        assert not decision.refund_member


def test_terminal_states_accept_no_event():
    for status in (S.DELIVERED, S.CANCELLED, S.FAILED, S.UNKNOWN):
        for event in Event:
            with pytest.raises(IllegalEvent):
                decide(status, event, P.ERRORS)


def test_open_states_hold_money_and_resolved_states_do_not():
    """Money per state: every open state holds its reservation; a decision resolves it exactly when the job ends."""
    for (status, event), (next_status, money, _cost, _refund) in EXPECTED.items():
        assert status.is_open, (status, event)
        assert (money is N) == next_status.is_open, (status, event)
