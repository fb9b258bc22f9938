"""Staff accounts: admins create staff and change role, state, group and skills; every change is audited."""
from __future__ import annotations

from app.audit.models import AuditEntry
from app.auth.models import Role, StaffUser
from tests.factories import login, make_staff


def _entries(db_session, action):
    return db_session.query(AuditEntry).filter_by(action=action).all()


def test_an_admin_creates_an_agent(client, db_session):
    admin = make_staff(db_session, role=Role.ADMIN)
    db_session.commit()
    login(client, admin)
    response = client.post("/admin/staff/", data={"email": "New.Agent@test.desk", "name": "New Agent",
                                                  "role": "agent", "language": "zh",
                                                  "password": "long-enough-pass"})
    assert response.status_code == 201
    user = db_session.query(StaffUser).filter_by(email="new.agent@test.desk").one()
    assert (user.role, user.language, user.active) == ("agent", "zh", True)
    [entry] = _entries(db_session, "staff.created")
    assert (entry.actor, entry.target_type, entry.target_id) == (admin.get_id(), "staff", str(user.id))
    assert "new.agent@test.desk" in client.get("/admin/staff/").get_data(as_text=True)
    duplicate = client.post("/admin/staff/", data={"email": "new.agent@test.desk", "name": "Again",
                                                   "role": "agent", "language": "en",
                                                   "password": "long-enough-pass"})
    assert duplicate.status_code == 422 and "already exists" in duplicate.get_data(as_text=True)
    weak = client.post("/admin/staff/", data={"email": "weak@test.desk", "name": "Weak", "role": "agent",
                                              "language": "en", "password": "short"})
    assert weak.status_code == 422
    assert db_session.query(StaffUser).filter_by(email="weak@test.desk").count() == 0


def test_role_skills_and_state_changes_are_audited_with_before_and_after(client, db_session):
    admin = make_staff(db_session, role=Role.ADMIN)
    agent = make_staff(db_session, skills={"general": 5, "refunds": 2})
    db_session.commit()
    login(client, admin)
    response = client.post(f"/admin/staff/{agent.id}", data={
        "role": "supervisor", "active": "1", "agent_group": "tier2", "skills": "general:7, billing:3"})
    assert response.status_code == 302
    db_session.expire_all()
    agent = db_session.get(StaffUser, agent.id)
    assert (agent.role, agent.agent_group) == ("supervisor", "tier2")
    assert agent.skill_levels() == {"general": 7, "billing": 3}
    [role] = _entries(db_session, "staff.role_changed")
    assert role.data == {"from": "agent", "to": "supervisor"} and role.target_id == str(agent.id)
    assert role.actor == admin.get_id() and role.target_type == "staff"
    [skills] = _entries(db_session, "staff.skills_changed")
    assert skills.data == {"from": {"general": 5, "refunds": 2}, "to": {"general": 7, "billing": 3}}
    assert "billing:3" in client.get("/admin/staff/").get_data(as_text=True)

    assert client.post(f"/admin/staff/{agent.id}", data={"active": "0"}).status_code == 302
    assert client.post(f"/admin/staff/{agent.id}", data={"active": "1"}).status_code == 302
    assert len(_entries(db_session, "staff.deactivated")) == 1
    assert len(_entries(db_session, "staff.activated")) == 1


def test_bad_skills_text_is_refused_and_nothing_changes(client, db_session):
    admin = make_staff(db_session, role=Role.ADMIN)
    agent = make_staff(db_session, skills={"general": 5})
    db_session.commit()
    login(client, admin)
    before = db_session.query(AuditEntry).count()
    for text in ("general:11", "general:0", "Billing:3", "general", "general:x", "a:1, a:2"):
        response = client.post(f"/admin/staff/{agent.id}", data={
            "role": "supervisor", "active": "1", "agent_group": "default", "skills": text})
        assert response.status_code == 422, text
        assert 'role="alert"' in response.get_data(as_text=True)
    db_session.expire_all()
    agent = db_session.get(StaffUser, agent.id)
    assert (agent.role, agent.skill_levels()) == ("agent", {"general": 5})
    assert db_session.query(AuditEntry).count() == before


def test_an_admin_cannot_demote_or_deactivate_themself(client, db_session):
    admin = make_staff(db_session, role=Role.ADMIN)
    db_session.commit()
    login(client, admin)
    assert client.post(f"/admin/staff/{admin.id}", data={"role": "agent"}).status_code == 422
    assert client.post(f"/admin/staff/{admin.id}", data={"active": "0"}).status_code == 422
    db_session.expire_all()
    admin = db_session.get(StaffUser, admin.id)
    assert (admin.role, admin.active) == ("admin", True)
    assert not _entries(db_session, "staff.role_changed") and not _entries(db_session, "staff.deactivated")


def test_supervisors_are_refused_and_unknown_ids_are_not_found(app, client, db_session):
    admin = make_staff(db_session, role=Role.ADMIN)
    lead = make_staff(db_session, role=Role.SUPERVISOR)
    db_session.commit()
    login(client, lead)
    assert client.get("/admin/staff/").status_code == 403
    assert client.post(f"/admin/staff/{lead.id}", data={"role": "admin"}).status_code == 403
    other = app.test_client()
    login(other, admin)
    assert other.post("/admin/staff/99999", data={"role": "agent"}).status_code == 404
