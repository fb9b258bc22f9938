"""Outbound mail: acknowledgements and agent replies, composed here and sent by an RQ job.

An agent's reply waits ``undo_window_s`` (status ``scheduled``) so the agent can cancel it; then the
job claims it (``scheduled -> sending``, a compare-and-set so two workers never both send), hands it
to the mailer, and records ``sent``, or retries with backoff on a temporary failure, or records
``failed`` on a permanent one (a 5xx recipient refusal also marks the address undeliverable).
Jobs are enqueued only after the transaction that created the message commits.
"""
from __future__ import annotations

import logging
import secrets
from collections.abc import Callable
from datetime import datetime, timedelta
from email.message import EmailMessage as MimeMessage
from email.utils import format_datetime, formataddr
from typing import Any
from zoneinfo import ZoneInfo

from flask import current_app
from sqlalchemy import event, select, update
from sqlalchemy.orm import Session

from app.calendars import add_business_time
from app.channels.email import threads
from app.channels.email.autoreply import OUR_AUTOMATIC_HEADERS
from app.channels.email.config import EmailConfig, Mailbox
from app.channels.email.mailer import (
    Mailer,
    PermanentFailure,
    RecordingMailer,
    TemporaryFailure,
    mailer_for,
)
from app.channels.email.models import EmailMessage, EmailThread, UndeliverableAddress
from app.channels.email.routing import CustomerInfo, customer_info
from app.channels.email.templates import render
from app.db import utcnow
from app.interactions.models import Interaction
from app.interactions.service import record_fact

log = logging.getLogger(__name__)
_JOBS_KEY = "email_jobs_after_commit"
MAX_REFERENCES = 20


class OutboundError(Exception):
    """Base for refusals to send."""


class AddressUndeliverable(OutboundError):
    def __init__(self, address: str):
        self.address = address
        super().__init__(f"{address} is marked undeliverable after a permanent bounce")


class TooLateToCancel(OutboundError):
    """The undo window has passed (or the message was already sent or cancelled)."""


class NoRecipient(OutboundError):
    """The case has no address to reply to."""


# --- commit, then enqueue ------------------------------------------------------------------------

def enqueue_after_commit(session: Session, message_id: int, delay_s: float = 0) -> None:
    """Queue the send job for ``message_id`` once ``session`` commits (dropped on rollback)."""
    enqueue_job_after_commit(session, send_outbound_job, message_id, delay_s=delay_s)


def enqueue_job_after_commit(session: Session, func, *args: Any, delay_s: float = 0) -> None:
    """Queue ``func(*args)`` on the email queue once ``session`` commits (dropped on rollback)."""
    session.info.setdefault(_JOBS_KEY, []).append((func, args, max(0.0, delay_s)))


@event.listens_for(Session, "after_commit")
def _enqueue_pending(session: Session) -> None:
    pending = session.info.pop(_JOBS_KEY, None)
    for func, args, delay_s in pending or ():
        _enqueue(func, args, delay_s)


@event.listens_for(Session, "after_rollback")
def _drop_pending(session: Session) -> None:
    session.info.pop(_JOBS_KEY, None)


def _enqueue(func, args: tuple, delay_s: float) -> None:
    from app.jobs import enqueue

    try:
        enqueue(func, *args, queue="email", delay=timedelta(seconds=delay_s) if delay_s > 0 else None)
    except Exception:  # Redis down: the row stays scheduled and the sweeper re-enqueues it
        log.exception("could not enqueue %s%r; the sweeper will retry", getattr(func, "__name__", func), args)


def _enqueue_send(message_id: int, delay_s: float) -> None:
    _enqueue(send_outbound_job, (message_id,), delay_s)


# --- composing -----------------------------------------------------------------------------------

def domain_of(address: str) -> str:
    return address.rpartition("@")[2]


def _message_id_domain(config: EmailConfig, mailbox: Mailbox) -> str:
    return config.outbound.message_id_domain or domain_of(mailbox.address)


def reply_domain(config: EmailConfig, mailbox: Mailbox) -> str:
    return config.outbound.reply_domain or domain_of(mailbox.address)


def is_undeliverable(session: Session, address: str) -> bool:
    return session.scalar(select(UndeliverableAddress.id).where(UndeliverableAddress.address == address.lower())) \
        is not None


def expected_reply_at(desk_config, queue_name: str, now: datetime) -> datetime:
    """When the queue's email SLA promises a reply: business hours on the queue's calendar."""
    hours = desk_config.email.autoreply.reply_within_h.get(queue_name,
                                                           desk_config.email.autoreply.default_reply_within_h)
    try:
        calendar_name = desk_config.routing.queue(queue_name).calendar
    except KeyError:
        calendar_name = "default"
    calendar = desk_config.calendars.get(calendar_name)
    if calendar is None:
        return now + timedelta(hours=hours)
    try:
        return add_business_time(calendar, now, timedelta(hours=hours))
    except ValueError:  # a calendar that never opens: promise wall-clock time rather than nothing
        return now + timedelta(hours=hours)


def _format_local(at: datetime, desk_config, queue_name: str) -> str:
    try:
        zone = desk_config.calendars[desk_config.routing.queue(queue_name).calendar].timezone
    except KeyError:
        zone = desk_config.desk.timezone
    local = at.astimezone(ZoneInfo(zone))
    return f"{local:%Y-%m-%d %H:%M} ({zone})"


def template_context(session: Session, desk_config, interaction: Interaction, thread: EmailThread, *,
                     agent_name: str = "", body: str = "", now: datetime | None = None,
                     customer: CustomerInfo | None = None) -> dict[str, Any]:
    """The plain values templates may use."""
    customer = customer or customer_info(session, interaction.customer_id)
    queue = interaction.queue or desk_config.email.mailbox(thread.mailbox).queue
    expected = expected_reply_at(desk_config, queue, now or utcnow())
    return {
        "customer": {"name": customer.name if customer and not customer.is_prospect else "",
                     "language": interaction.language, "tier": customer.tier if customer else ""},
        "case": {"reference": threads.case_reference(interaction.id), "tag": threads.case_tag(interaction.id),
                 "subject": thread.subject or "", "queue": queue,
                 "expected_reply": _format_local(expected, desk_config, queue)},
        "desk": {"name": desk_config.desk.name},
        "agent": {"name": agent_name},
        "body": body,
    }


def _outbound_values(config: EmailConfig, thread: EmailThread, interaction: Interaction, *, kind: str,
                     to: str, subject: str, body: str, secret: str, parent: EmailMessage | None,
                     send_after: datetime, sent_by: int | None, cc: list[str] | None = None) -> dict[str, Any]:
    """The columns of a new outbound message (its thread apart)."""
    mailbox = config.mailbox(thread.mailbox)
    nonce = secrets.token_hex(8)
    references = (list(parent.references) + [parent.message_id]) if parent and parent.message_id else []
    return {
        "interaction_id": interaction.id, "direction": "out", "kind": kind, "mailbox": mailbox.name,
        "message_id": threads.mint_message_id(secret, interaction.id, _message_id_domain(config, mailbox), nonce),
        "in_reply_to": parent.message_id if parent else None, "references": references[-MAX_REFERENCES:],
        "from_address": mailbox.address, "from_name": mailbox.display_name, "to": [to], "cc": list(cc or []),
        "recipient": to, "subject": threads.with_tag(subject, interaction.id), "text_body": body,
        "language": interaction.language, "status": "scheduled", "send_after": send_after, "sent_by": sent_by,
        "details": {},
        "is_automatic": False}  # set like an inbound message's, so both go in one INSERT when flushed together


def _last_inbound(session: Session, thread_id: int) -> EmailMessage | None:
    return session.scalar(select(EmailMessage).where(
        EmailMessage.thread_id == thread_id, EmailMessage.direction == "in", EmailMessage.kind == "customer")
        .order_by(EmailMessage.id.desc()).limit(1))


def schedule_acknowledgement(session: Session, desk_config, interaction: Interaction, thread: EmailThread,
                             parent: EmailMessage, to: str, *, secret: str, now: datetime,
                             customer: CustomerInfo | None = None,
                             content: tuple[str, str] | None = None,
                             reserved_id: int | None = None,
                             hold: Callable[[type, dict[str, Any]], Any] | None = None) -> EmailMessage:
    """Compose the automatic acknowledgement and queue it to go at once (after commit). ``content``
    (subject, body) replaces the "acknowledgement" template, e.g. a complaint's acknowledgement.
    ``reserved_id``: an id drawn from the table's sequence, so the message is written with the
    caller's next flush instead of one here. ``hold`` (with ``reserved_id``): takes the message's
    model and column values and returns what stands for the row until the caller writes it (an
    email batch's ``insert``), instead of an object added to the session. Does not commit."""
    if content is None:
        rendered = render(session, "acknowledgement", interaction.language,
                          template_context(session, desk_config, interaction, thread, now=now, customer=customer))
        content = (rendered.subject, rendered.body)
    subject, body = content
    values = _outbound_values(desk_config.email, thread, interaction, kind="ack", to=to, subject=subject,
                              body=body, secret=secret, parent=parent, send_after=now, sent_by=None)
    if hold is not None and reserved_id is not None:
        message = hold(EmailMessage, dict(values, id=reserved_id, thread_id=thread.id))
    else:
        message = EmailMessage(thread=thread, **values)
        session.add(message)
        if reserved_id is None:
            session.flush()
        else:
            message.id = reserved_id
    enqueue_after_commit(session, message.id)
    return message


def schedule_reply(session: Session, desk_config, interaction_id: int, *, body: str, staff_id: int,
                   agent_name: str, secret: str, cc: list[str] | None = None,
                   now: datetime | None = None) -> EmailMessage:
    """Queue an agent's reply to leave after the undo window. Raises NoRecipient, AddressUndeliverable,
    LookupError (no email thread for this interaction). Does not commit."""
    now = now or utcnow()
    thread = session.scalar(select(EmailThread).where(EmailThread.interaction_id == interaction_id))
    if thread is None:
        raise LookupError(f"interaction {interaction_id} has no email thread")
    interaction = session.get(Interaction, interaction_id)
    parent = _last_inbound(session, thread.id)
    to = (parent.details.get("reply_to") if parent else None) or (parent.from_address if parent else "") \
        or thread.customer_address
    if not to:
        raise NoRecipient(f"case {interaction_id} has no address to reply to")
    for address in [to, *(cc or [])]:
        if is_undeliverable(session, address):
            raise AddressUndeliverable(address)
    rendered = render(session, "reply", interaction.language, template_context(
        session, desk_config, interaction, thread, agent_name=agent_name, body=body, now=now))
    window = desk_config.email.outbound.undo_window_s
    message = EmailMessage(thread=thread, **_outbound_values(
        desk_config.email, thread, interaction, kind="reply", to=to, subject=rendered.subject, body=rendered.body,
        secret=secret, parent=parent, cc=[c.lower() for c in cc or []], send_after=now + timedelta(seconds=window),
        sent_by=staff_id))
    session.add(message)
    session.flush()
    thread.cc = sorted(set(thread.cc) | set(message.cc))
    record_fact(session, interaction, "email_reply_scheduled", actor=f"staff:{staff_id}",
                data={"email_message_id": message.id, "undo_window_s": window})
    enqueue_after_commit(session, message.id, window)
    return message


def cancel_outbound(session: Session, message_id: int, *, staff_id: int, now: datetime | None = None) -> EmailMessage:
    """Cancel a scheduled reply inside its undo window. Raises TooLateToCancel. Does not commit."""
    now = now or utcnow()
    claimed = session.execute(update(EmailMessage).where(
        EmailMessage.id == message_id, EmailMessage.status == "scheduled", EmailMessage.kind == "reply",
        EmailMessage.send_after > now).values(status="cancelled")).rowcount
    message = session.get(EmailMessage, message_id, populate_existing=True)
    if not claimed or message is None:
        raise TooLateToCancel(f"email message {message_id} can no longer be cancelled")
    record_fact(session, session.get(Interaction, message.interaction_id), "email_reply_cancelled",
                actor=f"staff:{staff_id}", data={"email_message_id": message_id})
    return message


def build_mime(message: EmailMessage, config: EmailConfig, secret: str) -> MimeMessage:
    """The MIME message for an outbound row: threading headers, the case's reply address, and for
    automatic mail the headers that stop other systems answering it."""
    mailbox = config.mailbox(message.mailbox)
    mime = MimeMessage()
    mime["From"] = formataddr((mailbox.display_name, mailbox.address)) if mailbox.display_name else mailbox.address
    mime["To"] = ", ".join(message.to)
    if message.cc:
        mime["Cc"] = ", ".join(message.cc)
    mime["Reply-To"] = threads.reply_address(secret, message.interaction_id, reply_domain(config, mailbox))
    mime["Subject"] = message.subject
    mime["Message-ID"] = f"<{message.message_id}>"
    mime["Date"] = format_datetime(utcnow())
    if message.in_reply_to:
        mime["In-Reply-To"] = f"<{message.in_reply_to}>"
    if message.references:
        mime["References"] = " ".join(f"<{ref}>" for ref in message.references)
    if message.kind in ("ack", "alert"):
        for name, value in OUR_AUTOMATIC_HEADERS.items():
            mime[name] = value
    mime["Content-Language"] = "zh-CN" if message.language == "zh" else "en"
    mime.set_content(message.text_body, charset="utf-8")
    return mime


# --- sending -------------------------------------------------------------------------------------

def recording_outbox() -> RecordingMailer:
    """Where the recording transport keeps what the desk sends (the demo's mail simulator reads it)."""
    return current_app.extensions.setdefault("desk.email.outbox", RecordingMailer())


def current_mailer(config: EmailConfig) -> Mailer:
    return mailer_for(config.smtp, recording_outbox())


def send_outbound_job(message_id: int) -> None:
    """RQ job: deliver one outbound message (see ``deliver``)."""
    from app.extensions import db

    desk_config = current_app.extensions["desk.config"]
    try:
        deliver(db.session, desk_config.email, message_id, current_mailer(desk_config.email),
                secret=current_app.config["SECRET_KEY"])
    finally:
        db.session.remove()


def deliver(session: Session, config: EmailConfig, message_id: int, mailer: Mailer, *, secret: str,
            now: datetime | None = None) -> str:
    """Send one scheduled message if it is due. Returns what happened: sent, retry, failed, early,
    skipped. Commits its own steps (claim, outcome) because the send in between cannot be undone."""
    now = now or utcnow()
    message = session.get(EmailMessage, message_id)
    if message is None or message.status != "scheduled":
        return "skipped"
    if message.send_after and message.send_after > now + timedelta(milliseconds=500):
        _enqueue_send(message_id, (message.send_after - now).total_seconds())
        return "early"
    claimed = session.execute(update(EmailMessage).where(
        EmailMessage.id == message_id, EmailMessage.status == "scheduled").values(
        status="sending", attempts=EmailMessage.attempts + 1)).rowcount
    session.commit()
    if not claimed:
        return "skipped"
    message = session.get(EmailMessage, message_id, populate_existing=True)
    blocked = [a for a in [*message.to, *message.cc] if is_undeliverable(session, a)]
    if blocked:
        return _fail(session, message, f"undeliverable: {', '.join(blocked)}")
    try:
        mailer.send(build_mime(message, config, secret), sender=message.from_address,
                    recipients=[*message.to, *message.cc])
    except TemporaryFailure as exc:
        return _retry_or_fail(session, config, message, str(exc), now)
    except PermanentFailure as exc:
        if exc.code and 500 <= exc.code < 600:
            for address in message.to:
                mark_undeliverable(session, address, f"{exc.code}", str(exc), None)
        return _fail(session, message, str(exc))
    message.status, message.sent_at, message.last_error = "sent", now, None
    record_fact(session, session.get(Interaction, message.interaction_id), "email_sent", actor="email",
                data={"email_message_id": message.id, "kind": message.kind, "to": message.to})
    session.commit()
    return "sent"


def _retry_or_fail(session: Session, config: EmailConfig, message: EmailMessage, error: str, now: datetime) -> str:
    if message.attempts >= config.outbound.max_attempts:
        return _fail(session, message, error)
    backoff = config.outbound.backoff_s
    delay = backoff[min(message.attempts - 1, len(backoff) - 1)]
    message.status, message.last_error = "scheduled", error
    message.send_after = now + timedelta(seconds=delay)
    session.commit()
    log.warning("email message %s: attempt %s failed (%s); retrying in %ss", message.id, message.attempts, error, delay)
    _enqueue_send(message.id, delay)
    return "retry"


def _fail(session: Session, message: EmailMessage, error: str) -> str:
    message.status, message.last_error = "failed", error
    record_fact(session, session.get(Interaction, message.interaction_id), "email_send_failed", actor="email",
                reason=error[:255], data={"email_message_id": message.id})
    session.commit()
    log.error("email message %s failed for good: %s", message.id, error)
    return "failed"


def mark_undeliverable(session: Session, address: str, status_code: str, diagnostic: str,
                       bounce_message_id: int | None) -> UndeliverableAddress:
    """Record a permanent failure for ``address`` (idempotent: the latest evidence wins). Does not commit."""
    address = address.lower()
    row = session.scalar(select(UndeliverableAddress).where(UndeliverableAddress.address == address))
    if row is None:
        row = UndeliverableAddress(address=address, status_code=status_code)
        session.add(row)
    row.status_code, row.diagnostic, row.bounce_message_id = status_code, diagnostic[:2000], bounce_message_id
    row.marked_at = utcnow()
    session.flush()
    return row


def clear_undeliverable(session: Session, address: str) -> bool:
    """Allow mail to ``address`` again (an admin cleared it, or it was changed). Does not commit."""
    row = session.scalar(select(UndeliverableAddress).where(UndeliverableAddress.address == address.lower()))
    if row is None:
        return False
    session.delete(row)
    session.flush()
    return True


def requeue_stale_outbound(session: Session, *, now: datetime | None = None, grace_s: int = 60,
                           stuck_sending_s: int = 600) -> int:
    """The sweeper: re-enqueue scheduled messages whose job was lost (Redis restarted) and release
    messages stuck in ``sending`` by a crashed worker. Returns how many were re-enqueued. Commits."""
    now = now or utcnow()
    session.execute(update(EmailMessage).where(
        EmailMessage.status == "sending", EmailMessage.send_after < now - timedelta(seconds=stuck_sending_s))
        .values(status="scheduled"))
    due = list(session.scalars(select(EmailMessage.id).where(
        EmailMessage.status == "scheduled", EmailMessage.send_after < now - timedelta(seconds=grace_s))))
    session.commit()
    for message_id in due:
        _enqueue_send(message_id, 0)
    return len(due)
