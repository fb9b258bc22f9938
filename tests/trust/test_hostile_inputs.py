"""Hostile input across the desk's doors: each attempt is refused with a clear error, or rendered
harmless, and changes nothing it should not.

The channels test their own edge cases in depth; this suite walks the same attack across every door
so a new door cannot forget one."""
from __future__ import annotations

import io

import pytest
from sqlalchemy import func, select

from app.auth.models import Role
from app.interactions.models import Interaction
from tests.factories import login, make_customer, make_staff
from tests.ivr.phone import Caller
from tests.portal.helpers import PNG, make_account, portal_login

SCRIPT = "<script>alert('x')</script>"
PAYLOADS = [SCRIPT, '"><img src=x onerror=alert(1)>', "<svg/onload=alert(1)>", "javascript:alert(1)//",
            "{{ config }}{% raw %}", "' OR 1=1 --", "\u202egnp.exe"]


def _no_raw_markup(html: str) -> None:
    for dangerous in ("<script>alert('x')</script>", "<img src=x onerror", "<svg/onload"):
        assert dangerous not in html


# ---------------------------------------------------------------- stored XSS: what customers write
@pytest.mark.parametrize("payload", PAYLOADS)
def test_portal_case_text_is_escaped_for_customer_and_staff(app, client, db_session, payload):
    account = make_account(db_session, email="attacker@example.com", name="Mallory")
    db_session.commit()
    portal_login(client, account)
    response = client.post("/portal/cases/new", data={"category": "order", "subject": payload[:120],
                                                      "description": f"{payload} please help", "order_number": ""},
                           content_type="multipart/form-data")
    assert response.status_code == 302
    case = db_session.scalar(select(Interaction).where(Interaction.channel == "email"))
    page = client.get(f"/portal/cases/{case.id}").get_data(as_text=True)
    _no_raw_markup(page)
    assert "SECRET_KEY" not in page and "test-secret-key" not in page
    staff_client = app.test_client()
    login(staff_client, make_staff(db_session, role=Role.SUPERVISOR))
    for url in (f"/email/cases/{case.id}", f"/customers/{case.customer_id}"):
        staff_page = staff_client.get(url)
        if staff_page.status_code == 200:
            _no_raw_markup(staff_page.get_data(as_text=True))


def test_api_created_customer_names_are_escaped_on_staff_pages(app, db_session):
    from app.auth.tokens import issue_token

    _token, secret = issue_token(db_session, name="int", scopes=["customers:write", "customers:read"])
    lead = make_staff(db_session, role=Role.SUPERVISOR)
    db_session.commit()
    api = app.test_client()
    made = api.post("/api/customers", json={"name": SCRIPT, "kind": "individual"},
                    headers={"Authorization": f"Bearer {secret}"})
    assert made.status_code == 201
    assert made.json["name"] == SCRIPT, "stored as written; escaping is the renderer's job"
    staff = app.test_client()
    login(staff, lead)
    for url in (f"/customers/{made.json['id']}", "/customers/?q=script", "/audit/"):
        page = staff.get(url)
        if page.status_code == 200:
            _no_raw_markup(page.get_data(as_text=True))


def test_chat_text_is_stored_as_text_and_the_transcript_is_plain(app, db_session, desk_config):
    from app.channels import chat

    chat_session, _token = chat.start_chat(db_session, desk_config, name="<b>Eve</b>", email="eve@example.com",
                                           topic=desk_config.chat.topics[0].code)
    stored = chat.post_customer_message(db_session, desk_config.chat, chat_session, client_id="client-0001",
                                        text=SCRIPT + "\x00\x07")
    message, _created = stored
    body = message["body"]
    assert "\x00" not in body and "\x07" not in body, "control characters are dropped"
    with app.test_request_context("/"):
        transcript = chat.transcript_text(db_session, chat_session)
    assert SCRIPT in transcript, "plain text: the mail is sent as text/plain, never HTML"


# ---------------------------------------------------------------- templates: sandbox escapes
@pytest.mark.parametrize("body", [
    "{{ ''.__class__.__mro__[1].__subclasses__() }}",
    "{{ cycler.__init__.__globals__.os.popen('id').read() }}",
    "{{ self._TemplateReference__context }}",
    "{% for i in range(10**9) %}x{% endfor %}",
    "{{ 'a' * 100000000 }}",
])
def test_template_sandbox_escapes_are_refused_and_not_saved(app, client, db_session, body):
    from app.channels.email import templates

    admin = make_staff(db_session, role=Role.ADMIN)
    db_session.commit()
    login(client, admin)
    before = templates.source_of(db_session, "acknowledgement", "en", fresh=True)
    response = client.post("/admin/email/templates/acknowledgement/en",
                           data={"subject": "Re: {{ case.reference }}", "body": body, "action": "save"})
    text = response.get_data(as_text=True)
    assert response.status_code in (200, 400, 422)
    assert "uid=" not in text and "subclasses" not in text.split("<textarea")[0]
    assert templates.source_of(db_session, "acknowledgement", "en", fresh=True) == before, "nothing saved"


# ---------------------------------------------------------------- one customer reaching another's data
def test_a_customer_cannot_reach_another_customers_case_by_changing_ids(app, client, db_session):
    victim = make_account(db_session, email="victim@example.com")
    attacker = make_account(db_session, email="attacker2@example.com")
    db_session.commit()
    victim_client = app.test_client()
    portal_login(victim_client, victim)
    victim_client.post("/portal/cases/new", data={"category": "order", "subject": "mine", "description": "secret",
                                                  "order_number": "", "files": [(io.BytesIO(PNG), "p.png")]},
                       content_type="multipart/form-data")
    case = db_session.scalar(select(Interaction).where(Interaction.customer_id == victim.customer_id))
    portal_login(client, attacker)
    assert client.get(f"/portal/cases/{case.id}").status_code == 404
    assert client.post(f"/portal/cases/{case.id}", data={"body": "injected"}).status_code == 404
    from app.portal.models import Attachment

    attachment = db_session.scalar(select(Attachment))
    assert client.get(f"/portal/attachments/{attachment.id}").status_code == 404
    assert client.get("/api/customers/1/360").status_code in (401, 403), "customers never use the staff API"


# ---------------------------------------------------------------- CSRF
@pytest.mark.parametrize("url, data", [
    ("/portal/signin", {"email": "x@example.com", "password": "whatever-password"}),
    ("/login", {"email": "x@example.com", "password": "whatever-password"}),
    ("/portal/signup", {"name": "x", "email": "x@example.com", "password": "whatever-password"}),
])
def test_forms_without_a_csrf_token_are_refused(app, client, url, data):
    app.config["WTF_CSRF_ENABLED"] = True
    try:
        assert client.post(url, data=data).status_code == 400
    finally:
        app.config["WTF_CSRF_ENABLED"] = False


def test_staff_actions_without_csrf_token_are_refused(app, client, db_session):
    admin = make_staff(db_session, role=Role.ADMIN)
    db_session.commit()
    login(client, admin)
    app.config["WTF_CSRF_ENABLED"] = True
    try:
        response = client.post("/admin/api-tokens/", data={"name": "x", "scopes": ["customers:read"]})
        assert response.status_code == 400
    finally:
        app.config["WTF_CSRF_ENABLED"] = False
    from app.auth.tokens import ApiToken

    assert db_session.query(ApiToken).count() == 0


# ---------------------------------------------------------------- signatures: replayed and tampered
def test_tampered_and_replayed_twilio_webhooks(app, client, db_session, monkeypatch):
    from app.channels.telephony import RecordingTelephony

    monkeypatch.setitem(app.extensions, "desk.telephony", RecordingTelephony())
    caller = Caller(client)
    first = caller.dial()
    assert first.status == 200
    replay = caller.dial()  # Twilio's retry, or an attacker replaying a captured request
    assert replay.text == first.text
    assert db_session.scalar(select(func.count()).select_from(Interaction)) == 1, "stored once"
    forged = caller.post("/voice/incoming", {"CallStatus": "ringing", "From": "+10000000000"},
                         signature="AAAA" + "=" * 24)
    assert forged.status == 403


def test_inbound_email_door_needs_its_secret(app, client, monkeypatch):
    from tests.email.conftest import email_config

    config = app.extensions["desk.config"].model_copy(update={"email": email_config()})
    monkeypatch.setitem(app.extensions, "desk.config", config)
    raw = b"From: a@example.com\r\nTo: support@desk.test\r\nSubject: hi\r\nMessage-ID: <h1@x>\r\n\r\nhello"
    for headers in ({}, {"Authorization": "Bearer wrong"}, {"X-Desk-Email-Secret": "shared-secre"}):
        response = client.post("/api/email/inbound/support", data=raw, headers=headers,
                               content_type="message/rfc822")
        assert response.status_code == 401 and response.json["error"] == "unauthorized"


# ---------------------------------------------------------------- brute force
def test_portal_sign_in_is_rate_limited(app, client, db_session):
    account = make_account(db_session, email="target@example.com")
    db_session.commit()
    codes = [client.post("/portal/signin", data={"email": account.email, "password": f"guess-{i}-password"}
                         ).status_code for i in range(15)]
    assert 429 in codes and codes[0] in (200, 400, 401)
    assert client.post("/portal/signin", data={"email": account.email, "password": "correct-horse-battery"}
                       ).status_code == 429, "locked even with the right password"


def test_oversized_and_malformed_api_input(app, db_session):
    from app.auth.tokens import issue_token

    _t, secret = issue_token(db_session, name="int", scopes=["customers:write"])
    db_session.commit()
    api = app.test_client()
    auth = {"Authorization": f"Bearer {secret}"}
    assert api.post("/api/customers", data="{not json", headers={**auth, "Content-Type": "application/json"}
                    ).status_code in (400, 422)
    assert api.post("/api/customers", json={"name": "x" * 10_000}, headers=auth).status_code == 422
    assert api.post("/api/customers", json=["a", "list"], headers=auth).status_code in (400, 422)
    assert make_customer(db_session) is not None
