"""The router's hardening (issue 4, last points): contacts stranded in ``offered`` are swept back to
their place, and a router killed mid-load and started again leaves every contact where it was."""
from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select, update

from app.db import utcnow
from app.interactions.models import Interaction, InteractionEvent
from app.interactions.service import transition
from queues import router, service
from queues.models import AgentState, Offer, QueueEntry
from tests.queues.helpers import agent, pending, queued


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


# ------------------------------------------------------------------ 2. overflow on every channel
@pytest.mark.parametrize("action, by_channel, expected", [
    ("voicemail", {}, {"voice": "voicemail", "chat": "message", "email": "case", "task": "case"}),
    ("callback", {}, {"voice": "callback", "chat": "message", "email": "case", "task": "case"}),
    ("message", {}, {"voice": "voicemail", "chat": "message", "email": "message", "task": "message"}),
    ("case", {"chat": "case", "voice": "callback"}, {"voice": "callback", "chat": "case", "email": "case",
                                                       "task": "case"}),
])
def test_each_channel_gets_an_overflow_action_that_fits_it(action, by_channel, expected):
    from queues.config import Overflow

    overflow = Overflow(after_s=60, action=action, by_channel=by_channel)
    assert {ch: overflow.action_for(ch) for ch in expected} == expected


@pytest.mark.parametrize("by_channel", [{"voice": "message"}, {"email": "voicemail"}, {"chat": "callback"}])
def test_an_overflow_action_that_cannot_fit_its_channel_is_refused(by_channel):
    from pydantic import ValidationError

    from queues.config import Overflow

    with pytest.raises(ValidationError, match="overflow.by_channel"):
        Overflow(by_channel=by_channel)


def test_chat_and_email_overflow_once_move_up_and_tell_the_channel(app, db_session, events):
    now = utcnow()
    call = queued(db_session, now=now)  # general: action callback
    chat = queued(db_session, channel="chat", now=now)
    email = queued(db_session, queue="billing", channel="email", now=now)  # billing: action voicemail
    task = queued(db_session, channel="task", now=now)
    before = {i.id: fetch(db_session, i.id).priority for i in (chat, email, task)}
    router.run_once(app, now)
    report = router.run_once(app, now + timedelta(seconds=901))
    assert report.overflowed == 4
    told = {p["interaction_id"]: (p["action"], p["channel"]) for n, p in events if n == "routing.overflow"}
    assert told == {call.id: ("callback", "voice"), chat.id: ("message", "chat"), email.id: ("case", "email"),
                    task.id: ("case", "task")}
    assert fetch(db_session, call.id).state == "callback_pending"
    for waiting in (chat, email, task):
        row = fetch(db_session, waiting.id)
        assert row.state == "queued"
        assert row.priority == before[waiting.id] + 200
        assert [r["code"] for r in row.priority_reasons][-1] == "overflow"
        assert db_session.get(QueueEntry, waiting.id).overflowed_at == now + timedelta(seconds=901)
    engine = router.router_for(app).engine
    assert engine.contacts[chat.id].priority == before[chat.id] + 200  # the router re-read it
    assert router.run_once(app, now + timedelta(seconds=5000)).overflowed == 0  # only once per queue
    assert sum(1 for n, _ in events if n == "routing.overflow") == 4
    for gone in (call, chat, task):
        transition(db_session, fetch(db_session, gone.id), "abandoned", actor="test")
    db_session.commit()
    staff = agent(db_session, skills={"billing": 5})
    router.run_once(app, now + timedelta(seconds=5001))
    assert [(o.interaction_id, o.agent_id) for o in pending(db_session)] == [(email.id, staff.id)]
    assert pending(db_session)[0].priority_reasons[-2]["code"] == "overflow"


def test_an_overflowed_contact_moved_on_starts_without_the_overflow(app, db_session, events):
    now = utcnow()
    chat = queued(db_session, channel="chat", now=now)
    email = queued(db_session, channel="email", now=now)
    base = fetch(db_session, chat.id).priority
    router.run_once(app, now)
    router.run_once(app, now + timedelta(seconds=901))
    assert fetch(db_session, chat.id).priority == base + 200
    service.transfer_to_queue(db_session, fetch(db_session, chat.id), "billing", actor="supervisor:1", now=now)
    service.enqueue_contact(db_session, fetch(db_session, email.id), "general", actor="test", now=now)
    db_session.commit()
    for moved in (chat, email):
        row = fetch(db_session, moved.id)
        assert row.priority == base and "overflow" not in [r["code"] for r in row.priority_reasons]
        assert db_session.get(QueueEntry, moved.id).overflowed_at is None


def test_an_action_that_does_not_fit_is_replaced_by_the_channel_default(app, db_session, events):
    call = queued(db_session)
    chat = queued(db_session, channel="chat")
    service.record_overflow(db_session, fetch(db_session, call.id), "case")
    service.record_overflow(db_session, fetch(db_session, chat.id), "voicemail")
    db_session.commit()
    told = {p["interaction_id"]: p["action"] for n, p in events if n == "routing.overflow"}
    assert told == {call.id: "voicemail", chat.id: "message"}
    assert fetch(db_session, call.id).state == "voicemail" and fetch(db_session, chat.id).state == "queued"


# ------------------------------------------------------------------ 3. killed mid-load, started again
class Killed(BaseException):
    """The router process dies (not an error anything in the router catches)."""


def where_everyone_is(session) -> dict[int, tuple]:
    session.expire_all()
    rows = session.execute(select(Interaction.id, Interaction.state, Interaction.agent_id,
                                  Interaction.routing_age_origin, Interaction.queue)).all()
    return {ident: (state, agent_id, origin, queue) for ident, state, agent_id, origin, queue in rows}


def assert_consistent(app, session, agents, arrived):
    """Issue 4's invariants across the database and the (rebuilt) engine."""
    everyone = where_everyone_is(session)
    assert sorted(everyone) == sorted(arrived), "a contact was lost or made up"
    offers = pending(session)
    per_contact = [o.interaction_id for o in offers]
    assert len(per_contact) == len(set(per_contact)), "two live offers for one contact"
    offered = {ident: row[1] for ident, row in everyone.items() if row[0] == "offered"}
    assert {o.interaction_id: o.agent_id for o in offers} == offered
    engine = router.router_for(app).engine
    capacity = app.extensions["desk.config"].routing.agent_group("default").capacity
    for staff in agents:
        load = service.agent_load(session, staff.id)
        assert load <= capacity, f"agent {staff.id} beyond capacity"
        assert engine.agents[staff.id].load == load
    seen = {"queued": "waiting", "callback_pending": "waiting", "offered": "offered", "connected": "connected"}
    for ident, (state, agent_id, origin, _queue) in everyone.items():
        held = engine.contacts.get(ident)
        if state in seen:
            assert held is not None and held.state == seen[state], (ident, state, held)
            assert held.routing_age_origin == origin.timestamp()  # its place survives
            if state in ("offered", "connected"):
                assert engine.offers.get(ident) is None or engine.offers[ident].agent_id == agent_id
        else:
            assert held is None
    waiting = [c.id for c in engine.waiting()]
    assert len(waiting) == len(set(waiting)) and not set(waiting) & set(engine.offers)
    for queue in ("general", "billing"):
        for channel in ("voice", "chat", "email", "task"):
            line = [c.routing_age_origin for c in engine.waiting(queue) if c.channel == channel]
            assert line == sorted(line), f"{queue}/{channel} out of FIFO order"


def test_killing_the_router_mid_load_and_starting_again_leaves_every_contact_where_it_was(
        app, db_session, events, monkeypatch):
    start = utcnow()
    agents = [agent(db_session, skills={"general": 5, "billing": 5}) for _ in range(6)]
    channels = ("voice", "chat", "email", "task")
    arrived = []
    for n in range(48):
        channel = channels[n % 4]
        queue = "billing" if n % 3 == 0 and channel != "task" else "general"
        arrived.append(queued(db_session, queue=queue, channel=channel, now=start + timedelta(seconds=n)).id)
    now = start + timedelta(seconds=60)

    # Killed in the middle of writing its offers: the ones committed stay, the rest were never made.
    real_create, written = service.create_offer, []

    def dying_create(*args, **kwargs):
        if len(written) == 4:
            raise Killed()
        made = real_create(*args, **kwargs)
        written.append(made)
        return made

    monkeypatch.setattr(service, "create_offer", dying_create)
    router.reset(app)
    with pytest.raises(Killed):
        router.router_for(app).cycle(now)
    monkeypatch.setattr(service, "create_offer", real_create)
    db_session.rollback()
    assert len(pending(db_session)) == 4

    # Agents answer while no router runs: two accept, one declines.
    first = pending(db_session)
    for offer in first[:2]:
        service.accept_offer(db_session, offer.id, offer.agent_id, now=now)
    service.reject_offer(db_session, first[2].id, first[2].agent_id, now=now)
    db_session.commit()
    declined = first[2].interaction_id
    before = where_everyone_is(db_session)

    router.reset(app)  # a new router starts and rebuilds from the database
    router.run_once(app, now + timedelta(seconds=1))
    after = where_everyone_is(db_session)
    for ident, was in before.items():
        if after[ident] != was:  # only contacts that waited may have moved on: offered now
            assert was[0] == "queued" and after[ident][0] == "offered" and after[ident][2:] == was[2:]
    assert after[declined][2] == before[declined][2] == start + timedelta(seconds=arrived.index(declined))
    assert_consistent(app, db_session, agents, arrived)

    # Work the load to the end, killing the router twice more on the way.
    at = now + timedelta(seconds=1)
    for round_no in range(40):
        if round_no in (2, 5):
            router.reset(app)
        router.run_once(app, at)
        assert_consistent(app, db_session, agents, arrived)
        for offer in pending(db_session):
            service.accept_offer(db_session, offer.id, offer.agent_id, now=at)
        db_session.commit()
        for interaction in db_session.scalars(select(Interaction).where(Interaction.state == "connected")):
            transition(db_session, interaction, "wrap_up", actor="test", at=at)
            service.release_agent(db_session, interaction, now=at)
            transition(db_session, interaction, "closed", actor="test", at=at)
        db_session.commit()
        at += timedelta(seconds=31)
        if all(state == "closed" for state, *_ in where_everyone_is(db_session).values()):
            break
    assert all(state == "closed" for state, *_ in where_everyone_is(db_session).values())

    # FIFO by first arrival within each channel: first offers were made in arrival order.
    first_offer: dict[int, int] = {}
    for offer in db_session.scalars(select(Offer).order_by(Offer.id)):
        first_offer.setdefault(offer.interaction_id, offer.id)
    for channel in channels:
        mine = [i for i in sorted(first_offer, key=first_offer.get) if channels[arrived.index(i) % 4] == channel]
        assert mine == sorted(mine, key=arrived.index), f"{channel} not offered in arrival order"
    created = [p["interaction_id"] for n, p in events if n == "offer.created"]
    assert sorted(set(created)) == sorted(arrived)  # every contact was offered; none twice at once


def test_a_live_router_repairs_at_its_own_pace_and_the_timers_every_sweep(app, db_session):
    """The repairs (stranded contacts) run every ``repair_every_s``; a lease that runs out is taken back on
    the next sweep whatever the repair pace."""
    now = utcnow()
    agent(db_session)
    first = queued(db_session, now=now - timedelta(seconds=40))
    db_session.commit()
    router.run_once(app, now)
    [offer] = pending(db_session)
    live = router.router_for(app)
    live.repair_every_s = 60.0
    live._next_repair = now.timestamp() + 60.0  # the last repair has just run
    db_session.execute(update(Offer).where(Offer.id == offer.id).values(status="expired"))  # stranded
    db_session.commit()
    with app.app_context():
        live.cycle(now + timedelta(seconds=1))
    reasons = select(InteractionEvent.reason).where(InteractionEvent.interaction_id == first.id,
                                                    InteractionEvent.kind == "transition")
    assert "offer lost" not in db_session.scalars(reasons).all()  # not repaired yet
    with app.app_context():
        live.cycle(now + timedelta(seconds=61))
    assert "offer lost" in db_session.scalars(reasons).all()  # swept back (and offered again)


def test_a_caller_queued_when_a_sweep_is_due_is_offered_before_the_sweep_runs(app, db_session, monkeypatch):
    """The sweeper's housekeeping comes after the cycle's offers: nobody waits for it."""
    now = utcnow()
    agent(db_session)
    router.run_once(app, now)
    caller = queued(db_session, now=now)
    db_session.commit()
    order = []
    real_create, real_sweep = service.create_offer, service.end_due_wrap_ups
    monkeypatch.setattr(service, "create_offer", lambda *a, **k: order.append("offer") or real_create(*a, **k))
    monkeypatch.setattr(service, "end_due_wrap_ups", lambda *a, **k: order.append("sweep") or real_sweep(*a, **k))
    live = router.router_for(app)
    live.sweep_every_s, live._next_sweep = 0.25, 0.0  # a sweep is due
    with app.app_context():
        report = live.cycle(now + timedelta(seconds=1))
    assert order == ["offer", "sweep"] and len(report.offers) == 1
    assert [o.interaction_id for o in pending(db_session)] == [caller.id]
