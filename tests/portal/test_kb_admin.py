"""Knowledge-base admin pages: who may use them, writing both language versions, sanitising, publishing,
categories, the audit trail, CSRF, the Chinese interface and the way to the votes report."""
from __future__ import annotations

import re

import pytest
from sqlalchemy import func, select

from app.audit.models import AuditEntry
from app.portal import kb
from app.portal.models import KbArticle, KbCategory
from app.portal.seed import seed_knowledge_base
from tests.factories import login, make_staff


@pytest.fixture()
def editor(app, client, db_session):
    seed_knowledge_base(db_session)
    user = make_staff(db_session, role="supervisor")
    db_session.commit()
    login(client, user)
    return user


def _category_id(db_session, slug="returns") -> int:
    return db_session.scalar(select(KbCategory.id).where(KbCategory.slug == slug))


def _form(db_session, **overrides) -> dict:
    form = {"slug": "exchange-size", "category_id": str(_category_id(db_session)),
            "title_en": "Exchanging for another size", "published_en": "1",
            "body_en": "<p>Open a request and pick <strong>An order</strong>.</p><script>alert(1)</script>",
            "title_zh": "更换尺码", "body_zh": "提交请求并选择“订单”。\n\n我们会寄出新尺码。", "published_zh": "1"}
    form.update(overrides)
    return form


def _audit(db_session, prefix="kb."):
    return list(db_session.scalars(select(AuditEntry).where(AuditEntry.action.startswith(prefix))
                                   .order_by(AuditEntry.id)))


def test_only_supervisors_and_admins_may_edit(app, client, db_session):
    agent = make_staff(db_session, role="agent")
    admin = make_staff(db_session, role="admin")
    db_session.commit()
    assert client.get("/admin/kb/").status_code == 302  # sign in first
    login(client, agent)
    assert client.get("/admin/kb/").status_code == 403
    assert client.post("/admin/kb/new", data=_form(db_session)).status_code == 403
    assert db_session.scalar(select(func.count(KbArticle.id))) == 0
    other = app.test_client()
    login(other, admin)
    assert other.get("/admin/kb/").status_code == 200


def test_create_both_versions_sanitised_audited_and_searchable(app, client, db_session, editor):
    response = client.post("/admin/kb/new", data=_form(db_session))
    assert response.status_code == 302 and response.headers["Location"].endswith("/admin/kb/articles/exchange-size")
    versions = {a.language: a for a in db_session.scalars(select(KbArticle).where(KbArticle.slug == "exchange-size"))}
    assert set(versions) == {"en", "zh"} and versions["en"].group_key == versions["zh"].group_key == "exchange-size"
    assert "<script" not in versions["en"].body and "<strong>An order</strong>" in versions["en"].body
    assert versions["zh"].body == "<p>提交请求并选择“订单”。</p><p>我们会寄出新尺码。</p>"
    [entry] = _audit(db_session)
    assert entry.action == "kb.article_created" and entry.actor == f"staff:{editor.id}"
    assert entry.data["changes"] == {"en": ["created"], "zh": ["created"]}
    assert kb.search(db_session, "exchanging size", language="en")[0].article.slug == "exchange-size"
    assert kb.search(db_session, "尺码", language="zh")[0].article.slug == "exchange-size"
    page = app.test_client().get("/portal/kb/exchange-size")
    assert b"<strong>An order</strong>" in page.data and b"alert(1)" not in page.data
    edit = client.get("/admin/kb/articles/exchange-size")
    assert edit.status_code == 200 and "更换尺码".encode() in edit.data


@pytest.mark.parametrize("overrides,message", [
    ({"slug": "Bad Slug"}, b"lower-case letters"),
    ({"slug": "track-order"}, b"already uses this address name"),
    ({"category_id": "999999"}, b"Choose a category"),
    ({"category_id": "x"}, b"Choose a category"),
    ({"title_en": "", "body_en": "", "title_zh": "", "body_zh": ""}, b"at least one language version"),
    ({"title_en": ""}, b"needs a title"),
    ({"title_en": "x" * 201}, b"needs a title"),
    ({"body_en": "<script>only()</script>"}, b"needs a text"),
])
def test_bad_input_is_refused_and_changes_nothing(app, client, db_session, editor, overrides, message):
    before = db_session.scalar(select(func.count(KbArticle.id)))
    response = client.post("/admin/kb/new", data=_form(db_session, **overrides))
    assert response.status_code == 422 and message in response.data
    assert db_session.scalar(select(func.count(KbArticle.id))) == before
    assert _audit(db_session) == []


def test_only_one_language_may_be_written_first(app, client, db_session, editor):
    form = _form(db_session, title_zh="", body_zh="")
    assert client.post("/admin/kb/new", data=form).status_code == 302
    assert {a.language for a in db_session.scalars(select(KbArticle).where(KbArticle.slug == "exchange-size"))} == {"en"}
    listing = client.get("/admin/kb/")
    assert b"Not written yet" in listing.data
    # the Chinese version is added later, as a draft
    form.update(title_zh="更换尺码", body_zh="提交请求。")
    form.pop("published_zh")
    assert client.post("/admin/kb/articles/exchange-size", data=form).status_code == 302
    zh = db_session.scalar(select(KbArticle).where(KbArticle.slug == "exchange-size", KbArticle.language == "zh"))
    assert zh.published is False and kb.search(db_session, "尺码", language="zh") == []


def test_edit_renames_recategorises_and_records_what_changed(app, client, db_session, editor):
    client.post("/admin/kb/new", data=_form(db_session))
    form = _form(db_session, slug="change-size", category_id=str(_category_id(db_session, "orders")),
                 title_zh="如何更换尺码")
    assert client.post("/admin/kb/articles/exchange-size", data=form).status_code == 302
    versions = {a.language: a for a in db_session.scalars(select(KbArticle).where(KbArticle.group_key == "exchange-size"))}
    assert {a.slug for a in versions.values()} == {"change-size"}
    assert {a.category.slug for a in versions.values()} == {"orders"}
    assert versions["zh"].title == "如何更换尺码"
    entry = _audit(db_session)[-1]
    assert entry.action == "kb.article_updated"
    assert entry.data["changes"] == {"en": ["slug", "category"], "zh": ["slug", "category", "title"]}
    assert app.test_client().get("/portal/kb/change-size?lang=zh").status_code == 200
    # saving the same thing again records nothing
    client.post("/admin/kb/articles/exchange-size", data=form)
    assert len(_audit(db_session)) == 2
    # a version cannot be emptied, and unknown groups are 404
    refused = client.post("/admin/kb/articles/exchange-size", data={**form, "title_zh": "", "body_zh": ""})
    assert refused.status_code == 422 and b"cannot be emptied" in refused.data
    assert client.post("/admin/kb/articles/nothing-here", data=form).status_code == 404
    assert client.get("/admin/kb/articles/nothing-here").status_code == 404


def test_a_new_article_may_reuse_a_renamed_articles_old_address(app, client, db_session, editor):
    client.post("/admin/kb/new", data=_form(db_session))
    client.post("/admin/kb/articles/exchange-size", data=_form(db_session, slug="change-size"))
    assert client.post("/admin/kb/new", data=_form(db_session, title_en="Other")).status_code == 302
    keys = {a.group_key for a in db_session.scalars(select(KbArticle).where(KbArticle.title == "Other"))}
    assert keys == {"exchange-size-2"}


def test_publish_and_unpublish_one_version(app, client, db_session, editor):
    article = db_session.scalar(select(KbArticle).where(KbArticle.slug == "track-order", KbArticle.language == "en"))
    customer = app.test_client()
    assert customer.get("/portal/kb/track-order?lang=en").status_code == 200
    assert client.post(f"/admin/kb/versions/{article.id}/published", data={"published": "0"}).status_code == 302
    db_session.refresh(article)
    assert article.published is False
    assert all(h.article.id != article.id for h in kb.search(db_session, "track order", language="en"))
    zh_page = customer.get("/portal/kb/track-order?lang=en")  # the Chinese version is still published
    assert zh_page.status_code == 200 and "如何查询订单物流".encode() in zh_page.data
    assert client.post(f"/admin/kb/versions/{article.id}/published", data={"published": "1"}).status_code == 302
    assert [e.action for e in _audit(db_session)] == ["kb.article_unpublished", "kb.article_published"]
    assert client.post(f"/admin/kb/versions/{article.id}/published", data={"published": "x"}).status_code == 400
    assert client.post("/admin/kb/versions/999999/published", data={"published": "1"}).status_code == 404
    listing = client.get("/admin/kb/")
    assert f'id="unpublish-{article.id}"'.encode() in listing.data


def test_categories_are_created_and_renamed(app, client, db_session, editor):
    data = {"slug": "payments", "name_en": "Payments", "name_zh": "支付", "position": "5"}
    assert client.post("/admin/kb/categories/", data=data).status_code == 302
    category = db_session.scalar(select(KbCategory).where(KbCategory.slug == "payments"))
    assert (category.name_zh, category.position) == ("支付", 5)
    assert client.post(f"/admin/kb/categories/{category.id}", data={**data, "name_en": "Paying"}).status_code == 302
    db_session.refresh(category)
    assert category.name_en == "Paying"
    entries = _audit(db_session)
    assert [e.action for e in entries] == ["kb.category_created", "kb.category_updated"]
    assert entries[1].data["from"]["name_en"] == "Payments" and entries[1].data["to"]["name_en"] == "Paying"
    for bad in ({"slug": "orders"}, {"slug": "no good"}, {"name_zh": ""}, {"position": "-1"}, {"position": "x"}):
        response = client.post("/admin/kb/categories/", data={**data, "slug": "new-one", **bad})
        assert response.status_code == 422, bad
    assert client.post("/admin/kb/categories/999999", data=data).status_code == 404
    assert len(_audit(db_session)) == 2


def test_posts_need_the_csrf_token(app, client, db_session, editor):
    app.config["WTF_CSRF_ENABLED"] = True
    try:
        assert client.post("/admin/kb/new", data=_form(db_session)).status_code == 400
        page = client.get("/admin/kb/new").data
        token = re.search(rb'name="csrf_token" value="([^"]+)"', page).group(1).decode()
        assert client.post("/admin/kb/new", data={**_form(db_session), "csrf_token": token}).status_code == 302
    finally:
        app.config["WTF_CSRF_ENABLED"] = False


def test_chinese_interface_and_the_votes_report_is_one_click_away(app, client, db_session, editor):
    page = client.get("/admin/kb/?lang=zh").get_data(as_text=True)
    assert "知识库" in page and "新建文章" in page and "订单与配送" in page
    report_link = re.search(r'id="kb-report-link" href="([^"]+)"|href="([^"]+)" id="kb-report-link"', page)
    href = next(g for g in report_link.groups() if g)
    report = client.get(href)
    assert report.status_code == 200 and b"kb-report" in report.data
    assert b"/admin/kb/articles/track-order" in report.data
    assert "知识库".encode() in client.get("/?lang=zh").data  # the home page links here
