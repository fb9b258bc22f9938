"""Admin pages for integration API tokens: issue (secret shown once), list with last use, revoke."""
from __future__ import annotations

from datetime import timedelta

from flask import Blueprint, abort, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_login import current_user
from sqlalchemy import select

from app.audit.service import record
from app.auth.models import Role
from app.auth.roles import current_staff, role_required
from app.auth.tokens import SCOPES, ApiToken, issue_token, revoke_token
from app.db import utcnow
from app.extensions import db

bp = Blueprint("api_tokens", __name__, url_prefix="/admin/api-tokens")
MAX_DAYS = 3650


def _page(status: int = 200, *, new_token: str | None = None, error: str | None = None):
    tokens = list(db.session.scalars(select(ApiToken).order_by(ApiToken.id.desc())))
    return render_template("auth/api_tokens.html", tokens=tokens, scopes=SCOPES, new_token=new_token,
                           error=error, now=utcnow()), status


@bp.get("/")
@role_required(Role.ADMIN)
def index():
    return _page()


@bp.post("/")
@role_required(Role.ADMIN)
def create():
    days = request.form.get("expires_in_days", "").strip()
    if days and (not days.isdigit() or not 1 <= int(days) <= MAX_DAYS):
        return _page(422, error=_("Expiry must be a number of days from 1 to %(max)s.", max=MAX_DAYS))
    expires_at = utcnow() + timedelta(days=int(days)) if days else None
    try:
        token, plaintext = issue_token(db.session, name=request.form.get("name", ""),
                                       scopes=request.form.getlist("scopes"), created_by_id=current_staff().id,
                                       expires_at=expires_at)
    except ValueError as exc:
        db.session.rollback()
        return _page(422, error=str(exc))
    record(db.session, actor=current_user.get_id(), action="api_tokens.issued", target_type="api_token",
           target_id=token.id, data={"name": token.name, "scopes": token.scopes,
                                     "expires_at": expires_at.isoformat() if expires_at else None})
    db.session.commit()
    return _page(201, new_token=plaintext)


@bp.post("/<int:token_id>/revoke")
@role_required(Role.ADMIN)
def revoke(token_id: int):
    if db.session.get(ApiToken, token_id) is None:
        abort(404)
    if revoke_token(db.session, token_id):
        record(db.session, actor=current_user.get_id(), action="api_tokens.revoked", target_type="api_token",
               target_id=token_id)
    db.session.commit()
    return redirect(url_for("api_tokens.index"))
