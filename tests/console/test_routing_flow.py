"""The console against the real routing service and router: presence, offers the router makes, accept,
reject, wrap-up, transfer, disconnect — over the real python-socketio client."""
from __future__ import annotations

import time

import pytest
from sqlalchemy import select

from app.channels.telephony import RecordingTelephony
from app.interactions.models import Interaction, InteractionEvent
from app.reports.models import AgentPresenceLog
from queues import service
from queues.models import AgentState, Offer
from tests.factories import make_customer, make_interaction, make_order, make_staff


@pytest.fixture(autouse=True)
def telephony(app, monkeypatch):
    """Accepting a call bridges it through the telephony twin, never the real Twilio API."""
    twin = RecordingTelephony()
    monkeypatch.setitem(app.extensions, "desk.telephony", twin)
    return twin


def queued(session, *, customer=None, queue="general", channel="voice"):
    interaction = make_interaction(session, channel=channel, customer=customer)
    service.enqueue_contact(session, interaction, queue, actor="test")
    session.commit()
    return interaction


def available(client) -> None:
    assert client.call("presence", {"presence": "available"}) == {"ok": True}
    assert client.next("presence")["presence"] == "available"


def fresh(session, model, key):
    session.expire_all()
    return session.get(model, key)


def test_presence_goes_through_routing(db_session, agent_client):
    agent = make_staff(db_session)
    db_session.commit()
    client = agent_client(agent)
    assert client.next("snapshot")["presence"]["presence"] == "offline"

    available(client)
    assert fresh(db_session, AgentState, agent.id).presence == "available"
    assert client.call("presence", {"presence": "break", "reason": "lunch"}) == {"ok": True}
    shown = client.next("presence")
    assert (shown["presence"], shown["reason"]) == ("break", "lunch")
    assert client.call("sync")["snapshot"]["presence"]["reason"] == "lunch"


def test_the_router_offers_a_queued_call_and_the_agent_accepts(db_session, agent_client, routed):
    agent = make_staff(db_session, skills={"vip": 8})
    customer = make_customer(db_session, name="Wang Fang", tier="vip", phone="+8613800138000")
    make_order(db_session, customer, number="ORD-8842", shipment_status="in_transit")
    db_session.commit()
    client = agent_client(agent)
    client.next("snapshot")
    available(client)

    call = queued(db_session, customer=customer, queue="vip")
    routed()
    offer = client.next("offer")
    row = db_session.scalar(select(Offer).where(Offer.interaction_id == call.id))
    assert (offer["offer_id"], offer["agent_id"], offer["queue"]) == (row.id, agent.id, "vip")
    assert offer["screenpop"]["customer"]["customer"]["name"] == "Wang Fang"
    assert offer["screenpop"]["customer"]["orders"][0]["number"] == "ORD-8842"
    assert [r["code"] for r in offer["priority_reasons"]] == ["tier"]
    from app.audit.models import AuditEntry
    viewed = db_session.scalars(select(AuditEntry).where(AuditEntry.action == "crm.customer_viewed",
                                                         AuditEntry.target_id == str(customer.id))).all()
    assert [(v.actor, v.data) for v in viewed] == [(f"staff:{agent.id}", {"via": "screenpop"})]  # once, with the offer
    assert client.call("sync")["snapshot"]["offers"][0]["offer_id"] == row.id  # a reload shows it too

    assert client.call("accept", {"offer_id": row.id}) == {"ok": True}
    work = client.next("work")  # the contact's tab opens, then the offer card goes
    assert client.next("offer_gone") == {"offer_id": row.id, "interaction_id": call.id, "reason": "accepted"}
    assert (work["interaction_id"], work["state"], work["customer_name"]) == (call.id, "connected", "Wang Fang")
    assert work["screenpop"] is None  # the offer brought it; the 360 is not built twice
    assert client.call("sync")["snapshot"]["work"][0]["screenpop"]["customer"]["customer"]["name"] == "Wang Fang"
    assert client.call("accept", {"offer_id": row.id})["error"] == "offer_gone"  # a double click
    assert fresh(db_session, Interaction, call.id).state == "connected"


def test_reject_puts_the_contact_back_and_backs_the_agent_off(db_session, agent_client, routed):
    agent = make_staff(db_session)
    db_session.commit()
    client = agent_client(agent)
    client.next("snapshot")
    available(client)
    call = queued(db_session)
    routed()
    offer = client.next("offer")

    assert client.call("reject", {"offer_id": offer["offer_id"]}) == {"ok": True}
    assert client.next("offer_gone")["reason"] == "rejected"
    assert fresh(db_session, Interaction, call.id).state == "queued"
    state = fresh(db_session, AgentState, agent.id)
    assert state.missed_offers == 1 and state.backoff_until is not None
    assert client.call("reject", {"offer_id": offer["offer_id"]})["error"] == "offer_gone"


def test_ending_starts_wrap_up_and_completing_it_makes_the_agent_available(db_session, agent_client, routed):
    agent = make_staff(db_session)
    db_session.commit()
    client = agent_client(agent)
    client.next("snapshot")
    available(client)
    call = queued(db_session)
    routed()
    client.call("accept", {"offer_id": client.next("offer")["offer_id"]})

    assert client.call("end", {"interaction_id": call.id}) == {"ok": True}
    wrap = client.next("presence")
    assert wrap["presence"] == "wrap_up" and wrap["wrap_up_until"]
    assert client.call("end", {"interaction_id": call.id}) == {"ok": True}  # idempotent, timer not restarted
    assert fresh(db_session, AgentState, agent.id).wrap_up_until.isoformat() == wrap["wrap_up_until"]

    ack = client.call("wrap_up", {"interaction_id": call.id, "disposition": "resolved", "notes": "done"})
    assert ack == {"ok": True}
    assert client.next("presence")["presence"] == "available"
    assert fresh(db_session, Interaction, call.id).state == "closed"


def test_wrap_up_straight_from_a_call_releases_and_frees_the_agent(db_session, agent_client, routed):
    agent = make_staff(db_session)
    db_session.commit()
    client = agent_client(agent)
    client.next("snapshot")
    available(client)
    call = queued(db_session)
    routed()
    client.call("accept", {"offer_id": client.next("offer")["offer_id"]})

    assert client.call("wrap_up", {"interaction_id": call.id, "disposition": "resolved"}) == {"ok": True}
    assert fresh(db_session, AgentState, agent.id).presence == "available"
    assert fresh(db_session, Interaction, call.id).state == "closed"
    # closed as it ended: the call still passed through wrap-up (its handle time says so), the agent never did
    moves = db_session.scalars(select(InteractionEvent.to_state).where(
        InteractionEvent.interaction_id == call.id, InteractionEvent.kind == "transition")).all()
    assert moves[-3:] == ["connected", "wrap_up", "closed"]
    presences = db_session.scalars(select(AgentPresenceLog.presence).where(AgentPresenceLog.agent_id == agent.id)).all()
    assert "wrap_up" not in presences and fresh(db_session, Interaction, call.id).disposition == "resolved"


def test_completing_one_of_two_wrap_ups_keeps_the_timer(db_session, agent_client, routed):
    agent = make_staff(db_session)
    db_session.commit()
    client = agent_client(agent)
    client.next("snapshot")
    available(client)
    chats = [queued(db_session, channel="email") for _ in range(2)]
    routed()
    for _ in chats:
        assert client.call("accept", {"offer_id": client.next("offer")["offer_id"]}) == {"ok": True}
    for chat in chats:
        assert client.call("end", {"interaction_id": chat.id}) == {"ok": True}

    client.call("wrap_up", {"interaction_id": chats[0].id, "disposition": "resolved"})
    assert fresh(db_session, AgentState, agent.id).presence == "wrap_up"
    client.call("wrap_up", {"interaction_id": chats[1].id, "disposition": "resolved"})
    assert fresh(db_session, AgentState, agent.id).presence == "available"


@pytest.mark.parametrize("target, error", [({"queue": "nowhere"}, "unknown_queue"),
                                           ({"agent_id": 999999}, "unknown_agent")])
def test_transfer_refusals_have_their_own_codes(db_session, agent_client, routed, target, error):
    agent = make_staff(db_session)
    db_session.commit()
    client = agent_client(agent)
    client.next("snapshot")
    available(client)
    call = queued(db_session)
    routed()
    client.call("accept", {"offer_id": client.next("offer")["offer_id"]})

    assert client.call("transfer", {"interaction_id": call.id, "note": "x", **target})["error"] == error
    assert fresh(db_session, Interaction, call.id).state == "connected"


def test_transfer_to_a_queue_hands_the_contact_on(db_session, agent_client, routed):
    agent = make_staff(db_session, skills={"general": 5, "billing": 5})
    db_session.commit()
    client = agent_client(agent)
    client.next("snapshot")
    available(client)
    call = queued(db_session)
    routed()
    client.call("accept", {"offer_id": client.next("offer")["offer_id"]})
    client.call("presence", {"presence": "break", "reason": "lunch"})

    ack = client.call("transfer", {"interaction_id": call.id, "queue": "billing", "note": "refund question"})
    assert ack == {"ok": True}
    assert client.next("work_closed") == {"interaction_id": call.id, "reason": "transferred"}
    moved = fresh(db_session, Interaction, call.id)
    assert (moved.state, moved.queue, moved.agent_id) == ("queued", "billing", None)


def test_a_console_that_goes_away_returns_its_offer(db_session, agent_client, routed):
    agent = make_staff(db_session)
    db_session.commit()
    client = agent_client(agent)
    client.next("snapshot")
    available(client)
    call = queued(db_session)
    routed()
    offer = client.next("offer")

    client.close()  # the grace period is 0 under the socket_server fixture
    for _ in range(100):
        state = fresh(db_session, AgentState, agent.id)
        if state.presence == "offline":
            break
        time.sleep(0.05)
    assert state.presence == "offline"
    assert fresh(db_session, Offer, offer["offer_id"]).cause == "disconnect"
    assert fresh(db_session, Interaction, call.id).state == "queued"


def test_the_offer_event_uses_the_screenpop_built_while_the_offer_was_written(db_session, agent_client, routed,
                                                                             monkeypatch):
    from agent_console import payloads

    def slow_path(*args, **kwargs):
        raise AssertionError("the screen-pop was built again after the commit")

    monkeypatch.setattr(payloads, "offer_event", slow_path)
    agent = make_staff(db_session)
    customer = make_customer(db_session, name="Li Lei")
    db_session.commit()
    client = agent_client(agent)
    client.next("snapshot")
    available(client)
    call = queued(db_session, customer=customer)
    routed()
    offer = client.next("offer")
    assert offer["interaction_id"] == call.id and offer["screenpop"]["customer"]["customer"]["name"] == "Li Lei"
    assert offer["screenpop"]["interaction"]["state"] == "offered"
