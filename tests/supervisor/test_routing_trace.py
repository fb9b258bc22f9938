"""Supervisors see why a contact got its priority and how each offer was decided."""
from __future__ import annotations

from datetime import timedelta

from app.auth.models import Role
from app.db import utcnow
from queues.models import Offer
from tests.factories import login, make_interaction, make_staff


def test_a_supervisor_reads_the_decision_trace_of_a_contact(client, db_session):
    lead = make_staff(db_session, role=Role.SUPERVISOR)
    agent = make_staff(db_session, name="Ann Agent")
    call = make_interaction(db_session)
    call.priority = 300
    call.priority_reasons = [{"code": "tier", "en": "VIP customer +300", "zh": "贵宾客户 +300"}]
    db_session.add(Offer(interaction_id=call.id, agent_id=agent.id, status="rejected", queue="general",
                         channel="voice", cause="reject", expires_at=utcnow() + timedelta(seconds=15),
                         trace={"step": 0, "excluded": {"7": "skill general below 3"}}))
    db_session.commit()
    login(client, lead)
    page = client.get(f"/supervisor/contacts/{call.id}/routing").get_data(as_text=True)
    assert "VIP customer +300" in page and "Ann Agent" in page and "skill general below 3" in page
    assert "贵宾客户" in client.get(f"/supervisor/contacts/{call.id}/routing?lang=zh").get_data(as_text=True)
    assert client.get("/supervisor/contacts/999999/routing").status_code == 404


def test_agents_cannot_read_traces(client, db_session):
    agent = make_staff(db_session)
    call = make_interaction(db_session)
    db_session.commit()
    login(client, agent)
    assert client.get(f"/supervisor/contacts/{call.id}/routing").status_code == 403


def test_a_contact_never_offered_says_so(client, db_session):
    lead = make_staff(db_session, role=Role.SUPERVISOR)
    call = make_interaction(db_session)
    db_session.commit()
    login(client, lead)
    assert "not been offered" in client.get(f"/supervisor/contacts/{call.id}/routing").get_data(as_text=True)
