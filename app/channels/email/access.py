"""Who may see an email case and its attachments: supervisors and admins; an agent who holds the
case now or has held it (an offer or assignment to them in the case's event log)."""
from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.auth.models import Role, StaffUser
from app.interactions.models import Interaction, InteractionEvent


def can_access_case(session: Session, staff: StaffUser | None, interaction_id: int) -> bool:
    if staff is None or not staff.active:
        return False
    if staff.has_role(Role.SUPERVISOR):
        return True
    interaction = session.get(Interaction, interaction_id)
    if interaction is None:
        return False
    if interaction.agent_id == staff.id:
        return True
    actors = {f"staff:{staff.id}", f"agent:{staff.id}"}
    for actor, data in session.execute(select(InteractionEvent.actor, InteractionEvent.data).where(
            InteractionEvent.interaction_id == interaction_id)):
        if actor in actors or (isinstance(data, dict) and data.get("agent_id") == staff.id):
            return True
    return False
