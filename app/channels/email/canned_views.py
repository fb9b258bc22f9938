"""Admin pages for canned replies admins add: the form (new and edit, both languages, preview with
sample customer and case values) and delete. Thin: parse the form, call ``canned``, audit, render.
Built-in replies are edited per language at /admin/email/templates/<key>/<language>."""
from __future__ import annotations

from flask import Blueprint, abort, current_app, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from sqlalchemy.exc import IntegrityError

from app.audit.service import record
from app.auth.models import Role
from app.auth.roles import current_staff, role_required
from app.channels.email import canned, templates
from app.extensions import db

bp = Blueprint("email_canned", __name__)


def _desk_name() -> str:
    return current_app.extensions["desk.config"].desk.name


def _draft_from_form() -> canned.Draft:
    form = request.form
    return canned.Draft(labels={lang: form.get(f"label_{lang}", "") for lang in templates.LANGUAGES},
                        subjects={lang: form.get(f"subject_{lang}", "") for lang in templates.LANGUAGES},
                        bodies={lang: form.get(f"body_{lang}", "") for lang in templates.LANGUAGES})


def field_labels() -> dict[str, str]:
    """What the form calls each field, for the error that names it."""
    names = {"key": _("Key")}
    for lang, language in (("en", _("English")), ("zh", _("Chinese"))):
        names[f"label_{lang}"] = _("Label (%(language)s)", language=language)
        names[f"subject_{lang}"] = _("Subject (%(language)s)", language=language)
        names[f"body_{lang}"] = _("Text (%(language)s)", language=language)
    return names


def _audit(action: str, key: str, **data) -> None:
    staff = current_staff()
    record(db.session, actor=f"staff:{staff.id}", action=f"email.canned_reply_{action}", target_type="canned_reply",
           target_id=key, ip=request.remote_addr, data=data)


def _form(*, key: str | None, raw_key: str, draft: canned.Draft, problem: canned.CannedInvalid | None = None,
          previews=None, status: int = 200):
    page = render_template("email/canned_form.html", key=key, raw_key=raw_key, draft=draft, problem=problem,
                           previews=previews or {}, fields=field_labels(),
                           variables=sorted(templates.sample_context("en")), prefix=canned.PREFIX)
    return page, status


@bp.route("/admin/email/canned/new", methods=["GET", "POST"])
@role_required(Role.ADMIN)
def new():
    if request.method == "GET":
        empty = canned.Draft(labels={}, subjects={}, bodies={})
        return _form(key=None, raw_key="", draft=empty)
    draft, raw_key = _draft_from_form(), request.form.get("key", "")
    try:
        key = canned.key_from_slug(raw_key)
        previews = canned.check(draft, _desk_name())
        if request.form.get("action") != "save":
            return _form(key=None, raw_key=raw_key, draft=draft, previews=previews)
        canned.create(db.session, raw_key, draft, staff_id=current_staff().id, desk_name=_desk_name())
        _audit("added", key, label_en=draft.labels["en"].strip(), label_zh=draft.labels["zh"].strip())
        db.session.commit()
    except canned.CannedInvalid as problem:
        db.session.rollback()
        return _form(key=None, raw_key=raw_key, draft=draft, problem=problem, status=422)
    except IntegrityError:  # another admin added the same key a moment ago
        db.session.rollback()
        taken = canned.CannedInvalid("key", _("A canned reply with the key %(key)s exists already.", key=key))
        return _form(key=None, raw_key=raw_key, draft=draft, problem=taken, status=409)
    flash(_("Canned reply added: agents can pick it now."))
    return redirect(url_for("email.template_list"))


@bp.route("/admin/email/canned/<key>", methods=["GET", "POST"])
@role_required(Role.ADMIN)
def edit(key: str):
    if canned.get_added(db.session, key) is None:
        abort(404)
    if request.method == "GET":
        draft = canned.draft_of(db.session, key)
        return _form(key=key, raw_key=key, draft=draft, previews=_safe_previews(draft))
    draft = _draft_from_form()
    try:
        previews = canned.check(draft, _desk_name())
        if request.form.get("action") != "save":
            return _form(key=key, raw_key=key, draft=draft, previews=previews)
        canned.update(db.session, key, draft, staff_id=current_staff().id, desk_name=_desk_name())
        _audit("updated", key, label_en=draft.labels["en"].strip(), label_zh=draft.labels["zh"].strip())
        db.session.commit()
    except canned.CannedInvalid as problem:
        db.session.rollback()
        return _form(key=key, raw_key=key, draft=draft, problem=problem, status=422)
    flash(_("Canned reply saved."))
    return redirect(url_for("email_canned.edit", key=key))


def _safe_previews(draft: canned.Draft):
    try:
        return canned.check(draft, _desk_name())
    except canned.CannedInvalid:  # stored before a stricter check: the admin sees it when saving
        return {}


@bp.post("/admin/email/canned/<key>/delete")
@role_required(Role.ADMIN)
def remove(key: str):
    try:
        canned.remove(db.session, key)
    except canned.BuiltInReply:
        db.session.rollback()
        abort(409, description=_("Built-in canned replies can be edited and reset, but not deleted."))
    except LookupError:
        db.session.rollback()
        abort(404)
    _audit("deleted", key)
    db.session.commit()
    flash(_("Canned reply deleted."))
    return redirect(url_for("email.template_list"))
