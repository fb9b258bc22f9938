"""What the CRM reads from other domains' tables, in one place: complaints and compensation.

The complaints domain is optional to the CRM (a desk without it still identifies callers and scores
value), so every reader here looks the tables up in the shared metadata and returns nothing when they
are absent. Column names follow ``app/complaints/models.py``; a missing column is a programming error and
raises, never silently returns zero.
"""
from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Table, and_, func, select
from sqlalchemy.orm import Session

from app.extensions import db

COMPLAINTS = "complaints"
ISSUANCES = "compensation_issuances"
CLOSED_STATES = ("resolved", "closed", "rejected")


def _table(name: str) -> Table | None:
    return db.metadata.tables.get(name)


def _first(table: Table, *names: str):
    for name in names:
        if name in table.c:
            return table.c[name]
    raise KeyError(f"{table.name} has none of the columns {names}")


def open_complaints(session: Session, customer_id: int, limit: int = 20) -> list[dict[str, Any]]:
    """Open complaints of one customer, oldest deadline first, with their deadlines."""
    table = _table(COMPLAINTS)
    if table is None:
        return []
    state = _first(table, "state", "status")
    columns = [c for c in table.c if c.name in (
        "id", "reference", "state", "status", "level", "category", "channel", "created_at", "received_at",
        "acknowledge_due_at", "resolve_due_at", "final_response_due_at", "owner_id")]
    order = [c for c in table.c if c.name in ("resolve_due_at", "created_at", "id")]
    rows = session.execute(select(*columns).where(table.c.customer_id == customer_id, state.not_in(CLOSED_STATES))
                           .order_by(*order).limit(limit)).mappings()
    return [{k: (v.isoformat() if isinstance(v, datetime) else v) for k, v in row.items()} for row in rows]


def recently_closed_complaints(session: Session, closed_from: datetime, closed_to: datetime) -> list[tuple[int, int]]:
    """(complaint id, customer id) of complaints closed in [closed_from, closed_to)."""
    table = _table(COMPLAINTS)
    if table is None:
        return []
    closed_at = _first(table, "closed_at", "resolved_at")
    state = _first(table, "state", "status")
    return [(r[0], r[1]) for r in session.execute(
        select(table.c.id, table.c.customer_id).where(
            closed_at >= closed_from, closed_at < closed_to, state.in_(CLOSED_STATES),
            table.c.customer_id.is_not(None)))]


def compensation_received(session: Session, customer_id: int, limit: int = 20) -> dict[str, Any]:
    """Compensation issued to one customer: total per currency and the latest items."""
    table = _table(ISSUANCES)
    if table is None:
        return {"total_cents": 0, "by_currency": {}, "items": []}
    amount, when = _first(table, "amount_cents"), _first(table, "issued_at", "created_at")
    where = _issued_to(table, customer_id)
    items = session.execute(select(*[c for c in table.c if c.name in (
        "id", "complaint_id", "kind", "amount_cents", "currency", "status", "issued_at", "created_at")])
        .where(where).order_by(when.desc()).limit(limit)).mappings()
    currency = _first(table, "currency")
    totals = dict(session.execute(select(currency, func.sum(amount)).where(where).group_by(currency)).all())
    return {"total_cents": int(sum(totals.values())), "by_currency": {k: int(v) for k, v in totals.items()},
            "items": [{k: (v.isoformat() if isinstance(v, datetime) else v) for k, v in row.items()}
                      for row in items]}


def _issued_to(table: Table, customer_id: int):
    status_ok = table.c.status.in_(("issued", "done", "paid")) if "status" in table.c else True
    if "customer_id" in table.c:
        return and_(table.c.customer_id == customer_id, status_ok)
    complaints = _table(COMPLAINTS)
    return and_(table.c.complaint_id.in_(select(complaints.c.id).where(complaints.c.customer_id == customer_id)),
                status_ok)


def complaint_facts(session: Session, window_start: datetime) -> dict[int, dict[str, int]]:
    """Per customer: open complaints, complaints received since ``window_start``, compensation issued since."""
    out: dict[int, dict[str, int]] = {}
    table = _table(COMPLAINTS)
    if table is None:
        return out
    state = _first(table, "state", "status")
    created = _first(table, "created_at", "received_at")
    rows = session.execute(select(
        table.c.customer_id,
        func.sum(func.cast(state.not_in(CLOSED_STATES), db.Integer)),
        func.sum(func.cast(created >= window_start, db.Integer)),
    ).where(table.c.customer_id.is_not(None)).group_by(table.c.customer_id))
    for customer_id, open_count, recent in rows:
        out[customer_id] = {"open_complaints": int(open_count or 0), "complaints_in_window": int(recent or 0)}
    issuances = _table(ISSUANCES)
    if issuances is None:
        return out
    when = _first(issuances, "issued_at", "created_at")
    owner = issuances.c.customer_id if "customer_id" in issuances.c else table.c.customer_id
    query = select(owner, func.sum(issuances.c.amount_cents)).where(when >= window_start)
    if "status" in issuances.c:
        query = query.where(issuances.c.status.in_(("issued", "done", "paid")))
    if "customer_id" not in issuances.c:
        query = query.join(table, table.c.id == issuances.c.complaint_id)
    for customer_id, cents in session.execute(query.group_by(owner)):
        out.setdefault(customer_id, {"open_complaints": 0, "complaints_in_window": 0})
        out[customer_id]["compensation_cents"] = int(cents or 0)
    return out
