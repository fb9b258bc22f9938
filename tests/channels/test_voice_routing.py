"""Voice with the real router: a signed webhook call goes through the IVR into ``queues.service``, the
router (``queues.router.run_once``) offers it to an available agent, ``accept_offer`` commits, the
``offer.accepted`` bridging redirects the caller to the agent (recorded telephony), the call ends and the
agent wraps up. Callbacks keep their place and are rung back on accept; hanging up while offered
rescinds the offer; the IVR's extra skills and priority bump are what the router sees."""
from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select

from agent_console import service as console
from app.channels import voice
from app.channels.telephony import RecordingTelephony
from app.interactions.models import Interaction, InteractionEvent
from app.interactions.states import State
from queues import router, service
from queues.models import AgentState, Offer, QueueEntry
from tests.factories import login, make_customer, make_staff
from tests.ivr.helpers import OPEN_AT
from tests.ivr.phone import BASE, Caller, new_call_sid


@pytest.fixture()
def clock(monkeypatch):
    now = {"at": OPEN_AT}
    monkeypatch.setattr(voice, "utcnow", lambda: now["at"])
    return now


@pytest.fixture()
def twin(app, monkeypatch):
    recording = RecordingTelephony()
    monkeypatch.setitem(app.extensions, "desk.telephony", recording)
    return recording


def at(seconds: float):
    return OPEN_AT + timedelta(seconds=seconds)


def available_agent(session, skills=None, **extra):
    agent = make_staff(session, skills=skills or {"general": 5}, **extra)
    service.set_presence(session, agent.id, "available", now=at(-60))
    session.commit()
    return agent


def call_of(session, caller: Caller) -> Interaction:
    session.expire_all()
    return session.scalar(select(Interaction).where(Interaction.external_ref == caller.call_sid))


def pending_offers(session) -> list[Offer]:
    session.expire_all()
    return list(session.scalars(select(Offer).where(Offer.status == "pending").order_by(Offer.id)))


def history(session, interaction: Interaction) -> list[InteractionEvent]:
    return list(session.scalars(select(InteractionEvent).where(InteractionEvent.interaction_id == interaction.id)
                                .order_by(InteractionEvent.id)))


def to_general_queue(caller: Caller) -> None:
    caller.dial()
    caller.press("1")  # English
    caller.press("0")  # an agent


def test_a_call_from_webhook_to_agent_and_wrap_up(app, client, db_session, clock, twin, events):
    agent = available_agent(db_session)
    caller = Caller(client)
    to_general_queue(caller)
    interaction = call_of(db_session, caller)
    assert (interaction.state, interaction.queue) == (State.QUEUED, "general")
    assert caller.follow().said[:1] == ["You are number 1 in the queue."]

    report = router.run_once(app, at(2))
    [offer] = pending_offers(db_session)
    assert report.offers == [offer.id] and offer.agent_id == agent.id
    assert call_of(db_session, caller).state == State.OFFERED
    clock["at"] = at(3)
    waiting = caller.post(caller.last.redirect_url)  # the caller keeps hearing the wait loop while offered
    assert waiting.status == 200 and "Redirect" in waiting.verbs

    service.accept_offer(db_session, offer.id, agent.id, now=at(5))
    db_session.commit()  # offer.accepted -> the bridging job (inline in tests) redirects the live call
    [redirect] = twin.requests
    assert (redirect.action, redirect.call_sid) == ("redirect", caller.call_sid)
    assert redirect.data["url"] == f"{BASE}/voice/connect?i={interaction.id}&a={agent.id}&b=1"
    assert ("offer.accepted", {"offer_id": offer.id, "interaction_id": interaction.id, "agent_id": agent.id,
                               "channel": "voice", "queue": "general"}) in events

    clock["at"] = at(6)
    bridged = caller.post(redirect.data["url"])
    assert bridged.first("Dial").find("Client").findtext("Identity").strip() == f"agent-{agent.id}"

    login(client, agent)
    clock["at"] = at(30)
    assert client.post(f"/api/voice/{interaction.id}/hold", json={"on": True}).status_code == 200
    clock["at"] = at(45)
    assert client.post(f"/api/voice/{interaction.id}/hold", json={"on": False}).status_code == 200
    assert [r.data["url"] for r in twin.requests[1:]] == [
        f"{BASE}/voice/hold?i={interaction.id}&n=1", f"{BASE}/voice/connect?i={interaction.id}&a={agent.id}&b=2"]

    clock["at"] = at(90)
    ended = caller.post(bridged.first("Dial").get("action"), {"DialCallStatus": "completed",
                                                                "DialCallSid": new_call_sid()})
    assert ended.verbs == ["Say", "Hangup"]
    caller.hang_up()
    interaction = call_of(db_session, caller)
    assert interaction.state == State.WRAP_UP and interaction.agent_id == agent.id
    state = db_session.get(AgentState, agent.id)
    assert state.presence == "wrap_up" and state.wrap_up_until == at(90 + 30)
    assert service.agent_load(db_session, agent.id) == 0

    console.complete_wrap_up(db_session, agent.id, interaction.id, "resolved", "Order found",
                             app.extensions["desk.config"], at=at(100))
    db_session.commit()
    router.run_once(app, at(121))
    db_session.expire_all()
    assert db_session.get(AgentState, agent.id).presence == "available"

    rows = history(db_session, interaction)
    moves = [(r.to_state, r.actor) for r in rows if r.kind == "transition"]
    assert moves == [("ivr", "ivr"), ("queued", "ivr"), ("offered", "router"), ("connected", f"agent:{agent.id}"),
                     ("wrap_up", "ivr"), ("closed", f"agent:{agent.id}")]
    connected = next(r for r in rows if r.to_state == "connected")
    assert connected.data["agent_id"] == agent.id
    queued = next(r for r in rows if r.to_state == "queued")
    assert queued.data == {"queue": "general"}
    facts = [(r.kind, r.occurred_at) for r in rows if r.kind in ("hold", "unhold")]
    assert facts == [("hold", at(30)), ("unhold", at(45))]
    assert [r.kind for r in rows if r.kind.startswith("voice.")] == ["voice.redirected", "voice.bridge"]


def test_a_callback_keeps_its_place_and_is_rung_back_on_accept(app, client, db_session, clock, twin, events):
    first, second = Caller(client, from_="+8613800000001"), Caller(client, from_="+8613800000002")
    to_general_queue(first)
    clock["at"] = at(10)
    to_general_queue(second)
    first_call = call_of(db_session, first)
    origin = first_call.routing_age_origin
    first.follow()
    clock["at"] = at(20)
    reply = first.press("1")  # the callback key while waiting
    assert reply.verbs == ["Say", "Hangup"]
    first.hang_up()
    first_call = call_of(db_session, first)
    assert first_call.state == State.CALLBACK_PENDING and first_call.routing_age_origin == origin
    assert first_call.attributes["callback_number"] == "+8613800000001"
    assert "callback" in {r["code"] for r in first_call.priority_reasons}
    assert service.position_and_wait(db_session, call_of(db_session, second).id)[0] == 2

    agent = available_agent(db_session)
    router.run_once(app, at(30))
    [offer] = pending_offers(db_session)
    assert offer.interaction_id == first_call.id and offer.from_state == State.CALLBACK_PENDING
    service.accept_offer(db_session, offer.id, agent.id, now=at(32))
    db_session.commit()
    [placed] = twin.requests
    assert placed.action == "place" and placed.data["to"] == "+8613800000001"
    assert placed.data["url"] == f"{BASE}/voice/callback-answer?i={first_call.id}&a={agent.id}"

    outbound = Caller(client, call_sid=placed.call_sid, from_="+862100000000", to="+8613800000001")
    clock["at"] = at(40)
    answered = outbound.post(placed.data["url"])
    assert answered.said[0] == "Hello, this is the service desk returning your call."
    assert answered.first("Dial").find("Client").findtext("Identity").strip() == f"agent-{agent.id}"
    clock["at"] = at(200)
    outbound.post(placed.data["status_callback"], {"CallStatus": "completed"})
    first_call = call_of(db_session, first)
    assert first_call.state == State.WRAP_UP
    assert db_session.get(AgentState, agent.id).presence == "wrap_up"
    assert call_of(db_session, second).state == State.QUEUED  # the second caller is next


def test_hanging_up_while_offered_rescinds_the_offer(app, client, db_session, clock, twin, events):
    agent = available_agent(db_session)
    caller = Caller(client)
    to_general_queue(caller)
    router.run_once(app, at(2))
    [offer] = pending_offers(db_session)
    clock["at"] = at(7)
    caller.hang_up()
    interaction = call_of(db_session, caller)
    assert interaction.state == State.ABANDONED and interaction.agent_id is None
    db_session.refresh(offer)
    assert (offer.status, offer.cause) == ("rescinded", "abandoned")
    rescinded = [p for n, p in events if n == "offer.rescinded"]
    assert rescinded == [{"offer_id": offer.id, "interaction_id": interaction.id, "agent_id": agent.id,
                          "reason": "abandoned", "cause": "abandoned", "queue": "general", "channel": "voice"}]
    abandoned = next(r for r in history(db_session, interaction) if r.to_state == "abandoned")
    assert abandoned.data == {"where": "queue", "wait_s": 7}
    assert router.run_once(app, at(8)).offers == []
    assert service.agent_load(db_session, agent.id) == 0 and twin.requests == []
    with pytest.raises(service.OfferNotAvailable):
        service.accept_offer(db_session, offer.id, agent.id, now=at(9))
    db_session.rollback()


def test_the_menus_extra_skills_hold_through_escalation(app, client, db_session, clock, twin, events):
    generalist = available_agent(db_session, skills={"general": 9})
    caller = Caller(client)
    caller.dial()
    caller.press("1")
    caller.press("3")  # billing: the menu node adds billing >= 3
    interaction = call_of(db_session, caller)
    assert interaction.queue == "billing"
    assert interaction.required_skills == [{"skill": "billing", "min_level": 3}]
    router.run_once(app, at(120))  # past the billing queue's escalation to general agents (90 s)
    assert pending_offers(db_session) == []
    billing = available_agent(db_session, skills={"billing": 4})
    router.run_once(app, at(121))
    [offer] = pending_offers(db_session)
    assert offer.agent_id == billing.id != generalist.id


def test_the_menus_priority_bump_counts_with_the_tier(app, client, db_session, clock, twin, events):
    make_customer(db_session, phone="+8613800138000", tier="vip")
    db_session.commit()
    vip = Caller(client)
    vip.dial()  # a known VIP goes straight to the vip queue with a bump of 100
    interaction = call_of(db_session, vip)
    assert interaction.queue == "vip" and interaction.attributes["priority_bump"] == 100
    points = {r["code"]: r["points"] for r in interaction.priority_reasons}
    assert points == {"tier": 300, "ivr": 100} and interaction.priority == 400


def test_an_agent_who_does_not_pick_up_sends_the_caller_back_keeping_the_place(app, client, db_session, clock,
                                                                                twin, events):
    agent = available_agent(db_session)
    caller = Caller(client)
    to_general_queue(caller)
    origin = call_of(db_session, caller).routing_age_origin
    router.run_once(app, at(2))
    [offer] = pending_offers(db_session)
    service.accept_offer(db_session, offer.id, agent.id, now=at(3))
    db_session.commit()
    interaction = call_of(db_session, caller)
    caller.post(twin.requests[0].data["url"])
    clock["at"] = at(25)
    reply = caller.post(f"{BASE}/voice/dial-done?i={interaction.id}", {"DialCallStatus": "no-answer"})
    assert reply.verbs == ["Redirect"] and reply.redirect_url == f"{BASE}/voice/wait?t=1"
    interaction = call_of(db_session, caller)
    assert (interaction.state, interaction.agent_id, interaction.routing_age_origin) == (State.QUEUED, None, origin)
    assert db_session.get(QueueEntry, interaction.id).note == "agent_unanswered"
    assert "voice.agent_unanswered" in [r.kind for r in history(db_session, interaction)]


def test_a_console_transfer_requeues_with_a_note_and_frees_the_agent(app, client, db_session, clock, twin, events):
    agent = available_agent(db_session)
    caller = Caller(client)
    to_general_queue(caller)
    router.run_once(app, at(2))
    [offer] = pending_offers(db_session)
    service.accept_offer(db_session, offer.id, agent.id, now=at(3))
    db_session.commit()
    interaction = call_of(db_session, caller)
    login(client, agent)
    response = client.post(f"/api/voice/{interaction.id}/transfer", json={"queue": "billing", "note": "refund"})
    assert response.status_code == 200 and response.get_json()["state"] == "queued"
    assert twin.requests[-1].data["url"] == f"{BASE}/voice/wait?t=1"
    interaction = call_of(db_session, caller)
    assert (interaction.queue, interaction.agent_id) == ("billing", None)
    assert db_session.get(QueueEntry, interaction.id).note == "refund"
    assert service.agent_load(db_session, agent.id) == 0
    transfer = [r for r in history(db_session, interaction) if r.reason == "transfer"]
    assert transfer[0].data["from_agent_id"] == agent.id and transfer[0].data["note"] == "refund"
