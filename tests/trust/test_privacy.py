"""Privacy requests: export everything held on a customer; erase personal data, keep the statistics."""
from __future__ import annotations

import json
from datetime import timedelta
from zoneinfo import ZoneInfo

from app import privacy
from app.audit.models import AuditEntry
from app.auth.models import Role
from app.complaints import flows
from app.complaints.models import Complaint
from app.crm.models import Customer, CustomerEmail, CustomerPhone
from app.db import utcnow
from app.interactions.models import Interaction
from app.interactions.service import transition
from app.reports.service import build_report, local_day_period
from tests.factories import login, make_customer, make_interaction, make_order, make_staff


def test_every_customer_data_column_is_classified(app):
    """A new domain table reachable from customers must say which of its columns are personal. (The app
    fixture: every domain's models are then loaded, as in the desk, whatever ran before this test.)"""
    assert privacy.unclassified_columns() == []


def _customer_with_history(db_session):
    customer = make_customer(db_session, name="Li Na", phone="+8613800138000", email="li.na@example.cn",
                             tier="vip", organisation="Acme")
    make_order(db_session, customer, shipment_status="in_transit")
    call = make_interaction(db_session, customer=customer, subject="Where is my parcel?", external_ref="CA-priv")
    call.attributes = {"caller": "+8613800138000", "digits": "1001"}
    transition(db_session, call, "queued", actor="test", data={"queue": "general"})
    transition(db_session, call, "abandoned", actor="test")
    db_session.commit()
    flows.raise_complaint(db_session, channel="voice", customer_id=customer.id, category="delivery_delay",
                          description="Parcel late, I am Li Na at 13800138000", interaction_id=call.id)
    return customer


def test_export_contains_every_table_held(app, db_session):
    customer = _customer_with_history(db_session)
    data = privacy.export_customer(db_session, customer.id, actor="staff:1")
    db_session.commit()
    assert {"customers", "customer_phones", "customer_emails", "orders", "shipments", "interactions",
            "interaction_events", "complaints"} <= set(data)
    assert data["customers"][0]["name"] == "Li Na"
    json.dumps(data)  # JSON-ready
    assert db_session.query(AuditEntry).filter_by(action="privacy.exported").one().target_id == str(customer.id)


def test_erasure_removes_personal_data_and_keeps_statistics(app, db_session, desk_config):
    customer = _customer_with_history(db_session)
    period = local_day_period(utcnow().date() - timedelta(days=1), ZoneInfo("UTC"), days=3)
    before = build_report(db_session, desk_config, period, "queue")
    assert before.rows, "the abandoned call is counted"
    counts = privacy.erase_customer(db_session, customer.id, actor="staff:9", reason="GDPR art. 17 request")
    db_session.commit()
    db_session.expire_all()
    erased = db_session.get(Customer, customer.id)
    assert erased.name == privacy.ERASED and erased.organisation is None and erased.tier == "vip"
    assert db_session.query(CustomerPhone).count() == 0 and db_session.query(CustomerEmail).count() == 0
    call = db_session.query(Interaction).one()
    assert call.subject is None and call.attributes == {} and call.state == "abandoned"
    complaint = db_session.query(Complaint).one()
    assert "Li Na" not in complaint.description and complaint.level and complaint.category == "delivery_delay"
    assert counts["customers"] == 1 and counts["customer_phones"] == 1
    after = build_report(db_session, desk_config, period, "queue")
    assert [r.__dict__ if hasattr(r, "__dict__") else r for r in after.rows] == \
        [r.__dict__ if hasattr(r, "__dict__") else r for r in before.rows], "KPIs unchanged"
    dump = json.dumps(privacy.export_customer(db_session, customer.id, actor="staff:9"), ensure_ascii=False)
    for secret in ("Li Na", "13800138000", "li.na@example.cn", "Where is my parcel"):
        assert secret not in dump
    audit = db_session.query(AuditEntry).filter_by(action="privacy.erased").one()
    assert audit.data["reason"] == "GDPR art. 17 request" and "Li Na" not in json.dumps(audit.data)


def test_erasure_needs_a_reason_and_complete_classification(db_session, monkeypatch):
    import pytest

    customer = make_customer(db_session)
    with pytest.raises(ValueError, match="reason"):
        privacy.erase_customer(db_session, customer.id, actor="staff:1", reason=" ")
    monkeypatch.setitem(privacy.CLASSIFICATION, "customers", {"name": "personal"})
    with pytest.raises(ValueError, match="not classified"):
        privacy.erase_customer(db_session, customer.id, actor="staff:1", reason="request")


def test_privacy_endpoints_and_roles(app, client, db_session):
    customer = _customer_with_history(db_session)
    agent = make_staff(db_session)
    lead = make_staff(db_session, role=Role.SUPERVISOR)
    admin = make_staff(db_session, role=Role.ADMIN)
    db_session.commit()
    login(client, agent)
    assert client.get(f"/admin/privacy/customers/{customer.id}/export.json").status_code == 403
    client.post("/logout")
    login(client, lead)
    exported = client.get(f"/admin/privacy/customers/{customer.id}/export.json")
    assert exported.status_code == 200 and exported.json["tables"]["customers"][0]["name"] == "Li Na"
    assert client.post(f"/admin/privacy/customers/{customer.id}/erase", data={"reason": "x"}).status_code == 403
    assert client.get("/admin/privacy/customers/999999/export.json").status_code == 404
    client.post("/logout")
    login(client, admin)
    url = f"/admin/privacy/customers/{customer.id}/erase"
    assert client.post(url, data={"reason": "request", "confirm": "wrong"}).status_code == 422
    assert client.post(url, data={"reason": "", "confirm": str(customer.id)}).status_code == 422
    done = client.post(url, data={"reason": "customer request", "confirm": str(customer.id)})
    assert done.status_code == 200 and done.json["ok"]
