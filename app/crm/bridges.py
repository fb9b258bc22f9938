"""What the CRM reads from the complaints domain, in one place: open complaints, closures, compensation.

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


@cache
def _compensation_stmt():
    i = CompensationIssuance
    ranked = select(i.id, i.complaint_id, i.method, i.amount_cents, i.currency, i.issued_at,
                    func.sum(i.amount_cents).over(partition_by=i.currency).label("currency_total"),
                    func.row_number().over(order_by=(i.issued_at.desc(), i.id.desc())).label("pos")) \
        .where(i.customer_id == CID).subquery()
    return select(ranked).where(ranked.c.pos <= LIMIT).order_by(ranked.c.pos)


def compensation_received(session: Session, customer_id: int, limit: int = 20) -> dict[str, Any]:
    """Compensation issued to one customer: totals per currency and the latest items (one query)."""
    i = CompensationIssuance
    rows = session.execute(_compensation_stmt(), {"cid": customer_id, "lim": limit}).mappings().all()
    totals = {r["currency"]: int(r["currency_total"]) for r in rows}
    if len(rows) == limit:  # a currency seen only in older items still counts in the totals
        totals = {currency: int(cents) for currency, cents in session.execute(
            select(i.currency, func.sum(i.amount_cents)).where(i.customer_id == customer_id).group_by(i.currency))}
    return {"total_cents": sum(totals.values()), "by_currency": totals,
            "items": [{"id": r["id"], "complaint_id": r["complaint_id"], "method": r["method"],
                       "amount_cents": r["amount_cents"], "currency": r["currency"],
                       "issued_at": _iso(r["issued_at"])} for r in rows]}


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
