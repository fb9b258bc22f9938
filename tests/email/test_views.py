"""HTTP: the raw-MIME door for mail servers, the staff case view, admin pages, the mail CLI."""
from __future__ import annotations

import json
import re
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import func, select

from app.channels.email.models import EmailAttachment, EmailMessage, EmailTemplate, InboundEmail
from app.interactions.models import Interaction
from app.interactions.service import record_fact
from tests.email.conftest import build_mail
from tests.factories import login, make_staff

AUTH = {"Authorization": "Bearer shared-secret"}


# --- the raw-MIME endpoint --------------------------------------------------------------------------------

def test_inbound_endpoint_stores_and_routes(client, desk, db_session):
    raw = build_mail(message_id="<http1@customer.test>")
    response = client.post("/api/email/inbound/support", data=raw, headers=AUTH,
                           content_type="message/rfc822")
    assert response.status_code == 202
    body = response.get_json()
    assert body["status"] == "stored" and body["interaction_id"]
    again = client.post("/api/email/inbound/support", data=raw, headers=AUTH)
    assert again.status_code == 200 and again.get_json()["status"] == "duplicate"
    assert db_session.get(InboundEmail, body["id"]).source == "http"


def test_inbound_endpoint_accepts_the_secret_header_and_keeps_garbage(client, desk):
    response = client.post("/api/email/inbound/support", data=b"\x00garbage\xff",
                           headers={"X-Desk-Email-Secret": "shared-secret"})
    assert response.status_code == 202 and response.get_json()["status"] == "quarantined"


@pytest.mark.parametrize(("headers", "path", "data", "status"), [
    ({}, "/api/email/inbound/support", b"x", 401),
    ({"Authorization": "Bearer wrong"}, "/api/email/inbound/support", b"x", 401),
    (AUTH, "/api/email/inbound/nope", b"x", 404),
    (AUTH, "/api/email/inbound/support", b"   ", 400),
])
def test_inbound_endpoint_refusals(client, desk, headers, path, data, status):
    assert client.post(path, data=data, headers=headers).status_code == status


def test_inbound_endpoint_without_a_configured_secret_is_closed(app, client, desk):
    from tests.email.conftest import set_email_config

    set_email_config(app, inbound_secret={})
    assert client.post("/api/email/inbound/support", data=b"x", headers=AUTH).status_code == 503


# --- staff: the case ------------------------------------------------------------------------------------

@pytest.fixture()
def html_case(ingest, db_session):
    raw = build_mail(html='<p>Look <img src="https://tracker.test/p.gif"> <img src="cid:pic@x"></p>'
                          '<script>alert(1)</script>',
                     attachments=[("invoice.pdf", "application/pdf", b"%PDF-1.4 data")])
    result = ingest(raw)
    message = db_session.scalar(select(EmailMessage).where(EmailMessage.inbound_id == result.inbound_id))
    # a row stored before attachments were read from the raw message: its bytes in ``content``
    message.attachments.append(EmailAttachment(filename="pic.png", content_type="image/png", size_bytes=4,
                                               content_id="pic@x", content=b"\x89PNG"))
    db_session.commit()
    return db_session.get(Interaction, result.interaction_id)


def test_case_page_shows_sanitised_html_with_images_blocked(client, db_session, html_case):
    supervisor = make_staff(db_session, role="supervisor")
    db_session.commit()
    login(client, supervisor)
    page = client.get(f"/email/cases/{html_case.id}")
    html = page.get_data(as_text=True)
    assert page.status_code == 200
    assert "<script>alert(1)</script>" not in html and "tracker.test" not in html
    assert "1 remote image(s) blocked." in html
    assert "img-src 'self'" in page.headers["Content-Security-Policy"]
    pic = db_session.scalar(select(EmailAttachment).where(EmailAttachment.filename == "pic.png"))
    assert f'src="/email/attachments/{pic.id}"' in html

    message = db_session.scalar(select(EmailMessage).where(EmailMessage.interaction_id == html_case.id))
    allowed = client.post(f"/email/messages/{message.id}/allow-images")
    assert allowed.status_code == 302
    html = client.get(f"/email/cases/{html_case.id}").get_data(as_text=True)
    assert "https://tracker.test/p.gif" in html


def test_case_page_in_chinese(client, db_session, html_case):
    supervisor = make_staff(db_session, role="supervisor", language="zh", timezone="Asia/Shanghai")
    db_session.commit()
    login(client, supervisor)
    html = client.get(f"/email/cases/{html_case.id}?lang=zh").get_data(as_text=True)
    assert "显示图片" in html and "回复" in html
    assert "状态: 排队中 · 队列: 一般咨询" in html  # the case's state and queue by name
    ack = db_session.scalar(select(EmailMessage).where(EmailMessage.kind == "ack"))
    shown = (ack.sent_at or ack.created_at).astimezone(ZoneInfo("Asia/Shanghai")).strftime("%Y-%m-%d %H:%M")
    assert re.search(rf'<time datetime="[^"]+">{shown}</time>\s*· 自动确认', html)  # in the reader's time zone
    assert "状态: 已发送" in html


def test_attachments_are_served_only_to_staff_with_access(client, db_session, html_case):
    pdf = db_session.scalar(select(EmailAttachment).where(EmailAttachment.filename == "invoice.pdf"))
    url = f"/email/attachments/{pdf.id}"
    assert client.get(url).status_code == 302  # anonymous: to the sign-in page
    outsider = make_staff(db_session, role="agent")
    holder = make_staff(db_session, role="agent")
    db_session.commit()
    login(client, outsider)
    assert client.get(url).status_code == 403
    assert client.get(f"/email/cases/{html_case.id}").status_code == 403
    client.post("/logout")
    record_fact(db_session, html_case, "offer", actor="router", data={"agent_id": holder.id})
    db_session.commit()
    login(client, holder)
    response = client.get(url)
    assert response.status_code == 200 and response.data == b"%PDF-1.4 data"
    assert response.headers["Content-Disposition"].startswith("attachment;")
    assert response.mimetype == "application/octet-stream"
    assert "sandbox" in response.headers["Content-Security-Policy"]
    pic = db_session.scalar(select(EmailAttachment).where(EmailAttachment.filename == "pic.png"))
    old_row = client.get(f"/email/attachments/{pic.id}")
    assert old_row.headers["Content-Disposition"].startswith("inline;") and old_row.data == b"\x89PNG"


def test_inline_cid_images_are_served_from_the_raw_message(client, db_session, ingest):
    from email.message import EmailMessage as Mime

    mail = Mime()
    mail["From"], mail["To"], mail["Subject"] = "alice@customer.test", "support@desk.test", "See the photo"
    mail["Message-ID"] = "<cid-photo@customer.test>"
    mail.set_content("photo inside")
    mail.add_alternative('<p>Here: <img src="cid:photo@customer.test"></p>', subtype="html")
    mail.get_payload()[1].add_related(b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 40, maintype="image",
                                      subtype="png", cid="<photo@customer.test>", filename="photo.png")
    result = ingest(mail.as_bytes())
    supervisor = make_staff(db_session, role="supervisor")
    db_session.commit()
    login(client, supervisor)
    photo = db_session.scalar(select(EmailAttachment).where(EmailAttachment.content_id == "photo@customer.test"))
    assert photo.content is None and photo.mime_part == "2.2"  # alternative: 1 text, 2 related (2.1 html, 2.2 image)
    html = client.get(f"/email/cases/{result.interaction_id}").get_data(as_text=True)
    assert f'src="/email/attachments/{photo.id}"' in html
    image = client.get(f"/email/attachments/{photo.id}")
    assert image.status_code == 200 and image.mimetype == "image/png"
    assert image.data == b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 40


def test_the_agent_holding_the_case_has_access(client, db_session, html_case):
    agent = make_staff(db_session, role="agent")
    html_case.agent_id = agent.id
    db_session.commit()
    login(client, agent)
    assert client.get(f"/api/email/interactions/{html_case.id}/messages").status_code == 200


def test_withheld_attachments_are_gone(client, db_session, ingest):
    result = ingest(build_mail(attachments=[("virus.exe", "application/octet-stream", b"MZ")]))
    row = db_session.scalar(select(EmailAttachment))
    admin = make_staff(db_session, role="admin")
    db_session.commit()
    login(client, admin)
    assert client.get(f"/email/attachments/{row.id}").status_code == 410
    data = client.get(f"/api/email/interactions/{result.interaction_id}/messages").get_json()
    assert data["messages"][0]["attachments"][0]["withheld"] == "blocked_type"


def test_reply_api_with_undo(client, db_session, desk, jobs, outbox, ingest):
    result = ingest(build_mail())
    outbox.sent.clear()
    agent = make_staff(db_session, role="supervisor")
    db_session.commit()
    login(client, agent)
    url = f"/api/email/interactions/{result.interaction_id}/replies"
    assert client.post(url, json={"body": "  "}).status_code == 400
    assert client.post(url, json={"body": "x", "cc": ["not-an-address"]}).status_code == 400
    created = client.post(url, json={"body": "Hello", "cc": "Boss@customer.test"})
    assert created.status_code == 201 and created.get_json()["undo_window_s"] == 10
    message_id = created.get_json()["id"]
    assert client.get(f"/api/email/outbound/{message_id}").get_json()["status"] == "scheduled"
    assert client.post(f"/api/email/outbound/{message_id}/cancel").get_json()["status"] == "cancelled"
    assert client.post(f"/api/email/outbound/{message_id}/cancel").status_code == 409
    jobs.run_delayed()
    assert outbox.sent == []

    second = client.post(url, json={"body": "Second try"}).get_json()["id"]
    jobs.run_delayed()
    assert client.get(f"/api/email/outbound/{second}").get_json()["status"] == "sent"
    assert client.post(f"/api/email/outbound/{second}/cancel").status_code == 409


def test_reply_to_an_undeliverable_address_is_refused(client, db_session, desk, ingest):
    from app.channels.email.outbound import mark_undeliverable

    result = ingest(build_mail())
    mark_undeliverable(db_session, "alice@customer.test", "5.1.1", "gone", None)
    admin = make_staff(db_session, role="admin")
    db_session.commit()
    login(client, admin)
    response = client.post(f"/api/email/interactions/{result.interaction_id}/replies", json={"body": "Hi"})
    assert response.status_code == 409 and response.get_json()["error"] == "undeliverable"
    assert "bounced permanently" in client.get(f"/email/cases/{result.interaction_id}").get_data(as_text=True)


def test_unknown_cases_are_404(client, db_session, desk):
    admin = make_staff(db_session, role="admin")
    db_session.commit()
    login(client, admin)
    assert client.get("/email/cases/999").status_code == 404
    assert client.get("/email/attachments/999").status_code == 404
    assert client.post("/api/email/outbound/999/cancel").status_code == 404


# --- admin pages ---------------------------------------------------------------------------------------

@pytest.fixture()
def admin_client(client, db_session, desk):
    admin = make_staff(db_session, role="admin")
    db_session.commit()
    login(client, admin)
    return client


def test_quarantine_pages_retry_and_release(admin_client, db_session, ingest, app):
    bad = ingest(b"not a mail at all")
    too_many = ingest(build_mail(attachments=[(f"f{i}.txt", "text/plain", b"x") for i in range(8)]))
    page = admin_client.get("/admin/email/quarantine").get_data(as_text=True)
    assert "Not an email (no header fields)" in page and "Too many attachments" in page
    detail = admin_client.get(f"/admin/email/quarantine/{too_many.inbound_id}").get_data(as_text=True)
    assert "Help please" in detail and "alice@customer.test" in detail
    raw = admin_client.get(f"/admin/email/quarantine/{bad.inbound_id}/raw")
    assert raw.data == b"not a mail at all"

    retried = admin_client.post(f"/admin/email/quarantine/{too_many.inbound_id}/retry", follow_redirects=True)
    assert "Still quarantined" in retried.get_data(as_text=True)
    released = admin_client.post(f"/admin/email/quarantine/{too_many.inbound_id}/release", follow_redirects=True)
    assert "The message is now on case" in released.get_data(as_text=True)
    assert db_session.get(InboundEmail, too_many.inbound_id).status == "processed"
    again = admin_client.post(f"/admin/email/quarantine/{too_many.inbound_id}/release", follow_redirects=True)
    assert "no longer in the quarantine" in again.get_data(as_text=True)
    assert "The quarantine is empty." not in admin_client.get("/admin/email/quarantine").get_data(as_text=True)


def test_admin_pages_are_for_admins_only(client, db_session, desk):
    agent = make_staff(db_session, role="supervisor")
    db_session.commit()
    login(client, agent)
    for url in ("/admin/email/quarantine", "/admin/email/templates", "/admin/email/mailboxes"):
        assert client.get(url).status_code == 403


def test_templates_preview_save_and_reset(admin_client, db_session, ingest, outbox):
    listing = admin_client.get("/admin/email/templates").get_data(as_text=True)
    assert "Automatic acknowledgement" in listing and "Built-in" in listing
    form = admin_client.get("/admin/email/templates/acknowledgement/zh").get_data(as_text=True)
    assert "我们已收到您的来信" in form and "王小明" in form  # previewed with sample values

    preview = admin_client.post("/admin/email/templates/acknowledgement/en",
                                data={"subject": "Got it: {{ case.reference }}", "body": "Hi {{ customer.name }}",
                                      "action": "preview"}).get_data(as_text=True)
    assert "Got it: C-1234" in preview and "Hi Alex Smith" in preview
    assert db_session.scalar(select(func.count()).select_from(EmailTemplate)) == 0

    broken = admin_client.post("/admin/email/templates/acknowledgement/en",
                               data={"subject": "x", "body": "{{ customer.__class__ }}", "action": "save"})
    assert "has a problem" in broken.get_data(as_text=True)
    assert db_session.scalar(select(func.count()).select_from(EmailTemplate)) == 0

    saved = admin_client.post("/admin/email/templates/acknowledgement/en",
                              data={"subject": "Got it: {{ case.reference }}",
                                    "body": "Hi {{ customer.name }}, see {{ case.tag }}", "action": "save"})
    assert saved.status_code == 302
    result = ingest(build_mail())
    assert str(outbox.sent[-1].message["Subject"]).startswith(f"Got it: C-{result.interaction_id}")

    admin_client.post("/admin/email/templates/acknowledgement/en", data={"action": "reset"})
    assert db_session.scalar(select(func.count()).select_from(EmailTemplate)) == 0
    assert admin_client.get("/admin/email/templates/nope/en").status_code == 404


def test_a_stored_template_that_breaks_falls_back_to_the_built_in(db_session, ingest, outbox):
    db_session.add(EmailTemplate(key="acknowledgement", language="en", subject="{{ missing.thing }}", body="x"))
    db_session.commit()
    ingest(build_mail())
    assert "We have received your message" in str(outbox.sent[0].message["Subject"])


def test_mailboxes_page_and_clearing_an_undeliverable_address(admin_client, db_session):
    from app.channels.email.models import UndeliverableAddress
    from app.channels.email.outbound import mark_undeliverable

    mark_undeliverable(db_session, "gone@customer.test", "5.1.1", "User unknown", None)
    db_session.commit()
    page = admin_client.get("/admin/email/mailboxes").get_data(as_text=True)
    assert "support@desk.test" in page and "gone@customer.test" in page
    row = db_session.scalar(select(UndeliverableAddress))
    admin_client.post(f"/admin/email/undeliverable/{row.id}/clear")
    assert db_session.scalar(select(func.count()).select_from(UndeliverableAddress)) == 0


# --- the CLI --------------------------------------------------------------------------------------------

def test_mail_ingest_cli_prints_counts(app, desk, tmp_path, db_session):
    files = []
    for name, raw in [("a.eml", build_mail(message_id="<cli1@x>")), ("b.eml", build_mail(message_id="<cli1@x>")),
                      ("c.eml", b"\x00junk"), ("d.eml", build_mail(message_id="<cli2@x>"))]:
        path = tmp_path / name
        path.write_bytes(raw)
        files.append(str(path))
    result = app.test_cli_runner().invoke(args=["mail", "ingest", *files])
    assert result.exit_code == 0, result.output
    assert json.loads(result.output.strip().splitlines()[-1]) == {"stored": 2, "duplicates": 1, "quarantined": 1}
    missing = app.test_cli_runner().invoke(args=["mail", "ingest", "--mailbox", "billing", str(tmp_path / "no.eml")])
    assert missing.exit_code == 1 and json.loads(missing.output.strip().splitlines()[-1])["stored"] == 0
    unknown = app.test_cli_runner().invoke(args=["mail", "ingest", "--mailbox", "nope", files[0]])
    assert unknown.exit_code == 2


def test_mail_poll_and_send_due_cli(app, desk):
    runner = app.test_cli_runner()
    assert runner.invoke(args=["mail", "poll", "--all"]).exit_code == 0
    assert json.loads(runner.invoke(args=["mail", "send-due"]).output) == {"requeued": 0}
