"""The audit log: who did what, to which record, from where. Rows are never changed or deleted,
except by the retention purge, which removes whole rows past their retention period."""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, Index, String, event
from sqlalchemy.orm import Mapped, mapped_column

from app.db import UTCDateTime, utcnow
from app.extensions import db


class AuditEntry(db.Model):
    __tablename__ = "audit_entries"

    id: Mapped[int] = mapped_column(primary_key=True)
    occurred_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)
    actor: Mapped[str] = mapped_column(String(64))          # "staff:3", "customer:9", "system", "api:token-name"
    action: Mapped[str] = mapped_column(String(64), index=True)  # "auth.sign_in", "crm.customer_viewed", ...
    target_type: Mapped[str | None] = mapped_column(String(32))
    target_id: Mapped[str | None] = mapped_column(String(64))
    ip: Mapped[str | None] = mapped_column(String(45))
    outcome: Mapped[str] = mapped_column(String(16), default="ok")  # ok | denied | failed
    data: Mapped[dict] = mapped_column(JSON, default=dict)

    __table_args__ = (Index("ix_audit_entries_target", "target_type", "target_id"),)


class AuditImmutable(Exception):
    """Audit entries cannot be edited."""


@event.listens_for(AuditEntry, "before_update")
def _refuse_update(mapper, connection, target):
    raise AuditImmutable("audit entries cannot be edited")
