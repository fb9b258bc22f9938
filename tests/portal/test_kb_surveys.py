"""Knowledge base search, suggestions, votes and report; satisfaction surveys from signed links."""
from __future__ import annotations

from datetime import timedelta

import pytest
from hypothesis import given, settings, strategies as st
from sqlalchemy import select

from app.crm.models import CustomerFeedback
from app.interactions.service import transition
from app.interactions.states import State
from app.portal import kb, surveys
from app.portal.models import KbArticle, KbVote
from app.portal.seed import seed_knowledge_base
from tests.factories import login, make_interaction, make_staff
from tests.portal.helpers import emails_to, make_account, portal_login


@pytest.fixture()
def articles(app, db_session):
    seed_knowledge_base(db_session)
    db_session.commit()


@pytest.mark.parametrize("query,language,slug", [
    ("return item refund", "en", "return-item"),
    ("track my order", "en", "track-order"),
    ("forgot password", "en", "reset-password"),
    ("退货", "zh", "return-item"),
    ("怎么查询物流", "zh", "track-order"),
    ("忘记密码", "zh", "reset-password"),
    ("DAMAGED", "en", "damaged-item"),
])
def test_search_finds_the_right_article(app, db_session, articles, query, language, slug):
    hits = kb.search(db_session, query, language=language)
    assert hits and hits[0].article.slug == slug and hits[0].article.language == language


def test_search_edge_cases(app, db_session, articles):
    assert kb.search(db_session, "   ", language="en") == []
    assert kb.search(db_session, "the and of", language="en") == []
    assert kb.search(db_session, "%_%", language="en") == []  # LIKE wildcards are escaped
    assert kb.search(db_session, "xylophone", language="en") == []
    both = kb.search(db_session, "password 密码", language=None)
    assert {h.article.language for h in both} == {"en", "zh"}
    article = db_session.scalar(select(KbArticle).where(KbArticle.slug == "track-order", KbArticle.language == "en"))
    article.published = False
    db_session.commit()
    assert all(h.article.slug != "track-order" for h in kb.search(db_session, "track order", language="en"))


@settings(max_examples=60, deadline=None)
@given(st.text(max_size=80))
def test_terms_never_fail_and_are_bounded(text):
    found = kb.terms(text)
    assert len(found) <= 12 and all(t and t not in kb.STOPWORDS for t in found)


def test_suggestions_while_typing(app, client, db_session, articles):
    data = client.get("/portal/kb/suggest?q=My parcel tracking has not moved, where is my order?").get_json()
    assert data["articles"] and data["articles"][0]["url"].startswith("/portal/kb/")
    zh = client.get("/portal/kb/suggest?q=我想退货&lang=zh").get_json()
    assert any("退货" in a["title"] for a in zh["articles"])


def test_kb_pages_and_votes_feed_the_report(app, client, db_session, articles):
    assert b"Orders and delivery" in client.get("/portal/kb/").data
    assert b"track-order" in client.get("/portal/kb/?q=track").data
    assert "如何查询订单物流".encode() in client.application.test_client().get("/portal/kb/track-order?lang=zh").data
    assert client.get("/portal/kb/no-such-article").status_code == 404
    assert client.post("/portal/kb/track-order/vote", data={"helpful": "yes"}).status_code == 302
    assert client.post("/portal/kb/track-order/vote", data={"helpful": "no"}).status_code == 302  # changes mind
    assert client.post("/portal/kb/track-order/vote", data={"helpful": "maybe"}).status_code == 400
    assert client.post("/portal/kb/nope/vote", data={"helpful": "yes"}).status_code == 404
    other = client.application.test_client()
    other.post("/portal/kb/track-order/vote", data={"helpful": "no"})
    account = make_account(db_session)
    db_session.commit()
    portal_login(other, account)
    other.post("/portal/kb/track-order/vote", data={"helpful": "yes"})
    assert db_session.query(KbVote).count() == 3
    rows = {(r.slug, r.language): r for r in kb.vote_report(db_session)}
    track = rows[("track-order", "en")]
    assert (track.helpful, track.not_helpful, track.helpful_percent) == (1, 2, 33)
    assert rows[("return-item", "en")].helpful_percent is None
    assert kb.vote_report(db_session)[0].slug == "track-order"  # least helpful first
    with pytest.raises(LookupError):
        kb.vote(db_session, 999999, helpful=True, voter="x")
    assert client.get("/portal/kb/report").status_code == 302  # staff sign-in needed
    supervisor = make_staff(db_session, role="supervisor")
    db_session.commit()
    staff = client.application.test_client()
    login(staff, supervisor)
    report = staff.get("/portal/kb/report")
    assert report.status_code == 200 and b"How do I track my order?" in report.data


def test_seed_is_idempotent(app, db_session):
    assert seed_knowledge_base(db_session) == 8
    assert seed_knowledge_base(db_session) == 0


def _closed_contact(db_session, account):
    contact = make_interaction(db_session, customer=account.customer, channel="chat")
    transition(db_session, contact, State.CLOSED, actor="test")
    db_session.commit()
    return contact


def test_survey_by_signed_link_is_answered_once(app, client, db_session):
    account = make_account(db_session, email="s@example.com")
    contact = _closed_contact(db_session, account)
    assert surveys.send_survey(db_session, contact.id, base_url="http://desk.test", secret_key=app.secret_key)
    db_session.commit()
    body = emails_to(db_session, "s@example.com", "survey")[-1].body
    path = body[body.index("/portal/survey/"):].split()[0]
    assert client.get(path).status_code == 200
    assert client.post(path, data={"csat": "9"}).status_code == 400
    response = client.post(path, data={"csat": "4", "nps": "9", "comment": "Quick and kind"})
    assert response.status_code == 200
    rows = {f.kind: f for f in db_session.scalars(select(CustomerFeedback))}
    assert rows["csat"].score == 4 and rows["nps"].score == 9 and rows["csat"].comment == "Quick and kind"
    assert rows["csat"].interaction_id == contact.id
    again = client.get(path)
    assert b"We already have your answers" in again.data
    assert not surveys.send_survey(db_session, contact.id, base_url="x", secret_key=app.secret_key)
    with pytest.raises(surveys.SurveyAlreadyAnswered):
        surveys.submit(db_session, surveys.read_token(app.secret_key, path.rsplit("/", 1)[1], max_age_s=60),
                       csat=5, nps=None)


def test_survey_links_cannot_be_forged_or_reused_for_others(app, client, db_session):
    account = make_account(db_session)
    other = make_account(db_session)
    contact = _closed_contact(db_session, account)
    assert client.get("/portal/survey/not-a-token").status_code == 400
    forged = surveys.make_token("another-secret", contact.id, account.customer_id)
    assert client.get(f"/portal/survey/{forged}").status_code == 400
    mismatched = surveys.make_token(app.secret_key, contact.id, other.customer_id)
    assert client.post(f"/portal/survey/{mismatched}", data={"csat": "1"}).status_code == 404
    with pytest.raises(surveys.SurveyLinkInvalid):
        surveys.read_token(app.secret_key, surveys.make_token(app.secret_key, 1, 2), max_age_s=-1)
    answer_nps_optional = surveys.make_token(app.secret_key, contact.id, account.customer_id)
    assert client.post(f"/portal/survey/{answer_nps_optional}", data={"csat": "5"}).status_code == 200
    assert db_session.scalar(select(CustomerFeedback.kind)) == "csat"


def test_send_survey_needs_someone_to_ask(app, db_session):
    anonymous = make_interaction(db_session, channel="voice")
    db_session.commit()
    assert not surveys.send_survey(db_session, anonymous.id, base_url="x", secret_key="k")
    assert not surveys.send_survey(db_session, 999999, base_url="x", secret_key="k")
    _ = timedelta
