"""Compensation on a complaint: propose, approve or decline, issue.

The rules are pure (``compensation``, ``approvals``); this module applies them to rows. Safety under
concurrency comes from the database: the proposal row is locked while it is approved or issued, an
approval is unique per (proposal, approver), an issuance is unique per idempotency key, and the
complaint row carries a version counter. Callers (``flows``) commit and treat an IntegrityError as
"someone else just did it".
"""
from __future__ import annotations

import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app import realtime
from app.auth.models import StaffUser
from app.complaints import messages
from app.complaints.approvals import (
    Approver,
    DuplicateApproval,
    approval_role_for,
    check_approval,
    is_fully_approved,
)
from app.complaints.compensation import FixedClaim, Proposal, adjust_goodwill, propose
from app.complaints.models import (
    CompensationIssuance,
    CompensationProposal,
    Complaint,
    ComplaintApproval,
    ComplaintApprover,
    ComplaintEvent,
)
from app.complaints.service import (
    ComplaintError,
    notify_customer,
    record_event,
    staff_actor,
    transition,
)
from app.complaints.states import ComplaintState
from app.crm.models import Customer
from app.db import utcnow

S = ComplaintState
METHODS = ("voucher", "account_credit", "refund")
OPEN_PROPOSAL = ("proposed", "awaiting_approval")
COUNTS_TOWARDS_CAP = ("approved", "issued")
NOT_HANDLING = ("approval", "decline", "sla_alert", "issuance")  # audit kinds that do not make you a handler


class PayoutError(ComplaintError):
    pass


@dataclass(frozen=True)
class ApprovalResult:
    outcome: str  # approved (complete now) | recorded (more approvals needed) | already (nothing to do)
    proposal: CompensationProposal


def approval_role_of(session: Session, config, staff: StaffUser) -> str:
    """The staff member's approval role: an explicit grant, else their desk role's mapping."""
    grant = session.scalar(select(ComplaintApprover.approval_role).where(ComplaintApprover.staff_id == staff.id))
    return approval_role_for(staff.role, config.complaints.approvals, grant)


def handler_ids(session: Session, complaint: Complaint, proposal: CompensationProposal | None = None) -> set[int]:
    """Everyone who handled the case: owner, creator, proposer and whoever acted on it in the audit trail."""
    ids = {complaint.owner_id, complaint.created_by_id, proposal.proposed_by_id if proposal else None}
    ids |= set(session.scalars(select(ComplaintEvent.actor_id).where(
        ComplaintEvent.complaint_id == complaint.id, ComplaintEvent.actor_id.is_not(None),
        ComplaintEvent.kind.not_in(NOT_HANDLING))))
    return {i for i in ids if i is not None}


def goodwill_used_12m(session: Session, customer_id: int, now: datetime) -> int:
    """Goodwill approved or issued to the customer in the last 365 days (the cap's window)."""
    return session.scalar(
        select(func.coalesce(func.sum(CompensationProposal.goodwill_cents), 0))
        .join(Complaint, Complaint.id == CompensationProposal.complaint_id)
        .where(Complaint.customer_id == customer_id, CompensationProposal.status.in_(COUNTS_TOWARDS_CAP),
               CompensationProposal.approved_at >= now - timedelta(days=365))) or 0


def _load_proposal(session: Session, proposal_id: int) -> CompensationProposal:
    proposal = session.scalars(select(CompensationProposal).where(CompensationProposal.id == proposal_id)
                               .with_for_update().execution_options(populate_existing=True)).first()
    if proposal is None:
        raise PayoutError(f"no compensation proposal {proposal_id}")
    return proposal


# ------------------------------------------------------------------------------------------ propose
def compute_proposal(session: Session, config, complaint: Complaint, *, proven_loss_cents: int = 0,
                     fixed: Iterable[FixedClaim] = (), goodwill_cents: int | None = None,
                     adjustment_reason: str = "", include_goodwill: bool = True,
                     at: datetime | None = None) -> Proposal:
    """The desk's proposal for this complaint (pure rules on its level, the customer's tier and cap).

    With ``goodwill_cents`` the agent's own figure replaces the desk's, within the band and with a reason.
    Raises CompensationError subclasses (nothing changed)."""
    customer = session.get(Customer, complaint.customer_id)
    proposal = propose(level=complaint.level, tier=customer.tier, currency=complaint.currency,
                       desk_currency=config.desk.currency, config=config.complaints.compensation,
                       proven_loss_cents=proven_loss_cents, fixed=list(fixed), include_goodwill=include_goodwill,
                       goodwill_used_12m_cents=goodwill_used_12m(session, customer.id, at or utcnow()))
    if include_goodwill and goodwill_cents is not None and goodwill_cents != proposal.goodwill_cents:
        proposal = adjust_goodwill(proposal, goodwill_cents, adjustment_reason)
    return proposal


def propose_compensation(session: Session, config, complaint: Complaint, *, actor_id: int,
                         proven_loss_cents: int = 0, fixed: Iterable[FixedClaim] = (),
                         goodwill_cents: int | None = None, adjustment_reason: str = "", method: str = "voucher",
                         response_note: str = "", include_goodwill: bool = True,
                         at: datetime | None = None) -> CompensationProposal:
    """Record a proposed response with its compensation and send it for approval.

    Allowed while investigating (or to revise an earlier proposal). Compensation within what the proposer
    may grant alone is approved at once; otherwise the complaint waits for approval. A proposal of zero
    needs no approval: the agent resolves the complaint with the response. Raises PayoutError,
    CompensationError or InvalidComplaintTransition; nothing is changed on error."""
    at = at or utcnow()
    if complaint.state not in (S.INVESTIGATING, S.RESPONSE_PROPOSED):
        raise PayoutError("compensation can be proposed only while the complaint is being investigated")
    if method not in METHODS:
        raise PayoutError(f"unknown compensation method {method!r}")
    result = compute_proposal(session, config, complaint, proven_loss_cents=proven_loss_cents, fixed=fixed,
                              goodwill_cents=goodwill_cents, adjustment_reason=adjustment_reason,
                              include_goodwill=include_goodwill, at=at)
    proposer = session.get(StaffUser, actor_id)
    if proposer is None:
        raise PayoutError("the proposer is not a staff member")
    for earlier in complaint.proposals:
        if earlier.status in OPEN_PROPOSAL:
            earlier.status = "superseded"
    row = CompensationProposal(
        complaint_id=complaint.id, status="proposed", currency=result.currency, total_cents=result.total_cents,
        redress_cents=result.amount_of("redress"), fixed_cents=result.amount_of("fixed"),
        goodwill_cents=result.goodwill_cents, level=result.level, customer_tier=result.tier, method=method,
        detail=result.to_dict(), response_note=response_note.strip(), adjustment_reason=result.adjustment_reason,
        proposed_by_id=actor_id, proposed_at=at)
    session.add(row)
    session.flush()
    if complaint.state == S.INVESTIGATING:
        transition(session, config, complaint, S.RESPONSE_PROPOSED, actor=staff_actor(actor_id), actor_id=actor_id,
                   note=response_note, at=at)
    record_event(session, complaint, "proposal", actor=staff_actor(actor_id), actor_id=actor_id, at=at,
                 note=result.adjustment_reason, data={"proposal_id": row.id, **result.to_dict()})
    if row.total_cents:
        _submit(session, config, complaint, row, proposer, at)
    return row


def _submit(session: Session, config, complaint: Complaint, row: CompensationProposal, proposer: StaffUser,
            at: datetime) -> None:
    rules = config.complaints.approvals
    me = Approver(proposer.id, approval_role_of(session, config, proposer))
    handlers = handler_ids(session, complaint, row)
    if is_fully_approved(row.total_cents, [me], handler_ids=handlers, config=rules):
        session.add(ComplaintApproval(proposal_id=row.id, approver_id=proposer.id, approval_role=me.role,
                                      note="within the proposer's own authority", approved_at=at))
        _mark_approved(session, config, complaint, row, proposer.id, at, "within the proposer's own authority")
        return
    row.status = "awaiting_approval"
    transition(session, config, complaint, S.AWAITING_APPROVAL, actor=staff_actor(proposer.id), actor_id=proposer.id,
               at=at, data={"proposal_id": row.id, "total_cents": row.total_cents})


def _mark_approved(session: Session, config, complaint: Complaint, row: CompensationProposal, actor_id: int,
                   at: datetime, note: str) -> None:
    row.status = "approved"
    row.approved_at = at
    transition(session, config, complaint, S.APPROVED, actor=staff_actor(actor_id), actor_id=actor_id, note=note,
               at=at, data={"proposal_id": row.id, "total_cents": row.total_cents})
    approvers = sorted({a.approver_id for a in session.scalars(
        select(ComplaintApproval).where(ComplaintApproval.proposal_id == row.id))})
    realtime.after_commit(session, "compensation.approved", {
        **_money_payload(complaint, row), "approver_ids": approvers, "approved_at": at.isoformat()})


def _money_payload(complaint: Complaint, row: CompensationProposal) -> dict:
    """What outbound webhooks learn about compensation: ids and amounts, no personal data."""
    return {"complaint_id": complaint.id, "reference": complaint.reference, "customer_id": complaint.customer_id,
            "proposal_id": row.id, "level": row.level, "currency": row.currency, "total_cents": row.total_cents,
            "redress_cents": row.redress_cents, "fixed_cents": row.fixed_cents, "goodwill_cents": row.goodwill_cents,
            "method": row.method}


# ------------------------------------------------------------------------------------------ approve
def approve(session: Session, config, proposal_id: int, *, approver_id: int, note: str = "",
            at: datetime | None = None) -> ApprovalResult:
    """Add ``approver_id``'s approval; approve the proposal when the approvals suffice.

    Idempotent: approving twice, or a proposal already approved, returns outcome 'already'. Raises
    NotAuthorised, FourEyesViolation (ApprovalError) or PayoutError for a proposal not awaiting approval;
    nothing is changed on error. A concurrent duplicate insert raises IntegrityError at flush: the caller
    rolls back and reports 'already'."""
    at = at or utcnow()
    proposal = _load_proposal(session, proposal_id)
    if proposal.status in COUNTS_TOWARDS_CAP:
        return ApprovalResult("already", proposal)
    if proposal.status != "awaiting_approval":
        raise PayoutError(f"this proposal is {proposal.status}, not awaiting approval")
    staff = session.get(StaffUser, approver_id)
    if staff is None or not staff.active:
        raise PayoutError("the approver is not an active staff member")
    complaint = proposal.complaint
    approver = Approver(staff.id, approval_role_of(session, config, staff))
    existing = [Approver(a.approver_id, a.approval_role) for a in proposal.approvals]
    handlers = handler_ids(session, complaint, proposal)
    try:
        check_approval(proposal.total_cents, approver, handler_ids=handlers, existing=existing,
                       config=config.complaints.approvals, currency=proposal.currency)
    except DuplicateApproval:
        return ApprovalResult("already", proposal)
    session.add(ComplaintApproval(proposal_id=proposal.id, approver_id=staff.id, approval_role=approver.role,
                                  note=note.strip(), approved_at=at))
    session.flush()  # the unique constraint speaks here for a concurrent double click
    record_event(session, complaint, "approval", actor=staff_actor(staff.id), actor_id=staff.id, note=note.strip(),
                 at=at, data={"proposal_id": proposal.id, "approval_role": approver.role})
    realtime.after_commit(session, "complaint.approval", {"id": complaint.id, "proposal_id": proposal.id,
                                                          "approver_id": staff.id})
    if not is_fully_approved(proposal.total_cents, [*existing, approver], handler_ids=handlers,
                             config=config.complaints.approvals):
        return ApprovalResult("recorded", proposal)
    _mark_approved(session, config, complaint, proposal, staff.id, at, note.strip())
    return ApprovalResult("approved", proposal)


def decline(session: Session, config, proposal_id: int, *, approver_id: int, note: str,
            at: datetime | None = None) -> CompensationProposal:
    """Send the proposal back for revision, with the reason, to ``response_proposed``."""
    at = at or utcnow()
    proposal = _load_proposal(session, proposal_id)
    if proposal.status != "awaiting_approval":
        raise PayoutError(f"this proposal is {proposal.status}, not awaiting approval")
    if not (note or "").strip():
        raise PayoutError("declining needs a reason for the agent")
    staff = session.get(StaffUser, approver_id)
    if staff is None or not staff.has_role("supervisor"):
        raise PayoutError("only a supervisor can decline a proposal")
    complaint = proposal.complaint
    transition(session, config, complaint, S.RESPONSE_PROPOSED, actor=staff_actor(staff.id), actor_id=staff.id,
               note=note, at=at, data={"proposal_id": proposal.id})
    proposal.status = "declined"
    proposal.decided_note = note.strip()
    record_event(session, complaint, "decline", actor=staff_actor(staff.id), actor_id=staff.id, note=note.strip(),
                 at=at, data={"proposal_id": proposal.id})
    return proposal


# -------------------------------------------------------------------------------------------- issue
def issuance_key(proposal_id: int) -> str:
    return f"proposal:{proposal_id}"


def issue(session: Session, config, proposal_id: int, *, at: datetime | None = None) -> CompensationIssuance:
    """Pay an approved proposal once: a voucher code, an account credit or a refund request recorded
    against the order, then a notice to the customer. Repeated calls return the existing issuance."""
    at = at or utcnow()
    key = issuance_key(proposal_id)
    done = session.scalar(select(CompensationIssuance).where(CompensationIssuance.idempotency_key == key))
    if done is not None:
        return done
    proposal = _load_proposal(session, proposal_id)
    if proposal.status != "approved":
        raise PayoutError(f"this proposal is {proposal.status}, not approved")
    complaint = proposal.complaint
    code = f"V{secrets.token_hex(5).upper()}" if proposal.method == "voucher" else None
    issuance = CompensationIssuance(
        idempotency_key=key, proposal_id=proposal.id, complaint_id=complaint.id, customer_id=complaint.customer_id,
        order_id=complaint.order_id, method=proposal.method, amount_cents=proposal.total_cents,
        goodwill_cents=proposal.goodwill_cents, currency=proposal.currency, voucher_code=code, issued_at=at)
    session.add(issuance)
    session.flush()  # a concurrent second job fails here on the unique key
    proposal.status = "issued"
    transition(session, config, complaint, S.COMPENSATION_ISSUED, actor="system", at=at,
               data={"issuance_id": issuance.id, "amount_cents": issuance.amount_cents, "method": issuance.method})
    record_event(session, complaint, "issuance", actor="system", at=at,
                 data={"issuance_id": issuance.id, "method": issuance.method, "amount_cents": issuance.amount_cents,
                       "voucher_code": code, "order_id": complaint.order_id})
    realtime.after_commit(session, "compensation.issued", {
        **_money_payload(complaint, proposal), "issuance_id": issuance.id, "amount_cents": issuance.amount_cents,
        "order_id": complaint.order_id, "issued_at": at.isoformat()})  # never the voucher code: it is money
    customer = session.get(Customer, complaint.customer_id)
    notify_customer(session, complaint, "issuance", messages.issuance(
        complaint.language, name=customer.name, reference=complaint.reference, amount_cents=issuance.amount_cents,
        currency=issuance.currency, method=issuance.method, voucher_code=code))
    return issuance
