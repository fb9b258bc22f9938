"""API tokens: issued by admins with scopes and expiry, shown once, checked on every call, revocable."""
from __future__ import annotations

import re
from datetime import timedelta

from app.audit.models import AuditEntry
from app.auth.models import Role
from app.auth.tokens import ApiToken, issue_token
from app.db import utcnow
from tests.factories import login, make_customer, make_staff


def _issue_through_the_page(client, **form):
    response = client.post("/admin/api-tokens/", data=form)
    match = re.search(r'id="new-token">([^<]+)<', response.get_data(as_text=True))
    return response, (match.group(1) if match else None)


def test_an_admin_issues_a_scoped_token_that_works_once_shown(app, client, db_session):
    admin = make_staff(db_session, role=Role.ADMIN)
    customer = make_customer(db_session, name="Scoped")
    db_session.commit()
    login(client, admin)
    response, secret = _issue_through_the_page(client, name="ERP", scopes=["customers:read"], expires_in_days="30")
    assert response.status_code == 201 and secret.startswith("desk_")
    token = db_session.query(ApiToken).one()
    assert secret not in (token.token_hash, token.display_prefix) and token.expires_at is not None
    assert secret not in client.get("/admin/api-tokens/").get_data(as_text=True), "shown only once"
    api = app.test_client()
    ok = api.get(f"/api/customers/{customer.id}", headers={"Authorization": f"Bearer {secret}"})
    assert ok.status_code == 200
    denied = api.post("/api/customers", json={"name": "x"}, headers={"Authorization": f"Bearer {secret}"})
    assert denied.status_code == 403 and denied.json["error"] == "insufficient_scope"
    db_session.expire_all()
    assert db_session.get(ApiToken, token.id).last_used_at is not None
    assert client.post(f"/admin/api-tokens/{token.id}/revoke").status_code == 302
    gone = api.get(f"/api/customers/{customer.id}", headers={"Authorization": f"Bearer {secret}"})
    assert gone.status_code == 401
    actions = {e.action for e in db_session.query(AuditEntry)}
    assert {"api_tokens.issued", "api_tokens.revoked"} <= actions


def test_expired_tokens_and_bad_requests_are_refused(app, client, db_session):
    admin = make_staff(db_session, role=Role.ADMIN)
    _token, secret = issue_token(db_session, name="old", scopes=["customers:read"],
                                 expires_at=utcnow() - timedelta(minutes=1))
    db_session.commit()
    expired = app.test_client().get("/api/customers", headers={"Authorization": f"Bearer {secret}"})
    assert expired.status_code == 401 and expired.json["error"] == "expired_token"
    login(client, admin)
    assert _issue_through_the_page(client, name="x", scopes=["customers:read"], expires_in_days="0")[0].status_code == 422
    assert _issue_through_the_page(client, name="x", scopes=["nuclear:launch"])[0].status_code == 422
    assert _issue_through_the_page(client, name="", scopes=["customers:read"])[0].status_code == 422
    assert client.post("/admin/api-tokens/999/revoke").status_code == 404


def test_only_admins_manage_tokens(client, db_session):
    lead = make_staff(db_session, role=Role.SUPERVISOR)
    db_session.commit()
    login(client, lead)
    assert client.get("/admin/api-tokens/").status_code == 403
    assert client.post("/admin/api-tokens/", data={"name": "x", "scopes": ["customers:read"]}).status_code == 403
