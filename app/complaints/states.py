"""The complaint workflow as a pure table (ISO 10002: receive, acknowledge, assess, investigate,
respond, decide, close), the only definition of which moves are legal.

    received -> acknowledged -> investigating -> response_proposed -> awaiting_approval -> approved
             -> compensation_issued -> resolved -> closed
plus ``rejected`` (a final response refusing the complaint, with reasons and the customer's right to
escalate) and ``reopened`` (within ``reopen_within_days`` of the final response or closure).
"""
from __future__ import annotations

from datetime import datetime, timedelta
from enum import StrEnum


class ComplaintState(StrEnum):
    RECEIVED = "received"
    ACKNOWLEDGED = "acknowledged"
    INVESTIGATING = "investigating"
    RESPONSE_PROPOSED = "response_proposed"
    AWAITING_APPROVAL = "awaiting_approval"
    APPROVED = "approved"
    COMPENSATION_ISSUED = "compensation_issued"
    RESOLVED = "resolved"
    CLOSED = "closed"
    REJECTED = "rejected"
    REOPENED = "reopened"


S = ComplaintState
# Why the less obvious edges exist:
#  response_proposed -> approved: compensation within the proposer's own authority needs no one else;
#  response_proposed -> resolved: a response with no compensation (an apology, an explanation, a fix);
#  awaiting_approval -> investigating / response_proposed: the approver declines and sends it back;
#  resolved -> reopened: the customer is not satisfied before the case is closed.
TRANSITIONS: dict[ComplaintState, frozenset[ComplaintState]] = {
    S.RECEIVED: frozenset({S.ACKNOWLEDGED}),
    S.ACKNOWLEDGED: frozenset({S.INVESTIGATING, S.REJECTED}),
    S.INVESTIGATING: frozenset({S.RESPONSE_PROPOSED, S.REJECTED}),
    S.RESPONSE_PROPOSED: frozenset({S.AWAITING_APPROVAL, S.APPROVED, S.RESOLVED, S.INVESTIGATING, S.REJECTED}),
    S.AWAITING_APPROVAL: frozenset({S.APPROVED, S.RESPONSE_PROPOSED, S.INVESTIGATING}),
    S.APPROVED: frozenset({S.COMPENSATION_ISSUED}),
    S.COMPENSATION_ISSUED: frozenset({S.RESOLVED}),
    S.RESOLVED: frozenset({S.CLOSED, S.REOPENED}),
    S.CLOSED: frozenset({S.REOPENED}),
    S.REJECTED: frozenset({S.CLOSED, S.REOPENED}),
    S.REOPENED: frozenset({S.INVESTIGATING}),
}

# Moves that must carry a note: a refusal states its reasons, a reopening and a send-back say why.
NOTE_REQUIRED = frozenset({
    (S.ACKNOWLEDGED, S.REJECTED), (S.INVESTIGATING, S.REJECTED), (S.RESPONSE_PROPOSED, S.REJECTED),
    (S.RESOLVED, S.REOPENED), (S.CLOSED, S.REOPENED), (S.REJECTED, S.REOPENED),
    (S.AWAITING_APPROVAL, S.RESPONSE_PROPOSED), (S.AWAITING_APPROVAL, S.INVESTIGATING),
    (S.RESPONSE_PROPOSED, S.INVESTIGATING),
})
# The final response: the resolve clock stops here.
FINAL_RESPONSE = frozenset({S.RESOLVED, S.REJECTED})
OPEN = frozenset(set(S) - {S.CLOSED})
REOPENABLE = frozenset({S.RESOLVED, S.CLOSED, S.REJECTED})

STATE_LABELS = {
    S.RECEIVED: ("Received", "已接收"), S.ACKNOWLEDGED: ("Acknowledged", "已确认受理"),
    S.INVESTIGATING: ("Investigating", "调查中"), S.RESPONSE_PROPOSED: ("Response proposed", "已拟定答复"),
    S.AWAITING_APPROVAL: ("Awaiting approval", "待审批"), S.APPROVED: ("Approved", "已批准"),
    S.COMPENSATION_ISSUED: ("Compensation issued", "补偿已发放"), S.RESOLVED: ("Resolved", "已解决"),
    S.CLOSED: ("Closed", "已关闭"), S.REJECTED: ("Rejected", "不予受理"), S.REOPENED: ("Reopened", "已重新打开"),
}


class InvalidComplaintTransition(Exception):
    """A move the workflow does not allow (or lacks its note, or is too late to reopen); nothing changed."""

    def __init__(self, from_state: str, to_state: str, why: str = ""):
        self.from_state, self.to_state = from_state, to_state
        message = f"a complaint cannot move from {from_state!r} to {to_state!r}"
        super().__init__(f"{message}: {why}" if why else message)


def check_transition(from_state: str, to_state: str, *, note: str = "", final_response_at: datetime | None = None,
                     now: datetime | None = None, reopen_within_days: int = 30) -> ComplaintState:
    """Return ``to_state`` when the move is legal; raise InvalidComplaintTransition otherwise.

    A reopening needs ``final_response_at`` and ``now`` and must happen within ``reopen_within_days``
    of the final response; moves in NOTE_REQUIRED need a non-blank note."""
    try:
        source, target = S(from_state), S(to_state)
    except ValueError:
        raise InvalidComplaintTransition(from_state, to_state, "unknown state") from None
    if target not in TRANSITIONS[source]:
        raise InvalidComplaintTransition(from_state, to_state)
    if (source, target) in NOTE_REQUIRED and not (note or "").strip():
        raise InvalidComplaintTransition(from_state, to_state, "a note giving the reason is required")
    if target is S.REOPENED:
        if final_response_at is None or now is None:
            raise InvalidComplaintTransition(from_state, to_state, "the final response time is unknown")
        if now - final_response_at > timedelta(days=reopen_within_days):
            raise InvalidComplaintTransition(
                from_state, to_state, f"more than {reopen_within_days} days since the final response")
    return target


def label(state: str, language: str = "en") -> str:
    en, zh = STATE_LABELS[S(state)]
    return zh if language == "zh" else en
