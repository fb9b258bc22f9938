"""Twilio's webhooks never load a user from a session cookie; staff pages on the same client still do."""
from __future__ import annotations

import pytest

from app.channels.telephony import RecordingTelephony
from app.extensions import login_manager
from tests.factories import login, make_staff
from tests.ivr.phone import Caller


@pytest.fixture()
def loads(app, monkeypatch):
    seen: list[str] = []
    loader = login_manager._user_callback

    def counting_loader(user_id: str):
        seen.append(user_id)
        return loader(user_id)

    monkeypatch.setattr(login_manager, "_user_callback", counting_loader)
    return seen


def test_a_webhook_with_a_staff_cookie_does_not_load_the_user(app, client, db_session, loads, monkeypatch):
    monkeypatch.setitem(app.extensions, "desk.telephony", RecordingTelephony())
    agent = make_staff(db_session)
    db_session.commit()
    login(client, agent)
    loads.clear()
    reply = Caller(client).dial()  # the same client: the staff session cookie rides along
    assert reply.status == 200 and reply.verbs == ["Gather"]
    assert loads == []
    assert client.get("/console/").status_code == 200  # the cookie still signs the agent in elsewhere
    assert loads == [f"staff:{agent.id}"]


def test_a_badly_signed_webhook_is_still_refused(app, client, loads):
    response = client.post("/voice/incoming", data={"CallSid": "CA" + "0" * 32, "From": "+8613900000000",
                                                    "To": "+862100000000"},
                           headers={"X-Twilio-Signature": "not-a-signature"})
    assert response.status_code == 403
    assert loads == []


def test_a_webhook_neither_reads_nor_writes_the_session_cookie(app, client, db_session, monkeypatch):
    monkeypatch.setitem(app.extensions, "desk.telephony", RecordingTelephony())
    opened: list[str] = []
    interface = app.session_interface
    real_open = type(interface).__mro__[1].open_session

    def counting_open(self, flask_app, request):
        opened.append(request.path)
        return real_open(self, flask_app, request)

    monkeypatch.setattr(type(interface).__mro__[1], "open_session", counting_open)
    agent = make_staff(db_session)
    db_session.commit()
    login(client, agent)
    opened.clear()
    caller = Caller(client)
    reply = caller.dial()
    assert reply.status == 200 and opened == []
    response = client.post("/voice/incoming?lang=zh", data={"CallSid": caller.call_sid},
                           headers={"X-Twilio-Signature": "forged"})
    assert response.status_code == 403  # ?lang= on a webhook asks nothing of the null session
    assert "Set-Cookie" not in response.headers and opened == []
    assert client.get("/console/").status_code == 200
    assert opened == ["/console/"]
