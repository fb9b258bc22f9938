"""Who may see a complaint (its page, its evidence, its actions): one rule, used for lists and pages.

Supervisors and admins see every complaint. An agent sees a complaint that is theirs (owner or the
person who raised it), one waiting in the shared pool (no owner yet), one they have acted on (the
audit trail names them), and the complaints of a customer they are serving right now (an interaction
with that customer offered or connected to them, or in their wrap-up) -- the complaint is part of
the conversation. Everyone else gets "not found", so references do not leak.
"""
from __future__ import annotations

from sqlalchemy import ColumnElement, exists, or_, select
from sqlalchemy.orm import Session

from app.auth.models import Role, StaffUser
from app.complaints.models import Complaint, ComplaintEvent
from app.interactions.models import Interaction

SERVING_STATES = ("offered", "connected", "wrap_up")


def visible_to(staff: StaffUser) -> ColumnElement[bool] | None:
    """A WHERE clause selecting the complaints ``staff`` may see; None means all of them."""
    if staff.has_role(Role.SUPERVISOR):
        return None
    acted = exists().where(ComplaintEvent.complaint_id == Complaint.id, ComplaintEvent.actor_id == staff.id)
    serving = exists().where(Interaction.customer_id == Complaint.customer_id, Interaction.agent_id == staff.id,
                             Interaction.state.in_(SERVING_STATES))
    return or_(Complaint.owner_id == staff.id, Complaint.owner_id.is_(None), Complaint.created_by_id == staff.id,
               acted, serving)


def can_access(session: Session, staff: StaffUser | None, complaint_id: int) -> bool:
    """Whether ``staff`` may see complaint ``complaint_id`` (False for a complaint that does not exist)."""
    if staff is None or not staff.active:
        return False
    query = select(Complaint.id).where(Complaint.id == complaint_id)
    clause = visible_to(staff)
    if clause is not None:
        query = query.where(clause)
    return session.scalar(query) is not None
