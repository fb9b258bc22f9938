"""The Interaction state machine: every allowed move works and logs; forbidden moves change nothing."""
from __future__ import annotations

import pytest
from sqlalchemy import select

from app.interactions.models import AppendOnlyViolation, InteractionEvent
from app.interactions.service import events_of, record_fact, transition
from app.interactions.states import TRANSITIONS, InvalidTransition, State, check_transition
from tests.factories import make_interaction

ALLOWED = [(source, target) for source, targets in TRANSITIONS.items() for target in sorted(targets)]
FORBIDDEN = [(source, target) for source in State for target in State if target not in TRANSITIONS[source]]


@pytest.mark.parametrize("source, target", ALLOWED)
def test_every_allowed_transition_is_accepted(source, target):
    assert check_transition(source, target) == target


@pytest.mark.parametrize("source, target", FORBIDDEN[::3] + [("closed", "abandoned"), ("abandoned", "queued")])
def test_forbidden_transitions_raise(source, target):
    with pytest.raises(InvalidTransition):
        check_transition(source, target)


def test_unknown_states_are_forbidden():
    with pytest.raises(InvalidTransition):
        check_transition("queued", "teleported")


def _walk(session, interaction, path):
    for state in path:
        transition(session, interaction, state, actor="test", reason=f"to {state}")


def test_a_call_walks_its_life_and_every_step_is_logged(db_session):
    call = make_interaction(db_session, external_ref="CA1")
    _walk(db_session, call, ["ivr", "queued", "offered", "queued", "offered", "connected", "wrap_up", "closed"])
    db_session.commit()
    events = events_of(db_session, call.id)
    assert [e.to_state for e in events] == ["new", "ivr", "queued", "offered", "queued", "offered",
                                           "connected", "wrap_up", "closed"]
    assert all(e.occurred_at.tzinfo is not None for e in events)
    assert call.state == "closed"


def test_routing_age_origin_survives_requeue(db_session):
    call = make_interaction(db_session)
    _walk(db_session, call, ["queued"])
    origin = call.routing_age_origin
    _walk(db_session, call, ["offered", "queued"])
    db_session.commit()
    assert origin is not None and call.routing_age_origin == origin


def test_a_forbidden_transition_changes_nothing(db_session):
    call = make_interaction(db_session)
    db_session.commit()
    before = len(events_of(db_session, call.id))
    with pytest.raises(InvalidTransition):
        transition(db_session, call, "connected", actor="test")
    db_session.commit()
    assert call.state == "new"
    assert len(events_of(db_session, call.id)) == before


def test_the_event_log_is_append_only(db_session):
    call = make_interaction(db_session)
    record_fact(db_session, call, "hold", actor="agent:1", reason="customer asked")
    db_session.commit()
    event = db_session.scalars(select(InteractionEvent).where(InteractionEvent.kind == "hold")).one()
    event.reason = "rewritten"
    with pytest.raises(AppendOnlyViolation):
        db_session.flush()
    db_session.rollback()
    with pytest.raises(AppendOnlyViolation):
        db_session.delete(db_session.get(InteractionEvent, event.id))
        db_session.flush()
    db_session.rollback()


def test_one_provider_reference_per_channel(db_session):
    from sqlalchemy.exc import IntegrityError

    make_interaction(db_session, external_ref="CA-dup")
    db_session.commit()
    with pytest.raises(IntegrityError):
        make_interaction(db_session, external_ref="CA-dup")
    db_session.rollback()
    make_interaction(db_session, channel="chat", external_ref="CA-dup")  # another channel may reuse it
    db_session.commit()


def test_concurrent_stale_writes_are_refused(app, db_session):
    """The version column makes a second writer with a stale copy fail instead of overwriting."""
    from sqlalchemy.orm import Session
    from sqlalchemy.orm.exc import StaleDataError

    from app.extensions import db

    call = make_interaction(db_session)
    transition(db_session, call, "queued", actor="test")
    db_session.commit()
    with Session(db.engine) as other:
        stale = other.get(type(call), call.id)
        transition(db_session, call, "offered", actor="router")
        db_session.commit()
        transition(other, stale, "offered", actor="router-2")
        with pytest.raises(StaleDataError):
            other.commit()
