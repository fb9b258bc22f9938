"""Voice edge cases: malformed webhooks on every endpoint, races between duplicate webhooks, console
controls refused, the bridge pulled by the caller's own wait loop, the telephony implementations."""
from __future__ import annotations

from datetime import timedelta
from types import SimpleNamespace

import pytest
from flask import current_app
from sqlalchemy import event, func, select
from sqlalchemy.orm.exc import StaleDataError

from app.channels import telephony as telephony_module
from app.channels import voice
from app.channels.telephony import RecordingTelephony, TelephonyError, TwilioTelephony
from app.interactions.models import Interaction, InteractionEvent
from app.interactions.service import transition
from app.interactions.states import State
from ivr import agent_leg, calls
from ivr.calls import Desk, VoiceUrls
from ivr.models import AgentVoiceDevice, VoiceWebhookReceipt
from queues import router, service
from queues.models import Offer
from tests.factories import login, make_customer, make_interaction, make_order, make_staff
from tests.ivr.helpers import OPEN_AT
from tests.ivr.phone import BASE, Caller, new_call_sid


@pytest.fixture()
def clock(monkeypatch):
    now = {"at": OPEN_AT}
    monkeypatch.setattr(voice, "utcnow", lambda: now["at"])
    return now


class FailingTelephony(RecordingTelephony):
    def redirect_call(self, call_sid: str, url: str) -> None:
        raise TelephonyError("redirect", "21220: Call is not in-progress")


@pytest.fixture()
def twin(app, monkeypatch):
    recording = RecordingTelephony()
    monkeypatch.setitem(app.extensions, "desk.telephony", recording)
    return recording


@pytest.fixture(autouse=True)
def fresh_router(app):
    router.reset(app)
    yield
    router.reset(app)


def call_of(session, caller: Caller) -> Interaction:
    session.expire_all()
    return session.scalar(select(Interaction).where(Interaction.external_ref == caller.call_sid))


def kinds(session, interaction: Interaction) -> list[str]:
    return list(session.scalars(select(InteractionEvent.kind).where(InteractionEvent.interaction_id == interaction.id)
                                .order_by(InteractionEvent.id)))


def queued(client) -> Caller:
    caller = Caller(client)
    caller.dial()
    caller.press("1")
    caller.press("0")
    caller.follow()
    return caller


def offer_and_accept(session, caller: Caller, agent, *, accept: bool = True) -> Interaction:
    service.set_presence(session, agent.id, "available", now=OPEN_AT - timedelta(minutes=1))
    session.commit()
    router.run_once(current_app._get_current_object(), OPEN_AT + timedelta(seconds=1))
    interaction = call_of(session, caller)
    offer = session.scalar(select(Offer).where(Offer.interaction_id == interaction.id, Offer.status == "pending"))
    if accept:
        service.accept_offer(session, offer.id, agent.id, now=OPEN_AT + timedelta(seconds=2))
        session.commit()
    return call_of(session, caller)


# --- malformed webhooks --------------------------------------------------------------------------------

@pytest.mark.parametrize("url, params", [
    ("/voice/incoming", {"From": ""}),
    ("/voice/wait?t=0", {}),
    ("/voice/wait-key?t=1", {"Digits": "1;2"}),
    ("/voice/voicemail", {"RecordingUrl": "u" * 501}),
    ("/voice/connect?i=1&a=1&b=x", {}),
    ("/voice/callback-answer?i=1&a=0", {}),
    ("/voice/callback-status?i=1", {"CallStatus": "exploded"}),
    ("/voice/dial-done?i=1", {"DialCallStatus": "exploded"}),
    ("/voice/dial-done?i=1", {"DialCallStatus": "completed", "DialCallSid": "not-a-sid"}),
    ("/voice/hold?i=1&n=-1", {}),
    ("/voice/connect?i=4294967296&a=1&b=1", {}),  # beyond the 32-bit id columns
    ("/voice/recording?i=2147483648", {"RecordingSid": "RE" + "d" * 32, "RecordingUrl": "u",
                                       "RecordingStatus": "completed"}),
])
def test_every_endpoint_refuses_malformed_input_with_an_apology(client, clock, url, params):
    reply = Caller(client).post(url, params)
    assert reply.status == 400
    assert reply.verbs == ["Say", "Hangup"] and reply.said[0].startswith("We are sorry")


def test_a_malformed_call_sid_is_refused_in_english(client, clock):
    caller = Caller(client, call_sid="CA-not-a-sid")
    reply = caller.post("/voice/incoming", {"From": ""})
    assert reply.status == 400 and reply.first("Say").get("language") == "en-US"


def test_a_recording_for_an_unknown_interaction_is_404(client, clock):
    params = {"RecordingSid": "RE" + "c" * 32, "RecordingUrl": "https://x/rec", "RecordingStatus": "completed"}
    assert Caller(client).post("/voice/recording?i=999999", params).status == 404


def test_a_call_sid_already_known_is_not_opened_twice(client, db_session, clock):
    caller = Caller(client)
    make_interaction(db_session, channel="voice", external_ref=caller.call_sid)
    db_session.commit()
    assert caller.dial().status == 409
    assert db_session.scalar(select(func.count()).select_from(Interaction)) == 1


# --- duplicate webhooks racing ---------------------------------------------------------------------------

def test_a_concurrent_twin_that_stored_its_answer_first_wins(client, db_session, clock, monkeypatch):
    real = calls.incoming_call
    runs = []

    def racing(session, *args, **kwargs):
        runs.append(1)
        if len(runs) == 1:  # the twin's receipt lands in the same flush: a unique violation, as in a race
            session.add(VoiceWebhookReceipt(call_sid=kwargs["call_sid"], event="incoming", body="<Response/>"))
        return real(session, *args, **kwargs)

    monkeypatch.setattr(calls, "incoming_call", racing)
    caller = Caller(client)
    reply = caller.dial()
    assert reply.status == 200 and reply.verbs == ["Gather"] and len(runs) == 2
    assert db_session.scalar(select(func.count()).select_from(Interaction)) == 1


def test_endless_races_give_up_with_409(client, db_session, clock, monkeypatch):
    caller = queued(client)

    def always_stale(*args, **kwargs):
        raise StaleDataError("the row changed")

    monkeypatch.setattr(calls, "wait_turn", always_stale)
    reply = caller.post(f"{BASE}/voice/wait?t=5")
    assert reply.status == 409 and reply.verbs == ["Say", "Hangup"]


# --- the IVR's other endings -------------------------------------------------------------------------------

def test_goodbye_after_a_lookup_closes_the_call(client, db_session, clock):
    make_order(db_session, make_customer(db_session, phone="+8613900000000"), number="10023")
    db_session.commit()
    caller = Caller(client)
    caller.dial()
    caller.press("1")
    caller.press("1")
    caller.press("10023#")  # found, then the after-lookup menu
    reply = caller.press("9")
    assert reply.verbs[-1] == "Hangup"
    assert call_of(db_session, caller).state == State.CLOSED


def test_an_empty_voicemail_closes_the_call(client, db_session, clock):
    caller = queued(client)
    reply = caller.press("2")  # voicemail from the queue
    reply = caller.post(reply.first("Record").get("action"),
                        {"RecordingUrl": "https://x/rec", "RecordingDuration": "0"})
    assert reply.verbs == ["Say", "Hangup"]
    assert call_of(db_session, caller).state == State.CLOSED


def test_a_prospect_is_not_treated_as_a_known_customer(client, db_session, clock):
    make_customer(db_session, phone="+8613800138000", tier="vip", is_prospect=True)
    db_session.commit()
    reply = Caller(client).dial()
    assert reply.verbs == ["Gather"]  # asked for a language, not sent to the VIP line


# --- the agent's leg ---------------------------------------------------------------------------------------

def test_the_wait_loop_pulls_the_bridge_when_the_redirect_has_not_come(app, client, db_session, clock, twin,
                                                                       monkeypatch):
    jobs = []
    monkeypatch.setattr("app.jobs.enqueue", lambda func, *args, **kwargs: jobs.append((func, args)))
    agent = make_staff(db_session)
    caller = queued(client)
    interaction = offer_and_accept(db_session, caller, agent)
    assert [func for func, _ in jobs] == [agent_leg.run_bridge] and twin.requests == []
    reply = caller.post(f"{BASE}/voice/wait?t=2")  # the turn in flight when the offer was accepted
    assert reply.redirect_url == f"{BASE}/voice/connect?i={interaction.id}&a={agent.id}&b=1"
    again = caller.post(f"{BASE}/voice/wait-key?t=2", {"Digits": "5"})
    assert again.redirect_url == reply.redirect_url
    func, args = jobs[0]
    assert func(*args) == "nothing" and twin.requests == []  # the job sees the bridge already taken
    assert caller.post(reply.redirect_url).first("Dial") is not None
    assert kinds(db_session, interaction).count("voice.bridge_pulled") == 1


def test_a_quiet_turn_of_a_connected_call_pulls_the_bridge_too(app, client, db_session, clock, twin, monkeypatch):
    monkeypatch.setattr("app.jobs.enqueue", lambda func, *args, **kwargs: None)
    agent = make_staff(db_session)
    caller = queued(client)
    interaction = offer_and_accept(db_session, caller, agent)
    announced = int(OPEN_AT.timestamp()) - 1  # between announcements: the turn first reads outside a transaction
    reply = caller.post(f"{BASE}/voice/wait?t=3&a={announced}")
    assert reply.redirect_url == f"{BASE}/voice/connect?i={interaction.id}&a={agent.id}&b=1"
    assert kinds(db_session, interaction).count("voice.bridge_pulled") == 1


def test_a_quiet_turn_of_an_unknown_call_is_refused_politely(client, clock):
    stranger = Caller(client)
    reply = stranger.post(f"{BASE}/voice/wait?t=3&a={int(OPEN_AT.timestamp()) - 1}")
    assert reply.status == 404 and reply.verbs == ["Say", "Hangup"]


def test_a_quiet_turn_of_a_waiting_call_opens_no_transaction(client, db_session, clock):
    from app.extensions import db

    caller = queued(client)  # the first turn announced
    ended: list[str] = []
    listeners = {name: (lambda *args, name=name: ended.append(name)) for name in ("commit", "rollback")}
    for name, listener in listeners.items():
        event.listen(db.engine, name, listener)
    try:
        reply = caller.post(f"{BASE}/voice/wait?t=2&a={int(OPEN_AT.timestamp()) - 1}")
    finally:
        for name, listener in listeners.items():
            event.remove(db.engine, name, listener)
    assert reply.status == 200 and reply.verbs == ["Gather", "Redirect"] and "<Say" not in reply.text
    assert "commit" not in ended  # read in autocommit: no BEGIN, no COMMIT


def test_connect_and_callback_answer_refuse_the_wrong_agent_or_state(client, db_session, clock, twin):
    agent, other = make_staff(db_session), make_staff(db_session)
    caller = queued(client)
    interaction = call_of(db_session, caller)
    assert caller.post(f"{BASE}/voice/connect?i={interaction.id}&a={agent.id}&b=1").status == 409  # still queued
    assert caller.post(f"{BASE}/voice/callback-answer?i={interaction.id}&a={agent.id}").status == 409
    offer_and_accept(db_session, caller, agent)
    assert caller.post(f"{BASE}/voice/connect?i={interaction.id}&a={other.id}&b=1").status == 409


def test_the_caller_hanging_up_mid_conversation_starts_wrap_up(client, db_session, clock, twin):
    agent = make_staff(db_session)
    caller = queued(client)
    interaction = offer_and_accept(db_session, caller, agent)
    dial = caller.post(twin.requests[0].data["url"]).first("Dial")
    caller.hang_up()
    assert call_of(db_session, caller).state == State.WRAP_UP
    reply = caller.post(dial.get("action"), {"DialCallStatus": "completed", "DialCallSid": new_call_sid()})
    assert reply.verbs == ["Say", "Hangup"]  # the agent's leg ending after changes nothing more
    moves = [k for k in kinds(db_session, interaction) if k == "transition"]
    assert len(moves) == 5  # ivr, queued, offered, connected, wrap_up
    assert service.agent_state(db_session, agent.id).presence == "wrap_up"


def test_an_unanswered_agent_on_a_callback_ends_in_wrap_up(client, db_session, clock, twin):
    agent = make_staff(db_session)
    caller = queued(client)
    caller.press("1")  # callback
    caller.hang_up()
    interaction = offer_and_accept(db_session, caller, agent)
    placed = twin.requests[0]
    outbound = Caller(client, call_sid=placed.call_sid)
    assert outbound.post(placed.data["status_callback"], {"CallStatus": "ringing"}).status == 200
    assert call_of(db_session, caller).state == State.CONNECTED
    outbound.post(placed.data["url"])
    reply = outbound.post(f"{BASE}/voice/dial-done?i={interaction.id}", {"DialCallStatus": "no-answer"})
    assert reply.verbs == ["Say", "Hangup"]
    assert call_of(db_session, caller).state == State.WRAP_UP


def test_a_voicemail_offered_and_accepted_needs_no_bridge(client, db_session, clock, twin):
    agent = make_staff(db_session)
    caller = queued(client)
    reply = caller.press("2")
    caller.post(reply.first("Record").get("action"), {"RecordingUrl": "https://x/rec", "RecordingDuration": "9"})
    interaction = offer_and_accept(db_session, caller, agent)
    assert interaction.state == State.CONNECTED and twin.requests == []


def test_bridging_ignores_what_it_cannot_bridge(app, db_session, twin):
    desk = Desk.from_config(app.extensions["desk.config"])
    urls = VoiceUrls(BASE)
    chat = make_interaction(db_session, channel="chat")
    ended = make_interaction(db_session, channel="voice", external_ref=new_call_sid(),
                             attributes={"call_ended_at": OPEN_AT.isoformat()})
    for state in (State.QUEUED, State.OFFERED):
        transition(db_session, ended, state, actor="test", data={"queue": "general"})
    db_session.flush()
    for interaction_id in (chat.id, ended.id, 10**9):
        assert agent_leg.bridge_accepted(db_session, desk, twin, urls, interaction_id=interaction_id, agent_id=1,
                                         now=OPEN_AT) == "nothing"
    assert twin.requests == []


def test_a_failed_bridge_is_rolled_back_and_raised(app, client, db_session, clock, monkeypatch):
    monkeypatch.setitem(app.extensions, "desk.telephony", FailingTelephony())
    jobs = []
    monkeypatch.setattr("app.jobs.enqueue", lambda func, *args, **kwargs: jobs.append((func, args)))
    agent = make_staff(db_session)
    caller = queued(client)
    interaction = offer_and_accept(db_session, caller, agent)
    func, args = jobs[0]
    with pytest.raises(TelephonyError):
        func(*args)
    assert "voice.redirected" not in kinds(db_session, interaction)
    # the caller's own wait loop still reaches the agent
    assert caller.post(f"{BASE}/voice/wait?t=2").redirect_url.startswith(f"{BASE}/voice/connect?i={interaction.id}")


@pytest.mark.parametrize("payload", [
    {"interaction_id": "1", "agent_id": 2},
    {"interaction_id": 1, "agent_id": None},
    {"interaction_id": 1, "agent_id": 2, "channel": "chat"},
])
def test_accepted_offers_that_are_not_calls_start_no_bridge(app, monkeypatch, payload):
    jobs = []
    monkeypatch.setattr("app.jobs.enqueue", lambda *args, **kwargs: jobs.append(args))
    with app.app_context():
        agent_leg.on_realtime_event("offer.accepted", payload)
        agent_leg.on_realtime_event("offer.created", {"interaction_id": 1, "agent_id": 2})
    assert jobs == []


def test_hold_without_music_is_a_pause(app, db_session):
    desk = Desk.from_config(app.extensions["desk.config"])
    quiet = Desk(ivr=desk.ivr.model_copy(update={"waiting": desk.ivr.waiting.model_copy(
        update={"hold_music_url": None})}), calendars=desk.calendars, timezone=desk.timezone)
    interaction = make_interaction(db_session, channel="voice", language="zh")
    response = agent_leg.render_hold(quiet, interaction)
    assert "<Pause" in str(response) and "<Play" not in str(response) and 'language="cmn-CN"' in str(response)


# --- console controls ----------------------------------------------------------------------------------------

def test_console_controls_refused_when_not_in_a_call_or_the_network_fails(app, client, db_session, clock, twin,
                                                                         monkeypatch):
    agent = make_staff(db_session)
    caller = queued(client)
    interaction = offer_and_accept(db_session, caller, agent)
    login(client, agent)
    assert client.post("/api/voice/999999/hold", json={"on": True}).status_code == 404
    monkeypatch.setitem(app.extensions, "desk.telephony", FailingTelephony())
    response = client.post(f"/api/voice/{interaction.id}/hold", json={"on": True})
    assert response.status_code == 502 and response.get_json()["error"] == "telephony"
    assert "hold" not in kinds(db_session, interaction)  # nothing recorded for a hold that did not happen
    caller.hang_up()
    response = client.post(f"/api/voice/{interaction.id}/hold", json={"on": True})
    assert response.status_code == 409 and response.get_json()["error"] == "call_state"


def test_mute_is_logged_and_needs_an_interaction(client, db_session, clock, twin):
    agent = make_staff(db_session)
    caller = queued(client)
    interaction = offer_and_accept(db_session, caller, agent)
    login(client, agent)
    assert client.post("/api/voice/mute", json={}).status_code == 400
    assert client.post("/api/voice/mute", json={"interaction_id": interaction.id, "on": False}).status_code == 200
    assert "voice.unmute" in kinds(db_session, interaction)


def test_an_agent_with_a_number_may_take_calls_on_their_phone_and_back(client, db_session):
    agent = make_staff(db_session, phone_e164="+8613700000000")
    db_session.commit()
    login(client, agent)
    assert client.post("/api/voice/device", json={"device": "phone"}).get_json()["device"] == "phone"
    assert client.post("/api/voice/device", json={"device": "browser"}).get_json()["device"] == "browser"
    assert db_session.get(AgentVoiceDevice, agent.id).device == "browser"


# --- telephony implementations --------------------------------------------------------------------------------

def test_a_network_failure_is_a_telephony_error():
    from twilio.http.http_client import TwilioHttpClient

    class Unreachable(TwilioHttpClient):
        def request(self, method, url, *args, **kwargs):
            return super().request(method, "http://127.0.0.1:9/unreachable", *args, **kwargs)

    telephony = TwilioTelephony("AC" + "1" * 32, "token", http_client=Unreachable(timeout=2))
    with pytest.raises(TelephonyError, match="redirect"):
        telephony.redirect_call("CA" + "4" * 32, f"{BASE}/voice/wait?t=1")


@pytest.mark.parametrize("choice, dev_tools, sid, expected", [
    ("recording", False, "AC" + "1" * 32, RecordingTelephony),
    ("twilio", True, "AC" + "0" * 32, TwilioTelephony),
    (None, True, "AC" + "0" * 32, RecordingTelephony),   # the demo's placeholder account
    (None, True, "AC" + "1" * 32, TwilioTelephony),      # a real account even with dev tools on
    (None, False, "AC" + "0" * 32, TwilioTelephony),
])
def test_the_telephony_implementation_is_chosen_from_config(choice, dev_tools, sid, expected):
    settings = SimpleNamespace(twilio_account_sid=sid, twilio_auth_token="t", dev_tools_enabled=dev_tools)
    app = SimpleNamespace(config={"TELEPHONY": choice} if choice else {}, extensions={"desk.settings": settings})
    telephony_module.init_telephony(app)
    assert type(app.extensions["desk.telephony"]) is expected


def test_an_unknown_telephony_is_a_clear_error():
    settings = SimpleNamespace(twilio_account_sid="AC" + "1" * 32, twilio_auth_token="t", dev_tools_enabled=False)
    app = SimpleNamespace(config={"TELEPHONY": "carrier-pigeon"}, extensions={"desk.settings": settings})
    with pytest.raises(ValueError, match="TELEPHONY: unknown implementation 'carrier-pigeon'"):
        telephony_module.init_telephony(app)


def test_the_twin_lists_requests_from_a_position():
    twin = RecordingTelephony()
    twin.redirect_call("CA1", "u1")
    sid = twin.place_call(to="+1", from_="+2", url="u2", status_callback="u3")
    twin.hangup_call(sid)
    seen, next_index = twin.requests_since(1)
    assert [(i, r.action) for i, r in seen] == [(1, "place"), (2, "hangup")] and next_index == 3
    assert twin.requests_since(7) == ([], 3)
