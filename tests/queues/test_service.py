"""Routing persistence (queues.service): queueing, offers as leased rows, presence, transfers."""
from __future__ import annotations

import json
import threading
from datetime import timedelta

import pytest
from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm.exc import StaleDataError
from sqlalchemy.orm import Session

from app import realtime
from app.db import utcnow
from app.extensions import db
from app.interactions.models import InteractionEvent
from app.interactions.service import transition
from queues import service
from queues.models import AgentState, Offer, QueueEntry
from tests.factories import make_customer, make_interaction, make_staff
from tests.statements import sent_statements


@pytest.fixture()
def events(app):
    """Every realtime event delivered (after commit) during the test, as (name, payload)."""
    seen: list[tuple[str, dict]] = []

    def listener(name, payload):
        seen.append((name, payload))

    realtime.subscribe(listener)
    yield seen
    realtime.unsubscribe(listener)


def agent(session, skills=None, presence="available", **extra):
    staff = make_staff(session, skills=skills or {"general": 5}, **extra)
    service.set_presence(session, staff.id, presence)
    session.commit()
    return staff


def queued(session, queue="general", channel="voice", **extra):
    interaction = make_interaction(session, channel=channel, **extra)
    service.enqueue_contact(session, interaction, queue, actor="test")
    session.commit()
    return interaction


def offer(session, interaction, staff, *, lease_s=15, cost=100, now=None):
    now = now or utcnow()
    made = service.create_offer(session, interaction_id=interaction.id, agent_id=staff.id,
                                expires_at=now + timedelta(seconds=lease_s), cost=cost, priority=interaction.priority,
                                priority_reasons=list(interaction.priority_reasons), trace={"test": True}, now=now)
    session.commit()
    return made


def transitions(session, interaction):
    return [(e.to_state, e.actor, e.data) for e in session.scalars(select(InteractionEvent).where(
        InteractionEvent.interaction_id == interaction.id, InteractionEvent.kind == "transition")
        .order_by(InteractionEvent.id))]


# ------------------------------------------------------------------ queueing and priority
def test_enqueue_moves_a_new_contact_to_queued_with_its_queue_and_explained_priority(db_session, events):
    customer = make_customer(db_session, tier="vip")
    interaction = make_interaction(db_session, customer=customer, attributes={"priority_bump": 20})
    service.enqueue_contact(db_session, interaction, "general", actor="ivr")
    db_session.commit()
    assert interaction.state == "queued" and interaction.queue == "general"
    assert interaction.routing_age_origin is not None
    assert transitions(db_session, interaction)[-1][2] == {"queue": "general"}
    assert interaction.priority == 300 + 20
    assert [r["code"] for r in interaction.priority_reasons] == ["tier", "ivr"]
    assert db_session.get(QueueEntry, interaction.id).queue == "general"
    assert ("queue.changed", {"queue": "general", "interaction_id": interaction.id}) in events


def test_a_known_tier_and_a_never_queued_contact_save_their_reads_with_the_same_outcome(db_session):
    customer = make_customer(db_session, tier="vip")
    read = make_interaction(db_session, customer=customer)
    given = make_interaction(db_session, customer=customer)
    db_session.flush()
    plain = sent_statements(db_session, lambda: service.enqueue_contact(db_session, read, "general", actor="t"))
    told = sent_statements(db_session, lambda: service.enqueue_contact(db_session, given, "general", actor="t",
                                                                   customer_tier="vip"))
    db_session.commit()
    assert (given.state, given.queue, given.priority, given.priority_reasons) == (
        read.state, read.queue, read.priority, read.priority_reasons) and given.priority == 300
    assert any("customers.tier" in s for s in plain) and not any("customers.tier" in s for s in told)
    # tier, open complaints and the last agent who served the customer: one read
    [facts] = [s for s in plain if s.lstrip().startswith("SELECT")]
    assert "complaints" in facts and "interactions" in facts
    # a contact still new has no queue entry: none is looked up, one is created
    assert not any(s.lstrip().startswith("SELECT routing_queue_entries") for s in plain + told)
    assert db_session.get(QueueEntry, given.id).queue == "general"
    # re-entering looks its entry up again and keeps a single one
    service.enqueue_contact(db_session, given, "billing", actor="t", customer_tier="vip")
    db_session.commit()
    assert db_session.scalar(select(func.count()).select_from(QueueEntry).where(
        QueueEntry.interaction_id == given.id)) == 1
    assert db_session.get(QueueEntry, given.id).queue == "billing"


def test_an_open_complaint_and_a_callback_raise_priority(db_session):
    from app.complaints import flows
    from app.complaints.models import Complaint

    customer = make_customer(db_session, tier="small")
    complaint = flows.raise_complaint(db_session, channel="voice", customer_id=customer.id,
                                      category="delivery_delay", description="Parcel late")
    db_session.execute(update(Complaint).where(Complaint.id == complaint.id).values(level="P2"))
    db_session.commit()
    interaction = queued(db_session, customer=customer)
    assert [r["code"] for r in interaction.priority_reasons] == ["tier", "open_complaint"]
    transition(db_session, interaction, "callback_pending", actor="ivr")
    service.refresh_priority(db_session, interaction)
    assert interaction.priority == 0 + 250 + 50
    assert service.has_callback_reason(interaction)


def test_enqueue_refuses_unknown_queues_and_finished_contacts(db_session):
    interaction = make_interaction(db_session)
    with pytest.raises(service.UnknownQueue):
        service.enqueue_contact(db_session, interaction, "nope", actor="t")
    transition(db_session, interaction, "abandoned", actor="t")
    with pytest.raises(service.NotRoutable):
        service.enqueue_contact(db_session, interaction, "general", actor="t")


def test_re_entering_a_queue_keeps_the_original_place(db_session):
    interaction = queued(db_session)
    origin = interaction.routing_age_origin
    service.enqueue_contact(db_session, interaction, "billing", actor="ivr", now=utcnow() + timedelta(minutes=5))
    db_session.commit()
    assert interaction.queue == "billing" and interaction.state == "queued"
    assert interaction.routing_age_origin == origin


# ------------------------------------------------------------------ offers
def test_offer_then_accept_connects_once(db_session, events):
    staff = agent(db_session)
    interaction = queued(db_session)
    made = offer(db_session, interaction, staff)
    assert interaction.state == "offered" and interaction.agent_id == staff.id
    created = [p for n, p in events if n == "offer.created"]
    assert created and created[0]["offer_id"] == made.id and created[0]["queue"] == "general"
    sent = sent_statements(db_session, lambda: service.accept_offer(db_session, made.id, staff.id))
    db_session.commit()
    assert interaction.state == "connected"
    # the compare-and-swap is the offer's only read
    assert sent[0].lstrip().startswith("UPDATE routing_offers") and not [s for s in sent if "FROM routing_offers" in s]
    to_state, actor, data = transitions(db_session, interaction)[-1]
    assert (to_state, actor, data["agent_id"]) == ("connected", f"agent:{staff.id}", staff.id)
    assert any(n == "offer.accepted" and p["offer_id"] == made.id for n, p in events)
    with pytest.raises(service.OfferNotAvailable):  # the double click
        service.accept_offer(db_session, made.id, staff.id)
    db_session.rollback()
    assert service.agent_load(db_session, staff.id) == 100


def test_a_late_accept_or_someone_elses_accept_is_refused(db_session):
    staff, other = agent(db_session), agent(db_session)
    interaction = queued(db_session)
    made = offer(db_session, interaction, staff)
    with pytest.raises(service.OfferNotAvailable):
        service.accept_offer(db_session, made.id, other.id)
    with pytest.raises(service.OfferNotAvailable):
        service.accept_offer(db_session, made.id, staff.id, now=utcnow() + timedelta(seconds=16))
    db_session.rollback()
    assert db_session.get(Offer, made.id).status == "pending"


def test_two_sessions_accepting_at_once_have_exactly_one_winner(app, db_session):
    staff = agent(db_session)
    interaction = queued(db_session)
    made = offer(db_session, interaction, staff)
    barrier, outcomes = threading.Barrier(2), []

    def accept():
        with app.app_context(), Session(db.engine) as session:
            barrier.wait()
            try:
                service.accept_offer(session, made.id, staff.id)
                session.commit()
                outcomes.append("won")
            except service.OfferNotAvailable:
                session.rollback()
                outcomes.append("refused")
            except Exception as exc:  # a stale version from the losing transaction counts as refused
                session.rollback()
                outcomes.append(f"refused:{type(exc).__name__}")

    threads = [threading.Thread(target=accept) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(outcomes)[-1] == "won" and outcomes.count("won") == 1
    db_session.expire_all()
    assert db_session.get(Offer, made.id).status == "accepted"
    connected = [e for e in transitions(db_session, interaction) if e[0] == "connected"]
    assert len(connected) == 1


def test_an_offer_claims_the_agent_in_one_statement_and_trusts_the_routers_fresh_read(db_session, events):
    staff_id = agent(db_session).id
    interaction = queued(db_session, customer=make_customer(db_session))  # the pop's view is audited too
    interaction_id, now = interaction.id, utcnow()  # loaded, as the router's sync leaves it

    def write():
        service.create_offer(db_session, interaction_id=interaction_id, agent_id=staff_id, interaction=interaction,
                             expires_at=now + timedelta(seconds=15), cost=100, priority=0, priority_reasons=[],
                             trace={}, now=now)
        db_session.commit()

    sent = [" ".join(s.split()) for s in sent_statements(db_session, write)]
    # the agent is checked, locked and marked in one UPDATE; group and open work in one read; the contact,
    # just read by the router, is not read again (its version guards the write)
    assert sent[0].startswith("UPDATE routing_agent_states SET idle_since")
    assert sent[1].startswith("SELECT staff_users.agent_group, interactions.channel")
    assert not [s for s in sent if s.startswith("SELECT") and "FROM interactions" in s.split(" JOIN ")[0]]
    assert not [s for s in sent if "FOR UPDATE" in s]
    if db_session.get_bind().dialect.name == "postgresql":  # the move and its event: one statement
        assert len(sent) == 5 and [s for s in sent if s.startswith("WITH moved AS (UPDATE interactions")]
    else:
        assert len(sent) == 6
    assert interaction.state == "offered" and db_session.get(AgentState, staff_id).idle_since is not None
    assert [n for n, p in events if n == "offer.created"] == ["offer.created"]


def test_an_offer_from_a_stale_read_fails_and_writes_nothing(app, db_session):
    staff = agent(db_session)
    interaction = queued(db_session)
    stale = db_session.get(type(interaction), interaction.id)
    with Session(db.engine) as other:  # the caller hangs up after the router read the contact
        transition(other, other.get(type(interaction), interaction.id), "abandoned", actor="t")
        other.commit()
    now = utcnow()
    with pytest.raises(StaleDataError):
        service.create_offer(db_session, interaction_id=interaction.id, agent_id=staff.id, interaction=stale,
                             expires_at=now + timedelta(seconds=15), cost=100, priority=0, priority_reasons=[],
                             trace={}, now=now)
        db_session.commit()
    db_session.rollback()
    assert db_session.scalar(select(func.count()).select_from(Offer)) == 0
    assert db_session.get(AgentState, staff.id).presence == "available"


def test_an_agent_away_or_never_seen_is_not_offered_anything(db_session):
    away, unseen = agent(db_session, presence="break"), make_staff(db_session, skills={"general": 5})
    interaction = queued(db_session)
    for staff in (away, unseen):
        with pytest.raises(service.NotRoutable, match="not available"):
            offer(db_session, interaction, staff)
        db_session.rollback()
    assert service.agent_load(db_session, away.id) == 0
    with pytest.raises(service.UnknownAgent):
        service.agent_load(db_session, 10**9)


def test_the_database_refuses_a_second_pending_offer_for_one_contact(db_session):
    staff, other = agent(db_session), agent(db_session)
    interaction = queued(db_session)
    offer(db_session, interaction, staff)
    with pytest.raises(service.NotRoutable):  # the service sees it is no longer waiting
        offer(db_session, interaction, other)
    db_session.rollback()
    db_session.add(Offer(interaction_id=interaction.id, agent_id=other.id, status="pending", queue="general",
                         channel="voice", expires_at=utcnow()))
    with pytest.raises(IntegrityError):
        db_session.flush()
    db_session.rollback()


def test_reject_keeps_the_place_and_backs_the_agent_off(db_session, events):
    staff = agent(db_session)
    interaction = queued(db_session)
    origin = interaction.routing_age_origin
    made = offer(db_session, interaction, staff)
    now = utcnow()
    service.reject_offer(db_session, made.id, staff.id, now=now)
    db_session.commit()
    assert interaction.state == "queued" and interaction.agent_id is None
    assert interaction.routing_age_origin == origin
    assert transitions(db_session, interaction)[-1][2]["queue"] == "general"
    state = db_session.get(AgentState, staff.id)
    assert state.missed_offers == 1 and state.backoff_until == now + timedelta(seconds=5)
    assert db_session.get(Offer, made.id).status == "rejected"
    assert any(n == "offer.rejected" for n, _ in events)
    with pytest.raises(service.OfferNotAvailable):
        service.reject_offer(db_session, made.id, staff.id)
    with pytest.raises(service.RoutingError):
        service.reject_offer(db_session, made.id, staff.id, cause="bored")


def test_missed_offers_in_a_row_send_the_agent_on_break(db_session, events):
    staff = agent(db_session)
    interaction = queued(db_session)
    for cause in ("reject", "no_answer"):
        made = offer(db_session, interaction, staff)
        service.reject_offer(db_session, made.id, staff.id, cause=cause)
        db_session.commit()
        assert db_session.get(AgentState, staff.id).presence == "available"
    made = offer(db_session, interaction, staff)
    service.reject_offer(db_session, made.id, staff.id)
    db_session.commit()
    state = db_session.get(AgentState, staff.id)
    assert (state.presence, state.reason) == ("break", "missed_offers")
    assert any(n == "agent.presence" and p["reason"] == "missed_offers" for n, p in events)
    assert db_session.get(Offer, 2).status == "expired"


def test_a_rejected_callback_waits_as_a_callback_again(db_session):
    staff = agent(db_session)
    interaction = queued(db_session)
    transition(db_session, interaction, "callback_pending", actor="ivr")
    db_session.commit()
    made = offer(db_session, interaction, staff)
    service.reject_offer(db_session, made.id, staff.id)
    db_session.commit()
    assert interaction.state == "callback_pending"


def test_abandon_rescinds_the_pending_offer_in_the_same_transaction(db_session, events):
    staff = agent(db_session)
    interaction = queued(db_session)
    made = offer(db_session, interaction, staff)
    service.rescind_offers_for_abandoned(db_session, interaction)
    transition(db_session, interaction, "abandoned", actor="ivr")
    db_session.commit()
    assert db_session.get(Offer, made.id).status == "rescinded"
    assert interaction.agent_id is None
    rescinded = [p for n, p in events if n == "offer.rescinded"]
    assert rescinded == [{"offer_id": made.id, "interaction_id": interaction.id, "agent_id": staff.id,
                          "reason": "abandoned", "cause": "abandoned", "queue": "general", "channel": "voice"}]
    assert service.agent_load(db_session, staff.id) == 0
    assert service.rescind_offers_for_abandoned(db_session, interaction) == []


def test_the_sweeper_expires_leases_and_rescinds_orphans(db_session):
    staff, other = agent(db_session), agent(db_session)
    first, second = queued(db_session), queued(db_session)
    now = utcnow()
    late = offer(db_session, first, staff, now=now)
    orphan = offer(db_session, second, other, lease_s=300, now=now)
    assert service.expire_due_offers(db_session, now=now + timedelta(seconds=10)) == []
    transition(db_session, second, "abandoned", actor="chat")  # nobody rescinded
    db_session.commit()
    assert [o.id for o in service.expire_due_offers(db_session, now=now + timedelta(seconds=15))] == [late.id]
    assert [o.id for o in service.rescind_orphan_offers(db_session)] == [orphan.id]
    db_session.commit()
    assert first.state == "queued" and db_session.get(Offer, late.id).status == "expired"
    assert db_session.get(AgentState, staff.id).backoff_until == now + timedelta(seconds=15 + 30)
    assert db_session.get(Offer, orphan.id).status == "rescinded"


# ------------------------------------------------------------------ presence and capacity
def test_presence_changes_are_announced_and_idle_time_starts_on_available(db_session, events):
    staff = make_staff(db_session)
    now = utcnow()
    state = service.set_presence(db_session, staff.id, "available", now=now)
    db_session.commit()
    assert state.idle_since == now and state.presence == "available"
    service.set_presence(db_session, staff.id, "break", "lunch", now=now)
    db_session.commit()
    presence = [p for n, p in events if n == "agent.presence"]
    assert [(p["presence"], p["reason"]) for p in presence] == [("available", None), ("break", "lunch")]
    with pytest.raises(service.RoutingError):
        service.set_presence(db_session, staff.id, "napping")
    with pytest.raises(service.UnknownAgent):
        service.set_presence(db_session, 999_999, "available")


def test_going_offline_takes_back_pending_offers_without_penalty(db_session):
    staff = agent(db_session)
    interaction = queued(db_session)
    made = offer(db_session, interaction, staff)
    service.set_presence(db_session, staff.id, "offline")
    db_session.commit()
    assert interaction.state == "queued" and db_session.get(Offer, made.id).status == "rescinded"
    assert db_session.get(AgentState, staff.id).missed_offers == 0


def test_a_disconnected_agent_loses_their_offers_and_goes_offline(db_session, events):
    staff = agent(db_session)
    interaction = queued(db_session)
    made = offer(db_session, interaction, staff)
    taken = service.agent_disconnected(db_session, staff.id)
    db_session.commit()
    assert [o.id for o in taken] == [made.id] and made.cause == "disconnect"
    state = db_session.get(AgentState, staff.id)
    assert state.presence == "offline" and state.missed_offers == 1
    assert interaction.state == "queued"


def test_capacity_is_a_cost_budget(db_session):
    staff = agent(db_session)
    chats = [queued(db_session, channel="chat") for _ in range(5)]
    for chat in chats[:4]:
        offer(db_session, chat, staff, cost=25)
    assert service.agent_load(db_session, staff.id) == 100
    with pytest.raises(service.NotRoutable):
        offer(db_session, chats[4], staff, cost=25)
    db_session.rollback()


def test_release_starts_wrap_up_and_the_timer_makes_the_agent_available(db_session, events):
    staff = agent(db_session)
    interaction = queued(db_session)
    made = offer(db_session, interaction, staff)
    service.accept_offer(db_session, made.id, staff.id)
    transition(db_session, interaction, "wrap_up", actor=f"agent:{staff.id}")
    now = utcnow()
    state = service.release_agent(db_session, interaction, now=now)
    db_session.commit()
    assert state.presence == "wrap_up" and state.wrap_up_until == now + timedelta(seconds=30)
    assert service.agent_load(db_session, staff.id) == 0
    assert service.end_due_wrap_ups(db_session, now=now + timedelta(seconds=29)) == []
    assert [s.agent_id for s in service.end_due_wrap_ups(db_session, now=now + timedelta(seconds=30))] == [staff.id]
    db_session.commit()
    assert db_session.get(AgentState, staff.id).presence == "available"
    unassigned = make_interaction(db_session)
    assert service.release_agent(db_session, unassigned) is None


def test_a_contact_closed_as_it_ends_leaves_the_agent_available_and_idle_from_now(db_session, events):
    from app.reports.models import AgentPresenceLog

    staff, other = agent(db_session), agent(db_session, presence="break")
    interaction = queued(db_session)
    made = offer(db_session, interaction, staff)
    service.accept_offer(db_session, made.id, staff.id)
    db_session.execute(update(AgentState).where(AgentState.agent_id == staff.id).values(missed_offers=1))
    db_session.commit()
    before = db_session.scalar(select(func.count()).select_from(AgentPresenceLog))
    transition(db_session, interaction, "wrap_up", actor=f"agent:{staff.id}")
    transition(db_session, interaction, "closed", actor=f"agent:{staff.id}")
    now = utcnow() + timedelta(seconds=5)
    events.clear()
    state = service.release_agent(db_session, interaction, now=now, wrapped_up=True)
    db_session.commit()
    assert (state.presence, state.idle_since, state.missed_offers, state.wrap_up_until) == ("available", now, 0, None)
    assert db_session.scalar(select(func.count()).select_from(AgentPresenceLog)) == before  # no zero-length wrap-up
    assert not [n for n, _ in events if n == "agent.presence"]
    assert service.agent_load(db_session, staff.id) == 0
    # an agent who went on break meanwhile stays on break
    interaction.agent_id = other.id
    assert service.release_agent(db_session, interaction, now=now, wrapped_up=True).presence == "break"
    db_session.rollback()


# ------------------------------------------------------------------ transfers
def test_transfer_of_a_waiting_contact_keeps_its_place(db_session):
    interaction = queued(db_session)
    origin = interaction.routing_age_origin
    service.transfer_to_queue(db_session, interaction, "billing", actor="supervisor:1", note="needs billing")
    db_session.commit()
    assert (interaction.state, interaction.queue, interaction.routing_age_origin) == ("queued", "billing", origin)
    entry = db_session.get(QueueEntry, interaction.id)
    assert entry.queue == "billing" and entry.note == "needs billing"


def test_transfer_of_a_connected_contact_requeues_it_and_frees_the_agent(db_session):
    staff = agent(db_session)
    interaction = queued(db_session)
    origin = interaction.routing_age_origin
    made = offer(db_session, interaction, staff)
    service.accept_offer(db_session, made.id, staff.id)
    db_session.commit()
    service.transfer_to_queue(db_session, interaction, "billing", actor=f"agent:{staff.id}", note="over to you")
    db_session.commit()
    assert (interaction.state, interaction.agent_id, interaction.routing_age_origin) == ("queued", None, origin)
    to_state, _, data = transitions(db_session, interaction)[-1]
    assert to_state == "queued" and data["queue"] == "billing" and data["from_agent_id"] == staff.id
    assert service.agent_load(db_session, staff.id) == 0


def test_transfer_to_an_agent_holds_the_contact_for_them(db_session):
    staff, target = agent(db_session), agent(db_session)
    interaction = queued(db_session)
    made = offer(db_session, interaction, staff)
    now = utcnow()
    service.transfer_to_agent(db_session, interaction, target.id, actor="supervisor:1", note="", now=now)
    db_session.commit()
    assert db_session.get(Offer, made.id).status == "rescinded" and interaction.state == "queued"
    entry = db_session.get(QueueEntry, interaction.id)
    assert entry.preferred_agent_id == target.id
    assert entry.preferred_until == now + timedelta(seconds=service.TRANSFER_HOLD_S)
    supervisor = make_staff(db_session, role="supervisor")
    with pytest.raises(service.UnknownAgent):
        service.transfer_to_agent(db_session, interaction, supervisor.id, actor="supervisor:1")
    transition(db_session, interaction, "abandoned", actor="t")
    with pytest.raises(service.NotRoutable):
        service.transfer_to_queue(db_session, interaction, "general", actor="t")


def test_a_returning_customer_is_held_briefly_for_the_agent_who_last_served_them(db_session):
    staff = agent(db_session)
    customer = make_customer(db_session)
    first = queued(db_session, customer=customer)
    service.accept_offer(db_session, offer(db_session, first, staff).id, staff.id)
    db_session.commit()
    second = queued(db_session, customer=customer, channel="chat")
    entry = db_session.get(QueueEntry, second.id)
    assert entry.preferred_agent_id == staff.id and entry.preferred_until is not None


def test_a_history_read_ahead_gives_the_same_preferred_agent_and_priority_without_lookups(db_session):
    staff = agent(db_session)
    served, other = make_customer(db_session), make_customer(db_session)
    first = queued(db_session, customer=served)
    service.accept_offer(db_session, offer(db_session, first, staff).id, staff.id)
    db_session.commit()
    since = utcnow() - timedelta(days=30)
    found = service.last_served_by(db_session, {served.id, other.id}, since=since)
    assert found == {served.id: (staff.id, first.state_changed_at)}
    assert service.last_served_by(db_session, set(), since=since) == {}
    agent_id, at = found[served.id]
    history = service.CustomerHistory(agent_id, at, open_complaint_level="P2")
    contact = make_interaction(db_session, channel="chat", customer=served)

    def enqueue():
        with db_session.no_autoflush:
            service.enqueue_contact(db_session, contact, "general", actor="test", customer_tier=served.tier,
                                    history=history)

    statements = sent_statements(db_session, enqueue)
    assert not [s for s in statements if "FROM interactions" in s or "FROM complaints" in s]
    assert db_session.get(QueueEntry, contact.id).preferred_agent_id == staff.id
    assert any(r["code"] == "open_complaint" for r in contact.priority_reasons), contact.priority_reasons
    # a history whose served contact is older than the queue's window names nobody
    stale = service.CustomerHistory(agent_id, at - timedelta(days=400))
    late = make_interaction(db_session, channel="chat", customer=served)
    service.enqueue_contact(db_session, late, "general", actor="test", history=stale)
    assert db_session.get(QueueEntry, late.id).preferred_agent_id is None


# ------------------------------------------------------------------ position and wait
def test_position_follows_priority_then_first_arrival(db_session, redis_client):
    vip = make_customer(db_session, tier="vip")
    now = utcnow()
    first = make_interaction(db_session)
    service.enqueue_contact(db_session, first, "general", actor="t", now=now)
    first.routing_age_origin = now - timedelta(seconds=30)
    second = queued(db_session)
    third = queued(db_session, customer=vip)
    db_session.commit()
    assert service.position_and_wait(db_session, third.id) == (1, None)
    assert service.position_and_wait(db_session, first.id) == (2, None)
    assert service.position_and_wait(db_session, second.id)[0] == 3
    assert service.position_and_wait(db_session, 999_999) == (None, None)
    stats = {"at": utcnow().timestamp(), "announceable": True, "staffed": 2, "free": 0, "handle_time_s": 120.0}
    redis_client.set(service.STATS_KEY.format(queue="general", channel="voice"), json.dumps(stats))
    assert service.position_and_wait(db_session, second.id) == (3, 180)
    stats["announceable"] = False
    redis_client.set(service.STATS_KEY.format(queue="general", channel="voice"), json.dumps(stats))
    assert service.position_and_wait(db_session, second.id) == (3, None)


def test_an_offered_contact_is_next_and_a_connected_one_has_no_place(db_session):
    staff = agent(db_session)
    interaction = queued(db_session)
    made = offer(db_session, interaction, staff)
    assert service.position_and_wait(db_session, interaction.id) == (1, 0)
    service.accept_offer(db_session, made.id, staff.id)
    db_session.commit()
    assert service.position_and_wait(db_session, interaction.id) == (None, None)


def test_position_matches_the_routers_order_for_mixed_priorities_and_ages(db_session):
    """The place is counted in the database (a threshold per priority); it must agree with sorting every
    waiting contact by the router's score, including equal arrival times."""
    import random

    rng = random.Random(5)
    now = utcnow()
    contacts = []
    for _n in range(40):
        interaction = make_interaction(db_session)
        service.enqueue_contact(db_session, interaction, "general", actor="t", now=now)
        interaction.priority = rng.choice([0, 10, 25, 40, 41])
        interaction.routing_age_origin = now - timedelta(seconds=rng.choice([0, 15, 60, 90, 300, 301]))
        contacts.append(interaction)
    db_session.commit()
    w = float(service._config(None).priority.per_minute_waiting)

    def key(i):
        ts = i.routing_age_origin.timestamp()
        return -((i.priority or 0) - w * ts / 60.0), ts, i.id

    expected = {i.id: n + 1 for n, i in enumerate(sorted(contacts, key=key))}
    assert {i.id: service.position_and_wait(db_session, i.id)[0] for i in contacts} == expected
