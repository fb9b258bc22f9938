"""The Interaction state machine as a pure table: the only definition of which moves are legal."""
from __future__ import annotations

from enum import StrEnum


class State(StrEnum):
    NEW = "new"
    IVR = "ivr"
    QUEUED = "queued"
    OFFERED = "offered"
    CONNECTED = "connected"
    WRAP_UP = "wrap_up"
    CLOSED = "closed"
    ABANDONED = "abandoned"
    VOICEMAIL = "voicemail"
    CALLBACK_PENDING = "callback_pending"


S = State
# Why each edge exists:
#  offered -> queued / callback_pending: reject, timeout or disconnect re-queues (keeping its place);
#  connected -> queued: transfer to another queue;  closed -> queued: a customer's reply re-opens a case;
#  voicemail -> queued: a voicemail is worked by an agent like any contact.
TRANSITIONS: dict[State, frozenset[State]] = {
    S.NEW: frozenset({S.IVR, S.QUEUED, S.CLOSED, S.ABANDONED}),
    S.IVR: frozenset({S.QUEUED, S.CALLBACK_PENDING, S.VOICEMAIL, S.CLOSED, S.ABANDONED}),
    S.QUEUED: frozenset({S.OFFERED, S.CALLBACK_PENDING, S.VOICEMAIL, S.CLOSED, S.ABANDONED}),
    S.CALLBACK_PENDING: frozenset({S.OFFERED, S.CLOSED, S.ABANDONED}),
    S.OFFERED: frozenset({S.CONNECTED, S.QUEUED, S.CALLBACK_PENDING, S.ABANDONED}),
    S.CONNECTED: frozenset({S.WRAP_UP, S.QUEUED, S.CLOSED}),
    S.WRAP_UP: frozenset({S.CLOSED}),
    S.VOICEMAIL: frozenset({S.QUEUED, S.CLOSED}),
    S.CLOSED: frozenset({S.QUEUED}),
    S.ABANDONED: frozenset(),
}

TERMINAL = frozenset({S.ABANDONED})
WAITING = frozenset({S.QUEUED, S.CALLBACK_PENDING})
LIVE = frozenset({S.NEW, S.IVR, S.QUEUED, S.CALLBACK_PENDING, S.OFFERED, S.CONNECTED, S.WRAP_UP})


class InvalidTransition(Exception):
    """A move the state machine does not allow; nothing was changed."""

    def __init__(self, from_state: str, to_state: str):
        self.from_state, self.to_state = from_state, to_state
        super().__init__(f"an interaction cannot move from {from_state!r} to {to_state!r}")


def check_transition(from_state: str, to_state: str) -> State:
    """Return ``to_state`` as a State when the move is legal; raise InvalidTransition otherwise."""
    try:
        source, target = State(from_state), State(to_state)
    except ValueError as exc:
        raise InvalidTransition(from_state, to_state) from exc
    if target not in TRANSITIONS[source]:
        raise InvalidTransition(from_state, to_state)
    return target
