"""The audit log: sign-ins and failures recorded, append-only, searchable, exportable, purged."""
from __future__ import annotations

from datetime import timedelta

import pytest

from app.audit.models import AuditEntry, AuditImmutable
from app.audit.service import AuditQuery, purge_expired, record, search
from app.auth.models import Role
from app.db import utcnow
from tests.factories import PASSWORD, login, make_staff


def test_sign_ins_and_failures_are_recorded(client, db_session):
    agent = make_staff(db_session)
    db_session.commit()
    client.post("/login", data={"email": agent.email, "password": "wrong-password"})
    login(client, agent)
    client.post("/logout")
    actions = [e.action for e in search(db_session, AuditQuery(action="auth."))]
    assert actions == ["auth.sign_out", "auth.sign_in", "auth.sign_in_failed"]
    failed = search(db_session, AuditQuery(action="auth.sign_in_failed"))[0]
    assert failed.outcome == "failed" and failed.data["email"] == agent.email


def test_entries_cannot_be_edited(db_session):
    entry = record(db_session, actor="system", action="config.changed")
    db_session.commit()
    entry.action = "nothing.happened"
    with pytest.raises(AuditImmutable):
        db_session.commit()
    db_session.rollback()


def test_search_filters_and_purge(db_session):
    old = record(db_session, actor="staff:1", action="crm.customer_viewed", target_type="customer", target_id=7,
                 at=utcnow() - timedelta(days=800))
    record(db_session, actor="staff:2", action="crm.customer_viewed", target_type="customer", target_id=8)
    db_session.commit()
    assert [e.target_id for e in search(db_session, AuditQuery(target_type="customer", target_id="8"))] == ["8"]
    assert len(search(db_session, AuditQuery(actor="staff:1"))) == 1
    assert len(search(db_session, AuditQuery(since=utcnow() - timedelta(days=1)))) == 1
    assert len(search(db_session, AuditQuery(until=utcnow() - timedelta(days=1)))) == 1
    assert purge_expired(db_session, 730) == 1
    db_session.commit()
    assert db_session.get(AuditEntry, old.id) is None


def test_the_page_and_export_are_for_supervisors(client, db_session):
    agent = make_staff(db_session)
    lead = make_staff(db_session, role=Role.SUPERVISOR)
    db_session.commit()
    login(client, agent)
    assert client.get("/audit/").status_code == 403
    client.post("/logout")
    login(client, lead)
    page = client.get("/audit/?action=auth.&since=2000-01-01&limit=50")
    assert page.status_code == 200 and "auth.sign_in" in page.get_data(as_text=True)
    export = client.get("/audit/export.csv?action=auth.&since=not-a-date")
    assert export.status_code == 200 and export.mimetype == "text/csv"
    assert export.get_data(as_text=True).splitlines()[0].startswith("id,occurred_at,actor,action")
    assert search(db_session, AuditQuery(action="audit.exported"))[0].actor == f"staff:{lead.id}"
    assert PASSWORD not in export.get_data(as_text=True)


def test_a_screen_pop_offered_to_an_agent_is_an_audited_opening(app, db_session, desk_config):
    """The offer that carries the customer's record to an agent audits that opening, in its own
    transaction; building the event for the console writes nothing more."""
    from datetime import timedelta

    from agent_console import namespace
    from queues import service
    from tests.factories import make_customer, make_interaction

    agent = make_staff(db_session)
    customer = make_customer(db_session, name="Audited")
    call = make_interaction(db_session, customer=customer)
    service.enqueue_contact(db_session, call, "general", actor="test")
    service.set_presence(db_session, agent.id, "available")
    db_session.commit()
    offer = service.create_offer(db_session, interaction_id=call.id, agent_id=agent.id,
                                 expires_at=utcnow() + timedelta(seconds=20), cost=100, priority=0,
                                 priority_reasons=[], trace={})
    db_session.commit()
    out = namespace._offer_seen_by_agent({"offer_id": offer.id, "interaction_id": call.id, "agent_id": agent.id,
                                          "expires_at": utcnow().isoformat()}, desk_config)
    assert out is not None and out.interaction_id == call.id and out.screenpop["customer"]
    viewed = search(db_session, AuditQuery(action="crm.customer_viewed"))
    assert [(e.actor, e.target_id, e.data) for e in viewed] == [
        (f"staff:{agent.id}", str(customer.id), {"via": "screenpop"})]


def test_configuration_changes_are_audited_by_section(app, db_session, desk_config):
    from app.audit.config_watch import audit_startup_config, record_if_changed

    audit_startup_config(app)
    first = search(db_session, AuditQuery(action="config.changed"))
    assert len(first) == 1 and first[0].data["first"] is True
    assert record_if_changed(db_session, desk_config) is None, "same configuration: nothing new"
    changed_desk = desk_config.model_copy(update={"desk": desk_config.desk.model_copy(update={"name": "Renamed"})})
    assert record_if_changed(db_session, changed_desk, actor="staff:1") == ["desk"]
    db_session.commit()
    latest = search(db_session, AuditQuery(action="config.changed"))[0]
    assert latest.actor == "staff:1" and latest.data["changed"] == ["desk"]
    assert "Renamed" not in str(latest.data), "digests only, never values"
