"""Delivering the ``complaint_notices`` outbox, each notice exactly once.

A notice is written in the transaction of the change it reports (``service.queue_notice``). After that
commits, the "complaint.notice" event makes ``on_event`` enqueue ``send_notice_job``; the periodic sweep
re-enqueues any notice whose job was lost. Per channel:

- ``email``: to the customer's first address (or the staff member's), through the email channel's
  ``Mailer`` (SMTP, or the recording twin in the demo and tests) from ``complaints.notice_mailbox`` (default:
  the first configured mailbox). The job claims the row (``pending -> sending``, a compare-and-set that
  commits before the send, so two workers never both send), sends, and sets ``sent``/``sent_at`` in
  the transaction that records the send (for customer notices also an audit-trail row). A temporary
  failure is retried with the email channel's backoff; a permanent one marks the row ``failed`` (and a
  5xx recipient refusal marks the address undeliverable). A worker dying between send and commit leaves
  ``sending``; the sweep releases it after ``STUCK_SENDING``, and the fixed Message-ID lets mail clients
  drop the rare second copy.
- ``console`` (staff SLA alerts): "alert.complaint_sla" is published to the recipient's console
  (``agent_id``) in the same transaction that marks the notice sent.
- ``portal`` (customers without an email address): the notice is posted for the customer's portal page
  (``customer_notices``) and "portal.complaint_notice" is published, in the transaction that marks it sent.
"""
from __future__ import annotations

import logging
from datetime import datetime, timedelta
from email.message import EmailMessage as MimeMessage
from email.utils import format_datetime, formataddr

from flask import current_app, has_app_context
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from app import realtime
from app.auth.models import StaffUser
from app.complaints.models import Complaint, ComplaintEvent, ComplaintNotice
from app.crm.models import CustomerEmail
from app.db import utcnow

log = logging.getLogger(__name__)
NOTICE_EVENT = "complaint.notice"
SLA_EVENT = "alert.complaint_sla"
PORTAL_EVENT = "portal.complaint_notice"
STUCK_SENDING = timedelta(minutes=10)
LOST_JOB_GRACE = timedelta(minutes=1)
IN_ORDER_WAIT = timedelta(seconds=5)  # how soon a notice held behind an earlier one is tried again


class NoticeUndeliverable(Exception):
    """This notice cannot be sent on its channel (no address, no mailbox, address bounced for good)."""


# --------------------------------------------------------------------------------------- scheduling
def on_event(name: str, payload: dict) -> None:
    """Realtime listener: enqueue delivery of a notice whose transaction has committed."""
    if name != NOTICE_EVENT or not has_app_context() or "notice_id" not in payload:
        return
    enqueue_send(int(payload["notice_id"]))


def enqueue_send(notice_id: int, delay: timedelta | None = None) -> None:
    from app.jobs import enqueue

    try:
        enqueue(send_notice_job, notice_id, queue="email", delay=delay)
    except Exception:  # Redis down: the row stays pending and the sweep enqueues it again
        log.exception("could not enqueue complaint notice %s; the sweep will retry", notice_id)


def send_notice_job(notice_id: int) -> str:
    """Job: deliver one notice (see ``deliver``) with the email channel's configured mailer."""
    from app.channels.email.outbound import current_mailer
    from app.extensions import db

    desk_config = current_app.extensions["desk.config"]
    try:
        return deliver(db.session, desk_config, notice_id, mailer=current_mailer(desk_config.email))
    finally:
        db.session.remove()


def requeue_stale(session: Session, now: datetime | None = None) -> int:
    """The sweep: release notices stuck in ``sending`` by a dead worker and re-enqueue pending ones whose
    job was lost (older than a minute and due). Returns how many were enqueued. Commits."""
    now = now or utcnow()
    session.execute(update(ComplaintNotice).where(
        ComplaintNotice.status == "sending", ComplaintNotice.claimed_at < now - STUCK_SENDING)
        .values(status="pending"))
    due = list(session.scalars(select(ComplaintNotice.id).where(
        ComplaintNotice.status == "pending", ComplaintNotice.send_after <= now,
        ComplaintNotice.created_at < now - LOST_JOB_GRACE).order_by(ComplaintNotice.id)))
    session.commit()
    for notice_id in due:
        enqueue_send(notice_id)
    return len(due)


# ----------------------------------------------------------------------------------------- delivery
def deliver(session: Session, desk_config, notice_id: int, *, mailer, now: datetime | None = None) -> str:
    """Deliver one pending notice on its channel. Returns sent, retry, failed, early, waiting (an earlier
    notice to the same customer about the same complaint is still to go) or skipped (not pending: already
    sent, being sent, or failed). Commits its own steps."""
    now = now or utcnow()
    notice = session.get(ComplaintNotice, notice_id)
    if notice is None or notice.status != "pending":
        return "skipped"
    if notice.send_after > now + timedelta(seconds=1):
        enqueue_send(notice.id, notice.send_after - now)
        return "early"
    if notice.recipient_kind == "customer" and _earlier_one_unsent(session, notice):
        enqueue_send(notice.id, IN_ORDER_WAIT)
        return "waiting"
    if notice.channel == "console":
        return _post(session, notice, now, SLA_EVENT, _console_payload(notice))
    if notice.channel == "portal":
        return _post(session, notice, now, PORTAL_EVENT, {"notice_id": notice.id, "complaint_id": notice.complaint_id,
                                                          "customer_id": notice.recipient_id, "kind": notice.kind})
    if notice.channel == "email":
        return _send_email(session, desk_config, notice, mailer, now)
    return _fail(session, notice, f"no transport for channel {notice.channel!r}")


def _console_payload(notice: ComplaintNotice) -> dict:
    """The console event: addressed to the recipient's console (``agent_id``), with the alert's facts."""
    facts = notice.data or {}
    return {"notice_id": notice.id, "complaint_id": notice.complaint_id, "agent_id": notice.recipient_id,
            "reference": facts.get("reference"), "owner_id": facts.get("owner_id"), "level": facts.get("level"),
            "clock": facts.get("clock"), "point": facts.get("point"), "due": facts.get("due"),
            "subject": notice.subject}


def _post(session: Session, notice: ComplaintNotice, now: datetime, event: str, payload: dict) -> str:
    """Mark sent and announce in one transaction; the compare-and-set makes a twin job a no-op."""
    claimed = session.execute(update(ComplaintNotice).where(
        ComplaintNotice.id == notice.id, ComplaintNotice.status == "pending")
        .values(status="sent", sent_at=now, attempts=ComplaintNotice.attempts + 1)).rowcount
    if not claimed:
        session.rollback()
        return "skipped"
    realtime.after_commit(session, event, payload)
    session.commit()
    return "sent"


def recipient_address(session: Session, notice: ComplaintNotice) -> str:
    """The email address of the notice's recipient. Raises NoticeUndeliverable when there is none."""
    if notice.recipient_kind == "staff":
        staff = session.get(StaffUser, notice.recipient_id)
        address = staff.email if staff is not None and staff.active else None
    else:
        address = session.scalar(select(CustomerEmail.email).where(CustomerEmail.customer_id == notice.recipient_id)
                                 .order_by(CustomerEmail.id).limit(1))
    if not address:
        raise NoticeUndeliverable(f"no email address for {notice.recipient_kind} {notice.recipient_id}")
    return address


def _sender(desk_config):
    """The mailbox notices are sent from: ``complaints.notice_mailbox``, else the first one."""
    mailboxes, name = desk_config.email.mailboxes, desk_config.complaints.notice_mailbox
    chosen = next((m for m in mailboxes if m.name == name), None) if name else next(iter(mailboxes), None)
    if chosen is None:
        named = f"{name!r} " if name else ""
        raise NoticeUndeliverable(f"no email mailbox {named}is configured to send from")
    return chosen


def build_mime(notice: ComplaintNotice, *, sender, to: str) -> MimeMessage:
    """The email for a notice. The Message-ID is fixed per notice, so a copy sent twice after a crash
    is recognised as one message; automatic-mail headers stop auto-responders answering it."""
    from app.channels.email.autoreply import OUR_AUTOMATIC_HEADERS

    domain = sender.address.rpartition("@")[2]
    mime = MimeMessage()
    mime["From"] = formataddr((sender.display_name, sender.address)) if sender.display_name else sender.address
    mime["To"] = to
    mime["Reply-To"] = sender.address
    mime["Subject"] = notice.subject
    mime["Message-ID"] = f"<complaint-notice-{notice.id}.{notice.complaint_id}@{domain}>"
    mime["Date"] = format_datetime(utcnow())
    for name, value in OUR_AUTOMATIC_HEADERS.items():
        mime[name] = value
    mime.replace_header("Auto-Submitted", "auto-generated")  # RFC 3834: not a reply to a message
    mime.set_content(notice.body, charset="utf-8")  # (replaces Content-* headers, so those come after)
    mime["Content-Language"] = "zh-CN" if notice.language == "zh" else "en"
    return mime


def _send_email(session: Session, desk_config, notice: ComplaintNotice, mailer, now: datetime) -> str:
    from app.channels.email.mailer import PermanentFailure, TemporaryFailure
    from app.channels.email.outbound import is_undeliverable, mark_undeliverable

    try:
        sender = _sender(desk_config)
        to = recipient_address(session, notice)
        if is_undeliverable(session, to):
            raise NoticeUndeliverable(f"{to} is marked undeliverable after a permanent bounce")
    except NoticeUndeliverable as exc:
        return _fail(session, notice, str(exc))
    claimed = session.execute(update(ComplaintNotice).where(
        ComplaintNotice.id == notice.id, ComplaintNotice.status == "pending")
        .values(status="sending", claimed_at=now, attempts=ComplaintNotice.attempts + 1, address=to)).rowcount
    session.commit()
    if not claimed:
        return "skipped"
    notice = session.get(ComplaintNotice, notice.id, populate_existing=True)
    try:
        mailer.send(build_mime(notice, sender=sender, to=to), sender=sender.address, recipients=[to])
    except TemporaryFailure as exc:
        return _retry_or_fail(session, desk_config, notice, str(exc), now)
    except PermanentFailure as exc:
        if exc.code and 500 <= exc.code < 600:
            mark_undeliverable(session, to, str(exc.code), str(exc), None)
        return _fail(session, notice, str(exc))
    notice.status, notice.sent_at, notice.last_error = "sent", now, None
    _record_sent(session, notice, now)
    session.commit()
    return "sent"


def _earlier_one_unsent(session: Session, notice: ComplaintNotice) -> bool:
    """A complaint's messages reach its customer in the order they were written: jobs run side by side
    (RQ workers, the embedded desk's threads) and a retry can hold one back, and "now being
    investigated" must not arrive after "resolved". An earlier one that failed for good holds nothing."""
    return session.scalar(select(ComplaintNotice.id).where(
        ComplaintNotice.complaint_id == notice.complaint_id, ComplaintNotice.recipient_kind == "customer",
        ComplaintNotice.id < notice.id, ComplaintNotice.status.in_(("pending", "sending"))).limit(1)) is not None


def _record_sent(session: Session, notice: ComplaintNotice, now: datetime) -> None:
    """Customer notices are part of the complaint's record (proof of acknowledgement and final
    response); staff alerts are already in the trail as the alert itself."""
    if notice.recipient_kind != "customer":
        return
    complaint = session.get(Complaint, notice.complaint_id)
    session.add(ComplaintEvent(complaint_id=complaint.id, kind="notice_sent", from_state=complaint.state,
                               to_state=complaint.state, actor="system", note=f"{notice.kind} by {notice.channel}",
                               data={"notice_id": notice.id, "kind": notice.kind, "channel": notice.channel},
                               occurred_at=now))


def _retry_or_fail(session: Session, desk_config, notice: ComplaintNotice, error: str, now: datetime) -> str:
    outbound = desk_config.email.outbound
    if notice.attempts >= outbound.max_attempts:
        return _fail(session, notice, error)
    delay = timedelta(seconds=outbound.backoff_s[min(notice.attempts - 1, len(outbound.backoff_s) - 1)])
    notice.status, notice.last_error, notice.send_after = "pending", error[:2000], now + delay
    session.commit()
    log.warning("complaint notice %s: attempt %s failed (%s); retrying in %s", notice.id, notice.attempts, error,
                delay)
    enqueue_send(notice.id, delay)
    return "retry"


def _fail(session: Session, notice: ComplaintNotice, error: str) -> str:
    notice.status, notice.last_error = "failed", error[:2000]
    session.commit()
    log.error("complaint notice %s (%s to %s %s) failed for good: %s", notice.id, notice.kind,
              notice.recipient_kind, notice.recipient_id, error)
    return "failed"


# ------------------------------------------------------------------------------------------ reading
def customer_notices(session: Session, customer_id: int, complaint_id: int | None = None) -> list[ComplaintNotice]:
    """What the customer has been told about their complaints (for the portal), oldest first."""
    query = select(ComplaintNotice).where(ComplaintNotice.recipient_kind == "customer",
                                          ComplaintNotice.recipient_id == customer_id,
                                          ComplaintNotice.status == "sent")
    if complaint_id is not None:
        query = query.where(ComplaintNotice.complaint_id == complaint_id)
    return list(session.scalars(query.order_by(ComplaintNotice.id)))


def notices_of(session: Session, complaint_id: int) -> list[ComplaintNotice]:
    """Every notice of one complaint (the staff detail page), oldest first."""
    return list(session.scalars(select(ComplaintNotice).where(ComplaintNotice.complaint_id == complaint_id)
                                .order_by(ComplaintNotice.id)))
