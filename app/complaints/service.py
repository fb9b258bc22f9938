"""The complaint lifecycle: intake, grading, the workflow, notices and SLA alerts.

Services take a session, the desk config and plain values; they never commit (``flows`` does, then
enqueues jobs) and they announce through ``realtime.after_commit`` so nothing is announced that the
database does not hold. ``transition`` is the only writer of ``Complaint.state``. Every refusal is a
typed error and leaves the session as it was.
"""
from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app import realtime
from app.auth.models import StaffUser
from app.calendars import CalendarConfig
from app.complaints import messages
from app.complaints.compensation import CompensationError, check_amount, check_currency
from app.complaints.deadlines import (
    Deadlines,
    compute_deadlines,
    elapsed_fraction,
    moment_at_fraction,
)
from app.complaints.grading import (
    FactorInput,
    Grade,
    GradingError,
    changed_factors,
    grade,
    suggest,
)
from app.complaints.models import (
    Complaint,
    ComplaintAlert,
    ComplaintEvent,
    ComplaintNotice,
)
from app.complaints.states import (
    FINAL_RESPONSE,
    ComplaintState,
    InvalidComplaintTransition,
    check_transition,
)
from app.crm.models import Customer, Order
from app.db import utcnow
from app.interactions.models import Interaction

log = logging.getLogger(__name__)
S = ComplaintState
CHANNELS = ("voice", "email", "chat", "portal", "ivr", "task")


class ComplaintError(Exception):
    """A complaint request the desk refuses; ``str(error)`` is the message for the person."""


class ComplaintNotFound(ComplaintError):
    pass


class IntakeInvalid(ComplaintError):
    pass


# ------------------------------------------------------------------------------------------ helpers
def calendar_of(config) -> CalendarConfig:
    """The complaints calendar (``complaints.calendar`` names one of ``calendars``)."""
    return config.calendars[config.complaints.calendar]


def staff_actor(staff_id: int | None) -> str:
    return f"staff:{staff_id}" if staff_id else "system"


def get_complaint(session: Session, complaint_id: int) -> Complaint:
    complaint = session.get(Complaint, complaint_id)
    if complaint is None:
        raise ComplaintNotFound(f"no complaint {complaint_id}")
    return complaint


def find_by_reference(session: Session, reference: str) -> Complaint | None:
    """The complaint with this reference; digits alone also match (the IVR reads 'CMP-100042' as 100042)."""
    text = (reference or "").strip().upper()
    found = session.scalar(select(Complaint).where(Complaint.reference == text))
    if found is None and text.isdigit():
        found = session.scalar(select(Complaint).where(Complaint.reference.like(f"%-{text}")))
    return found


def open_complaint_level(session: Session, customer_id: int) -> str | None:
    """The most severe level among the customer's open complaints (for routing priority and the IVR)."""
    return session.scalar(select(open_complaint_level_of(customer_id)))


def open_complaint_level_of(customer_id: Any) -> Any:
    """``open_complaint_level`` as a scalar subquery, for a statement that reads it beside other facts
    (``customer_id``: a value or a column)."""
    return (select(func.min(Complaint.level))  # 'P1' < 'P2' < ... sorts most severe first
            .where(Complaint.customer_id == customer_id, Complaint.state.not_in((S.CLOSED, S.RESOLVED, S.REJECTED)))
            .scalar_subquery())


def audit_trail(session: Session, complaint_id: int) -> list[ComplaintEvent]:
    return list(session.scalars(select(ComplaintEvent).where(
        ComplaintEvent.complaint_id == complaint_id).order_by(ComplaintEvent.id)))


def record_event(session: Session, complaint: Complaint, kind: str, *, actor: str, actor_id: int | None = None,
                 note: str = "", data: dict[str, Any] | None = None, at: datetime | None = None) -> ComplaintEvent:
    """Append a row to the audit trail (no state change)."""
    row = ComplaintEvent(complaint_id=complaint.id, kind=kind, from_state=complaint.state, to_state=complaint.state,
                         actor=actor, actor_id=actor_id, note=note, data=dict(data or {}), occurred_at=at or utcnow())
    session.add(row)
    return row


def local_text(moment: datetime, zone: str) -> str:
    return moment.astimezone(ZoneInfo(zone)).strftime("%Y-%m-%d %H:%M")


def customer_channel(customer: Customer) -> str:
    """Where complaint notices reach the customer: email when we have an address, else the portal's
    complaint page (the desk has no SMS transport; a call is logged by the agent, not sent)."""
    return "email" if customer.emails else "portal"


def queue_notice(session: Session, notice: ComplaintNotice) -> ComplaintNotice:
    """Add a notice to the outbox; once the transaction commits, "complaint.notice" makes the sender
    (``notices.on_event``) enqueue its delivery job. Ids only in the event."""
    session.add(notice)
    session.flush()
    realtime.after_commit(session, "complaint.notice", {
        "notice_id": notice.id, "complaint_id": notice.complaint_id, "kind": notice.kind,
        "recipient": notice.recipient_kind, "channel": notice.channel})
    return notice


def notify_customer(session: Session, complaint: Complaint, kind: str,
                    subject_body: tuple[str, str]) -> ComplaintNotice:
    """Queue a message to the customer on their channel, in the complaint's language."""
    customer = session.get(Customer, complaint.customer_id)
    subject, body = subject_body
    return queue_notice(session, ComplaintNotice(
        complaint_id=complaint.id, recipient_kind="customer", recipient_id=customer.id,
        channel=customer_channel(customer), language=complaint.language, kind=kind, subject=subject[:255],
        body=body))


def _notify_status(session: Session, config, complaint: Complaint, state: str) -> None:
    customer = session.get(Customer, complaint.customer_id)
    zone = customer.timezone or config.desk.timezone
    notify_customer(session, complaint, f"status_{state}", messages.status_update(
        complaint.language, name=customer.name, reference=complaint.reference, state=state,
        resolve_by=local_text(complaint.resolve_due_at, zone)))


# --------------------------------------------------------------------------------------- transition
def transition(session: Session, config, complaint: Complaint, to_state: str, *, actor: str,
               actor_id: int | None = None, note: str = "", data: dict[str, Any] | None = None,
               at: datetime | None = None) -> ComplaintEvent:
    """Move ``complaint`` to ``to_state`` and append the audit row: the only writer of the state.

    Stamps acknowledged_at, final_response_at (resolved/rejected) and closed_at; a reopening restarts the
    resolve clock. Raises InvalidComplaintTransition (nothing changed) for a move the workflow refuses,
    a missing note, or a reopening after ``complaints.reopen_within_days``."""
    at = at or utcnow()
    target = check_transition(complaint.state, to_state, note=note, final_response_at=complaint.final_response_at,
                              now=at, reopen_within_days=config.complaints.reopen_within_days)
    previous = complaint.state
    complaint.state = target
    complaint.state_changed_at = at
    if target is S.ACKNOWLEDGED:
        complaint.acknowledged_at = at
    elif target in FINAL_RESPONSE:
        complaint.final_response_at = at
    elif target is S.CLOSED:
        complaint.closed_at = at
    elif target is S.REOPENED:
        _restart_resolve_clock(config, complaint, at)
    row = ComplaintEvent(complaint_id=complaint.id, kind="transition", from_state=previous, to_state=target,
                         actor=actor, actor_id=actor_id, note=note, data=dict(data or {}), occurred_at=at)
    session.add(row)
    if target is S.REOPENED or (target is S.INVESTIGATING and previous == S.ACKNOWLEDGED):
        _notify_status(session, config, complaint, str(target))
    realtime.after_commit(session, "complaint.state", {
        "id": complaint.id, "reference": complaint.reference, "from": previous, "to": str(target),
        "level": complaint.level, "owner_id": complaint.owner_id, "at": at.isoformat()})
    return row


def _restart_resolve_clock(config, complaint: Complaint, at: datetime) -> None:
    complaint.reopen_count += 1
    complaint.final_response_at = None
    complaint.closed_at = None
    deadlines = compute_deadlines(complaint.level, at, config.complaints.deadlines, calendar_of(config),
                                  profile=complaint.regulatory_profile)
    complaint.resolve_clock_started_at = at
    complaint.resolve_due_at = deadlines.resolve.due
    complaint.deadlines = {**complaint.deadlines, "resolve": deadlines.to_dict()["resolve"]}


# ------------------------------------------------------------------------------------------- intake
def prefill_from_interaction(session: Session, interaction_id: int) -> dict[str, Any]:
    """Intake fields taken from an interaction (call, chat, email) so the agent does not retype them."""
    interaction = session.get(Interaction, interaction_id)
    if interaction is None:
        raise ComplaintNotFound(f"no interaction {interaction_id}")
    text = "\n".join(part for part in (interaction.subject, interaction.notes) if part)
    return {"interaction_id": interaction.id, "channel": interaction.channel, "customer_id": interaction.customer_id,
            "language": interaction.language, "description": text}


def _check_intake(session: Session, config, *, channel: str, customer_id: int | None, category: str,
                  description: str, order_id: int | None, amount_claimed_cents: int | None, currency: str,
                  evidence: list[dict]) -> Customer:
    if channel not in CHANNELS:
        raise IntakeInvalid(f"channel: unknown channel {channel!r}")
    customer = session.get(Customer, customer_id) if customer_id else None
    if customer is None:
        raise IntakeInvalid("customer: a complaint needs a known customer")
    try:
        config.complaints.category(category)
    except KeyError:
        raise IntakeInvalid(f"category: unknown category {category!r}") from None
    if not (description or "").strip():
        raise IntakeInvalid("description: describe what went wrong")
    if order_id is not None:
        order = session.get(Order, order_id)
        if order is None or order.customer_id != customer.id:
            raise IntakeInvalid("order: not an order of this customer")
    try:
        check_currency(currency, config.desk.currency, "amount claimed")
        if amount_claimed_cents is not None:
            check_amount(amount_claimed_cents, "amount claimed")
    except CompensationError as exc:
        raise IntakeInvalid(str(exc)) from None
    if len(evidence) > config.complaints.evidence_max_files:
        raise IntakeInvalid(f"evidence: at most {config.complaints.evidence_max_files} files")
    for item in evidence:
        if not item.get("name") or int(item.get("size", 0)) > config.complaints.evidence_max_bytes:
            raise IntakeInvalid(f"evidence: {item.get('name') or 'a file'} is missing a name or too large")
    return customer


def prior_complaints(session: Session, customer_id: int, before: datetime, days: int = 365) -> int:
    return session.scalar(select(func.count(Complaint.id)).where(
        Complaint.customer_id == customer_id, Complaint.received_at < before,
        Complaint.received_at >= before - timedelta(days=days))) or 0


def confirmed_scores(suggested: Mapping[str, Any], agent_scores: Mapping[str, int] | None,
                     notes: Mapping[str, str] | None) -> dict[str, FactorInput]:
    """The agent's scores where given, else the desk's suggestions (marked with their source)."""
    notes = notes or {}
    result = {factor: FactorInput(item.score, source=item.source, note=", ".join(item.evidence))
              for factor, item in suggested.items()}
    for factor, score in (agent_scores or {}).items():
        result[factor] = FactorInput(int(score), source="agent", note=notes.get(factor, ""))
    return result


def raise_complaint(session: Session, config, *, channel: str, customer_id: int | None, category: str,
                    description: str, actor_id: int | None = None, actor: str | None = None,
                    interaction_id: int | None = None, order_id: int | None = None, remedy_sought: str = "",
                    amount_claimed_cents: int | None = None, currency: str | None = None,
                    evidence: Iterable[dict] = (), vulnerable: bool = False,
                    scores: Mapping[str, int] | None = None, score_notes: Mapping[str, str] | None = None,
                    language: str | None = None, owner_id: int | None = None,
                    at: datetime | None = None) -> Complaint:
    """Register a complaint from any channel, grade it, set its deadlines and acknowledge it at once.

    Scores the agent gives override the desk's suggestions (keywords, amount claimed, history). The
    acknowledgement (reference and final-response date, in the customer's language) is queued as a
    notice; for a level acknowledged 'by phone' raised outside a call, the complaint stays ``received``
    until someone records the call. Raises IntakeInvalid (nothing added) or GradingError."""
    at = at or utcnow()
    currency = currency or config.desk.currency
    evidence = [dict(item) for item in evidence]
    customer = _check_intake(session, config, channel=channel, customer_id=customer_id, category=category,
                             description=description, order_id=order_id, amount_claimed_cents=amount_claimed_cents,
                             currency=currency, evidence=evidence)
    prior = prior_complaints(session, customer.id, at)
    suggested = suggest(f"{description}\n{remedy_sought}", config.complaints.grading,
                        amount_claimed_cents=amount_claimed_cents, prior_contacts=prior)
    try:
        result = grade(confirmed_scores(suggested, scores, score_notes), config.complaints.grading,
                       vulnerable=vulnerable, tier=customer.tier)
    except GradingError as exc:
        raise IntakeInvalid(str(exc)) from None
    profile = config.complaints.category(category).regulatory_profile or config.complaints.deadlines.regulatory_profile
    deadlines = compute_deadlines(result.level, at, config.complaints.deadlines, calendar_of(config), profile=profile)
    complaint = Complaint(
        reference=f"pending-{customer.id}-{at.timestamp()}", channel=channel, interaction_id=interaction_id,
        customer_id=customer.id, order_id=order_id, category=category, description=description.strip(),
        remedy_sought=remedy_sought.strip(), amount_claimed_cents=amount_claimed_cents, currency=currency.upper(),
        evidence=evidence, vulnerable=vulnerable, language=language or customer.language or "en",
        customer_tier=customer.tier, state=S.RECEIVED, received_at=at, state_changed_at=at,
        owner_id=owner_id or actor_id, created_by_id=actor_id, regulatory_profile=profile,
        resolve_clock_started_at=at)
    _apply_grade(complaint, result, deadlines)
    session.add(complaint)
    session.flush()
    complaint.reference = f"{config.complaints.reference_prefix}-{100000 + complaint.id}"
    who = actor or staff_actor(actor_id)
    session.add(ComplaintEvent(complaint_id=complaint.id, kind="received", from_state=None, to_state=S.RECEIVED,
                               actor=who, actor_id=actor_id, note=f"raised via {channel}", occurred_at=at,
                               data={"grade": result.to_dict(), "deadlines": deadlines.to_dict(),
                                     "suggestions": {f: s.score for f, s in suggested.items()}}))
    realtime.after_commit(session, "complaint.created", {"id": complaint.id, "reference": complaint.reference,
                                                         "level": complaint.level, "customer_id": customer.id})
    announce_graded(session, complaint, previous_level=None, cause="intake", at=at)
    if deadlines.acknowledge_by != "phone" or channel == "voice":
        acknowledge(session, config, complaint, actor=who, actor_id=actor_id, at=at,
                    note="acknowledged on the call" if channel == "voice" else "acknowledged automatically")
    return complaint


def _apply_grade(complaint: Complaint, result: Grade, deadlines: Deadlines) -> None:
    complaint.level = result.level
    complaint.factor_scores = result.scores
    complaint.grade_explanation = result.to_dict()
    complaint.acknowledge_due_at = deadlines.acknowledge.due
    complaint.resolve_due_at = deadlines.resolve.due
    complaint.deadlines = deadlines.to_dict()


def acknowledge(session: Session, config, complaint: Complaint, *, actor: str, actor_id: int | None = None,
                note: str = "", at: datetime | None = None) -> ComplaintEvent:
    """Acknowledge the complaint and queue the acknowledgement notice (reference + final-response date)."""
    at = at or utcnow()
    row = transition(session, config, complaint, S.ACKNOWLEDGED, actor=actor, actor_id=actor_id, note=note, at=at)
    customer = session.get(Customer, complaint.customer_id)
    zone = customer.timezone or config.desk.timezone
    extra = {"zh": "我们会尽快与您电话联系。", "en": "We will call you shortly."}
    note_text = extra[complaint.language if complaint.language in extra else "en"] if complaint.level == "P1" else ""
    notify_customer(session, complaint, "acknowledgement", messages.acknowledgement(
        complaint.language, name=customer.name, reference=complaint.reference,
        resolve_by=local_text(complaint.resolve_due_at, zone), acknowledge_note=note_text))
    return row


# ------------------------------------------------------------------------------------------ grading
def regrade(session: Session, config, complaint: Complaint, scores: Mapping[str, int], *, reason: str,
            actor_id: int | None, notes: Mapping[str, str] | None = None, vulnerable: bool | None = None,
            at: datetime | None = None) -> Grade:
    """Replace the factor scores (the agent's now), recompute level and deadlines from receipt, audit it.

    Raises ComplaintError without a reason or for a closed complaint, GradingError for bad scores."""
    if not (reason or "").strip():
        raise ComplaintError("regrading needs a reason")
    if complaint.state == S.CLOSED:
        raise ComplaintError("a closed complaint cannot be regraded; reopen it first")
    at = at or utcnow()
    previous = _grade_from_record(complaint, config)
    inputs = {f: FactorInput(int(s), source="agent", note=(notes or {}).get(f, "")) for f, s in scores.items()}
    if vulnerable is not None:
        complaint.vulnerable = vulnerable
    result = grade(inputs, config.complaints.grading, vulnerable=complaint.vulnerable, tier=complaint.customer_tier)
    deadlines = compute_deadlines(result.level, complaint.received_at, config.complaints.deadlines,
                                  calendar_of(config), profile=complaint.regulatory_profile)
    _apply_grade(complaint, result, deadlines)
    if complaint.reopen_count:  # a reopened complaint keeps its restarted resolve clock
        _recompute_reopened_resolve_clock(config, complaint)
    record_event(session, complaint, "regrade", actor=staff_actor(actor_id), actor_id=actor_id, note=reason.strip(),
                 at=at, data={"from_level": previous.level, "to_level": result.level,
                              "changes": {f: list(v) for f, v in changed_factors(previous, result).items()},
                              "grade": result.to_dict()})
    announce_graded(session, complaint, previous_level=previous.level, cause="regrade", at=at)
    return result


def announce_graded(session: Session, complaint: Complaint, *, previous_level: str | None, cause: str,
                    at: datetime) -> None:
    """Publish "complaint.graded" (an outbound webhook) once the grade commits: ids, reference, level and
    factor scores only -- never the customer's name, description or vulnerability."""
    realtime.after_commit(session, "complaint.graded", {
        "id": complaint.id, "complaint_id": complaint.id, "reference": complaint.reference,
        "customer_id": complaint.customer_id, "level": complaint.level, "previous_level": previous_level,
        "scores": dict(complaint.factor_scores or {}), "category": complaint.category, "channel": complaint.channel,
        "cause": cause, "acknowledge_due_at": complaint.acknowledge_due_at.isoformat(),
        "resolve_due_at": complaint.resolve_due_at.isoformat(), "at": at.isoformat()})


def _recompute_reopened_resolve_clock(config, complaint: Complaint) -> None:
    deadlines = compute_deadlines(complaint.level, complaint.resolve_clock_started_at, config.complaints.deadlines,
                                  calendar_of(config), profile=complaint.regulatory_profile)
    complaint.resolve_due_at = deadlines.resolve.due
    complaint.deadlines = {**complaint.deadlines, "resolve": deadlines.to_dict()["resolve"]}


def _grade_from_record(complaint: Complaint, config) -> Grade:
    return grade({f: int(s) for f, s in (complaint.factor_scores or {}).items()}, config.complaints.grading,
                 vulnerable=complaint.vulnerable)


def set_root_cause(session: Session, config, complaint: Complaint, code: str, *, actor_id: int | None,
                   note: str = "", at: datetime | None = None) -> ComplaintEvent | None:
    """Record what the investigation found caused the complaint (a ``complaints.root_causes`` code; blank
    clears it), audited. Returns None when nothing changed. Raises ComplaintError for an unknown code."""
    code = (code or "").strip()
    if code:
        try:
            config.complaints.root_cause(code)
        except KeyError:
            raise ComplaintError(f"root cause: unknown code {code!r}") from None
    if (complaint.root_cause or "") == code:
        return None
    previous, complaint.root_cause = complaint.root_cause, code or None
    return record_event(session, complaint, "root_cause", actor=staff_actor(actor_id), actor_id=actor_id,
                        note=note.strip(), at=at, data={"from": previous, "to": complaint.root_cause})


# ------------------------------------------------------------------------------------ final answers
def resolve(session: Session, config, complaint: Complaint, *, actor_id: int | None, note: str,
            at: datetime | None = None) -> ComplaintEvent:
    """The final response upholding the complaint; the customer is told in their language."""
    row = transition(session, config, complaint, S.RESOLVED, actor=staff_actor(actor_id), actor_id=actor_id,
                     note=note, at=at)
    customer = session.get(Customer, complaint.customer_id)
    notify_customer(session, complaint, "resolution", messages.resolution(
        complaint.language, name=customer.name, reference=complaint.reference, note=note))
    return row


def reject(session: Session, config, complaint: Complaint, *, actor_id: int | None, reasons: str,
           at: datetime | None = None) -> ComplaintEvent:
    """A final response not upholding the complaint: reasons required, and the customer is told of their
    right to ask for a review within ``reopen_within_days`` or to escalate to the regulator."""
    row = transition(session, config, complaint, S.REJECTED, actor=staff_actor(actor_id), actor_id=actor_id,
                     note=reasons, at=at)
    customer = session.get(Customer, complaint.customer_id)
    notify_customer(session, complaint, "rejection", messages.rejection(
        complaint.language, name=customer.name, reference=complaint.reference, reasons=reasons.strip(),
        escalate_within_days=config.complaints.reopen_within_days))
    return row


def close(session: Session, config, complaint: Complaint, *, actor_id: int | None, note: str = "",
          public_base_url: str = "", at: datetime | None = None) -> ComplaintEvent:
    """Close the complaint and invite the customer to the satisfaction survey.

    The follow-up task for valued customers comes from the CRM's ``after_complaint_closed`` rule, which
    reads ``closed_at`` (one owner for follow-ups, so no customer is called twice)."""
    at = at or utcnow()
    row = transition(session, config, complaint, S.CLOSED, actor=staff_actor(actor_id), actor_id=actor_id,
                     note=note, at=at)
    customer = session.get(Customer, complaint.customer_id)
    url = public_base_url.rstrip("/") + config.complaints.survey_path.format(reference=complaint.reference)
    notify_customer(session, complaint, "survey", messages.survey(
        complaint.language, name=customer.name, reference=complaint.reference, survey_url=url))
    realtime.after_commit(session, "complaint.closed", {"id": complaint.id, "customer_id": customer.id,
                                                        "tier": customer.tier, "at": at.isoformat()})
    return row


def reopen(session: Session, config, complaint: Complaint, *, actor: str, actor_id: int | None = None, note: str,
           at: datetime | None = None) -> ComplaintEvent:
    """Reopen within the window after a final response, and put it straight back under investigation."""
    at = at or utcnow()
    row = transition(session, config, complaint, S.REOPENED, actor=actor, actor_id=actor_id, note=note, at=at)
    transition(session, config, complaint, S.INVESTIGATING, actor=actor, actor_id=actor_id, note="reopened", at=at)
    return row


# ----------------------------------------------------------------------------------------- SLA alerts
def running_clocks(complaint: Complaint) -> list[tuple[str, datetime, datetime]]:
    """(clock, start, due) for each clock still running: acknowledge until acknowledged, resolve until the
    final response."""
    clocks = []
    if complaint.acknowledged_at is None:
        clocks.append(("acknowledge", complaint.received_at, complaint.acknowledge_due_at))
    if complaint.final_response_at is None and complaint.state != S.CLOSED:
        clocks.append(("resolve", complaint.resolve_clock_started_at, complaint.resolve_due_at))
    return clocks


def _clock_is_business(complaint: Complaint, clock: str) -> bool:
    return bool((complaint.deadlines or {}).get(clock, {}).get("business", False))


def alert_moments(config, complaint: Complaint) -> list[tuple[str, str, datetime, datetime]]:
    """(clock, alert name, when, due) for every alert point of every running clock."""
    calendar = calendar_of(config)
    moments = []
    for clock, start, due in running_clocks(complaint):
        business = _clock_is_business(complaint, clock)
        for fraction in config.complaints.deadlines.alert_fractions:
            name = "breach" if fraction >= 1 else f"{round(fraction * 100)}%"
            if due <= start and fraction < 1:
                continue
            when = moment_at_fraction(calendar, start, due, business, fraction)
            moments.append((clock, name, when, due))
    return sorted(moments, key=lambda m: m[2])


def raise_due_alerts(session: Session, config, complaint: Complaint, now: datetime | None = None
                     ) -> list[ComplaintAlert]:
    """Record every alert whose moment has come and that was not raised yet, tell the owner and the
    supervisors (console + email notices) and announce it. Safe to call any number of times."""
    now = now or utcnow()
    raised = {(a.clock, a.name, a.due_at) for a in session.scalars(
        select(ComplaintAlert).where(ComplaintAlert.complaint_id == complaint.id))}
    new_alerts = []
    for clock, name, when, due in alert_moments(config, complaint):
        if when > now or (clock, name, due) in raised:
            continue
        alert = ComplaintAlert(complaint_id=complaint.id, clock=clock, name=name, due_at=due, raised_at=now)
        session.add(alert)
        new_alerts.append(alert)
        _notify_staff_of_alert(session, config, complaint, clock, name, due)
        record_event(session, complaint, "sla_alert", actor="system", note=f"{clock} {name}", at=now,
                     data={"clock": clock, "alert": name, "due": due.isoformat()})
        realtime.after_commit(session, "complaint.alert", {
            "id": complaint.id, "reference": complaint.reference, "level": complaint.level, "clock": clock,
            "alert": name, "due": due.isoformat(), "owner_id": complaint.owner_id})
    return new_alerts


def _notify_staff_of_alert(session: Session, config, complaint: Complaint, clock: str, name: str,
                           due: datetime) -> None:
    recipients = list(session.scalars(select(StaffUser).where(
        StaffUser.active.is_(True), StaffUser.role.in_(("supervisor", "admin")))))
    if complaint.owner_id and all(s.id != complaint.owner_id for s in recipients):
        owner = session.get(StaffUser, complaint.owner_id)
        if owner is not None:
            recipients.append(owner)
    for staff in recipients:
        subject, body = messages.sla_alert(staff.language, reference=complaint.reference, level=complaint.level,
                                           clock=clock, name=name, due=local_text(due, staff.timezone or "UTC"))
        facts = {"reference": complaint.reference, "clock": clock, "point": name, "due": due.isoformat(),
                 "level": complaint.level, "owner_id": complaint.owner_id}
        for channel in ("console", "email"):
            queue_notice(session, ComplaintNotice(
                complaint_id=complaint.id, recipient_kind="staff", recipient_id=staff.id, channel=channel,
                language=staff.language, kind=f"sla_{clock}_{name}", subject=subject[:255], body=body, data=facts))


def next_alert_at(config, complaint: Complaint, after: datetime) -> datetime | None:
    """The next alert moment strictly after ``after`` (to schedule the next SLA check), or None."""
    upcoming = [when for _c, _n, when, _d in alert_moments(config, complaint) if when > after]
    return min(upcoming) if upcoming else None


def at_risk(session: Session, config, now: datetime | None = None, threshold: float = 0.5
            ) -> list[dict[str, Any]]:
    """Open complaints whose running clocks have used at least ``threshold`` of their time, most used first."""
    now = now or utcnow()
    calendar = calendar_of(config)
    rows = []
    query = select(Complaint).where(Complaint.state.not_in((S.CLOSED, S.RESOLVED, S.REJECTED)))
    for complaint in session.scalars(query):
        for clock, start, due in running_clocks(complaint):
            used = elapsed_fraction(calendar, start, due, _clock_is_business(complaint, clock), now)
            if used >= threshold:
                rows.append({"complaint": complaint, "clock": clock, "due": due, "used": used,
                             "breached": now >= due})
    return sorted(rows, key=lambda r: -r["used"])


__all__ = [
    "ComplaintError",
    "ComplaintNotFound",
    "IntakeInvalid",
    "InvalidComplaintTransition",
    "acknowledge",
    "at_risk",
    "audit_trail",
    "close",
    "customer_channel",
    "find_by_reference",
    "open_complaint_level",
    "prefill_from_interaction",
    "raise_complaint",
    "raise_due_alerts",
    "regrade",
    "reject",
    "reopen",
    "resolve",
    "set_root_cause",
    "transition",
]
