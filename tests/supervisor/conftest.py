"""Fixtures for the supervisor's pages and socket: signed-in clients and a live server."""
from __future__ import annotations

import pytest

from app.auth.models import Role
from tests.factories import login, make_staff


@pytest.fixture()
def supervisor(db_session):
    user = make_staff(db_session, role=Role.SUPERVISOR, name="Sue Visor", email="sue@test.desk")
    db_session.commit()
    return user


# Flask-Login's "strong" session protection ties a session to the browser's address and User-Agent, so
# every client of one test (test client, socket client, browser) presents the same User-Agent.
USER_AGENT = "desk-tests"


def signed_in_client(app, user):
    client = app.test_client()
    client.environ_base["HTTP_USER_AGENT"] = USER_AGENT
    login(client, user)
    return client


@pytest.fixture()
def supervisor_client(app, supervisor):
    return signed_in_client(app, supervisor)


def session_cookie(client) -> str:
    """The signed-in test client's session cookie, for a python-socketio client or a browser."""
    name = client.application.config.get("SESSION_COOKIE_NAME", "session")
    cookie = client.get_cookie(name)
    assert cookie is not None, "the client is not signed in"
    return f"{name}={cookie.value}"
