"""Fixtures for the supervisor's pages and socket: signed-in clients and a live server."""
from __future__ import annotations

import pytest

from app.auth.models import Role
from tests.browser_support import browser, chromium_browser, live_server  # noqa: F401  (fixtures)
from tests.factories import login, make_staff


@pytest.fixture()
def supervisor(db_session):
    user = make_staff(db_session, role=Role.SUPERVISOR, name="Sue Visor", email="sue@test.desk")
    db_session.commit()
    return user


@pytest.fixture()
def supervisor_client(app, supervisor):
    client = app.test_client()
    login(client, supervisor)
    return client


def session_cookie(client) -> str:
    """The signed-in test client's session cookie, for a python-socketio client or a browser."""
    name = client.application.config.get("SESSION_COOKIE_NAME", "session")
    cookie = client.get_cookie(name)
    assert cookie is not None, "the client is not signed in"
    return f"{name}={cookie.value}"
