"""Canned replies admins add, edit, preview and delete at /admin/email/canned: both languages checked in
the Jinja2 sandbox before anything is stored, built-ins kept, every change audited, admins only."""
from __future__ import annotations

import pytest
from sqlalchemy import func, select

from agent_console import reply_templates
from app.audit.models import AuditEntry
from app.channels.email import templates
from app.channels.email.models import CannedReply, EmailTemplate
from tests.factories import login, make_staff

FORM = {
    "key": "warranty_claim",
    "label_en": "Warranty claim received", "label_zh": "保修申请已收到",
    "subject_en": "Warranty: {{ case.reference }}", "subject_zh": "保修：{{ case.reference }}",
    "body_en": "Dear {{ customer.name }}, your warranty claim is on case {{ case.reference }}.",
    "body_zh": "{{ customer.name }}您好，您的保修申请已登记为案件 {{ case.reference }}。",
}


@pytest.fixture()
def admin(db_session):
    user = make_staff(db_session, role="admin")
    db_session.commit()
    return user


@pytest.fixture()
def admin_client(client, admin, desk):
    login(client, admin)
    return client


def _count(db_session, model) -> int:
    db_session.expire_all()
    return db_session.scalar(select(func.count()).select_from(model))


def _audits(db_session, prefix: str) -> list[AuditEntry]:
    db_session.expire_all()
    return list(db_session.scalars(select(AuditEntry).where(AuditEntry.action.startswith(prefix))
                                   .order_by(AuditEntry.id)))


def test_an_admin_previews_adds_edits_and_deletes_a_canned_reply(admin_client, admin, db_session):
    form = admin_client.get("/admin/email/canned/new")
    assert form.status_code == 200 and 'name="body_zh"' in form.get_data(as_text=True)

    preview = admin_client.post("/admin/email/canned/new", data={**FORM, "action": "preview"})
    text = preview.get_data(as_text=True)
    assert preview.status_code == 200
    assert "Dear Alex Smith, your warranty claim is on case C-1234." in text  # sample customer and case
    assert "王小明您好，您的保修申请已登记为案件 C-1234。" in text
    assert _count(db_session, CannedReply) == 0 and _count(db_session, EmailTemplate) == 0  # a preview stores nothing

    saved = admin_client.post("/admin/email/canned/new", data={**FORM, "action": "save"})
    assert saved.status_code == 302
    reply = db_session.scalar(select(CannedReply))
    assert (reply.key, reply.label_en, reply.label_zh, reply.created_by) == (
        "canned_warranty_claim", "Warranty claim received", "保修申请已收到", admin.id)
    texts = {r.language: (r.subject, r.body) for r in db_session.scalars(
        select(EmailTemplate).where(EmailTemplate.key == "canned_warranty_claim"))}
    assert texts == {"en": (FORM["subject_en"], FORM["body_en"]), "zh": (FORM["subject_zh"], FORM["body_zh"])}
    listing = admin_client.get("/admin/email/templates").get_data(as_text=True)
    assert "canned_warranty_claim" in listing and "保修申请已收到" in listing
    [added] = _audits(db_session, "email.canned_reply_added")
    assert (added.actor, added.target_type, added.target_id) == (f"staff:{admin.id}", "canned_reply",
                                                                "canned_warranty_claim")
    # agents see it, labelled in their UI language
    assert {"key": "canned_warranty_claim", "label": "保修申请已收到"} in reply_templates.choices(db_session, "zh")
    assert {"key": "canned_warranty_claim", "label": "Warranty claim received"} in reply_templates.choices(
        db_session, "en")

    taken = admin_client.post("/admin/email/canned/new", data={**FORM, "action": "save"})
    assert taken.status_code == 422 and "exists already" in taken.get_data(as_text=True)
    assert _count(db_session, CannedReply) == 1

    page = admin_client.get("/admin/email/canned/canned_warranty_claim").get_data(as_text=True)
    assert "Warranty claim received" in page and "Dear Alex Smith" in page
    edited = admin_client.post("/admin/email/canned/canned_warranty_claim",
                               data={**FORM, "label_en": "Warranty claim logged", "body_en": "Logged: {{ case.tag }}",
                                     "action": "save"})
    assert edited.status_code == 302
    db_session.expire_all()
    assert db_session.scalar(select(CannedReply)).label_en == "Warranty claim logged"
    assert templates.source_of(db_session, "canned_warranty_claim", "en", fresh=True)[1] == "Logged: {{ case.tag }}"
    # one language can also be edited on the per-language page, but has no built-in text to reset to
    one = admin_client.post("/admin/email/templates/canned_warranty_claim/zh",
                            data={"subject": "保修", "body": "已登记：{{ case.tag }}", "action": "save"})
    assert one.status_code == 302
    assert admin_client.post("/admin/email/templates/canned_warranty_claim/zh",
                             data={"action": "reset"}).status_code == 409
    assert templates.source_of(db_session, "canned_warranty_claim", "zh", fresh=True)[1] == "已登记：{{ case.tag }}"

    deleted = admin_client.post("/admin/email/canned/canned_warranty_claim/delete")
    assert deleted.status_code == 302
    assert _count(db_session, CannedReply) == 0 and _count(db_session, EmailTemplate) == 0
    assert "canned_warranty_claim" not in [c["key"] for c in reply_templates.choices(db_session, "en")]
    assert not templates.is_canned(db_session, "canned_warranty_claim")
    assert admin_client.post("/admin/email/canned/canned_warranty_claim/delete").status_code == 404
    assert admin_client.get("/admin/email/canned/canned_warranty_claim").status_code == 404
    actions = [e.action for e in _audits(db_session, "email.")]
    assert actions == ["email.canned_reply_added", "email.canned_reply_updated", "email.template_saved",
                       "email.canned_reply_deleted"]


def test_built_in_replies_are_edited_and_reset_but_not_deleted(admin_client, db_session):
    refused = admin_client.post("/admin/email/canned/canned_refund/delete")
    assert refused.status_code == 409 and "not deleted" in refused.get_data(as_text=True)
    assert admin_client.get("/admin/email/canned/canned_refund").status_code == 404  # edited per language
    assert admin_client.post("/admin/email/templates/canned_refund/en",
                             data={"subject": "Refund", "body": "Refunded: {{ case.reference }}",
                                   "action": "save"}).status_code == 302
    assert admin_client.post("/admin/email/templates/canned_refund/en", data={"action": "reset"}).status_code == 302
    assert templates.source_of(db_session, "canned_refund", "en", fresh=True)[2] is False
    assert "canned_refund" in [c["key"] for c in reply_templates.choices(db_session, "en")]
    assert [e.action for e in _audits(db_session, "email.")] == ["email.template_saved", "email.template_reset"]
    # a new reply cannot take a built-in key, nor a template's
    for key in ("refund", "canned_refund"):
        taken = admin_client.post("/admin/email/canned/new", data={**FORM, "key": key, "action": "save"})
        assert taken.status_code == 422 and "exists already" in taken.get_data(as_text=True)
    assert _count(db_session, CannedReply) == 0


@pytest.mark.parametrize("field, source", [
    ("body_en", "{{ ''.__class__.__mro__ }}"),
    ("body_zh", "{{ ''.__class__.__mro__[1].__subclasses__() }}"),
    ("subject_en", "{{ customer.__class__ }}"),
    ("body_en", "{{ lipsum.__globals__['os'].popen('id').read() }}"),
    ("body_zh", "{{ cycler.__init__.__globals__ }}"),
    ("body_en", "{% for x in range(10**9) %}{% endfor %}"),
    ("body_en", "{{ 'x' * 100000000 }}"),
    ("body_en", "{{ config.SECRET_KEY }}"),  # not a variable templates see
    ("subject_zh", "{{ case.reference "),  # a syntax error
])
def test_sandbox_escapes_and_broken_templates_are_refused_on_save(admin_client, db_session, field, source):
    response = admin_client.post("/admin/email/canned/new", data={**FORM, field: source, "action": "save"})
    text = response.get_data(as_text=True)
    assert response.status_code == 422
    language = "English" if field.endswith("_en") else "Chinese"
    part = {"body": "Text", "subject": "Subject"}[field.split("_")[0]]
    assert f"{part} ({language}) has a problem:" in text  # the error names the field
    assert "uid=" not in text and "SECRET" not in text.split("<textarea")[0]
    assert _count(db_session, CannedReply) == 0 and _count(db_session, EmailTemplate) == 0
    assert _audits(db_session, "email.") == []


@pytest.mark.parametrize("change, field", [
    ({"key": "Bad Key!"}, "Key"), ({"key": "x"}, "Key"), ({"key": "a" * 26}, "Key"),
    ({"label_zh": ""}, "Label (Chinese)"), ({"label_en": "x" * 81}, "Label (English)"),
    ({"body_zh": "  "}, "Text (Chinese)"),
])
def test_incomplete_forms_are_refused_naming_the_field(admin_client, db_session, change, field):
    response = admin_client.post("/admin/email/canned/new", data={**FORM, **change, "action": "save"})
    assert response.status_code == 422 and f"{field} has a problem" in response.get_data(as_text=True)
    assert _count(db_session, CannedReply) == 0


def test_the_form_speaks_chinese(admin_client):
    page = admin_client.get("/admin/email/canned/new?lang=zh").get_data(as_text=True)
    assert "添加常用回复" in page and "标签（中文）" in page
    refused = admin_client.post("/admin/email/canned/new?lang=zh", data={**FORM, "label_zh": "", "action": "save"})
    assert "标签（中文）" in refused.get_data(as_text=True)


def test_only_admins_add_edit_or_delete(app, client, db_session, desk):
    for role in ("agent", "supervisor"):
        user = make_staff(db_session, role=role)
        db_session.commit()
        login(client, user)
        assert client.get("/admin/email/canned/new").status_code == 403
        assert client.post("/admin/email/canned/new", data={**FORM, "action": "save"}).status_code == 403
        assert client.post("/admin/email/canned/canned_refund/delete").status_code == 403
        client.post("/logout")
    assert _count(db_session, CannedReply) == 0
    client.post("/logout")
    anonymous = client.post("/admin/email/canned/new", data={**FORM, "action": "save"})
    assert anonymous.status_code in (302, 401, 403) and _count(db_session, CannedReply) == 0


def test_adding_or_deleting_without_a_csrf_token_is_refused(app, admin_client, db_session):
    admin_client.post("/admin/email/canned/new", data={**FORM, "action": "save"})
    app.config["WTF_CSRF_ENABLED"] = True
    try:
        assert admin_client.post("/admin/email/canned/new",
                                 data={**FORM, "key": "other", "action": "save"}).status_code == 400
        assert admin_client.post("/admin/email/canned/canned_warranty_claim/delete").status_code == 400
    finally:
        app.config["WTF_CSRF_ENABLED"] = False
    assert [r.key for r in db_session.scalars(select(CannedReply))] == ["canned_warranty_claim"]
