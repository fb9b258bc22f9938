"""Evidence files, who may see a complaint, and the root cause: rules, then the staff pages."""
from __future__ import annotations

import io
from datetime import timedelta

import pytest
from sqlalchemy import select

from app.audit.models import AuditEntry
from app.complaints import access, evidence, flows, reports, service
from app.complaints.evidence import EvidenceRejected, EvidenceUpload, safe_filename, sniff_type
from app.complaints.models import Complaint, ComplaintEvent, ComplaintEvidence
from app.complaints.service import ComplaintError
from app.crm.models import Customer
from app.db import utcnow
from tests.complaints.test_flows import new_complaint
from tests.factories import login, make_customer, make_interaction, make_staff

PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 40
PDF = b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n1 0 obj\n"


@pytest.mark.parametrize("data, expected", [
    (PNG, "image/png"),
    (b"\xff\xd8\xff\xe0" + b"\x00" * 10, "image/jpeg"),
    (b"GIF89a" + b"\x00" * 10, "image/gif"),
    (b"GIF87a" + b"\x00" * 10, "image/gif"),
    (b"RIFF\x10\x00\x00\x00WEBPVP8 ", "image/webp"),
    (PDF, "application/pdf"),
    ("收据：快递单号 SF123".encode(), "text/plain"),
    ("收据".encode() * 1000 + "据".encode()[:2], "text/plain"),  # a character cut at the sample's end
    (b"MZ\x90\x00\x03\x00", None),  # a Windows program
    (b"\xff\xfe\x00\x01bad", None),
    (b"caf\xe9 au lait is latin-1, not utf-8", None),
    (b"", None),
])
def test_type_comes_from_the_bytes(data, expected):
    assert sniff_type(data) == expected


@pytest.mark.parametrize("name, expected", [
    ("photo.png", "photo.png"),
    ("C:\\Users\\li\\收据.pdf", "收据.pdf"),
    ("../../etc/passwd", "passwd"),
    ("bad\x00name\r\n.png", "badname.png"),
    ("  ..  ", "evidence"),
    ("", "evidence"),
    ("a" * 300 + ".png", "a" * 200),
])
def test_file_names_are_plain(name, expected):
    assert safe_filename(name) == expected


def test_attach_checks_type_size_count_and_stores_once(db_session, people, jobs, desk_config):
    complaint = new_complaint(db_session, people, scores={"harm": 1})
    agent_id = people["agent"].id
    rows = flows.add_evidence(db_session, complaint.id, [EvidenceUpload("photo.png", PNG),
                                                         EvidenceUpload("again.png", PNG),
                                                         EvidenceUpload("letter.pdf", PDF)], actor_id=agent_id)
    assert [(r.filename, r.content_type) for r in rows] == [("photo.png", "image/png"),
                                                           ("letter.pdf", "application/pdf")]
    assert flows.add_evidence(db_session, complaint.id, [EvidenceUpload("dup.png", PNG)], actor_id=agent_id) == []
    assert evidence.attach(db_session, desk_config, complaint, [], actor_id=agent_id) == []
    event = db_session.scalar(select(ComplaintEvent).where(ComplaintEvent.kind == "evidence"))
    assert event.note == "photo.png, letter.pdf" and event.actor_id == agent_id
    with pytest.raises(EvidenceRejected, match="not an accepted type"):
        flows.add_evidence(db_session, complaint.id, [EvidenceUpload("fine.png", PNG + b"1"),
                                                      EvidenceUpload("run.exe", b"MZ\x90\x00")], actor_id=agent_id)
    db_session.rollback()
    assert len(evidence.files_of(db_session, complaint.id)) == 2  # all or none
    with pytest.raises(EvidenceRejected, match="empty"):
        flows.add_evidence(db_session, complaint.id, [EvidenceUpload("nothing.png", b"")], actor_id=agent_id)
    db_session.rollback()
    big = PNG + b"\x00" * desk_config.complaints.evidence_max_bytes
    with pytest.raises(EvidenceRejected, match="larger than"):
        flows.add_evidence(db_session, complaint.id, [EvidenceUpload("big.png", big)], actor_id=agent_id)
    db_session.rollback()
    many = [EvidenceUpload(f"{n}.png", PNG + bytes([n])) for n in range(desk_config.complaints.evidence_max_files)]
    with pytest.raises(EvidenceRejected, match="at most"):
        flows.add_evidence(db_session, complaint.id, many, actor_id=agent_id)
    db_session.rollback()
    assert evidence.get_file(db_session, complaint.id, rows[0].id).data == PNG
    assert evidence.get_file(db_session, complaint.id + 1, rows[0].id) is None


def test_intake_with_a_refused_file_keeps_nothing(db_session, people, jobs):
    customer = make_customer(db_session)
    with pytest.raises(EvidenceRejected):
        flows.raise_complaint(db_session, channel="voice", customer_id=customer.id, category="billing",
                              description="charged twice", actor_id=people["agent"].id,
                              uploads=[EvidenceUpload("x.exe", b"MZ\x90\x00")])
    db_session.rollback()
    assert db_session.scalar(select(Complaint)) is None


def test_who_may_see_a_complaint(db_session, people, jobs):
    owner, other, serving = (make_staff(db_session, role="agent") for _ in range(3))
    complaint = new_complaint(db_session, people, owner_id=owner.id, actor_id=owner.id, scores={"harm": 1})
    pool = new_complaint(db_session, people, actor_id=None, owner_id=None, scores={"harm": 1})
    assert access.can_access(db_session, owner, complaint.id)
    assert access.can_access(db_session, people["lead"], complaint.id)
    assert not access.can_access(db_session, other, complaint.id)
    assert access.can_access(db_session, other, pool.id)  # nobody owns it yet: anyone may pick it up
    assert not access.can_access(db_session, None, complaint.id)
    assert not access.can_access(db_session, people["lead"], 99999)
    customer = db_session.get(Customer, db_session.get(Complaint, complaint.id).customer_id)
    call = make_interaction(db_session, channel="voice", customer=customer)
    call.agent_id, call.state = serving.id, "connected"
    db_session.commit()
    assert access.can_access(db_session, serving, complaint.id)  # serving the customer right now
    call.state = "closed"
    db_session.commit()
    assert not access.can_access(db_session, serving, complaint.id)
    flows.move(db_session, complaint.id, "investigating", actor_id=other.id, note="covering for a colleague")
    assert access.can_access(db_session, other, complaint.id)  # acted on it
    other.active = False
    db_session.commit()
    assert not access.can_access(db_session, other, complaint.id)


def test_root_cause_is_audited_and_reported(db_session, people, jobs):
    complaint = new_complaint(db_session, people, scores={"harm": 1})
    with pytest.raises(ComplaintError, match="root cause"):
        flows.set_root_cause(db_session, complaint.id, "gremlins", actor_id=people["agent"].id)
    db_session.rollback()
    flows.set_root_cause(db_session, complaint.id, "carrier", actor_id=people["agent"].id, note="SF lost it")
    flows.set_root_cause(db_session, complaint.id, "carrier", actor_id=people["agent"].id)  # no change, no row
    rows = db_session.scalars(select(ComplaintEvent).where(ComplaintEvent.kind == "root_cause")).all()
    assert len(rows) == 1 and rows[0].data == {"from": None, "to": "carrier"} and rows[0].note == "SF lost it"
    other = new_complaint(db_session, people, scores={"harm": 1})
    service.transition(db_session, flows._config(), other, "rejected", actor="t", note="no fault")
    db_session.commit()
    now = utcnow()
    figures = reports.root_causes(db_session, now - timedelta(days=1), now + timedelta(days=1))
    assert figures["causes"]["carrier"] == {"count": 1, "by_category": {"delivery_delay": 1},
                                            "compensation_cents": 0}
    assert figures["causes"]["unknown"]["count"] == 1
    assert figures["answered"] == 1 and figures["answered_without_cause"] == 1
    flows.set_root_cause(db_session, complaint.id, "", actor_id=people["agent"].id)
    assert db_session.get(Complaint, complaint.id).root_cause is None


# ---------------------------------------------------------------------------------------------- pages
def _file(data: bytes, name: str):
    return (io.BytesIO(data), name)


def test_staff_upload_serve_and_root_cause_pages(client, db_session):
    agent = make_staff(db_session, role="agent", name="Alice")
    stranger = make_staff(db_session, role="agent", name="Sam")
    customer = make_customer(db_session, email="c@example.com")
    db_session.commit()
    login(client, agent)
    page = client.get("/complaints/new").get_data(as_text=True)
    assert 'enctype="multipart/form-data"' in page and 'name="evidence"' in page
    client.post("/complaints/new", data={
        "customer_id": customer.id, "channel": "voice", "category": "loss_or_damage", "description": "box crushed",
        "score_harm": "1", "evidence": [_file(PNG, "box.png"), _file(PDF, "收据.pdf")]},
        content_type="multipart/form-data", follow_redirects=True)
    complaint = db_session.scalar(select(Complaint))
    files = db_session.scalars(select(ComplaintEvidence).order_by(ComplaintEvidence.id)).all()
    assert [f.filename for f in files] == ["box.png", "收据.pdf"]

    detail = client.get(f"/complaints/{complaint.id}").get_data(as_text=True)
    assert "box.png" in detail and "Root cause" in detail and "Messages to the customer" in detail
    image = client.get(f"/complaints/{complaint.id}/evidence/{files[0].id}")
    assert image.status_code == 200 and image.data == PNG and image.mimetype == "image/png"
    assert image.headers["Content-Disposition"].startswith("inline")
    assert "sandbox" in image.headers["Content-Security-Policy"] and image.headers["X-Content-Type-Options"]
    pdf = client.get(f"/complaints/{complaint.id}/evidence/{files[1].id}")
    assert pdf.headers["Content-Disposition"].startswith("attachment") and "UTF-8''" in pdf.headers[
        "Content-Disposition"]
    assert db_session.scalar(select(AuditEntry).where(AuditEntry.action == "complaints.evidence_viewed"))
    assert client.get(f"/complaints/{complaint.id}/evidence/99999").status_code == 404

    refused = client.post(f"/complaints/{complaint.id}/evidence", data={"evidence": [_file(b"MZ\x90", "a.exe")]},
                          content_type="multipart/form-data", follow_redirects=True)
    assert "Refused" in refused.get_data(as_text=True)
    added = client.post(f"/complaints/{complaint.id}/evidence", data={"evidence": [_file(PNG + b"2", "b.png")]},
                        content_type="multipart/form-data", follow_redirects=True)
    assert "1 file(s) added." in added.get_data(as_text=True)
    none = client.post(f"/complaints/{complaint.id}/evidence", data={}, follow_redirects=True)
    assert "No new file to add." in none.get_data(as_text=True)

    saved = client.post(f"/complaints/{complaint.id}/root-cause", data={"root_cause": "warehouse", "note": "crushed"},
                        follow_redirects=True)
    assert "Root cause saved." in saved.get_data(as_text=True)
    bad = client.post(f"/complaints/{complaint.id}/root-cause", data={"root_cause": "gremlins"},
                      follow_redirects=True)
    assert "Refused" in bad.get_data(as_text=True)
    db_session.expire_all()
    assert db_session.get(Complaint, complaint.id).root_cause == "warehouse"
    zh = client.get(f"/complaints/{complaint.id}?lang=zh").get_data(as_text=True)
    assert "仓储或包装" in zh and "根本原因" in zh and "证据" in zh and "级别及理由" in zh

    client.post("/logout")
    login(client, stranger)  # another agent: neither the complaint, its files nor its actions exist for them
    assert client.get(f"/complaints/{complaint.id}").status_code == 404
    assert client.get(f"/complaints/{complaint.id}/evidence/{files[0].id}").status_code == 404
    assert client.post(f"/complaints/{complaint.id}/root-cause", data={"root_cause": "other"}).status_code == 404
    assert complaint.reference not in client.get("/complaints/").get_data(as_text=True)


def test_supervisor_reports_show_root_causes(client, db_session, people, jobs):
    complaint = new_complaint(db_session, people, scores={"harm": 1})
    flows.set_root_cause(db_session, complaint.id, "carrier", actor_id=people["agent"].id)
    login(client, people["lead"])
    text = client.get("/complaints/reports").get_data(as_text=True)
    assert "Root causes" in text and "Carrier or courier" in text and "Delivery delay" in text


def test_customer_evidence_links_stay_on_the_desk(client, db_session, people, jobs):
    complaint = new_complaint(db_session, people, scores={"harm": 1}, evidence=[
        {"name": "photo.jpg", "content_type": "image/jpeg", "size": 2048, "url": "/portal/attachments/7"},
        {"name": "evil.html", "content_type": "text/html", "size": 10, "url": "javascript:alert(1)"},
        {"name": "offsite.png", "content_type": "image/png", "url": "//evil.example/x.png"}])
    login(client, people["agent"])
    text = client.get(f"/complaints/{complaint.id}").get_data(as_text=True)
    assert 'href="/portal/attachments/7"' in text and "evil.html" in text and "offsite.png" in text
    assert "javascript:alert" not in text and "//evil.example" not in text
