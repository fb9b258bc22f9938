"""Two-factor sign-in: a supervisor cannot act without a second factor; codes work once."""
from __future__ import annotations

import pytest

from app.auth import twofactor
from app.auth.models import Role
from tests.factories import PASSWORD, login, make_staff, totp_code


def _password_only(client, user):
    return client.post("/login", data={"email": user.email, "password": PASSWORD})


def test_a_supervisor_without_second_factor_can_do_nothing_but_enrol(client, db_session):
    lead = make_staff(db_session, role=Role.SUPERVISOR)
    db_session.commit()
    assert _password_only(client, lead).status_code == 302
    page = client.get("/audit/")
    assert page.status_code == 302 and page.headers["Location"].endswith("/account/2fa")
    api = client.get("/api/anything")
    assert api.status_code == 403 and api.json["error"] == "second_factor_required"
    assert client.get("/account/2fa").status_code == 200
    db_session.refresh(lead)
    enrolled = client.post("/account/2fa", data={"code": totp_code(lead)})
    assert enrolled.status_code == 200 and b"recovery-codes" in enrolled.data
    assert client.get("/audit/").status_code == 200


def test_an_agent_needs_no_second_factor_by_default(client, db_session):
    agent = make_staff(db_session)
    db_session.commit()
    _password_only(client, agent)
    assert client.get("/").status_code == 200


def test_enrolled_users_must_verify_at_sign_in_and_codes_cannot_be_replayed(client, db_session):
    lead = make_staff(db_session, role=Role.SUPERVISOR)
    db_session.commit()
    login(client, lead)  # enrols
    client.post("/logout")
    response = _password_only(client, lead)
    assert response.headers["Location"].endswith("/login/verify")
    assert client.get("/").status_code == 302, "not signed in before the second factor"
    db_session.refresh(lead)
    used_step_code = totp_code(lead)  # the enrolment consumed the current step
    assert client.post("/login/verify", data={"code": used_step_code}).status_code == 401
    assert client.post("/login/verify", data={"code": "000000x"}).status_code == 401
    assert client.post("/login/verify", data={"code": totp_code(lead, step_offset=1)}).status_code == 302
    assert client.get("/audit/").status_code == 200


def test_recovery_codes_work_once(client, db_session, desk_config):
    lead = make_staff(db_session, role=Role.SUPERVISOR)
    twofactor.begin_enrolment(db_session, lead, desk_config.security)
    codes = twofactor.confirm_enrolment(db_session, lead, totp_code(lead), desk_config.security)
    db_session.commit()
    assert len(codes) == desk_config.security.recovery_codes
    assert twofactor.verify(db_session, lead, codes[0].upper()) == "recovery"
    with pytest.raises(twofactor.TwoFactorError):
        twofactor.verify(db_session, lead, codes[0])
    assert twofactor.remaining_recovery_codes(db_session, lead) == len(codes) - 1


def test_enrolment_state_is_checked(db_session, desk_config):
    agent = make_staff(db_session)
    with pytest.raises(twofactor.TwoFactorError):
        twofactor.confirm_enrolment(db_session, agent, "123456", desk_config.security)
    with pytest.raises(twofactor.TwoFactorError):
        twofactor.verify(db_session, agent, "123456")
    twofactor.begin_enrolment(db_session, agent, desk_config.security)
    with pytest.raises(twofactor.TwoFactorError):
        twofactor.confirm_enrolment(db_session, agent, "12345", desk_config.security)
    twofactor.confirm_enrolment(db_session, agent, totp_code(agent), desk_config.security)
    with pytest.raises(twofactor.TwoFactorError):
        twofactor.begin_enrolment(db_session, agent, desk_config.security)
    assert twofactor.required_for(agent, desk_config.security), "opting in makes it required"


def test_only_an_admin_resets_a_lost_device_and_it_is_audited(client, db_session, desk_config):
    from app.audit.models import AuditEntry

    lead = make_staff(db_session, role=Role.SUPERVISOR)
    admin = make_staff(db_session, role=Role.ADMIN)
    db_session.commit()
    login(client, lead)
    assert client.post(f"/admin/staff/{lead.id}/reset-2fa", data={"reason": "x"}).status_code == 403
    client.post("/logout")
    login(client, admin)
    assert client.post(f"/admin/staff/{lead.id}/reset-2fa", data={"reason": " "}).status_code == 400
    assert client.post(f"/admin/staff/{lead.id}/reset-2fa", data={"reason": "phone lost"}).status_code == 200
    db_session.refresh(lead)
    assert not lead.has_second_factor
    entry = db_session.query(AuditEntry).filter_by(action="auth.2fa_reset").one()
    assert entry.actor == f"staff:{admin.id}" and entry.data == {"reason": "phone lost"}
    with pytest.raises(PermissionError):
        twofactor.reset(db_session, admin, admin=lead, reason="no")


def test_verify_page_without_pending_sign_in_goes_back(client):
    assert client.get("/login/verify").headers["Location"].endswith("/login")
