"""What the CRM reads from the complaints domain, in one place: open complaints, closures, compensation.

Read-only and set-based; the complaints domain stays the only writer of its tables.
"""
from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import case, func, select
from sqlalchemy.orm import Session

from app.complaints.models import Complaint, CompensationIssuance

# States after which a complaint no longer counts as open for the customer.
CLOSED_STATES = ("resolved", "closed", "rejected")


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


def open_complaints(session: Session, customer_id: int, limit: int = 20) -> list[dict[str, Any]]:
    """Open complaints of one customer, nearest resolve deadline first, with their deadlines."""
    rows = session.scalars(select(Complaint).where(Complaint.customer_id == customer_id,
                                                   Complaint.state.not_in(CLOSED_STATES))
                           .order_by(Complaint.resolve_due_at, Complaint.id).limit(limit))
    return [{"id": c.id, "reference": c.reference, "state": c.state, "level": c.level, "category": c.category,
             "channel": c.channel, "received_at": _iso(c.received_at),
             "acknowledge_due_at": _iso(c.acknowledge_due_at), "acknowledged_at": _iso(c.acknowledged_at),
             "resolve_due_at": _iso(c.resolve_due_at), "owner_id": c.owner_id} for c in rows]


def recently_closed_complaints(session: Session, closed_from: datetime, closed_to: datetime) -> list[tuple[int, int]]:
    """(complaint id, customer id) of complaints closed in [closed_from, closed_to)."""
    return [(cid, customer) for cid, customer in session.execute(
        select(Complaint.id, Complaint.customer_id).where(
            Complaint.state == "closed", Complaint.closed_at >= closed_from, Complaint.closed_at < closed_to)
        .order_by(Complaint.id))]


def compensation_received(session: Session, customer_id: int, limit: int = 20) -> dict[str, Any]:
    """Compensation issued to one customer: totals per currency and the latest items."""
    totals = {currency: int(cents) for currency, cents in session.execute(
        select(CompensationIssuance.currency, func.sum(CompensationIssuance.amount_cents))
        .where(CompensationIssuance.customer_id == customer_id).group_by(CompensationIssuance.currency))}
    items = session.scalars(select(CompensationIssuance).where(CompensationIssuance.customer_id == customer_id)
                            .order_by(CompensationIssuance.issued_at.desc()).limit(limit))
    return {"total_cents": sum(totals.values()), "by_currency": totals,
            "items": [{"id": i.id, "complaint_id": i.complaint_id, "method": i.method,
                       "amount_cents": i.amount_cents, "currency": i.currency, "issued_at": _iso(i.issued_at)}
                      for i in items]}


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
