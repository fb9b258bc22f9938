"""Complaint workflows, top to bottom: each use case calls the services, commits, and only then
schedules its background work (issuance, SLA checks). Views and jobs call these.

    raise_complaint -> (acknowledged) -> start_investigation -> propose -> approve -> [issue job]
        -> resolve -> close          with regrade, reject, decline and reopen on the side.

A concurrent duplicate (two approvers' clicks, two issuance jobs) surfaces as IntegrityError or
StaleDataError at commit: the flow rolls back and reports what the database now holds.
"""
from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime

from flask import current_app
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session
from sqlalchemy.orm.exc import StaleDataError

from app import jobs
from app.complaints import evidence, payouts, service
from app.complaints.compensation import FixedClaim
from app.complaints.evidence import EvidenceUpload
from app.complaints.models import CompensationIssuance, CompensationProposal, Complaint
from app.complaints.payouts import ApprovalResult
from app.complaints.states import ComplaintState
from app.db import utcnow

log = logging.getLogger(__name__)
S = ComplaintState


def _config(config=None):
    return config or current_app.extensions["desk.config"]


def schedule_sla_check(config, complaint: Complaint, now: datetime | None = None) -> str | None:
    """Enqueue the SLA check for the complaint's next alert moment (the periodic sweep is the safety net)."""
    from app.complaints.jobs import check_sla_job

    now = now or utcnow()
    when = service.next_alert_at(config, complaint, now)
    if when is None:
        return None
    job_id = f"complaint-sla-{complaint.id}-{int(when.timestamp())}"
    return jobs.enqueue(check_sla_job, complaint.id, queue="sla", delay=when - now, job_id=job_id)


def raise_complaint(session: Session, config=None, *, uploads: Sequence[EvidenceUpload] = (), **fields) -> Complaint:
    """Intake from any channel (see ``service.raise_complaint`` for the fields) with staff's evidence
    files, all in one transaction; commits. Raises IntakeInvalid, EvidenceRejected (nothing kept)."""
    config = _config(config)
    complaint = service.raise_complaint(session, config, **fields)
    evidence.attach(session, config, complaint, list(uploads), actor_id=fields.get("actor_id"))
    session.commit()
    schedule_sla_check(config, complaint)
    return complaint


def acknowledge(session: Session, complaint_id: int, *, actor_id: int, note: str = "", config=None) -> Complaint:
    """Record an acknowledgement made by phone (levels acknowledged 'by phone'); commits."""
    config = _config(config)
    complaint = service.get_complaint(session, complaint_id)
    service.acknowledge(session, config, complaint, actor=service.staff_actor(actor_id), actor_id=actor_id,
                        note=note or "acknowledged by phone")
    session.commit()
    return complaint


def regrade(session: Session, complaint_id: int, scores: Mapping[str, int], *, reason: str, actor_id: int,
            notes: Mapping[str, str] | None = None, vulnerable: bool | None = None, config=None) -> Complaint:
    config = _config(config)
    complaint = service.get_complaint(session, complaint_id)
    service.regrade(session, config, complaint, scores, reason=reason, actor_id=actor_id, notes=notes,
                    vulnerable=vulnerable)
    session.commit()
    schedule_sla_check(config, complaint)
    return complaint


def add_evidence(session: Session, complaint_id: int, uploads: Sequence[EvidenceUpload], *, actor_id: int,
                 config=None) -> list:
    """Attach files to an existing complaint (all or none); commits. Raises EvidenceRejected."""
    config = _config(config)
    complaint = service.get_complaint(session, complaint_id)
    rows = evidence.attach(session, config, complaint, list(uploads), actor_id=actor_id)
    session.commit()
    return rows


def set_root_cause(session: Session, complaint_id: int, code: str, *, actor_id: int, note: str = "",
                   config=None) -> Complaint:
    config = _config(config)
    complaint = service.get_complaint(session, complaint_id)
    service.set_root_cause(session, config, complaint, code, actor_id=actor_id, note=note)
    session.commit()
    return complaint


def move(session: Session, complaint_id: int, to_state: str, *, actor_id: int, note: str = "",
         config=None) -> Complaint:
    """A plain workflow step (start or resume the investigation, take over...) with its note; commits."""
    config = _config(config)
    complaint = service.get_complaint(session, complaint_id)
    service.transition(session, config, complaint, to_state, actor=service.staff_actor(actor_id), actor_id=actor_id,
                       note=note)
    session.commit()
    return complaint


def propose(session: Session, complaint_id: int, *, actor_id: int, proven_loss_cents: int = 0,
            fixed: Iterable[FixedClaim] = (), goodwill_cents: int | None = None, adjustment_reason: str = "",
            method: str = "voucher", response_note: str = "", include_goodwill: bool = True,
            config=None) -> CompensationProposal:
    config = _config(config)
    complaint = service.get_complaint(session, complaint_id)
    proposal = payouts.propose_compensation(
        session, config, complaint, actor_id=actor_id, proven_loss_cents=proven_loss_cents, fixed=fixed,
        goodwill_cents=goodwill_cents, adjustment_reason=adjustment_reason, method=method,
        response_note=response_note, include_goodwill=include_goodwill)
    session.commit()
    if proposal.status == "approved":
        enqueue_issuance(proposal.id)
    return proposal


def approve(session: Session, proposal_id: int, *, approver_id: int, note: str = "", config=None) -> ApprovalResult:
    """Approve (idempotent and safe when two people click at once); enqueues issuance once approved."""
    config = _config(config)
    try:
        result = payouts.approve(session, config, proposal_id, approver_id=approver_id, note=note)
        session.commit()
    except (IntegrityError, StaleDataError):
        session.rollback()
        log.info("approval of proposal %s raced with another; the database has the result", proposal_id)
        proposal = session.get(CompensationProposal, proposal_id, populate_existing=True)
        return ApprovalResult("already", proposal)
    if result.outcome == "approved":
        enqueue_issuance(proposal_id)
    return result


def decline(session: Session, proposal_id: int, *, approver_id: int, note: str, config=None) -> CompensationProposal:
    config = _config(config)
    proposal = payouts.decline(session, config, proposal_id, approver_id=approver_id, note=note)
    session.commit()
    return proposal


def enqueue_issuance(proposal_id: int) -> str | None:
    from app.complaints.jobs import issue_compensation_job

    return jobs.enqueue(issue_compensation_job, proposal_id, queue="default",
                        job_id=f"complaint-issue-{proposal_id}")


def issue(session: Session, proposal_id: int, config=None) -> CompensationIssuance:
    """Issue an approved proposal exactly once (the job's body); a concurrent twin loses at commit."""
    config = _config(config)
    try:
        issuance = payouts.issue(session, config, proposal_id)
        session.commit()
        return issuance
    except (IntegrityError, StaleDataError):
        session.rollback()
        key = payouts.issuance_key(proposal_id)
        return session.scalar(select(CompensationIssuance).where(CompensationIssuance.idempotency_key == key))


def resolve(session: Session, complaint_id: int, *, actor_id: int, note: str, config=None) -> Complaint:
    config = _config(config)
    complaint = service.get_complaint(session, complaint_id)
    service.resolve(session, config, complaint, actor_id=actor_id, note=note)
    session.commit()
    return complaint


def reject(session: Session, complaint_id: int, *, actor_id: int, reasons: str, config=None) -> Complaint:
    config = _config(config)
    complaint = service.get_complaint(session, complaint_id)
    service.reject(session, config, complaint, actor_id=actor_id, reasons=reasons)
    session.commit()
    return complaint


def close(session: Session, complaint_id: int, *, actor_id: int, note: str = "", config=None) -> Complaint:
    config = _config(config)
    complaint = service.get_complaint(session, complaint_id)
    service.close(session, config, complaint, actor_id=actor_id, note=note,
                  public_base_url=current_app.config.get("PUBLIC_BASE_URL", ""))
    session.commit()
    return complaint


def reopen(session: Session, complaint_id: int, *, note: str, actor_id: int | None = None,
           actor: str | None = None, config=None) -> Complaint:
    config = _config(config)
    complaint = service.get_complaint(session, complaint_id)
    service.reopen(session, config, complaint, actor=actor or service.staff_actor(actor_id), actor_id=actor_id,
                   note=note)
    session.commit()
    schedule_sla_check(config, complaint)
    return complaint


def check_sla(session: Session, complaint_id: int, config=None, now: datetime | None = None) -> int:
    """Raise the alerts now due on one complaint, commit, schedule the next check; returns alerts raised."""
    config = _config(config)
    complaint = session.get(Complaint, complaint_id)
    if complaint is None:
        return 0
    now = now or utcnow()
    try:
        raised = service.raise_due_alerts(session, config, complaint, now)
        session.commit()
    except IntegrityError:  # another worker raised the same alert first
        session.rollback()
        return 0
    schedule_sla_check(config, complaint, now)
    return len(raised)


def sweep_sla(session: Session, config=None, now: datetime | None = None) -> int:
    """Raise due alerts on every open complaint (periodic safety net if a scheduled job was lost)."""
    config = _config(config)
    ids = session.scalars(select(Complaint.id).where(Complaint.state.not_in((S.CLOSED,)))).all()
    return sum(check_sla(session, complaint_id, config, now) for complaint_id in ids)
