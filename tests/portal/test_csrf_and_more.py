"""CSRF on every form, complaint follow-ups, chat transcripts in the portal."""
from __future__ import annotations

import re

import pytest

from app.channels import chat
from app.portal import cases
from tests.factories import make_interaction, make_order
from tests.portal.helpers import PNG, make_account, portal_login


@pytest.fixture()
def csrf_on(app):
    app.config["WTF_CSRF_ENABLED"] = True
    yield
    app.config["WTF_CSRF_ENABLED"] = False


def _token(page: bytes) -> str:
    match = re.search(rb'name="csrf_token" type="hidden" value="([^"]+)"', page) or \
        re.search(rb'id="csrf_token" name="csrf_token" type="hidden" value="([^"]+)"', page) or \
        re.search(rb'"csrf": "([^"]+)"', page)
    assert match, page[:500]
    return match.group(1).decode()


@pytest.mark.parametrize("path,data", [
    ("/portal/signin", {"email": "a@example.com", "password": "whatever-long"}),
    ("/portal/signin/link", {"email": "a@example.com"}),
    ("/portal/signup", {"name": "A", "email": "a@example.com", "password": "long-enough-pass",
                        "confirm": "long-enough-pass", "language": "en"}),
    ("/portal/reset", {"email": "a@example.com"}),
    ("/portal/kb/track-order/vote", {"helpful": "yes"}),
    ("/chat/upload", {}),
])
def test_posts_without_a_csrf_token_are_refused(app, client, csrf_on, path, data):
    assert client.post(path, data=data).status_code == 400


def test_sign_in_with_the_form_token_works(app, client, db_session, csrf_on):
    account = make_account(db_session, email="csrf@example.com")
    db_session.commit()
    token = _token(client.get("/portal/signin").data)
    response = client.post("/portal/signin", data={"email": account.email, "password": "correct-horse-battery",
                                                   "csrf_token": token})
    assert response.status_code == 302


def test_chat_upload_needs_the_frame_token(app, client, db_session, csrf_on, monkeypatch):
    monkeypatch.setattr(chat, "queue_is_open", lambda desk_config, queue, at: True)
    app.config["CHAT_TIMERS"] = False
    try:
        started, raw = chat.start_chat(db_session, app.extensions["desk.config"], name="A", email="a@example.com",
                                       topic="general")
        token = _token(client.get("/chat/frame").data)
        import io

        refused = client.post("/chat/upload", headers={"X-Chat-Token": raw},
                              data={"file": (io.BytesIO(PNG), "a.png")}, content_type="multipart/form-data")
        assert refused.status_code == 400
        ok = client.post("/chat/upload", headers={"X-Chat-Token": raw, "X-CSRFToken": token},
                         data={"file": (io.BytesIO(PNG), "a.png")}, content_type="multipart/form-data")
        assert ok.status_code == 200 and ok.get_json()["ok"]
    finally:
        app.config.pop("CHAT_TIMERS", None)


def test_customer_adds_information_to_their_complaint(app, client, db_session):
    account = make_account(db_session, email="cm@example.com")
    order = make_order(db_session, account.customer)
    db_session.commit()
    portal_login(client, account)
    complaint = cases.raise_portal_complaint(db_session, app.extensions["desk.config"],
                                             customer_id=account.customer_id, category="delivery_delay",
                                             description="Two weeks late", order_number=order.number,
                                             remedy_sought="", uploads=[])
    response = client.post(f"/portal/complaints/{complaint.id}", data={"body": "Tracking number SF123"})
    assert response.status_code == 302
    page = client.get(f"/portal/complaints/{complaint.id}")
    assert b"Tracking number SF123" in page.data
    assert client.post(f"/portal/complaints/{complaint.id}", data={"body": "   "}).status_code == 400
    other = make_account(db_session, email="other-cm@example.com")
    db_session.commit()
    with pytest.raises(cases.CaseNotFound):
        cases.complaint_message(db_session, customer_id=other.customer_id, complaint_id=complaint.id, body="x",
                                max_chars=100)
    stranger = client.application.test_client()
    portal_login(stranger, other)
    assert stranger.post(f"/portal/complaints/{complaint.id}", data={"body": "hijack"}).status_code == 404


def test_past_chats_are_readable_by_their_customer_only(app, client, db_session, monkeypatch):
    monkeypatch.setattr(chat, "queue_is_open", lambda desk_config, queue, at: True)
    app.config["CHAT_TIMERS"] = False
    try:
        account = make_account(db_session, email="chatter@example.com")
        db_session.commit()
        started, _ = chat.start_chat(db_session, app.extensions["desk.config"], name="C", email="x@example.com",
                                     topic="general", account_id=account.id)
        chat.post_customer_message(db_session, app.extensions["desk.config"].chat, started,
                                   client_id="c-00000001", text="<i>my question</i>")
        bare = make_interaction(db_session, customer=account.customer, channel="chat")
        db_session.commit()
        portal_login(client, account)
        history = client.get("/portal/history").data
        assert f"/portal/chats/{started.interaction_id}".encode() in history
        page = client.get(f"/portal/chats/{started.interaction_id}")
        assert page.status_code == 200 and b"&lt;i&gt;my question&lt;/i&gt;" in page.data
        assert client.get(f"/portal/chats/{bare.id}").status_code == 200  # a chat with no messages stored
        other = make_account(db_session, email="nosy@example.com")
        db_session.commit()
        stranger = client.application.test_client()
        portal_login(stranger, other)
        assert stranger.get(f"/portal/chats/{started.interaction_id}").status_code == 404
    finally:
        app.config.pop("CHAT_TIMERS", None)
