"""Written cases from the portal, and what a customer may see of their own contacts.

A portal case is an email-channel Interaction (``attributes.source == "portal"``) with a thread of
``CaseMessage`` rows, routed to the queue of its category like any contact. Every read takes the
customer id and refuses (as "not found") anything that belongs to someone else.
"""
from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from flask_babel import force_locale, gettext as _
from sqlalchemy import select
from sqlalchemy.orm import Session

from app.calendars import add_business_time
from app.crm.models import Customer, Order
from app.db import utcnow
from app.interactions.models import Interaction
from app.interactions.service import create_interaction, record_fact
from app.interactions.states import State, check_transition
from app.portal import routing
from app.portal.attachments import check_count, store_attachment
from app.portal.mail import record_email
from app.portal.models import Attachment, CaseMessage

CASE_SOURCE = "portal"
OPEN_STATES = {State.NEW, State.IVR, State.QUEUED, State.OFFERED, State.CALLBACK_PENDING, State.VOICEMAIL}
IN_PROGRESS_STATES = {State.CONNECTED, State.WRAP_UP}


class CaseNotFound(LookupError):
    """No such case for this customer (also what another customer's case looks like)."""


class CaseInvalid(ValueError):
    """The form is wrong; ``field`` names the input."""

    def __init__(self, field: str, message: str):
        self.field = field
        super().__init__(f"{field}: {message}")


@dataclass(frozen=True)
class Upload:
    filename: str
    data: bytes


def customer_status(state: str) -> str:
    """The state a customer is shown: open (waiting for us), in_progress, or closed."""
    if state in OPEN_STATES:
        return "open"
    if state in IN_PROGRESS_STATES:
        return "in_progress"
    return "closed"


def reply_due(desk_config, queue: str | None, since: datetime) -> datetime:
    """When we promise a reply: the queue's calendar, ``portal.case_reply_business_hours`` later."""
    queue_cfg = next((q for q in desk_config.routing.queues if q.name == queue), None)
    calendar = desk_config.calendars.get(queue_cfg.calendar if queue_cfg else "default") \
        or next(iter(desk_config.calendars.values()))
    return add_business_time(calendar, since, timedelta(hours=desk_config.portal.case_reply_business_hours))


def _order_for(session: Session, customer_id: int, number: str | None) -> Order | None:
    if not number or not number.strip():
        return None
    order = session.scalar(select(Order).where(Order.number == number.strip()))
    if order is None or order.customer_id != customer_id:
        raise CaseInvalid("order_number", "not one of your orders")
    return order


def _store_uploads(session: Session, uploads: list[Upload], limits, customer_id: int,
                   interaction_id: int | None, message: CaseMessage | None) -> list[Attachment]:
    check_count(len(uploads), limits)
    stored = []
    for upload in uploads:
        row = store_attachment(session, data=upload.data, filename=upload.filename, limits=limits,
                               uploaded_by=f"customer:{customer_id}", customer_id=customer_id,
                               interaction_id=interaction_id)
        row.case_message = message
        stored.append(row)
    return stored


def open_case(session: Session, desk_config, *, customer_id: int, category: str, subject: str, description: str,
              order_number: str | None = None, uploads: list[Upload] | None = None, base_url: str) -> Interaction:
    """Open a written case, store its first message and attachments, acknowledge it by email and route it.
    Raises CaseInvalid, AttachmentRejected. May commit (routing commits its own work)."""
    config = desk_config.portal
    cat = next((c for c in config.case_categories if c.code == category), None)
    if cat is None:
        raise CaseInvalid("category", "unknown category")
    subject, description = subject.strip(), description.strip()
    if not subject or len(subject) > 200:
        raise CaseInvalid("subject", "between 1 and 200 characters")
    if not description or len(description) > config.max_text_chars:
        raise CaseInvalid("description", f"between 1 and {config.max_text_chars} characters")
    order = _order_for(session, customer_id, order_number)
    customer = session.get(Customer, customer_id)
    case = create_interaction(session, channel="email", actor=f"customer:{customer_id}",
                              external_ref=f"portal-case:{secrets.token_hex(12)}", customer_id=customer_id,
                              language=customer.language, subject=subject,
                              attributes={"source": CASE_SOURCE, "category": category,
                                          "order_number": order.number if order else None})
    message = CaseMessage(interaction_id=case.id, author="customer", body=description)
    session.add(message)
    session.flush()
    _store_uploads(session, uploads or [], config.attachments, customer_id, case.id, message)
    case.attributes = {**case.attributes, "reference": case_reference(case)}
    _acknowledge(session, case, customer, base_url)
    routing.enqueue(session, case, cat.queue, actor=f"customer:{customer_id}")
    return case


def case_reference(case: Interaction) -> str:
    return f"C-{case.id}"


def _acknowledge(session: Session, case: Interaction, customer: Customer, base_url: str) -> None:
    to = next((e.email for e in customer.emails), None)
    if to is None:
        return
    with force_locale(customer.language):
        record_email(session, to=to, kind="case_ack", customer_id=customer.id,
                     subject=_("We have your request %(reference)s", reference=case_reference(case)),
                     body=_("Thank you. Your request %(reference)s (%(subject)s) is with our team. Follow it "
                            "and reply at %(url)s", reference=case_reference(case), subject=case.subject,
                            url=f"{base_url.rstrip('/')}/portal/cases/{case.id}"))


def get_case(session: Session, customer_id: int, case_id: int) -> Interaction:
    """The customer's own written case (portal case or email/chat case). Raises CaseNotFound."""
    case = session.get(Interaction, case_id)
    if case is None or case.customer_id != customer_id or case.channel != "email":
        raise CaseNotFound(case_id)
    return case


def list_cases(session: Session, customer_id: int) -> list[Interaction]:
    """The customer's written cases, newest first."""
    return list(session.scalars(select(Interaction).where(
        Interaction.customer_id == customer_id, Interaction.channel == "email").order_by(Interaction.id.desc())))


def thread(session: Session, customer_id: int, case_id: int) -> list[CaseMessage]:
    get_case(session, customer_id, case_id)
    return list(session.scalars(select(CaseMessage).where(CaseMessage.interaction_id == case_id)
                                .order_by(CaseMessage.id)))


def customer_reply(session: Session, desk_config, *, customer_id: int, case_id: int, body: str,
                   uploads: list[Upload] | None = None) -> CaseMessage:
    """Add the customer's reply; a closed case is re-opened (queued again, keeping its place).
    Raises CaseNotFound, CaseInvalid, AttachmentRejected. May commit when the case is re-queued."""
    case = get_case(session, customer_id, case_id)
    body = body.strip()
    if not body or len(body) > desk_config.portal.max_text_chars:
        raise CaseInvalid("body", f"between 1 and {desk_config.portal.max_text_chars} characters")
    message = CaseMessage(interaction_id=case.id, author="customer", body=body)
    session.add(message)
    session.flush()
    _store_uploads(session, uploads or [], desk_config.portal.attachments, customer_id, case.id, message)
    record_fact(session, case, "customer_reply", actor=f"customer:{customer_id}", data={"message_id": message.id})
    if case.state == State.CLOSED:
        check_transition(case.state, State.QUEUED)
        routing.enqueue(session, case, case.queue or "general", actor=f"customer:{customer_id}")
    return message


def post_agent_reply(session: Session, *, case_id: int, agent_id: int, body: str, base_url: str) -> CaseMessage:
    """An agent's answer on a portal case: added to the thread the customer sees and announced by email.
    Raises CaseNotFound, CaseInvalid. Does not commit."""
    case = session.get(Interaction, case_id)
    if case is None or case.channel != "email":
        raise CaseNotFound(case_id)
    if not body.strip():
        raise CaseInvalid("body", "empty reply")
    message = CaseMessage(interaction_id=case.id, author="agent", agent_id=agent_id, body=body.strip())
    session.add(message)
    session.flush()
    customer = session.get(Customer, case.customer_id) if case.customer_id else None
    to = next((e.email for e in customer.emails), None) if customer else None
    if to:
        with force_locale(customer.language):
            record_email(session, to=to, kind="case_reply", customer_id=customer.id,
                         subject=_("New reply on %(reference)s", reference=case_reference(case)),
                         body=f"{body.strip()}\n\n" + _("Reply at %(url)s",
                                                        url=f"{base_url.rstrip('/')}/portal/cases/{case.id}"))
    return message


def customer_history(session: Session, customer_id: int, limit: int = 100) -> list[dict]:
    """Every contact of this customer across channels, with only what a customer may see: channel,
    direction, when, subject (written channels only), status. Never notes, priority, agent or recordings."""
    rows = session.scalars(select(Interaction).where(Interaction.customer_id == customer_id)
                           .order_by(Interaction.created_at.desc(), Interaction.id.desc()).limit(limit))
    history = []
    for row in rows:
        history.append({"id": row.id, "channel": row.channel, "direction": row.direction,
                        "created_at": row.created_at, "status": customer_status(row.state),
                        "subject": row.subject if row.channel in ("email", "chat") else None,
                        "reference": case_reference(row) if row.channel == "email" else None})
    return history


def complaints_of(session: Session, customer_id: int) -> list:
    """The customer's complaints, newest first (reference, status and deadlines come from the complaint)."""
    from app.complaints.models import Complaint

    return list(session.scalars(select(Complaint).where(Complaint.customer_id == customer_id)
                                .order_by(Complaint.id.desc())))


def raise_portal_complaint(session: Session, desk_config, *, customer_id: int, category: str, description: str,
                           order_number: str | None, remedy_sought: str, uploads: list[Upload]):
    """File a complaint through the complaints service (graded, deadlines set, acknowledged), with the
    attachments as its evidence. Raises CaseInvalid, AttachmentRejected, complaints' IntakeInvalid.
    Commits (the complaints flow owns its transaction)."""
    from app.complaints import flows

    order = _order_for(session, customer_id, order_number)
    if len(description.strip()) > desk_config.portal.max_text_chars:
        raise CaseInvalid("description", f"at most {desk_config.portal.max_text_chars} characters")
    stored = _store_uploads(session, uploads, desk_config.portal.attachments, customer_id, None, None)
    evidence = [{"name": a.filename, "content_type": a.content_type, "size": a.size_bytes,
                 "url": f"/portal/attachments/{a.id}"} for a in stored]
    customer = session.get(Customer, customer_id)
    return flows.raise_complaint(session, desk_config, channel="portal", customer_id=customer_id,
                                 category=category, description=description, order_id=order.id if order else None,
                                 remedy_sought=remedy_sought, evidence=evidence, language=customer.language,
                                 actor=f"customer:{customer_id}", at=utcnow())


def chat_transcript(session: Session, customer_id: int, interaction_id: int) -> tuple[Interaction, list[dict]]:
    """A past chat of this customer and its messages. Raises CaseNotFound for anyone else's."""
    from app.channels.chat import ChatNotFound, chat_of_interaction, history

    interaction = session.get(Interaction, interaction_id)
    if interaction is None or interaction.customer_id != customer_id or interaction.channel != "chat":
        raise CaseNotFound(interaction_id)
    try:
        return interaction, history(session, chat_of_interaction(session, interaction_id))
    except ChatNotFound:
        return interaction, []


def complaint_message(session: Session, *, customer_id: int, complaint_id: int, body: str, max_chars: int):
    """The customer adds information to their complaint; it goes on the complaint's audit trail for the
    owner to read. Raises CaseNotFound (not theirs), CaseInvalid. Does not commit."""
    from app.complaints.service import record_event

    complaint = next((c for c in complaints_of(session, customer_id) if c.id == complaint_id), None)
    if complaint is None:
        raise CaseNotFound(complaint_id)
    body = body.strip()
    if not body or len(body) > max_chars:
        raise CaseInvalid("body", f"between 1 and {max_chars} characters")
    return record_event(session, complaint, "customer_message", actor=f"customer:{customer_id}", note=body)


def complaint_messages(session: Session, complaint) -> list:
    """The customer's own follow-up messages on a complaint (never the staff's internal trail)."""
    from app.complaints.models import ComplaintEvent

    return list(session.scalars(select(ComplaintEvent).where(ComplaintEvent.complaint_id == complaint.id,
                                                             ComplaintEvent.kind == "customer_message")
                                .order_by(ComplaintEvent.id)))
