"""Every portal form answers 429 once its rate limit is spent; redirects stay on the portal."""
from __future__ import annotations

import pytest

from app.portal import views
from app.portal.seed import seed_knowledge_base
from app.portal.surveys import make_token
from tests.factories import make_interaction
from tests.portal.helpers import make_account, portal_login


@pytest.fixture()
def spent(monkeypatch):
    monkeypatch.setattr(views, "_within_limit", lambda bucket, who=None: False)


@pytest.fixture()
def signed_in(app, client, db_session):
    account = make_account(db_session, email="limit@example.com")
    seed_knowledge_base(db_session)
    db_session.commit()
    portal_login(client, account)
    return account


def test_every_form_is_rate_limited(app, client, db_session, signed_in, spent):
    contact = make_interaction(db_session, customer=signed_in.customer, channel="chat")
    db_session.commit()
    survey = make_token(app.secret_key, contact.id, signed_in.customer_id)
    posts = [
        ("/portal/signin/link", {"email": "a@example.com"}),
        ("/portal/reset", {"email": "a@example.com"}),
        ("/portal/signup", {"name": "A", "email": "new@example.com", "password": "long-enough-pass",
                            "confirm": "long-enough-pass", "language": "en"}),
        ("/portal/cases/new", {"category": "order", "subject": "s", "description": "d"}),
        ("/portal/complaints/new", {"category": "billing", "description": "d"}),
        ("/portal/kb/track-order/vote", {"helpful": "yes"}),
        (f"/portal/survey/{survey}", {"csat": "5"}),
    ]
    for path, data in posts:
        assert client.post(path, data=data).status_code == 429, path


def test_next_parameter_only_returns_to_portal_pages(app, client, db_session):
    account = make_account(db_session, email="next@example.com")
    db_session.commit()
    form = {"email": account.email, "password": "correct-horse-battery"}
    inside = client.post("/portal/signin?next=/portal/history", data=form)
    assert inside.headers["Location"].endswith("/portal/history")
    client.post("/portal/signout")
    outside = client.post("/portal/signin?next=https://evil.example/", data=form)
    assert outside.headers["Location"].endswith("/portal/")
    client.post("/portal/signout")
    sneaky = client.post("/portal/signin?next=//evil.example/portal/", data=form)
    assert "evil" not in sneaky.headers["Location"]


def test_invalid_link_form_and_signout_without_form(app, client):
    assert client.post("/portal/signin/link", data={"email": "not-an-email"}).status_code == 400
    assert client.get("/portal/signin/link/whatever").status_code == 200  # a GET only shows the button
    assert client.post("/portal/signin/link/whatever").status_code == 400
