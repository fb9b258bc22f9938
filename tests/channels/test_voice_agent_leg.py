"""The agent's leg: bridging on accept, callbacks, console controls, the softphone token, and the
Twilio REST client pointed at a local server that records what it receives."""
from __future__ import annotations

import json
import threading
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

import jwt as pyjwt
import pytest
from flask import current_app
from sqlalchemy import select
from twilio.http.http_client import TwilioHttpClient

from app.channels import voice
from app.channels.telephony import RecordingTelephony, TelephonyError, TwilioTelephony
from app.interactions.models import Interaction
from app.interactions.states import State
from ivr import agent_leg
from queues import router, service
from queues.models import Offer
from tests.factories import login, make_staff
from tests.ivr.helpers import OPEN_AT
from tests.ivr.phone import BASE, Caller, new_call_sid

ACCOUNT = "AC" + "1" * 32


class _Recorder(BaseHTTPRequestHandler):
    def do_POST(self):  # noqa: N802 - the http.server hook name
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0)).decode()
        self.server.seen.append({"path": self.path, "form": {k: v[0] for k, v in parse_qs(body).items()}})
        sid = self.path.rstrip("/").split("/")[-1].removesuffix(".json")
        if self.server.fail:
            payload, status = {"code": 21220, "message": "Call is not in-progress", "status": 400}, 400
        else:
            payload, status = {"sid": sid if sid.startswith("CA") else "CA" + "f" * 32, "status": "queued",
                               "account_sid": ACCOUNT}, 201
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args):
        pass


@pytest.fixture()
def twilio_server():
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Recorder)
    server.seen, server.fail = [], False
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


class LocalHttpClient(TwilioHttpClient):
    """The twilio library's own HTTP client, sending to the local recording server instead."""

    def __init__(self, base: str):
        super().__init__()
        self.base = base

    def request(self, method, url, *args, **kwargs):
        parts = urlsplit(url)
        return super().request(method, f"{self.base}{parts.path}", *args, **kwargs)


@pytest.fixture()
def clock(monkeypatch):
    monkeypatch.setattr(voice, "utcnow", lambda: OPEN_AT)


@pytest.fixture()
def twin(app, monkeypatch):
    recording = RecordingTelephony()
    monkeypatch.setitem(app.extensions, "desk.telephony", recording)
    return recording


def queued_caller(client) -> Caller:
    caller = Caller(client)
    caller.dial()
    caller.press("1")
    caller.press("0")
    caller.follow()
    return caller


@pytest.fixture(autouse=True)
def fresh_router(app):
    router.reset(app)
    yield
    router.reset(app)


def accept(db_session, caller: Caller, agent, *, from_state=State.QUEUED) -> Interaction:
    """The agent becomes available, the router offers them the call, the console accepts (commit:
    ``offer.accepted`` starts the bridging)."""
    interaction = db_session.scalar(select(Interaction).where(Interaction.external_ref == caller.call_sid))
    assert interaction.state == from_state
    service.set_presence(db_session, agent.id, "available", now=OPEN_AT - timedelta(minutes=1))
    db_session.commit()
    router.run_once(current_app._get_current_object(), OPEN_AT + timedelta(seconds=1))
    offer = db_session.scalar(select(Offer).where(Offer.interaction_id == interaction.id, Offer.status == "pending"))
    assert offer.agent_id == agent.id
    service.accept_offer(db_session, offer.id, agent.id, now=OPEN_AT + timedelta(seconds=2))
    db_session.commit()
    return interaction


def test_twilio_rest_calls_reach_the_local_server(twilio_server):
    port = twilio_server.server_address[1]
    telephony = TwilioTelephony(ACCOUNT, "token", http_client=LocalHttpClient(f"http://127.0.0.1:{port}"))
    sid = "CA" + "2" * 32
    telephony.redirect_call(sid, f"{BASE}/voice/connect?i=1&a=2&b=1")
    placed = telephony.place_call(to="+8613800138000", from_="+862100000000", url=f"{BASE}/voice/callback-answer",
                                  status_callback=f"{BASE}/voice/callback-status?i=1")
    telephony.hangup_call(sid)
    paths = [seen["path"] for seen in twilio_server.seen]
    assert paths == [f"/2010-04-01/Accounts/{ACCOUNT}/Calls/{sid}.json", f"/2010-04-01/Accounts/{ACCOUNT}/Calls.json",
                     f"/2010-04-01/Accounts/{ACCOUNT}/Calls/{sid}.json"]
    assert twilio_server.seen[0]["form"] == {"Url": f"{BASE}/voice/connect?i=1&a=2&b=1", "Method": "POST"}
    assert twilio_server.seen[1]["form"]["To"] == "+8613800138000" and placed.startswith("CA")
    assert twilio_server.seen[2]["form"] == {"Status": "completed"}


def test_twilio_refusals_become_typed_errors(twilio_server):
    twilio_server.fail = True
    port = twilio_server.server_address[1]
    telephony = TwilioTelephony(ACCOUNT, "token", http_client=LocalHttpClient(f"http://127.0.0.1:{port}"))
    with pytest.raises(TelephonyError, match="21220"):
        telephony.hangup_call("CA" + "3" * 32)


def test_accepting_a_waiting_caller_bridges_them_to_the_browser(app, client, db_session, clock, twilio_server,
                                                                 monkeypatch):
    port = twilio_server.server_address[1]
    monkeypatch.setitem(app.extensions, "desk.telephony", TwilioTelephony(
        ACCOUNT, "test-twilio-token", http_client=LocalHttpClient(f"http://127.0.0.1:{port}")))
    agent = make_staff(db_session)
    caller = queued_caller(client)
    interaction = accept(db_session, caller, agent)
    assert len(twilio_server.seen) == 1
    url = twilio_server.seen[0]["form"]["Url"]
    assert url == f"{BASE}/voice/connect?i={interaction.id}&a={agent.id}&b=1"
    reply = caller.post(url)
    assert reply.verbs == ["Say", "Dial"]
    dial = reply.first("Dial")
    assert dial.find("Client").findtext("Identity").strip() == f"agent-{agent.id}"
    assert dial.get("record") == "record-from-answer-dual"
    assert dial.get("action") == f"{BASE}/voice/dial-done?i={interaction.id}"
    reply = caller.post(dial.get("action"), {"DialCallStatus": "completed", "DialCallSid": new_call_sid()})
    assert reply.verbs == ["Say", "Hangup"]
    db_session.expire_all()
    assert db_session.get(Interaction, interaction.id).state == State.WRAP_UP


def test_an_agent_who_takes_calls_on_their_phone_gets_a_number_dial(client, db_session, clock, twin):
    agent = make_staff(db_session, phone_e164="+8613700000000")
    agent_leg.set_agent_device(db_session, agent, "phone")
    db_session.commit()
    caller = queued_caller(client)
    accept(db_session, caller, agent)
    reply = caller.post(twin.requests[0].data["url"])
    assert reply.first("Dial").find("Number").text == "+8613700000000"


def test_an_unanswered_agent_sends_the_caller_back_to_the_queue(client, db_session, clock, twin):
    agent = make_staff(db_session)
    caller = queued_caller(client)
    interaction = accept(db_session, caller, agent)
    caller.post(twin.requests[0].data["url"])
    reply = caller.post(f"{BASE}/voice/dial-done?i={interaction.id}", {"DialCallStatus": "no-answer"})
    assert reply.verbs == ["Redirect"] and "/voice/wait" in reply.redirect_url
    db_session.expire_all()
    again = db_session.get(Interaction, interaction.id)
    assert again.state == State.QUEUED and again.agent_id is None
    assert again.routing_age_origin == interaction.routing_age_origin  # the same place in line


def test_a_callback_is_placed_and_bridged_when_the_customer_answers(client, db_session, clock, twin):
    agent = make_staff(db_session)
    caller = queued_caller(client)
    caller.press("1")  # callback, keeping the place
    caller.hang_up()
    interaction = accept(db_session, caller, agent, from_state=State.CALLBACK_PENDING)
    placed = twin.requests[0]
    assert placed.action == "place" and placed.data["to"] == "+8613800138000"
    assert placed.data["from_"] == "+862100000000"
    outbound = Caller(client, call_sid=placed.call_sid, from_="+862100000000", to="+8613800138000")
    reply = outbound.post(placed.data["url"])
    assert reply.said[0] == "Hello, this is the service desk returning your call."
    assert reply.first("Dial").find("Client").findtext("Identity").strip() == f"agent-{agent.id}"
    outbound.post(placed.data["status_callback"], {"CallStatus": "completed"})
    db_session.expire_all()
    assert db_session.get(Interaction, interaction.id).state == State.WRAP_UP


def test_an_unanswered_callback_goes_to_wrap_up(client, db_session, clock, twin):
    agent = make_staff(db_session)
    caller = queued_caller(client)
    caller.press("1")
    interaction = accept(db_session, caller, agent, from_state=State.CALLBACK_PENDING)
    placed = twin.requests[0]
    Caller(client, call_sid=placed.call_sid).post(placed.data["status_callback"], {"CallStatus": "no-answer"})
    db_session.expire_all()
    assert db_session.get(Interaction, interaction.id).state == State.WRAP_UP


def test_connect_refuses_another_calls_sid(client, db_session, clock, twin):
    agent = make_staff(db_session)
    caller = queued_caller(client)
    accept(db_session, caller, agent)
    stranger = Caller(client)
    reply = stranger.post(twin.requests[0].data["url"])
    assert reply.status == 409 and reply.verbs == ["Say", "Hangup"]


def test_console_hold_resume_transfer_and_hangup(client, db_session, clock, twin):
    agent = make_staff(db_session)
    caller = queued_caller(client)
    interaction = accept(db_session, caller, agent)
    login(client, agent)
    assert client.post(f"/api/voice/{interaction.id}/hold", json={"on": True}).status_code == 200
    hold_url = twin.requests[-1].data["url"]
    assert hold_url == f"{BASE}/voice/hold?i={interaction.id}&n=1"
    reply = caller.post(hold_url)
    assert reply.verbs == ["Say", "Play"] and reply.first("Play").get("loop") == "0"
    client.post(f"/api/voice/{interaction.id}/hold", json={"on": False})
    assert twin.requests[-1].data["url"] == f"{BASE}/voice/connect?i={interaction.id}&a={agent.id}&b=2"
    assert client.post(f"/api/voice/{interaction.id}/transfer", json={"queue": "nowhere"}).status_code == 400
    response = client.post(f"/api/voice/{interaction.id}/transfer", json={"queue": "billing"})
    assert response.status_code == 200 and response.get_json()["state"] == "queued"
    assert twin.requests[-1].data["url"] == f"{BASE}/voice/wait?t=1"
    assert client.post(f"/api/voice/{interaction.id}/hangup").status_code == 403  # no longer their call


def test_console_hangup_asks_the_network(client, db_session, clock, twin):
    agent = make_staff(db_session)
    caller = queued_caller(client)
    interaction = accept(db_session, caller, agent)
    login(client, agent)
    assert client.post(f"/api/voice/{interaction.id}/hangup").status_code == 200
    assert (twin.requests[-1].action, twin.requests[-1].call_sid) == ("hangup", caller.call_sid)
    assert client.post("/api/voice/mute", json={"interaction_id": interaction.id}).status_code == 200


def test_another_agent_cannot_control_the_call(client, db_session, clock, twin):
    agent, other = make_staff(db_session), make_staff(db_session)
    caller = queued_caller(client)
    interaction = accept(db_session, caller, agent)
    login(client, other)
    assert client.post(f"/api/voice/{interaction.id}/hangup").status_code == 403


def test_softphone_token_carries_a_voice_grant(client, db_session, app):
    agent = make_staff(db_session)
    db_session.commit()
    assert client.get("/api/voice/token").status_code == 401
    login(client, agent)
    body = client.get("/api/voice/token").get_json()
    claims = pyjwt.decode(body["token"], "test-twilio-token", algorithms=["HS256"])
    assert body["identity"] == f"agent-{agent.id}"
    assert claims["grants"]["identity"] == f"agent-{agent.id}"
    assert claims["grants"]["voice"]["incoming"] == {"allow": True}


def test_device_choice(client, db_session):
    agent = make_staff(db_session)
    db_session.commit()
    login(client, agent)
    assert client.get("/api/voice/device").get_json()["device"] == "browser"
    assert client.post("/api/voice/device", json={"device": "phone"}).status_code == 400  # no number on file
    assert client.post("/api/voice/device", json={"device": "fax"}).status_code == 400
