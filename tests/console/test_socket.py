"""The /agent namespace with the real python-socketio client against a real server in a thread."""
from __future__ import annotations

import queue
from datetime import timedelta

import pytest
import socketio

from app import realtime
from app.db import utcnow
from app.interactions.models import Interaction
from app.interactions.service import transition
from tests.console.conftest import AgentClient
from tests.factories import make_customer, make_interaction, make_order, make_staff


def connected_contact(session, agent, *, customer=None, channel="voice", queue_name="general"):
    """An interaction the agent is handling (moved through the state machine as routing would)."""
    interaction = make_interaction(session, channel=channel, customer=customer)
    interaction.queue = queue_name
    transition(session, interaction, "queued", actor="test")
    interaction.agent_id = agent.id
    transition(session, interaction, "offered", actor="router", data={"agent_id": agent.id})
    transition(session, interaction, "connected", actor=f"agent:{agent.id}", data={"agent_id": agent.id})
    session.commit()
    return interaction


def test_anonymous_socket_is_refused(socket_server):
    client = socketio.Client(reconnection=False)
    with pytest.raises(socketio.exceptions.ConnectionError):
        client.connect(socket_server.url, namespaces=["/agent"], transports=["websocket"], wait_timeout=5)


def test_connect_sends_a_snapshot_with_open_work(db_session, agent_client):
    agent = make_staff(db_session)
    customer = make_customer(db_session, name="Chen Jing", tier="major")
    work = connected_contact(db_session, agent, customer=customer)

    client = agent_client(agent)
    snap = client.next("snapshot")

    assert snap["agent_id"] == agent.id
    assert [w["interaction_id"] for w in snap["work"]] == [work.id]
    assert snap["work"][0]["customer_name"] == "Chen Jing"
    assert snap["work"][0]["screenpop"]["customer"]["customer"]["tier"] == "major"
    assert snap["capacity"] == 100 and snap["load"] == 100  # one call costs the whole budget
    assert snap["stats"]["handled"] == 1


def test_offer_reaches_only_its_agent_with_the_screenpop(db_session, agent_client):
    mine, other = make_staff(db_session), make_staff(db_session)
    customer = make_customer(db_session, name="Wang Fang", tier="vip", phone="+8613800138001")
    make_order(db_session, customer, number="ORD-555", shipment_status="delivered")
    call = make_interaction(db_session, customer=customer)
    call.queue = "vip"
    transition(db_session, call, "queued", actor="test")
    db_session.commit()
    me, them = agent_client(mine), agent_client(other)
    me.next("snapshot"), them.next("snapshot")

    realtime.publish("offer.created", {
        "offer_id": 41, "interaction_id": call.id, "agent_id": mine.id,
        "expires_at": (utcnow() + timedelta(seconds=15)).isoformat(), "priority": 300,
        "priority_reasons": [{"code": "tier", "points": 300, "en": "VIP customer", "zh": "贵宾客户"}],
        "channel": "voice", "queue": "vip"})
    offer = me.next("offer")

    assert offer["offer_id"] == 41 and offer["interaction_id"] == call.id
    pop = offer["screenpop"]
    assert pop["customer"]["customer"]["name"] == "Wang Fang"
    assert pop["customer"]["orders"][0]["number"] == "ORD-555"
    assert pop["priority"]["reasons"][0]["code"] == "tier"
    with pytest.raises(queue.Empty):
        them.next("offer", timeout=0.5)

    realtime.publish("offer.rescinded", {"offer_id": 41, "interaction_id": call.id, "agent_id": mine.id})
    assert me.next("offer_gone") == {"offer_id": 41, "interaction_id": call.id, "reason": "rescinded"}


def test_two_tabs_stay_consistent(db_session, agent_client):
    agent = make_staff(db_session)
    work = connected_contact(db_session, agent)
    tab1, tab2 = agent_client(agent), agent_client(agent)
    tab1.next("snapshot"), tab2.next("snapshot")

    assert tab1.call("note", {"interaction_id": work.id, "text": "caller wants a refund"}) == {"ok": True}
    assert tab2.next("work")["notes"] == "caller wants a refund"

    ack = tab2.call("wrap_up", {"interaction_id": work.id, "disposition": "resolved", "notes": "refunded"})
    assert ack == {"ok": True}
    for tab in (tab1, tab2):
        assert tab.next("work_closed") == {"interaction_id": work.id, "reason": "closed"}
    db_session.expire_all()
    closed = db_session.get(Interaction, work.id)
    assert (closed.state, closed.disposition, closed.notes) == ("closed", "resolved", "refunded")
    assert [e.to_state for e in closed.events][-2:] == ["wrap_up", "closed"]


@pytest.mark.parametrize("payload, error", [
    ({"interaction_id": "x", "disposition": "resolved"}, "bad_payload"),
    ({"interaction_id": 1, "disposition": "resolved", "extra": 1}, "bad_payload"),
    ({"interaction_id": 999999, "disposition": "resolved"}, "not_your_work"),
])
def test_wrap_up_refusals(db_session, agent_client, payload, error):
    agent = make_staff(db_session)
    db_session.commit()
    client = agent_client(agent)
    client.next("snapshot")
    assert client.call("wrap_up", payload)["error"] == error


def test_unknown_disposition_and_someone_elses_work_change_nothing(db_session, agent_client):
    agent, other = make_staff(db_session), make_staff(db_session)
    theirs = connected_contact(db_session, other)
    mine = connected_contact(db_session, agent)
    client = agent_client(agent)
    client.next("snapshot")

    assert client.call("wrap_up", {"interaction_id": mine.id, "disposition": "made_up"})["error"] == \
        "unknown_disposition"
    assert client.call("note", {"interaction_id": theirs.id, "text": "hi"})["error"] == "not_your_work"
    db_session.expire_all()
    assert db_session.get(Interaction, mine.id).state == "connected"
    assert db_session.get(Interaction, theirs.id).notes is None


def test_every_event_checks_the_role(db_session, agent_client):
    agent = make_staff(db_session)
    db_session.commit()
    client = agent_client(agent)
    client.next("snapshot")
    agent.active = False  # deactivated while signed in: the next event is refused
    db_session.commit()
    assert client.call("heartbeat") == {"ok": False, "error": "forbidden"}
    assert client.call("search", {"q": "anything"}) == {"ok": False, "error": "forbidden"}


def test_reconnect_restores_open_work(db_session, agent_client, socket_server):
    agent = make_staff(db_session)
    work = connected_contact(db_session, agent, channel="chat")
    client = agent_client(agent)
    client.next("snapshot")
    client.call("note", {"interaction_id": work.id, "text": "before the drop"})
    client.close()

    again = AgentClient(socket_server.url, client.cookie).connect()
    try:
        snap = again.next("snapshot")
        assert [(w["interaction_id"], w["notes"], w["channel"]) for w in snap["work"]] == \
            [(work.id, "before the drop", "chat")]
    finally:
        again.close()


def test_heartbeat_and_sync(db_session, agent_client):
    agent = make_staff(db_session)
    db_session.commit()
    client = agent_client(agent)
    client.next("snapshot")
    assert client.call("heartbeat")["ok"] is True
    ack = client.call("sync")
    assert ack["ok"] and ack["snapshot"]["agent_id"] == agent.id and ack["snapshot"]["work"] == []


def test_link_a_prospect_to_an_existing_customer(db_session, agent_client):
    agent = make_staff(db_session)
    known = make_customer(db_session, name="Zhao Lei", tier="major", email="zhao@example.com")
    prospect = make_customer(db_session, name="+8613900000001", tier="small", is_prospect=True,
                             phone="+8613900000001")
    work = connected_contact(db_session, agent, customer=prospect)
    prospect_id = prospect.id
    client = agent_client(agent)
    client.next("snapshot")

    found = client.call("search", {"q": "zhao"})
    assert [c["id"] for c in found["customers"]] == [known.id]
    assert client.call("link_customer", {"interaction_id": work.id, "customer_id": known.id}) == {"ok": True}
    updated = client.next("work")
    assert updated["customer_name"] == "Zhao Lei"
    assert updated["screenpop"]["identification"]["status"] == "known"

    db_session.expire_all()
    from app.crm.models import Customer

    assert db_session.get(Customer, prospect_id) is None  # merged away
    assert [p.e164 for p in db_session.get(Customer, known.id).phones] == ["+8613900000001"]
    assert client.call("link_customer", {"interaction_id": work.id, "customer_id": 999999})["error"] == \
        "unknown_customer"


def test_follow_up_task(db_session, agent_client):
    agent = make_staff(db_session)
    customer = make_customer(db_session)
    work = connected_contact(db_session, agent, customer=customer)
    client = agent_client(agent)
    client.next("snapshot")
    due = (utcnow() + timedelta(days=1)).isoformat()

    ack = client.call("follow_up", {"interaction_id": work.id, "due_at": due, "note": "Call back about refund"})
    assert ack["ok"]
    db_session.expire_all()
    task = db_session.get(Interaction, ack["task_id"])
    assert (task.channel, task.direction, task.customer_id, task.subject) == \
        ("task", "outbound", customer.id, "Call back about refund")
    assert task.attributes["follow_up_of"] == work.id and task.attributes["owner_agent_id"] == agent.id
    naive = client.call("follow_up", {"interaction_id": work.id, "due_at": "2030-01-01T10:00:00", "note": "x"})
    assert naive["error"] == "bad_payload"


def test_interaction_state_changes_reach_the_agent(db_session, agent_client):
    """The caller hangs up (the voice channel moves the call to wrap-up): the console shows wrap-up."""
    agent = make_staff(db_session)
    work = connected_contact(db_session, agent)
    client = agent_client(agent)
    client.next("snapshot")
    call = db_session.get(Interaction, work.id)
    transition(db_session, call, "wrap_up", actor="voice", data={"agent_id": agent.id})
    db_session.commit()
    item = client.next("work")
    assert item["state"] == "wrap_up" and item["wrap_up_started_at"] and item["wrap_up_s"] == 30
