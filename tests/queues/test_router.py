"""The router (queues.router) against the database: it matches, writes offers before announcing them,
sweeps leases and wrap-ups, and loses nothing when killed and restarted."""
from __future__ import annotations

import json
from datetime import timedelta


from app import realtime
from app.db import utcnow
from app.interactions.service import transition
from queues import router, service
from queues.models import AgentState
from tests.factories import make_customer
from tests.queues.helpers import agent, pending, queued


def settle(app, now=None):
    return router.run_once(app, now)


def test_a_waiting_contact_is_offered_to_the_longest_idle_eligible_agent(app, db_session, events):
    now = utcnow()
    first = agent(db_session)
    second = agent(db_session)
    db_session.get(AgentState, second.id).idle_since = now - timedelta(minutes=5)
    agent(db_session, skills={"billing": 5})  # not eligible for general
    db_session.commit()
    interaction = queued(db_session)
    report = settle(app, now)
    offers = pending(db_session)
    assert [o.agent_id for o in offers] == [second.id] and report.offers == [offers[0].id]
    db_session.refresh(interaction)
    assert interaction.state == "offered" and interaction.agent_id == second.id
    created = [p for n, p in events if n == "offer.created"]
    assert created[0]["interaction_id"] == interaction.id and created[0]["agent_id"] == second.id
    assert offers[0].trace["queue"] == "general" and first.id != second.id


def test_fifo_at_equal_priority_and_priority_first(app, db_session, events):
    now = utcnow()
    old = queued(db_session, now=now - timedelta(seconds=30))
    old.routing_age_origin = now - timedelta(seconds=30)
    new = queued(db_session, now=now)
    db_session.commit()
    staff = agent(db_session)
    settle(app, now)
    assert [o.interaction_id for o in pending(db_session)] == [old.id]
    vip = queued(db_session, customer=make_customer(db_session, tier="vip"), now=now)
    offer = pending(db_session)[0]
    service.reject_offer(db_session, offer.id, staff.id)  # the agent declines: old keeps its place
    db_session.commit()
    other = agent(db_session)
    settle(app, now + timedelta(seconds=1))
    offered = {o.interaction_id: o.agent_id for o in pending(db_session)}
    assert offered == {vip.id: other.id}  # the VIP first; the rejecting agent is backed off
    settle(app, now + timedelta(seconds=6))
    offered = {o.interaction_id: o.agent_id for o in pending(db_session)}
    assert offered == {vip.id: other.id, old.id: staff.id}  # back-off over: old before new
    assert new.id not in offered


def test_capacity_as_a_cost_budget_four_chats_or_one_call(app, db_session):
    staff = agent(db_session)
    call = queued(db_session)
    chats = [queued(db_session, channel="chat") for _ in range(5)]
    settle(app)
    offers = pending(db_session, agent_id=staff.id)
    assert len(offers) == 1 and offers[0].interaction_id == call.id  # the oldest first: the call (cost 100)
    now = utcnow()
    service.reject_offer(db_session, offers[0].id, staff.id, now=now)
    db_session.commit()
    transition(db_session, db_session.get(type(call), call.id), "abandoned", actor="t")
    db_session.commit()
    settle(app, now + timedelta(seconds=5))  # the back-off for a reject is over
    offers = pending(db_session, agent_id=staff.id)
    assert sorted(o.interaction_id for o in offers) == sorted(c.id for c in chats[:4])
    assert service.agent_load(db_session, staff.id) == 100


def test_missed_offers_send_the_agent_on_break_and_the_contact_waits_on(app, db_session, events):
    now = utcnow()
    staff = agent(db_session)
    interaction = queued(db_session, now=now)
    for attempt in range(3):
        at = now + timedelta(seconds=attempt * 60)
        settle(app, at)
        assert [o.agent_id for o in pending(db_session)] == [staff.id]
        settle(app, at + timedelta(seconds=15))  # the lease runs out unanswered
    state = db_session.get(AgentState, staff.id)
    assert (state.presence, state.reason) == ("break", "missed_offers")
    db_session.refresh(interaction)
    assert interaction.state == "queued" and not pending(db_session)
    assert [p["reason"] for n, p in events if n == "agent.presence"][-1] == "missed_offers"


def test_abandon_rescinds_and_the_agent_gets_the_next_contact(app, db_session, events):
    staff = agent(db_session)
    first = queued(db_session)
    second = queued(db_session)
    settle(app)
    offer = pending(db_session)[0]
    assert offer.interaction_id == first.id
    first = db_session.get(type(first), first.id)
    service.rescind_offers_for_abandoned(db_session, first)
    transition(db_session, first, "abandoned", actor="ivr")
    db_session.commit()
    assert any(n == "offer.rescinded" and p["offer_id"] == offer.id for n, p in events)
    settle(app)
    assert [(o.interaction_id, o.agent_id) for o in pending(db_session)] == [(second.id, staff.id)]


def test_accept_connects_and_wrap_up_returns_the_agent_after_its_timer(app, db_session):
    now = utcnow()
    staff = agent(db_session)
    first, second = queued(db_session, now=now), queued(db_session, now=now)
    settle(app, now)
    offer = pending(db_session)[0]
    service.accept_offer(db_session, offer.id, staff.id, now=now)
    db_session.commit()
    settle(app, now)
    assert not pending(db_session)  # a call uses the whole budget
    interaction = db_session.get(type(first), first.id)
    transition(db_session, interaction, "wrap_up", actor=f"agent:{staff.id}", at=now + timedelta(seconds=60))
    service.release_agent(db_session, interaction, now=now + timedelta(seconds=60))
    db_session.commit()
    settle(app, now + timedelta(seconds=61))
    assert not pending(db_session)  # wrapping up
    settle(app, now + timedelta(seconds=91))
    assert [o.interaction_id for o in pending(db_session)] == [second.id]
    assert db_session.get(AgentState, staff.id).presence == "available"


def test_killing_the_router_and_starting_again_loses_nothing(app, db_session):
    now = utcnow()
    staff, other = agent(db_session), agent(db_session, skills={"billing": 5})
    calls = [queued(db_session, now=now) for _ in range(2)]
    email = queued(db_session, queue="billing", channel="email", now=now)
    settle(app, now)
    before = {o.interaction_id: o.agent_id for o in pending(db_session)}
    assert before == {calls[0].id: staff.id, email.id: other.id}
    service.accept_offer(db_session, pending(db_session, agent_id=other.id)[0].id, other.id, now=now)
    db_session.commit()
    router.reset(app)  # the process dies; a new one rebuilds from the database
    settle(app, now + timedelta(seconds=1))
    assert {o.interaction_id: o.agent_id for o in pending(db_session)} == {calls[0].id: staff.id}
    engine = router.router_for(app).engine
    assert engine.contacts[calls[1].id].state == "waiting"
    assert engine.contacts[email.id].state == "connected" and engine.agents[other.id].load == 10
    assert engine.contacts[calls[0].id].state == "offered" and engine.agents[staff.id].load == 100
    settle(app, now + timedelta(seconds=15))  # the restored lease still runs out on time
    assert {o.interaction_id: o.agent_id for o in pending(db_session)} == {}
    settle(app, now + timedelta(seconds=46))  # back-off for no answer (30 s) over
    assert {o.interaction_id for o in pending(db_session)} == {calls[0].id}


def test_a_transfer_to_an_agent_is_held_for_them(app, db_session):
    now = utcnow()
    staff, target = agent(db_session), agent(db_session, skills={"billing": 1})
    db_session.get(AgentState, staff.id).idle_since = now - timedelta(minutes=5)
    db_session.commit()
    interaction = queued(db_session, now=now, channel="chat")
    settle(app, now)
    offer = pending(db_session)[0]
    service.accept_offer(db_session, offer.id, staff.id, now=now)
    db_session.commit()
    interaction = db_session.get(type(interaction), interaction.id)
    service.transfer_to_agent(db_session, interaction, target.id, actor=f"agent:{staff.id}", note="yours", now=now)
    db_session.commit()
    settle(app, now + timedelta(seconds=1))
    assert [(o.interaction_id, o.agent_id) for o in pending(db_session)] == [(interaction.id, target.id)]


def test_a_waiting_contact_moved_to_another_queue_is_routed_there(app, db_session):
    billing = agent(db_session, skills={"billing": 5})
    interaction = queued(db_session)
    settle(app)
    assert not pending(db_session)
    service.transfer_to_queue(db_session, db_session.get(type(interaction), interaction.id), "billing",
                              actor="supervisor:1")
    db_session.commit()
    settle(app)
    assert [(o.interaction_id, o.agent_id) for o in pending(db_session)] == [(interaction.id, billing.id)]


def test_overflow_sends_a_queued_call_to_its_action_once(app, db_session, events):
    now = utcnow()
    call = queued(db_session, queue="billing", now=now)
    email = queued(db_session, queue="billing", channel="email", now=now)
    settle(app, now)
    report = settle(app, now + timedelta(seconds=901))
    assert report.overflowed == 2
    db_session.expire_all()
    assert db_session.get(type(call), call.id).state == "voicemail"
    assert db_session.get(type(email), email.id).state == "queued"
    assert settle(app, now + timedelta(seconds=2000)).overflowed == 0
    staff = agent(db_session, skills={"billing": 5})
    settle(app, now + timedelta(seconds=2001))
    assert [(o.interaction_id, o.agent_id) for o in pending(db_session)] == [(email.id, staff.id)]


def test_a_callback_is_routed_with_callback_priority(app, db_session):
    interaction = queued(db_session)
    transition(db_session, interaction, "callback_pending", actor="ivr")
    db_session.commit()
    staff = agent(db_session)
    settle(app)
    db_session.expire_all()
    interaction = db_session.get(type(interaction), interaction.id)
    assert service.has_callback_reason(interaction)
    offer = pending(db_session)[0]
    assert offer.agent_id == staff.id and offer.from_state == "callback_pending"


def test_the_router_publishes_figures_for_wait_announcements(app, db_session, redis_client):
    agent(db_session)
    queued(db_session)
    queued(db_session)
    settle(app)
    stats = json.loads(redis_client.get(service.STATS_KEY.format(queue="general", channel="voice")))
    assert stats["staffed"] == 1 and stats["free"] == 0 and stats["announceable"] is False


def test_hints_from_realtime_events(app):
    router.reset(app)
    router.on_event("interaction.state", {"id": 7, "agent_id": 3, "from": "connected", "to": "wrap_up"})
    router.on_event("offer.rejected", {"interaction_id": 8, "agent_id": 4})
    router.on_event("chat.message", {"interaction_id": 9})
    router.on_event("interaction.state", {"id": 10, "from": "new", "to": "ivr"})  # the engine never held it
    router.on_event("interaction.state", {"id": 11, "agent_id": 5, "from": "wrap_up", "to": "closed"})
    router.on_event("interaction.state", {"id": 12, "from": "ivr", "to": "queued"})
    router.on_event("offer.created", {"interaction_id": 13, "agent_id": 6})  # the router's own decision
    router.on_event("interaction.state", {"id": 13, "agent_id": 6, "from": "queued", "to": "offered"})
    assert router._hub.drain() == ({7, 8, 12}, {3, 4})


def test_a_hub_nobody_drains_stays_bounded_and_the_router_then_reads_everything(app, db_session, monkeypatch):
    router.reset(app)
    live = router.router_for(app)
    with app.app_context():
        live.cycle()  # built: later cycles read only what hints name
    full = []
    monkeypatch.setattr(live, "sync_all", lambda session, ts: full.append(ts))
    with app.app_context():
        live.cycle()
    assert full == []
    monkeypatch.setattr(router, "HUB_LIMIT", 5)
    for n in range(3):
        router.on_event("offer.rejected", {"interaction_id": 100 + n, "agent_id": 200 + n})
    assert (router._hub.interactions, router._hub.agents) == (set(), set())  # forgotten, not grown
    with app.app_context():
        live.cycle()
        live.cycle()
    assert len(full) == 1  # the next cycle read everything, once


def test_one_router_leads_and_a_standby_takes_over_when_the_lock_lapses(redis_client):
    assert router._lead(redis_client, "first", 10_000) is True
    assert router._lead(redis_client, "second", 10_000) is False
    assert router._lead(redis_client, "first", 10_000) is True  # renewed
    redis_client.delete(router.LOCK_KEY)  # the leader died and its lock ran out
    assert router._lead(redis_client, "second", 10_000) is True


def test_the_router_thread_offers_waiting_contacts_on_its_own(app, db_session, events):
    import threading
    import time

    staff = agent(db_session)
    interaction = queued(db_session)
    stop = threading.Event()
    worker = threading.Thread(target=router.serve, args=(app, stop), daemon=True)
    worker.start()
    try:
        deadline = time.monotonic() + 20
        while not pending(db_session) and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        stop.set()
        router._hub.wake.set()
        worker.join(timeout=10)
    assert [(o.interaction_id, o.agent_id) for o in pending(db_session)] == [(interaction.id, staff.id)]
    assert not worker.is_alive() and redis_client_free(app)


def test_a_leader_whose_lock_was_taken_stands_by_within_a_second(app, db_session, events):
    import threading
    import time

    redis = app.extensions["desk.redis"]
    stop = threading.Event()
    worker = threading.Thread(target=router.serve, args=(app, stop), daemon=True)
    worker.start()
    try:
        deadline = time.monotonic() + 10
        while redis.get(router.LOCK_KEY) is None and time.monotonic() < deadline:
            time.sleep(0.02)
        redis.set(router.LOCK_KEY, "another-router")  # the lock lapsed while this one was paused
        time.sleep(router.RENEW_S + 1.5)  # a tick past the renewal check: this router must have stood by
        staff = agent(db_session)
        interaction = queued(db_session)
        router._hub.add(interaction.id, staff.id)
        time.sleep(1.0)
        assert pending(db_session) == []  # only the lock holder routes
        assert redis.get(router.LOCK_KEY) == "another-router"
    finally:
        stop.set()
        router._hub.wake.set()
        worker.join(timeout=10)
    assert not worker.is_alive()


def redis_client_free(app):
    return app.extensions["desk.redis"].get(router.LOCK_KEY) is None


def test_explain_says_why_a_contact_waits(app, db_session, events):
    agent(db_session, skills={"billing": 5})
    agent(db_session, presence="break")
    interaction = queued(db_session)
    settle(app)
    explained = router.router_for(app).explain(interaction.id)
    assert explained["state"] == "waiting" and explained["eligible"] == []
    assert set(explained["excluded"]) == {"skill", "state:break"}
    assert router.router_for(app).explain(999_999) is None


def test_an_offer_the_database_refuses_is_dropped_and_both_sides_re_read(app, db_session, events):
    from sqlalchemy import update

    staff = agent(db_session)
    settle(app)
    db_session.execute(update(AgentState).where(AgentState.agent_id == staff.id).values(presence="break"))
    db_session.commit()  # changed behind the router's back: no event, no hint
    interaction = queued(db_session)
    report = settle(app)
    assert report.dropped == 1 and not pending(db_session)
    assert router.router_for(app).engine.agents[staff.id].presence == "break"
    db_session.refresh(interaction)
    assert interaction.state == "queued"


def test_a_deactivated_agent_leaves_the_engine(app, db_session, events):
    staff = agent(db_session)
    settle(app)
    staff.active = False
    db_session.commit()
    router._hub.add(agent_id=staff.id)
    settle(app)
    assert staff.id not in router.router_for(app).engine.agents


def test_hints_travel_between_processes_over_redis(app, redis_client):
    import threading
    import time

    published = []

    class Recorder:
        def publish(self, channel, message):
            published.append((channel, json.loads(message)))

    router.reset(app)
    router._forward["redis"] = Recorder()
    try:
        realtime.publish_all([("interaction.state", {"id": 41, "agent_id": 5, "from": "offered", "to": "connected"}),
                              ("offer.accepted", {"interaction_id": 41, "agent_id": 5}),
                              ("agent.presence", {"agent_id": 5}), ("chat.message", {"interaction_id": 9})])
        realtime.publish_all([("chat.message", {"interaction_id": 9})])  # nothing for routing: no message
    finally:
        router._forward.pop("redis", None)
    assert published == [(router.hint_channel(), {"h": [[41, 5], [None, 5]]})]  # one commit, one message
    router._hub.drain()
    stop = threading.Event()
    listener = threading.Thread(target=router._listen_for_hints, args=(redis_client, stop), daemon=True)
    listener.start()
    try:
        deadline = time.monotonic() + 10
        while not redis_client.pubsub_numsub(router.hint_channel())[0][1] and time.monotonic() < deadline:
            time.sleep(0.02)
        redis_client.publish(router.hint_channel(), json.dumps({"h": [[42, 6], [None, 7]]}))  # another process
        while not router._hub.agents >= {6, 7} and time.monotonic() < deadline:
            time.sleep(0.02)
        assert router._hub.drain() == ({42}, {6, 7})
        redis_client.publish(router.hint_channel(), json.dumps({"i": 43, "a": None}))  # a one-hint message
        while not router._hub.interactions and time.monotonic() < deadline:
            time.sleep(0.02)
        assert router._hub.drain() == ({43}, set())
    finally:
        stop.set()
        listener.join(timeout=5)


def test_offer_hooks_hear_of_an_offer_before_it_is_written(app, db_session, monkeypatch):
    heard = []

    def hook(interaction_id, agent_id, priority, reasons):
        heard.append((interaction_id, agent_id, priority, reasons, pending(db_session)))

    def broken(*args):
        raise RuntimeError("a preparation failed")

    monkeypatch.setattr(router, "_decision_hooks", [broken, hook])
    staff = agent(db_session)
    interaction = queued(db_session)
    report = settle(app)
    assert [(i, a, rows) for i, a, _p, _r, rows in heard] == [(interaction.id, staff.id, [])]  # nothing written yet
    assert heard[0][2] == pending(db_session)[0].priority and report.offers  # the offer went ahead regardless
    router.on_offer_decided(hook)
    assert router._decision_hooks == [broken, hook]
