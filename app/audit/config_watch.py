"""Audit configuration changes: config.yaml is data edited outside the desk, so each process that
starts compares the configuration it loaded with the last one recorded and writes
``config.changed`` (naming the sections that differ) when it is new."""
from __future__ import annotations

import hashlib
import json
import logging

from flask import Flask
from sqlalchemy import select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from app.audit.models import AuditEntry
from app.audit.service import record
from app.config import DeskConfig

log = logging.getLogger(__name__)


def section_hashes(config: DeskConfig) -> dict[str, str]:
    """A short digest per top-level section (pure), so a change can be named without storing secrets."""
    dumped = config.model_dump(mode="json")
    return {name: hashlib.sha256(json.dumps(value, sort_keys=True).encode()).hexdigest()[:16]
            for name, value in sorted(dumped.items())}


def record_if_changed(session: Session, config: DeskConfig, *, actor: str = "system") -> list[str] | None:
    """Write ``config.changed`` when the sections differ from the last recorded ones; returns the
    changed section names, or None when nothing changed. Does not commit."""
    hashes = section_hashes(config)
    last = session.scalar(select(AuditEntry).where(AuditEntry.action == "config.changed")
                          .order_by(AuditEntry.id.desc()).limit(1))
    previous = (last.data or {}).get("sections", {}) if last else {}
    changed = sorted(name for name in set(hashes) | set(previous) if hashes.get(name) != previous.get(name))
    if not changed:
        return None
    record(session, actor=actor, action="config.changed", target_type="config",
           data={"sections": hashes, "changed": changed, "first": last is None})
    return changed


def audit_startup_config(app: Flask) -> None:
    """Called by the long-running processes after start-up; a database not migrated yet is skipped."""
    from app.extensions import db

    with app.app_context():
        try:
            changed = record_if_changed(db.session, app.extensions["desk.config"])
            db.session.commit()
        except SQLAlchemyError as exc:
            db.session.rollback()
            log.warning("configuration change not audited (database not ready): %s", type(exc).__name__)
            return
    if changed:
        log.info("configuration changed since last start: %s", ", ".join(changed))
