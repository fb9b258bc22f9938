"""What the CRM reads from the complaints domain: open complaints, closures, complaint and compensation facts
for value scoring (the 360 view reads complaints and compensation in its own single statement).

Read-only and set-based; the complaints domain stays the only writer of its tables.
"""
from __future__ import annotations

from datetime import datetime
from functools import cache
from typing import Any

from sqlalchemy import Integer, bindparam, case, func, select
from sqlalchemy.orm import Session

from app.complaints.models import Complaint, CompensationIssuance

# States after which a complaint no longer counts as open for the customer.
CLOSED_STATES = ("resolved", "closed", "rejected")


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


CID = bindparam("cid", type_=Integer)  # statements built once (see view360)
LIMIT = bindparam("lim", type_=Integer)


@cache
def _open_complaints_stmt():
    c = Complaint
    return (select(c.id, c.reference, c.state, c.level, c.category, c.channel, c.received_at,
                   c.acknowledge_due_at, c.acknowledged_at, c.resolve_due_at, c.owner_id)
            .where(c.customer_id == CID, c.state.not_in(CLOSED_STATES))
            .order_by(c.resolve_due_at, c.id).limit(LIMIT))


def open_complaints(session: Session, customer_id: int, limit: int = 20) -> list[dict[str, Any]]:
    """Open complaints of one customer, nearest resolve deadline first, with their deadlines."""
    rows = session.execute(_open_complaints_stmt(), {"cid": customer_id, "lim": limit}).mappings()
    return [{k: _iso(v) if isinstance(v, datetime) else v for k, v in r.items()} for r in rows]


def recently_closed_complaints(session: Session, closed_from: datetime, closed_to: datetime) -> list[tuple[int, int]]:
    """(complaint id, customer id) of complaints closed in [closed_from, closed_to)."""
    return [(cid, customer) for cid, customer in session.execute(
        select(Complaint.id, Complaint.customer_id).where(
            Complaint.state == "closed", Complaint.closed_at >= closed_from, Complaint.closed_at < closed_to)
        .order_by(Complaint.id))]


def complaint_facts(session: Session, window_start: datetime) -> dict[int, dict[str, int]]:
    """Per customer: open complaints, complaints received since ``window_start``, compensation issued since."""
    out: dict[int, dict[str, int]] = {}
    for customer_id, open_count, recent in session.execute(
            select(Complaint.customer_id,
                   func.sum(case((Complaint.state.not_in(CLOSED_STATES), 1), else_=0)),
                   func.sum(case((Complaint.received_at >= window_start, 1), else_=0)))
            .group_by(Complaint.customer_id)):
        out[customer_id] = {"open_complaints": int(open_count or 0), "complaints_in_window": int(recent or 0)}
    for customer_id, cents in session.execute(
            select(CompensationIssuance.customer_id, func.sum(CompensationIssuance.amount_cents))
            .where(CompensationIssuance.issued_at >= window_start).group_by(CompensationIssuance.customer_id)):
        out.setdefault(customer_id, {})["compensation_cents"] = int(cents or 0)
    return out
