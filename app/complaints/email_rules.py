"""Complaints from email: a new inbound message that matches a ``complaints.email_intake`` rule becomes a
complaint on its email case.

The email channel's one ingest path calls ``raise_from_new_email`` for each message that opens a new
case (never for a reply threaded onto a case, so a thread gives one complaint). The rule that matched,
and why, is written on the complaint's audit trail. The customer gets one answer to their message: the
case's acknowledgement email, threaded as a reply, carries the complaint's acknowledgement (reference
and final-response date, in their language) instead of the generic one, and the complaint's own
acknowledgement notice is recorded as delivered by that email (``EmailComplaint.settle``). When no
acknowledgement email goes out (loop protection, a P1 waiting for its phone call) the notice takes its
usual way.

Matching (``match_rule``) is pure; the rest adds to the caller's session and never commits.
"""
from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.complaints import service
from app.complaints.config import EmailIntakeConfig, EmailIntakeRule
from app.complaints.grading import matched_keywords
from app.complaints.models import Complaint, ComplaintNotice
from app.complaints.states import ComplaintState
from app.crm.models import Order
from app.interactions.models import Interaction
from app.interactions.service import record_fact

ACTOR = "email"
_SETTLED = (ComplaintState.CLOSED, ComplaintState.RESOLVED, ComplaintState.REJECTED)  # as service.open_complaint_level
_ORDER_TOKEN = re.compile(r"[A-Za-z0-9][A-Za-z0-9-]{2,39}")
MAX_ORDER_TOKENS = 200


# ------------------------------------------------------------------------------------------ matching
@dataclass(frozen=True)
class RuleMatch:
    """The rule that matched and each condition's evidence, e.g. ('keywords', 'refund')."""

    rule: EmailIntakeRule
    evidence: tuple[tuple[str, str], ...]

    def explain(self) -> str:
        """'email rule 'refunds' matched: mailbox billing; keyword "refund"' -- for the audit note."""
        parts = [f"{kind} {value!r}" if kind != "mailbox" else f"mailbox {value}" for kind, value in self.evidence]
        return f"email rule {self.rule.name!r} matched: " + "; ".join(parts)


def match_rule(config: EmailIntakeConfig, *, mailbox: str, recipients: list[str], subject: str,
               body: str) -> RuleMatch | None:
    """The first enabled rule whose every condition holds for the message, or None (pure)."""
    if not config.enabled:
        return None
    addressed = {address.lower() for address in recipients}
    for rule in config.rules:
        evidence = _conditions(rule, mailbox, addressed, subject or "", body or "")
        if evidence is not None:
            return RuleMatch(rule, tuple(evidence))
    return None


def _conditions(rule: EmailIntakeRule, mailbox: str, addressed: set[str], subject: str,
                body: str) -> list[tuple[str, str]] | None:
    evidence: list[tuple[str, str]] = []
    if rule.mailboxes:
        if mailbox not in rule.mailboxes:
            return None
        evidence.append(("mailbox", mailbox))
    if rule.addresses:
        hit = next((address for address in rule.addresses if address in addressed), None)
        if hit is None:
            return None
        evidence.append(("address", hit))
    if rule.subject_keywords:
        found = matched_keywords(subject, rule.subject_keywords)
        if not found:
            return None
        evidence.extend(("subject keyword", word) for word in found)
    if rule.keywords:
        found = matched_keywords(f"{subject}\n{body}", rule.keywords)
        if not found:
            return None
        evidence.extend(("keyword", word) for word in found)
    return evidence


# ------------------------------------------------------------------------------------------- intake
@dataclass
class EmailComplaint:
    """A complaint raised from a new email, and what its acknowledgement email should say."""

    complaint: Complaint
    match: RuleMatch
    notice: ComplaintNotice | None  # the acknowledgement notice (None: not acknowledged yet, e.g. P1)
    at: datetime
    settled: bool = field(default=False)

    @property
    def acknowledgement(self) -> tuple[str, str] | None:
        """(subject, body) for the case's acknowledgement email, or None to send the generic one."""
        return (self.notice.subject, self.notice.body) if self.notice is not None else None

    def settle(self, session: Session, email_message) -> None:
        """The case's acknowledgement email (``email_message``, queued in this transaction) carries the
        complaint's acknowledgement: record the notice as delivered by it, so the customer gets one
        reply to their message. Its sending, retries and bounces are the email channel's."""
        if self.notice is None or self.settled:
            return
        self.notice.status, self.notice.sent_at, self.notice.address = "sent", self.at, email_message.recipient
        self.notice.data = {**(self.notice.data or {}), "email_message_id": email_message.id,
                            "delivered_with": "email case acknowledgement"}
        service.record_event(session, self.complaint, "notice_sent", actor="system", at=self.at,
                             note=f"{self.notice.kind} by email, as the reply to the customer's message",
                             data={"notice_id": self.notice.id, "kind": self.notice.kind, "channel": "email",
                                   "email_message_id": email_message.id})
        self.settled = True


def raise_from_new_email(session: Session, desk_config, *, mailbox: str, parsed, interaction: Interaction,
                         automatic: bool, now: datetime,
                         write_case: Callable[[], None] | None = None) -> EmailComplaint | None:
    """Raise a complaint from a message that opened a new email case, when a rule matches it.

    None -- and the email is handled as any other -- when no rule matches, the message is automatic
    (auto-replies and bounces never become complaints), the sender is not identified, the message
    names an existing complaint of theirs (recorded on that complaint instead), or the same message
    already raised one through another mailbox. The reasons are recorded on the email case.
    ``write_case``: writes what the caller added unwritten (an email batch's rows) before the lookups;
    by default the session's flush."""
    config = desk_config.complaints.email_intake
    if automatic or not config.rules:
        return None
    match = match_rule(config, mailbox=mailbox, recipients=parsed.recipients, subject=parsed.subject,
                       body=parsed.text)
    if match is None:
        return None
    (write_case or session.flush)()  # the case's rows first: a caller may hold them unwritten (an email batch)
    skipped = _reason_to_skip(session, desk_config, parsed, interaction, match, now)
    if skipped:
        record_fact(session, interaction, "complaint_rule_skipped", actor=ACTOR, reason=skipped,
                    data={"rule": match.rule.name}, at=now)
        return None
    return _raise(session, desk_config, parsed, interaction, match, now)


def _reason_to_skip(session: Session, desk_config, parsed, interaction: Interaction, match: RuleMatch,
                    now: datetime) -> str | None:
    if interaction.customer_id is None:
        return "sender not identified"
    if parsed.message_id and _already_raised(session, parsed.message_id, interaction.id):
        return "this message already raised a complaint"
    existing = _mentioned_complaint(session, desk_config, interaction.customer_id, f"{parsed.subject}\n{parsed.text}")
    if existing is not None:
        service.record_event(session, existing, "customer_email", actor=ACTOR, at=now,
                             note=f"a new email about this complaint arrived (case {interaction.id})",
                             data={"interaction_id": interaction.id, "rule": match.rule.name})
        return f"names existing complaint {existing.reference}"
    return None


def _already_raised(session: Session, message_id: str, interaction_id: int) -> bool:
    from app.channels.email.models import EmailMessage

    return session.scalar(select(Complaint.id).join(
        EmailMessage, EmailMessage.interaction_id == Complaint.interaction_id).where(
        EmailMessage.message_id == message_id[:255], EmailMessage.direction == "in",
        EmailMessage.interaction_id != interaction_id).limit(1)) is not None


def _mentioned_complaint(session: Session, desk_config, customer_id: int, text: str) -> Complaint | None:
    """A complaint of this customer whose reference the text quotes (the newest, if several)."""
    prefix = re.escape(desk_config.complaints.reference_prefix)
    references = {ref.upper() for ref in re.findall(rf"\b{prefix}-\d+\b", text, re.IGNORECASE)}
    if not references:
        return None
    return session.scalar(select(Complaint).where(Complaint.customer_id == customer_id,
                                                  Complaint.reference.in_(sorted(references)))
                          .order_by(Complaint.id.desc()).limit(1))


def open_complaint_levels(session: Session, customer_ids: set[int]) -> dict[int, str]:
    """customer id -> the most severe level among their open complaints (``service.open_complaint_level``
    for many customers in one query: an email batch reads its senders' ahead); customers without any
    are left out."""
    if not customer_ids:
        return {}
    levels: dict[int, str] = {}
    for customer_id, level in session.execute(select(Complaint.customer_id, Complaint.level).where(
            Complaint.customer_id.in_(customer_ids), Complaint.state.not_in(_SETTLED))):
        levels[customer_id] = min(level, levels.get(customer_id, level))  # 'P1' < 'P2' < ...
    return levels


def find_order(session: Session, customer_id: int, text: str) -> Order | None:
    """The first order of this customer whose number the text mentions (someone else's never counts)."""
    tokens: list[str] = []
    for token in _ORDER_TOKEN.findall(text or ""):
        if any(c.isdigit() for c in token) and token not in tokens:
            tokens.append(token)
        if len(tokens) >= MAX_ORDER_TOKENS:
            break
    if not tokens:
        return None
    candidates = {t.upper() for t in tokens} | set(tokens)
    orders = {order.number.upper(): order for order in session.scalars(select(Order).where(
        Order.customer_id == customer_id, Order.number.in_(sorted(candidates))))}
    return next((orders[t.upper()] for t in tokens if t.upper() in orders), None)


def _description(parsed, limit: int) -> str:
    text = (parsed.text or "").strip() or (parsed.subject or "").strip()
    return text[:limit]


def _raise(session: Session, desk_config, parsed, interaction: Interaction, match: RuleMatch,
           now: datetime) -> EmailComplaint | None:
    config = desk_config.complaints.email_intake
    description = _description(parsed, config.max_description_chars)
    order = find_order(session, interaction.customer_id, f"{parsed.subject}\n{parsed.text}")
    try:
        complaint = service.raise_complaint(
            session, desk_config, channel="email", customer_id=interaction.customer_id,
            category=match.rule.category, description=description, interaction_id=interaction.id,
            order_id=order.id if order else None, language=interaction.language, actor=ACTOR, at=now)
    except service.IntakeInvalid as exc:
        record_fact(session, interaction, "complaint_rule_skipped", actor=ACTOR, reason=str(exc),
                    data={"rule": match.rule.name}, at=now)
        return None
    service.record_event(session, complaint, "intake_rule", actor=ACTOR, at=now, note=match.explain(), data={
        "rule": match.rule.name, "category": match.rule.category,
        "evidence": [list(item) for item in match.evidence], "interaction_id": interaction.id,
        "message_id": (parsed.message_id or "")[:255], "order_number": order.number if order else None})
    record_fact(session, interaction, "complaint_raised", actor=ACTOR, reason=match.rule.name, at=now,
                data={"complaint_id": complaint.id, "reference": complaint.reference, "level": complaint.level})
    notice = session.scalar(select(ComplaintNotice).where(
        ComplaintNotice.complaint_id == complaint.id, ComplaintNotice.kind == "acknowledgement",
        ComplaintNotice.recipient_kind == "customer"))
    _check_sla_after_commit(session, complaint.id)
    return EmailComplaint(complaint, match, notice, now)


def _check_sla_after_commit(session: Session, complaint_id: int) -> None:
    """The complaint's first SLA check, once the ingest transaction commits (it schedules the next)."""
    from app.channels.email.outbound import enqueue_job_after_commit
    from app.complaints.jobs import check_sla_job

    enqueue_job_after_commit(session, check_sla_job, complaint_id)
