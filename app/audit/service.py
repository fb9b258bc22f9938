"""Recording and searching the audit log; the retention purge."""
from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from app.audit.models import AuditEntry
from app.db import utcnow


def record(session: Session, *, actor: str, action: str, target_type: str | None = None,
           target_id: str | int | None = None, outcome: str = "ok", ip: str | None = None,
           data: dict[str, Any] | None = None, at: datetime | None = None) -> AuditEntry:
    """Add an audit entry to the caller's transaction (so it commits or rolls back with the action)."""
    entry = AuditEntry(actor=actor, action=action, target_type=target_type,
                       target_id=None if target_id is None else str(target_id), outcome=outcome, ip=ip,
                       data=dict(data or {}), occurred_at=at or utcnow())
    session.add(entry)
    return entry


@dataclass(frozen=True)
class AuditQuery:
    actor: str | None = None
    action: str | None = None
    target_type: str | None = None
    target_id: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    limit: int = 200


def search(session: Session, query: AuditQuery) -> list[AuditEntry]:
    """Newest first; ``action`` matches a prefix ("auth." finds every sign-in event)."""
    stmt = select(AuditEntry).order_by(AuditEntry.id.desc()).limit(min(max(query.limit, 1), 5000))
    if query.actor:
        stmt = stmt.where(AuditEntry.actor == query.actor)
    if query.action:
        stmt = stmt.where(AuditEntry.action.startswith(query.action))
    if query.target_type:
        stmt = stmt.where(AuditEntry.target_type == query.target_type)
    if query.target_id:
        stmt = stmt.where(AuditEntry.target_id == query.target_id)
    if query.since:
        stmt = stmt.where(AuditEntry.occurred_at >= query.since)
    if query.until:
        stmt = stmt.where(AuditEntry.occurred_at < query.until)
    return list(session.scalars(stmt))


def to_csv(entries: list[AuditEntry]) -> str:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["id", "occurred_at", "actor", "action", "target_type", "target_id", "outcome", "ip", "data"])
    for e in entries:
        writer.writerow([e.id, e.occurred_at.isoformat(), e.actor, e.action, e.target_type or "", e.target_id or "",
                         e.outcome, e.ip or "", e.data])
    return out.getvalue()


def purge_expired(session: Session, retention_days: int, *, now: datetime | None = None) -> int:
    """Delete entries older than the retention period; returns how many. Does not commit."""
    cutoff = (now or utcnow()) - timedelta(days=retention_days)
    result = session.execute(delete(AuditEntry).where(AuditEntry.occurred_at < cutoff))
    return result.rowcount or 0
