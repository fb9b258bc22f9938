"""Complaints and everything that hangs off them: the audit trail, compensation proposals, approvals,
issuance, SLA alerts and the notices sent to customers and staff.

Integrity lives in the database where it must survive concurrency: one approval per person per proposal,
one issuance per idempotency key, one alert per clock moment. The audit trail is append-only.
"""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
    event,
)
from sqlalchemy.orm import Mapped, deferred, mapped_column, relationship

from app.complaints.states import ComplaintState
from app.db import UTCDateTime, utcnow
from app.extensions import db


class Complaint(db.Model):
    __tablename__ = "complaints"

    id: Mapped[int] = mapped_column(primary_key=True)
    reference: Mapped[str] = mapped_column(String(32), unique=True)
    channel: Mapped[str] = mapped_column(String(16))  # voice | email | chat | portal | ivr | task
    interaction_id: Mapped[int | None] = mapped_column(ForeignKey("interactions.id", ondelete="SET NULL"), index=True)
    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id", ondelete="CASCADE"), index=True)
    order_id: Mapped[int | None] = mapped_column(ForeignKey("orders.id", ondelete="SET NULL"), index=True)
    category: Mapped[str] = mapped_column(String(64), index=True)
    root_cause: Mapped[str | None] = mapped_column(String(64))
    description: Mapped[str] = mapped_column(Text)
    remedy_sought: Mapped[str] = mapped_column(Text, default="")
    amount_claimed_cents: Mapped[int | None] = mapped_column(BigInteger)
    currency: Mapped[str] = mapped_column(String(3))
    evidence: Mapped[list] = mapped_column(JSON, default=list)  # [{name, content_type, size, url}]
    vulnerable: Mapped[bool] = mapped_column(Boolean, default=False)
    language: Mapped[str] = mapped_column(String(8), default="en")
    customer_tier: Mapped[str] = mapped_column(String(16), default="small")  # at intake, for reports

    level: Mapped[str] = mapped_column(String(2), index=True)
    factor_scores: Mapped[dict] = mapped_column(JSON, default=dict)
    grade_explanation: Mapped[dict] = mapped_column(JSON, default=dict)

    state: Mapped[str] = mapped_column(String(24), default=ComplaintState.RECEIVED, index=True)
    received_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)
    acknowledged_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    final_response_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    closed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    state_changed_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    resolve_clock_started_at: Mapped[datetime] = mapped_column(UTCDateTime)  # received, or reopened
    regulatory_profile: Mapped[str] = mapped_column(String(64))
    acknowledge_due_at: Mapped[datetime] = mapped_column(UTCDateTime)
    resolve_due_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
    deadlines: Mapped[dict] = mapped_column(JSON, default=dict)
    reopen_count: Mapped[int] = mapped_column(Integer, default=0)

    owner_id: Mapped[int | None] = mapped_column(ForeignKey("staff_users.id", ondelete="SET NULL"), index=True)
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("staff_users.id", ondelete="SET NULL"))
    version: Mapped[int] = mapped_column(Integer, default=1)

    events: Mapped[list[ComplaintEvent]] = relationship(
        back_populates="complaint", order_by="ComplaintEvent.id", passive_deletes=True)
    proposals: Mapped[list[CompensationProposal]] = relationship(
        back_populates="complaint", order_by="CompensationProposal.id", passive_deletes=True)

    # Two people changing one complaint at once: the second commit fails instead of overwriting.
    __mapper_args__ = {"version_id_col": version}  # noqa: RUF012 (SQLAlchemy reads it once)
    __table_args__ = (Index("ix_complaints_customer_received", "customer_id", "received_at"),)


class ComplaintEvent(db.Model):
    """The audit trail: every state change, grade, proposal, approval, issuance and alert. Never
    updated or deleted (refused by the ORM below)."""

    __tablename__ = "complaint_events"

    id: Mapped[int] = mapped_column(primary_key=True)
    complaint_id: Mapped[int] = mapped_column(ForeignKey("complaints.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(32))
    from_state: Mapped[str | None] = mapped_column(String(24))
    to_state: Mapped[str | None] = mapped_column(String(24))
    actor: Mapped[str] = mapped_column(String(64))  # "staff:3", "customer:5", "system"
    actor_id: Mapped[int | None] = mapped_column(ForeignKey("staff_users.id", ondelete="SET NULL"))
    note: Mapped[str] = mapped_column(Text, default="")
    data: Mapped[dict] = mapped_column(JSON, default=dict)
    occurred_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)

    complaint: Mapped[Complaint] = relationship(back_populates="events")

    __table_args__ = (Index("ix_complaint_events_complaint", "complaint_id", "id"),)


class AuditTrailImmutable(Exception):
    """Someone tried to change or delete a complaint's audit-trail row."""


@event.listens_for(ComplaintEvent, "before_update")
def _refuse_update(mapper, connection, target):
    raise AuditTrailImmutable("the complaint audit trail cannot be edited")


@event.listens_for(ComplaintEvent, "before_delete")
def _refuse_delete(mapper, connection, target):
    raise AuditTrailImmutable("the complaint audit trail cannot be edited")


class CompensationProposal(db.Model):
    __tablename__ = "compensation_proposals"

    id: Mapped[int] = mapped_column(primary_key=True)
    complaint_id: Mapped[int] = mapped_column(ForeignKey("complaints.id", ondelete="CASCADE"), index=True)
    # proposed | awaiting_approval | approved | declined | superseded | issued
    status: Mapped[str] = mapped_column(String(24), default="proposed", index=True)
    currency: Mapped[str] = mapped_column(String(3))
    total_cents: Mapped[int] = mapped_column(BigInteger)
    redress_cents: Mapped[int] = mapped_column(BigInteger, default=0)
    fixed_cents: Mapped[int] = mapped_column(BigInteger, default=0)
    goodwill_cents: Mapped[int] = mapped_column(BigInteger, default=0)
    level: Mapped[str] = mapped_column(String(2))
    customer_tier: Mapped[str] = mapped_column(String(16))
    method: Mapped[str] = mapped_column(String(16), default="voucher")  # voucher | account_credit | refund
    detail: Mapped[dict] = mapped_column(JSON, default=dict)  # Proposal.to_dict(): parts and explanations
    response_note: Mapped[str] = mapped_column(Text, default="")
    adjustment_reason: Mapped[str] = mapped_column(Text, default="")
    proposed_by_id: Mapped[int | None] = mapped_column(ForeignKey("staff_users.id", ondelete="SET NULL"))
    proposed_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    approved_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    decided_note: Mapped[str] = mapped_column(Text, default="")

    complaint: Mapped[Complaint] = relationship(back_populates="proposals")
    approvals: Mapped[list[ComplaintApproval]] = relationship(
        back_populates="proposal", order_by="ComplaintApproval.id", passive_deletes=True)


class ComplaintApproval(db.Model):
    """One approver's yes. The unique constraint makes a double click, a retry or two tabs count once."""

    __tablename__ = "complaint_approvals"

    id: Mapped[int] = mapped_column(primary_key=True)
    proposal_id: Mapped[int] = mapped_column(ForeignKey("compensation_proposals.id", ondelete="CASCADE"))
    approver_id: Mapped[int] = mapped_column(ForeignKey("staff_users.id", ondelete="CASCADE"))
    approval_role: Mapped[str] = mapped_column(String(24))
    note: Mapped[str] = mapped_column(Text, default="")
    approved_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    proposal: Mapped[CompensationProposal] = relationship(back_populates="approvals")

    __table_args__ = (UniqueConstraint("proposal_id", "approver_id"),)


class ComplaintApprover(db.Model):
    """A staff member's approval role when it differs from what their desk role maps to."""

    __tablename__ = "complaint_approvers"

    id: Mapped[int] = mapped_column(primary_key=True)
    staff_id: Mapped[int] = mapped_column(ForeignKey("staff_users.id", ondelete="CASCADE"), unique=True)
    approval_role: Mapped[str] = mapped_column(String(24))


class CompensationIssuance(db.Model):
    """What was actually paid. ``idempotency_key`` is unique, so a retried or duplicated job pays once."""

    __tablename__ = "compensation_issuances"

    id: Mapped[int] = mapped_column(primary_key=True)
    idempotency_key: Mapped[str] = mapped_column(String(80), unique=True)
    proposal_id: Mapped[int] = mapped_column(ForeignKey("compensation_proposals.id", ondelete="CASCADE"), index=True)
    complaint_id: Mapped[int] = mapped_column(ForeignKey("complaints.id", ondelete="CASCADE"), index=True)
    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id", ondelete="CASCADE"), index=True)
    order_id: Mapped[int | None] = mapped_column(ForeignKey("orders.id", ondelete="SET NULL"))
    method: Mapped[str] = mapped_column(String(16))
    amount_cents: Mapped[int] = mapped_column(BigInteger)
    goodwill_cents: Mapped[int] = mapped_column(BigInteger, default=0)
    currency: Mapped[str] = mapped_column(String(3))
    voucher_code: Mapped[str | None] = mapped_column(String(32), unique=True)
    issued_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)


class ComplaintAlert(db.Model):
    """An SLA warning raised once per clock, alert point and deadline (a regrade moves the deadline and
    so allows new alerts)."""

    __tablename__ = "complaint_alerts"

    id: Mapped[int] = mapped_column(primary_key=True)
    complaint_id: Mapped[int] = mapped_column(ForeignKey("complaints.id", ondelete="CASCADE"), index=True)
    clock: Mapped[str] = mapped_column(String(16))  # acknowledge | resolve
    name: Mapped[str] = mapped_column(String(16))  # 50% | 80% | breach
    due_at: Mapped[datetime] = mapped_column(UTCDateTime)
    raised_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    __table_args__ = (UniqueConstraint("complaint_id", "clock", "name", "due_at"),)


class ComplaintNotice(db.Model):
    """An outbox of messages to customers and staff (acknowledgement, status changes, issuance, survey, SLA
    alerts), each in its recipient's language, written in the transaction of the change it reports.

    ``complaints.notices`` sends each row once: a job claims it (``pending -> sending``, compare-and-set),
    sends, and sets ``status='sent'`` and ``sent_at`` in the transaction that records the send."""

    __tablename__ = "complaint_notices"

    id: Mapped[int] = mapped_column(primary_key=True)
    complaint_id: Mapped[int] = mapped_column(ForeignKey("complaints.id", ondelete="CASCADE"), index=True)
    recipient_kind: Mapped[str] = mapped_column(String(16))  # customer | staff
    recipient_id: Mapped[int] = mapped_column(Integer)
    channel: Mapped[str] = mapped_column(String(16))  # email | sms | chat | voice | portal | console
    language: Mapped[str] = mapped_column(String(8))
    kind: Mapped[str] = mapped_column(String(32))
    subject: Mapped[str] = mapped_column(String(255))
    body: Mapped[str] = mapped_column(Text)
    data: Mapped[dict] = mapped_column(JSON, default=dict)  # facts for the channel (an alert's clock, point, due)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    status: Mapped[str] = mapped_column(String(12), default="pending", index=True)  # pending|sending|sent|failed
    send_after: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)  # the next attempt, after a retry
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    claimed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    address: Mapped[str | None] = mapped_column(String(320))  # where it went (email address)
    last_error: Mapped[str | None] = mapped_column(Text)
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class ComplaintEvidence(db.Model):
    """A file staff attached to a complaint (photos, receipts, letters). The bytes live in the database,
    not on a web node's disk: every node serves them, they commit or roll back with the complaint and
    its audit row, and backups, retention and erasure treat them with the complaint. Sizes are capped
    by ``complaints.evidence_max_bytes``. Files a customer attached in the portal stay the portal's
    (``Complaint.evidence`` links them)."""

    __tablename__ = "complaint_evidence"

    id: Mapped[int] = mapped_column(primary_key=True)
    complaint_id: Mapped[int] = mapped_column(ForeignKey("complaints.id", ondelete="CASCADE"))
    filename: Mapped[str] = mapped_column(String(200))
    content_type: Mapped[str] = mapped_column(String(100))  # from the bytes, never the browser's word
    size_bytes: Mapped[int] = mapped_column(Integer)
    sha256: Mapped[str] = mapped_column(String(64))
    data: Mapped[bytes] = deferred(mapped_column(LargeBinary))
    uploaded_by_id: Mapped[int | None] = mapped_column(ForeignKey("staff_users.id", ondelete="SET NULL"))
    uploaded_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    # The same file twice on one complaint (a double submit, a re-upload) is stored once.
    __table_args__ = (UniqueConstraint("complaint_id", "sha256"), Index("ix_complaint_evidence_complaint",
                                                                         "complaint_id", "id"))
