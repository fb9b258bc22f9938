"""Sign-in, roles, error pages, limits and operations endpoints, through the real HTTP stack."""
from __future__ import annotations

import re

import pytest
from flask import Blueprint

from app.auth.models import Role
from app.auth.roles import role_required
from tests.factories import PASSWORD, login, make_staff


@pytest.fixture()
def guarded(app):
    """A page and an API endpoint per role, registered once on the session's app."""
    if "guarded" not in app.blueprints:
        bp = Blueprint("guarded", __name__)
        for role in Role:
            bp.add_url_rule(f"/guarded/{role}", f"page_{role}", role_required(role)(lambda: "ok"))
            bp.add_url_rule(f"/api/guarded/{role}", f"api_{role}", role_required(role)(lambda: {"ok": True}))
        # The session's app has served requests already; this test-only blueprint is added once, up front.
        app._got_first_request = False
        app.register_blueprint(bp)
        app._got_first_request = True
    return app


def test_health_and_readiness(client):
    assert client.get("/healthz").json == {"status": "ok"}
    ready = client.get("/readyz")
    assert ready.status_code == 200
    assert ready.json == {"status": "ok", "checks": {"database": "ok", "redis": "ok"}}


def test_readiness_reports_a_dead_redis(app, client, monkeypatch):
    def refuse():
        raise ConnectionError("refused")

    monkeypatch.setattr(app.extensions["desk.redis"], "ping", refuse)
    response = client.get("/readyz")
    assert response.status_code == 503
    assert response.json["checks"]["redis"].startswith("error")


def test_metrics_are_exposed(client):
    client.get("/healthz")
    body = client.get("/metrics").get_data(as_text=True)
    assert "desk_http_requests_total" in body and 'endpoint="ops.healthz"' in body


def test_unknown_routes(client):
    api = client.get("/api/nothing-here")
    assert api.status_code == 404 and api.json["error"] == "not_found" and api.json["request_id"]
    page = client.get("/nothing-here")
    assert page.status_code == 404 and b"<html" in page.data


def test_oversized_bodies_are_refused(app, client):
    app.config["MAX_CONTENT_LENGTH"] = 1024
    try:
        response = client.post("/login", data={"email": "x" * 4096, "password": "y"})
        assert response.status_code == 413
    finally:
        app.config["MAX_CONTENT_LENGTH"] = app.extensions["desk.config"].desk.max_request_bytes


def test_request_id_is_echoed_or_minted(client):
    assert client.get("/healthz", headers={"X-Request-ID": "abc123"}).headers["X-Request-ID"] == "abc123"
    assert len(client.get("/healthz").headers["X-Request-ID"]) == 32


def test_sign_in_and_out(client, db_session):
    agent = make_staff(db_session, name="Ann")
    db_session.commit()
    assert client.get("/").status_code == 302
    login(client, agent)
    home = client.get("/")
    assert home.status_code == 200 and "Ann" in home.get_data(as_text=True)
    assert client.post("/logout").status_code == 302
    assert client.get("/").headers["Location"].endswith("/login")


def test_wrong_password_and_rate_limit(client, db_session):
    agent = make_staff(db_session)
    db_session.commit()
    for _ in range(10):
        assert client.post("/login", data={"email": agent.email, "password": "wrong-password"}).status_code == 401
    blocked = client.post("/login", data={"email": agent.email, "password": PASSWORD})
    assert blocked.status_code == 429


def test_sign_in_page_speaks_chinese(app, client):
    assert "登录" in client.get("/login", headers={"Accept-Language": "zh-CN,zh;q=0.9"}).get_data(as_text=True)
    assert "Sign in" in client.get("/login", headers={"Accept-Language": "en-GB"}).get_data(as_text=True)
    assert "登录" in client.get("/login?lang=zh").get_data(as_text=True)
    assert "登录" in client.get("/login", headers={"Accept-Language": "en-GB"}).get_data(as_text=True), \
        "a chosen language sticks for the session"


def test_pages_name_their_icon_so_browsers_do_not_ask_for_a_missing_favicon(client):
    page = client.get("/login").get_data(as_text=True)
    href = re.search(r'<link rel="icon" href="([^"]+)"', page).group(1)
    icon = client.get(href)
    assert icon.status_code == 200 and icon.mimetype == "image/svg+xml" and b"<svg" in icon.data


def test_open_redirects_are_refused(client, db_session):
    agent = make_staff(db_session)
    db_session.commit()
    response = client.post("/login?next=https://evil.example/", data={"email": agent.email, "password": PASSWORD})
    assert response.headers["Location"] == "/"


@pytest.mark.parametrize("role, allowed", [
    (Role.AGENT, {Role.AGENT}),
    (Role.SUPERVISOR, {Role.AGENT, Role.SUPERVISOR}),
    (Role.ADMIN, {Role.AGENT, Role.SUPERVISOR, Role.ADMIN}),
])
def test_role_checks_on_pages_and_api(guarded, client, db_session, role, allowed):
    user = make_staff(db_session, role=role)
    db_session.commit()
    login(client, user)
    for target in Role:
        expected = 200 if target in allowed else 403
        assert client.get(f"/guarded/{target}").status_code == expected
        assert client.get(f"/api/guarded/{target}").status_code == expected


def test_anonymous_users_are_sent_to_sign_in_or_get_401(guarded, client):
    assert client.get("/guarded/agent").status_code == 302
    assert client.get("/api/guarded/agent").status_code == 401


def test_inactive_staff_cannot_sign_in(client, db_session):
    agent = make_staff(db_session)
    agent.active = False
    db_session.commit()
    assert client.post("/login", data={"email": agent.email, "password": PASSWORD}).status_code == 401


def test_forms_without_csrf_token_are_refused(app, client, db_session):
    agent = make_staff(db_session)
    db_session.commit()
    app.config["WTF_CSRF_ENABLED"] = True
    try:
        response = client.post("/login", data={"email": agent.email, "password": PASSWORD})
        assert response.status_code == 400
    finally:
        app.config["WTF_CSRF_ENABLED"] = False


def test_the_home_page_links_each_role_to_its_pages(client, db_session):
    admin = make_staff(db_session, role=Role.ADMIN)
    db_session.commit()
    login(client, admin)
    page = client.get("/").get_data(as_text=True)
    for url in ("/console/", "/customers/", "/supervisor/", "/audit/", "/admin/staff/", "/admin/webhooks/"):
        assert f'href="{url}"' in page
