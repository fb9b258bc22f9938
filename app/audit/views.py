"""The audit log page for supervisors and admins: search, and CSV export (itself audited)."""
from __future__ import annotations

from datetime import datetime, UTC

from flask import Blueprint, Response, render_template, request
from flask_login import current_user

from app.audit.service import AuditQuery, record, search, to_csv
from app.auth.models import Role
from app.auth.roles import role_required
from app.extensions import db

bp = Blueprint("audit", __name__)


def _date(value: str | None) -> datetime | None:
    """An ISO date or datetime from a filter box; naive values are read as UTC; junk is ignored."""
    if not value:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _query_from_args() -> AuditQuery:
    args = request.args
    return AuditQuery(actor=args.get("actor") or None, action=args.get("action") or None,
                      target_type=args.get("target_type") or None, target_id=args.get("target_id") or None,
                      since=_date(args.get("since")), until=_date(args.get("until")),
                      limit=int(args["limit"]) if args.get("limit", "").isdigit() else 200)


@bp.get("/audit/")
@role_required(Role.SUPERVISOR)
def audit_page():
    query = _query_from_args()
    return render_template("audit/list.html", entries=search(db.session, query), query=query)


@bp.get("/audit/export.csv")
@role_required(Role.SUPERVISOR)
def audit_export():
    query = _query_from_args()
    entries = search(db.session, AuditQuery(**{**query.__dict__, "limit": 5000}))
    record(db.session, actor=current_user.get_id(), action="audit.exported", ip=request.remote_addr,
           data={"rows": len(entries), "filters": {k: str(v) for k, v in query.__dict__.items() if v}})
    db.session.commit()
    return Response(to_csv(entries), mimetype="text/csv",
                    headers={"Content-Disposition": "attachment; filename=audit.csv"})
