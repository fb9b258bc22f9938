"""Periodic email work, registered in ``app.periodic``: poll every IMAP mailbox that is due, process
messages left pending by a database outage, and re-enqueue outbound mail whose job was lost."""
from __future__ import annotations

import logging
from datetime import datetime, timedelta

from flask import current_app
from sqlalchemy import select
from sqlalchemy.orm import Session

from app.channels.email.imap import PollReport, poll_mailbox, poll_state
from app.channels.email.ingest import IngestResult, process_inbound
from app.channels.email.models import InboundEmail, InboundStatus
from app.channels.email.outbound import requeue_stale_outbound
from app.db import utcnow

log = logging.getLogger(__name__)
POLL_LOCK_S = 300
STALE_PENDING_S = 300  # a message still pending this long after it was stored is not being processed


def process_stale_pending(session: Session, desk_config, *, secret: str, now: datetime | None = None,
                          limit: int = 200) -> list[IngestResult]:
    """Process messages stored but left pending: the database failed between storing a batch and
    processing it, and the poller's next pass finds them as duplicates, so nothing else would. Only
    those stored ``STALE_PENDING_S`` ago or more, so a message being processed right now is left alone."""
    cutoff = (now or utcnow()) - timedelta(seconds=STALE_PENDING_S)
    ids = session.scalars(select(InboundEmail.id).where(
        InboundEmail.status == InboundStatus.PENDING, InboundEmail.received_at <= cutoff)
        .order_by(InboundEmail.id).limit(limit)).all()
    session.commit()
    if ids:
        log.warning("processing %d email(s) left pending since before %s", len(ids), cutoff.isoformat())
    return [process_inbound(session, desk_config, inbound_id, secret=secret) for inbound_id in ids]


def due_mailboxes(session: Session, desk_config, now: datetime) -> list[str]:
    """Mailboxes with IMAP settings whose last attempt is older than ``email.poll.interval_s``."""
    interval = timedelta(seconds=desk_config.email.poll.interval_s)
    due = []
    for mailbox in desk_config.email.mailboxes:
        if mailbox.imap is None:
            continue
        state = poll_state(session, mailbox.name)
        if state.last_attempt_at is None or now - state.last_attempt_at >= interval - timedelta(seconds=1):
            due.append(mailbox.name)
    session.commit()
    return due


def poll_due_mailboxes(session: Session, desk_config, *, secret: str, redis=None,
                       now: datetime | None = None, force: bool = False) -> list[PollReport]:
    """Poll each due mailbox (all with ``force``), one poller per mailbox at a time (Redis lock);
    a second poller racing anyway would only find duplicates."""
    now = now or utcnow()
    if force:
        names = [m.name for m in desk_config.email.mailboxes if m.imap]
    else:
        names = due_mailboxes(session, desk_config, now)
    reports = []
    for name in names:
        lock = f"desk:email:poll:{name}"
        if redis is not None and not redis.set(lock, "1", nx=True, ex=POLL_LOCK_S):
            continue
        try:
            reports.append(poll_mailbox(session, desk_config, name, secret=secret, now=now))
        finally:
            if redis is not None:
                redis.delete(lock)
    return reports


def email_tick_job() -> None:
    """Periodic task: poll due mailboxes, process mail left pending, then sweep outbound mail whose job
    was lost."""
    from app.extensions import db

    desk_config = current_app.extensions["desk.config"]
    try:
        poll_due_mailboxes(db.session, desk_config, secret=current_app.config["SECRET_KEY"],
                           redis=current_app.extensions.get("desk.redis"))
        process_stale_pending(db.session, desk_config, secret=current_app.config["SECRET_KEY"])
        requeue_stale_outbound(db.session)
    finally:
        db.session.remove()
