"""Read API for integrations: interactions with their event log (``interactions:read``) and complaints
(``complaints:read``). Thin: parse, query, return.

What is returned stays within what the CRM API already shows of a person: ids, channels, states,
subjects, levels and deadlines -- never notes, free-text descriptions, IVR-collected values, recordings,
evidence or vulnerability flags. Staff signed in to the desk may read too (the console calls the API);
an agent sees only the complaints the complaints domain lets them see; anyone else gets 404, so
references do not leak. Errors: 401/403 (token), 404, 422 ``validation_error``.
"""
from __future__ import annotations

from datetime import datetime
from typing import Any

from flask import Blueprint, g, jsonify
from sqlalchemy import func, select
from sqlalchemy.orm import selectinload

from app.auth.tokens import api_auth
from app.complaints.access import visible_to
from app.complaints.models import Complaint, CompensationIssuance
from app.crm.api import _invalid, _Invalid, _query
from app.crm.bridges import CLOSED_STATES
from app.crm.schemas import MAX_ID, ComplaintQuery, InteractionQuery
from app.extensions import csrf, db
from app.interactions.models import Interaction

bp = Blueprint("crm_api_more", __name__, url_prefix="/api")
csrf.exempt(bp)  # read-only, and authenticated by Bearer token or the staff session
bp.register_error_handler(_Invalid, _invalid)

INTERACTION_FIELDS = ("id", "channel", "direction", "state", "customer_id", "queue", "language", "subject",
                      "agent_id", "priority", "priority_reasons", "disposition", "created_at", "state_changed_at")
EVENT_FIELDS = ("id", "kind", "from_state", "to_state", "actor", "reason", "occurred_at")
COMPLAINT_FIELDS = ("id", "reference", "customer_id", "interaction_id", "order_id", "channel", "category",
                    "root_cause", "level", "state", "language", "currency", "received_at", "acknowledged_at",
                    "acknowledge_due_at", "resolve_due_at", "final_response_at", "closed_at", "state_changed_at",
                    "reopen_count", "owner_id")
COMPLAINT_EVENT_FIELDS = ("id", "kind", "from_state", "to_state", "actor", "occurred_at")


def _plain(row: Any, fields: tuple[str, ...]) -> dict[str, Any]:
    out = {}
    for name in fields:
        value = getattr(row, name)
        out[name] = value.isoformat() if isinstance(value, datetime) else value
    return out


def _not_found(what: str, key: Any):
    return jsonify(error=f"{what}_not_found", message=f"{what} {key!r} does not exist"), 404


def _page(query, page: int, per_page: int, render) -> dict[str, Any]:
    total = db.session.scalar(select(func.count()).select_from(query.order_by(None).subquery())) or 0
    items = db.session.scalars(query.limit(per_page).offset((page - 1) * per_page)).all()
    return {"items": [render(i) for i in items], "page": page, "per_page": per_page, "total": total,
            "pages": (total + per_page - 1) // per_page}


def _staff_filter():
    """The complaints clause for a signed-in staff caller (agents see fewer); None for tokens and supervisors."""
    if not g.api_actor.startswith("staff:"):
        return None
    from app.auth.roles import current_staff

    return visible_to(current_staff())


# --- interactions ----------------------------------------------------------------------------------------

def interaction_to_dict(interaction: Interaction, *, events: bool = False) -> dict[str, Any]:
    data = _plain(interaction, INTERACTION_FIELDS)
    if events:
        data["events"] = [_plain(e, EVENT_FIELDS) for e in interaction.events]
    return data


@bp.get("/interactions")
@api_auth("interactions:read")
def list_interactions():
    q: InteractionQuery = _query(InteractionQuery)
    query = select(Interaction).order_by(Interaction.created_at.desc(), Interaction.id.desc())
    for column, value in ((Interaction.customer_id, q.customer_id), (Interaction.channel, q.channel),
                          (Interaction.state, q.state)):
        if value is not None:
            query = query.where(column == value)
    if q.created_from:
        query = query.where(Interaction.created_at >= q.created_from)
    if q.created_to:
        query = query.where(Interaction.created_at < q.created_to)
    return jsonify(_page(query, q.page, q.per_page, interaction_to_dict))


@bp.get("/interactions/<int:interaction_id>")
@api_auth("interactions:read")
def get_interaction(interaction_id: int):
    interaction = db.session.scalar(select(Interaction).where(Interaction.id == interaction_id)
                                    .options(selectinload(Interaction.events))) if interaction_id <= MAX_ID else None
    if interaction is None:
        return _not_found("interaction", interaction_id)
    return jsonify(interaction_to_dict(interaction, events=True))


# --- complaints -----------------------------------------------------------------------------------------

def complaint_to_dict(complaint: Complaint) -> dict[str, Any]:
    data = _plain(complaint, COMPLAINT_FIELDS)
    data["open"] = complaint.state not in CLOSED_STATES
    return data


@bp.get("/complaints")
@api_auth("complaints:read")
def list_complaints():
    q: ComplaintQuery = _query(ComplaintQuery)
    query = select(Complaint).order_by(Complaint.received_at.desc(), Complaint.id.desc())
    for column, value in ((Complaint.customer_id, q.customer_id), (Complaint.state, q.state),
                          (Complaint.level, q.level)):
        if value is not None:
            query = query.where(column == value)
    if q.open is not None:
        query = query.where(Complaint.state.not_in(CLOSED_STATES) if q.open else Complaint.state.in_(CLOSED_STATES))
    clause = _staff_filter()
    if clause is not None:
        query = query.where(clause)
    return jsonify(_page(query, q.page, q.per_page, complaint_to_dict))


@bp.get("/complaints/<reference>")
@api_auth("complaints:read")
def get_complaint(reference: str):
    if "\x00" in reference:  # PostgreSQL refuses NUL in text: such a reference can only be unknown
        return _not_found("complaint", reference[:32])
    query = select(Complaint).where(Complaint.reference == reference[:32]).options(selectinload(Complaint.events))
    clause = _staff_filter()
    if clause is not None:
        query = query.where(clause)
    complaint = db.session.scalar(query)
    if complaint is None:
        return _not_found("complaint", reference[:32])
    data = complaint_to_dict(complaint)
    data["events"] = [_plain(e, COMPLAINT_EVENT_FIELDS) for e in complaint.events]
    issued = db.session.scalars(select(CompensationIssuance).where(CompensationIssuance.complaint_id == complaint.id)
                                .order_by(CompensationIssuance.id))
    data["compensation"] = [{"amount_cents": i.amount_cents, "currency": i.currency, "method": i.method,
                             "issued_at": i.issued_at.isoformat()} for i in issued]
    return jsonify(data)
