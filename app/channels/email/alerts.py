"""Telling admins that a mailbox cannot be polled -- once when it starts failing, once when it recovers.

The alert goes out three ways: an ERROR/INFO log line, a realtime event (``email.mailbox_alert``) for
open admin pages, and (``email.poll.email_admins``) a short email to each active admin in their
language, sent by a job after the state change commits.
"""
from __future__ import annotations

import logging
from email.message import EmailMessage as MimeMessage

from flask import current_app
from flask_babel import force_locale
from flask_babel import gettext as _
from sqlalchemy import select
from sqlalchemy.orm import Session

from app import realtime
from app.channels.email.autoreply import OUR_AUTOMATIC_HEADERS

log = logging.getLogger(__name__)


def notify_admins(session: Session, desk_config, mailbox: str, kind: str, error: str, *, failures: int) -> None:
    """Announce ``kind`` ("failing" or "recovered") for ``mailbox`` after ``session`` commits."""
    if kind == "failing":
        log.error("mailbox %s: polling has failed %s times in a row: %s", mailbox, failures, error)
    else:
        log.info("mailbox %s: polling recovered", mailbox)
    payload = {"mailbox": mailbox, "kind": kind, "error": error, "failures": failures}
    realtime.after_commit(session, "email.mailbox_alert", payload)
    if desk_config.email.poll.email_admins:
        from app.channels.email.outbound import enqueue_job_after_commit

        enqueue_job_after_commit(session, send_admin_alert_job, mailbox, kind, error, failures)


def alert_text(mailbox: str, kind: str, error: str, failures: int) -> tuple[str, str]:
    """(subject, body) in the current locale."""
    if kind == "failing":
        subject = _("Mailbox %(mailbox)s cannot be polled", mailbox=mailbox)
        body = _("The desk has failed %(failures)s times in a row to read the mailbox %(mailbox)s. "
                 "New mail is waiting on the mail server and will be read when the problem is fixed.\n\n"
                 "Last error: %(error)s", failures=failures, mailbox=mailbox, error=error)
    else:
        subject = _("Mailbox %(mailbox)s is being polled again", mailbox=mailbox)
        body = _("The desk can read the mailbox %(mailbox)s again; waiting mail is being taken in.",
                 mailbox=mailbox)
    return subject, body


def send_admin_alert_job(mailbox: str, kind: str, error: str, failures: int) -> int:
    """Job: email each active admin (in their language). Returns how many were sent; a failed send is
    logged (the log line and realtime event have already told the desk)."""
    from app.auth.models import StaffUser
    from app.channels.email.mailer import DeliveryFailure
    from app.channels.email.outbound import current_mailer
    from app.extensions import db

    desk_config = current_app.extensions["desk.config"]
    config = desk_config.email
    if not config.mailboxes:
        return 0
    sender = config.mailboxes[0].address
    mailer = current_mailer(config)
    admins = db.session.scalars(select(StaffUser).where(StaffUser.role == "admin", StaffUser.active.is_(True))).all()
    sent = 0
    for admin in admins:
        with force_locale(admin.language if admin.language in ("en", "zh") else "en"):
            subject, body = alert_text(mailbox, kind, error, failures)
        mime = MimeMessage()
        mime["From"], mime["To"], mime["Subject"] = sender, admin.email, subject
        for name, value in OUR_AUTOMATIC_HEADERS.items():
            mime[name] = value
        mime.set_content(body)
        try:
            mailer.send(mime, sender=sender, recipients=[admin.email])
            sent += 1
        except DeliveryFailure:
            log.exception("could not email the mailbox alert to %s", admin.email)
    db.session.remove()
    return sent
