"""The demo complaints: every level, several steps, one waiting for the demo supervisor; seeding twice adds nothing."""
from __future__ import annotations

from sqlalchemy import func, select

from app.auth.models import StaffUser
from app.complaints import flows
from app.complaints.demo import DEMO, seed_complaints
from app.complaints.models import Complaint, CompensationProposal
from app.demo import seed


def test_demo_seed_gives_a_supervisor_something_to_approve(db_session, jobs):
    lines = seed(db_session)
    assert any(line.startswith(f"Demo complaints created: {len(DEMO)}") and "awaiting approval" in line
               for line in lines)
    complaints = db_session.scalars(select(Complaint).order_by(Complaint.id)).all()
    assert {c.level for c in complaints} == {"P1", "P3", "P4"}
    assert sorted(c.state for c in complaints) == sorted(
        ["resolved", "awaiting_approval", "investigating", "acknowledged", "closed"])
    assert any(c.owner_id is None for c in complaints)  # one waits in the shared pool
    assert {c.root_cause for c in complaints} >= {"carrier", "warehouse", "staff_error"}

    waiting = db_session.scalar(select(CompensationProposal).where(CompensationProposal.status == "awaiting_approval"))
    lead = db_session.scalar(select(StaffUser).where(StaffUser.email == "lead@demo.desk"))
    result = flows.approve(db_session, waiting.id, approver_id=lead.id, note="agreed")
    assert result.outcome == "approved"

    assert seed_complaints(db_session) is None  # idempotent
    seed(db_session)
    assert db_session.scalar(select(func.count(Complaint.id))) == len(DEMO)


def test_demo_complaints_need_the_demo_customers(db_session, jobs):
    assert seed_complaints(db_session) is None
