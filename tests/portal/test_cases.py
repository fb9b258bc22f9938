"""Cases, complaints, history and attachments from the customer's side; no cross-customer access."""
from __future__ import annotations

import io

import pytest
from sqlalchemy import select

from app.interactions.models import Interaction
from app.interactions.service import transition
from app.interactions.states import State
from app.portal import cases
from app.portal.attachments import AttachmentRejected, safe_filename, sniff_type, store_attachment
from app.portal.config import AttachmentLimits
from app.portal.models import Attachment, CaseMessage
from tests.factories import make_interaction, make_order, make_staff
from tests.portal.helpers import PDF, PNG, emails_to, make_account, portal_login


@pytest.fixture()
def signed_in(app, client, db_session):
    account = make_account(db_session, email="me@example.com", name="Me")
    db_session.commit()
    portal_login(client, account)
    return account


def _new_case(client, **extra):
    data = {"category": "order", "subject": "Where is my parcel", "description": "It has not arrived.",
            "order_number": ""}
    data.update(extra)
    return client.post("/portal/cases/new", data=data, content_type="multipart/form-data")


def test_open_case_with_attachment_routes_it_and_acknowledges(app, client, db_session, signed_in):
    order = make_order(db_session, signed_in.customer)
    db_session.commit()
    response = _new_case(client, order_number=order.number, files=[(io.BytesIO(PNG), "photo.png")])
    assert response.status_code == 302
    case = db_session.scalar(select(Interaction).where(Interaction.channel == "email"))
    assert case.state == State.QUEUED and case.queue == "general" and case.customer_id == signed_in.customer_id
    assert case.attributes["order_number"] == order.number and case.attributes["reference"] == f"C-{case.id}"
    thread = cases.thread(db_session, signed_in.customer_id, case.id)
    assert thread[0].body == "It has not arrived." and thread[0].attachments[0].filename == "photo.png"
    assert emails_to(db_session, "me@example.com", "case_ack")
    page = client.get(f"/portal/cases/{case.id}")
    assert page.status_code == 200 and b"photo.png" in page.data and b"We will reply by" in page.data
    home = client.get("/portal/")
    assert f"C-{case.id}".encode() in home.data


def test_case_form_errors(app, client, db_session, signed_in):
    other = make_account(db_session, email="other@example.com")
    theirs = make_order(db_session, other.customer)
    db_session.commit()
    assert _new_case(client, order_number=theirs.number).status_code == 400  # not your order
    assert _new_case(client, files=[(io.BytesIO(b"MZ\x90\x00binary"), "virus.exe")]).status_code == 400
    assert _new_case(client, category="nope").status_code == 400
    assert db_session.scalar(select(Interaction.id).where(Interaction.channel == "email")) is None


def test_reply_reopens_a_closed_case_and_agent_reply_is_visible(app, client, db_session, signed_in):
    assert _new_case(client).status_code == 302
    case = db_session.scalar(select(Interaction).where(Interaction.channel == "email"))
    agent = make_staff(db_session)
    cases.post_agent_reply(db_session, case_id=case.id, agent_id=agent.id, body="It ships today.",
                           base_url="http://desk.test")
    transition(db_session, case, State.CLOSED, actor="test")
    db_session.commit()
    assert emails_to(db_session, "me@example.com", "case_reply")
    assert b"It ships today." in client.get(f"/portal/cases/{case.id}").data
    response = client.post(f"/portal/cases/{case.id}", data={"body": "It still has not come."},
                           content_type="multipart/form-data")
    assert response.status_code == 302
    db_session.expire_all()
    assert db_session.get(Interaction, case.id).state == State.QUEUED
    assert [m.author for m in cases.thread(db_session, signed_in.customer_id, case.id)] == \
        ["customer", "agent", "customer"]
    assert client.post(f"/portal/cases/{case.id}", data={"body": ""}).status_code == 400
    with pytest.raises(cases.CaseInvalid):
        cases.post_agent_reply(db_session, case_id=case.id, agent_id=agent.id, body=" ", base_url="x")
    with pytest.raises(cases.CaseNotFound):
        cases.post_agent_reply(db_session, case_id=999999, agent_id=agent.id, body="x", base_url="x")


def test_no_cross_customer_access(app, client, db_session, signed_in):
    other = make_account(db_session, email="victim@example.com")
    theirs = cases.open_case(db_session, app.extensions["desk.config"], customer_id=other.customer_id,
                             category="other", subject="Private matter", description="secret text",
                             base_url="http://desk.test")
    message = db_session.scalar(select(CaseMessage).where(CaseMessage.interaction_id == theirs.id))
    file = store_attachment(db_session, data=PDF, filename="bank.pdf", limits=AttachmentLimits(),
                            uploaded_by="customer:x", customer_id=other.customer_id, interaction_id=theirs.id)
    call = make_interaction(db_session, customer=other.customer, channel="voice")
    db_session.commit()
    assert client.get(f"/portal/cases/{theirs.id}").status_code == 404
    assert client.post(f"/portal/cases/{theirs.id}", data={"body": "hijack"}).status_code == 404
    assert client.get(f"/portal/attachments/{file.id}").status_code == 404
    assert client.get(f"/chat/attachments/{file.id}").status_code == 404
    assert client.get(f"/portal/cases/{call.id}").status_code == 404
    assert b"Private matter" not in client.get("/portal/history").data
    assert b"Private matter" not in client.get("/portal/").data
    with pytest.raises(cases.CaseNotFound):
        cases.thread(db_session, signed_in.customer_id, theirs.id)
    assert message.body == "secret text"
    # the owner and staff do see it
    owner = client.application.test_client()
    portal_login(owner, other)
    assert owner.get(f"/portal/attachments/{file.id}").status_code == 200


def test_history_across_channels_hides_internal_fields(app, client, db_session, signed_in):
    call = make_interaction(db_session, customer=signed_in.customer, channel="voice")
    call.notes = "INTERNAL NOTE customer was rude"
    call.priority_reasons = [{"code": "vip"}]
    make_interaction(db_session, customer=signed_in.customer, channel="chat", subject="General question")
    db_session.commit()
    rows = cases.customer_history(db_session, signed_in.customer_id)
    assert {r["channel"] for r in rows} == {"voice", "chat"}
    assert all(set(r) == {"id", "channel", "direction", "created_at", "status", "subject", "reference"} for r in rows)
    page = client.get("/portal/history")
    assert b"Phone call" in page.data and b"INTERNAL NOTE" not in page.data


@pytest.mark.parametrize("state,shown", [("new", "open"), ("queued", "open"), ("connected", "in_progress"),
                                         ("wrap_up", "in_progress"), ("closed", "closed"),
                                         ("abandoned", "closed")])
def test_customer_status_labels(state, shown):
    assert cases.customer_status(state) == shown


def test_complaint_from_the_portal_is_graded_with_deadlines(app, client, db_session, signed_in):
    order = make_order(db_session, signed_in.customer)
    db_session.commit()
    response = client.post("/portal/complaints/new", data={
        "category": "loss_or_damage", "description": "The vase arrived broken.", "remedy_sought": "A refund",
        "order_number": order.number, "files": [(io.BytesIO(PNG), "broken.png")]},
        content_type="multipart/form-data")
    assert response.status_code == 302, response.data[:300]
    complaint = cases.complaints_of(db_session, signed_in.customer_id)[0]
    assert complaint.channel == "portal" and complaint.order_id == order.id and complaint.level
    assert complaint.evidence[0]["name"] == "broken.png"
    page = client.get(f"/portal/complaints/{complaint.id}")
    assert page.status_code == 200 and complaint.reference.encode() in page.data
    assert complaint.reference.encode() in client.get("/portal/").data
    other = make_account(db_session, email="x2@example.com")
    db_session.commit()
    stranger = client.application.test_client()
    portal_login(stranger, other)
    assert stranger.get(f"/portal/complaints/{complaint.id}").status_code == 404
    assert stranger.get(complaint.evidence[0]["url"]).status_code == 404
    assert client.get(complaint.evidence[0]["url"]).status_code == 200
    bad = client.post("/portal/complaints/new", data={"category": "loss_or_damage", "description": "x",
                                                      "files": [(io.BytesIO(b"nope"), "a.txt")]},
                      content_type="multipart/form-data")
    assert bad.status_code == 400


@pytest.mark.parametrize("data,expected", [
    (PNG, "image/png"), (b"\xff\xd8\xff\xe0rest", "image/jpeg"), (b"GIF89a...", "image/gif"),
    (b"GIF87a...", "image/gif"), (PDF, "application/pdf"), (b"RIFF\x00\x00\x00\x00WEBPVP8 ", "image/webp"),
    (b"<html><script>", None), (b"", None), (b"MZ\x90", None),
])
def test_sniff_type_reads_bytes_not_names(data, expected):
    assert sniff_type(data) == expected


@pytest.mark.parametrize("name,kind,expected", [
    ("../../etc/passwd", "image/png", "passwd.png"), ("report.exe", "application/pdf", "report.pdf"),
    ('a"b<c>.png', "image/png", "abc.png"), ("", "image/jpeg", "attachment.jpg"),
    ("C:\\Users\\me\\pic.gif", "image/gif", "pic.gif"), ("发票.pdf", "application/pdf", "发票.pdf"),
])
def test_safe_filename(name, kind, expected):
    assert safe_filename(name, kind) == expected


def test_attachment_limits(app, db_session):
    limits = AttachmentLimits(max_bytes=100, max_files=1, types=["image/png"])
    with pytest.raises(AttachmentRejected) as empty:
        store_attachment(db_session, data=b"", filename="a", limits=limits, uploaded_by="t")
    assert empty.value.code == "empty"
    with pytest.raises(AttachmentRejected) as large:
        store_attachment(db_session, data=PNG + b"0" * 100, filename="a", limits=limits, uploaded_by="t")
    assert large.value.code == "too_large"
    with pytest.raises(AttachmentRejected) as kind:
        store_attachment(db_session, data=PDF, filename="a.pdf", limits=limits, uploaded_by="t")
    assert kind.value.code == "type_not_allowed"
    row = store_attachment(db_session, data=PNG, filename="a.png", limits=limits, uploaded_by="t")
    assert row.size_bytes == len(PNG) and len(row.sha256) == 64
    with pytest.raises(ValueError):
        AttachmentLimits(types=["text/html"])
    assert db_session.scalar(select(Attachment.id)) == row.id


def test_pages_speak_chinese(app, client, db_session, signed_in):
    cases.raise_portal_complaint(db_session, app.extensions["desk.config"], customer_id=signed_in.customer_id,
                                 category="billing", description="charged twice", order_number=None,
                                 remedy_sought="", uploads=[])
    home = client.get("/portal/?lang=zh").get_data(as_text=True)
    assert "我的请求" in home and "我的投诉" in home and "已受理" in home
    assert "新建请求" in client.get("/portal/cases/new").get_data(as_text=True)
    assert "帮助中心" in client.get("/portal/kb/").get_data(as_text=True)
