"""Staff pages for the knowledge base: list, write (English and Chinese), publish, categorise.

Thin: the form is read here and handed to ``kb_admin``, which validates, sanitises and audits.
Supervisors and admins may edit (the same role that reads the "did this help?" report). CSRF comes
from the app-wide CSRFProtect; every form carries ``csrf_token()``.
"""
from __future__ import annotations

from flask import Blueprint, abort, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_login import current_user

from app.auth.models import Role
from app.auth.roles import role_required
from app.extensions import db
from app.portal import kb_admin
from app.portal.kb_admin import Draft, InvalidArticle, Version

bp = Blueprint("kb_admin", __name__, url_prefix="/admin/kb")
EDITOR = Role.SUPERVISOR


def _int(value: str | None) -> int | None:
    value = (value or "").strip()
    return int(value) if value.isdigit() and len(value) < 10 else None


def _draft(form) -> Draft:
    versions = {lang: Version(title=form.get(f"title_{lang}", ""), body=form.get(f"body_{lang}", ""),
                              published=form.get(f"published_{lang}") == "1")
                for lang in kb_admin.LANGUAGES}
    return Draft(slug=form.get("slug", "").strip(), category_id=_int(form.get("category_id")), versions=versions)


def _index(status: int = 200, *, error: str | None = None):
    return render_template("portal/kb_admin_index.html", groups=kb_admin.groups(db.session),
                           categories=kb_admin.categories(db.session), votes=kb_admin.vote_counts(db.session),
                           languages=kb_admin.LANGUAGES, error=error), status


def _editor(draft: Draft | None, group_key: str | None, status: int = 200, *, error: str | None = None):
    return render_template("portal/kb_admin_edit.html", draft=draft, group_key=group_key, error=error,
                           categories=kb_admin.categories(db.session), languages=kb_admin.LANGUAGES), status


def _draft_of(versions) -> Draft:
    first = next(iter(versions.values()))
    return Draft(slug=first.slug, category_id=first.category_id,
                 versions={lang: Version(a.title, a.body, a.published) for lang, a in versions.items()})


@bp.get("/")
@role_required(EDITOR)
def index():
    return _index()


@bp.route("/new", methods=["GET", "POST"])
@role_required(EDITOR)
def new():
    if request.method == "GET":
        return _editor(None, None)
    draft = _draft(request.form)
    try:
        key = kb_admin.save(db.session, draft, actor=current_user.get_id())
    except InvalidArticle as exc:
        db.session.rollback()
        return _editor(draft, None, 422, error=str(exc))
    db.session.commit()
    flash(_("Article saved."))
    return redirect(url_for("kb_admin.edit", group_key=key))


@bp.route("/articles/<group_key>", methods=["GET", "POST"])
@role_required(EDITOR)
def edit(group_key: str):
    versions = kb_admin.group(db.session, group_key)
    if not versions:
        abort(404)
    if request.method == "GET":
        return _editor(_draft_of(versions), group_key)
    draft = _draft(request.form)
    try:
        kb_admin.save(db.session, draft, actor=current_user.get_id(), group_key=group_key)
    except InvalidArticle as exc:
        db.session.rollback()
        return _editor(draft, group_key, 422, error=str(exc))
    db.session.commit()
    flash(_("Article saved."))
    return redirect(url_for("kb_admin.edit", group_key=group_key))


@bp.post("/versions/<int:article_id>/published")
@role_required(EDITOR)
def publish(article_id: int):
    value = request.form.get("published")
    if value not in ("0", "1"):
        abort(400)
    try:
        kb_admin.set_published(db.session, article_id, value == "1", actor=current_user.get_id())
    except LookupError:
        abort(404)
    db.session.commit()
    flash(_("Published.") if value == "1" else _("Withdrawn from the help centre."))
    return redirect(url_for("kb_admin.index"))


def _save_category(category_id: int | None):
    form = request.form
    position = _int(form.get("position")) if form.get("position", "").strip() else 0
    try:
        if position is None:
            raise InvalidArticle(_("The position is a whole number from 0 to 1000."))
        kb_admin.save_category(db.session, actor=current_user.get_id(), slug=form.get("slug", "").strip(),
                               name_en=form.get("name_en", ""), name_zh=form.get("name_zh", ""),
                               position=position, category_id=category_id)
    except InvalidArticle as exc:
        db.session.rollback()
        return _index(422, error=str(exc))
    except LookupError:
        abort(404)
    db.session.commit()
    flash(_("Category saved."))
    return redirect(url_for("kb_admin.index"))


@bp.post("/categories/")
@role_required(EDITOR)
def create_category():
    return _save_category(None)


@bp.post("/categories/<int:category_id>")
@role_required(EDITOR)
def update_category(category_id: int):
    return _save_category(category_id)
