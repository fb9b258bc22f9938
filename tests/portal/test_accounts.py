"""Sign-up, password sign-in, one-time email links, password reset: given/when/then stories."""
from __future__ import annotations

from datetime import timedelta

import pytest

from app.db import utcnow
from app.portal import accounts
from app.portal.models import CustomerAccount
from tests.factories import PASSWORD, make_customer
from tests.portal.helpers import emails_to, link_token, make_account, portal_login


def _config(app):
    return app.extensions["desk.config"].portal


def test_sign_up_sends_verification_and_account_stays_inactive_until_link_used(app, client, db_session):
    response = client.post("/portal/signup", data={"name": "Li Wei", "email": "Li.Wei@Example.com",
                                                   "password": "long-enough-pass", "confirm": "long-enough-pass",
                                                   "language": "zh"})
    assert response.status_code == 200
    account = accounts.find_account(db_session, "li.wei@example.com")
    assert account is not None and not account.active
    assert account.customer.language == "zh" and account.customer.is_prospect
    mail = emails_to(db_session, "li.wei@example.com", "verify")[-1]
    assert "确认" in mail.subject
    token = link_token(mail.body, "/portal/signin/verify/")
    assert client.post("/portal/signin", data={"email": account.email, "password": "long-enough-pass"}
                       ).status_code == 401  # inactive until verified
    page = client.get(f"/portal/signin/verify/{token}")
    assert page.status_code == 200  # a GET never burns the token
    assert client.post(f"/portal/signin/verify/{token}").status_code == 302
    db_session.expire_all()
    assert db_session.get(CustomerAccount, account.id).active
    assert client.get("/portal/").status_code == 200
    # the link is single-use
    assert client.post(f"/portal/signin/verify/{token}").status_code == 400


def test_sign_up_joins_the_crm_customer_who_owns_the_address(app, db_session):
    owner = make_customer(db_session, name="Known Buyer", email="buyer@example.com")
    account = accounts.sign_up(db_session, name="Someone", email="buyer@example.com", password="long-enough-pass",
                               language="en", config=_config(app), base_url="http://desk.test")
    assert account.customer_id == owner.id


def test_sign_up_with_a_taken_address_reveals_nothing_and_warns_the_owner(app, client, db_session):
    existing = make_account(db_session, email="taken@example.com")
    db_session.commit()
    response = client.post("/portal/signup", data={"name": "X", "email": "taken@example.com",
                                                   "password": "another-password", "confirm": "another-password",
                                                   "language": "en"})
    assert response.status_code == 200
    assert b"Check your email" in response.data
    assert emails_to(db_session, "taken@example.com", "signup_exists")
    assert db_session.query(CustomerAccount).count() == 1 and existing.active


def test_weak_password_is_refused(app, client, db_session):
    with pytest.raises(accounts.WeakPassword):
        accounts.sign_up(db_session, name="A", email="a@example.com", password="short", language="en",
                         config=_config(app), base_url="http://desk.test")
    response = client.post("/portal/signup", data={"name": "A", "email": "a@example.com", "password": "short",
                                                   "confirm": "short", "language": "en"})
    assert response.status_code == 400


def test_password_sign_in_and_wrong_password(app, client, db_session):
    account = make_account(db_session, email="p@example.com")
    db_session.commit()
    assert client.post("/portal/signin", data={"email": "p@example.com", "password": "nope-nope-nope"}
                       ).status_code == 401
    portal_login(client, account)
    assert b"Hello" in client.get("/portal/").data


def test_sign_in_is_rate_limited(app, client, db_session):
    make_account(db_session, email="r@example.com")
    db_session.commit()
    codes = [client.post("/portal/signin", data={"email": "r@example.com", "password": "wrong-wrong-wrong"}
                         ).status_code for _ in range(_config(app).sign_in_attempts + 1)]
    assert codes[-1] == 429 and set(codes[:-1]) == {401}


def test_email_link_sign_in_is_one_time_and_answers_the_same_for_unknown_addresses(app, client, db_session):
    account = make_account(db_session, email="link@example.com")
    db_session.commit()
    known = client.post("/portal/signin/link", data={"email": "link@example.com"})
    unknown = client.post("/portal/signin/link", data={"email": "nobody@example.com"})
    assert known.status_code == unknown.status_code == 200
    assert known.data == unknown.data
    assert not emails_to(db_session, "nobody@example.com")
    token = link_token(emails_to(db_session, account.email, "login_link")[-1].body, "/portal/signin/link/")
    assert client.post(f"/portal/signin/link/{token}").status_code == 302
    assert client.get("/portal/").status_code == 200
    other = client.application.test_client()
    assert other.post(f"/portal/signin/link/{token}").status_code == 400


def test_expired_and_wrong_purpose_tokens_are_refused(app, db_session):
    account = make_account(db_session, email="e@example.com")
    raw = accounts.issue_token(db_session, account, "login", 60, now=utcnow() - timedelta(minutes=5))
    with pytest.raises(accounts.TokenInvalid):
        accounts.consume_token(db_session, raw, "login")
    fresh = accounts.issue_token(db_session, account, "login", 600)
    with pytest.raises(accounts.TokenInvalid):
        accounts.consume_token(db_session, fresh, "reset")
    with pytest.raises(ValueError):
        accounts.issue_token(db_session, account, "bogus", 60)
    account.active = False
    with pytest.raises(accounts.TokenInvalid):
        accounts.consume_token(db_session, fresh, "login")  # a disabled account cannot sign in by link
    assert not accounts.request_login_link(db_session, "e@example.com", config=_config(app), base_url="x")


def test_password_reset_changes_password_and_kills_other_links(app, client, db_session):
    account = make_account(db_session, email="reset@example.com")
    db_session.commit()
    assert client.post("/portal/reset", data={"email": "reset@example.com"}).status_code == 200
    client.post("/portal/signin/link", data={"email": "reset@example.com"})
    reset_token = link_token(emails_to(db_session, account.email, "reset")[-1].body, "/portal/reset/")
    login_token = link_token(emails_to(db_session, account.email, "login_link")[-1].body, "/portal/signin/link/")
    assert client.post(f"/portal/reset/{reset_token}", data={"password": "short", "confirm": "short"}
                       ).status_code == 400
    assert client.post(f"/portal/reset/{reset_token}", data={"password": "brand-new-password",
                                                             "confirm": "brand-new-password"}).status_code == 302
    fresh = client.application.test_client()
    assert fresh.post(f"/portal/signin/link/{login_token}").status_code == 400
    assert fresh.post("/portal/signin", data={"email": account.email, "password": PASSWORD}).status_code == 401
    assert fresh.post("/portal/signin", data={"email": account.email, "password": "brand-new-password"}
                      ).status_code == 302
    assert client.post(f"/portal/reset/{reset_token}", data={"password": "another-password1",
                                                             "confirm": "another-password1"}).status_code == 400
    assert not accounts.request_password_reset(db_session, "nobody@example.com", config=_config(app),
                                               base_url="x")


def test_pages_need_a_customer_and_sign_out_needs_csrf_form(app, client, db_session):
    assert client.get("/portal/").status_code == 302
    account = make_account(db_session)
    db_session.commit()
    portal_login(client, account)
    assert client.post("/portal/signout").status_code == 302
    assert client.get("/portal/").status_code == 302
