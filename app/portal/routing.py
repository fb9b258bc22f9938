"""The portal's and chat's door to routing (``queues.service``): queueing, transfers, position and wait."""
from __future__ import annotations

from types import ModuleType

from sqlalchemy.orm import Session

from app.interactions.models import Interaction
from app.interactions.states import State
from queues import service as routing


def routing_service() -> ModuleType:
    """The routing service module (one home for offers and priorities)."""
    return routing


def enqueue(session: Session, interaction: Interaction, queue_name: str, *, actor: str) -> None:
    """Put ``interaction`` in ``queue_name`` to be offered to an agent. Does not commit."""
    routing.enqueue_contact(session, interaction, queue_name, actor=actor)


def transfer(session: Session, interaction: Interaction, queue_name: str, *, actor: str, note: str = "") -> None:
    """Send a connected contact back to a queue (another agent will pick it up; its history stays)."""
    routing.transfer_to_queue(session, interaction, queue_name, actor=actor, note=note)


def position_and_wait(session: Session, interaction: Interaction) -> tuple[int | None, float | None]:
    """(1-based position, estimated wait in seconds or None) while waiting; (None, None) otherwise."""
    if interaction.state not in (State.QUEUED, State.OFFERED):
        return None, None
    return routing.position_and_wait(session, interaction.id)
