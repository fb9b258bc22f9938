"""Audit jobs: the nightly retention purge."""
from __future__ import annotations

from flask import current_app

from app.audit.service import purge_expired, record
from app.extensions import db


def purge_expired_entries() -> int:
    retention = current_app.extensions["desk.config"].security.audit_retention_days
    removed = purge_expired(db.session, retention)
    if removed:
        record(db.session, actor="system", action="audit.purged", data={"rows": removed,
                                                                         "retention_days": retention})
    db.session.commit()
    return removed
