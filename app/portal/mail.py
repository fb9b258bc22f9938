"""Email to customers from the portal and chat: recorded in ``portal_emails`` inside the caller's
transaction, then handed to the email channel's mailer by a job once that transaction commits.

Why record first: a sign-in link or a "your chat became a case" notice must never describe something
that was rolled back, and must survive a worker restart. Delivery uses the email channel's transport
(``app.channels.email.outbound.current_mailer``: SMTP, or its recording twin in the demo and tests)
from the first configured mailbox. With no mailbox configured the row stays ``recorded``; with the
desk's dev tools on, its text is logged so the embedded demo can follow sign-in links.
"""
from __future__ import annotations

import logging
from datetime import timedelta
from email.message import EmailMessage as MimeMessage
from email.utils import format_datetime, make_msgid

from flask import current_app, has_app_context
from sqlalchemy.orm import Session

from app import realtime
from app.db import utcnow
from app.portal.models import PortalEmail

log = logging.getLogger(__name__)
EVENT = "portal.email"
RETRY_DELAYS_S = (60, 300, 1800)


def record_email(session: Session, *, to: str, subject: str, body: str, kind: str,
                 customer_id: int | None = None) -> PortalEmail:
    """Add the email (flushed, not committed); delivery is queued when the session commits."""
    row = PortalEmail(to_address=to.strip().lower(), subject=subject[:255], body=body, kind=kind,
                      customer_id=customer_id)
    session.add(row)
    session.flush()
    realtime.after_commit(session, EVENT, {"id": row.id})
    return row


def build_message(row: PortalEmail, sender: str, display_name: str = "") -> MimeMessage:
    """Plain-text MIME for a portal email; marked automatic so auto-responders do not answer it."""
    from email.utils import formataddr

    mime = MimeMessage()
    mime["From"] = formataddr((display_name, sender)) if display_name else sender
    mime["To"] = row.to_address
    mime["Subject"] = row.subject
    mime["Date"] = format_datetime(utcnow())
    mime["Message-ID"] = make_msgid(domain=sender.rsplit("@", 1)[-1])
    mime["Auto-Submitted"] = "auto-generated"
    mime.set_content(row.body, charset="utf-8")
    return mime


def deliver_portal_email(email_id: int, attempt: int = 0) -> str:
    """Job: send one recorded email. Returns the row's status: sent, recorded (no mailbox), failed,
    or retry (a temporary failure; the job is enqueued again with a growing delay)."""
    from app.channels.email.mailer import PermanentFailure, TemporaryFailure
    from app.channels.email.outbound import current_mailer
    from app.extensions import db
    from app.jobs import enqueue

    row = db.session.get(PortalEmail, email_id)
    if row is None or row.status in ("sent", "failed"):
        return "missing" if row is None else row.status
    config = current_app.extensions["desk.config"].email
    if not config.mailboxes:
        if current_app.extensions["desk.settings"].dev_tools_enabled:
            log.info("portal email (no mailbox configured) to %s: %s\n%s", row.to_address, row.subject, row.body)
        return row.status
    mailbox = config.mailboxes[0]
    try:
        current_mailer(config).send(build_message(row, mailbox.address, mailbox.display_name),
                                    sender=mailbox.address, recipients=[row.to_address])
    except TemporaryFailure as exc:
        if attempt >= len(RETRY_DELAYS_S):
            row.status = "failed"
            db.session.commit()
            return row.status
        log.warning("portal email %s: temporary failure (%s), retrying", email_id, exc)
        enqueue(deliver_portal_email, email_id, attempt + 1, queue="email",
                delay=timedelta(seconds=RETRY_DELAYS_S[attempt]))
        return "retry"
    except PermanentFailure as exc:
        log.warning("portal email %s to %s refused: %s", email_id, row.to_address, exc)
        row.status = "failed"
        db.session.commit()
        return row.status
    row.status = "sent"
    db.session.commit()
    return row.status


def on_event(name: str, payload: dict) -> None:
    """Realtime listener: queue delivery of emails whose transaction committed."""
    if name != EVENT or not has_app_context():
        return
    from app.jobs import enqueue

    enqueue(deliver_portal_email, payload["id"], queue="email")
