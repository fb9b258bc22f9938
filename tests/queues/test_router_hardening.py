"""The router's hardening (issue 4, last points): contacts stranded in ``offered`` are swept back to
their place, and a router killed mid-load and started again leaves every contact where it was."""
from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select, update

from app import realtime
from app.db import utcnow
from app.interactions.models import Interaction, InteractionEvent
from app.interactions.service import transition
from queues import router, service
from queues.models import AgentState, Offer, QueueEntry
from tests.factories import make_interaction, make_staff


@pytest.fixture()
def events(app):
    seen: list[tuple[str, dict]] = []

    def listener(name, payload):
        seen.append((name, payload))

    realtime.subscribe(listener)
    router.reset(app)
    yield seen
    realtime.unsubscribe(listener)
    router.reset(app)


def agent(session, skills=None, presence="available", **extra):
    staff = make_staff(session, skills=skills or {"general": 5}, **extra)
    service.set_presence(session, staff.id, presence)
    session.commit()
    return staff


def queued(session, queue="general", channel="voice", now=None, **extra):
    interaction = make_interaction(session, channel=channel, **extra)
    service.enqueue_contact(session, interaction, queue, actor="test", now=now)
    session.commit()
    return interaction


def pending(session, **where):
    session.expire_all()
    query = select(Offer).where(Offer.status == "pending")
    for key, value in where.items():
        query = query.where(getattr(Offer, key) == value)
    return list(session.scalars(query.order_by(Offer.id)))


def fetch(session, interaction_id):
    session.expire_all()
    return session.get(Interaction, interaction_id)


# ------------------------------------------------------------------ 1. stranded in "offered"
def test_a_contact_offered_without_a_pending_offer_is_swept_back_to_its_place(app, db_session, events):
    now = utcnow()
    staff = agent(db_session)
    older = queued(db_session, now=now - timedelta(seconds=40))
    older.routing_age_origin = now - timedelta(minutes=5)
    db_session.commit()
    router.run_once(app, now)
    [offer] = pending(db_session)
    assert offer.interaction_id == older.id
    # The crash between writes: the offer row was closed, the interaction never moved on.
    db_session.execute(update(Offer).where(Offer.id == offer.id).values(status="expired"))
    db_session.commit()
    service.set_presence(db_session, staff.id, "break", "lunch")  # nobody to take it again at once
    db_session.commit()
    newer = queued(db_session, now=now)
    router.run_once(app, now + timedelta(seconds=1))
    swept = fetch(db_session, older.id)
    assert swept.state == "queued" and swept.agent_id is None
    assert swept.routing_age_origin == now - timedelta(minutes=5)  # its place survives
    assert db_session.get(QueueEntry, older.id) is not None
    moves = db_session.scalars(select(InteractionEvent).where(InteractionEvent.interaction_id == older.id,
                                                              InteractionEvent.kind == "transition")
                               .order_by(InteractionEvent.id)).all()
    assert (moves[-1].from_state, moves[-1].to_state, moves[-1].reason) == ("offered", "queued", "offer lost")
    assert any(n == "interaction.state" and p["id"] == older.id and p["to"] == "queued" for n, p in events)
    state = db_session.get(AgentState, staff.id)
    assert state.missed_offers == 0  # a lost write is not the agent's fault
    service.set_presence(db_session, staff.id, "available")
    db_session.commit()
    router.run_once(app, now + timedelta(seconds=2))
    assert [o.interaction_id for o in pending(db_session)] == [older.id]  # still ahead of the newer one
    assert fetch(db_session, newer.id).state == "queued"


def test_a_stranded_callback_goes_back_to_callback_pending(app, db_session, events):
    now = utcnow()
    staff = agent(db_session)
    interaction = queued(db_session, now=now)
    transition(db_session, interaction, "callback_pending", actor="ivr", at=now)
    db_session.commit()
    router.run_once(app, now)
    [offer] = pending(db_session)
    assert offer.from_state == "callback_pending"
    db_session.execute(update(Offer).where(Offer.id == offer.id).values(status="rescinded"))
    service.set_presence(db_session, staff.id, "offline")
    db_session.commit()
    router.run_once(app, now + timedelta(seconds=1))
    swept = fetch(db_session, interaction.id)
    assert swept.state == "callback_pending" and swept.agent_id is None


def test_a_contact_offered_with_no_offer_row_at_all_is_queued_again(app, db_session, events):
    now = utcnow()
    interaction = queued(db_session, now=now)
    origin = fetch(db_session, interaction.id).routing_age_origin
    db_session.delete(db_session.get(QueueEntry, interaction.id))
    db_session.execute(update(Interaction).where(Interaction.id == interaction.id).values(state="offered"))
    db_session.commit()
    moved = service.requeue_stranded_offered(db_session, now=now + timedelta(seconds=3))
    db_session.commit()
    assert [i.id for i in moved] == [interaction.id]
    swept = fetch(db_session, interaction.id)
    assert (swept.state, swept.routing_age_origin) == ("queued", origin)
    entry = db_session.get(QueueEntry, interaction.id)
    assert entry.queue == "general" and entry.enqueued_at == now + timedelta(seconds=3)
    assert service.requeue_stranded_offered(db_session, now=now) == []  # nothing else stranded


def test_an_offered_contact_with_its_pending_offer_is_left_alone(app, db_session, events):
    agent(db_session)
    interaction = queued(db_session)
    router.run_once(app)
    assert service.requeue_stranded_offered(db_session) == []
    db_session.commit()
    assert fetch(db_session, interaction.id).state == "offered" and len(pending(db_session)) == 1
